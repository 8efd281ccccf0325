//! Operations, their resources, and completions.
//!
//! An [`Operation`] owns everything the kernel may touch while it runs (buffers, the
//! path of an open, the event or notification it waits on). Submitting moves it into
//! the proactor; the same resources come back in the [`Completion`]. Nothing is freed
//! while the kernel can still use it, whether the operation succeeds, fails, is
//! cancelled, or its future is dropped.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::buffers::FixedBuf;
use super::bufring::RingBuf;
use super::error::{Errno, Error};
use super::net::SockAddr;
use super::semaphore::Semaphore;
use super::service::Internal;
use super::sync::{Event, Notification};
use super::sys;

/// Identifies a submitted operation until its completion is delivered. Slots are
/// reused, but each reuse bumps a generation, so a stale id is simply "not found".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpId(pub(crate) u64);

/// An id no operation ever has (generations start at 1 and skip 0 when they wrap):
/// for preallocating arrays of ids, e.g. for [`Proactor::submit_simple`](super::Proactor::submit_simple).
impl Default for OpId {
    fn default() -> OpId {
        OpId(0)
    }
}

impl OpId {
    pub(crate) fn new(index: u32, gen: u32) -> OpId {
        OpId(((gen as u64) << 32) | index as u64)
    }
    pub(crate) fn index(self) -> u32 {
        self.0 as u32
    }
    pub(crate) fn gen(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// A file argument: a plain descriptor or an index into [`Proactor::register_files`](super::Proactor::register_files).
///
/// A plain descriptor must stay open until the operation completes (the proactor does
/// not own it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A raw descriptor.
    Fd(RawFd),
    /// A registered ("fixed") file.
    Fixed(u32),
}

impl From<RawFd> for Target {
    fn from(fd: RawFd) -> Target {
        Target::Fd(fd)
    }
}

impl<T: AsRawFd> From<&T> for Target {
    fn from(f: &T) -> Target {
        Target::Fd(f.as_raw_fd())
    }
}

/// A point on CLOCK_MONOTONIC (the clock of io_uring timeouts and timerfd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(u64);

impl Deadline {
    /// Now.
    pub fn now() -> Deadline {
        Deadline(sys::monotonic_ns())
    }
    /// `d` from now.
    pub fn after(d: Duration) -> Deadline {
        Deadline::now().plus(d)
    }
    /// This deadline moved later by `d`.
    pub fn plus(self, d: Duration) -> Deadline {
        Deadline(
            self.0
                .saturating_add(d.as_nanos().min(u64::MAX as u128) as u64),
        )
    }
    /// Nanoseconds since the clock's origin.
    pub fn as_nanos(self) -> u64 {
        self.0
    }
    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Deadline) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// When a timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerSpec {
    /// After a duration measured from submission.
    After(Duration),
    /// At an absolute CLOCK_MONOTONIC deadline (a deadline in the past fires at once).
    At(Deadline),
}

/// Which kind of operation (in errors and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpCode {
    /// A no-op (`Operation::nop`).
    Nop,
    /// A timer (`Operation::timer`).
    Timer,
    /// A wait on an [`Event`](super::Event).
    EventWait,
    /// A wait on a [`Notification`](super::Notification).
    NotificationWait,
    /// An `openat`.
    Open,
    /// A read into an owned buffer.
    Read,
    /// A write from an owned buffer.
    Write,
    /// A vectored read.
    Readv,
    /// A vectored write.
    Writev,
    /// A read into a registered buffer.
    ReadFixed,
    /// A write from a registered buffer.
    WriteFixed,
    /// An `fsync`.
    Fsync,
    /// A `close`.
    Close,
    /// An `accept` (single or multishot).
    Accept,
    /// A `connect`.
    Connect,
    /// A `recv` into an owned buffer.
    Recv,
    /// A `send` from an owned buffer.
    Send,
    /// A socket `shutdown`.
    Shutdown,
    /// A `recvmsg`.
    Recvmsg,
    /// A `sendmsg`.
    Sendmsg,
    /// A multishot `recv` into a provided-buffer ring.
    RecvMultishot,
    /// A zero-copy `send`.
    SendZc,
    /// A `recv` into a registered buffer.
    RecvFixed,
    /// A wait on one or more semaphores.
    SemaphoreWait,
    /// The signal of an [`Event`](super::Event) from the kernel side (a relay's sink in a linked sequence).
    EventSignal,
    /// Readiness of a descriptor for the proactor's own consumers (event sources, relays, signals, messages,
    /// fence imports).
    PollSource,
    /// A message to another proactor (`IORING_OP_MSG_RING` or its emulation).
    MsgRing,
}

impl OpCode {
    /// Lower-case name, as in the docs.
    pub fn name(self) -> &'static str {
        match self {
            OpCode::Nop => "nop",
            OpCode::Timer => "timer",
            OpCode::EventWait => "event wait",
            OpCode::NotificationWait => "notification wait",
            OpCode::Open => "open",
            OpCode::Read => "read",
            OpCode::Write => "write",
            OpCode::Readv => "readv",
            OpCode::Writev => "writev",
            OpCode::ReadFixed => "read_fixed",
            OpCode::WriteFixed => "write_fixed",
            OpCode::Fsync => "fsync",
            OpCode::Close => "close",
            OpCode::Accept => "accept",
            OpCode::Connect => "connect",
            OpCode::Recv => "recv",
            OpCode::Send => "send",
            OpCode::Shutdown => "shutdown",
            OpCode::Recvmsg => "recvmsg",
            OpCode::Sendmsg => "sendmsg",
            OpCode::RecvMultishot => "multishot recv",
            OpCode::SendZc => "zero-copy send",
            OpCode::RecvFixed => "recv_fixed",
            OpCode::SemaphoreWait => "semaphore wait",
            OpCode::EventSignal => "event signal",
            OpCode::PollSource => "event source poll",
            OpCode::MsgRing => "message",
        }
    }
}

