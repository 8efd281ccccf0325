//! Readiness of a descriptor for the proactor's own consumers (event sources, relays,
//! signals, the message mailbox, fence imports): `IORING_OP_POLL_ADD`, multishot
//! (`IORING_POLL_ADD_MULTI`) where [`Capability::Multishot`] is native, else re-armed
//! after each event; on epoll a readiness wait reported once per readiness. Every
//! completion carries its route (`Resources::Internal`), so it never reaches a `poll`
//! closure.

use std::os::fd::{OwnedFd, RawFd};

use io_uring::{opcode, squeue, types};

use super::base::{EpollCx, Op, Step, UringCx};
use crate::proactor::caps::Capability;
use crate::proactor::op::{OpCode, Resources};
use crate::proactor::service::Route;

pub(crate) struct PollSource {
    pub(crate) fd: RawFd,
    /// `POLLIN`/`POLLOUT` bits (the same values as the epoll ones).
    pub(crate) events: u32,
    /// Fires until cancelled (else once).
    pub(crate) multi: bool,
    pub(crate) route: Route,
    /// A descriptor the operation owns (a fence import), closed with it.
    pub(crate) owned: Option<OwnedFd>,
    /// epoll: a readiness was just reported; the next call waits again.
    pub(crate) fired: bool,
}

impl PollSource {
    pub(crate) fn new(fd: RawFd, events: u32, multi: bool, route: Route) -> PollSource {
        PollSource {
            fd,
            events,
            multi,
            route,
            owned: None,
            fired: false,
        }
    }
}

impl Op for PollSource {
    const CODE: OpCode = OpCode::PollSource;
    fn multishot(&self) -> bool {
        self.multi
    }
    fn into_resources(self) -> Resources {
        self.route.res()
    }
    fn entry(&mut self, cx: &mut UringCx<'_>) -> squeue::Entry {
        let multi = self.multi && cx.env.caps.is_native(Capability::Multishot);
        opcode::PollAdd::new(types::Fd(self.fd), self.events)
            .multi(multi)
            .build()
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, ready: bool) -> Step {
        if !ready || self.fired {
            self.fired = false;
            return Step::wait(self.fd, self.events);
        }
        if !self.multi {
            return Step::ok(self.events);
        }
        self.fired = true;
        *cx.more = self.route.res();
        Step::more(self.events)
    }
}
