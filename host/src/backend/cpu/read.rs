//! [`Program::Read`](crate::backend::Program::Read) on the CPU reference device: each lane a [`ReadLane`]
//! state machine, the lanes of one subgroup stepped on one thread ([`step_subgroup`]) with the subgroup's
//! aggregation (PROTOCOL.md "Subgroups"): each round the elected lane makes one reap pass for all lanes, each
//! lane checks its own slots, and the reads the lanes asked for go out in batches (one credit and ticket
//! reservation, one publication, one doorbell each; [`Subgroup::submit_each`], several reads of one lane in a
//! batch).
//!
//! In a step a lane consumes up to [`TAKE_MAX`] completed reads, oldest first, checksumming each in its buffer,
//! then asks for as many reads as it has buffers free. The subgroup submits the asked reads once
//! [`FLUSH_ASKS`] of them wait, between two lanes' steps, and the rest at the round's end. The CPU device steps
//! the lanes of a subgroup one after another on one core, where a GPU runs them at once: a batch held to the
//! round's end would wait for every later lane's checksum while the SQ thread runs out of reads (read_throughput,
//! `direct 8x1`: 0.29x of the baseline that way), and copying each chunk out to ask before checksumming cost a
//! quarter of the lane thread (perf: a 4 KiB copy of memory the SQ thread had just written on the other core).
//!
//! What a lane does is the program's specification: read `j` of lane `l` (0-based, in submission order) is
//! chunk `l + j · lanes`, into buffer `j % depth` at `fixed + (l · depth + j % depth) · chunk`, completing in
//! slot `min(slots_per_lane − depth, 1) + j % depth`; the lane checksums its reads in submission order. A
//! read that could not be submitted within the budget (counted in the subgroup's idle waits since the lane
//! last progressed) is counted failed when its turn comes; a wait for the oldest read that runs out of budget,
//! or past the launch's deadline, counts the lane's remaining chunks failed and ends the lane.

use std::time::Instant;

use super::stepped::{step_subgroup, Group, Step, SteppedLane};
use crate::backend::run_buffer::RunParams;
use crate::backend::{checksum, LaneReport};
use crate::protocol::subgroup::{Submission, MAX_BATCH, MAX_SUBGROUP};
use crate::protocol::{idle, CompletionMode, FileRef, LaneError, Poll, Subgroup};
use crate::ring::{RingView, Sqe};

/// CQEs a reap pass claims at most: as many as [`crate::protocol::Lane::poll`]'s pass.
const REAP_MAX: u32 = 16;
/// Asked reads after which the subgroup submits its batch at once, between two lanes' steps, rather than at
/// the round's end: the CPU device steps the lanes one after another, so a round's batch would otherwise wait
/// for every later lane's checksums while the SQ thread runs out of reads.
const FLUSH_ASKS: usize = 4;
/// Completed reads a lane consumes at most in one step (each then asks for its buffer's next read), so that a
/// lane with several reads in flight hands out work in batches without holding the round for long.
const TAKE_MAX: u32 = 4;

/// What the subgroup did with one read a lane asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Submitted.
    Sent,
    /// Not submitted this time (no ticket): the lane may ask again.
    Retry,
    /// Refused.
    Failed,
}

/// The most reads in flight per lane (the program clamps `depth` to it).
const MAX_DEPTH: usize = 32;

/// What the lanes of one subgroup share: the protocol's [`Subgroup`] (each lane's protocol state; the
/// aggregated reservation, publication and reap), the reads asked for and not yet submitted, and the answers
/// to each lane's last asks.
pub(crate) struct RingGroup<'a> {
    sg: Subgroup<'a>,
    asks: [Submission; MAX_BATCH],
    /// Index of each ask among its lane's asks of the step that made it.
    ask_of: [u8; MAX_BATCH],
    nasks: usize,
    answers: [[Answer; MAX_DEPTH]; MAX_SUBGROUP],
}

impl<'a> RingGroup<'a> {
    pub(crate) fn new(view: RingView<'a>, first: u32, n: u32) -> RingGroup<'a> {
        RingGroup {
            sg: Subgroup::new(view, first, n),
            asks: [Submission::default(); MAX_BATCH],
            ask_of: [0; MAX_BATCH],
            nasks: 0,
            answers: [[Answer::Retry; MAX_DEPTH]; MAX_SUBGROUP],
        }
    }

    /// The protocol subgroup (to flush it after the program).
    pub(crate) fn subgroup(&mut self) -> &mut Subgroup<'a> {
        &mut self.sg
    }

    /// Queues lane `index`'s ask number `nth` of this step; false when the batch is full (the lane asks again
    /// in a later step).
    fn ask(&mut self, index: usize, nth: u32, sqe: Sqe, slot: u32) -> bool {
        let (Some(a), Some(o)) = (
            self.asks.get_mut(self.nasks),
            self.ask_of.get_mut(self.nasks),
        ) else {
            return false;
        };
        *a = Submission {
            lane: index,
            sqe,
            mode: CompletionMode::Slot(slot),
            line: None,
        };
        *o = nth as u8;
        self.nasks += 1;
        true
    }

