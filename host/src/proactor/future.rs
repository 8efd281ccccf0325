//! `Future` delivery: an [`OpFuture`] resolves to its operation's [`Completion`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::op::{CancelStatus, Completion, OpId};

/// What an `OpFuture` needs from the proactor behind it (any driver).
pub(crate) trait FutureHost: Send + Sync {
    /// The completion if it is there (the slot is freed), or registers the waker.
    fn poll_op(&self, id: OpId, waker: &Waker) -> Poll<Completion>;
    /// The future is dropped unfinished: detach and cancel.
    fn drop_op(&self, id: OpId);
    fn cancel_op(&self, id: OpId) -> CancelStatus;
}

/// Resolves to the [`Completion`] of one operation. Works with any executor: it is
/// woken from the thread that runs [`Proactor::poll`](super::Proactor::poll) (or from
/// the thread whose `cancel`/`Notification::signal` completed it), so something must
/// keep polling the proactor.
///
/// Dropping an unfinished `OpFuture` cancels its operation. The operation's resources
/// stay with the proactor until the kernel is done with them, then are dropped.
#[must_use = "dropping an OpFuture cancels its operation"]
pub struct OpFuture {
    pub(crate) shared: Arc<dyn FutureHost>,
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
        self.shared.cancel_op(self.id)
    }
}

impl Future for OpFuture {
    type Output = Completion;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completion> {
        assert!(!self.taken, "OpFuture polled after completion");
        let r = self.shared.poll_op(self.id, cx.waker());
        if r.is_ready() {
            self.taken = true;
        }
        r
    }
}

impl Drop for OpFuture {
    fn drop(&mut self) {
        if !self.taken {
            self.shared.drop_op(self.id);
        }
    }
}
