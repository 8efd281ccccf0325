//! What `OpFuture`s and notifications call back into.

use std::sync::atomic::Ordering;
use std::task::{Poll, Waker};

use super::{take_wakers, Delivery, Driver, Shared, State};
use crate::proactor::future::FutureHost;
use crate::proactor::op::{CancelStatus, Completion, OpId};
use crate::proactor::sync::{lock, SoftWaiter};

impl<D: Driver> SoftWaiter for Shared<D> {
    fn soft_complete(&self, key: u64) {
        let wakers = {
            let mut core = lock(&self.core);
            if !core.soft_complete(self, key) {
                return;
            }
            if !core.done.is_empty() {
                self.hint.store(true, Ordering::Relaxed);
            }
            take_wakers(&mut core)
        };
        for w in wakers {
            w.wake();
        }
        self.nudge();
    }
}

impl<D: Driver> FutureHost for Shared<D> {
    fn poll_op(&self, id: OpId, waker: &Waker) -> Poll<Completion> {
        let mut core = lock(&self.core);
        let idx = id.index() as usize;
        let s = &mut core.slots[idx];
        debug_assert_eq!(s.gen, id.gen());
        if s.state == State::Done {
            let (outcome, resources) = s.result.take().expect("done slot holds its result");
            let user_data = s.user_data;
            core.release(id.index());
            drop(core);
            return Poll::Ready(Completion {
                id,
                user_data,
                outcome,
                resources,
                more: false,
            });
        }
        if let Delivery::Future(w) = &mut s.delivery {
            match w {
                Some(w) if w.will_wake(waker) => {}
                _ => *w = Some(waker.clone()),
            }
        }
        Poll::Pending
    }

    fn drop_op(&self, id: OpId) {
        let idx = id.index() as usize;
        let leftover = {
            let mut core = lock(&self.core);
            let s = &mut core.slots[idx];
            if s.gen != id.gen() {
                return;
            }
            match s.state {
                State::Done => {
                    let r = s.result.take();
                    core.release(id.index());
                    r
                }
                State::Free => None,
                State::Queued | State::Running => {
                    // The completion will only release the resources.
                    s.delivery = Delivery::Detached;
                    None
                }
            }
        };
        drop(leftover);
        self.cancel(id);
    }

    fn cancel_op(&self, id: OpId) -> CancelStatus {
        self.cancel(id)
    }
}
