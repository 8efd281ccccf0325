//! Subgroup aggregation (PROTOCOL.md §3–§5, "Subgroups"): `n ≤ 32` lanes driven in lockstep by one thread, as
//! a GPU subgroup executes. The elected lane (the first) makes the read-modify-writes for all of them — up to
//! `n` CQ credits with one CAS, `n` contiguous SQ tickets with one CAS, publication of the filled tickets with
//! one `sq_pub` CAS (they are all filled: lockstep), one CQ claim CAS for up to `n` CQEs, one doorbell
//! attempt — and hands the results out; each lane writes its own SQE, arms its own slot and reads its own
//! completion. That is the emulation on the CPU reference device: one thread executes a subgroup's lanes step
//! by step, so no lane waits for a sibling. A subgroup of one is the single-lane [`Lane`] API.
//!
//! Each lane counts its own accesses; the aggregated RMWs are counted on the elected lane, so the sum over
//! the subgroup's lanes is the subgroup's bus traffic.
#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::sync::atomic::Ordering::*;

use super::format::LineBuf;
use super::lane::{backoff, CompletionMode, FileRef, Lane, LaneError, LaneStats};
use super::print_log::{
    complete_range, copy_in, reserve_bytes, ring_log, Caches, LogTarget, NoRoom,
};
use super::publish::check_flags;
use super::reap::reap_into;
use super::reserve::{hole_nop, return_credits, take_credits, take_tickets, NoTicket};
use super::shared::*;
use super::window::publish_tickets;
use crate::local_off;
use crate::ring::bus::RingBus;
use crate::ring::layout::Sqe;
use crate::ring::RingView;

/// The most lanes a subgroup drives (a ballot is 32 bits wide here, as on most GPUs).
pub const MAX_SUBGROUP: usize = 32;

/// One SQE of a batch ([`Subgroup::submit_each`]): the lane (its index in the subgroup) that submits it, the
/// SQE, its completion mode and its staging line.
#[derive(Debug, Clone, Copy)]
pub struct Submission {
    /// Index of the submitting lane in the subgroup.
    pub lane: usize,
    /// The SQE (the lane adds its base flags and `user_data`).
    pub sqe: Sqe,
    /// How its completion is delivered.
    pub mode: CompletionMode,
    /// The staging line it reads, if any.
    pub line: Option<u32>,
}

impl Default for Submission {
    /// A zeroed SQE of lane 0 (to fill arrays).
    fn default() -> Submission {
        Submission {
            lane: 0,
            sqe: Sqe::default(),
            mode: CompletionMode::FireAndForget,
            line: None,
        }
    }
}

/// The most SQEs one [`Subgroup::submit_each`] call submits.
pub const MAX_BATCH: usize = 64;

/// One result per lane of a subgroup call; lanes outside the call's mask are `None`.
pub type PerLane<T> = [Option<T>; MAX_SUBGROUP];

/// `n ≤ 32` lanes in lockstep on one thread.
pub struct Subgroup<'a> {
    lanes: Vec<Lane<'a>>,
}

impl<'a> Subgroup<'a> {
    /// Lanes `first .. first + n` of a device (n clamped to 1..=32 and to the arena's lanes).
    pub fn new(view: RingView<'a>, first: u32, n: u32) -> Subgroup<'a> {
        let l = view.layout();
        let n = n
            .clamp(1, MAX_SUBGROUP as u32)
            .min(l.lanes.saturating_sub(first).max(1));
        Subgroup {
            lanes: (first..first + n).map(|id| Lane::new(view, id)).collect(),
        }
    }

    /// How many lanes.
    pub fn len(&self) -> usize {
        self.lanes.len()
    }

    /// Never empty.
    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty()
    }

    /// The lanes, for per-lane work between aggregated steps.
    pub fn lanes(&mut self) -> &mut [Lane<'a>] {
        &mut self.lanes
    }

