//! Typed errors for ring setup and registration. Each message says what went wrong and how to fix it.

use std::io;

/// An error creating, registering or driving a device ring.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// `io_uring_setup` returned EPERM: io_uring is disabled by the `kernel.io_uring_disabled` sysctl or
    /// blocked by a seccomp profile (Docker's default profile does this).
    #[error(
        "io_uring is not permitted (EPERM){}: set /proc/sys/kernel/io_uring_disabled to 0 (as root: \
         `sysctl kernel.io_uring_disabled=0`), or, in a container, allow io_uring_setup/io_uring_enter/\
         io_uring_register in its seccomp profile",
        match .sysctl { Some(v) => format!(" — kernel.io_uring_disabled is {v}"), None => String::new() }
    )]
    Disabled {
        /// The value of `/proc/sys/kernel/io_uring_disabled`, if readable.
        sysctl: Option<u32>,
    },
    /// `io_uring_setup` returned ENOSYS: the kernel has no io_uring or a filter hides the system call.
    #[error(
        "io_uring is not available (ENOSYS): the kernel was built without CONFIG_IO_URING, or a seccomp \
         filter returns ENOSYS for io_uring_setup; use a kernel with io_uring (6.5+ for device rings)"
    )]
    Unsupported,
    /// The kernel rejected a setup flag it does not know.
    #[error(
        "Linux {running} does not support {feature}: Linux {needed} or newer is needed (EINVAL from io_uring_setup)"
    )]
    KernelTooOld {
        /// The flag or feature that was rejected.
        feature: &'static str,
        /// The first kernel release that has it.
        needed: &'static str,
        /// The running kernel's release.
        running: String,
    },
    /// The kernel rejected the setup parameters on a kernel that should accept them.
    #[error("io_uring_setup rejected the parameters (flags {flags:#x}, {entries} SQ entries) on Linux {running}: {source}")]
    SetupRejected {
        /// The setup flags passed.
        flags: u32,
        /// SQ entries requested.
        entries: u32,
        /// The running kernel.
        running: String,
        /// The kernel's error.
        source: io::Error,
    },
    /// Pinning memory failed against RLIMIT_MEMLOCK.
    #[error(
        "{what} needs {bytes} bytes of locked memory but RLIMIT_MEMLOCK is {limit} (ENOMEM): raise it \
         (`ulimit -l {needed_kib}` or LimitMEMLOCK= in systemd), or run with CAP_IPC_LOCK"
    )]
    MemlockLimit {
        /// What was being pinned.
        what: &'static str,
        /// Bytes requested.
        bytes: usize,
        /// The current soft limit, in bytes, as text (`unlimited` or a number).
        limit: String,
        /// A sufficient limit in KiB.
        needed_kib: usize,
    },
    /// A size that must be a power of two is not.
    #[error("{name} must be a power of two between {min} and {max}, got {value}")]
    NotPowerOfTwo {
        /// The setting's name.
        name: &'static str,
        /// The value given.
        value: u64,
        /// The smallest allowed value.
        min: u64,
        /// The largest allowed value.
        max: u64,
    },
    /// The arena given is too small for the rings, SQEs, control block, staging lines and fixed buffers.
    #[error("arena of {given} bytes is too small: this configuration needs {needed} bytes (page-aligned)")]
    ArenaTooSmall {
        /// Bytes given.
        given: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// Any other invalid configuration value.
    #[error("invalid ring configuration: {0}")]
    InvalidConfig(String),
    /// A registration call failed.
    #[error("io_uring_register({op}) failed: {source}")]
    Register {
        /// Which registration.
        op: &'static str,
        /// The kernel's error.
        source: io::Error,
    },
    /// Another system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        source: io::Error,
    },
}

debug_as_display!(RingError);

