//! io_uring refused by the kernel (seccomp returning EPERM or ENOSYS for
//! `io_uring_setup`, as container runtimes do): `BackendChoice::IoUring` reports
//! `Error::Unavailable` with the errno, `Auto` falls back to epoll, and the fallback
//! works. The filter is irreversible, so each case runs in a child process (this same
//! test binary, re-executed with an environment variable).

use std::process::Command;
use std::time::Duration;

use gpu_uring::proactor::*;

const CHILD_ENV: &str = "PROACTOR_SECCOMP_CHILD_ERRNO";
const NR_IO_URING_SETUP: u32 = 425; // same number on every Linux architecture

/// Makes `io_uring_setup` fail with `errno` for the calling thread (and its children).
fn block_io_uring_setup(errno: u32) {
    let ins = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let mut filter = [
        // A = seccomp_data.nr
        ins(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
        ins(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            1,
            NR_IO_URING_SETUP,
        ),
        ins(
            libc::BPF_RET | libc::BPF_K,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | (errno & 0xffff),
        ),
        ins(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: plain prctl calls; `prog` and `filter` outlive the call that reads them.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog
            ),
            0,
            "installing the seccomp filter failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn child(errno: i32) {
    block_io_uring_setup(errno as u32);
    let e = Proactor::new(Options {
        backend: BackendChoice::IoUring,
        ..Options::default()
    })
    .unwrap_err();
    match &e {
        Error::Unavailable {
            backend,
            errno: got,
            hint,
        } => {
            assert_eq!(*backend, "io_uring");
            assert_eq!(*got, errno);
            assert!(!hint.is_empty());
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    eprintln!("io_uring refused: {e}");
    let p = Proactor::new(Options::default()).expect("Auto falls back");
    assert_eq!(p.backend(), BackendKind::Epoll);
    p.submit(Operation::timer(Duration::from_millis(1)).user_data(5))
        .unwrap();
    let mut got = Vec::new();
    while got.is_empty() {
        p.poll(Some(Duration::from_secs(5)), |c| got.push(c))
            .unwrap();
    }
    assert_eq!(got[0].user_data, 5);
    assert_eq!(got[0].outcome, Outcome::Ok(0));
    eprintln!("CHILD-OK errno={errno}");
}

#[test]
fn io_uring_refused_falls_back_to_epoll() {
    if let Ok(v) = std::env::var(CHILD_ENV) {
        child(v.parse().unwrap());
        return;
    }
    for errno in [libc::EPERM, libc::ENOSYS] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "io_uring_refused_falls_back_to_epoll",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, errno.to_string())
            .env_remove(BACKEND_ENV)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains(&format!("CHILD-OK errno={errno}")),
            "child failed:\n{text}"
        );
    }
}
