//! Operation kinds. Each file holds one kind: what it checks at submission, the
//! io_uring entry it becomes, and what the epoll driver does with it, side by side.
//! [`OpKind`] is generated from the list at the end of this file; adding an operation
//! is a new file, a line in that list and a constructor on `Operation`.

use io_uring::squeue;

use std::sync::Weak;

use super::caps::{Capabilities, Capability};
use super::error::Result;
use super::op::{OpCode, Outcome, Resources};
use super::sync::{SoftWaiter, Subscriber};

pub(crate) mod base;

pub(crate) mod accept;
pub(crate) mod close;
pub(crate) mod connect;
pub(crate) mod event_signal;
pub(crate) mod event_wait;
pub(crate) mod fsync;
pub(crate) mod msg_ring;
pub(crate) mod nop;
pub(crate) mod notification_wait;
pub(crate) mod open;
pub(crate) mod poll_source;
pub(crate) mod read;
pub(crate) mod read_fixed;
pub(crate) mod readv;
pub(crate) mod recv;
pub(crate) mod recv_fixed;
pub(crate) mod recv_multishot;
pub(crate) mod recvmsg;
pub(crate) mod semaphore_wait;
pub(crate) mod send;
pub(crate) mod send_zc;
pub(crate) mod sendmsg;
pub(crate) mod shutdown;
pub(crate) mod timer;
pub(crate) mod write;
pub(crate) mod write_fixed;
pub(crate) mod writev;

pub(crate) use base::{error_outcome, Env, EpollCx, Op, Step, UringCx};

macro_rules! kinds {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// Every operation kind. An explicit tag (rather than a niche in some
        /// variant's field) makes every dispatch on the kind one load; a full word
        /// (no larger than a byte tag here: the fields that follow are 8-aligned)
        /// keeps the payload aligned, so an operation is copied in 8- and 16-byte
        /// pieces (a byte tag made the compiler copy the rest from offset 1, in
        /// pieces that a later whole-word read could not be forwarded from).
        #[repr(u64)]
        pub(crate) enum OpKind {
            $($variant($ty),)*
        }

        impl OpKind {
            pub(crate) fn code(&self) -> OpCode {
                match self { $(OpKind::$variant(_) => <$ty as Op>::CODE,)* }
            }
            /// Validation and what submission must know, in one dispatch.
            #[inline(always)]
            pub(crate) fn admit(&self, env: &Env<'_>) -> Result<Admit> {
                match self {
                    $(OpKind::$variant(o) => {
                        o.validate(env)?;
                        Ok(Admit { multishot: o.multishot(), timed: o.timeout_ns() != 0 })
                    })*
                }
            }
            pub(crate) fn expected_len(&self) -> Option<usize> {
                match self { $(OpKind::$variant(o) => o.expected_len(),)* }
            }
            /// Whether one operation may see several CQEs (multishot, zero-copy send).
            #[inline(always)]
            pub(crate) fn many_completions(&self) -> bool {
                match self { $(OpKind::$variant(o) => o.many_completions(),)* }
            }
            #[inline(always)]
            pub(crate) fn timeout_ns(&self) -> u64 {
                match self { $(OpKind::$variant(o) => o.timeout_ns(),)* }
            }
            #[inline(always)]
            pub(crate) fn owns_nothing(&self) -> bool {
                match self { $(OpKind::$variant(o) => o.owns_nothing(),)* }
            }
            #[inline]
            pub(crate) fn into_resources(self) -> Resources {
                match self { $(OpKind::$variant(o) => o.into_resources(),)* }
            }
            /// Builds the entry and hands it to `emit` from the kind's own branch, so
            /// each entry is built and copied straight out.
            #[inline(always)]
            pub(crate) fn with_entry<R>(
                &mut self,
                cx: &mut UringCx<'_>,
                emit: impl FnOnce(squeue::Entry) -> R,
            ) -> R {
                match self { $(OpKind::$variant(o) => emit(o.entry(cx)),)* }
            }
            #[inline(always)]
            pub(crate) fn queued(&mut self) {
                match self { $(OpKind::$variant(o) => o.queued(),)* }
            }
            pub(crate) fn cqe_error(&self, res: i32, cancelling: bool) -> Outcome {
                match self { $(OpKind::$variant(o) => o.cqe_error(res, cancelling),)* }
            }
            /// Inlined into the epoll driver's `run`, so that what a small
            /// operation (a nop) returns is known there instead of read back from
            /// memory.
            #[inline(always)]
            pub(crate) fn epoll(&mut self, cx: &mut EpollCx<'_>, ready: bool) -> Step {
                match self { $(OpKind::$variant(o) => o.epoll(cx, ready),)* }
            }
        }
    };
}

