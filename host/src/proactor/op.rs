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
use super::error::{Errno, Error};
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

pub(crate) enum OpKind {
    Nop,
    Timer(TimerSpec),
    EventWait(Event),
    NotificationWait(Notification, u32),
    Open {
        dir: RawFd,
        path: CString,
        flags: i32,
        mode: u32,
    },
    Read {
        fd: Target,
        buf: Vec<u8>,
        offset: u64,
    },
    Write {
        fd: Target,
        buf: Vec<u8>,
        offset: u64,
    },
    Readv {
        fd: Target,
        bufs: Vec<Vec<u8>>,
        offset: u64,
    },
    Writev {
        fd: Target,
        bufs: Vec<Vec<u8>>,
        offset: u64,
    },
    ReadFixed {
        fd: Target,
        buf: FixedBuf,
        offset: u64,
        len: u32,
    },
    WriteFixed {
        fd: Target,
        buf: FixedBuf,
        offset: u64,
        len: u32,
    },
    Fsync {
        fd: Target,
        datasync: bool,
    },
    Close {
        fd: Option<OwnedFd>,
    },
}

impl OpKind {
    pub(crate) fn code(&self) -> OpCode {
        match self {
            OpKind::Nop => OpCode::Nop,
            OpKind::Timer(_) => OpCode::Timer,
            OpKind::EventWait(_) => OpCode::EventWait,
            OpKind::NotificationWait(..) => OpCode::NotificationWait,
            OpKind::Open { .. } => OpCode::Open,
            OpKind::Read { .. } => OpCode::Read,
            OpKind::Write { .. } => OpCode::Write,
            OpKind::Readv { .. } => OpCode::Readv,
            OpKind::Writev { .. } => OpCode::Writev,
            OpKind::ReadFixed { .. } => OpCode::ReadFixed,
            OpKind::WriteFixed { .. } => OpCode::WriteFixed,
            OpKind::Fsync { .. } => OpCode::Fsync,
            OpKind::Close { .. } => OpCode::Close,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.code().name()
    }

    /// Bytes a read or write asks for; a shorter transfer breaks a linked sequence
    /// (as io_uring does for linked reads and writes).
    pub(crate) fn expected_len(&self) -> Option<usize> {
        match self {
            OpKind::Read { buf, .. } | OpKind::Write { buf, .. } => Some(buf.len()),
            OpKind::Readv { bufs, .. } | OpKind::Writev { bufs, .. } => {
                Some(bufs.iter().map(Vec::len).sum())
            }
            OpKind::ReadFixed { len, .. } | OpKind::WriteFixed { len, .. } => Some(*len as usize),
            _ => None,
        }
    }

    /// Whether the op owns no resource (its completion hands back `Resources::None`
    /// and dropping it frees nothing).
    #[inline(always)]
    pub(crate) fn owns_nothing(&self) -> bool {
        matches!(
            self,
            OpKind::Nop | OpKind::Timer(_) | OpKind::Fsync { .. } | OpKind::Close { fd: None }
        )
    }

    #[inline]
    pub(crate) fn into_resources(self) -> Resources {
        match self {
            OpKind::Nop | OpKind::Timer(_) | OpKind::Fsync { .. } => Resources::None,
            OpKind::EventWait(e) => Resources::Event(e),
            OpKind::NotificationWait(n, _) => Resources::Notification(n),
            OpKind::Open { path, .. } => Resources::Path(path),
            OpKind::Read { buf, .. } | OpKind::Write { buf, .. } => Resources::Buf(buf),
            OpKind::Readv { bufs, .. } | OpKind::Writev { bufs, .. } => Resources::Bufs(bufs),
            OpKind::ReadFixed { buf, .. } | OpKind::WriteFixed { buf, .. } => Resources::Fixed(buf),
            OpKind::Close { fd: Some(fd) } => Resources::Fd(fd),
            OpKind::Close { fd: None } => Resources::None,
        }
    }
}

/// An operation ready to submit. Build one with the constructors below, optionally
/// tag it with [`user_data`](Operation::user_data) for the raw completion path.
pub struct Operation {
    pub(crate) kind: OpKind,
    pub(crate) user_data: u64,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("kind", &self.kind.name())
            .field("user_data", &self.user_data)
            .finish()
    }
}

impl Operation {
    fn new(kind: OpKind) -> Operation {
        Operation { kind, user_data: 0 }
    }

