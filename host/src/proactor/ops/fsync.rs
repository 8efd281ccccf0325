//! fsync / fdatasync. `IORING_OP_FSYNC`.

use io_uring::{opcode, squeue, types};

use super::base::{with_fd, Env, EpollCx, Op, Step, UringCx};
use crate::proactor::error::Result;
use crate::proactor::op::{OpCode, Resources, Target};
use crate::proactor::sys;

pub(crate) struct Fsync {
    pub(crate) fd: Target,
    pub(crate) datasync: bool,
}

/// The entry of an fsync (also used by the simple-operation path).
#[inline(never)]
pub(crate) fn entry(env: &Env<'_>, fd: Target, datasync: bool) -> squeue::Entry {
    let flags = if datasync {
        types::FsyncFlags::DATASYNC
    } else {
        types::FsyncFlags::empty()
    };
    with_fd!(env, fd, |f| opcode::Fsync::new(f).flags(flags).build())
}

impl Op for Fsync {
    const CODE: OpCode = OpCode::Fsync;
    fn validate(&self, env: &Env<'_>) -> Result<()> {
        env.check(self.fd)
    }
    fn owns_nothing(&self) -> bool {
        true
    }
    fn into_resources(self) -> Resources {
        Resources::None
    }
    fn entry(&mut self, cx: &mut UringCx<'_>) -> squeue::Entry {
        entry(&cx.env, self.fd, self.datasync)
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        Step::io(sys::fsync(cx.env.raw(self.fd), self.datasync).map(|_| 0))
    }
}
