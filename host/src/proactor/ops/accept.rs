//! accept: completes with a new connected socket (non-blocking, close-on-exec),
//! which the caller then owns. `IORING_OP_ACCEPT`; on epoll `accept4` once the
//! listener is readable. Multishot: one completion per connection (`more` set) until
//! an error or cancellation ends it; `IORING_ACCEPT_MULTISHOT` when the capability is
//! native, else re-armed by the io_uring driver after each connection, and on epoll
//! connections are accepted while the listener stays readable.

use std::os::fd::IntoRawFd;

use io_uring::{opcode, squeue};
use rustix::net::SocketFlags;

use super::base::{with_fd, Env, EpollCx, Op, Step, UringCx, READABLE};
use crate::proactor::caps::Capability;
use crate::proactor::error::Result;
use crate::proactor::op::{OpCode, Resources, Target};
use crate::proactor::sys;

pub(crate) struct Accept {
    pub(crate) fd: Target,
    pub(crate) multishot: bool,
}

impl Op for Accept {
    const CODE: OpCode = OpCode::Accept;
    fn validate(&self, env: &Env<'_>) -> Result<()> {
        env.check(self.fd)
    }
    fn owns_nothing(&self) -> bool {
        true
    }
    fn multishot(&self) -> bool {
        self.multishot
    }
    fn into_resources(self) -> Resources {
        Resources::None
    }
    fn entry(&mut self, cx: &mut UringCx<'_>) -> squeue::Entry {
        let flags = libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
        if self.multishot && cx.env.caps.is_native(Capability::Multishot) {
            return with_fd!(cx.env, self.fd, |f| opcode::AcceptMulti::new(f)
                .flags(flags)
                .build());
        }
        with_fd!(cx.env, self.fd, |f| opcode::Accept::new(
            f,
            std::ptr::null_mut(),
            std::ptr::null_mut()
        )
        .flags(flags)
        .build())
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, ready: bool) -> Step {
        let raw = cx.env.raw(self.fd);
        if !ready {
            // Readiness first: a listener made elsewhere may be blocking.
            return Step::wait(raw, READABLE);
        }
        let r = sys::borrow(raw).and_then(|fd| {
            rustix::net::accept_with(fd, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)
                .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
        });
        match r {
            Ok(s) if self.multishot => Step::more(s.into_raw_fd() as u32),
            Ok(s) => Step::io(Ok(s.into_raw_fd() as usize)),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Step::wait(raw, READABLE),
            // A connection that died in the queue: wait for the next one, as the
            // kernel does for io_uring.
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => Step::wait(raw, READABLE),
            Err(e) => Step::io(Err(e)),
        }
    }
}