    /// Sets the value reported in [`Completion::user_data`].
    pub fn user_data(mut self, user_data: u64) -> Operation {
        self.user_data = user_data;
        self
    }

    /// The value set with [`user_data`](Operation::user_data).
    pub fn get_user_data(&self) -> u64 {
        self.user_data
    }

    /// Name of the operation kind (for logs).
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// Does nothing; completes with `Ok(0)`. `IORING_OP_NOP` (5.1+).
    pub fn nop() -> Operation {
        Operation::new(OpKind::Nop)
    }

    /// Completes with `Ok(0)` after `d`. `IORING_OP_TIMEOUT` (5.4+) / timerfd.
    pub fn timer(d: Duration) -> Operation {
        Operation::new(OpKind::Timer(TimerSpec::After(d)))
    }

    /// Completes with `Ok(0)` at `deadline`. `IORING_OP_TIMEOUT` with `IORING_TIMEOUT_ABS`
    /// (5.4+) / timerfd `TFD_TIMER_ABSTIME`.
    pub fn timer_at(deadline: Deadline) -> Operation {
        Operation::new(OpKind::Timer(TimerSpec::At(deadline)))
    }

    /// Completes (with the poll mask) once `event` is set; does not reset it.
    /// `IORING_OP_POLL_ADD` (5.1+) / epoll.
    pub fn event_wait(event: &Event) -> Operation {
        Operation::new(OpKind::EventWait(event.clone()))
    }

    /// Completes with `Ok(0)` once the notification's epoch differs from `token`
    /// (at once if it already does). `IORING_OP_FUTEX_WAIT` (6.7+) or emulated.
    pub fn notification_wait(n: &Notification, token: u32) -> Operation {
        Operation::new(OpKind::NotificationWait(n.clone(), token))
    }

    /// `openat(2)` relative to `dir` (`libc::AT_FDCWD` for the working directory);
    /// completes with the new descriptor, which the caller then owns. `O_CLOEXEC` is
    /// always added. `IORING_OP_OPENAT` (5.6+).
    pub fn open_at(dir: RawFd, path: CString, flags: i32, mode: u32) -> Operation {
        Operation::new(OpKind::Open {
            dir,
            path,
            flags: flags | libc::O_CLOEXEC,
            mode,
        })
    }

    /// `pread(2)` of `buf.len()` bytes at `offset`; completes with the byte count and
    /// returns `buf`. `IORING_OP_READ` (5.6+).
    pub fn read_at(fd: impl Into<Target>, buf: Vec<u8>, offset: u64) -> Operation {
        Operation::new(OpKind::Read {
            fd: fd.into(),
            buf,
            offset,
        })
    }

    /// `pwrite(2)` of `buf` at `offset`. `IORING_OP_WRITE` (5.6+).
    pub fn write_at(fd: impl Into<Target>, buf: Vec<u8>, offset: u64) -> Operation {
        Operation::new(OpKind::Write {
            fd: fd.into(),
            buf,
            offset,
        })
    }

    /// `preadv(2)` into `bufs` (each filled to its `len()`). `IORING_OP_READV` (5.1+).
    pub fn readv_at(fd: impl Into<Target>, bufs: Vec<Vec<u8>>, offset: u64) -> Operation {
        Operation::new(OpKind::Readv {
            fd: fd.into(),
            bufs,
            offset,
        })
    }

    /// `pwritev(2)` of `bufs`. `IORING_OP_WRITEV` (5.1+).
    pub fn writev_at(fd: impl Into<Target>, bufs: Vec<Vec<u8>>, offset: u64) -> Operation {
        Operation::new(OpKind::Writev {
            fd: fd.into(),
            bufs,
            offset,
        })
    }

    /// Reads `len` bytes at `offset` into the start of a registered buffer.
    /// `IORING_OP_READ_FIXED` (5.1+); emulated with `pread`.
    pub fn read_fixed(fd: impl Into<Target>, buf: FixedBuf, offset: u64, len: u32) -> Operation {
        Operation::new(OpKind::ReadFixed {
            fd: fd.into(),
            buf,
            offset,
            len,
        })
    }

    /// Writes the first `len` bytes of a registered buffer at `offset`.
    /// `IORING_OP_WRITE_FIXED` (5.1+); emulated with `pwrite`.
    pub fn write_fixed(fd: impl Into<Target>, buf: FixedBuf, offset: u64, len: u32) -> Operation {
        Operation::new(OpKind::WriteFixed {
            fd: fd.into(),
            buf,
            offset,
            len,
        })
    }

