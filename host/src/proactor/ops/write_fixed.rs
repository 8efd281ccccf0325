//! write_fixed: writes from a registered buffer. `IORING_OP_WRITE_FIXED` when
//! registered buffers are native, a plain write of the same memory otherwise.

use io_uring::{opcode, squeue};

use super::base::{with_fd, Env, EpollCx, Op, Step, UringCx};
use super::read_fixed::check_len;
use crate::proactor::buffers::FixedBuf;
use crate::proactor::caps::Capability;
use crate::proactor::error::Result;
use crate::proactor::op::{OpCode, Resources, Target};
use crate::proactor::sys;

pub(crate) struct WriteFixed {
    pub(crate) fd: Target,
    pub(crate) buf: FixedBuf,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

impl Op for WriteFixed {
    const CODE: OpCode = OpCode::WriteFixed;
    fn validate(&self, env: &Env<'_>) -> Result<()> {
        env.check(self.fd)?;
        check_len(self.len, &self.buf)
    }
    fn expected_len(&self) -> Option<usize> {
        Some(self.len as usize)
    }
    fn into_resources(self) -> Resources {
        Resources::Fixed(self.buf)
    }
    fn entry(&mut self, cx: &mut UringCx<'_>) -> squeue::Entry {
        let (ptr, index, len) = (self.buf.as_ptr(), self.buf.index(), self.len);
        if cx.env.caps.is_native(Capability::RegisteredBuffers) {
            with_fd!(cx.env, self.fd, |f| opcode::WriteFixed::new(
                f, ptr, len, index
            )
            .offset(self.offset)
            .build())
        } else {
            with_fd!(cx.env, self.fd, |f| opcode::Write::new(f, ptr, len)
                .offset(self.offset)
                .build())
        }
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        let len = self.len as usize;
        Step::io(sys::pwrite(
            cx.env.raw(self.fd),
            &self.buf[..len],
            self.offset,
        ))
    }
}