impl RingError {
    /// The errno behind this error, if it came from the kernel.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            RingError::Disabled { .. } => Some(libc::EPERM),
            RingError::Unsupported => Some(libc::ENOSYS),
            RingError::KernelTooOld { .. } => Some(libc::EINVAL),
            RingError::MemlockLimit { .. } => Some(libc::ENOMEM),
            RingError::SetupRejected { source, .. }
            | RingError::Register { source, .. }
            | RingError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// The running kernel's release string (`uname -r`).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Parses "6.18.44-fc" into (6, 18).
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// The setup flags this crate may pass, with the first kernel that accepts each. Used to turn EINVAL into a
/// precise [`RingError::KernelTooOld`].
const FLAG_KERNELS: &[(u32, &str, (u32, u32), &str)] = &[
    (
        super::sys::SETUP_NO_SQARRAY,
        "IORING_SETUP_NO_SQARRAY",
        (6, 6),
        "6.6",
    ),
    (
        super::sys::SETUP_NO_MMAP,
        "IORING_SETUP_NO_MMAP",
        (6, 5),
        "6.5",
    ),
    (
        super::sys::SETUP_R_DISABLED,
        "IORING_SETUP_R_DISABLED",
        (5, 10),
        "5.10",
    ),
    (
        super::sys::SETUP_SQPOLL,
        "IORING_SETUP_SQPOLL",
        (5, 11),
        "5.11 (unprivileged)",
    ),
];

/// Classifies an `io_uring_setup` failure.
pub fn classify_setup_error(err: io::Error, flags: u32, entries: u32, release: &str) -> RingError {
    match err.raw_os_error() {
        Some(libc::EPERM) => RingError::Disabled {
            sysctl: std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .ok()
                .and_then(|s| s.trim().parse().ok()),
        },
        Some(libc::ENOSYS) => RingError::Unsupported,
        Some(libc::ENOMEM) => RingError::MemlockLimit {
            what: "the ring memory",
            bytes: 0,
            limit: memlock_limit_text(),
            needed_kib: 0,
        },
        Some(libc::EINVAL) => {
            let running = parse_release(release);
            for &(flag, feature, min, needed) in FLAG_KERNELS {
                if flags & flag != 0 && running.is_some_and(|r| r < min) {
                    return RingError::KernelTooOld {
                        feature,
                        needed,
                        running: release.to_owned(),
                    };
                }
            }
            RingError::SetupRejected {
                flags,
                entries,
                running: release.to_owned(),
                source: err,
            }
        }
        _ => RingError::SetupRejected {
            flags,
            entries,
            running: release.to_owned(),
            source: err,
        },
    }
}

/// RLIMIT_MEMLOCK's soft limit as text.
pub fn memlock_limit_text() -> String {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-parameter.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return "unknown".into();
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        lim.rlim_cur.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_the_message_so_main_shows_it() {
        let e = RingError::Disabled { sysctl: Some(2) };
        let debug = format!("{e:?}");
        assert_eq!(debug, e.to_string());
        assert!(
            debug.contains("sysctl kernel.io_uring_disabled=0"),
            "{debug}"
        );
        // `fn main() -> Result<(), RingError>` prints `Error: {:?}`: the message, not the variant's fields.
        assert!(!debug.contains("Disabled {"), "{debug}");
    }

    #[test]
    fn release_parsing() {
        assert_eq!(parse_release("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(parse_release("5.4.0"), Some((5, 4)));
        assert_eq!(parse_release("junk"), None);
    }

    #[test]
    fn einval_on_old_kernel_names_the_kernel_needed() {
        let e = classify_setup_error(
            io::Error::from_raw_os_error(libc::EINVAL),
            super::super::sys::SETUP_NO_MMAP | super::super::sys::SETUP_SQPOLL,
            64,
            "6.1.0-13-amd64",
        );
        assert!(
            matches!(e, RingError::KernelTooOld { needed: "6.5", .. }),
            "{e}"
        );
        assert!(e.to_string().contains("Linux 6.5 or newer"), "{e}");
        let e = classify_setup_error(
            io::Error::from_raw_os_error(libc::EINVAL),
            super::super::sys::SETUP_NO_MMAP,
            64,
            "6.18.4",
        );
        assert!(matches!(e, RingError::SetupRejected { .. }), "{e}");
    }
}
