//! [`Program::Read`](crate::backend::Program::Read) on the CPU reference device: each lane a [`ReadLane`]
//! state machine, the lanes of one subgroup stepped on one thread ([`step_subgroup`]) with the subgroup's
//! aggregation (PROTOCOL.md "Subgroups"): each round the elected lane makes one reap pass for all lanes, each
//! lane checks its own slot, and the reads the lanes asked to submit go out as one batch (one credit and
//! ticket reservation, one publication, one doorbell).
//!
//! A lane whose read completed copies the chunk out of its buffer and asks for the buffer's next read in the
//! same step, and checksums the copy in its next step, after the batch went out: the subgroup's lanes run on
//! one core, so checksumming before asking would hold each batch back by every completed lane's checksum while
//! the SQ thread has nothing to do (read_throughput, `direct 8x1`: about 135 k reads/s, half the baseline,
//! checksumming first; 260 k, 0.95x, copying first, on a quiet machine).
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
use crate::protocol::subgroup::{PerLane, MAX_SUBGROUP};
use crate::protocol::{idle, CompletionMode, FileRef, LaneError, Poll, Subgroup};
use crate::ring::RingView;

/// CQEs a reap pass claims at most: as many as [`crate::protocol::Lane::poll`]'s pass.
const REAP_MAX: u32 = 16;

/// A read a lane asks its subgroup to submit.
#[derive(Debug, Clone, Copy)]
struct Ask {
    file: u32,
    fixed_off: u32,
    len: u32,
    file_off: u64,
    slot: u32,
}

/// What the lanes of one subgroup share: the protocol's [`Subgroup`] (each lane's protocol state; the
/// aggregated reservation, publication and reap), the reads asked for this round and the answers to the last
/// round's.
pub(crate) struct RingGroup<'a> {
    sg: Subgroup<'a>,
    asks: [Option<Ask>; MAX_SUBGROUP],
    answers: PerLane<Result<u32, LaneError>>,
}

impl<'a> RingGroup<'a> {
    pub(crate) fn new(view: RingView<'a>, first: u32, n: u32) -> RingGroup<'a> {
        RingGroup {
            sg: Subgroup::new(view, first, n),
            asks: [None; MAX_SUBGROUP],
            answers: [None; MAX_SUBGROUP],
        }
    }

    /// The protocol subgroup (to flush it after the program).
    pub(crate) fn subgroup(&mut self) -> &mut Subgroup<'a> {
        &mut self.sg
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

    /// One batched submission of the reads the lanes asked for (a single attempt: a lane that got no ticket
    /// asks again in a later round, within its budget).
    fn end_round(&mut self) -> bool {
        let mask =
            self.asks
                .iter()
                .enumerate()
                .fold(0u32, |m, (i, a)| if a.is_some() { m | 1 << i } else { m });
        if mask == 0 {
            return false;
        }
        let asks = self.asks;
        self.answers = self.sg.submit(mask, 0, |i, lane| {
            let a = asks.get(i).copied().flatten().unwrap_or(Ask {
                file: 0,
                fixed_off: 0,
                len: 0,
                file_off: 0,
                slot: 0,
            });
            (
                lane.read_fixed_sqe(FileRef::Fixed(a.file), a.fixed_off, a.len, a.file_off),
                CompletionMode::Slot(a.slot),
                None,
            )
        });
        self.asks = [None; MAX_SUBGROUP];
        self.answers.iter().any(|a| matches!(a, Some(Ok(_))))
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
    /// Reads submitted (or given up on) / taken (copied out or counted failed); the ones in between are in
    /// flight.
    sent: u64,
    seen: u64,
    /// Reads whose submission failed, by buffer index.
    unsent: u32,
    /// Whether this lane's ask is in the current batch.
    asked: bool,
    buf: Vec<u8>,
    /// The chunk in `buf` still to be checksummed (file offset, length).
    copied: Option<(u64, u32)>,
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
        let (file, chunk, total, depth) = (p.arg0, p.arg1, p.total, p.arg2.clamp(1, 32));
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
            asked: false,
            copied: None,
            buf: vec![0u8; if refused { 0 } else { chunk as usize }],
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
}

impl ReadLane {
    /// Checksums the chunk the last step copied out, if any.
    fn finish_sum(&mut self) -> bool {
        let Some((off, len)) = self.copied.take() else {
            return false;
        };
        let b = &self.buf[..len as usize];
        self.rep.checksum = self.rep.checksum.wrapping_add(checksum(off, b));
        self.rep.done += 1;
        self.rep.bytes += len as u64;
        true
    }

    /// Asks the subgroup to submit the next read, if one is due: fewer than `depth` in flight and chunks left.
    fn ask(&mut self, g: &mut RingGroup<'_>) {
        if self.sent - self.seen >= self.depth as u64 || self.chunk_of(self.sent) >= self.nchunks {
            return;
        }
        let (file_off, len) = self.range(self.sent);
        if let Some(a) = g.asks.get_mut(self.index) {
            *a = Some(Ask {
                file: self.file,
                fixed_off: self.buf_off(self.sent),
                len,
                file_off,
                slot: self.slot_of(self.sent),
            });
            self.asked = true;
        }
    }
}

impl<'a> SteppedLane<RingGroup<'a>> for ReadLane {
    fn step(&mut self, g: &mut RingGroup<'a>, pauses: u32) -> Step {
        if self.refused {
            self.rep.failed = 1;
            return Step::Done;
        }
        let i = self.index;
        // The chunk copied out last step, checksummed after its buffer's next read went out.
        let mut progressed = self.finish_sum();
        if self.asked {
            self.asked = false;
            match g.answers.get_mut(i).and_then(Option::take) {
                Some(Ok(_)) => {
                    self.sent += 1;
                    progressed = true;
                }
                // No ticket this round: ask again while the budget lasts.
                Some(Err(LaneError::TimedOut)) if pauses < self.budget => {}
                // Not submitted: counted failed when its turn comes.
                _ => {
                    self.unsent |= 1 << (self.sent % self.depth as u64);
                    self.sent += 1;
                    progressed = true;
                }
            }
        }
        // Keep `depth` reads in flight while chunks remain.
        self.ask(g);
        let waiting = if progressed {
            Step::Progress
        } else {
            Step::Waiting
        };
        if self.asked {
            return waiting;
        }
        if self.sent == self.seen {
            return Step::Done;
        }
        // The oldest read in flight.
        let seen = self.seen;
        let bit = 1u32 << (seen % self.depth as u64);
        if self.unsent & bit != 0 {
            self.unsent &= !bit;
            self.rep.failed += 1;
            self.seen += 1;
            return Step::Progress;
        }
        let (off, len) = self.range(seen);
        let k = self.slot_of(seen);
        let Some(lane) = g.sg.lanes().get_mut(i) else {
            return self.give_up();
        };
        match lane.check(k) {
            Ok(Poll::WouldBlock) => {
                if pauses >= self.budget || (pauses % 1024 == 0 && Instant::now() > self.deadline) {
                    return self.give_up();
                }
                return waiting;
            }
            Ok(Poll::Ready(n)) if n == len as i32 => {
                // Copied out now, so the buffer's next read goes out with this round's batch; checksummed
                // next step (the subgroup's lanes copy, the batch is submitted, then they checksum).
                let at = self.fixed + self.buf_off(seen);
                lane.view().read_bytes(at, &mut self.buf[..len as usize]);
                self.copied = Some((off, len));
            }
            _ => self.rep.failed += 1,
        }
        self.seen += 1;
        self.ask(g);
        Step::Progress
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
