//! recv_fixed: receives up to `len` bytes from a socket into a leased registered
//! buffer (a chunk of the slab registered once with `register_buffers`); the lease
//! comes back with the count. Native (`RegisteredBuffers`): `IORING_OP_READ_FIXED`
//! on the socket, so the kernel uses the pages pinned at registration instead of
//! mapping the buffer per call. Emulated on io_uring: `IORING_OP_RECV` into the
//! same memory; on epoll: `recv(MSG_DONTWAIT)` when readable.

use io_uring::{opcode, squeue};
use rustix::net::RecvFlags;

use super::base::{with_fd, Env, EpollCx, Op, Step, UringCx, READABLE};
use super::read_fixed::check_len;
use crate::proactor::buffers::FixedBuf;
use crate::proactor::caps::Capability;
use crate::proactor::error::Result;
use crate::proactor::op::{OpCode, Resources, Target};
use crate::proactor::sys;

pub(crate) struct RecvFixed {
    pub(crate) fd: Target,
    pub(crate) buf: FixedBuf,
    pub(crate) len: u32,
}

impl Op for RecvFixed {
    const CODE: OpCode = OpCode::RecvFixed;
    fn validate(&self, env: &Env<'_>) -> Result<()> {
        env.check(self.fd)?;
        check_len(self.len, &self.buf)
    }
    fn into_resources(self) -> Resources {
        Resources::Fixed(self.buf)
    }
    fn entry(&mut self, cx: &mut UringCx<'_>) -> squeue::Entry {
        let (ptr, index, len) = (self.buf.as_mut_ptr(), self.buf.index(), self.len);
        if cx.env.caps.is_native(Capability::RegisteredBuffers) {
            // A socket has no file position: offset 0 is what a stream read takes.
            with_fd!(cx.env, self.fd, |f| opcode::ReadFixed::new(
                f, ptr, len, index
            )
            .offset(0)
            .build())
        } else {
            with_fd!(cx.env, self.fd, |f| opcode::Recv::new(f, ptr, len).build())
        }
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        let raw = cx.env.raw(self.fd);
        let len = self.len as usize;
        let r = sys::borrow(raw).and_then(|fd| {
            rustix::net::recv(fd, &mut self.buf[..len], RecvFlags::DONTWAIT)
                .map(|(n, _)| n)
                .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
        });
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Step::wait(raw, READABLE),
            r => Step::io(r),
        }
    }
}
