//! Where `submit_many` takes its operations from ([`OpSource`]): a caller's `Vec`
//! (drained, its capacity kept) or a single operation.

use crate::proactor::operation::Operation;

/// A source of operations for `submit_many`: inspected first, consumed only once
/// the whole submission is accepted.
pub(crate) trait OpSource {
    fn ops(&self) -> &[Operation];
    /// Moves the operations out, in order, into `f`.
    fn take_each(&mut self, f: impl FnMut(Operation));
}

impl OpSource for Vec<Operation> {
    #[inline(always)]
    fn ops(&self) -> &[Operation] {
        self
    }
    /// Like `drain(..).for_each(f)`, without the `Option<Operation>` that `Drain`
    /// hands out: matching on that copy's tag made the compiler move each operation
    /// through the stack in pieces of other sizes than it then read them with (a
    /// failed store-to-load forward per operation, the largest single cost of the
    /// general submission path). Read straight from the buffer, each operation is
    /// copied into its slot in one go.
    #[inline(always)]
    fn take_each(&mut self, mut f: impl FnMut(Operation)) {
        let len = self.len();
        // Emptied first: if `f` panics, the operations not yet taken leak instead of
        // being dropped twice.
        // SAFETY: 0 <= capacity, and no element below `len` is read through the Vec
        // again.
        unsafe { self.set_len(0) };
        let base = self.as_ptr();
        for i in 0..len {
            // SAFETY: `i < len`, the old length: initialised, and read exactly once
            // (the Vec no longer counts it, so it neither drops nor hands it out).
            f(unsafe { std::ptr::read(base.add(i)) });
        }
    }
}

impl OpSource for Option<Operation> {
    #[inline(always)]
    fn ops(&self) -> &[Operation] {
        self.as_slice()
    }
    #[inline(always)]
    fn take_each(&mut self, f: impl FnMut(Operation)) {
        self.take().into_iter().for_each(f);
    }
}
