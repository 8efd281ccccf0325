//! Event wait: completes with the poll mask once the eventfd is readable.
//! `IORING_OP_POLL_ADD`; on epoll a readiness wait.

use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};

use super::base::{EpollCx, Op, Step, UringCx, READABLE};
use crate::proactor::op::{OpCode, Resources};
use crate::proactor::sync::Event;

pub(crate) struct EventWait(pub(crate) Event);

impl Op for EventWait {
    const CODE: OpCode = OpCode::EventWait;
    fn into_resources(self) -> Resources {
        Resources::Event(self.0)
    }
    fn entry(&mut self, _cx: &mut UringCx<'_>) -> squeue::Entry {
        opcode::PollAdd::new(types::Fd(self.0.as_raw_fd()), libc::POLLIN as u32).build()
    }
    fn epoll(&mut self, _cx: &mut EpollCx<'_>, ready: bool) -> Step {
        if ready {
            Step::ok(libc::POLLIN as u32)
        } else {
            Step::wait(self.0.as_raw_fd(), READABLE)
        }
    }
}
