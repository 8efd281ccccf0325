//! readv: `preadv(2)` into owned buffers (each filled to its `len()`).
//! `IORING_OP_READV`; the iovec array lives in the slot until completion.

use io_uring::{opcode, squeue};

use super::base::{with_fd, Env, EpollCx, Op, Step, UringCx};
use crate::proactor::error::{Error, Result};
use crate::proactor::op::{OpCode, Resources, Target};
use crate::proactor::sys;

pub(crate) struct Readv {
    pub(crate) fd: Target,
    pub(crate) bufs: Vec<Vec<u8>>,
    pub(crate) offset: u64,
}

/// Describes `bufs` in `iov` (capacity kept across reuse).
pub(crate) fn fill_iov_mut(iov: &mut Vec<libc::iovec>, bufs: &mut [Vec<u8>]) {
    iov.clear();
    iov.extend(bufs.iter_mut().map(|b| libc::iovec {
        iov_base: b.as_mut_ptr().cast(),
        iov_len: b.len(),
    }));
}

pub(crate) fn check_count(n: usize) -> Result<()> {
    if n > libc::UIO_MAXIOV as usize {
        return Err(Error::InvalidArgument("too many iovecs"));
    }
    Ok(())
}

impl Op for Readv {
    const CODE: OpCode = OpCode::Readv;
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
        fill_iov_mut(cx.iov, &mut self.bufs);
        let (ptr, n) = (cx.iov.as_ptr(), cx.iov.len() as u32);
        with_fd!(cx.env, self.fd, |f| opcode::Readv::new(f, ptr, n)
            .offset(self.offset)
            .build())
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        fill_iov_mut(cx.iov, &mut self.bufs);
        Step::io(sys::preadv(cx.env.raw(self.fd), cx.iov, self.offset))
    }
}
