//! §5 reaping: any lane claims CQEs with one device-local CAS (several at once when several are posted),
//! dispatches each into its completion slot or counters, marks them read in `cq_pub`, and the lane that
//! advanced the released head rings the CQ doorbell ([`super::doorbell`]).
#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::sync::atomic::Ordering::*;

use super::doorbell::{ring, settle_cq_head, take_pending, Bell};
use super::lane::{violation, Lane};
use super::log_target::Caches;
use super::print_log::take_pending_log;
use super::reserve::return_credits;
use super::shared::*;
use super::window::mark_and_advance;
use crate::local_off;
use crate::ring::bus::RingBus;

/// What claiming found.
pub(super) enum Claim {
    /// CQEs `first..first + k` are this caller's.
    Got(u32, u32),
    /// Nothing to claim now.
    Empty,
    /// A word is outside the protocol (counted); stop reaping.
    Violation,
}

/// §5 claim of up to `max` posted CQEs with one CAS. `tail_seen` is the caller's cached CQ tail (acquired
/// before; the CQEs before it are written), reloaded only when the claim has reached it.
pub(super) fn claim(bus: &RingBus<'_, '_>, max: u32, tail_seen: &mut u32) -> Claim {
    let l = *bus.view().layout();
    let claim = bus.local(local_off!(cq_claim));
    let cq_pub = bus.local64(local_off!(cq_pub));
    for _ in 0..RESERVE_TRIES {
        // Acquire, paired with the release of the claiming CAS below: the tail and heads the lane that claimed up
        // to `c` had read happen before this lane's loads of them, so an honest claim is never ahead of them.
        let c = claim.load(Acquire);
        let ahead = tail_seen.wrapping_sub(c);
        if ahead == 0 || ahead > l.cq_entries {
            // The cached tail shows nothing to claim (or is not a tail this claim can be behind): reload it.
            // Acquire: every CQE before the tail is written.
            *tail_seen = bus.kernel(l.cq_tail).load_waited(Acquire);
        }
        let tail = *tail_seen;
        if c == tail {
            return Claim::Empty;
        }
        let released = cq_pub.load(Relaxed) as u32;
        // `c` was read before the tail was loaded (or the cached tail is older); the tail and the released head
        // only move forward and never pass a claim. A claim ahead of the tail, or ahead of the released head
        // by more than the window, means device code rewrote a word (§5): counted, and reaping stops. (A stale
        // `c` is behind, not ahead.)
        if c.wrapping_sub(tail) as i32 > 0 || c.wrapping_sub(released) as i32 > l.w_cq as i32 {
            violation(bus);
            return Claim::Violation;
        }
        // The window counts from the head the CQ-bell holder last stored into the kernel's `cq.head`, not from
        // `cq_pub`'s released head: the credits of claimed CQEs come back as they are dispatched, so the CQEs the
        // kernel still counts as unread must stay within the `W_CQ` the credit pool leaves out (§4), however
        // long a holder takes to store the head. (Relaxed: holder-written; a stale value is behind, which only
        // narrows the window.)
        let stored = bus.local(local_off!(cq_head_stored)).load(Relaxed);
        let window = stored.wrapping_add(l.w_cq).wrapping_sub(c);
        let posted = tail.wrapping_sub(c);
        if window == 0 || window > l.w_cq || posted > l.cq_entries {
            return Claim::Empty;
        }
        let k = max.min(window).min(posted).min(32);
        if k == 0 {
            return Claim::Empty;
        }
        // Release on success: see the acquire load above. The CQEs were made visible by the tail acquire; the
        // claim only divides them.
        if claim
            .compare_exchange_weak(c, c.wrapping_add(k), Release, Relaxed)
            .is_ok()
        {
            return Claim::Got(c, k);
        }
    }
    Claim::Empty
}

/// §5.5: marks CQEs `first..first + k` read in `cq_pub`; rings the CQ doorbell if the released head moved.
/// False if `cq_pub` was rewritten under the caller (counted).
pub(super) fn release(bus: &RingBus<'_, '_>, first: u32, k: u32) -> bool {
    let violations = bus.local(local_off!(protocol_violations));
    match mark_and_advance(&bus.local64(local_off!(cq_pub)), first, k, &violations) {
        Ok(Some(_)) => {
            ring(bus, Bell::Cq);
            true
        }
        Ok(None) => true,
        Err(_) => false,
    }
}

