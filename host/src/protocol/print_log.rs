//! §7 group-commit prints: the print log. A print reserves bytes in a log in host-shared memory (one
//! device-local CAS on `log_reserve`, for a lane or a whole subgroup), copies its line there with plain stores,
//! and marks its ticket complete in `log_pub` (one CAS, the §3 publish over tickets, carrying the completed byte
//! position). The lane whose CAS advanced the completed prefix rings the log's duty word `log_bell` (the §3
//! combining doorbell's LOCK/DIRTY hand-off): the holder submits **one** write covering every completed,
//! unsubmitted byte, waits (bounded) only for the kernel's completion of that write, and submits what
//! accumulated meanwhile; it leaves when nothing is in flight and nothing is left, or — after
//! [`LOG_DUTY_WRITES`] writes or its wait budget — hands the duty on in the DIRTY bit, which the next lane that
//! touches the ring (print, flush, reap) takes. Only the holder ever waits for a log write; every other lane
//! returns as soon as its range is complete.
//!
//! Word placement (PROTOCOL.md §1): every RMW word (`log_reserve`, `log_pub`, `log_bell`, the write's
//! completion slot `log_wstate`) is device-local; the log bytes are host-shared and written with plain stores
//! by the one lane that reserved them; the holder-only words (`log_sub`, `log_written`, `print_offset` in log
//! mode, the statistics) are device-local with one writer at a time.
#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::sync::atomic::Ordering::*;

use io_uring::{opcode, types};

use super::format::LineBuf;
use super::lane::{backoff, violation, Lane, LaneError};
pub(crate) use super::log_target::{Caches, LogTarget};
use super::reserve::{return_credits, take_credits, take_tickets};
use super::shared::*;
use super::window::publish_sqe;
use crate::local_off;
use crate::ring::bus::RingBus;
use crate::ring::layout::Sqe;

/// Why log bytes could not be reserved now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoRoom {
    /// Fewer than the asked bytes are free; this many are.
    Bytes(u32),
    /// All [`LOG_TICKETS`] tickets are between reservation and completion prefix.
    Tickets,
    /// A word is outside the protocol (counted).
    Violation,
    /// Every CAS attempt lost to another lane (which made progress).
    Contended,
}

/// `log_pub`'s parts: (completed byte position `D`, completed ticket prefix `C`, done bitmap).
fn pub_parts(w: u64) -> (u32, u16, u16) {
    (w as u32, (w >> 32) as u16, (w >> 48) as u16)
}

fn pub_word(d: u32, c: u16, bits: u16) -> u64 {
    d as u64 | (c as u64) << 32 | (bits as u64) << 48
}

/// Index of ticket `t` in the ticket arrays.
fn tix(t: u16) -> u32 {
    (t as u32 % LOG_TICKETS) * 4
}

/// Reserves `len` bytes and one ticket with one CAS on `log_reserve`: `(ticket, start)`.
pub(crate) fn reserve_bytes(
    bus: &RingBus<'_, '_>,
    t: &LogTarget,
    len: u32,
) -> Result<(u16, u32), NoRoom> {
    let res = bus.local64(local_off!(log_reserve));
    for _ in 0..RESERVE_TRIES {
        // The three words are read one at a time, and the other two move while this lane reads them: a lane
        // delayed between its loads (preempted, or just slow) sees `written` or `C` far behind `(R, N)`. So
        // `(R, N)` is read first and, before a violation is concluded, again: unchanged, it held from the
        // first load to the second, and `written` and `C`, loaded in between, were read within that interval —
        // where `R − written ≤ size` and `N − C ≤ LOG_TICKETS` hold. Acquire: pairs with the previous
        // reserver's release CAS, so the loads below see at least the `written` and `C` that reserver checked
        // against (a value older than that could make a sound word look like a violation).
        let cur = res.load(Acquire);
        // Acquire: pairs with the holder's release of `log_written`: the kernel has finished reading every
        // byte before it, so that space may be overwritten. A stale value only narrows the room.
        let written = bus.local(local_off!(log_written)).load(Acquire);
        // Acquire: every ticket below `C` was reserved before the completing CAS this reads (so `C ≤ N` unless
        // `(R, N)` moved since its load, which the second load below detects).
        let c = pub_parts(bus.local64(local_off!(log_pub)).load(Acquire)).1;
        let (r, n) = (cur as u32, (cur >> 32) as u16);
        let used = r.wrapping_sub(written);
        let outstanding = n.wrapping_sub(c);
        if used > t.size || outstanding as u32 > LOG_TICKETS {
            // Relaxed: coherence orders it after the loads above (they are acquire loads). Moved: the values
            // were read at different points — try again.
            if res.load(Relaxed) != cur {
                continue;
            }
            // `(R, N)` did not move while `written` and `C` were read: device code rewrote a word.
            violation(bus);
            return Err(NoRoom::Violation);
        }
        if outstanding as u32 == LOG_TICKETS {
            return Err(NoRoom::Tickets);
        }
        if t.size - used < len {
            return Err(NoRoom::Bytes(t.size - used));
        }
        let new = r.wrapping_add(len) as u64 | (n.wrapping_add(1) as u64) << 32;
        // Release on success: the next reserver's acquire load of `log_reserve` sees at least the `written` and
        // `C` this check used (see above); the bytes themselves are published by `log_pub`. Success also means
        // `(R, N)` did not move since `cur` was loaded, so the room computed above was not overstated.
        if res
            .compare_exchange_weak(cur, new, Release, Relaxed)
            .is_ok()
        {
            // Relaxed: released by this ticket's completing CAS on `log_pub`.
            bus.local(local_off!(log_starts) + tix(n)).store(r, Relaxed);
            // Release: the lane that advances the prefix over this ticket reads the end (acquire) before its
            // CAS; see `complete_range` for why it cannot read a later ticket's end.
            bus.local(local_off!(log_ends) + tix(n))
                .store(r.wrapping_add(len), Release);
            return Ok((n, r));
        }
    }
    Err(NoRoom::Contended)
}