kinds! {
    Nop(nop::Nop),
    Timer(timer::Timer),
    EventWait(event_wait::EventWait),
    NotificationWait(notification_wait::NotificationWait),
    Open(open::Open),
    Read(read::Read),
    Write(write::Write),
    Readv(readv::Readv),
    Writev(writev::Writev),
    ReadFixed(read_fixed::ReadFixed),
    WriteFixed(write_fixed::WriteFixed),
    Fsync(fsync::Fsync),
    Close(close::Close),
    Accept(accept::Accept),
    Connect(connect::Connect),
    Recv(recv::Recv),
    Send(send::Send),
    Recvmsg(recvmsg::Recvmsg),
    Sendmsg(sendmsg::Sendmsg),
    RecvMultishot(recv_multishot::RecvMultishot),
    Shutdown(shutdown::Shutdown),
    SendZc(send_zc::SendZc),
    RecvFixed(recv_fixed::RecvFixed),
    SemaphoreWait(semaphore_wait::SemaphoreWait),
    EventSignal(event_signal::EventSignal),
    PollSource(poll_source::PollSource),
    MsgRing(msg_ring::MsgRing),
}

/// What submission must know about an operation besides its validity.
#[derive(Clone, Copy)]
pub(crate) struct Admit {
    /// Delivers several completions (raw, alone).
    pub(crate) multishot: bool,
    /// Carries a per-operation timeout (started on its own: two entries on io_uring).
    pub(crate) timed: bool,
}

impl OpKind {
    pub(crate) fn name(&self) -> &'static str {
        self.code().name()
    }

    /// Whether it runs as a user-space wait (subscribed to its object, completed by
    /// `soft_complete`) instead of in the driver: an emulated notification wait, and
    /// every semaphore wait.
    #[inline(always)]
    pub(crate) fn soft(&self, caps: Capabilities) -> bool {
        match self {
            OpKind::NotificationWait(_) => !caps.is_native(Capability::KernelNotificationWait),
            OpKind::SemaphoreWait(_) => true,
            _ => false,
        }
    }

    /// Whether it may be part of a kernel-linked sequence. A futex wait that finds the
    /// epoch already moved fails with `EAGAIN`, which would break a kernel link
    /// although it is a success here; a user-space wait is not in the kernel at all.
    pub(crate) fn kernel_linkable(&self, _caps: Capabilities) -> bool {
        !matches!(self, OpKind::NotificationWait(_) | OpKind::SemaphoreWait(_))
    }

    /// Subscribes a user-space wait; the outcome when it is already over.
    pub(crate) fn soft_subscribe(&self, sub: Subscriber) -> Option<Outcome> {
        match self {
            OpKind::NotificationWait(w) => (!w.n.subscribe(w.token, sub)).then_some(Outcome::Ok(0)),
            OpKind::SemaphoreWait(w) => w.subscribe(sub),
            _ => Some(error_outcome(self.code(), false, -libc::EINVAL)),
        }
    }

    /// Drops the subscriptions of a cancelled user-space wait.
    pub(crate) fn soft_unsubscribe(&self, key: u64, me: &Weak<dyn SoftWaiter>) {
        match self {
            OpKind::NotificationWait(w) => w.n.unsubscribe(key, me),
            OpKind::SemaphoreWait(w) => w.unsubscribe(key, me),
            _ => {}
        }
    }

    /// A subscription of this wait fired: its outcome if the wait is over.
    pub(crate) fn soft_check(&self, key: u64, me: &Weak<dyn SoftWaiter>) -> Option<Outcome> {
        match self {
            OpKind::SemaphoreWait(w) => w.on_signal(key, me),
            _ => Some(Outcome::Ok(0)),
        }
    }
}
