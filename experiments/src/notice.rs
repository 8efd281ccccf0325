//! Notices shown once: a notice is remembered (its text, under `target/experiments/.notices/`) once shown, and
//! shown again only when its text changes, so a fallback explained on the first run is not repeated on every
//! run.

use std::path::PathBuf;

/// Whether notice `kind` with this `text` has not been shown before; remembers it. A notice that cannot be
/// remembered (a read-only target folder) counts as new every time.
pub(crate) fn first_time(kind: &str, text: &str) -> bool {
    let dir = notices_dir();
    let path = dir.join(kind);
    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return false;
    }
    let _ = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, text));
    true
}

fn notices_dir() -> PathBuf {
    crate::target_dir().join("experiments").join(".notices")
}
