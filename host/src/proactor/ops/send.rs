//! send: sends an owned buffer (possibly in part: the count is the result; a short
//! send breaks a linked sequence). `MSG_NOSIGNAL`: a closed peer is `EPIPE`, never
//! `SIGPIPE`. `IORING_OP_SEND`; on epoll `send(MSG_DONTWAIT)`, waiting for
//! writability on `EAGAIN`.

use io_uring::{opcode, squeue};
use rustix::net::SendFlags;

use super::base::{with_fd, Env, EpollCx, Op, Step, UringCx, WRITABLE};
use crate::proactor::error::Result;
use crate::proactor::op::{OpCode, Resources, Target};
use crate::proactor::sys;

pub(crate) struct Send {
    pub(crate) fd: Target,
    pub(crate) buf: Vec<u8>,
}

impl Op for Send {
    const CODE: OpCode = OpCode::Send;
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
        with_fd!(cx.env, self.fd, |f| opcode::Send::new(f, ptr, len)
            .flags(libc::MSG_NOSIGNAL)
            .build())
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        send_now(Self::CODE, cx, self.fd, &self.buf)
    }
}

/// `send(MSG_DONTWAIT | MSG_NOSIGNAL)` on the epoll driver, waiting for writability
/// on `EAGAIN` (shared with the zero-copy send's emulation).
pub(crate) fn send_now(_code: OpCode, cx: &mut EpollCx<'_>, fd: Target, buf: &[u8]) -> Step {
    let raw = cx.env.raw(fd);
    let r = sys::borrow(raw).and_then(|fd| {
        rustix::net::send(fd, buf, SendFlags::DONTWAIT | SendFlags::NOSIGNAL)
            .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
    });
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Step::wait(raw, WRITABLE),
        r => Step::io(r),
    }
}
