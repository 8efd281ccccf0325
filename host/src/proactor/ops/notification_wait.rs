//! Notification wait: completes once the epoch differs from the token.
//! `IORING_OP_FUTEX_WAIT` (6.7+); otherwise the core subscribes in user space, so
//! this kind never reaches the epoll driver.

use io_uring::{opcode, squeue};

use super::base::{EpollCx, Op, Step, UringCx};
use crate::proactor::op::{OpCode, Outcome, Resources};
use crate::proactor::sync::Notification;

/// futex2 flags: 32-bit futex, process-private (matches `FUTEX_WAKE_PRIVATE`).
const FUTEX2_SIZE_U32: u32 = 0x02;
const FUTEX2_PRIVATE: u32 = 128;
/// `FUTEX_BITSET_MATCH_ANY`.
const FUTEX_MATCH_ANY: u64 = 0xffff_ffff;

pub(crate) struct NotificationWait {
    pub(crate) n: Notification,
    pub(crate) token: u32,
    /// A relay's wait: its completion goes to the relay.
    pub(crate) route: Option<crate::proactor::service::Route>,
}

impl Op for NotificationWait {
    const CODE: OpCode = OpCode::NotificationWait;
    fn into_resources(self) -> Resources {
        match self.route {
            Some(r) => r.res(),
            None => Resources::Notification(self.n),
        }
    }
    fn entry(&mut self, _cx: &mut UringCx<'_>) -> squeue::Entry {
        opcode::FutexWait::new(
            self.n.0.epoch.as_ptr() as *const u32,
            self.token as u64,
            FUTEX_MATCH_ANY,
            FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
        )
        .build()
    }
    fn cqe_error(&self, res: i32, cancelling: bool) -> Outcome {
        if res == -libc::EAGAIN {
            // The futex no longer held the token: the epoch already moved on.
            return Outcome::Ok(0);
        }
        super::base::error_outcome(Self::CODE, cancelling, res)
    }
    fn epoll(&mut self, _cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        // Always run as a user-space subscription by the core.
        debug_assert!(false, "notification wait reached the epoll driver");
        Step::err(libc::EINVAL)
    }
}