    /// The answer to lane `index`'s ask number `nth` of its last asking step.
    fn answer(&self, index: usize, nth: u32) -> Answer {
        self.answers
            .get(index)
            .and_then(|a| a.get(nth as usize))
            .copied()
            .unwrap_or(Answer::Failed)
    }

    /// One batched submission of the asked reads (a single attempt: a read that got no ticket is asked
    /// again in a later round, within its lane's budget). Returns whether any went out.
    fn flush_asks(&mut self) -> bool {
        let n = self.nasks;
        if n == 0 {
            return false;
        }
        self.nasks = 0;
        let mut res = [None; MAX_BATCH];
        self.sg
            .submit_each(self.asks.get(..n).unwrap_or_default(), &mut res, 0);
        let mut moved = false;
        for ((a, &nth), r) in self.asks.iter().zip(&self.ask_of).zip(res).take(n) {
            let answer = match r {
                Some(Ok(_)) => Answer::Sent,
                Some(Err(LaneError::TimedOut)) => Answer::Retry,
                _ => Answer::Failed,
            };
            moved |= answer == Answer::Sent;
            if let Some(slot) = self
                .answers
                .get_mut(a.lane)
                .and_then(|l| l.get_mut(nth as usize))
            {
                *slot = answer;
            }
        }
        moved
    }
}

impl Group for RingGroup<'_> {
    /// One reap pass of the subgroup by its elected lane, claiming up to as many CQEs as a lane's poll does
    /// (or one per lane, if more); the idle wait learns of what it moved.
    fn begin_round(&mut self) -> bool {
        let max = REAP_MAX.max(self.sg.len() as u32);
        let n = self.sg.lanes().first_mut().map_or(0, |e| e.reap(max));
        if n > 0 {
            idle::notify(n);
        }
        false
    }

    fn after_step(&mut self) -> bool {
        self.nasks >= FLUSH_ASKS && self.flush_asks()
    }

    fn end_round(&mut self) -> bool {
        self.flush_asks()
    }
}

/// One lane of the read program (the Rust version of its shader, as a state machine).
pub(crate) struct ReadLane {
    /// This lane's index in its subgroup.
    index: usize,
    id: u32,
    lanes: u32,
    file: u32,
    chunk: u32,
    total: u64,
    depth: u32,
    base_slot: u32,
    fixed: u32,
    nchunks: u64,
    budget: u32,
    deadline: Instant,
    /// Reads submitted (or given up on) / consumed (checksummed or counted failed); the ones in between are in
    /// flight.
    sent: u64,
    seen: u64,
    /// Reads whose submission failed, by buffer index.
    unsent: u32,
    /// Reads (from `sent` on) this lane asked for in its last step, answered by the subgroup before its next.
    asked: u32,
    rep: LaneReport,
    /// The parameters were refused: the lane reports one failure and ends.
    refused: bool,
}

impl ReadLane {
    /// Lane `index` of a subgroup (device lane `id`) of the read program `p` on a ring with `slots_per_lane`
    /// slots per lane and its fixed region at `fixed`.
    pub(crate) fn new(
        index: usize,
        id: u32,
        p: &RunParams,
        slots_per_lane: u32,
        fixed: u32,
        deadline: Instant,
    ) -> ReadLane {
        let (file, chunk, total, depth) =
            (p.arg0, p.arg1, p.total, p.arg2.clamp(1, MAX_DEPTH as u32));
        let refused = chunk == 0 || depth > slots_per_lane;
        ReadLane {
            index,
            id,
            lanes: p.lanes.max(1),
            file,
            chunk,
            total,
            depth,
            base_slot: slots_per_lane.saturating_sub(depth).min(1),
            fixed,
            nchunks: if chunk == 0 {
                0
            } else {
                total.div_ceil(chunk as u64)
            },
            budget: p.iter_budget,
            deadline,
            sent: 0,
            seen: 0,
            unsent: 0,
            asked: 0,
            rep: LaneReport::default(),
            refused,
        }
    }

    /// What the lane reports.
    pub(crate) fn report(&self) -> LaneReport {
        self.rep
    }

    fn chunk_of(&self, j: u64) -> u64 {
        self.id as u64 + j * self.lanes as u64
    }

    fn buf_off(&self, j: u64) -> u32 {
        (self.id * self.depth + (j % self.depth as u64) as u32) * self.chunk
    }

    fn slot_of(&self, j: u64) -> u32 {
        self.base_slot + (j % self.depth as u64) as u32
    }

    /// (file offset, length) of read `j`.
    fn range(&self, j: u64) -> (u64, u32) {
        let off = self.chunk_of(j) * self.chunk as u64;
        (off, (self.total - off).min(self.chunk as u64) as u32)
    }

    /// Gives up on this lane's remaining chunks (from the oldest unchecked one on).
    fn give_up(&mut self) -> Step {
        self.rep.failed += self
            .nchunks
            .saturating_sub(self.chunk_of(self.seen))
            .div_ceil(self.lanes as u64);
        Step::Done
    }

