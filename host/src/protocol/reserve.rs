//! §3 reservation and §4 credits: a lane takes CQ credits and SQ tickets with one device-local CAS each, for
//! itself or (a [`super::subgroup::Subgroup`]) for up to 32 lanes at once.
#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::sync::atomic::Ordering::*;

use io_uring::opcode;

use super::doorbell::{take_pending, Bell};
use super::lane::{backoff, violation, Lane, LaneError};
use super::shared::*;
use super::window::{ff_user_data, publish_sqe};
use crate::local_off;
use crate::ring::bus::{BusMeter, RingBus};
use crate::ring::layout::Sqe;
use crate::ring::RingView;

/// An SQ ticket held between reservation and publication (§3). It must be committed; if dropped it is
/// published as a NOP so the ring never stalls on a hole (the accesses of that NOP are not counted in any
/// lane's bus counters).
#[must_use = "a reservation must be committed, or the SQ stalls until it is dropped"]
pub struct Reservation<'a> {
    pub(super) view: RingView<'a>,
    pub(super) ticket: u32,
    pub(super) base_flags: u8,
    pub(super) live: bool,
}

impl Reservation<'_> {
    /// The SQ ticket.
    pub fn ticket(&self) -> u32 {
        self.ticket
    }
}

/// The NOP that fills an abandoned ticket: its CQE returns the credit.
pub(super) fn hole_nop(base_flags: u8) -> Sqe {
    let mut sqe = Sqe::from_entry(&opcode::Nop::new().build());
    sqe.flags |= base_flags;
    sqe.user_data = TAG_FF | ff_user_data(u32::MAX, None);
    sqe
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.live {
            let meter = BusMeter::default();
            let bus = RingBus::new(self.view, &meter);
            // A window violation is counted inside; nothing else can be done with the ticket.
            let _ = publish_sqe(&bus, self.ticket, &hole_nop(self.base_flags));
        }
    }
}

/// §4: takes up to `n` CQ credits with one CAS. Returns how many (0: none free, or the word is corrupted).
pub(super) fn take_credits(bus: &RingBus<'_, '_>, n: u32) -> u32 {
    let c = bus.local(local_off!(cq_credits));
    let pool = bus.view().layout().credit_pool;
    for _ in 0..RESERVE_TRIES {
        let cur = c.load_waited(Relaxed);
        if cur == 0 {
            break;
        }
        if cur > pool {
            // More credits than the pool holds: device code rewrote the word (§4).
            violation(bus);
            break;
        }
        let k = cur.min(n);
        // Relaxed: a credit orders nothing; the CQ it stands for is bounded by the counts alone.
        if c.compare_exchange_weak(cur, cur - k, Relaxed, Relaxed)
            .is_ok()
        {
            return k;
        }
    }
    0
}

/// §4: returns `n` credits.
pub(super) fn return_credits(bus: &RingBus<'_, '_>, n: u32) {
    if n > 0 {
        // Relaxed: see `take_credits`.
        bus.local(local_off!(cq_credits)).fetch_add(n, Relaxed);
    }
}

/// Why a ticket could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoTicket {
    SqFull,
    WindowFull,
    Violation,
    Contended,
}

/// §3: takes up to `n` contiguous SQ tickets with one CAS: `(first, k)`. `head_seen` is the caller's cached
/// kernel SQ head (acquired before; it only moves forward), reloaded only when it does not show room.
pub(super) fn take_tickets(
    bus: &RingBus<'_, '_>,
    n: u32,
    head_seen: &mut u32,
) -> Result<(u32, u32), NoTicket> {
    let l = *bus.view().layout();
    let reserve = bus.local(local_off!(sq_reserve));
    let sq_head = bus.kernel(l.sq_head);
    let sq_pub = bus.local64(local_off!(sq_pub));
    let room = |head: u32, r: u32| head.wrapping_add(l.sq_entries).wrapping_sub(r);
    let short = |room: u32| room == 0 || room > l.sq_entries.saturating_mul(2);
    for _ in 0..RESERVE_TRIES {
        // Acquire, paired with the release of the CAS below: the head and prefix the lane that reserved up to
        // `r` had read happen before this lane's loads of them, so an honest `r` is never ahead of what this lane
        // reads next (on weakly ordered devices a relaxed load could see a newer ticket with an older head and
        // count a false violation; the loom model `weakened_ticket_relaxed` shows it).
        let r = reserve.load(Acquire);
        // Acquire: the SQE stores of every published ticket (this lane's own checks only need the value).
        let published = sq_pub.load(Acquire) as u32;
        let mut sq_room = room(*head_seen, r);
        if short(sq_room) {
            // The cached head shows no room (or is far behind): reload it. Acquire: the kernel has finished
            // reading every SQE before the head.
            *head_seen = sq_head.load_waited(Acquire);
            sq_room = room(*head_seen, r);
        }
        let head = *head_seen;
        // `r` was read before the head was loaded (or the cached head is older still), and head and the
        // published tail only move forward and never pass a reservation: `r` ahead of the head by more than
        // the SQ, or of the published tail by more than the window, means device code rewrote a word (§3). (A
        // stale `r` is behind, not ahead.)
        if r.wrapping_sub(head) as i32 > l.sq_entries as i32
            || r.wrapping_sub(published) as i32 > l.w_sq as i32
        {
            violation(bus);
            return Err(NoTicket::Violation);
        }
        let w_room = published.wrapping_add(l.w_sq).wrapping_sub(r);
        if short(sq_room) {
            return Err(NoTicket::SqFull);
        }
        if w_room == 0 || w_room > l.w_sq {
            return Err(NoTicket::WindowFull);
        }
        let k = n.min(sq_room).min(w_room);
        // Release on success: carries the head and prefix this lane read to the next reserver's acquire load (see
        // above). The SQE a ticket names is published through `sq_pub`, not through this word.
        if reserve
            .compare_exchange_weak(r, r.wrapping_add(k), Release, Relaxed)
            .is_ok()
        {
            return Ok((r, k));
        }
    }
    Err(NoTicket::Contended)
}

impl<'a> Lane<'a> {
    /// One attempt to reserve an SQ slot with its CQ credit. Never waits.
    pub fn try_reserve(&mut self) -> Result<Reservation<'a>, LaneError> {
        let bus = RingBus::new(self.view, &self.meter);
        take_pending(&bus, Bell::Sq);
        take_pending(&bus, Bell::Cq);
        if take_credits(&bus, 1) == 0 {
            self.stats.no_credit += 1;
            return Err(LaneError::WouldBlock);
        }
        match take_tickets(&bus, 1, &mut self.sq_head_seen) {
            Ok((ticket, _)) => Ok(Reservation {
                view: self.view,
                ticket,
                base_flags: self.base_flags,
                live: true,
            }),
            Err(why) => {
                match why {
                    NoTicket::SqFull => self.stats.sq_full += 1,
                    NoTicket::WindowFull => self.stats.window_full += 1,
                    NoTicket::Violation | NoTicket::Contended => {}
                }
                return_credits(&bus, 1);
                Err(LaneError::WouldBlock)
            }
        }
    }

    /// Reserves, reaping and backing off between attempts, for at most `budget` attempts.
    pub fn reserve(&mut self, budget: u32) -> Result<Reservation<'a>, LaneError> {
        let mut i = 0;
        loop {
            match self.try_reserve() {
                Ok(r) => return Ok(r),
                Err(LaneError::WouldBlock) => {
                    // Always reap before giving up: with a zero budget this is what frees credits.
                    self.reap(16);
                    if i >= budget {
                        return Err(LaneError::TimedOut);
                    }
                    backoff(i);
                    i += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
