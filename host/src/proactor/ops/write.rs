//! write: `pwrite(2)` of an owned buffer. `IORING_OP_WRITE`.

use io_uring::{opcode, squeue};

use super::base::{with_fd, Env, EpollCx, Op, Step, UringCx};
use crate::proactor::error::Result;
use crate::proactor::op::{OpCode, Resources, Target};
use crate::proactor::sys;

pub(crate) struct Write {
    pub(crate) fd: Target,
    pub(crate) buf: Vec<u8>,
    pub(crate) offset: u64,
}

impl Op for Write {
    const CODE: OpCode = OpCode::Write;
    fn validate(&self, env: &Env<'_>) -> Result<()> {
        env.check(self.fd)
    }
    fn expected_len(&self) -> Option<usize> {
        Some(self.buf.len())
    }
    fn into_resources(self) -> Resources {
        Resources::Buf(self.buf)
    }
    fn entry(&mut self, cx: &mut UringCx<'_>) -> squeue::Entry {
        let (ptr, len) = (self.buf.as_ptr(), self.buf.len() as u32);
        with_fd!(cx.env, self.fd, |f| opcode::Write::new(f, ptr, len)
            .offset(self.offset)
            .build())
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        Step::io(sys::pwrite(cx.env.raw(self.fd), &self.buf, self.offset))
    }
}
