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
}

/// Readiness interest (epoll event bits).
pub(crate) const READABLE: u32 = libc::EPOLLIN as u32;
pub(crate) const WRITABLE: u32 = libc::EPOLLOUT as u32;

/// What an operation asks of the epoll driver.
pub(crate) enum Step {
    /// Finished with this outcome.
    Done(Outcome),
    /// Try again when `fd` is ready for `events` (or reports an error or hang-up).
    Wait { fd: RawFd, events: u32 },
    /// Finish with `Ok(0)` at this CLOCK_MONOTONIC instant (nanoseconds).
    Timer(u64),
    /// A multishot result that does not end the operation: deliver it and call again
    /// (with `ready` true).
    More(Outcome, Resources),
}

impl Step {
    pub(crate) fn io(code: OpCode, r: std::io::Result<usize>) -> Step {
        Step::Done(match r {
            Ok(n) => Outcome::Ok(n as u32),
            Err(e) => Outcome::Err(OpError {
                op: code,
                errno: e.raw_os_error().unwrap_or(libc::EIO),
            }),
        })
    }
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