    /// Takes the subgroup's answers to this lane's last asks, in order. Returns whether the lane moved.
    fn take_answers(&mut self, g: &RingGroup<'_>, pauses: u32) -> bool {
        let mut moved = false;
        for nth in 0..std::mem::take(&mut self.asked) {
            match g.answer(self.index, nth) {
                Answer::Sent => {}
                // No ticket: this read and the ones after it are asked again while the budget lasts (tickets
                // go to a lane's asks in order, so none after it went out).
                Answer::Retry if pauses < self.budget => break,
                // Not submitted: counted failed when its turn comes.
                Answer::Retry | Answer::Failed => {
                    self.unsent |= 1 << (self.sent % self.depth as u64)
                }
            }
            self.sent += 1;
            moved = true;
        }
        moved
    }

    /// Consumes the oldest read in flight if it has completed: checksummed in its buffer, or counted failed.
    /// `Ok(false)`: it has not completed yet.
    fn take_oldest(&mut self, g: &mut RingGroup<'_>) -> Result<bool, ()> {
        let seen = self.seen;
        let bit = 1u32 << (seen % self.depth as u64);
        if self.unsent & bit != 0 {
            self.unsent &= !bit;
            self.rep.failed += 1;
            self.seen += 1;
            return Ok(true);
        }
        let (off, len) = self.range(seen);
        let k = self.slot_of(seen);
        let at = self.fixed + self.buf_off(seen);
        let lane = g.sg.lanes().get_mut(self.index).ok_or(())?;
        match lane.check(k) {
            Ok(Poll::WouldBlock) => return Ok(false),
            Ok(Poll::Ready(n)) if n == len as i32 => {
                // In place: no read targets this buffer until the lane asks for it below.
                let sum = lane.view().with_bytes(at, len, |b| checksum(off, b));
                self.rep.checksum = self.rep.checksum.wrapping_add(sum);
                self.rep.done += 1;
                self.rep.bytes += len as u64;
            }
            _ => self.rep.failed += 1,
        }
        self.seen += 1;
        Ok(true)
    }

    /// Asks the subgroup for every read that is due: fewer than `depth` in flight and chunks left.
    fn ask(&mut self, g: &mut RingGroup<'_>) {
        loop {
            let j = self.sent + self.asked as u64;
            if j - self.seen >= self.depth as u64 || self.chunk_of(j) >= self.nchunks {
                return;
            }
            let (file_off, len) = self.range(j);
            let Some(lane) = g.sg.lanes().get(self.index) else {
                return;
            };
            let sqe =
                lane.read_fixed_sqe(FileRef::Fixed(self.file), self.buf_off(j), len, file_off);
            if !g.ask(self.index, self.asked, sqe, self.slot_of(j)) {
                return;
            }
            self.asked += 1;
        }
    }
}

impl<'a> SteppedLane<RingGroup<'a>> for ReadLane {
    fn step(&mut self, g: &mut RingGroup<'a>, pauses: u32) -> Step {
        if self.refused {
            self.rep.failed = 1;
            return Step::Done;
        }
        let mut progressed = self.take_answers(g, pauses);
        // Consume what completed, oldest first, freeing each buffer for its next read.
        let mut blocked = false;
        for _ in 0..TAKE_MAX {
            if self.seen == self.sent {
                break;
            }
            match self.take_oldest(g) {
                Ok(true) => progressed = true,
                Ok(false) => {
                    blocked = true;
                    break;
                }
                Err(()) => return self.give_up(),
            }
        }
        // Keep `depth` reads in flight while chunks remain.
        self.ask(g);
        if self.asked == 0 && self.sent == self.seen && self.chunk_of(self.sent) >= self.nchunks {
            return Step::Done;
        }
        if progressed {
            return Step::Progress;
        }
        if blocked
            && (pauses >= self.budget || (pauses % 1024 == 0 && Instant::now() > self.deadline))
        {
            return self.give_up();
        }
        Step::Waiting
    }
}

/// Runs the read program `p` on lanes `first .. first + n` of the ring `view` (one subgroup) on this thread,
/// writing each lane's report into `reps` (in lane order), and flushes the lanes.
pub(crate) fn read_subgroup(
    view: RingView<'_>,
    first: u32,
    n: u32,
    p: &RunParams,
    deadline: Instant,
    reps: &mut [LaneReport],
) {
    let l = *view.layout();
    let mut g = RingGroup::new(view, first, n);
    let n = g.subgroup().len();
    let mut lanes: Vec<ReadLane> = (0..n)
        .map(|i| ReadLane::new(i, first + i as u32, p, l.slots_per_lane, l.fixed, deadline))
        .collect();
    step_subgroup(&mut g, &mut lanes, 0);
    for (r, lane) in reps.iter_mut().zip(&lanes) {
        *r = lane.report();
    }
    let _ = g.subgroup().flush(crate::protocol::DEFAULT_BUDGET);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#[path = "read_tests.rs"]
mod tests;