/// Copies `bytes` into the log at byte position `pos` (plain stores; split at the log's end).
pub(crate) fn copy_in(bus: &RingBus<'_, '_>, t: &LogTarget, pos: u32, bytes: &[u8]) {
    let off = pos & (t.size - 1);
    let first = bytes.len().min((t.size - off) as usize);
    let (a, b) = bytes.split_at(first);
    bus.write_staging(t.base + off, a);
    if !b.is_empty() {
        bus.write_staging(t.base, b);
    }
}

/// Marks ticket `ticket` (bytes up to `end`) complete in `log_pub` and advances the completed prefix over the
/// done tickets, carrying the byte position along. True if this CAS advanced the prefix (the caller rings the
/// duty word).
///
/// The byte end of the new prefix's last ticket is read before the CAS; it cannot be a later ticket's (the one
/// that reuses the index): that ticket is reserved only after some CAS moved `C` past this one, so a CAS
/// expecting the old `C` fails (its reserver's `log_pub` load happens before its release store of the end,
/// which this lane's acquire load reads, so by coherence this CAS comes after the move).
pub(crate) fn complete_range(bus: &RingBus<'_, '_>, ticket: u16, end: u32) -> bool {
    let w = bus.local64(local_off!(log_pub));
    // Acquire: the ends of tickets other lanes marked (released by their CASes).
    let mut old = w.load(Acquire);
    for _ in 0..RESERVE_TRIES * 4 {
        let (d, c, bits) = pub_parts(old);
        let o = ticket.wrapping_sub(c) as u32;
        if o >= LOG_TICKETS {
            violation(bus);
            return false;
        }
        let b = bits | (1 << o);
        let m = b.trailing_ones();
        let new = if m == 0 {
            pub_word(d, c, b)
        } else {
            let last = c.wrapping_add(m as u16 - 1);
            let nd = if last == ticket {
                end
            } else {
                // Acquire: pairs with the reserver's release store of its end.
                bus.local(local_off!(log_ends) + tix(last)).load(Acquire)
            };
            let nb = if m >= 16 { 0 } else { b >> m };
            pub_word(nd, c.wrapping_add(m as u16), nb)
        };
        // AcqRel: release publishes this lane's log bytes (and end) to whoever acquires the prefix; acquire
        // takes in the marks this CAS consumes.
        match w.compare_exchange_weak(old, new, AcqRel, Acquire) {
            Ok(_) => return m > 0,
            Err(cur) => old = cur,
        }
    }
    // Only a word rewritten over and over by device code gets here (every failed CAS is another lane's
    // progress, and there are at most LOG_TICKETS marks).
    violation(bus);
    false
}

