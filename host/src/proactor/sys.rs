//! Raw syscall edge for the proactor: the only file (with `buffers.rs` and the
//! ring access in `uring.rs`) that contains `unsafe`. Each wrapper returns
//! `io::Result` and keeps the invariant it relies on next to the call.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Takes ownership of a freshly created descriptor.
fn own(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = cvt(fd)?;
    // SAFETY: `fd` was just returned by a successful fd-creating syscall, so it is open
    // and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `eventfd(2)`, non-blocking and close-on-exec.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    own(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })
}

/// Adds 1 to an eventfd counter. EAGAIN (counter saturated) means it is already
/// readable, which is all a signal needs.
pub(crate) fn eventfd_signal(fd: RawFd) -> io::Result<()> {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live stack u64.
    let r = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    match cvt_size(r) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads (and so clears) an eventfd counter; returns 0 when it was not set.
pub(crate) fn eventfd_drain(fd: RawFd) -> io::Result<u64> {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live stack u64.
    let r = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
    match cvt_size(r) {
        Ok(_) => Ok(v),
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(0),
        Err(e) => Err(e),
    }
}

/// Whether `fd` is readable right now (`poll(2)` with a zero timeout).
pub(crate) fn is_readable(fd: RawFd) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd on the stack, count 1.
    let n = cvt(unsafe { libc::poll(&mut p, 1, 0) })?;
    Ok(n > 0 && p.revents & libc::POLLIN != 0)
}

/// CLOCK_MONOTONIC in nanoseconds (the clock io_uring timeouts and timerfd use).
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub(crate) fn timerfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    own(unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    })
}

/// Arms a timerfd for an absolute CLOCK_MONOTONIC deadline; `None` disarms it.
pub(crate) fn timerfd_set_abs(fd: RawFd, deadline_ns: Option<u64>) -> io::Result<()> {
    let mut spec: libc::itimerspec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
    };
    if let Some(ns) = deadline_ns {
        // A zero it_value would disarm; an already-passed deadline of 1 ns fires at once.
        let ns = ns.max(1);
        spec.it_value.tv_sec = (ns / 1_000_000_000) as libc::time_t;
        spec.it_value.tv_nsec = (ns % 1_000_000_000) as libc::c_long;
    }
    // SAFETY: `spec` is a valid itimerspec; old-value pointer may be null.
    cvt(unsafe {
        libc::timerfd_settime(fd, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut())
    })?;
    Ok(())
}

pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    own(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })
}

pub(crate) fn epoll_ctl(
    epfd: RawFd,
    op: libc::c_int,
    fd: RawFd,
    events: u32,
    data: u64,
) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call (ignored for DEL).
    cvt(unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) })?;
    Ok(())
}

/// `epoll_wait(2)`; EINTR is reported as zero events.
pub(crate) fn epoll_wait(
    epfd: RawFd,
    events: &mut [libc::epoll_event],
    timeout_ms: i32,
) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `events.len()` entries into the slice.
    let n = unsafe {
        libc::epoll_wait(
            epfd,
            events.as_mut_ptr(),
            events.len() as libc::c_int,
            timeout_ms,
        )
    };
    match cvt(n) {
        Ok(n) => Ok(n as usize),
        Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(0),
        Err(e) => Err(e),
    }
}

pub(crate) fn pread(fd: RawFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    // SAFETY: `buf` is a live, exclusively borrowed slice of `buf.len()` bytes.
    cvt_size(unsafe {
        libc::pread(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            offset as libc::off_t,
        )
    })
}

pub(crate) fn pwrite(fd: RawFd, buf: &[u8], offset: u64) -> io::Result<usize> {
    // SAFETY: `buf` is a live slice of `buf.len()` bytes.
    cvt_size(unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), offset as libc::off_t) })
}

/// `preadv(2)`. `iov` must describe memory that stays valid and unaliased for the call;
/// callers build it from `&mut [Vec<u8>]` they hold exclusively.
pub(crate) fn preadv(fd: RawFd, iov: &[libc::iovec], offset: u64) -> io::Result<usize> {
    // SAFETY: see the function contract: every iovec points into a buffer the caller
    // borrows mutably for the duration of this call.
    cvt_size(unsafe {
        libc::preadv(
            fd,
            iov.as_ptr(),
            iov.len() as libc::c_int,
            offset as libc::off_t,
        )
    })
}

/// `pwritev(2)`; `iov` must describe memory that stays valid for the call.
pub(crate) fn pwritev(fd: RawFd, iov: &[libc::iovec], offset: u64) -> io::Result<usize> {
    // SAFETY: every iovec points into a buffer the caller keeps alive for this call.
    cvt_size(unsafe {
        libc::pwritev(
            fd,
            iov.as_ptr(),
            iov.len() as libc::c_int,
            offset as libc::off_t,
        )
    })
}

pub(crate) fn fsync(fd: RawFd, datasync: bool) -> io::Result<()> {
    // SAFETY: plain syscalls with an integer argument.
    cvt(unsafe {
        if datasync {
            libc::fdatasync(fd)
        } else {
            libc::fsync(fd)
        }
    })?;
    Ok(())
}

pub(crate) fn openat(
    dir: RawFd,
    path: &std::ffi::CStr,
    flags: i32,
    mode: u32,
) -> io::Result<RawFd> {
    // SAFETY: `path` is a NUL-terminated string alive for the call.
    cvt(unsafe {
        libc::openat(
            dir,
            path.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })
}

/// Closes a raw descriptor that the caller owns and gives up.
pub(crate) fn close(fd: RawFd) -> io::Result<()> {
    // SAFETY: the caller transferred ownership of `fd` (it came from `OwnedFd::into_raw_fd`).
    cvt(unsafe { libc::close(fd) })?;
    Ok(())
}

pub(crate) fn dup(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: duplicating a descriptor number has no memory-safety preconditions.
    own(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })
}

/// `FUTEX_WAIT_PRIVATE` on `word` while it holds `expected`; returns on wake, value
/// change, timeout or signal (callers re-check the word).
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live AtomicU32 (same layout as u32); the timespec lives on the stack.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
        )
    };
}

/// Wakes every thread in `FUTEX_WAIT` on `word` (process-private futex).
pub(crate) fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a live AtomicU32; FUTEX_WAKE only uses its address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        )
    };
}

/// Number of open descriptors of this process (for leak checks in tests and docs).
pub fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}
