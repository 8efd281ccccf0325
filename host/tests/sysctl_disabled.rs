//! `kernel.io_uring_disabled = 2` makes io_uring_setup fail with EPERM for everyone; the error names the sysctl
//! and its value. This changes a machine-wide setting for a moment, so it lives alone in its own test binary
//! (cargo runs test binaries one after another) and restores the value even if it panics. Skips (saying why)
//! when the sysctl is absent or not writable.

use gpu_uring::ring::{RingConfig, RingError};

use gpu_uring::protocol::DeviceRing;

const SYSCTL: &str = "/proc/sys/kernel/io_uring_disabled";

struct Restore(String);
impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(SYSCTL, &self.0);
    }
}

#[test]
fn disabled_sysctl_is_reported_with_its_value() {
    let Ok(old) = std::fs::read_to_string(SYSCTL) else {
        eprintln!("SKIPPED: {SYSCTL} does not exist on this kernel");
        return;
    };
    if std::fs::write(SYSCTL, "2").is_err() {
        eprintln!("SKIPPED: {SYSCTL} is not writable here (not root, or read-only /proc)");
        return;
    }
    let _restore = Restore(old.trim().to_owned());
    let e = DeviceRing::new(RingConfig::default()).err();
    drop(_restore);
    let e = e.expect("setup must fail while io_uring is disabled");
    assert!(matches!(e, RingError::Disabled { sysctl: Some(2) }), "{e}");
    assert!(
        e.to_string().contains("kernel.io_uring_disabled is 2"),
        "{e}"
    );
    // And restored: rings work again.
    DeviceRing::new(RingConfig::default())
        .expect("io_uring works again after restoring the sysctl");
}
