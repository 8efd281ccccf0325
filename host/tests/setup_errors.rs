//! Each typed setup error, triggered for real where this machine allows it:
//! - EPERM / ENOSYS from `io_uring_setup`, the way a container's seccomp profile produces them (a filter installed
//!   on one test thread only);
//! - ENOMEM against RLIMIT_MEMLOCK (one test thread drops CAP_IPC_LOCK, then pins more than the limit);
//! - EINVAL from the kernel for parameters it rejects;
//! - sizes that are not powers of two, and an arena too small.
//!
//! The old-kernel classification (EINVAL on Linux < 6.5 for NO_MMAP) cannot happen on this kernel; its unit test
//! is in `ring::error`. The `kernel.io_uring_disabled` sysctl is exercised in `tests/sysctl_disabled.rs`.

use gpu_uring::ring::{RingConfig, RingError};

use gpu_uring::protocol::DeviceRing;

/// Installs, on the calling thread only, a seccomp filter that makes `io_uring_setup` fail with `errno`.
fn deny_io_uring_setup_on_this_thread(errno: u32) {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let ld = |k| libc::sock_filter {
        code: 0x20,
        jt: 0,
        jf: 0,
        k,
    }; // BPF_LD|BPF_W|BPF_ABS
    let jeq = |k, jt, jf| libc::sock_filter {
        code: 0x15,
        jt,
        jf,
        k,
    }; // BPF_JMP|BPF_JEQ|BPF_K
    let ret = |k| libc::sock_filter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k,
    }; // BPF_RET|BPF_K
    let prog = [
        ld(4),
        jeq(AUDIT_ARCH_X86_64, 0, 3),
        ld(0),
        jeq(libc::SYS_io_uring_setup as u32, 0, 1),
        ret(0x0005_0000 | errno), // SECCOMP_RET_ERRNO
        ret(0x7fff_0000),         // SECCOMP_RET_ALLOW
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: plain prctl calls; `fprog` points to a valid filter for the duration of the call. Without
    // SECCOMP_FILTER_FLAG_TSYNC the filter applies to this thread only.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &fprog as *const _
            ),
            0,
            "installing the seccomp filter"
        );
    }
}

fn on_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

#[test]
fn eperm_is_reported_as_disabled_with_the_fix() {
    let e = on_thread(|| {
        deny_io_uring_setup_on_this_thread(libc::EPERM as u32);
        DeviceRing::new(RingConfig::default())
            .err()
            .expect("setup must fail")
    });
    assert!(matches!(e, RingError::Disabled { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("io_uring_disabled") && msg.contains("seccomp"),
        "{msg}"
    );
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
}

#[test]
fn enosys_is_reported_as_unsupported() {
    let e = on_thread(|| {
        deny_io_uring_setup_on_this_thread(libc::ENOSYS as u32);
        DeviceRing::new(RingConfig::default())
            .err()
            .expect("setup must fail")
    });
    assert!(matches!(e, RingError::Unsupported), "{e}");
    assert!(e.to_string().contains("CONFIG_IO_URING"), "{e}");
}

#[test]
fn einval_from_the_kernel_is_reported_with_flags_and_kernel() {
    // SQ_AFF with a CPU that does not exist: the kernel answers EINVAL.
    let e = DeviceRing::new(RingConfig {
        sq_thread_cpu: Some(4095),
        ..Default::default()
    })
    .err()
    .expect("setup must fail");
    assert!(matches!(e, RingError::SetupRejected { .. }), "{e}");
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    assert!(e.to_string().contains("Linux"), "{e}");
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drops CAP_IPC_LOCK from the calling thread's effective set (capabilities are per thread).
fn drop_ipc_lock_on_this_thread() {
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_IPC_LOCK: u32 = 14;
    let mut hdr = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget/capset with a valid header and a 2-element data array (version 3 layout).
    unsafe {
        assert_eq!(
            libc::syscall(
                libc::SYS_capget,
                &mut hdr as *mut CapHeader,
                data.as_mut_ptr()
            ),
            0
        );
        data[0].effective &= !(1 << CAP_IPC_LOCK);
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()),
            0
        );
    }
}

#[test]
fn memlock_limit_is_reported_with_the_limit_and_the_fix() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-parameter.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    assert_eq!(rc, 0);
    if lim.rlim_cur == libc::RLIM_INFINITY || lim.rlim_cur > (512 << 20) {
        eprintln!(
            "SKIPPED: RLIMIT_MEMLOCK is {} (too large to exceed in a test)",
            lim.rlim_cur
        );
        return;
    }
    let want = (lim.rlim_cur as usize + (4 << 20)).next_multiple_of(4096);
    let e = on_thread(|| {
        drop_ipc_lock_on_this_thread();
        DeviceRing::new(RingConfig {
            lanes: 1,
            fixed_buffer_bytes: want,
            ..Default::default()
        })
        .err()
        .expect("pinning more than RLIMIT_MEMLOCK must fail without CAP_IPC_LOCK")
    });
    assert!(matches!(e, RingError::MemlockLimit { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("RLIMIT_MEMLOCK") && msg.contains("ulimit -l"),
        "{msg}"
    );
    assert!(
        msg.contains(&lim.rlim_cur.to_string()),
        "names the current limit: {msg}"
    );
}

#[test]
fn sizes_must_be_powers_of_two_and_the_arena_large_enough() {
    let e = DeviceRing::new(RingConfig {
        sq_entries: 48,
        ..Default::default()
    })
    .err()
    .unwrap();
    assert!(
        matches!(
            e,
            RingError::NotPowerOfTwo {
                name: "sq_entries",
                value: 48,
                ..
            }
        ),
        "{e}"
    );
    let e = DeviceRing::new(RingConfig {
        sq_entries: 64,
        cq_entries: Some(32),
        ..Default::default()
    })
    .err()
    .unwrap();
    assert!(
        matches!(
            e,
            RingError::NotPowerOfTwo {
                name: "cq_entries",
                ..
            }
        ),
        "{e}"
    );
    let e = DeviceRing::new(RingConfig {
        arena_bytes: Some(64 * 1024),
        fixed_buffer_bytes: 1 << 20,
        ..Default::default()
    })
    .err()
    .unwrap();
    match e {
        RingError::ArenaTooSmall { given, needed } => {
            assert_eq!(given, 64 * 1024);
            assert!(needed > (1 << 20));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_larger_arena_than_needed_is_accepted_and_reported() {
    let ring = DeviceRing::new(RingConfig {
        lanes: 2,
        arena_bytes: Some(4 << 20),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(ring.arena().1, 4 << 20);
    assert_eq!(ring.layout().arena_size, 4 << 20);
    assert_eq!(ring.arena().0 as usize % 4096, 0);
}
