//! Progress on stderr for runs longer than about two seconds: an `indicatif` bar (with a total) or spinner
//! (without) that appears only once its phase has run for [`SHOW_AFTER`], and only when stderr is a terminal
//! (indicatif draws nothing otherwise), so short runs, pipes and logs stay clean. Dropping it clears it.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long a phase runs before its progress appears.
pub const SHOW_AFTER: Duration = Duration::from_secs(2);

/// One phase's progress line.
pub struct Progress {
    bar: ProgressBar,
    shower: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Progress {
    /// A phase named `what`, counting to `total` (a bar) or not (a spinner with the elapsed time).
    pub fn new(what: &str, total: Option<u64>) -> Progress {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
        let style = match total {
            Some(_) => ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} (eta {eta})",
            ),
            None => ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}]"),
        };
        if let Ok(style) = style {
            bar.set_style(style);
        }
        bar.set_message(what.to_owned());
        let (tx, rx) = mpsc::channel::<()>();
        let b = bar.clone();
        let shower = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                // Shown only if the phase is still running after SHOW_AFTER (the sender is dropped or sends
                // when it ends).
                if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(SHOW_AFTER) {
                    b.set_draw_target(ProgressDrawTarget::stderr());
                    b.enable_steady_tick(Duration::from_millis(200));
                }
            })
            .ok()
            .map(|h| (tx, h));
        Progress { bar, shower }
    }

    /// Advances by `n`.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Sets the position.
    pub fn set_position(&self, n: u64) {
        self.bar.set_position(n);
    }

    /// Renames the phase.
    pub fn set_message(&self, what: &str) {
        self.bar.set_message(what.to_owned());
    }

    /// Runs `f` with the line hidden (for output printed while the phase runs).
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some((tx, h)) = self.shower.take() {
            let _ = tx.send(());
            let _ = h.join();
        }
        self.bar.finish_and_clear();
    }
}