    /// `fsync(2)` (or `fdatasync(2)`). `IORING_OP_FSYNC` (5.1+).
    pub fn fsync(fd: impl Into<Target>, datasync: bool) -> Operation {
        Operation::new(OpKind::Fsync {
            fd: fd.into(),
            datasync,
        })
    }

    /// `close(2)`, taking ownership of `fd`. If the close never runs (cancelled before
    /// it started), the descriptor comes back in [`Resources::Fd`]. `IORING_OP_CLOSE` (5.6+).
    pub fn close(fd: OwnedFd) -> Operation {
        Operation::new(OpKind::Close { fd: Some(fd) })
    }
}

/// An operation that owns nothing (no buffer, path, descriptor or handle): `Copy`,
/// submitted by reference with [`Proactor::submit_simple`](super::Proactor::submit_simple),
/// which builds its slot and its submission entry in place instead of moving an
/// [`Operation`] in. Its completion carries [`Resources::None`]. Any `SimpleOp` also
/// converts into an `Operation` (for linked sequences, futures, `submit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimpleOp {
    pub(crate) kind: SimpleKind,
    pub(crate) user_data: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SimpleKind {
    Nop,
    Timer(TimerSpec),
    Fsync { fd: Target, datasync: bool },
}

impl SimpleOp {
    /// Like [`Operation::nop`].
    pub const fn nop() -> SimpleOp {
        SimpleOp {
            kind: SimpleKind::Nop,
            user_data: 0,
        }
    }

    /// Like [`Operation::timer`].
    pub const fn timer(d: Duration) -> SimpleOp {
        SimpleOp {
            kind: SimpleKind::Timer(TimerSpec::After(d)),
            user_data: 0,
        }
    }

    /// Like [`Operation::timer_at`].
    pub const fn timer_at(deadline: Deadline) -> SimpleOp {
        SimpleOp {
            kind: SimpleKind::Timer(TimerSpec::At(deadline)),
            user_data: 0,
        }
    }

    /// Like [`Operation::fsync`]; a plain descriptor must stay open until completion.
    pub fn fsync(fd: impl Into<Target>, datasync: bool) -> SimpleOp {
        SimpleOp {
            kind: SimpleKind::Fsync {
                fd: fd.into(),
                datasync,
            },
            user_data: 0,
        }
    }

    /// Sets the value reported in [`Completion::user_data`].
    pub const fn user_data(mut self, user_data: u64) -> SimpleOp {
        self.user_data = user_data;
        self
    }

    /// The value set with [`user_data`](SimpleOp::user_data).
    pub const fn get_user_data(&self) -> u64 {
        self.user_data
    }

    /// Name of the operation kind (for logs).
    pub fn name(&self) -> &'static str {
        OpKind::from(self.kind).name()
    }
}

impl From<SimpleKind> for OpKind {
    #[inline(always)]
    fn from(k: SimpleKind) -> OpKind {
        match k {
            SimpleKind::Nop => OpKind::Nop,
            SimpleKind::Timer(t) => OpKind::Timer(t),
            SimpleKind::Fsync { fd, datasync } => OpKind::Fsync { fd, datasync },
        }
    }
}

impl From<SimpleOp> for Operation {
    fn from(op: SimpleOp) -> Operation {
        Operation {
            kind: op.kind.into(),
            user_data: op.user_data,
        }
    }
}

/// Which kind of operation (in errors and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpCode {
    Nop,
    Timer,
    EventWait,
    NotificationWait,
    Open,
    Read,
    Write,
    Readv,
    Writev,
    ReadFixed,
    WriteFixed,
    Fsync,
    Close,
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
        }
    }
}

/// Why an operation failed: which operation and the errno the kernel (or the
/// emulating syscall) returned. Eight bytes, so completions stay small; converts into
/// [`Error::Op`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} operation failed: {}", op.name(), Errno(*errno))]
pub struct OpError {
    /// The operation.
    pub op: OpCode,
    /// The errno.
    pub errno: i32,
}

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
    /// The registered buffer of a fixed read or write.
    pub fn into_fixed(self) -> Option<FixedBuf> {
        match self {
            Resources::Fixed(b) => Some(b),
            _ => None,
        }
    }
}

/// A delivered completion: exactly one per submitted operation.
#[derive(Debug)]
pub struct Completion {
    /// The operation's id.
    pub id: OpId,
    /// The value set with [`Operation::user_data`].
    pub user_data: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// What it owned.
    pub resources: Resources,
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
