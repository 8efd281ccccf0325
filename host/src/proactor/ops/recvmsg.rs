//! recvmsg: receives one message (a datagram, or stream bytes) into an owned buffer
//! and reports the sender's address. `IORING_OP_RECVMSG`; on epoll
//! `recvmsg(MSG_DONTWAIT)`, waiting for readability on `EAGAIN`. Also the kernel-read
//! message header that sendmsg shares.

use std::io::IoSliceMut;

use io_uring::{opcode, squeue};
use rustix::net::{RecvAncillaryBuffer, RecvFlags, SocketAddrAny};

use super::base::{with_fd, Env, EpollCx, Op, Step, UringCx, READABLE};
use crate::proactor::error::Result;
use crate::proactor::net::SockAddr;
use crate::proactor::op::{OpCode, Resources, Target};
use crate::proactor::sys;

/// A message header with its one iovec and its address storage, boxed so that the
/// kernel's pointers into it stay valid while the operation moves.
pub(crate) struct MsgHdr {
    pub(crate) hdr: libc::msghdr,
    pub(crate) iov: libc::iovec,
    pub(crate) name: libc::sockaddr_storage,
}

// SAFETY: the raw pointers point into the same box and into the buffer owned by the
// same operation; they are only read by the kernel while the operation runs.
unsafe impl Send for MsgHdr {}

impl MsgHdr {
    pub(crate) fn new() -> Box<MsgHdr> {
        // SAFETY: all-zero is a valid `msghdr`, `iovec` and `sockaddr_storage`
        // (null pointers, zero lengths, AF_UNSPEC).
        Box::new(unsafe { std::mem::zeroed() })
    }

    /// Points the header at `buf` (`len` bytes) and at the address storage, which
    /// holds `namelen` bytes of address (0: none).
    pub(crate) fn point(&mut self, buf: *mut u8, len: usize, namelen: u32) {
        self.iov = libc::iovec {
            iov_base: buf.cast(),
            iov_len: len,
        };
        self.hdr.msg_iov = &mut self.iov;
        self.hdr.msg_iovlen = 1;
        self.hdr.msg_name = if namelen == 0 {
            std::ptr::null_mut()
        } else {
            (&mut self.name as *mut libc::sockaddr_storage).cast()
        };
        self.hdr.msg_namelen = namelen;
        self.hdr.msg_control = std::ptr::null_mut();
        self.hdr.msg_controllen = 0;
        self.hdr.msg_flags = 0;
    }

    /// The address the kernel wrote, if any.
    fn address(&self) -> Option<SockAddr> {
        let len = self.hdr.msg_namelen as usize;
        if self.name.ss_family == libc::AF_UNSPEC as libc::sa_family_t
            || len < std::mem::size_of::<libc::sa_family_t>()
            || len > std::mem::size_of::<libc::sockaddr_storage>()
        {
            return None;
        }
        // SAFETY: `name` is a sockaddr_storage the kernel (or `store`) filled with
        // `len` bytes, `len` checked against its size above.
        Some(SockAddr(unsafe {
            SocketAddrAny::read(
                (&self.name as *const libc::sockaddr_storage).cast(),
                len as _,
            )
        }))
    }

    /// Copies an address into the storage (the epoll path).
    fn store(&mut self, a: &SocketAddrAny) {
        let len = (a.addr_len() as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
        // SAFETY: `len` bytes fit both the source address and the storage.
        unsafe {
            std::ptr::copy_nonoverlapping(
                a.as_ptr().cast::<u8>(),
                (&mut self.name as *mut libc::sockaddr_storage).cast::<u8>(),
                len,
            )
        };
        self.hdr.msg_namelen = len as u32;
    }
}

pub(crate) struct Recvmsg {
    pub(crate) fd: Target,
    pub(crate) buf: Vec<u8>,
    pub(crate) msg: Box<MsgHdr>,
}

impl Op for Recvmsg {
    const CODE: OpCode = OpCode::Recvmsg;
    fn validate(&self, env: &Env<'_>) -> Result<()> {
        env.check(self.fd)
    }
    fn into_resources(self) -> Resources {
        let from = self.msg.address().map(Box::new);
        Resources::Msg {
            buf: self.buf,
            from,
        }
    }
    fn entry(&mut self, cx: &mut UringCx<'_>) -> squeue::Entry {
        let n = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        self.msg.point(self.buf.as_mut_ptr(), self.buf.len(), n);
        let hdr: *mut libc::msghdr = &mut self.msg.hdr;
        with_fd!(cx.env, self.fd, |f| opcode::RecvMsg::new(f, hdr).build())
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        let raw = cx.env.raw(self.fd);
        let r = sys::borrow(raw).and_then(|fd| {
            let mut iov = [IoSliceMut::new(&mut self.buf[..])];
            rustix::net::recvmsg(
                fd,
                &mut iov,
                &mut RecvAncillaryBuffer::default(),
                RecvFlags::DONTWAIT,
            )
            .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
        });
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Step::wait(raw, READABLE),
            Ok(m) => {
                if let Some(a) = &m.address {
                    self.msg.store(a);
                }
                Step::io(Ok(m.bytes.min(self.buf.len())))
            }
            Err(e) => Step::io(Err(e)),
        }
    }
}
