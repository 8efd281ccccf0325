//! A message to another io_uring proactor: `IORING_OP_MSG_RING` (5.18+) posts a
//! completion straight into the target's ring, carrying the 64-bit payload (low half
//! in its user_data under the message tag, high half as its result). Submitted on the
//! sending proactor; a failure there (target ring disabled or gone) hands the payload
//! to the target's fallback queue (see `service::dispatch`), so it is not lost; the
//! send's [`Outgoing`] record settles it exactly once, also when the sending proactor
//! is dropped first (see `message.rs`).

use std::sync::Arc;

use io_uring::{opcode, squeue, types};

use super::base::error_outcome;
use super::base::{EpollCx, Op, Step, UringCx};
use crate::proactor::message::{Outgoing, MSG_TAG};
use crate::proactor::op::{OpCode, Outcome, Resources};
use crate::proactor::service::Route;

pub(crate) struct MsgRing {
    /// The payload and its target (whose mailbox keeps the target ring open).
    pub(crate) out: Arc<Outgoing>,
}

impl Op for MsgRing {
    const CODE: OpCode = OpCode::MsgRing;
    fn into_resources(self) -> Resources {
        Route::MsgSent(self.out).res()
    }
    fn entry(&mut self, _cx: &mut UringCx<'_>) -> squeue::Entry {
        let data = self.out.data();
        // Sent natively only to a target with a ring; -1 (EBADF) otherwise.
        opcode::MsgRingData::new(
            types::Fd(self.out.ring().unwrap_or(-1)),
            (data >> 32) as u32 as i32,
            MSG_TAG | (data & 0xffff_ffff),
            None,
        )
        .build()
    }
    fn queued(&mut self) {
        self.out.pushed();
    }
    fn cqe_error(&self, res: i32, cancelling: bool) -> Outcome {
        self.out.refused();
        error_outcome(Self::CODE, cancelling, res)
    }
    fn epoll(&mut self, _cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        // Not used on epoll; the failure sends the payload by the fallback queue.
        Step::err(libc::EOPNOTSUPP)
    }
}
