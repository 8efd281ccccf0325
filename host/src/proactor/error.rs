//! Typed errors: every failure carries the errno (where one exists) and what the
//! proactor was doing, so a log line says what to fix.

use std::fmt;

/// Which bounded queue refused a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// The kernel submission ring (io_uring SQ) had no free entries and could not be
    /// flushed from this thread.
    SubmissionRing,
    /// Every operation slot (`Options::max_in_flight`) is in use.
    OperationSlots,
    /// The target proactor holds `Options::message_capacity` undelivered messages
    /// ("target full"): retry once it has polled.
    Messages,
}

impl fmt::Display for QueueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueueKind::SubmissionRing => "submission ring",
            QueueKind::OperationSlots => "operation slots",
            QueueKind::Messages => "target message credits",
        })
    }
}

/// Renders an errno as `ENAME-ish text (errno N)`.
pub(crate) struct Errno(pub i32);

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (errno {})",
            std::io::Error::from_raw_os_error(self.0),
            self.0
        )
    }
}

/// Errors of the proactor API and failed operations.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The requested backend cannot be used in this process (kernel too old, blocked by
    /// seccomp or `kernel.io_uring_disabled`, memlock limit). Auto selection falls back.
    #[error("{backend} backend unavailable: {}; {hint}", Errno(*errno))]
    Unavailable {
        /// The backend that cannot be used (`io_uring` or `epoll`).
        backend: &'static str,
        /// The errno its setup returned.
        errno: i32,
        /// What to do about it.
        hint: &'static str,
    },

    /// A bounded queue is full. Retryable: poll (or wait for completions) and submit again.
    /// Nothing of the rejected submission was started.
    #[error("{queue} full ({capacity} entries): poll to drain completions, then retry")]
    SubmissionQueueFull {
        /// Which queue is full.
        queue: QueueKind,
        /// Its capacity in entries.
        capacity: u32,
    },

    /// A system call made by the proactor itself failed.
    #[error("{what} failed: {}", Errno(*errno))]
    Sys {
        /// The call that failed.
        what: &'static str,
        /// Its errno.
        errno: i32,
    },

    /// An operation completed with an error from the kernel (or the emulating syscall).
    #[error("{op} operation failed: {}", Errno(*errno))]
    Op {
        /// The operation's name.
        op: &'static str,
        /// The errno it completed with.
        errno: i32,
    },

    /// `poll` was called from a thread other than the one that polled first.
    #[error("poll called from a thread that does not own this proactor (the first thread to poll owns it)")]
    NotPollOwner,

    /// `poll` was entered while already running (from a completion callback, or a
    /// second thread racing the owner).
    #[error("poll is already running on this proactor (re-entrant poll from a callback?)")]
    PollBusy,

    /// The call is not allowed in the current state (e.g. another proactor owns the
    /// process's signals).
    #[error("failed precondition: {0}")]
    FailedPrecondition(&'static str),

    /// An argument was rejected before anything was submitted.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

debug_as_display!(Error);

impl Error {
    /// Whether retrying the same call later can succeed (the queue-full case).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::SubmissionQueueFull { .. })
    }

    /// The errno carried by this error, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Unavailable { errno, .. }
            | Error::Sys { errno, .. }
            | Error::Op { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    pub(crate) fn sys(what: &'static str, e: std::io::Error) -> Error {
        Error::Sys {
            what,
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}

/// Result alias of the proactor API.
pub type Result<T, E = Error> = std::result::Result<T, E>;
