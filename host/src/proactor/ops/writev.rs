//! writev: `pwritev(2)` of owned buffers. `IORING_OP_WRITEV`; the iovec array lives
//! in the slot until completion.

use io_uring::{opcode, squeue};

use super::base::{with_fd, Env, EpollCx, Op, Step, UringCx};
use super::readv::check_count;
use crate::proactor::error::Result;
use crate::proactor::op::{OpCode, Resources, Target};
use crate::proactor::sys;

pub(crate) struct Writev {
    pub(crate) fd: Target,
    pub(crate) bufs: Vec<Vec<u8>>,
    pub(crate) offset: u64,
}

/// Describes `bufs` in `iov` (capacity kept across reuse).
pub(crate) fn fill_iov(iov: &mut Vec<libc::iovec>, bufs: &[Vec<u8>]) {
    iov.clear();
    iov.extend(bufs.iter().map(|b| libc::iovec {
        iov_base: b.as_ptr() as *mut _,
        iov_len: b.len(),
    }));
}

impl Op for Writev {
    const CODE: OpCode = OpCode::Writev;
    fn validate(&self, env: &Env<'_>) -> Result<()> {
        env.check(self.fd)?;
        check_count(self.bufs.len())
    }
    fn expected_len(&self) -> Option<usize> {
        Some(self.bufs.iter().map(Vec::len).sum())
    }
    fn into_resources(self) -> Resources {
        Resources::Bufs(self.bufs)
    }
    fn entry(&mut self, cx: &mut UringCx<'_>) -> squeue::Entry {
        fill_iov(cx.iov, &self.bufs);
        let (ptr, n) = (cx.iov.as_ptr(), cx.iov.len() as u32);
        with_fd!(cx.env, self.fd, |f| opcode::Writev::new(f, ptr, n)
            .offset(self.offset)
            .build())
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        fill_iov(cx.iov, &self.bufs);
        Step::io(sys::pwritev(cx.env.raw(self.fd), cx.iov, self.offset))
    }
}
