//! What every operation kind implements ([`Op`]) and what the drivers lend it.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use io_uring::{squeue, types};

use crate::proactor::caps::{Capabilities, Capability};
use crate::proactor::error::{Error, Result};
use crate::proactor::op::{OpCode, OpError, Outcome, Resources, Target};

/// What an operation may look at when it is checked or built: the capabilities in
/// force and the registered-file table.
#[derive(Clone, Copy)]
pub(crate) struct Env<'a> {
    pub(crate) caps: Capabilities,
    /// Emulated fixed files: `dup`ed descriptors indexed like the registration.
    pub(crate) files: &'a [OwnedFd],
    /// Files registered with the kernel (native fixed files).
    pub(crate) native_files: u32,
}

impl Env<'_> {
    pub(crate) fn files_native(&self) -> bool {
        self.caps.is_native(Capability::FixedFiles)
    }

    /// Checks that a fixed-file index is registered.
    #[inline]
    pub(crate) fn check(&self, t: Target) -> Result<()> {
        match t {
            Target::Fd(_) => Ok(()),
            Target::Fixed(i) => {
                let n = if self.files_native() {
                    self.native_files as usize
                } else {
                    self.files.len()
                };
                if (i as usize) < n {
                    Ok(())
                } else {
                    Err(Error::InvalidArgument("fixed file index is not registered"))
                }
            }
        }
    }

    /// The descriptor number a target names when fixed files are emulated (or it is
    /// plain): -1 (EBADF) if the table was replaced since submission.
    #[inline]
    pub(crate) fn raw(&self, t: Target) -> RawFd {
        match t {
            Target::Fd(f) => f,
            Target::Fixed(i) => self.files.get(i as usize).map_or(-1, |f| f.as_raw_fd()),
        }
    }
}

/// Kernel-read storage of the slot an io_uring entry is built for.
pub(crate) struct UringCx<'a> {
    pub(crate) env: Env<'a>,
    pub(crate) ts: &'a mut types::Timespec,
    pub(crate) iov: &'a mut Vec<libc::iovec>,
}

/// What the epoll driver lends an operation it runs.
pub(crate) struct EpollCx<'a> {
    pub(crate) env: Env<'a>,
    pub(crate) iov: &'a mut Vec<libc::iovec>,
    /// What a [`Step::More`] result hands over (left `Resources::None` otherwise).
    pub(crate) more: &'a mut Resources,
}

/// Readiness interest (epoll event bits).
pub(crate) const READABLE: u32 = libc::EPOLLIN as u32;
pub(crate) const WRITABLE: u32 = libc::EPOLLOUT as u32;

/// What an operation asks of the epoll driver. Every variant carries one `u64`, so a
/// `Step` is a pair of scalars that comes back from an operation in two registers
/// (a `Step` holding an [`Outcome`] was built field by field in memory and read back
/// as a whole: a failed store-to-load forward on every operation, which was most of
/// a nop's time on epoll). Build one with the functions below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Finished, with a kernel-style result: the value, or the negated errno of a
    /// failure of this operation ([`Step::ok`], [`Step::err`], [`Step::io`]).
    Done(u64),
    /// Try again when a descriptor is ready for some events, or reports an error or
    /// a hang-up ([`Step::wait`]; [`Step::waiting`] reads it).
    Wait(u64),
    /// Finish with `Ok(0)` at this CLOCK_MONOTONIC instant (nanoseconds).
    Timer(u64),
    /// A multishot result `Ok(value)` that does not end the operation (its resources
    /// in [`EpollCx::more`]): deliver it and call again, with `ready` true
    /// ([`Step::more`]).
    More(u64),
}

impl Step {
    /// Finished with `Ok(v)`.
    #[inline(always)]
    pub(crate) fn ok(v: u32) -> Step {
        Step::Done(u64::from(v))
    }

    /// Failed with `errno` (reported with the operation's own [`OpCode`]).
    #[inline(always)]
    pub(crate) fn err(errno: i32) -> Step {
        Step::Done(i64::from(errno).wrapping_neg() as u64)
    }