/// Step D1 of §3 on `log_bell`, by a lane whose CAS advanced the completed prefix (or that found a handed-on
/// duty): become the holder, or leave DIRTY for the holder and return.
pub(crate) fn ring_log(bus: &RingBus<'_, '_>, t: &LogTarget, c: &mut Caches<'_>, budget: u32) {
    let bell = bus.local(local_off!(log_bell));
    // AcqRel as the doorbells (§3): release carries this lane's prefix advance to the holder whose DIRTY clear
    // reads it; acquire takes in the previous holder's holder-only words.
    if bell.compare_exchange(0, BELL_LOCK, AcqRel, Relaxed).is_ok()
        || bell.fetch_or(BELL_LOCK | BELL_DIRTY, AcqRel) & BELL_LOCK == 0
    {
        hold(bus, t, c, budget);
    }
}

/// Takes a duty a holder handed on: one relaxed load of `log_bell`; DIRTY without LOCK means nobody holds it.
pub(crate) fn take_pending_log(bus: &RingBus<'_, '_>, c: &mut Caches<'_>, budget: u32) {
    // Relaxed: a hint; `ring_log`'s RMW orders.
    let w = bus.local(local_off!(log_bell)).load(Relaxed);
    if w & BELL_DIRTY != 0 && w & BELL_LOCK == 0 {
        if let Some(t) = LogTarget::read(bus) {
            ring_log(bus, &t, c, budget);
        }
    }
}

/// Leaves the duty in the DIRTY bit for the next lane that touches the ring. Release: the next holder's
/// acquire sees the holder-only words.
fn hand_off(bus: &RingBus<'_, '_>) {
    let bell = bus.local(local_off!(log_bell));
    bell.fetch_or(BELL_DIRTY, Relaxed);
    bell.fetch_and(!BELL_LOCK, Release);
}

