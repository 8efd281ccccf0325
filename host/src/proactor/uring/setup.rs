//! Creating the io_uring driver: ring flags tried from the most capable down, and
//! the capabilities the kernel provides natively.

use std::sync::atomic::{AtomicBool, AtomicU64};

use io_uring::{opcode, IoUring};

use super::{simple, Uring};
use crate::proactor::caps::{Capability, CapabilitySet};
use crate::proactor::error::{Error, Result};
use crate::proactor::sys;

pub(crate) struct Created {
    pub(crate) uring: Uring,
    pub(crate) native: CapabilitySet,
}

pub(super) fn unavailable(errno: i32) -> Error {
    let hint = match errno {
        libc::ENOSYS => "kernel built without io_uring (needs 5.1+)",
        libc::EPERM | libc::EACCES => {
            "blocked by seccomp or sysctl kernel.io_uring_disabled (set it to 0, or add the user to kernel.io_uring_group)"
        }
        libc::ENOMEM => "ring memory could not be allocated (raise RLIMIT_MEMLOCK on kernels before 5.12)",
        _ => "io_uring_setup refused the ring",
    };
    Error::Unavailable {
        backend: "io_uring",
        errno,
        hint,
    }
}

/// Whether the running kernel's release is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let Ok(r) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut it = r
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (ma, mi) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (ma, mi) >= (major, minor)
}

impl Uring {
    pub(crate) fn create(
        entries: u32,
        cq_entries: u32,
        max_in_flight: u32,
        allowed: CapabilitySet,
    ) -> Result<Created> {
        if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
            if v.trim() == "2" {
                return Err(unavailable(libc::EPERM));
            }
        }
        // Most capable first; retry with fewer flags when the kernel says EINVAL.
        let mut attempts: Vec<(bool, bool, bool, &'static str)> = Vec::new();
        let si = allowed.contains(Capability::SingleIssuer);
        let dt = allowed.contains(Capability::DeferTaskrun);
        if si && dt {
            attempts.push((true, true, true, "SINGLE_ISSUER|DEFER_TASKRUN|R_DISABLED"));
        }
        if si {
            attempts.push((true, false, true, "SINGLE_ISSUER|R_DISABLED"));
        }
        attempts.push((false, false, true, "R_DISABLED"));
        attempts.push((false, false, false, "none"));
        let mut last = libc::EINVAL;
        for (single, defer, disabled, name) in attempts {
            let mut b = IoUring::builder();
            b.setup_cqsize(cq_entries).setup_clamp();
            if single {
                b.setup_single_issuer();
            }
            if defer {
                b.setup_defer_taskrun();
            }
            if disabled {
                b.setup_r_disabled();
            }
            match b.build(entries) {
                Ok(ring) => {
                    return Self::finish_create(
                        ring,
                        single,
                        defer,
                        disabled,
                        name,
                        allowed,
                        max_in_flight,
                    )
                }
                Err(e) => {
                    last = e.raw_os_error().unwrap_or(libc::EIO);
                    if last != libc::EINVAL {
                        break;
                    }
                }
            }
        }
        match last {
            libc::EPERM | libc::EACCES | libc::ENOSYS | libc::ENOMEM | libc::EINVAL => {
                Err(unavailable(last))
            }
            e => Err(Error::Sys {
                what: "io_uring_setup",
                errno: e,
            }),
        }
    }

    fn finish_create(
        ring: IoUring,
        single: bool,
        defer: bool,
        disabled: bool,
        name: &'static str,
        allowed: CapabilitySet,
        max_in_flight: u32,
    ) -> Result<Created> {
        let wakefd = sys::eventfd().map_err(|e| Error::sys("eventfd", e))?;
        let mut probe = io_uring::Probe::new();
        let probed = ring.submitter().register_probe(&mut probe).is_ok();
        let futex = probed
            && probe.is_supported(opcode::FutexWait::CODE)
            && probe.is_supported(opcode::FutexWake::CODE);
        let send_zc = probed && probe.is_supported(opcode::SendZc::CODE);
        let msg_ring = probed && probe.is_supported(opcode::MsgRingData::CODE);
        let p = ring.params();
        let mut native = CapabilitySet::NONE
            .with(Capability::RegisteredBuffers)
            .with(Capability::FixedFiles)
            .with(Capability::AbsoluteTimers)
            .with(Capability::OperationTimeouts);
        // ETIME_SUCCESS (5.16) keeps an expired timer from breaking a link; the
        // skip-cqe feature (5.17) is the closest feature bit that proves it exists.
        if p.is_feature_skip_cqe_on_success() {
            native = native.with(Capability::LinkedOperations);
        }
        if futex {
            native = native.with(Capability::KernelNotificationWait);
        }
        // Multishot accept exists from 5.19; no probe tells, so the release decides.
        if kernel_at_least(6, 0) {
            native = native.with(Capability::Multishot);
        }
        if send_zc {
            native = native.with(Capability::ZeroCopySend);
        }
        if msg_ring {
            native = native.with(Capability::Messaging);
        }
        if single {
            native = native.with(Capability::SingleIssuer);
        }
        if defer {
            native = native.with(Capability::DeferTaskrun);
        }
        let mut masked = CapabilitySet::NONE;
        for c in Capability::ALL {
            if native.contains(c) && allowed.contains(c) {
                masked = masked.with(c);
            }
        }
        let sq_cap = ring.params().sq_entries();
        Ok(Created {
            uring: Uring {
                ring,
                wakefd,
                single_issuer: single,
                r_disabled: disabled,
                enabled: AtomicBool::new(!disabled),
                sq_cap,
                flags_used: name,
                simple: simple::Cells::new(simple::slots_for(max_in_flight)),
                buf_rings: std::sync::Mutex::new(Vec::new()),
                zc_notifications: AtomicU64::new(0),
                mailbox: None,
            },
            native: masked,
        })
    }
}
