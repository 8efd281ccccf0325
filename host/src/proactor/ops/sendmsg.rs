//! sendmsg: sends an owned buffer as one message, to a given address (unconnected
//! datagram sockets) or to the connected peer. `MSG_NOSIGNAL`. `IORING_OP_SENDMSG`;
//! on epoll `sendmsg(MSG_DONTWAIT)`, waiting for writability on `EAGAIN`.

use std::io::IoSlice;

use io_uring::{opcode, squeue};
use rustix::net::{SendAncillaryBuffer, SendFlags};

use super::base::{with_fd, Env, EpollCx, Op, Step, UringCx, WRITABLE};
use super::recvmsg::MsgHdr;
use crate::proactor::error::Result;
use crate::proactor::net::SockAddr;
use crate::proactor::op::{OpCode, Resources, Target};
use crate::proactor::sys;

pub(crate) struct Sendmsg {
    pub(crate) fd: Target,
    pub(crate) buf: Vec<u8>,
    /// Read by the kernel (boxed, with the header) until completion.
    pub(crate) to: Option<Box<SockAddr>>,
    pub(crate) msg: Box<MsgHdr>,
}

impl Op for Sendmsg {
    const CODE: OpCode = OpCode::Sendmsg;
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
        let (ptr, len) = (self.buf.as_mut_ptr(), self.buf.len());
        match &self.to {
            Some(a) => {
                self.msg.point(ptr, len, 0);
                self.msg.hdr.msg_name = a.0.as_ptr() as *mut libc::c_void;
                self.msg.hdr.msg_namelen = a.0.addr_len();
            }
            None => self.msg.point(ptr, len, 0),
        }
        let hdr: *const libc::msghdr = &self.msg.hdr;
        with_fd!(cx.env, self.fd, |f| opcode::SendMsg::new(f, hdr)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build())
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        let raw = cx.env.raw(self.fd);
        let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        let r = sys::borrow(raw).and_then(|fd| {
            let iov = [IoSlice::new(&self.buf)];
            let mut anc = SendAncillaryBuffer::default();
            match &self.to {
                Some(a) => rustix::net::sendmsg_addr(fd, &a.0, &iov, &mut anc, flags),
                None => rustix::net::sendmsg(fd, &iov, &mut anc, flags),
            }
            .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
        });
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Step::wait(raw, WRITABLE),
            r => Step::io(r),
        }
    }
}
