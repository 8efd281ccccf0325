//! The combining doorbell (PROTOCOL.md §3, §5): how the kernel's `sq.tail` and `cq.head` — host memory the
//! kernel reads — are written with plain stores by one lane at a time, instead of a read-modify-write by every
//! lane that advanced a published prefix.
//!
//! The bell is a device-local word with bits [`BELL_LOCK`] and [`BELL_DIRTY`]. A lane that advanced the prefix
//! (`sq_pub`'s tail, `cq_pub`'s head) sets both with one RMW; if LOCK was clear it becomes the holder and, for
//! at most [`BELL_ROUNDS`] rounds, clears DIRTY (acquire), reads the prefix (acquire), stores it into the kernel
//! word (release) if it moved, and releases LOCK with a CAS that fails while DIRTY is set again. A holder that
//! ran out of rounds clears LOCK and leaves DIRTY: the duty waits in device-local memory, and every lane that
//! touches the ring takes it ([`take_pending`]). No lane waits for another.
#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::sync::atomic::Ordering::*;

use super::shared::*;
use crate::ring::bus::RingBus;
use crate::{local_off, shared_off};

/// Which doorbell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bell {
    /// `sq_bell`: stores `sq_pub`'s tail into the kernel's `sq.tail`.
    Sq,
    /// `cq_bell`: stores `cq_pub`'s head into the kernel's `cq.head` and refreshes the mirrors.
    Cq,
}

impl Bell {
    fn word(self) -> u32 {
        match self {
            Bell::Sq => local_off!(sq_bell),
            Bell::Cq => local_off!(cq_bell),
        }
    }

    fn prefix(self) -> u32 {
        match self {
            Bell::Sq => local_off!(sq_pub),
            Bell::Cq => local_off!(cq_pub),
        }
    }

    fn stored(self) -> u32 {
        match self {
            Bell::Sq => local_off!(sq_tail_stored),
            Bell::Cq => local_off!(cq_head_stored),
        }
    }
}

/// Step 1, by a lane whose CAS advanced the published prefix (or that found a left-over duty): set LOCK and
/// DIRTY; become the holder if LOCK was clear.
pub(crate) fn ring(bus: &RingBus<'_, '_>, b: Bell) {
    let bell = bus.local(b.word());
    // Uncontended fast path: an idle bell (0) is taken with LOCK alone, and the first round needs no DIRTY to
    // clear: the CAS's acquire already takes in the previous holder's release and every DIRTY it cleared.
    // AcqRel as below.
    if bell.compare_exchange(0, BELL_LOCK, AcqRel, Relaxed).is_ok() {
        hold(bus, b, false);
        return;
    }
    // AcqRel: the release carries this lane's prefix advance to the holder whose DIRTY-clearing acquire reads
    // this RMW; the acquire, should this lane become the holder, takes in the previous holder's release (its
    // `stored` value).
    let old = bell.fetch_or(BELL_LOCK | BELL_DIRTY, AcqRel);
    if old & BELL_LOCK == 0 {
        hold(bus, b, true);
    }
}

/// Takes a duty a holder left after its rounds ran out: one relaxed load of the bell; DIRTY without LOCK means
/// nobody is storing the newest prefix, so this lane rings.
pub(crate) fn take_pending(bus: &RingBus<'_, '_>, b: Bell) {
    // Relaxed: only a hint; `ring`'s RMW does the ordering.
    let w = bus.local(b.word()).load(Relaxed);
    if w & BELL_DIRTY != 0 && w & BELL_LOCK == 0 {
        ring(bus, b);
    }
}

/// Step 2: the holder's rounds. `dirty`: whether the first round must clear DIRTY (taken with `fetch_or`).
fn hold(bus: &RingBus<'_, '_>, b: Bell, dirty: bool) {
    let l = *bus.view().layout();
    // The CQ head is stored once it is the lag ahead (§5.5); the SQ tail at once.
    let lag = match b {
        Bell::Sq => 1,
        Bell::Cq => cq_head_lag(l.w_cq),
    };
    hold_rounds(bus, b, dirty, lag);
}

/// After a run (no lane runs): stores the newest released CQ head into the kernel's `cq.head` if the lag left it
/// behind, as a holder (§5.5, §9). Returns false if a lane still holds the bell (a run is not over).
pub(crate) fn settle_cq_head(bus: &RingBus<'_, '_>) -> bool {
    let bell = bus.local(Bell::Cq.word());
    // AcqRel as `ring`'s fast path; DIRTY left by a holder out of rounds is taken along.
    let old = bell.fetch_or(BELL_LOCK, AcqRel);
    if old & BELL_LOCK != 0 {
        return false;
    }
    hold_rounds(bus, Bell::Cq, true, 1);
    true
}

