//! A message to another io_uring proactor: `IORING_OP_MSG_RING` (5.18+) posts a
//! completion straight into the target's ring, carrying the 64-bit payload (low half
//! in its user_data under the message tag, high half as its result). Submitted on the
//! sending proactor; a failure there (target ring disabled or gone) hands the payload
//! to the target's fallback queue (see `service::dispatch`), so it is not lost.

use std::os::fd::RawFd;
use std::sync::Arc;

use io_uring::{opcode, squeue, types};

use super::base::{EpollCx, Op, Step, UringCx};
use crate::proactor::message::{Mailbox, MSG_TAG};
use crate::proactor::op::{OpCode, OpError, Outcome, Resources};
use crate::proactor::service::Route;

pub(crate) struct MsgRing {
    pub(crate) to: Arc<Mailbox>,
    /// The target ring's descriptor (the mailbox keeps it open).
    pub(crate) ring: RawFd,
    pub(crate) data: u64,
}

impl Op for MsgRing {
    const CODE: OpCode = OpCode::MsgRing;
    fn into_resources(self) -> Resources {
        Route::MsgSent {
            to: self.to,
            data: self.data,
        }
        .res()
    }
    fn entry(&mut self, _cx: &mut UringCx<'_>) -> squeue::Entry {
        opcode::MsgRingData::new(
            types::Fd(self.ring),
            (self.data >> 32) as u32 as i32,
            MSG_TAG | (self.data & 0xffff_ffff),
            None,
        )
        .build()
    }
    fn epoll(&mut self, _cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        // Not used on epoll; the failure sends the payload by the fallback queue.
        Step::Done(Outcome::Err(OpError {
            op: Self::CODE,
            errno: libc::EOPNOTSUPP,
        }))
    }
}
