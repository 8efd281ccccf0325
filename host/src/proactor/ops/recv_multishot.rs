//! Multishot recv with provided buffers: one completion per chunk received, each
//! with a [`RingBuf`] leased from the operation's [`BufRing`](crate::proactor::BufRing).
//! It ends (`more == false`) at end of stream (`Ok(0)`), on an error, on cancellation,
//! or with `ENOBUFS` when data arrives and the group has no free buffer (return
//! buffers, then submit it again). Native: `IORING_OP_RECV` with `IORING_RECV_MULTISHOT` and buffer
//! select. Emulated on io_uring: a single-shot recv into a buffer taken from the
//! group, re-armed after each chunk; on epoll: `recv` into a taken buffer while the
//! socket is readable.

use std::sync::Arc;

use io_uring::{cqueue, opcode, squeue};
use rustix::net::RecvFlags;

use super::base::{with_fd, Env, EpollCx, Op, Step, UringCx, READABLE};
use crate::proactor::bufring::{RingBuf, RingInner};
use crate::proactor::caps::Capability;
use crate::proactor::error::{Error, Result};
use crate::proactor::op::{OpCode, OpError, Outcome, Resources, Target};
use crate::proactor::sys;

pub(crate) struct RecvMultishot {
    pub(crate) fd: Target,
    pub(crate) ring: Arc<RingInner>,
    /// Emulated: the buffer the running single-shot recv writes.
    pub(crate) cur: Option<u16>,
}

fn enobufs() -> Outcome {
    Outcome::Err(OpError {
        op: OpCode::RecvMultishot,
        errno: libc::ENOBUFS,
    })
}

impl RecvMultishot {
    /// Turns one completion into what is delivered, and whether an emulated
    /// operation goes on.
    pub(crate) fn reap(&mut self, outcome: Outcome, flags: u32) -> (Outcome, Resources, bool) {
        // Native: the kernel picked the buffer (its id in `flags`).
        let bid = if self.ring.native {
            cqueue::buffer_select(flags)
        } else {
            match self.cur.take() {
                Some(b) => Some(b),
                // Armed with no free buffer: a readiness poll stood in for the
                // recv; data arrived with nowhere to put it (as the kernel does).
                None => {
                    let o = match outcome {
                        Outcome::Ok(_) => enobufs(),
                        o => o,
                    };
                    return (o, Resources::None, false);
                }
            }
        };
        match (outcome, bid) {
            (Outcome::Ok(n), Some(b)) if n > 0 && b < self.ring.count() => (
                outcome,
                Resources::Leased(RingBuf::new(self.ring.clone(), b, n as usize)),
                true,
            ),
            (o, b) => {
                if let Some(b) = b {
                    self.ring.give_back(b);
                }
                (o, Resources::None, false)
            }
        }
    }
}

impl Op for RecvMultishot {
    const CODE: OpCode = OpCode::RecvMultishot;
    fn validate(&self, env: &Env<'_>) -> Result<()> {
        if self.ring.native != env.caps.is_native(Capability::Multishot) {
            return Err(Error::InvalidArgument(
                "the buffer group was made by a proactor with other capabilities",
            ));
        }
        env.check(self.fd)
    }
    fn multishot(&self) -> bool {
        true
    }
    fn into_resources(mut self) -> Resources {
        if let Some(b) = self.cur.take() {
            self.ring.give_back(b);
        }
        Resources::None
    }
    fn entry(&mut self, cx: &mut UringCx<'_>) -> squeue::Entry {
        if self.ring.native {
            let group = self.ring.group;
            return with_fd!(cx.env, self.fd, |f| opcode::RecvMulti::new(f, group)
                .build());
        }
        match self.ring.take() {
            Some(b) => {
                self.cur = Some(b);
                let (ptr, len) = (self.ring.buf_ptr(b), self.ring.size() as u32);
                with_fd!(cx.env, self.fd, |f| opcode::Recv::new(f, ptr, len).build())
            }
            None => with_fd!(cx.env, self.fd, |f| opcode::PollAdd::new(
                f,
                libc::POLLIN as u32
            )
            .build()),
        }
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        let raw = cx.env.raw(self.fd);
        let Some(b) = self.ring.take() else {
            // No free buffer: like the kernel, fail only once data is there.
            let mut one = [0u8; 1];
            let r = sys::borrow(raw).and_then(|fd| {
                rustix::net::recv(fd, &mut one[..], RecvFlags::DONTWAIT | RecvFlags::PEEK)
                    .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
            });
            return match r {
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Step::wait(raw, READABLE),
                Err(e) => Step::io(Err(e)),
                Ok(_) => Step::err(libc::ENOBUFS),
            };
        };
        let r = sys::borrow(raw).and_then(|fd| {
            // SAFETY: buffer `b` was just taken from the free list: nothing else
            // reads or writes it until it is leased or given back below.
            let buf =
                unsafe { std::slice::from_raw_parts_mut(self.ring.buf_ptr(b), self.ring.size()) };
            rustix::net::recv(fd, buf, RecvFlags::DONTWAIT)
                .map(|(n, _)| n)
                .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
        });
        match r {
            Ok(n) if n > 0 => {
                *cx.more = Resources::Leased(RingBuf::new(self.ring.clone(), b, n));
                Step::more(n as u32)
            }
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                self.ring.give_back(b);
                Step::wait(raw, READABLE)
            }
            r => {
                self.ring.give_back(b);
                Step::io(r)
            }
        }
    }
}
