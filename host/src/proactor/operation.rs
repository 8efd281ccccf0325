//! What is submitted: [`Operation`] (owns its resources) and [`SimpleOp`] (owns
//! nothing, submitted by reference).

use std::ffi::CString;
use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

use super::buffers::FixedBuf;
use super::net::SockAddr;
use super::op::{Deadline, Target, TimerSpec};
use super::ops::{self, OpKind};
use super::semaphore::Semaphore;
use super::sync::{Event, Notification};

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

    /// One of the proactor's own operations (its completion is routed internally).
    pub(crate) fn internal(kind: OpKind) -> Operation {
        Operation::new(kind)
    }

    /// Sets the value reported in [`Completion::user_data`](super::Completion::user_data).
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
        Operation::new(OpKind::Nop(ops::nop::Nop))
    }

    /// Completes with `Ok(0)` after `d`. `IORING_OP_TIMEOUT` (5.4+) / timerfd.
    pub fn timer(d: Duration) -> Operation {
        Operation::new(OpKind::Timer(ops::timer::Timer(TimerSpec::After(d))))
    }

    /// Completes with `Ok(0)` at `deadline`. `IORING_OP_TIMEOUT` with `IORING_TIMEOUT_ABS`
    /// (5.4+) / timerfd `TFD_TIMER_ABSTIME`.
    pub fn timer_at(deadline: Deadline) -> Operation {
        Operation::new(OpKind::Timer(ops::timer::Timer(TimerSpec::At(deadline))))
    }

    /// Completes (with the poll mask) once `event` is set; does not reset it.
    /// `IORING_OP_POLL_ADD` (5.1+) / epoll.
    pub fn event_wait(event: &Event) -> Operation {
        Operation::new(OpKind::EventWait(ops::event_wait::EventWait(event.clone())))
    }

    /// Completes with `Ok(0)` once the notification's epoch differs from `token`
    /// (at once if it already does). `IORING_OP_FUTEX_WAIT` (6.7+) or emulated.
    pub fn notification_wait(n: &Notification, token: u32) -> Operation {
        Operation::new(OpKind::NotificationWait(
            ops::notification_wait::NotificationWait {
                n: n.clone(),
                token,
                route: None,
            },
        ))
    }

    /// Completes once `sem` reaches `value` (`Ok(0)`), or with the errno of its
    /// failure (`Outcome::Err`, op [`OpCode::SemaphoreWait`](super::OpCode)); the
    /// semaphore comes back in [`Resources::Semaphore`](super::Resources). A
    /// user-space wait on every backend (64-bit values have no futex); as a future
    /// through `submit_future`. Raw, future or in an emulated linked sequence.
    pub fn semaphore_wait(sem: &Semaphore, value: u64) -> Operation {
        Operation::new(OpKind::SemaphoreWait(ops::semaphore_wait::SemaphoreWait {
            waits: ops::semaphore_wait::Waits::One(sem.clone(), value),
            route: None,
        }))
    }

    /// Completes (`Ok(0)`) once every semaphore reached its value, or with the error
    /// of the first failed one found. An empty list is refused (`InvalidArgument`).
    pub fn semaphore_wait_all(waits: Vec<(Semaphore, u64)>) -> Operation {
        Operation::new(OpKind::SemaphoreWait(ops::semaphore_wait::SemaphoreWait {
            waits: ops::semaphore_wait::Waits::Many {
                list: waits,
                all: true,
            },
            route: None,
        }))
    }

    /// Completes once any semaphore reached its value, with `Ok(index)` of the first
    /// such in the list; fails only when every semaphore failed (with the first
    /// one's errno).
    pub fn semaphore_wait_any(waits: Vec<(Semaphore, u64)>) -> Operation {
        Operation::new(OpKind::SemaphoreWait(ops::semaphore_wait::SemaphoreWait {
            waits: ops::semaphore_wait::Waits::Many {
                list: waits,
                all: false,
            },
            route: None,
        }))
    }

    /// Sets `event` from the kernel side (`IORING_OP_WRITE` of 1 to its eventfd; on
    /// epoll the same write by the poll thread), so that it can follow another
    /// operation in a linked sequence. Completes with `Ok(8)`.
    pub fn event_signal(event: &Event) -> Operation {
        Operation::new(OpKind::EventSignal(ops::event_signal::EventSignal {
            event: event.clone(),
            one: 1,
            route: None,
        }))
    }

    /// `openat(2)` relative to `dir` (`libc::AT_FDCWD` for the working directory);
    /// completes with the new descriptor, which the caller then owns. `O_CLOEXEC` is
    /// always added. `IORING_OP_OPENAT` (5.6+).
    pub fn open_at(dir: RawFd, path: CString, flags: i32, mode: u32) -> Operation {
        Operation::new(OpKind::Open(ops::open::Open {
            dir,
            path,
            flags: flags | libc::O_CLOEXEC,
            mode,
        }))
    }

    /// `pread(2)` of `buf.len()` bytes at `offset`; completes with the byte count and
    /// returns `buf`. `IORING_OP_READ` (5.6+).
    pub fn read_at(fd: impl Into<Target>, buf: Vec<u8>, offset: u64) -> Operation {
        Operation::new(OpKind::Read(ops::read::Read {
            fd: fd.into(),
            buf,
            offset,
        }))
    }

    /// `pwrite(2)` of `buf` at `offset`. `IORING_OP_WRITE` (5.6+).
    pub fn write_at(fd: impl Into<Target>, buf: Vec<u8>, offset: u64) -> Operation {
        Operation::new(OpKind::Write(ops::write::Write {
            fd: fd.into(),
            buf,
            offset,
        }))
    }

    /// `preadv(2)` into `bufs` (each filled to its `len()`). `IORING_OP_READV` (5.1+).
    pub fn readv_at(fd: impl Into<Target>, bufs: Vec<Vec<u8>>, offset: u64) -> Operation {
        Operation::new(OpKind::Readv(ops::readv::Readv {
            fd: fd.into(),
            bufs,
            offset,
        }))
    }

    /// `pwritev(2)` of `bufs`. `IORING_OP_WRITEV` (5.1+).
    pub fn writev_at(fd: impl Into<Target>, bufs: Vec<Vec<u8>>, offset: u64) -> Operation {
        Operation::new(OpKind::Writev(ops::writev::Writev {
            fd: fd.into(),
            bufs,
            offset,
        }))
    }

    /// Reads `len` bytes at `offset` into the start of a registered buffer.
    /// `IORING_OP_READ_FIXED` (5.1+); emulated with `pread`.
    pub fn read_fixed(fd: impl Into<Target>, buf: FixedBuf, offset: u64, len: u32) -> Operation {
        Operation::new(OpKind::ReadFixed(ops::read_fixed::ReadFixed {
            fd: fd.into(),
            buf,
            offset,
            len,
        }))
    }

    /// Writes the first `len` bytes of a registered buffer at `offset`.
    /// `IORING_OP_WRITE_FIXED` (5.1+); emulated with `pwrite`.
    pub fn write_fixed(fd: impl Into<Target>, buf: FixedBuf, offset: u64, len: u32) -> Operation {
        Operation::new(OpKind::WriteFixed(ops::write_fixed::WriteFixed {
            fd: fd.into(),
            buf,
            offset,
            len,
        }))
    }

    /// `fsync(2)` (or `fdatasync(2)`). `IORING_OP_FSYNC` (5.1+).
    pub fn fsync(fd: impl Into<Target>, datasync: bool) -> Operation {
        Operation::new(OpKind::Fsync(ops::fsync::Fsync {
            fd: fd.into(),
            datasync,
        }))
    }

    /// Accepts a connection on a listening socket; completes with the new socket's
    /// descriptor (non-blocking, close-on-exec), which the caller then owns (e.g.
    /// `OwnedFd::from_raw_fd`). `IORING_OP_ACCEPT` (5.5+) / epoll + `accept4`.
    pub fn accept(listener: impl Into<Target>) -> Operation {
        Operation::new(OpKind::Accept(ops::accept::Accept {
            fd: listener.into(),
            multishot: false,
        }))
    }

    /// Accepts connections until cancelled or an error ends it: one completion per
    /// connection, each with `more` set and a new descriptor the caller owns; the
    /// completion with `more == false` ends the operation (`Cancelled`, an error, or a
    /// last connection). Raw completions only (not with `submit_future`, not in a
    /// linked sequence). See [`Capability::Multishot`](super::Capability::Multishot).
    pub fn accept_multishot(listener: impl Into<Target>) -> Operation {
        Operation::new(OpKind::Accept(ops::accept::Accept {
            fd: listener.into(),
            multishot: true,
        }))
    }

    /// Connects a socket to `addr`; completes with `Ok(0)`. The socket must be
    /// non-blocking (see [`Socket`](super::net::Socket)). `IORING_OP_CONNECT` (5.5+) /
    /// epoll + `SO_ERROR`.
    pub fn connect(socket: impl Into<Target>, addr: impl Into<SockAddr>) -> Operation {
        Operation::new(OpKind::Connect(ops::connect::Connect {
            fd: socket.into(),
            addr: Box::new(addr.into()),
            timeout_ns: 0,
        }))
    }

    /// [`connect`](Operation::connect) that gives up after `timeout`, measured from
    /// submission: it then completes with `ETIMEDOUT` (an `OpError`), never with
    /// `Cancelled`. io_uring: `IORING_OP_LINK_TIMEOUT` linked after the connect;
    /// otherwise the poll loop cancels it at its deadline
    /// ([`Capability::OperationTimeouts`](super::Capability::OperationTimeouts)). Not
    /// allowed in a linked sequence.
    pub fn connect_timeout(
        socket: impl Into<Target>,
        addr: impl Into<SockAddr>,
        timeout: Duration,
    ) -> Operation {
        Operation::new(OpKind::Connect(ops::connect::Connect {
            fd: socket.into(),
            addr: Box::new(addr.into()),
            timeout_ns: timeout_ns(timeout),
        }))
    }

    /// Receives up to `buf.len()` bytes; completes with the count (0: the peer closed
    /// its side) and returns `buf`. `IORING_OP_RECV` (5.6+) / epoll + `recv`.
    pub fn recv(socket: impl Into<Target>, buf: Vec<u8>) -> Operation {
        Operation::new(OpKind::Recv(ops::recv::Recv {
            fd: socket.into(),
            buf,
            timeout_ns: 0,
        }))
    }

    /// [`recv`](Operation::recv) that gives up after `timeout` with no data, measured
    /// from submission: it then completes with `ETIMEDOUT` and returns `buf`. Same
    /// mechanism and rules as [`connect_timeout`](Operation::connect_timeout).
    pub fn recv_timeout(socket: impl Into<Target>, buf: Vec<u8>, timeout: Duration) -> Operation {
        Operation::new(OpKind::Recv(ops::recv::Recv {
            fd: socket.into(),
            buf,
            timeout_ns: timeout_ns(timeout),
        }))
    }

    /// Receives chunk after chunk into buffers picked from `ring`: one completion per
    /// chunk with `more` set and the bytes as a [`RingBuf`](super::RingBuf)
    /// (`Resources::into_leased`), which goes back to the group when dropped. Ends
    /// (`more == false`) with `Ok(0)` at end of stream, an error, `Cancelled`, or
    /// `ENOBUFS` when data arrives and no buffer is free (drop leased buffers, then
    /// submit again; the data waits); on io_uring also with `EAGAIN` if the kernel
    /// stopped it after a chunk. Raw completions only. See [`Capability::Multishot`](super::Capability::Multishot).
    pub fn recv_multishot(socket: impl Into<Target>, ring: &super::BufRing) -> Operation {
        Operation::new(OpKind::RecvMultishot(ops::recv_multishot::RecvMultishot {
            fd: socket.into(),
            ring: ring.inner.clone(),
            cur: None,
        }))
    }

    /// Receives one message into `buf`; completes with the count and returns `buf`
    /// with the sender's address ([`Resources::into_msg`](super::Resources::into_msg)).
    /// A datagram longer than `buf` is truncated. `IORING_OP_RECVMSG` (5.3+) / epoll +
    /// `recvmsg`.
    pub fn recvmsg(socket: impl Into<Target>, buf: Vec<u8>) -> Operation {
        Operation::new(OpKind::Recvmsg(ops::recvmsg::Recvmsg {
            fd: socket.into(),
            buf,
            msg: ops::recvmsg::MsgHdr::new(),
        }))
    }

    /// Sends `buf` as one message to `to` (an unconnected datagram socket), or to the
    /// connected peer with `None`; the count sent is the result and `buf` comes back.
    /// Never raises `SIGPIPE`. `IORING_OP_SENDMSG` (5.3+) / epoll + `sendmsg`.
    pub fn sendmsg(socket: impl Into<Target>, buf: Vec<u8>, to: Option<SockAddr>) -> Operation {
        Operation::new(OpKind::Sendmsg(ops::sendmsg::Sendmsg {
            fd: socket.into(),
            buf,
            to: to.map(Box::new),
            msg: ops::recvmsg::MsgHdr::new(),
        }))
    }

    /// Sends `buf` (the count sent is the result; it may be short) and returns it.
    /// Never raises `SIGPIPE` (`MSG_NOSIGNAL`). `IORING_OP_SEND` (5.6+) / epoll + `send`.
    pub fn send(socket: impl Into<Target>, buf: Vec<u8>) -> Operation {
        Operation::new(OpKind::Send(ops::send::Send {
            fd: socket.into(),
            buf,
        }))
    }

    /// Sends `buf` without copying it where the kernel can (`IORING_OP_SEND_ZC`,
    /// 6.0+): the operation holds `buf` until the kernel's notification says its pages
    /// are no longer read, then completes once with the count sent (it may be short)
    /// and `buf`. Never raises `SIGPIPE`. Cancel-safe like every operation: a
    /// cancellation after the data went out still waits for the notification and
    /// reports the count. Emulated with a plain send (see
    /// [`Capability::ZeroCopySend`](super::Capability::ZeroCopySend)).
    pub fn send_zc(socket: impl Into<Target>, buf: Vec<u8>) -> Operation {
        Operation::new(OpKind::SendZc(ops::send_zc::SendZc {
            fd: socket.into(),
            buf,
            result: None,
            plain: false,
        }))
    }

    /// Receives up to `len` bytes into a leased registered buffer (see
    /// [`Proactor::lease_buffer`](super::Proactor::lease_buffer)); completes with the
    /// count (0: the peer closed its side) and returns the lease, which goes back to
    /// the pool when dropped. `IORING_OP_READ_FIXED` on the socket where
    /// [`Capability::RegisteredBuffers`](super::Capability::RegisteredBuffers) is
    /// native; a plain recv into the same memory otherwise.
    pub fn recv_fixed(socket: impl Into<Target>, buf: FixedBuf, len: u32) -> Operation {
        Operation::new(OpKind::RecvFixed(ops::recv_fixed::RecvFixed {
            fd: socket.into(),
            buf,
            len,
        }))
    }

    /// Shuts down one or both directions of a connection. `IORING_OP_SHUTDOWN` (5.11+).
    pub fn shutdown(socket: impl Into<Target>, how: std::net::Shutdown) -> Operation {
        Operation::new(OpKind::Shutdown(ops::shutdown::Shutdown {
            fd: socket.into(),
            how,
        }))
    }

    /// `close(2)`, taking ownership of `fd`. If the close never runs (cancelled before
    /// it started), the descriptor comes back in [`Resources::Fd`](super::Resources::Fd). `IORING_OP_CLOSE` (5.6+).
    pub fn close(fd: OwnedFd) -> Operation {
        Operation::new(OpKind::Close(ops::close::Close { fd: Some(fd) }))
    }
}

/// A timeout in nanoseconds, at least 1 (0 means "none").
fn timeout_ns(d: Duration) -> u64 {
    d.as_nanos().clamp(1, u64::MAX as u128) as u64
}

/// An operation that owns nothing (no buffer, path, descriptor or handle): `Copy`,
/// submitted by reference with [`Proactor::submit_simple`](super::Proactor::submit_simple),
/// which builds its slot and its submission entry in place instead of moving an
/// [`Operation`] in. Its completion carries [`Resources::None`](super::Resources::None). Any `SimpleOp` also
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

    /// Sets the value reported in [`Completion::user_data`](super::Completion::user_data).
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
            SimpleKind::Nop => OpKind::Nop(ops::nop::Nop),
            SimpleKind::Timer(t) => OpKind::Timer(ops::timer::Timer(t)),
            SimpleKind::Fsync { fd, datasync } => OpKind::Fsync(ops::fsync::Fsync { fd, datasync }),
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
