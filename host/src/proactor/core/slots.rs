//! Slot life: allocation, finishing (delivery, futures, linked sequences), release,
//! cancellation.

use std::sync::Weak;

use super::{
    Chain, Core, Delivery, Done, Driver, Shared, Slot, SlotExt, State, NONE, SLOT_GEN_MASK,
};
use crate::proactor::caps::{Capabilities, Capability};
use crate::proactor::op::{CancelStatus, OpError, OpId, Outcome, Resources};
use crate::proactor::operation::Operation;
use crate::proactor::ops::{Env, OpKind};
use crate::proactor::sync::{SoftWaiter, Subscriber};
use crate::proactor::sys;

/// Parks a raw-path completion for delivery.
#[inline]
fn park(
    done: &mut Vec<Done>,
    done_res: &mut Vec<Resources>,
    id: OpId,
    user_data: u64,
    outcome: Outcome,
    resources: Resources,
) {
    let owns = !matches!(resources, Resources::None);
    if owns {
        done_res.push(resources);
    }
    done.push(Done {
        id,
        user_data,
        outcome,
        owns,
        more: false,
    });
}

fn outcome_is_ok(slot_expected: Option<usize>, o: &Outcome) -> bool {
    match o {
        Outcome::Ok(n) => slot_expected.map_or(true, |e| *n as usize >= e),
        _ => false,
    }
}

/// `Core::alloc` on the slot table's fields (so a caller can keep other parts of the
/// core borrowed), in the given state; hands back the index, the slot and its key
/// (one slot lookup for the whole submission of an op).
#[inline(always)]
pub(crate) fn alloc_slot<'a, X: SlotExt>(
    slots: &'a mut [Slot<X>],
    free: &mut Vec<u32>,
    live: &mut usize,
    op: Operation,
    future: bool,
    state: State,
) -> (u32, &'a mut Slot<X>, u64) {
    let idx = free.pop().expect("caller checked free_slots");
    *live += 1;
    let s = &mut slots[idx as usize];
    debug_assert!(
        s.state == State::Free
            && s.op.is_none()
            && s.result.is_none()
            && s.prev == NONE
            && s.next == NONE
            && s.chain == Chain::None
            && !s.cancel
            && !s.soft
            && s.ext.is_reset()
            && matches!(s.delivery, Delivery::Callback)
    );
    // A free slot holds no op (`release`): nothing to drop, so no drop check. Written
    // first, with nothing that may call out in between, so that the operation is
    // copied straight from where the caller had it into the slot.
    std::mem::forget(s.op.replace(op.kind));
    // Never 0, so that no key is 0 (`OpId::default()`).
    let gen = match s.gen.wrapping_add(1) & SLOT_GEN_MASK {
        0 => 1,
        g => g,
    };
    s.gen = gen;
    s.state = state;
    if future {
        // A free slot's delivery is `Callback` (`release`): no waker to drop.
        std::mem::forget(std::mem::replace(&mut s.delivery, Delivery::Future(None)));
    }
    s.user_data = op.user_data;
    (idx, s, OpId::new(idx, gen).0)
}

impl<D: Driver> Core<D> {
    pub(crate) fn new(max: u32, be: D::State) -> Core<D> {
        Core {
            slots: (0..max).map(|_| Slot::new()).collect(),
            free: (0..max).rev().collect(),
            done: Vec::with_capacity(max as usize),
            done_res: Vec::with_capacity(max as usize),
            wakers: Vec::with_capacity(max as usize),
            live: 0,
            files: Vec::new(),
            native_files: 0,
            timed: 0,
            be,
        }
    }

    pub(crate) fn free_slots(&self) -> usize {
        self.free.len()
    }