/// Dispatches one CQE into its slot or the counters (§5). Returns the credits it frees.
pub(super) fn dispatch(bus: &RingBus<'_, '_>, ud: u64, res: i32, flags: u32) -> u32 {
    let l = *bus.view().layout();
    match ud & TAG_MASK {
        TAG_SLOT => {
            let (g, gen) = (ud as u32, (ud >> 32) as u32 & SLOT_GEN_MASK);
            let mut delivered = false;
            if g == LOG_SLOT {
                // The print log's write (§7): the same claim on the log's own slot.
                let state = bus.local(local_off!(log_wstate));
                if state
                    .compare_exchange(
                        slot_word(gen, RING_SLOT_PENDING),
                        slot_word(gen, RING_SLOT_REAPING),
                        Relaxed,
                        Relaxed,
                    )
                    .is_ok()
                {
                    bus.local_i32(local_off!(log_wres)).store(res, Relaxed);
                    // Release: the holder's acquire of DONE sees the result.
                    state.store(slot_word(gen, RING_SLOT_DONE), Release);
                    delivered = true;
                }
            } else if g < l.nslots() {
                let (state, result, fl, _) = bus.slot(g);
                // Claim the slot: only a PENDING slot of the same generation takes the CQE, and only once (a
                // duplicate or late CQE finds REAPING, DONE, FREE or another generation). Relaxed: the owner's
                // PENDING store reached us through the kernel (SQ tail release, CQ tail acquire).
                if state
                    .compare_exchange(
                        slot_word(gen, RING_SLOT_PENDING),
                        slot_word(gen, RING_SLOT_REAPING),
                        Relaxed,
                        Relaxed,
                    )
                    .is_ok()
                {
                    result.store(res, Relaxed);
                    fl.store(flags, Relaxed);
                    // Release: the owner's acquire of DONE sees result and flags.
                    state.store(slot_word(gen, RING_SLOT_DONE), Release);
                    delivered = true;
                }
            }
            if !delivered {
                // A stale or forged completion (another generation, no such slot): counted and recorded, never
                // delivered.
                bus.local(local_off!(foreign_cqes)).fetch_add(1, Relaxed);
                record_failure(bus, ud, res);
            }
            // Every TAG_SLOT CQE was paid for by a reservation's credit (§4), delivered or not.
            1
        }
        TAG_FF => {
            let lane = (ud as u32) >> 16;
            let line = ud as u32 & 0xffff;
            if res < 0 {
                record_failure(bus, ud, res);
                if line != 0 {
                    bus.local(local_off!(print_errors)).fetch_add(1, Relaxed);
                }
            }
            if lane < l.lanes {
                if line != 0 && line <= l.staging_lines {
                    // Release: the kernel is done with the line; its owner may refill it.
                    bus.lane_word(lane, line - 1).store(0, Release);
                }
                bus.lane_word(lane, l.staging_lines).fetch_sub(1, Release);
            }
            1
        }
        TAG_SKIP => {
            // Only failures of skip-success ops post; they hold no credit.
            bus.local(local_off!(skip_failures)).fetch_add(1, Relaxed);
            record_failure(bus, ud, res);
            0
        }
        _ => {
            // A CQE no lane recognises: counted and recorded, never dropped silently.
            bus.local(local_off!(foreign_cqes)).fetch_add(1, Relaxed);
            record_failure(bus, ud, res);
            0
        }
    }
}

pub(super) fn record_failure(bus: &RingBus<'_, '_>, ud: u64, res: i32) {
    // Relaxed: statistics, mirrored by the CQ-bell holder after the `cq_pub` release that follows.
    bus.local(local_off!(ff_errors)).fetch_add(1, Relaxed);
    bus.local_i32(local_off!(ff_last_error)).store(res, Relaxed);
    bus.local64(local_off!(ff_last_user_data))
        .store(ud, Relaxed);
}

/// Claims, dispatches and releases up to `max` CQEs; returns how many.
pub(super) fn reap_into(bus: &RingBus<'_, '_>, max: u32, tail_seen: &mut u32) -> u32 {
    take_pending(bus, Bell::Sq);
    take_pending(bus, Bell::Cq);
    // A handed-on print-log duty (§7): this lane takes it (its wait is on the kernel only).
    let mut head = 0;
    take_pending_log(
        bus,
        &mut Caches {
            cq_tail: tail_seen,
            sq_head: &mut head,
            reap: reap_into,
        },
        LOG_DRAFT_POLLS,
    );
    let mut n = 0;
    let mut rounds = 0;
    while n < max && rounds < max.saturating_add(RESERVE_TRIES) {
        rounds += 1;
        let (first, k) = match claim(bus, max - n, tail_seen) {
            Claim::Got(first, k) => (first, k),
            Claim::Empty | Claim::Violation => break,
        };
        let mut credits = 0;
        for i in 0..k {
            let cqe = bus.read_cqe(first.wrapping_add(i));
            credits += dispatch(bus, cqe.user_data, cqe.res, cqe.flags);
        }
        return_credits(bus, credits);
        n += k;
        // Release: this lane is done reading those CQEs. `cq_pub` rewritten under us (counted): stop.
        if !release(bus, first, k) {
            break;
        }
    }
    n
}

/// Wait polls of a lane drafted into a handed-on print-log duty by a reap pass (its own budget is not known
/// there).
const LOG_DRAFT_POLLS: u32 = 4096;

impl Lane<'_> {
    /// The §5 reap pass, for a print-log duty's [`Caches`] (§7).
    pub(super) fn reap_pass() -> fn(&RingBus<'_, '_>, u32, &mut u32) -> u32 {
        reap_into
    }

    /// Reaps up to `max` CQEs into their slots / counters. Returns how many.
    pub fn reap(&mut self, max: u32) -> u32 {
        let bus = RingBus::new(self.view, &self.meter);
        let n = reap_into(&bus, max, &mut self.cq_tail_seen);
        self.stats.reaped += n as u64;
        n
    }

    /// The host after a run: stores the released CQ head the lag left behind into the kernel's `cq.head`
    /// (§5.5). False if a lane still holds the CQ bell.
    pub(crate) fn settle_cq_head(&mut self) -> bool {
        settle_cq_head(&RingBus::new(self.view, &self.meter))
    }
}
