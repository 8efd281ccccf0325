//! The proactor's system-call edge. Everything goes through `rustix` except the
//! vectored positioned calls (whose iovec arrays are kept in the slot for the kernel
//! and reused, which `rustix`'s borrowed slices cannot express) and `close` with its
//! error reported. Each wrapper returns `io::Result`.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::event::{epoll, eventfd as rx_eventfd, EventfdFlags, PollFd, PollFlags};
use rustix::time::{
    timerfd_create, timerfd_settime, ClockId, Itimerspec, TimerfdClockId, TimerfdFlags,
    TimerfdTimerFlags, Timespec,
};

fn io_err(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// Borrows a descriptor number the caller promised to keep open for the call
/// (`Target::Fd`); a negative number is `EBADF` without a system call.
pub(crate) fn borrow(fd: RawFd) -> io::Result<BorrowedFd<'static>> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: the number is not -1 (checked). A closed or foreign number makes the
    // system call fail with EBADF or act on that descriptor, exactly as the raw call
    // the caller asked for would; the borrow never outlives the call that uses it.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// `eventfd(2)`, non-blocking and close-on-exec.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    rx_eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC).map_err(io_err)
}

/// Adds 1 to an eventfd counter. EAGAIN (counter saturated) means it is already
/// readable, which is all a signal needs.
pub(crate) fn eventfd_signal(fd: BorrowedFd<'_>) -> io::Result<()> {
    match rustix::io::write(fd, &1u64.to_ne_bytes()) {
        Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
        Err(e) => Err(io_err(e)),
    }
}

/// Reads (and so clears) an eventfd counter; returns 0 when it was not set.
pub(crate) fn eventfd_drain(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut v = [0u8; 8];
    match rustix::io::read(fd, &mut v) {
        Ok(_) => Ok(u64::from_ne_bytes(v)),
        Err(rustix::io::Errno::AGAIN) => Ok(0),
        Err(e) => Err(io_err(e)),
    }
}

/// Whether `fd` is readable right now (`poll(2)` with a zero timeout).
pub(crate) fn is_readable(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut p = [PollFd::new(&fd, PollFlags::IN)];
    let n = rustix::event::poll(&mut p, Some(&Timespec::default())).map_err(io_err)?;
    Ok(n > 0 && p[0].revents().contains(PollFlags::IN))
}

/// CLOCK_MONOTONIC in nanoseconds (the clock io_uring timeouts and timerfd use).
pub(crate) fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub(crate) fn timerfd() -> io::Result<OwnedFd> {
    timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
    )
    .map_err(io_err)
}

/// Arms a timerfd for an absolute CLOCK_MONOTONIC deadline; `None` disarms it.
pub(crate) fn timerfd_set_abs(fd: BorrowedFd<'_>, deadline_ns: Option<u64>) -> io::Result<()> {
    let mut spec = Itimerspec {
        it_interval: Timespec::default(),
        it_value: Timespec::default(),
    };
    if let Some(ns) = deadline_ns {
        // A zero it_value would disarm; an already-passed deadline of 1 ns fires at once.
        let ns = ns.max(1);
        spec.it_value.tv_sec = (ns / 1_000_000_000) as _;
        spec.it_value.tv_nsec = (ns % 1_000_000_000) as _;
    }
    timerfd_settime(fd, TimerfdTimerFlags::ABSTIME, &spec).map_err(io_err)?;
    Ok(())
}

pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    epoll::create(epoll::CreateFlags::CLOEXEC).map_err(io_err)
}

/// Registers `fd` with `events` (level-triggered) and `data`.
pub(crate) fn epoll_add(
    ep: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    events: u32,
    data: u64,
) -> io::Result<()> {
    epoll::add(
        ep,
        fd,
        epoll::EventData::new_u64(data),
        epoll::EventFlags::from_bits_retain(events),
    )
    .map_err(io_err)
}

pub(crate) fn epoll_mod(
    ep: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    events: u32,
    data: u64,
) -> io::Result<()> {
    epoll::modify(
        ep,
        fd,
        epoll::EventData::new_u64(data),
        epoll::EventFlags::from_bits_retain(events),
    )
    .map_err(io_err)
}