    /// What operations may look at (capabilities, registered files).
    #[inline(always)]
    pub(crate) fn env(&self, caps: Capabilities) -> Env<'_> {
        Env {
            caps,
            files: &self.files,
            native_files: self.native_files,
        }
    }

    /// Takes a free slot for `op`. A free slot already holds the defaults `release`
    /// restores (no chain, no cancel state, no op, no result), so only what describes
    /// the new operation is written here.
    #[inline(always)]
    pub(crate) fn alloc(&mut self, op: Operation, future: bool) -> u32 {
        alloc_slot(
            &mut self.slots,
            &mut self.free,
            &mut self.live,
            op,
            future,
            State::Queued,
        )
        .0
    }

    /// Frees slot `idx`, restoring every per-operation field to its default (which
    /// `alloc` relies on).
    #[inline(always)]
    pub(crate) fn release(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        s.state = State::Free;
        s.op = None;
        s.result = None;
        s.delivery = Delivery::Callback;
        s.cancel = false;
        s.soft = false;
        s.chain = Chain::None;
        s.prev = NONE;
        s.next = NONE;
        s.ext.reset();
        self.live -= 1;
        self.free.push(idx);
    }

    /// Looks up a live slot by id.
    #[inline(always)]
    pub(crate) fn find(&self, id: OpId) -> Option<u32> {
        let s = self.slots.get(id.index() as usize)?;
        (s.gen == id.gen() && s.state != State::Free).then_some(id.index())
    }

    /// Hands a queued slot to the driver (or completes it at once).
    #[inline]
    pub(crate) fn start(&mut self, sh: &Shared<D>, idx: u32) {
        self.start_as(sh, idx, true);
    }

    /// `start`, told whether the operation may carry a timeout (`false` when the
    /// submission already knows it does not: its kind is then not looked at again).
    #[inline]
    pub(crate) fn start_as(&mut self, sh: &Shared<D>, idx: u32, may_time_out: bool) {
        let s = &mut self.slots[idx as usize];
        debug_assert_eq!(s.state, State::Queued);
        s.state = State::Running;
        if s.cancel {
            self.finish(sh, idx, Outcome::Cancelled);
            return;
        }
        // The cheap tests first: without a possible timeout, or with native timeouts
        // (io_uring), the operation's kind is not looked at for one.
        if may_time_out && !sh.caps.is_native(Capability::OperationTimeouts) {
            if let Some(ns) = s.op.as_ref().map(OpKind::timeout_ns).filter(|&ns| ns != 0) {
                s.deadline = sys::monotonic_ns().saturating_add(ns);
                self.timed += 1;
            }
        }
        // A user-space wait (emulated notification wait, semaphore wait): subscribed
        // to its object, completed by `soft_complete` (ops decide; see `OpKind::soft`).
        if s.op.as_ref().is_some_and(|o| o.soft(sh.caps)) {
            s.soft = true;
            let key = s.key(idx);
            let me: Weak<dyn SoftWaiter> = sh.me.clone();
            let now =
                s.op.as_ref()
                    .and_then(|o| o.soft_subscribe(Subscriber { proactor: me, key }));
            if let Some(outcome) = now {
                self.finish(sh, idx, outcome);
            }
            return;
        }
        sh.driver.start(sh, self, idx);
    }

    /// Records the outcome of slot `idx` exactly once: advances or breaks its linked
    /// sequence, then delivers (raw path), stores (future) or drops (detached).
    #[inline(always)]
    pub(crate) fn finish(&mut self, sh: &Shared<D>, idx: u32, outcome: Outcome) {
        // Fast path: an unlinked operation on the raw path without an emulated
        // timeout, decided on one look at the slot.
        let Core {
            slots,
            done,
            done_res,
            free,
            live,
            ..
        } = self;
        let s = &mut slots[idx as usize];
        if s.deadline == 0
            && s.next == NONE
            && s.prev == NONE
            && matches!(s.delivery, Delivery::Callback)
        {
            let id = OpId(s.key(idx));
            let user_data = s.user_data;
            // Lean path: an op that owns nothing (nop, timer, fsync) only has its tag
            // cleared (forgetting the taken value skips the drop glue), and its
            // completion is built with constant resources.
            if s.op.as_ref().is_some_and(OpKind::owns_nothing) {
                std::mem::forget(s.op.take());
                done.push(Done {
                    id,
                    user_data,
                    outcome,
                    owns: false,
                    more: false,
                });
            } else {
                let resources = match s.op.take() {
                    Some(op) => op.into_resources(),
                    None => unreachable!("running slot has an op"),
                };
                park(done, done_res, id, user_data, outcome, resources);
            }
            // Like `release`, minus what already holds its default here: the op was
            // just taken, the delivery is `Callback`, and a raw-path slot never stores
            // a result.
            debug_assert!(s.op.is_none() && s.result.is_none());
            s.state = State::Free;
            s.cancel = false;
            s.soft = false;
            s.chain = Chain::None;
            s.ext.reset();
            *live -= 1;
            free.push(idx);
            return;
        }
        self.finish_cold(sh, idx, outcome);
    }

    /// `finish` of a slot with an emulated timeout, a linked step, a future or a
    /// detached operation.
    #[inline(never)]
    fn finish_cold(&mut self, sh: &Shared<D>, idx: u32, outcome: Outcome) {
        let s = &self.slots[idx as usize];
        if s.deadline != 0 {
            let outcome = self.settle_timeout(idx, outcome);
            // Now without a deadline: the fast path may take it.
            self.finish(sh, idx, outcome);
        } else {
            self.finish_slow(sh, idx, outcome);
        }
    }

    /// `finish` for linked steps, futures and detached operations.
    fn finish_slow(&mut self, sh: &Shared<D>, idx: u32, outcome: Outcome) {
        let mut idx = idx;
        let mut outcome = outcome;
        loop {
            let s = &mut self.slots[idx as usize];
            debug_assert!(matches!(s.state, State::Running | State::Queued));
            let (prev, next) = (s.prev, s.next);
            let chain = s.chain;
            let ok = next != NONE
                && outcome_is_ok(s.op.as_ref().and_then(OpKind::expected_len), &outcome);
            // Splice this step out. Emulated sequences finish front to back (prev is
            // NONE); the kernel may post a later step's CQE before an earlier one's, so
            // a kernel-linked step can finish with its predecessor still pending.
            if prev != NONE {
                self.slots[prev as usize].next = next;
            }
            if next != NONE {
                self.slots[next as usize].prev = prev;
            }
            let s = &mut self.slots[idx as usize];
            s.next = NONE;
            s.prev = NONE;
            s.chain = Chain::None;
            let op = s.op.take().expect("running slot has an op");
            let resources = op.into_resources();
            let key = s.key(idx);
            match std::mem::replace(&mut s.delivery, Delivery::Callback) {
                Delivery::Callback => {
                    let user_data = s.user_data;
                    park(
                        &mut self.done,
                        &mut self.done_res,
                        OpId(key),
                        user_data,
                        outcome,
                        resources,
                    );
                    self.release(idx);
                }
                Delivery::Future(w) => {
                    s.state = State::Done;
                    s.result = Some((outcome, resources));
                    s.delivery = Delivery::Future(None);
                    s.ext.reset();
                    if let Some(w) = w {
                        self.wakers.push(w);
                    }
                }
                Delivery::Detached => {
                    drop(resources);
                    self.release(idx);
                }
            }
            if next == NONE {
                return;
            }
            match chain {
                // The kernel delivers the rest itself (-ECANCELED after a failure).
                Chain::Kernel | Chain::None => return,
                Chain::Emulated => {
                    if ok {
                        self.start(sh, next);
                        return;
                    }
                    idx = next;
                    outcome = Outcome::Cancelled;
                }
            }
        }
    }

    /// Delivers one result of multishot slot `idx` that does not end it (raw path
    /// only: multishot operations cannot be futures).
    pub(crate) fn emit(&mut self, idx: u32, outcome: Outcome, resources: Resources) {
        let s = &self.slots[idx as usize];
        let owns = !matches!(resources, Resources::None);
        if owns {
            self.done_res.push(resources);
        }
        self.done.push(Done {
            id: OpId(s.key(idx)),
            user_data: s.user_data,
            outcome,
            owns,
            more: true,
        });
    }

    /// Ends the emulated timeout of slot `idx`: a cancellation it caused becomes
    /// `ETIMEDOUT`.
    #[cold]
    fn settle_timeout(&mut self, idx: u32, outcome: Outcome) -> Outcome {
        let s = &mut self.slots[idx as usize];
        s.deadline = 0;
        self.timed -= 1;
        let timed_out = std::mem::take(&mut s.timed_out);
        match (&s.op, outcome) {
            (Some(op), Outcome::Cancelled) if timed_out => Outcome::Err(OpError {
                op: op.code(),
                errno: libc::ETIMEDOUT,
            }),
            _ => outcome,
        }
    }

    /// Cancels the running operations whose emulated timeout has passed, earliest deadline
    /// first (so their completions are delivered in deadline order, not slot order); returns
    /// the earliest deadline still pending (CLOCK_MONOTONIC nanoseconds). One pass per expired
    /// operation plus one: expiries are rare, and this keeps the path free of allocation.
    pub(crate) fn expire_timeouts(&mut self, sh: &Shared<D>) -> Option<u64> {
        let now = sys::monotonic_ns();
        loop {
            let mut next: Option<u64> = None;
            let mut due: Option<(u64, u32)> = None;
            for (idx, s) in self.slots.iter().enumerate() {
                if s.deadline == 0 || s.timed_out || s.cancel {
                    continue;
                }
                if s.deadline <= now && s.state == State::Running {
                    if !matches!(due, Some((d, _)) if d <= s.deadline) {
                        due = Some((s.deadline, idx as u32));
                    }
                } else {
                    next = Some(next.map_or(s.deadline, |n| n.min(s.deadline)));
                }
            }
            let Some((_, idx)) = due else {
                return next;
            };
            self.slots[idx as usize].timed_out = true;
            self.cancel_slot(sh, idx);
        }
    }

    /// First step of `idx`'s sequence that has not finished (`idx` itself if unlinked).
    pub(crate) fn chain_front(&self, mut idx: u32) -> u32 {
        while self.slots[idx as usize].prev != NONE {
            idx = self.slots[idx as usize].prev;
        }
        idx
    }

    pub(crate) fn cancel(&mut self, sh: &Shared<D>, id: OpId) -> CancelStatus {
        let Some(target) = self.find(id) else {
            return CancelStatus::NotFound;
        };
        if self.slots[target as usize].state == State::Done {
            return CancelStatus::NotFound;
        }
        // A linked sequence is cancelled as a unit from its running step on: that step
        // and every later one complete as Cancelled (steps already done are unaffected).
        self.slots[target as usize].cancel = true;
        let front = self.chain_front(target);
        self.cancel_slot(sh, front);
        CancelStatus::Requested
    }

    pub(crate) fn cancel_slot(&mut self, sh: &Shared<D>, idx: u32) {
        let s = &mut self.slots[idx as usize];
        s.cancel = true;
        match s.state {
            State::Queued => self.finish(sh, idx, Outcome::Cancelled),
            State::Running if s.soft => {
                let me: Weak<dyn SoftWaiter> = sh.me.clone();
                if let Some(op) = &s.op {
                    op.soft_unsubscribe(s.key(idx), &me);
                }
                self.finish(sh, idx, Outcome::Cancelled);
            }
            State::Running => sh.driver.cancel(sh, self, idx),
            State::Free | State::Done => {}
        }
    }

    /// Completes an emulated notification wait (called by `Notification::signal`).
    pub(crate) fn soft_complete(&mut self, sh: &Shared<D>, key: u64) -> bool {
        let Some(idx) = self.find(OpId(key)) else {
            return false;
        };
        let s = &self.slots[idx as usize];
        if s.state != State::Running || !s.soft {
            return false;
        }
        // The op decides whether its wait is over (a wait on several objects may
        // still wait for another one).
        let me: Weak<dyn SoftWaiter> = sh.me.clone();
        let Some(outcome) = s.op.as_ref().and_then(|o| o.soft_check(key, &me)) else {
            return false;
        };
        self.finish(sh, idx, outcome);
        true
    }
}
