//! Semaphore waits: complete once `value ≥ n` (one semaphore, all of several, or any
//! of several), or with the error of a failed semaphore. Always a user-space wait
//! (the kernel has no 64-bit futex): the core subscribes it to its semaphores
//! (`OpKind::soft`), so this kind never reaches a driver.

use std::sync::Weak;

use io_uring::{opcode, squeue};

use super::base::{EpollCx, Op, Step, UringCx};
use crate::proactor::error::{Error, Result};
use crate::proactor::op::{OpCode, Outcome, Resources};
use crate::proactor::semaphore::Semaphore;
use crate::proactor::sync::{SoftWaiter, Subscriber};

pub(crate) enum Waits {
    One(Semaphore, u64),
    /// Several; `all`: every one must be reached, else any one.
    Many {
        list: Vec<(Semaphore, u64)>,
        all: bool,
    },
}

pub(crate) struct SemaphoreWait {
    pub(crate) waits: Waits,
    /// A relay's or fence export's wait: its completion goes there.
    pub(crate) route: Option<crate::proactor::service::Route>,
}

impl SemaphoreWait {
    fn each(&self) -> &[(Semaphore, u64)] {
        match &self.waits {
            Waits::One(..) => &[],
            Waits::Many { list, .. } => list,
        }
    }

    /// Whether the wait is over: `Ok(0)` (one, all), `Ok(index)` (any), or the error
    /// of a failed semaphore.
    pub(crate) fn check(&self) -> Option<Outcome> {
        match &self.waits {
            Waits::One(s, n) => s.status(*n),
            Waits::Many { list, all: true } => {
                let mut done = true;
                for (s, n) in list {
                    match s.status(*n) {
                        Some(Outcome::Ok(_)) => {}
                        Some(e) => return Some(e),
                        None => done = false,
                    }
                }
                done.then_some(Outcome::Ok(0))
            }
            Waits::Many { list, all: false } => {
                let mut fail = None;
                for (i, (s, n)) in list.iter().enumerate() {
                    match s.status(*n) {
                        Some(Outcome::Ok(_)) => return Some(Outcome::Ok(i as u32)),
                        Some(e) => fail = fail.or(Some(e)),
                        None => {}
                    }
                }
                // Any-mode fails only once no semaphore can satisfy it any more.
                let all_failed = list.iter().all(|(s, _)| s.failure().is_some());
                fail.filter(|_| all_failed)
            }
        }
    }

    /// Subscribes to every semaphore not reached yet; the outcome if it is over now.
    pub(crate) fn subscribe(&self, sub: Subscriber) -> Option<Outcome> {
        if let Some(o) = self.check() {
            return Some(o);
        }
        let (key, me) = (sub.key, sub.proactor.clone());
        match &self.waits {
            Waits::One(s, n) => {
                if !s.subscribe(*n, sub) {
                    return self.check();
                }
            }
            Waits::Many { list, .. } => {
                for (s, n) in list {
                    s.subscribe(
                        *n,
                        Subscriber {
                            proactor: me.clone(),
                            key,
                        },
                    );
                }
            }
        }
        let o = self.check();
        if o.is_some() {
            self.unsubscribe(key, &me);
        }
        o
    }

    pub(crate) fn unsubscribe(&self, key: u64, me: &Weak<dyn SoftWaiter>) {
        match &self.waits {
            Waits::One(s, _) => s.unsubscribe(key, me),
            Waits::Many { list, .. } => list.iter().for_each(|(s, _)| s.unsubscribe(key, me)),
        }
    }

    /// Called when one of its semaphores moved: the outcome if the wait is over (the
    /// remaining subscriptions are dropped then).
    pub(crate) fn on_signal(&self, key: u64, me: &Weak<dyn SoftWaiter>) -> Option<Outcome> {
        let o = self.check();
        if o.is_some() && !self.each().is_empty() {
            self.unsubscribe(key, me);
        }
        o
    }
}

impl Op for SemaphoreWait {
    const CODE: OpCode = OpCode::SemaphoreWait;
    fn validate(&self, _env: &super::Env<'_>) -> Result<()> {
        match &self.waits {
            Waits::Many { list, .. } if list.is_empty() => Err(Error::InvalidArgument(
                "a semaphore wait needs at least one semaphore",
            )),
            _ => Ok(()),
        }
    }
    fn into_resources(self) -> Resources {
        if let Some(r) = self.route {
            return r.res();
        }
        match self.waits {
            Waits::One(s, _) => Resources::Semaphore(s),
            Waits::Many { list, .. } => Resources::Semaphores(list),
        }
    }
    fn entry(&mut self, _cx: &mut UringCx<'_>) -> squeue::Entry {
        // Never reached (a user-space wait); a harmless entry if it were.
        opcode::Nop::new().build()
    }
    fn epoll(&mut self, _cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        debug_assert!(false, "semaphore wait reached a driver");
        Step::err(libc::EINVAL)
    }
}
