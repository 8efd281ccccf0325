//! Event signal: sets an [`Event`] from the kernel side, so it can follow another
//! operation in a linked sequence (a relay's sink). `IORING_OP_WRITE` of 1 to the
//! eventfd; on epoll the same write, done by the poll thread.

use std::os::fd::{AsFd, AsRawFd};

use io_uring::{opcode, squeue, types};

use super::base::{EpollCx, Op, Step, UringCx};
use crate::proactor::op::{OpCode, Resources};
use crate::proactor::service::Route;
use crate::proactor::sync::Event;
use crate::proactor::sys;

pub(crate) struct EventSignal {
    pub(crate) event: Event,
    /// The 8 bytes the kernel writes (it reads them from here while the entry runs).
    pub(crate) one: u64,
    pub(crate) route: Option<Route>,
}

impl Op for EventSignal {
    const CODE: OpCode = OpCode::EventSignal;
    fn into_resources(self) -> Resources {
        match self.route {
            Some(r) => r.res(),
            None => Resources::Event(self.event),
        }
    }
    fn entry(&mut self, _cx: &mut UringCx<'_>) -> squeue::Entry {
        self.one = 1;
        opcode::Write::new(
            types::Fd(self.event.as_raw_fd()),
            (&self.one as *const u64).cast::<u8>(),
            8,
        )
        .offset(u64::MAX)
        .build()
    }
    fn epoll(&mut self, _cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        Step::io(sys::eventfd_signal(self.event.0.as_fd()).map(|()| 8))
    }
}
