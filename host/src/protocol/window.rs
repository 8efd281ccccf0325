//! §3 steps 1–3 and §5.5: marking positions ready in a publication window (`sq_pub`, `cq_pub`) and advancing its
//! prefix with one device-local CAS; publishing filled SQE tickets, after which the lane that advanced the prefix
//! rings the SQ doorbell ([`super::doorbell`]). Used by the commit paths ([`super::publish`]), by the filler of a
//! dropped reservation ([`super::reserve`]) and by reaping ([`super::reap`]).
#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

use super::doorbell::{ring, Bell};
use super::lane::LaneError;
use crate::local_off;
use crate::ring::bus::{Local, RingBus};
use crate::ring::layout::Sqe;

/// `user_data` payload of a fire-and-forget op: lane in bits 16–31 (0xffff: none), staging line + 1 in bits 0–15
/// (0: none).
pub(super) fn ff_user_data(lane: u32, line: Option<u32>) -> u64 {
    (((lane & 0xffff) << 16) | line.map_or(0, |l| l + 1)) as u64
}

/// Writes SQE `ticket` and publishes it (§3 fill + publish). `Err` (counted): `sq_pub` no longer has `ticket`
/// in its window, so the SQE was written but not published.
pub(super) fn publish_sqe(bus: &RingBus<'_, '_>, ticket: u32, sqe: &Sqe) -> Result<(), LaneError> {
    bus.write_sqe(ticket, sqe);
    publish_tickets(bus, ticket, 1)?;
    // The SQ thread reads this SQE next: hand its line to the shared cache, now that the publishing CAS and the
    // doorbell (locked RMWs, which would wait for the demotion) are done (`RingView::demote_sqe`).
    bus.demote_sqe(ticket);
    Ok(())
}

/// §3 publish of the filled tickets `first..first + k` (k ≤ 32) with one CAS; rings the SQ doorbell if the
/// published prefix moved.
pub(super) fn publish_tickets(bus: &RingBus<'_, '_>, first: u32, k: u32) -> Result<(), LaneError> {
    let violations = bus.local(local_off!(protocol_violations));
    if mark_and_advance(&bus.local64(local_off!(sq_pub)), first, k, &violations)?.is_some() {
        ring(bus, Bell::Sq);
    }
    // If nobody has reserved past these tickets, the next one is likely this lane's next (alone on the ring, or
    // a subgroup's next batch): take its SQE's line now, while the operation runs, not during the next fill. A
    // ticket another lane already holds is left alone (the prefetch would take the line from its filler).
    // Relaxed: a hint only.
    let next = first.wrapping_add(k);
    if bus.local(local_off!(sq_reserve)).load(Relaxed) == next {
        bus.prefetch_sqe(next);
    }
    Ok(())
}

/// A word `mark_and_advance` works on: a device-local accessor, or a bare atomic (unit tests).
pub(crate) trait WindowWord {
    fn load_relaxed(&self) -> u64;
    fn cas_acq_rel(&self, cur: u64, new: u64) -> Result<u64, u64>;
}

impl WindowWord for Local<'_, AtomicU64> {
    fn load_relaxed(&self) -> u64 {
        self.load(Relaxed)
    }
    fn cas_acq_rel(&self, cur: u64, new: u64) -> Result<u64, u64> {
        self.compare_exchange_weak(cur, new, AcqRel, Relaxed)
    }
}

impl WindowWord for AtomicU64 {
    fn load_relaxed(&self) -> u64 {
        self.load(Relaxed)
    }
    fn cas_acq_rel(&self, cur: u64, new: u64) -> Result<u64, u64> {
        self.compare_exchange_weak(cur, new, AcqRel, Relaxed)
    }
}

/// A counter `mark_and_advance` counts violations in.
pub(crate) trait ViolationCounter {
    fn count(&self);
}

impl ViolationCounter for Local<'_, AtomicU32> {
    fn count(&self) {
        // Relaxed: a statistic; nothing is ordered by it.
        self.fetch_add(1, Relaxed);
    }
}

impl ViolationCounter for AtomicU32 {
    fn count(&self) {
        self.fetch_add(1, Relaxed);
    }
}

/// §3 steps 1–3 (and §5.5): sets the bits for `pos..pos + k` (1 ≤ k ≤ 32) in a (low: base, high: bitmap) word
/// and advances the base over the prefix of set bits. Returns the new base if it moved. Positions outside the
/// 32-wide window (device code rewrote the word) are counted in `violations` and nothing is marked.
pub(crate) fn mark_and_advance(
    word: &impl WindowWord,
    pos: u32,
    k: u32,
    violations: &impl ViolationCounter,
) -> Result<Option<u32>, LaneError> {
    let k = k.clamp(1, 32);
    let mask = if k == 32 { u32::MAX } else { (1u32 << k) - 1 };
    let mut old = word.load_relaxed();
    loop {
        let base = old as u32;
        let off = pos.wrapping_sub(base);
        if off >= 32 || off + k > 32 {
            violations.count();
            return Err(LaneError::ProtocolViolation);
        }
        let bits = (old >> 32) as u32 | (mask << off);
        let m = bits.trailing_ones();
        let nbase = base.wrapping_add(m);
        let nbits = if m == 32 { 0 } else { bits >> m };
        let new = nbase as u64 | ((nbits as u64) << 32);
        // AcqRel: release publishes this lane's stores (SQE or CQE read); acquire takes in those of the lanes
        // whose bits this CAS consumes, so the doorbell holder that acquires this word sees them all.
        match word.cas_acq_rel(old, new) {
            Ok(_) => return Ok((m > 0).then_some(nbase)),
            Err(cur) => old = cur,
        }
    }
}