/// The holder's rounds: stores the published prefix into the kernel word once it is at least `lag` ahead of what
/// was stored last.
fn hold_rounds(bus: &RingBus<'_, '_>, b: Bell, mut dirty: bool, lag: u32) {
    let l = *bus.view().layout();
    let bell = bus.local(b.word());
    let stored = bus.local(b.stored());
    let (kernel_off, entries) = match b {
        Bell::Sq => (l.sq_tail, l.sq_entries),
        Bell::Cq => (l.cq_head, l.cq_entries),
    };
    for _ in 0..BELL_ROUNDS {
        // (a) Acquire: synchronises with the release RMW of every lane whose DIRTY this clears, so their
        // prefix advances are visible to (b). (Skipped in a first round entered through the fast path: there
        // was no DIRTY.) A failed (d) means DIRTY was set, so every later round clears it.
        if dirty {
            bell.fetch_and(!BELL_DIRTY, Acquire);
        }
        dirty = true;
        // (b) Acquire: the SQE stores (CQE reads) of every position below the prefix, released by the
        // publishing CASes, happen before (c).
        let t = bus.local64(b.prefix()).load(Acquire) as u32;
        // Holder-only word: relaxed (the lock's release/acquire chain orders it between holders).
        let last = stored.load(Relaxed);
        if t != last {
            let ahead = t.wrapping_sub(last);
            if ahead <= entries {
                if ahead >= lag {
                    // (c) The only writer of the kernel word while LOCK is held. Release: the kernel's acquire
                    // of the index sees every SQE below it (SQ), or learns every CQE below it was read (CQ). (A
                    // GPU lane fences at system scope first: `__threadfence_system`, or a release store at
                    // device scope with `gl_StorageSemanticsBuffer | MakeAvailable` in Vulkan.)
                    bus.kernel(kernel_off).store(t, Release);
                    stored.store(t, Relaxed);
                }
                // The CQ head behind by less than the lag stays in the kernel word (§5.5): the kernel counts
                // those CQEs unread, within the window the credit pool leaves out, and claims count from
                // `stored`. The mirrors follow every release.
                mirrors(bus, b, t);
            } else {
                // The prefix moved backwards or past the ring: device code rewrote it. Counted; the kernel
                // word keeps its last good value (it never moves backwards).
                bus.local(local_off!(protocol_violations))
                    .fetch_add(1, Relaxed);
            }
        }
        // (d) Release: the next holder's acquire sees `stored`. Fails only if DIRTY was set again meanwhile.
        if bell
            .compare_exchange(BELL_LOCK, 0, Release, Relaxed)
            .is_ok()
        {
            return;
        }
    }
    // Out of rounds: leave DIRTY for the next lane that touches the ring. Release: as (d).
    bell.fetch_and(!BELL_LOCK, Release);
}

/// The counters the CQ-bell holder mirrors: (device-local, host-shared) offsets.
const MIRRORED: [(u32, u32); 6] = [
    (local_off!(ff_errors), shared_off!(ff_errors)),
    (local_off!(skip_failures), shared_off!(skip_failures)),
    (local_off!(lines_printed), shared_off!(lines_printed)),
    (local_off!(print_errors), shared_off!(print_errors)),
    (local_off!(foreign_cqes), shared_off!(foreign_cqes)),
    (
        local_off!(protocol_violations),
        shared_off!(protocol_violations),
    ),
];

/// The holder's mirror stores (host-shared words whose one writer it is, PROTOCOL.md §9), at each advance of the
/// prefix: the SQ holder copies the free credits into its mirror; the CQ holder the free credits and the released
/// head `t` into its own, and the counters (with the last failure) when their sum moved since it last copied them
/// (`mirror_sum`, holder-only).
fn mirrors(bus: &RingBus<'_, '_>, b: Bell, t: u32) {
    // Relaxed loads of device-local words (the bell's acquire chain orders what matters); release stores, so a
    // host that acquires a mirror sees the kernel index stored before it.
    let credits = bus.local(local_off!(cq_credits)).load(Relaxed);
    if b == Bell::Sq {
        bus.mirror(shared_off!(sq_credits_free))
            .store(credits, Release);
        return;
    }
    bus.mirror(shared_off!(credits_free))
        .store(credits, Release);
    bus.mirror(shared_off!(cq_released)).store(t, Release);
    let mut values = [0u32; MIRRORED.len()];
    for (v, (from, _)) in values.iter_mut().zip(MIRRORED) {
        *v = bus.local(from).load(Relaxed);
    }
    let sum = values.iter().fold(0u32, |a, v| a.wrapping_add(*v));
    let shadow = bus.local(local_off!(mirror_sum));
    if shadow.load(Relaxed) == sum {
        return;
    }
    shadow.store(sum, Relaxed);
    for (v, (_, to)) in values.iter().zip(MIRRORED) {
        bus.mirror(to).store(*v, Release);
    }
    let e = bus.local_i32(local_off!(ff_last_error)).load(Relaxed);
    bus.mirror_i32(shared_off!(ff_last_error)).store(e, Release);
    let ud = bus.local64(local_off!(ff_last_user_data)).load(Relaxed);
    bus.mirror64(shared_off!(ff_last_user_data))
        .store(ud, Release);
}