    /// Every lane's counters (the aggregated RMWs are on the first, the elected lane).
    pub fn stats(&self) -> impl Iterator<Item = LaneStats> + '_ {
        self.lanes.iter().map(|l| l.stats())
    }

    /// The mask of all lanes.
    pub fn all(&self) -> u32 {
        if self.lanes.len() >= 32 {
            u32::MAX
        } else {
            (1u32 << self.lanes.len()) - 1
        }
    }

    /// One reap pass by the elected lane: one claim CAS for up to `n` CQEs.
    pub fn reap(&mut self) -> u32 {
        let n = self.lanes.len() as u32;
        let Some(e) = self.lanes.first_mut() else {
            return 0;
        };
        let bus = RingBus::new(e.view, &e.meter);
        let got = reap_into(&bus, n.max(1), &mut e.cq_tail_seen);
        e.stats.reaped += got as u64;
        got
    }

    /// Submits one SQE per lane in `mask` (`sqe(i)` gives lane `i`'s SQE, completion mode and staging line):
    /// the elected lane takes the credits and tickets for all of them and publishes them with one CAS per
    /// batch; each lane fills its own ticket. Retries (reaping, backing off) for at most `budget` rounds.
    pub fn submit(
        &mut self,
        mask: u32,
        budget: u32,
        mut sqe: impl FnMut(usize, &Lane<'a>) -> (Sqe, CompletionMode, Option<u32>),
    ) -> PerLane<Result<u32, LaneError>> {
        let mut subs = [Submission::default(); MAX_SUBGROUP];
        let mut n = 0;
        for (i, lane) in self.lanes.iter().enumerate() {
            if mask & (1 << i) == 0 {
                continue;
            }
            let (s, mode, line) = sqe(i, lane);
            if let Some(sub) = subs.get_mut(n) {
                *sub = Submission {
                    lane: i,
                    sqe: s,
                    mode,
                    line,
                };
                n += 1;
            }
        }
        let mut res: PerLane<Result<u32, LaneError>> = [None; MAX_SUBGROUP];
        self.submit_each(subs.get(..n).unwrap_or_default(), &mut res, budget);
        let mut out: PerLane<Result<u32, LaneError>> = [None; MAX_SUBGROUP];
        for (sub, r) in subs.iter().zip(res).take(n) {
            if let Some(o) = out.get_mut(sub.lane) {
                *o = r;
            }
        }
        out
    }

    /// Submits `subs` as one batch, several SQEs of one lane allowed, writing each one's result (its ticket, or
    /// why it was not submitted) into `out` at the same index; a submission naming no lane of the subgroup, or
    /// beyond `out`, is left alone. The elected lane takes the credits and tickets for all of them, one CAS
    /// each per batch; tickets go to the submissions in order, so a lane's SQEs are published in the order
    /// given and, when `budget` runs out with some unsubmitted (`TimedOut`), those are a suffix of each lane's
    /// (refused ones aside). Retries (reaping, backing off) for at most `budget` rounds.
    pub fn submit_each(
        &mut self,
        subs: &[Submission],
        out: &mut [Option<Result<u32, LaneError>>],
        budget: u32,
    ) {
        let n = subs.len().min(out.len()).min(MAX_BATCH);
        let (subs, out) = (
            subs.get(..n).unwrap_or_default(),
            out.get_mut(..n).unwrap_or_default(),
        );
        let lanes = self.lanes.len();
        // Refused before reserving (§4): no credit is taken for them.
        let mut pending = 0u32;
        for (sub, o) in subs.iter().zip(out.iter_mut()) {
            *o = None;
            let Some(lane) = self.lanes.get(sub.lane) else {
                continue;
            };
            let refused = check_flags(sub.sqe.flags, sub.mode)
                .err()
                .or(match sub.mode {
                    CompletionMode::Slot(k) => lane.global_slot(k).err(),
                    _ => None,
                });
            match refused {
                Some(e) => *o = Some(Err(e)),
                None => pending += 1,
            }
        }
        // Whether submission `j` still waits for a ticket.
        let waiting = |out: &[Option<Result<u32, LaneError>>], j: usize| {
            out.get(j).is_some_and(Option::is_none) && subs.get(j).is_some_and(|s| s.lane < lanes)
        };
        let mut round = 0;
        while pending != 0 {
            let Some((first, k)) = self.reserve_batch(pending) else {
                self.reap();
                if round >= budget {
                    for j in 0..n {
                        if waiting(out, j) {
                            if let Some(o) = out.get_mut(j) {
                                *o = Some(Err(LaneError::TimedOut));
                            }
                        }
                    }
                    break;
                }
                backoff(round);
                round += 1;
                continue;
            };
            // Hand the tickets out in order; each lane prepares and fills its own.
            let mut filled = 0;
            let mut published = [false; MAX_BATCH];
            for j in 0..n {
                if filled == k {
                    break;
                }
                if !waiting(out, j) {
                    continue;
                }
                let Some(sub) = subs.get(j) else { continue };
                let Some(lane) = self.lanes.get_mut(sub.lane) else {
                    continue;
                };
                let ticket = first.wrapping_add(filled);
                filled += 1;
                pending -= 1;
                let mut s = sub.sqe;
                let r = match lane.prepare(&mut s, sub.mode, sub.line) {
                    Ok(()) => {
                        lane.bus().write_sqe(ticket, &s);
                        if k > 1 {
                            // A batch's lines are demoted as they are filled; one SQE after its doorbell, below
                            // (`RingView::demote_sqe`).
                            lane.bus().demote_sqe(ticket);
                        }
                        lane.stats.ops += 1;
                        if let Some(m) = published.get_mut(j) {
                            *m = true;
                        }
                        Ok(ticket)
                    }
                    Err(e) => {
                        // Cannot happen after the checks above; the ticket still must be filled (§3).
                        lane.bus().write_sqe(ticket, &hole_nop(lane.base_flags));
                        Err(e)
                    }
                };
                if let Some(o) = out.get_mut(j) {
                    *o = Some(r);
                }
            }
            let result = self.lanes.first().map_or(Ok(()), |e| {
                let bus = e.bus();
                publish_tickets(&bus, first, k)?;
                if k == 1 {
                    bus.demote_sqe(first);
                }
                Ok(())
            });
            if let Err(err) = result {
                // Not published (counted): undo each lane's mode bookkeeping.
                for (j, (sub, _)) in subs
                    .iter()
                    .zip(published)
                    .enumerate()
                    .filter(|(_, (_, p))| *p)
                {
                    if let Some(lane) = self.lanes.get_mut(sub.lane) {
                        lane.unprepare(sub.mode, sub.line);
                    }
                    if let Some(o) = out.get_mut(j) {
                        *o = Some(Err(err));
                    }
                }
            }
        }
    }

    /// The elected lane takes up to `want` credits and as many contiguous tickets: `(first, k)`, or `None`
    /// (nothing taken, counted in its stats).
    fn reserve_batch(&mut self, want: u32) -> Option<(u32, u32)> {
        let e = self.lanes.first_mut()?;
        let bus = RingBus::new(e.view, &e.meter);
        let c = take_credits(&bus, want);
        if c == 0 {
            e.stats.no_credit += 1;
            return None;
        }
        match take_tickets(&bus, c, &mut e.sq_head_seen) {
            Ok((first, k)) => {
                return_credits(&bus, c - k);
                Some((first, k))
            }
            Err(why) => {
                match why {
                    NoTicket::SqFull => e.stats.sq_full += 1,
                    NoTicket::WindowFull => e.stats.window_full += 1,
                    NoTicket::Violation | NoTicket::Contended => {}
                }
                return_credits(&bus, c);
                None
            }
        }
    }

    /// Waits until slot `k` of every lane in `mask` has completed: each round one aggregated reap, then each
    /// lane checks its own slot. Returns each lane's result.
    pub fn wait(&mut self, mask: u32, k: u32, budget: u32) -> PerLane<Result<i32, LaneError>> {
        let mut out: PerLane<Result<i32, LaneError>> = [None; MAX_SUBGROUP];
        let mut waiting = mask & self.all();
        let mut round = 0;
        while waiting != 0 {
            for (i, lane) in self.lanes.iter_mut().enumerate() {
                if waiting & (1 << i) == 0 {
                    continue;
                }
                let r = match lane.global_slot(k) {
                    Err(e) => Some(Err(e)),
                    Ok(g) => {
                        let bus = lane.bus();
                        let (state, result, _, _) = bus.slot(g);
                        // Acquire: pairs with the reaper's release of DONE.
                        let word = state.load_waited(Acquire);
                        match RingSlotState::try_from(slot_state(word)) {
                            Ok(RingSlotState::Done) => {
                                let r = result.load(Relaxed);
                                state.store(
                                    slot_word(slot_generation(word), RING_SLOT_FREE),
                                    Relaxed,
                                );
                                Some(Ok(r))
                            }
                            Ok(RingSlotState::Free) => Some(Err(LaneError::NotPending(k))),
                            _ => None,
                        }
                    }
                };
                if let (Some(r), Some(o)) = (r, out.get_mut(i)) {
                    *o = Some(r);
                    waiting &= !(1 << i);
                }
            }
            if waiting == 0 {
                break;
            }
            if round >= budget {
                for (i, o) in out.iter_mut().enumerate() {
                    if waiting & (1 << i) != 0 {
                        *o = Some(Err(LaneError::TimedOut));
                    }
                }
                break;
            }
            if self.reap() == 0 {
                backoff(round);
                round += 1;
            }
        }
        out
    }

    /// NOPs on every lane in `mask`, in completion mode `c` (waited modes: each lane's slot `c`'s index, then
    /// [`Subgroup::wait`]).
    pub fn nop(
        &mut self,
        mask: u32,
        c: CompletionMode,
        budget: u32,
    ) -> PerLane<Result<u32, LaneError>> {
        let nop = Sqe::from_entry(&io_uring::opcode::Nop::new().build());
        self.submit(mask, budget, |_, _| (nop, c, None))
    }

    /// One line per lane in `mask`, formatted by `f(lane index, lane id, line)`: each lane makes its own staging
    /// line reusable and writes its line; the elected lane reserves for all and, in offset mode, takes the file
    /// range of all lines with one `print_offset` RMW; one RMW counts the lines. A lane whose line (with its
    /// newline) is longer than the ring's `line_bytes` gets `LineTooLong` and prints nothing.
    pub fn print_with(
        &mut self,
        mask: u32,
        budget: u32,
        mut f: impl FnMut(usize, u32, &mut LineBuf),
    ) -> PerLane<Result<(), LaneError>> {
        let log = self.lanes.first_mut().and_then(|e| e.log_target());
        if let Some(t) = log {
            return self.print_log_with(t, mask, budget, f);
        }
        let mut out: PerLane<Result<(), LaneError>> = [None; MAX_SUBGROUP];
        let mut active = mask & self.all();
        let mut lens = [0u32; MAX_SUBGROUP];
        let mut line_of = [0u32; MAX_SUBGROUP];
        let mut target = (0u32, 0i32);
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            if active & (1 << i) == 0 {
                continue;
            }
            let id = lane.id;
            let r = lane.stage_line(budget, |b| f(i, id, b));
            match r {
                Ok((j, len, t)) => {
                    if let (Some(l), Some(o)) = (lens.get_mut(i), line_of.get_mut(i)) {
                        *l = len;
                        *o = j;
                    }
                    target = t;
                }
                Err(e) => {
                    if let Some(o) = out.get_mut(i) {
                        *o = Some(Err(e));
                    }
                    active &= !(1 << i);
                }
            }
        }
        if active == 0 {
            return out;
        }
        let (pflags, fd) = target;
        let offset_mode = pflags & PRINT_OFFSET_MODE != 0;
        let file = if pflags & PRINT_FIXED_FILE != 0 {
            FileRef::Fixed(fd as u32)
        } else {
            FileRef::Raw(fd)
        };
        // Offset mode: one RMW reserves the file range of every line, handed out by prefix sums.
        let mut offsets = [0u64; MAX_SUBGROUP];
        if offset_mode {
            let total: u64 = (0..MAX_SUBGROUP)
                .filter(|i| active & (1 << i) != 0)
                .map(|i| lens.get(i).copied().unwrap_or(0) as u64)
                .sum();
            let base = self.lanes.first().map_or(0, |e| {
                // Relaxed: the offsets only divide the file; the SQEs carrying them are published by `sq_pub`.
                e.bus()
                    .local64(local_off!(print_offset))
                    .fetch_add(total, Relaxed)
            });
            let mut at = base;
            for (i, o) in offsets.iter_mut().enumerate() {
                if active & (1 << i) != 0 {
                    *o = at;
                    at += lens.get(i).copied().unwrap_or(0) as u64;
                }
            }
        }
        let submitted = self.submit(active, budget, |i, lane| {
            let (len, j) = (
                lens.get(i).copied().unwrap_or(0),
                line_of.get(i).copied().unwrap_or(0),
            );
            let off = lane.view.line_off(lane.id, j);
            if offset_mode {
                let at = offsets.get(i).copied().unwrap_or(0) as i64;
                (
                    lane.write_sqe(file, off, len, at),
                    CompletionMode::FireAndForget,
                    Some(j),
                )
            } else {
                (
                    lane.write_sqe(file, off, len, -1),
                    CompletionMode::Slot(0),
                    None,
                )
            }
        });
        let mut printed = 0;
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            match submitted.get(i).copied().flatten() {
                Some(Ok(_)) => {
                    if !offset_mode {
                        lane.stream_pending = Some(lens.get(i).copied().unwrap_or(0));
                    }
                    lane.next_line = lane.next_line.wrapping_add(1);
                    lane.stats.lines += 1;
                    printed += 1;
                    if let Some(o) = out.get_mut(i) {
                        *o = Some(Ok(()));
                    }
                }
                Some(Err(e)) => {
                    if let Some(o) = out.get_mut(i) {
                        *o = Some(Err(e));
                    }
                }
                None => {}
            }
        }
        // A print that timed out in offset mode leaves a gap of its length in the file (as a lane whose line
        // write fails does).
        if printed > 0 {
            if let Some(e) = self.lanes.first() {
                e.bus()
                    .local(local_off!(lines_printed))
                    .fetch_add(printed, Relaxed);
            }
        }
        out
    }

    /// §7 group-commit prints for the lanes in `mask`: each lane formats its line; the elected lane reserves the
    /// bytes of as many lines as fit (in lane order) with one `log_reserve` CAS — one ticket for the batch —
    /// and hands each lane its position (prefix sums); each lane copies its line; the elected lane completes
    /// the batch with one `log_pub` CAS, counts the lines with one add and rings the duty word once. Lanes that
    /// did not fit retry (reaping, backing off) within `budget`; `TimedOut`: that line was not reserved.
    fn print_log_with(
        &mut self,
        t: LogTarget,
        mask: u32,
        budget: u32,
        mut f: impl FnMut(usize, u32, &mut LineBuf),
    ) -> PerLane<Result<(), LaneError>> {
        let mut out: PerLane<Result<(), LaneError>> = [None; MAX_SUBGROUP];
        let mut pending = mask & self.all();
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            if pending & (1 << i) != 0 {
                let id = lane.id;
                if let Err(e) = lane.format_line(|b| f(i, id, b)) {
                    if let Some(o) = out.get_mut(i) {
                        *o = Some(Err(e));
                    }
                    pending &= !(1 << i);
                }
            }
        }
        let mut round = 0;
        while pending != 0 {
            let Some((e, rest)) = self.lanes.split_first_mut() else {
                break;
            };
            e.take_log_duty(budget.min(LOG_PRINT_POLLS));
            // Every pending lane's bytes, then the prefix (in lane order) that fits.
            let len_of = |i: usize, e: &Lane<'_>, rest: &[Lane<'_>]| -> u32 {
                let lane = if i == 0 { Some(e) } else { rest.get(i - 1) };
                lane.map_or(0, |l| l.line.as_bytes().len() as u32)
            };
            let total: u32 = (0..self_len(e, rest))
                .filter(|i| pending & (1 << i) != 0)
                .map(|i| len_of(i, e, rest))
                .sum();
            let bus = RingBus::new(e.view, &e.meter);
            let got = match reserve_bytes(&bus, &t, total) {
                Ok((ticket, start)) => Some((ticket, start, pending)),
                Err(NoRoom::Bytes(free)) => {
                    let (mut sum, mut take) = (0u32, 0u32);
                    for i in 0..self_len(e, rest) {
                        if pending & (1 << i) == 0 {
                            continue;
                        }
                        let n = len_of(i, e, rest);
                        if sum + n > free {
                            break;
                        }
                        sum += n;
                        take |= 1 << i;
                    }
                    if take == 0 {
                        None
                    } else {
                        reserve_bytes(&bus, &t, sum)
                            .ok()
                            .map(|(tk, st)| (tk, st, take))
                    }
                }
                Err(NoRoom::Violation) => {
                    for (i, o) in out.iter_mut().enumerate() {
                        if pending & (1 << i) != 0 {
                            *o = Some(Err(LaneError::ProtocolViolation));
                        }
                    }
                    return out;
                }
                Err(NoRoom::Tickets | NoRoom::Contended) => None,
            };
            let Some((ticket, start, take)) = got else {
                e.stats.window_full += 1;
                if round >= budget {
                    for (i, o) in out.iter_mut().enumerate() {
                        if pending & (1 << i) != 0 {
                            *o = Some(Err(LaneError::TimedOut));
                        }
                    }
                    break;
                }
                if round < 2 || round.is_power_of_two() {
                    self.reap();
                }
                backoff(round);
                round += 1;
                continue;
            };
            // Straight-line from the reservation to the completing CAS (§0.2): each lane copies its own line.
            let mut at = start;
            for (i, lane) in self.lanes.iter_mut().enumerate() {
                if take & (1 << i) == 0 {
                    continue;
                }
                let bus = RingBus::new(lane.view, &lane.meter);
                copy_in(&bus, &t, at, lane.line.as_bytes());
                at = at.wrapping_add(lane.line.as_bytes().len() as u32);
                lane.log_end = Some(at);
                lane.stats.lines += 1;
                if let Some(o) = out.get_mut(i) {
                    *o = Some(Ok(()));
                }
            }
            pending &= !take;
            if let Some(e) = self.lanes.first_mut() {
                let bus = RingBus::new(e.view, &e.meter);
                bus.local(local_off!(lines_printed))
                    .fetch_add(take.count_ones(), Relaxed);
                if complete_range(&bus, ticket, at) {
                    let mut c = Caches {
                        cq_tail: &mut e.cq_tail_seen,
                        sq_head: &mut e.sq_head_seen,
                        reap: Lane::reap_pass(),
                    };
                    ring_log(&bus, &t, &mut c, budget.min(LOG_PRINT_POLLS));
                }
            }
        }
        out
    }

    /// Flushes every lane (§7).
    pub fn flush(&mut self, budget: u32) -> PerLane<Result<(), LaneError>> {
        let mut out: PerLane<Result<(), LaneError>> = [None; MAX_SUBGROUP];
        for (lane, o) in self.lanes.iter_mut().zip(out.iter_mut()) {
            *o = Some(lane.flush(budget));
        }
        out
    }
}

/// Lanes of a subgroup split as (elected, rest).
fn self_len(_e: &Lane<'_>, rest: &[Lane<'_>]) -> usize {
    rest.len() + 1
}
