//! Zero-copy send: like `send`, but the kernel sends from the buffer's own pages.
//! `IORING_OP_SEND_ZC` posts two completions: the result (`IORING_CQE_F_MORE` set)
//! and, once the kernel no longer reads the pages, a notification
//! (`IORING_CQE_F_NOTIF`). The operation keeps the buffer until the notification and
//! then completes once, with the result and the buffer; a result without `F_MORE`
//! (an early failure) ends it at once. A socket the kernel cannot send from without
//! copying (`EOPNOTSUPP`: Unix sockets) is sent to with a plain send instead, so
//! every socket type behaves alike. Emulated (capability masked, or epoll): a
//! plain send, whose completion hands the buffer back the same way.

use io_uring::{cqueue, opcode, squeue};

use super::base::{with_fd, Env, EpollCx, Op, Step, UringCx};
use super::send::send_now;
use crate::proactor::caps::Capability;
use crate::proactor::error::Result;
use crate::proactor::op::{OpCode, Outcome, Resources, Target};

pub(crate) struct SendZc {
    pub(crate) fd: Target,
    pub(crate) buf: Vec<u8>,
    /// The result, kept while the notification is awaited.
    pub(crate) result: Option<Outcome>,
    /// Sent with a plain send (the socket refused zero-copy).
    pub(crate) plain: bool,
}

/// What one completion of a zero-copy send means.
pub(crate) enum ZcStep {
    /// The operation ends with this outcome.
    End(Outcome),
    /// The result arrived; the notification follows.
    Wait,
    /// The notification arrived: the operation ends with the kept result.
    Notified(Outcome),
    /// The socket refused zero-copy: start again as a plain send.
    Plain,
}

fn refused(o: &Outcome) -> bool {
    matches!(o, Outcome::Err(e) if e.errno == libc::EOPNOTSUPP)
}

impl SendZc {
    /// Classifies a completion (`outcome` mapped from its result, `flags` its CQE flags).
    pub(crate) fn reap(&mut self, outcome: Outcome, flags: u32) -> ZcStep {
        if cqueue::notif(flags) {
            // The notification's own result carries nothing for the caller.
            let o = self.result.take().unwrap_or(outcome);
            if refused(&o) && !self.plain {
                self.plain = true;
                return ZcStep::Plain;
            }
            return ZcStep::Notified(o);
        }
        if cqueue::more(flags) {
            self.result = Some(outcome);
            return ZcStep::Wait;
        }
        if refused(&outcome) && !self.plain {
            self.plain = true;
            return ZcStep::Plain;
        }
        ZcStep::End(outcome)
    }
}

impl Op for SendZc {
    const CODE: OpCode = OpCode::SendZc;
    fn validate(&self, env: &Env<'_>) -> Result<()> {
        env.check(self.fd)
    }
    fn expected_len(&self) -> Option<usize> {
        Some(self.buf.len())
    }
    fn many_completions(&self) -> bool {
        true
    }
    fn into_resources(self) -> Resources {
        Resources::Buf(self.buf)
    }
    fn entry(&mut self, cx: &mut UringCx<'_>) -> squeue::Entry {
        let (ptr, len) = (self.buf.as_ptr(), self.buf.len() as u32);
        if cx.env.caps.is_native(Capability::ZeroCopySend) && !self.plain {
            with_fd!(cx.env, self.fd, |f| opcode::SendZc::new(f, ptr, len)
                .flags(libc::MSG_NOSIGNAL)
                .build())
        } else {
            with_fd!(cx.env, self.fd, |f| opcode::Send::new(f, ptr, len)
                .flags(libc::MSG_NOSIGNAL)
                .build())
        }
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        send_now(Self::CODE, cx, self.fd, &self.buf)
    }
}