/// The holder's rounds: process the write in flight when it completes, submit the completed prefix, release.
fn hold(bus: &RingBus<'_, '_>, t: &LogTarget, c: &mut Caches<'_>, budget: u32) {
    let bell = bus.local(local_off!(log_bell));
    let wstate = bus.local(local_off!(log_wstate));
    let (mut writes, mut polls) = (0u32, 0u32);
    // The write in flight is this holder's and longer than `line_bytes` (several lines): its first poll backs
    // off before it reaps. While many lanes print, the SQPOLL thread has rarely completed such a write that
    // early, and a CQ-tail load (a bus round trip) per write is saved; a lone line (an idle device) is reaped
    // at once, which keeps its round trip.
    let mut skip_first_reap = false;
    loop {
        // (a) Acquire: synchronises with every lane whose DIRTY this clears: their prefix advances are visible
        // to (c).
        bell.fetch_and(!BELL_DIRTY, Acquire);
        // (b) The write in flight, if any: wait for the kernel (only), bounded.
        let mut sw = wstate.load(Acquire);
        while matches!(slot_state(sw), RING_SLOT_PENDING | RING_SLOT_REAPING) {
            if polls >= budget {
                hand_off(bus);
                return;
            }
            // The kernel's CQ tail is a bus round trip on a GPU: polled at growing intervals (1, 2, 4, 8, …
            // backoffs apart), while the device-local slot word shows any other lane's reap at once.
            if (polls < 2 || polls.is_power_of_two()) && !(skip_first_reap && polls == 0) {
                (c.reap)(bus, 16, c.cq_tail);
            }
            // Acquire: pairs with the reaper's release of DONE (the result is written).
            sw = wstate.load_waited(Acquire);
            if slot_state(sw) == RING_SLOT_DONE {
                break;
            }
            backoff(polls.saturating_add(HOLDER_SPIN_SKIP));
            polls += 1;
        }
        if slot_state(sw) == RING_SLOT_DONE {
            finish_write(bus, t, sw);
        }
        // (c) Acquire: the log bytes below D, released by the completing CASes.
        let d = pub_parts(bus.local64(local_off!(log_pub)).load(Acquire)).0;
        let sub = bus.local(local_off!(log_sub)).load(Relaxed);
        if d != sub {
            if d.wrapping_sub(sub) > t.size {
                // The prefix moved backwards or past the log: device code rewrote it. Counted; nothing is
                // submitted from it, and the duty stays pending for the host.
                violation(bus);
                hand_off(bus);
                return;
            }
            if submit_write(bus, t, sub, d, c) {
                writes += 1;
                skip_first_reap = d.wrapping_sub(sub) > bus.view().layout().line_bytes;
                // Each wait for the kernel has its own budget: the duty is bounded by LOG_DUTY_WRITES waits.
                polls = 0;
                if writes >= LOG_DUTY_WRITES {
                    // Bounded duty: the write is in flight; the next lane that touches the ring waits for it.
                    hand_off(bus);
                    return;
                }
            } else {
                // No SQ room or credit now: reap, back off, try again within the budget.
                if polls >= budget {
                    hand_off(bus);
                    return;
                }
                (c.reap)(bus, 16, c.cq_tail);
                backoff(polls);
                polls += 1;
            }
            continue;
        }
        // (d) Nothing in flight, nothing completed and unsubmitted. Release: the next holder's acquire sees the
        // holder-only words. Fails only if DIRTY was set again meanwhile → next round.
        if bell
            .compare_exchange(BELL_LOCK, 0, Release, Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

/// Processes the completed log write (state word `sw`, DONE): advances `log_written` by what the kernel wrote;
/// a short write's remainder is unsubmitted again (the next write starts with it); a failed write is counted
/// and its bytes dropped (the log must not stall on a target that refuses them).
pub(crate) fn finish_write(bus: &RingBus<'_, '_>, t: &LogTarget, sw: u32) {
    let res = bus.local_i32(local_off!(log_wres)).load(Relaxed);
    // Holder-only words: relaxed (the bell's release/acquire chain orders them between holders).
    let written = bus.local(local_off!(log_written)).load(Relaxed);
    let sub = bus.local(local_off!(log_sub)).load(Relaxed);
    let len = sub.wrapping_sub(written).min(t.size);
    let n = if res > 0 {
        let n = (res as u32).min(len);
        if n < len {
            let s = bus.local(local_off!(log_short_writes));
            s.store(s.load(Relaxed).wrapping_add(1), Relaxed);
        }
        n
    } else {
        // Relaxed: statistics, mirrored by the CQ-bell holder.
        bus.local(local_off!(print_errors)).fetch_add(1, Relaxed);
        bus.local_i32(local_off!(ff_last_error)).store(res, Relaxed);
        len
    };
    let now = written.wrapping_add(n);
    if t.flags & PRINT_OFFSET_MODE != 0 {
        // In log mode `print_offset` is holder-only: the file offset of `log_written`.
        let off = bus.local64(local_off!(print_offset));
        off.store(off.load(Relaxed).wrapping_add(n as u64), Relaxed);
    }
    bus.local(local_off!(log_sub)).store(now, Relaxed);
    // Release: reservers that acquire it may overwrite the bytes before it (the kernel is done with them: the
    // DONE acquire chain from the CQE).
    bus.local(local_off!(log_written)).store(now, Release);
    bus.local(local_off!(log_wstate))
        .store(slot_word(slot_generation(sw), RING_SLOT_FREE), Relaxed);
}

/// The write SQE for log bytes `[pos, pos + len)` (no wrap inside).
pub(crate) fn log_sqe(bus: &RingBus<'_, '_>, t: &LogTarget, pos: u32, len: u32, gen: u32) -> Sqe {
    let v = bus.view();
    let l = v.layout();
    let addr = v.host_addr(t.base + (pos & (t.size - 1))) as *const u8;
    let idx = l.staging_buf_index as u16;
    let file_off = if t.flags & PRINT_OFFSET_MODE != 0 {
        bus.local64(local_off!(print_offset)).load(Relaxed)
    } else {
        u64::MAX
    };
    let e = if t.flags & PRINT_FIXED_FILE != 0 {
        opcode::WriteFixed::new(types::Fixed(t.fd as u32), addr, len, idx)
    } else {
        opcode::WriteFixed::new(types::Fd(t.fd), addr, len, idx)
    }
    .offset(file_off)
    .build()
    .user_data(slot_user_data(LOG_SLOT, gen));
    Sqe::from_entry(&e)
}

/// Submits one write of the completed, unsubmitted bytes `[sub, d)` (cut at the log's end): arms the log's
/// completion slot, reserves one credit and one ticket, fills and publishes. False: no room now (nothing done).
fn submit_write(
    bus: &RingBus<'_, '_>,
    t: &LogTarget,
    sub: u32,
    d: u32,
    c: &mut Caches<'_>,
) -> bool {
    let off = sub & (t.size - 1);
    let len = d.wrapping_sub(sub).min(t.size - off);
    if take_credits(bus, 1) == 0 {
        return false;
    }
    let Ok((ticket, _)) = take_tickets(bus, 1, c.sq_head) else {
        return_credits(bus, 1);
        return false;
    };
    let wstate = bus.local(local_off!(log_wstate));
    // Relaxed: only the holder arms the slot; the publication release orders it before the kernel can
    // complete the write (as for lane slots, §6).
    let gen = next_generation(slot_generation(wstate.load(Relaxed)));
    wstate.store(slot_word(gen, RING_SLOT_PENDING), Relaxed);
    bus.local(local_off!(log_sub))
        .store(sub.wrapping_add(len), Relaxed);
    let sqe = log_sqe(bus, t, sub, len, gen);
    if publish_sqe(bus, ticket, &sqe).is_err() {
        // `sq_pub` rewritten (counted): the write is not in flight.
        wstate.store(slot_word(gen, RING_SLOT_FREE), Relaxed);
        bus.local(local_off!(log_sub)).store(sub, Relaxed);
        return_credits(bus, 1);
        return false;
    }
    let w = bus.local(local_off!(log_writes));
    w.store(w.load(Relaxed).wrapping_add(1), Relaxed);
    true
}

impl Lane<'_> {
    /// The log target, read once per lane (None: prints are one write per line).
    pub(super) fn log_target(&mut self) -> Option<LogTarget> {
        if self.log_target.is_none() {
            self.log_target = LogTarget::read(&self.bus());
        }
        self.log_target
    }

    /// Takes a handed-on log duty (any lane that touches the ring does, §7).
    pub(super) fn take_log_duty(&mut self, budget: u32) {
        let bus = crate::ring::bus::RingBus::new(self.view, &self.meter);
        let mut c = Caches {
            cq_tail: &mut self.cq_tail_seen,
            sq_head: &mut self.sq_head_seen,
            reap: Lane::reap_pass(),
        };
        take_pending_log(&bus, &mut c, budget);
    }

    /// A print through the log (§7): format, reserve (retrying within `budget`: reap, back off), copy, complete,
    /// ring the duty word. `TimedOut`: nothing was reserved, no byte of the line is written. `LineTooLong`:
    /// the line does not fit the ring's lines; nothing was reserved.
    pub(super) fn print_log_with(
        &mut self,
        t: LogTarget,
        budget: u32,
        f: impl FnOnce(&mut LineBuf),
    ) -> Result<(), LaneError> {
        let len = self.format_line(f)?;
        let mut i = 0u32;
        let (ticket, start) = loop {
            self.take_log_duty(budget.min(LOG_PRINT_POLLS));
            match reserve_bytes(&self.bus(), &t, len) {
                Ok(r) => break r,
                Err(NoRoom::Violation) => return Err(LaneError::ProtocolViolation),
                Err(_) => {
                    self.stats.window_full += 1;
                    // Reap (the kernel's CQ tail is a bus round trip) at growing intervals; the duty check
                    // above is device-local and runs every round.
                    if i < 2 || i.is_power_of_two() {
                        self.reap(16);
                    }
                    if i >= budget {
                        return Err(LaneError::TimedOut);
                    }
                    backoff(i);
                    i += 1;
                }
            }
        };
        // Straight-line from here to the completing CAS (§0.2).
        let bus = RingBus::new(self.view, &self.meter);
        copy_in(&bus, &t, start, self.line.as_bytes());
        let end = start.wrapping_add(len);
        self.log_end = Some(end);
        self.stats.lines += 1;
        bus.local(local_off!(lines_printed)).fetch_add(1, Relaxed);
        if complete_range(&bus, ticket, end) {
            let mut c = Caches {
                cq_tail: &mut self.cq_tail_seen,
                sq_head: &mut self.sq_head_seen,
                reap: Lane::reap_pass(),
            };
            ring_log(&bus, &t, &mut c, budget.min(LOG_PRINT_POLLS));
        }
        Ok(())
    }

    /// Whether the kernel has written this lane's last log line (true if it printed none through the log).
    pub(super) fn log_flushed(&self) -> bool {
        match self.log_end {
            None => true,
            Some(end) => {
                // Acquire: pairs with the holder's release of `log_written`.
                let w = self
                    .bus()
                    .local(local_off!(log_written))
                    .load_waited(Acquire);
                w.wrapping_sub(end) as i32 >= 0
            }
        }
    }
}

/// Where a holder's backoff starts: past the spinning polls, so a holder waiting for the kernel gives its core
/// to the lanes that fill the log meanwhile (on the CPU reference device lanes outnumber cores).
const HOLDER_SPIN_SKIP: u32 = 32;
