//! connect: `IORING_OP_CONNECT`; on epoll a non-blocking `connect` and, when it is
//! in progress, `SO_ERROR` once the socket is writable.

use io_uring::{opcode, squeue};

use super::base::{timed_error_outcome, with_fd, Env, EpollCx, Op, Step, UringCx, WRITABLE};
use crate::proactor::error::Result;
use crate::proactor::net::SockAddr;
use crate::proactor::op::{OpCode, Outcome, Resources, Target};
use crate::proactor::sys;

pub(crate) struct Connect {
    pub(crate) fd: Target,
    /// Read by the kernel: lives (boxed, so that every `Operation` stays small)
    /// until completion.
    pub(crate) addr: Box<SockAddr>,
    /// Timeout in nanoseconds (0: none).
    pub(crate) timeout_ns: u64,
}

impl Op for Connect {
    const CODE: OpCode = OpCode::Connect;
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
        Resources::None
    }
    fn entry(&mut self, cx: &mut UringCx<'_>) -> squeue::Entry {
        let (ptr, len) = (self.addr.0.as_ptr().cast(), self.addr.0.addr_len());
        with_fd!(cx.env, self.fd, |f| opcode::Connect::new(f, ptr, len)
            .build())
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, ready: bool) -> Step {
        let raw = cx.env.raw(self.fd);
        let fd = match sys::borrow(raw) {
            Ok(fd) => fd,
            Err(e) => return Step::io(Err(e)),
        };
        let err = |errno: i32| Step::err(errno);
        if ready {
            return match rustix::net::sockopt::socket_error(fd) {
                // Connected: a second `connect` completes it in the socket layer too
                // (a later `connect` then fails with `EISCONN`, as after io_uring's).
                Ok(Ok(())) => match rustix::net::connect(fd, &self.addr.0) {
                    Ok(()) | Err(rustix::io::Errno::ISCONN) => Step::ok(0),
                    Err(rustix::io::Errno::ALREADY) | Err(rustix::io::Errno::INPROGRESS) => {
                        Step::wait(raw, WRITABLE)
                    }
                    Err(e) => err(e.raw_os_error()),
                },
                Ok(Err(e)) | Err(e) => err(e.raw_os_error()),
            };
        }
        match rustix::net::connect(fd, &self.addr.0) {
            Ok(()) => Step::ok(0),
            Err(rustix::io::Errno::INPROGRESS) | Err(rustix::io::Errno::AGAIN) => {
                Step::wait(raw, WRITABLE)
            }
            Err(e) => err(e.raw_os_error()),
        }
    }
}
