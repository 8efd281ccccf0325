//! close: takes ownership of a descriptor and closes it. `IORING_OP_CLOSE`. The
//! descriptor passes to the kernel once the entry is queued; a close cancelled before
//! that hands it back.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

use io_uring::{opcode, squeue, types};

use super::base::{EpollCx, Op, Step, UringCx};
use crate::proactor::op::{OpCode, Resources};
use crate::proactor::sys;

pub(crate) struct Close {
    pub(crate) fd: Option<OwnedFd>,
}

impl Op for Close {
    const CODE: OpCode = OpCode::Close;
    fn owns_nothing(&self) -> bool {
        self.fd.is_none()
    }
    fn into_resources(self) -> Resources {
        match self.fd {
            Some(fd) => Resources::Fd(fd),
            None => Resources::None,
        }
    }
    fn entry(&mut self, _cx: &mut UringCx<'_>) -> squeue::Entry {
        let raw = self.fd.as_ref().map_or(-1, |f| f.as_raw_fd());
        opcode::Close::new(types::Fd(raw)).build()
    }
    fn queued(&mut self) {
        // The kernel owns the descriptor now.
        let _ = self.fd.take().map(IntoRawFd::into_raw_fd);
    }
    fn epoll(&mut self, _cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        match self.fd.take() {
            Some(fd) => Step::io(sys::close(fd).map(|_| 0)),
            None => Step::ok(0),
        }
    }
}
