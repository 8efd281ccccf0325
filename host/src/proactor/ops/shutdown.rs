//! shutdown: closes one or both directions of a connection. `IORING_OP_SHUTDOWN`;
//! on epoll a plain `shutdown(2)` (it never waits).

use std::net::Shutdown as How;

use io_uring::{opcode, squeue};

use super::base::{with_fd, Env, EpollCx, Op, Step, UringCx};
use crate::proactor::error::Result;
use crate::proactor::op::{OpCode, Resources, Target};
use crate::proactor::sys;

pub(crate) struct Shutdown {
    pub(crate) fd: Target,
    pub(crate) how: How,
}

impl Op for Shutdown {
    const CODE: OpCode = OpCode::Shutdown;
    fn validate(&self, env: &Env<'_>) -> Result<()> {
        env.check(self.fd)
    }
    fn owns_nothing(&self) -> bool {
        true
    }
    fn into_resources(self) -> Resources {
        Resources::None
    }
    fn entry(&mut self, cx: &mut UringCx<'_>) -> squeue::Entry {
        let how = match self.how {
            How::Read => libc::SHUT_RD,
            How::Write => libc::SHUT_WR,
            How::Both => libc::SHUT_RDWR,
        };
        with_fd!(cx.env, self.fd, |f| opcode::Shutdown::new(f, how).build())
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        let how = match self.how {
            How::Read => rustix::net::Shutdown::Read,
            How::Write => rustix::net::Shutdown::Write,
            How::Both => rustix::net::Shutdown::Both,
        };
        let r = sys::borrow(cx.env.raw(self.fd)).and_then(|fd| {
            rustix::net::shutdown(fd, how)
                .map(|_| 0)
                .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
        });
        Step::io(r)
    }
}
