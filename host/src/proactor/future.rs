//! `Future` delivery: an [`OpFuture`] resolves to its operation's [`Completion`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::core::{Delivery, Shared, State};
use super::op::{CancelStatus, Completion, OpId};
use super::sync::lock;

/// Resolves to the [`Completion`] of one operation. Works with any executor: it is
/// woken from the thread that runs [`Proactor::poll`](super::Proactor::poll) (or from
/// the thread whose `cancel`/`Notification::signal` completed it), so something must
/// keep polling the proactor.
///
/// Dropping an unfinished `OpFuture` cancels its operation. The operation's resources
/// stay with the proactor until the kernel is done with them, then are dropped.
#[must_use = "dropping an OpFuture cancels its operation"]
pub struct OpFuture {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: OpId,
    pub(crate) taken: bool,
}

impl OpFuture {
    /// The operation's id (usable with [`Proactor::cancel`](super::Proactor::cancel)).
    pub fn id(&self) -> OpId {
        self.id
    }

    /// Requests cancellation without dropping the future; it then resolves to the
    /// completion (normally `Cancelled`).
    pub fn cancel(&self) -> CancelStatus {
        self.shared.cancel(self.id)
    }
}

impl Future for OpFuture {
    type Output = Completion;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completion> {
        assert!(!self.taken, "OpFuture polled after completion");
        let id = self.id;
        let mut core = lock(&self.shared.core);
        let idx = id.index() as usize;
        let s = &mut core.slots[idx];
        debug_assert_eq!(s.gen, id.gen());
        if s.state == State::Done {
            let (outcome, resources) = s.result.take().expect("done slot holds its result");
            let user_data = s.user_data;
            core.release(id.index());
            drop(core);
            self.taken = true;
            return Poll::Ready(Completion {
                id,
                user_data,
                outcome,
                resources,
            });
        }
        if let Delivery::Future(w) = &mut s.delivery {
            match w {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }
}

impl Drop for OpFuture {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        let id = self.id;
        let idx = id.index() as usize;
        let leftover = {
            let mut core = lock(&self.shared.core);
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
        let st = self.shared.cancel(id);
        let _ = st;
    }
}