pub(crate) fn epoll_del(ep: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    epoll::delete(ep, fd).map_err(io_err)
}

/// `epoll_wait(2)` into `events` (cleared first; at most its capacity); EINTR is
/// reported as zero events.
pub(crate) fn epoll_wait(
    ep: BorrowedFd<'_>,
    events: &mut Vec<epoll::Event>,
    timeout: Option<Duration>,
) -> io::Result<()> {
    events.clear();
    let ts = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as _,
        tv_nsec: t.subsec_nanos() as _,
    });
    match epoll::wait(ep, rustix::buffer::spare_capacity(events), ts.as_ref()) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(io_err(e)),
    }
}

pub(crate) fn pread(fd: RawFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    rustix::io::pread(borrow(fd)?, buf, offset).map_err(io_err)
}

pub(crate) fn pwrite(fd: RawFd, buf: &[u8], offset: u64) -> io::Result<usize> {
    rustix::io::pwrite(borrow(fd)?, buf, offset).map_err(io_err)
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// `preadv(2)`. `iov` must describe memory that stays valid and unaliased for the call;
/// callers build it from `&mut [Vec<u8>]` they hold exclusively.
pub(crate) fn preadv(fd: RawFd, iov: &[libc::iovec], offset: u64) -> io::Result<usize> {
    let fd = borrow(fd)?;
    // SAFETY: see the function contract: every iovec points into a buffer the caller
    // borrows mutably for the duration of this call.
    cvt_size(unsafe {
        libc::preadv(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            iov.as_ptr(),
            iov.len() as libc::c_int,
            offset as libc::off_t,
        )
    })
}

/// `pwritev(2)`; `iov` must describe memory that stays valid for the call.
pub(crate) fn pwritev(fd: RawFd, iov: &[libc::iovec], offset: u64) -> io::Result<usize> {
    let fd = borrow(fd)?;
    // SAFETY: every iovec points into a buffer the caller keeps alive for this call.
    cvt_size(unsafe {
        libc::pwritev(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            iov.as_ptr(),
            iov.len() as libc::c_int,
            offset as libc::off_t,
        )
    })
}

pub(crate) fn fsync(fd: RawFd, datasync: bool) -> io::Result<()> {
    let fd = borrow(fd)?;
    if datasync {
        rustix::fs::fdatasync(fd).map_err(io_err)
    } else {
        rustix::fs::fsync(fd).map_err(io_err)
    }
}

pub(crate) fn openat(
    dir: RawFd,
    path: &std::ffi::CStr,
    flags: i32,
    mode: u32,
) -> io::Result<OwnedFd> {
    let dir = if dir == libc::AT_FDCWD {
        rustix::fs::CWD
    } else {
        borrow(dir)?
    };
    rustix::fs::openat(
        dir,
        path,
        rustix::fs::OFlags::from_bits_retain((flags | libc::O_CLOEXEC) as _),
        rustix::fs::Mode::from_bits_retain(mode as _),
    )
    .map_err(io_err)
}

/// Closes a descriptor and reports the kernel's answer.
pub(crate) fn close(fd: OwnedFd) -> io::Result<()> {
    let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
    // SAFETY: `raw` came from an `OwnedFd` given up just above: nobody else owns it.
    unsafe { rustix::io::try_close(raw) }.map_err(io_err)
}

pub(crate) fn dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, 0).map_err(io_err)
}

/// `FUTEX_WAIT_PRIVATE` on `word` while it holds `expected`; returns on wake, value
/// change, timeout or signal (callers re-check the word).
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as _,
        tv_nsec: t.subsec_nanos() as _,
    });
    let _ = rustix::thread::futex::wait(
        word,
        rustix::thread::futex::Flags::PRIVATE,
        expected,
        ts.as_ref(),
    );
}

/// Wakes every thread in `FUTEX_WAIT` on `word` (process-private futex).
pub(crate) fn futex_wake_all(word: &AtomicU32) {
    let _ =
        rustix::thread::futex::wake(word, rustix::thread::futex::Flags::PRIVATE, i32::MAX as u32);
}

/// Number of open descriptors of this process (for leak checks in tests and docs).
pub fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}
