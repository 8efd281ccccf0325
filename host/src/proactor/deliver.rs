//! How `poll` hands raw completions to the caller: moved ([`ByValue`]) or lent
//! ([`Lent`]).

use super::op::{Completion, OpId, Outcome, Resources};

/// Where `poll` delivers raw completions.
pub(crate) trait Sink {
    /// A completion that hands resources back.
    fn owning(&mut self, c: Completion);
    /// A completion whose resources are `Resources::None`.
    fn lean(&mut self, id: OpId, user_data: u64, outcome: Outcome);
}

/// Completions moved into a closure (`Proactor::poll`).
pub(crate) struct ByValue<F>(pub(crate) F);

impl<F: FnMut(Completion)> Sink for ByValue<F> {
    #[inline(always)]
    fn owning(&mut self, c: Completion) {
        (self.0)(c)
    }
    #[inline(always)]
    fn lean(&mut self, id: OpId, user_data: u64, outcome: Outcome) {
        (self.0)(Completion {
            id,
            user_data,
            outcome,
            resources: Resources::None,
            more: false,
        })
    }
}

/// Completions lent to a closure (`Proactor::poll_lent`); what it leaves in
/// `resources` is dropped when it returns.
pub(crate) struct Lent<F>(pub(crate) F);

impl<F: FnMut(&mut Completion)> Sink for Lent<F> {
    #[inline(always)]
    fn owning(&mut self, mut c: Completion) {
        (self.0)(&mut c)
    }
    #[inline(always)]
    fn lean(&mut self, id: OpId, user_data: u64, outcome: Outcome) {
        let mut c = Completion {
            id,
            user_data,
            outcome,
            resources: Resources::None,
            more: false,
        };
        (self.0)(&mut c);
        // Nothing to drop unless the closure put resources in (the drop glue is an
        // out-of-line call; skipping it is the point of lending). A separate function,
        // so that the compiler cannot merge both arms into one unconditional drop.
        if matches!(c.resources, Resources::None) {
            std::mem::forget(c);
        } else {
            drop_lent(c);
        }
    }
}

#[cold]
#[inline(never)]
fn drop_lent(c: Completion) {
    drop(c);
}
