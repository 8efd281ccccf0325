//! recv: receives up to `buf.len()` bytes into an owned buffer; `Ok(0)` is the end
//! of the stream. `IORING_OP_RECV`; on epoll `recv(MSG_DONTWAIT)`, waiting for
//! readability on `EAGAIN`.

use io_uring::{opcode, squeue};
use rustix::net::RecvFlags;

use super::base::{timed_error_outcome, with_fd, Env, EpollCx, Op, Step, UringCx, READABLE};
use crate::proactor::error::Result;
use crate::proactor::op::{OpCode, Outcome, Resources, Target};
use crate::proactor::sys;

pub(crate) struct Recv {
    pub(crate) fd: Target,
    pub(crate) buf: Vec<u8>,
    /// Timeout in nanoseconds (0: none).
    pub(crate) timeout_ns: u64,
}

impl Op for Recv {
    const CODE: OpCode = OpCode::Recv;
    fn validate(&self, env: &Env<'_>) -> Result<()> {
        env.check(self.fd)
    }
    fn timeout_ns(&self) -> u64 {
        self.timeout_ns
    }
    fn cqe_error(&self, res: i32, cancelling: bool) -> Outcome {
        timed_error_outcome(Self::CODE, self.timeout_ns, cancelling, res)
    }
    fn into_resources(self) -> Resources {
        Resources::Buf(self.buf)
    }
    fn entry(&mut self, cx: &mut UringCx<'_>) -> squeue::Entry {
        let (ptr, len) = (self.buf.as_mut_ptr(), self.buf.len() as u32);
        with_fd!(cx.env, self.fd, |f| opcode::Recv::new(f, ptr, len).build())
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        let raw = cx.env.raw(self.fd);
        let r = sys::borrow(raw).and_then(|fd| {
            rustix::net::recv(fd, &mut self.buf[..], RecvFlags::DONTWAIT)
                .map(|(n, _)| n)
                .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
        });
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Step::wait(raw, READABLE),
            r => Step::io(r),
        }
    }
}
