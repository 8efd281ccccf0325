//! Completions of the proactor's own operations — event sources, relays, signals,
//! messages, fence imports — are routed to their owners instead of the `poll`
//! closure: each such operation hands back [`Resources::Internal`] naming its route,
//! and [`Routed`] (wrapped around every `poll` sink) dispatches it. The test is one
//! discriminant check per completion that owns resources; lean completions (nop,
//! timers, fsync) are not looked at.
//!
//! Dispatch runs on the poll thread in `poll`'s delivery phase with no proactor lock
//! held, so the callbacks it invokes may submit, cancel, signal and register.

use std::sync::Arc;

use super::deliver::Sink;
use super::fence::FenceImport;
use super::message::Mailbox;
use super::op::{Completion, OpId, Outcome, Resources};
use super::relay::{RelayInner, Role};
use super::signals::SignalState;
use super::source::SourceInner;

/// Where an internal completion goes (opaque outside the crate).
pub struct Internal(pub(crate) Route);

impl std::fmt::Debug for Internal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Route::Source(_) => "Internal(event source)",
            Route::Mailbox(_) => "Internal(mailbox)",
            Route::MsgSent { .. } => "Internal(message sent)",
            Route::Relay(..) => "Internal(relay)",
            Route::Signals(_) => "Internal(signals)",
            Route::Fence(_) => "Internal(fence import)",
        })
    }
}

#[derive(Clone)]
pub(crate) enum Route {
    /// A readiness event of an event source.
    Source(Arc<SourceInner>),
    /// Messages wait in this mailbox (its wake source fired, or `MSG_RING` posted).
    Mailbox(Arc<Mailbox>),
    /// A `MSG_RING` send finished on the sending proactor.
    MsgSent { to: Arc<Mailbox>, data: u64 },
    /// A relay's source fired, or its kernel-linked sink ran.
    Relay(Arc<RelayInner>, Role),
    /// The signalfd is readable.
    Signals(Arc<SignalState>),
    /// An imported fence descriptor became readable (or failed).
    Fence(Arc<FenceImport>),
}

impl Route {
    pub(crate) fn res(&self) -> Resources {
        Resources::Internal(Internal(self.clone()))
    }
}

/// A sink that routes internal completions away from the one it wraps.
pub(crate) struct Routed<S>(pub(crate) S);

impl<S: Sink> Sink for Routed<S> {
    #[inline(always)]
    fn owning(&mut self, c: Completion) {
        if let Resources::Internal(_) = &c.resources {
            dispatch(c);
        } else {
            self.0.owning(c);
        }
    }
    #[inline(always)]
    fn lean(&mut self, id: OpId, user_data: u64, outcome: Outcome) {
        self.0.lean(id, user_data, outcome);
    }
}

#[cold]
fn dispatch(c: Completion) {
    let Resources::Internal(Internal(route)) = c.resources else {
        return;
    };
    match route {
        Route::Source(s) => s.on_event(c.outcome, c.more),
        Route::Mailbox(m) => m.drain(),
        Route::MsgSent { to, data } => {
            if !matches!(c.outcome, Outcome::Ok(_)) {
                // The kernel did not post it (target ring gone or disabled): the
                // fallback queue takes it, so it is neither lost nor duplicated.
                to.enqueue_fallback(data);
            }
        }
        Route::Relay(r, role) => r.on_completion(role, c.outcome, c.more),
        Route::Signals(s) => s.on_readable(c.outcome, c.more),
        Route::Fence(f) => f.settle(c.outcome),
    }
}
