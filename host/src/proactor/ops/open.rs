//! open: `openat(2)`, completing with the new descriptor. `IORING_OP_OPENAT`.

use std::ffi::CString;
use std::os::fd::{IntoRawFd, RawFd};

use io_uring::{opcode, squeue, types};

use super::base::{EpollCx, Op, Step, UringCx};
use crate::proactor::op::{OpCode, Resources};
use crate::proactor::sys;

pub(crate) struct Open {
    pub(crate) dir: RawFd,
    pub(crate) path: CString,
    pub(crate) flags: i32,
    pub(crate) mode: u32,
}

impl Op for Open {
    const CODE: OpCode = OpCode::Open;
    fn into_resources(self) -> Resources {
        Resources::Path(self.path)
    }
    fn entry(&mut self, _cx: &mut UringCx<'_>) -> squeue::Entry {
        opcode::OpenAt::new(types::Fd(self.dir), self.path.as_ptr())
            .flags(self.flags)
            .mode(self.mode)
            .build()
    }
    fn epoll(&mut self, _cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        // The caller owns the new descriptor from here on, as with io_uring.
        let r = sys::openat(self.dir, &self.path, self.flags, self.mode)
            .map(|fd| fd.into_raw_fd() as usize);
        Step::io(r)
    }
}