    /// The result of a system call.
    #[inline]
    pub(crate) fn io(r: std::io::Result<usize>) -> Step {
        match r {
            Ok(n) => Step::ok(n as u32),
            Err(e) => Step::err(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }

    /// Wait until `fd` is ready for `events`.
    #[inline(always)]
    pub(crate) fn wait(fd: RawFd, events: u32) -> Step {
        Step::Wait(u64::from(events) << 32 | u64::from(fd as u32))
    }

    /// A multishot result `Ok(v)`; the operation goes on.
    #[inline(always)]
    pub(crate) fn more(v: u32) -> Step {
        Step::More(u64::from(v))
    }

    /// The descriptor and events of a [`Step::Wait`] word.
    #[inline(always)]
    pub(crate) fn waiting(w: u64) -> (RawFd, u32) {
        (w as u32 as RawFd, (w >> 32) as u32)
    }

    /// The outcome of a [`Step::Done`] word of an operation of kind `code` (asked for
    /// only on a failure).
    #[inline(always)]
    pub(crate) fn outcome(res: u64, code: impl FnOnce() -> OpCode) -> Outcome {
        if (res as i64) >= 0 {
            Outcome::Ok(res as u32)
        } else {
            failed(res, code())
        }
    }
}

#[cold]
fn failed(res: u64, op: OpCode) -> Outcome {
    Outcome::Err(OpError {
        op,
        errno: (res as i64).wrapping_neg() as i32,
    })
}

/// One operation kind.
pub(crate) trait Op: Sized {
    const CODE: OpCode;

    /// Checks what the operation references before anything is started.
    #[inline(always)]
    fn validate(&self, _env: &Env<'_>) -> Result<()> {
        Ok(())
    }

    /// Bytes a read or write asks for; a shorter transfer breaks a linked sequence
    /// (as io_uring does for linked reads and writes).
    #[inline(always)]
    fn expected_len(&self) -> Option<usize> {
        None
    }

    /// Whether it owns no resource (its completion hands back `Resources::None` and
    /// dropping it frees nothing).
    #[inline(always)]
    fn owns_nothing(&self) -> bool {
        false
    }

    /// Whether it completes many times (multishot).
    #[inline(always)]
    fn multishot(&self) -> bool {
        false
    }

    /// Whether the kernel may post several completions for it (multishot, or a
    /// zero-copy send's result and notification): they go to the io_uring driver's
    /// multishot reaping.
    #[inline(always)]
    fn many_completions(&self) -> bool {
        self.multishot()
    }

    /// Its timeout in nanoseconds (0: none); only connect and recv take one.
    #[inline(always)]
    fn timeout_ns(&self) -> u64 {
        0
    }

    /// What it owned, handed back with the completion.
    fn into_resources(self) -> Resources;

    /// The io_uring entry (without user_data and flags).
    fn entry(&mut self, cx: &mut UringCx<'_>) -> squeue::Entry;

    /// Called once its entry is in the submission ring.
    #[inline(always)]
    fn queued(&mut self) {}

    /// Maps a negative completion result.
    #[cold]
    fn cqe_error(&self, res: i32, cancelling: bool) -> Outcome {
        error_outcome(Self::CODE, cancelling, res)
    }

    /// Runs it on the epoll driver: `ready` is false on the first call, true when
    /// the readiness it waited for arrived.
    fn epoll(&mut self, cx: &mut EpollCx<'_>, ready: bool) -> Step;
}

/// Maps a negative CQE result of an operation that may carry a timeout: with one, a
/// cancellation nobody asked for is its linked timeout firing (`ETIMEDOUT`).
#[cold]
pub(crate) fn timed_error_outcome(
    code: OpCode,
    timeout_ns: u64,
    cancelling: bool,
    res: i32,
) -> Outcome {
    if timeout_ns != 0 && !cancelling && res == -libc::ECANCELED {
        return Outcome::Err(OpError {
            op: code,
            errno: libc::ETIMEDOUT,
        });
    }
    error_outcome(code, cancelling, res)
}

/// Maps a negative CQE result.
#[cold]
pub(crate) fn error_outcome(code: OpCode, cancelling: bool, res: i32) -> Outcome {
    match (-res, code) {
        (libc::ECANCELED, _) => Outcome::Cancelled,
        (libc::EINTR, _) if cancelling => Outcome::Cancelled,
        // With ETIME_SUCCESS the CQE still carries -ETIME: the timer expired normally.
        (libc::ETIME, OpCode::Timer) => Outcome::Ok(0),
        (errno, op) => Outcome::Err(OpError { op, errno }),
    }
}

/// Builds an entry for a file target: `$f` is bound to `types::Fixed` or `types::Fd`
/// (two types, hence a macro) in the arm that matches.
macro_rules! with_fd {
    ($env:expr, $t:expr, |$f:ident| $body:expr) => {
        match $t {
            $crate::proactor::op::Target::Fixed(i) if $env.files_native() => {
                let $f = io_uring::types::Fixed(i);
                $body
            }
            t => {
                let $f = io_uring::types::Fd($env.raw(t));
                $body
            }
        }
    };
}
pub(crate) use with_fd;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_carry_results_descriptors_and_events_exactly() {
        let code = || OpCode::Recv;
        for v in [0, 1, i32::MAX as u32, u32::MAX] {
            let Step::Done(r) = Step::ok(v) else {
                panic!("ok is Done")
            };
            assert_eq!(Step::outcome(r, code), Outcome::Ok(v));
        }
        for errno in [libc::EPERM, libc::EAGAIN, libc::ENOBUFS, 4095] {
            let Step::Done(r) = Step::err(errno) else {
                panic!("err is Done")
            };
            assert_eq!(
                Step::outcome(r, code),
                Outcome::Err(OpError {
                    op: OpCode::Recv,
                    errno
                })
            );
        }
        let io = std::io::Error::from_raw_os_error(libc::ECONNRESET);
        assert_eq!(Step::io(Err(io)), Step::err(libc::ECONNRESET));
        assert_eq!(Step::io(Ok(7)), Step::ok(7));
        for (fd, events) in [(-1, READABLE), (0, WRITABLE), (i32::MAX, u32::MAX)] {
            let Step::Wait(w) = Step::wait(fd, events) else {
                panic!("wait is Wait")
            };
            assert_eq!(Step::waiting(w), (fd, events));
        }
        assert_eq!(Step::more(u32::MAX), Step::More(u32::MAX as u64));
        // Two scalars: what lets it come back in registers.
        assert_eq!(std::mem::size_of::<Step>(), 16);
    }
}