/// Why an operation failed: which operation and the errno the kernel (or the
/// emulating syscall) returned. Eight bytes, so completions stay small; converts into
/// [`Error::Op`].
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} operation failed: {}", op.name(), Errno(*errno))]
pub struct OpError {
    /// The operation.
    pub op: OpCode,
    /// The errno.
    pub errno: i32,
}

debug_as_display!(OpError);

impl From<OpError> for Error {
    fn from(e: OpError) -> Error {
        Error::Op {
            op: e.op.name(),
            errno: e.errno,
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Success with the operation's value (bytes transferred, new descriptor, poll mask, 0).
    Ok(u32),
    /// The operation failed.
    Err(OpError),
    /// The operation was cancelled (by `cancel`, a dropped future, teardown, or a failed
    /// earlier step of its linked sequence). It did not take effect.
    Cancelled,
}

impl Outcome {
    /// The success value, if any.
    pub fn ok(&self) -> Option<u32> {
        match self {
            Outcome::Ok(v) => Some(*v),
            _ => None,
        }
    }
    /// Whether the outcome is `Cancelled`.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Outcome::Cancelled)
    }
    /// Converts to a `Result`, mapping `Cancelled` to `Error::Op { errno: ECANCELED }`.
    pub fn into_result(self, op: &'static str) -> Result<u32, Error> {
        match self {
            Outcome::Ok(v) => Ok(v),
            Outcome::Err(e) => Err(e.into()),
            Outcome::Cancelled => Err(Error::Op {
                op,
                errno: libc::ECANCELED,
            }),
        }
    }
}

/// What an operation owned, handed back with its completion.
#[derive(Debug)]
#[non_exhaustive]
pub enum Resources {
    /// Nothing.
    None,
    /// The buffer of a read or write.
    Buf(Vec<u8>),
    /// The buffers of a readv or writev.
    Bufs(Vec<Vec<u8>>),
    /// The registered buffer of a fixed read or write.
    Fixed(FixedBuf),
    /// The path of an open.
    Path(CString),
    /// The descriptor of a close that never ran.
    Fd(OwnedFd),
    /// The event of an event wait.
    Event(Event),
    /// The notification of a notification wait.
    Notification(Notification),
    /// A buffer leased from a provided-buffer group (multishot recv).
    Leased(RingBuf),
    /// The semaphore of a semaphore wait.
    Semaphore(Semaphore),
    /// The semaphores (and values) of a wait on several.
    Semaphores(Vec<(Semaphore, u64)>),
    /// A completion of one of the proactor's own operations (event sources, relays,
    /// signals, messages, fence imports); never handed to a `poll` closure.
    #[doc(hidden)]
    Internal(Internal),
    /// The buffer of a recvmsg and the sender's address (`None` when the kernel
    /// reported none, e.g. an unnamed Unix socket or a failed receive).
    Msg {
        /// The buffer.
        buf: Vec<u8>,
        /// The sender's address, boxed so that every `Completion` stays small (an
        /// inline socket address would triple the size of all of them).
        from: Option<Box<SockAddr>>,
    },
}

impl Resources {
    /// The buffer of a read or write.
    pub fn into_buf(self) -> Option<Vec<u8>> {
        match self {
            Resources::Buf(b) => Some(b),
            _ => None,
        }
    }
    /// The buffers of a readv or writev.
    pub fn into_bufs(self) -> Option<Vec<Vec<u8>>> {
        match self {
            Resources::Bufs(b) => Some(b),
            _ => None,
        }
    }
    /// The buffer and sender's address of a recvmsg.
    pub fn into_msg(self) -> Option<(Vec<u8>, Option<SockAddr>)> {
        match self {
            Resources::Msg { buf, from } => Some((buf, from.map(|a| *a))),
            _ => None,
        }
    }
    /// The leased buffer of a multishot recv.
    pub fn into_leased(self) -> Option<RingBuf> {
        match self {
            Resources::Leased(b) => Some(b),
            _ => None,
        }
    }
    /// The registered buffer of a fixed read or write.
    pub fn into_fixed(self) -> Option<FixedBuf> {
        match self {
            Resources::Fixed(b) => Some(b),
            _ => None,
        }
    }
}

/// A delivered completion: exactly one per submitted operation, except that a
/// multishot operation delivers any number with `more` set before its last one.
#[derive(Debug)]
pub struct Completion {
    /// The operation's id.
    pub id: OpId,
    /// The value set with [`Operation::user_data`](crate::proactor::Operation::user_data).
    pub user_data: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// What it owned.
    pub resources: Resources,
    /// Another completion of the same operation follows (a multishot operation that
    /// goes on); `false` on the completion that ends it.
    pub more: bool,
}

/// Answer of [`Proactor::cancel`](super::Proactor::cancel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelStatus {
    /// The operation is pending; its completion will be delivered exactly once, as
    /// `Cancelled` unless it finished first.
    Requested,
    /// No pending operation has this id (it already completed, or never existed).
    NotFound,
}
