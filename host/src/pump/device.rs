//! The device side of the io_queue (PROTOCOL.md "io_queue (megakernel pump)", §Q3): allocate a slot,
//! publish a request, wait (bounded, with a status) for DONE or FAILED, read the result, free the slot. The
//! CPU reference device runs this code on its threads; GLSL and HIP/CUDA versions follow the same steps.
//!
//! No lane ever waits on another lane: allocation is one bounded scan of CAS attempts that fails with
//! [`QueueError::WouldBlock`] when every slot is taken, and every wait is for the pump and is bounded.
//!
//! Every access a lane makes to the arena and to the device-local block is counted in the lane's own
//! [`BusMeter`] (no atomic, no allocation), per [`QueueRegion`]; [`QueueLane::bus`] reads them. A slot's
//! request fields written by [`publish_raw`](QueueLane::publish_raw) count as one store and a completion's
//! fields read by [`poll`](QueueLane::poll) as one load, as an SQE and a CQE do in the ring. The payload bytes
//! of a region are not counted (they cross the bus once, by design). The only RMW a lane makes is the
//! allocation CAS on the device-local block: host-shared memory sees loads and stores only.

use std::sync::atomic::Ordering::*;
use std::time::Instant;

use super::bus::QueueRegion;
use super::queue::*;
use crate::protocol::idle;
use crate::ring::bus::{BusCounters, BusMeter};

/// A request as a lane states it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// `OP_*`.
    pub op: u32,
    /// File handle.
    pub file: u32,
    /// Buffer region handle.
    pub buf: u32,
    /// Offset in the file.
    pub file_offset: u64,
    /// Offset in the buffer region.
    pub buf_offset: u64,
    /// Bytes.
    pub len: u32,
    /// The lane's cookie, returned untouched.
    pub tag: u64,
}

impl Request {
    /// READ `len` bytes of `file` at `file_offset` into region `buf` at `buf_offset`.
    pub fn read(file: u32, file_offset: u64, buf: u32, buf_offset: u64, len: u32) -> Request {
        Request {
            op: OP_READ,
            file,
            buf,
            file_offset,
            buf_offset,
            len,
            tag: 0,
        }
    }

    /// WRITE `len` bytes of region `buf` at `buf_offset` to `file` at `file_offset`.
    pub fn write(file: u32, file_offset: u64, buf: u32, buf_offset: u64, len: u32) -> Request {
        Request {
            op: OP_WRITE,
            ..Request::read(file, file_offset, buf, buf_offset, len)
        }
    }

    /// NOP.
    pub fn nop() -> Request {
        Request::default()
    }

    /// FENCE.
    pub fn fence() -> Request {
        Request {
            op: OP_FENCE,
            ..Request::default()
        }
    }

    /// Sets the tag.
    pub fn tag(mut self, tag: u64) -> Request {
        self.tag = tag;
        self
    }
}

/// A finished request, as read from its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCompletion {
    /// DONE (true) or FAILED (false).
    pub done: bool,
    /// Bytes moved, 0, or `-errno`.
    pub result: i32,
    /// `ERR_*` (`ERR_NONE` when done).
    pub error: u32,
    /// The request's tag.
    pub tag: u64,
}

impl QueueCompletion {
    /// The bytes moved if the request was served.
    pub fn bytes(&self) -> Option<u32> {
        (self.done && self.result >= 0).then_some(self.result as u32)
    }
}

/// Why a device-side operation did not produce a completion.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// Every slot is in use; try again (after freeing one of yours, or later).
    #[error("would block: no free io_queue slot")]
    WouldBlock,
    /// The wait budget ran out; the request is still the pump's: wait again later, do not free the slot.
    #[error("timed out: the request has not completed within the budget")]
    TimedOut,
    /// The pump has stopped and never claimed the request; the lane withdrew it and owns the slot again
    /// (ALLOCATED): free it or publish it to another pump.
    #[error("the pump has stopped; the request was withdrawn unserved")]
    PumpStopped,
    /// The slot holds no published request (FREE or ALLOCATED): polling it can never complete.
    #[error("slot {0} holds no published request")]
    NotPublished(u32),
}

debug_as_display!(QueueError);

/// Result of one poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotPoll {
    /// Still PUBLISHED or CLAIMED.
    Pending,
    /// DONE or FAILED.
    Complete(QueueCompletion),
}

/// Default poll budget for [`QueueLane::wait`]: with the CPU backoff, about a minute at most.
pub const DEFAULT_WAIT_POLLS: u32 = 1 << 20;

/// One lane's handle on an io_queue.
pub struct QueueLane<'a> {
    q: QueueView<'a>,
    id: u32,
    next: u32,
    meter: BusMeter<QueueRegion>,
    /// Polls this lane spins before it sleeps between polls ([`Self::pause`]), adapted after every wait.
    spin: u32,
    /// Waits this lane has finished (for the probes of [`Self::waited`]).
    waits: u32,
}

impl<'a> QueueLane<'a> {
    /// Lane `id`. Lanes start their allocation scans at different slots so they rarely collide.
    pub fn new(q: QueueView<'a>, id: u32) -> QueueLane<'a> {
        let n = q.layout().nslots;
        QueueLane {
            q,
            id,
            next: id.wrapping_mul(0x9e37_79b9) % n,
            meter: BusMeter::default(),
            spin: SPIN_MAX,
            waits: 0,
        }
    }

    /// This lane's arena accesses so far, per region.
    pub fn bus(&self) -> BusCounters<QueueRegion> {
        self.meter.snapshot()
    }

    /// The view.
    pub fn view(&self) -> QueueView<'a> {
        self.q
    }

    /// This lane's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// §Q3.1: one bounded scan for a FREE slot in the device-local block; CAS FREE → ALLOCATED with acquire
    /// (pairs with the release store of FREE by the slot's previous owner: its reads of the old completion and
    /// region bytes are done). The slot's sequence stays in the word. `None` if every slot is taken.
    pub fn try_alloc(&mut self) -> Option<u32> {
        let n = self.q.layout().nslots;
        for i in 0..n {
            let idx = (self.next + i) % n;
            let own = self.q.own(idx);
            self.meter.load(QueueRegion::Local);
            let w = own.load(Relaxed);
            if w & QUEUE_SLOT_STATE_MASK != QUEUE_SLOT_FREE {
                continue;
            }
            // A device-local RMW: lanes compete for slots among themselves, never with the host.
            self.meter.rmw(QueueRegion::Local);
            if own
                .compare_exchange(w, w | QUEUE_SLOT_ALLOCATED, Acquire, Relaxed)
                .is_ok()
            {
                self.next = (idx + 1) % n;
                return Some(idx);
            }
        }
        None
    }

    /// [`try_alloc`](Self::try_alloc) up to `budget` times, backing off between scans.
    pub fn alloc(&mut self, budget: u32) -> Result<u32, QueueError> {
        for i in 0..budget.max(1) {
            if let Some(s) = self.try_alloc() {
                return Ok(s);
            }
            self.pause(i);
        }
        Err(QueueError::WouldBlock)
    }

    /// The sequence of the request this lane last published in `slot` (from its device-local word).
    pub fn seq(&self, slot: u32) -> u32 {
        self.q.own(slot).load(Relaxed) >> QUEUE_SEQ_SHIFT
    }

    /// §Q3.2: fills an ALLOCATED slot's request fields with those of `s` (its `done_seq`, `result` and
    /// `error` are the pump's and are not written), then publishes the next sequence. Used by
    /// [`publish`](Self::publish) and by tests that need arbitrary slot contents. Returns the sequence.
    pub fn publish_raw(&mut self, slot: u32, s: &IoSlot) -> u32 {
        use slot_off::*;
        let q = &self.q;
        let own = q.own(slot);
        self.meter.load(QueueRegion::Local);
        let w = own.load(Relaxed);
        debug_assert_eq!(w & QUEUE_SLOT_STATE_MASK, QUEUE_SLOT_ALLOCATED);
        let seq = next_seq(w >> QUEUE_SEQ_SHIFT);
        // Relaxed stores: the release store of the sequence below orders them before the pump's acquire.
        q.slot32(slot, OP).store(s.op, Relaxed);
        q.slot32(slot, FILE).store(s.file, Relaxed);
        q.slot32(slot, BUF).store(s.buf, Relaxed);
        q.slot64(slot, FILE_OFFSET).store(s.file_offset, Relaxed);
        q.slot64(slot, BUF_OFFSET).store(s.buf_offset, Relaxed);
        q.slot32(slot, LEN).store(s.len, Relaxed);
        q.slot32(slot, OWNER).store(s.owner, Relaxed);
        q.slot64(slot, TAG).store(s.tag, Relaxed);
        q.slot32(slot, RESERVED0).store(s.reserved[0], Relaxed);
        q.slot32(slot, RESERVED1).store(s.reserved[1], Relaxed);
        self.meter.store(QueueRegion::Slot);
        // Release: the pump's acquire load of this word sees every field above (and, for WRITE, the buffer
        // bytes this lane wrote before publishing); it also orders this publication after every earlier one
        // of this lane (what FENCE relies on, §Q6). This lane is the word's only writer.
        q.req_seq(slot).store(seq, Release);
        self.meter.store(QueueRegion::ReqSeq);
        // Device-local, lane-private while the lane owns the slot.
        own.store((seq << QUEUE_SEQ_SHIFT) | QUEUE_SLOT_PUBLISHED, Relaxed);
        self.meter.store(QueueRegion::Local);
        seq
    }

    /// §Q3.2: publishes `req` in ALLOCATED slot `slot`.
    pub fn publish(&mut self, slot: u32, req: &Request) {
        self.publish_raw(
            slot,
            &IoSlot {
                op: req.op,
                file: req.file,
                buf: req.buf,
                file_offset: req.file_offset,
                buf_offset: req.buf_offset,
                len: req.len,
                owner: self.id,
                tag: req.tag,
                ..IoSlot::default()
            },
        );
    }

    /// The completion fields of `slot` (after an acquire load of `done_seq` that read this lane's sequence).
    fn completion(&self, slot: u32) -> QueueCompletion {
        let q = &self.q;
        // The completion's fields: one load, as a CQE.
        self.meter.load(QueueRegion::Slot);
        let error = q.slot32(slot, slot_off::ERROR).load(Relaxed);
        QueueCompletion {
            done: error == ERR_NONE,
            result: q.result(slot).load(Relaxed),
            error,
            tag: q.slot64(slot, slot_off::TAG).load(Relaxed),
        }
    }

    /// §Q3.3: one look at slot `slot`. Acquire load of the slot's completion sequence: when it equals the
    /// sequence this lane published, the result, error (and READ data) the pump wrote before its release store
    /// are visible. Otherwise, if the pump has stopped (acquire: every slot word it wrote is visible, and it
    /// writes none after), one more look decides: completed, or withdrawn — never served, the lane owns the
    /// slot again ([`QueueError::PumpStopped`]). No CAS: the pump's last store of its state is the line.
    pub fn poll(&mut self, slot: u32) -> Result<SlotPoll, QueueError> {
        let q = &self.q;
        let own = q.own(slot);
        self.meter.load(QueueRegion::Local);
        let w = own.load(Relaxed);
        if w & QUEUE_SLOT_STATE_MASK != QUEUE_SLOT_PUBLISHED {
            return Err(QueueError::NotPublished(slot));
        }
        let seq = w >> QUEUE_SEQ_SHIFT;
        // The lane waits on the completion sequence: a waited load each poll.
        self.meter.waited_load(QueueRegion::Slot);
        if q.done_seq(slot).load(Acquire) == seq {
            return Ok(SlotPoll::Complete(self.completion(slot)));
        }
        self.meter.waited_load(QueueRegion::Header);
        if matches!(
            PumpState::try_from(q.pump_state().load(Acquire)),
            Ok(PumpState::Stopped | PumpState::Failed)
        ) {
            self.meter.load(QueueRegion::Slot);
            if q.done_seq(slot).load(Acquire) == seq {
                return Ok(SlotPoll::Complete(self.completion(slot)));
            }
            own.store((seq << QUEUE_SEQ_SHIFT) | QUEUE_SLOT_ALLOCATED, Relaxed);
            self.meter.store(QueueRegion::Local);
            return Err(QueueError::PumpStopped);
        }
        Ok(SlotPoll::Pending)
    }

    /// §Q3.3: polls up to `budget` times. [`QueueError::TimedOut`] leaves the slot with the pump.
    pub fn wait(&mut self, slot: u32, budget: u32) -> Result<QueueCompletion, QueueError> {
        for i in 0..budget.max(1) {
            let e = idle::epoch();
            if let SlotPoll::Complete(c) = self.poll(slot)? {
                self.waited(i);
                return Ok(c);
            }
            self.pause_for_pump(i, e);
        }
        Err(QueueError::TimedOut)
    }

    /// [`wait`](Self::wait) bounded by a deadline instead of a poll count (CPU lanes only).
    pub fn wait_until(
        &mut self,
        slot: u32,
        deadline: Instant,
    ) -> Result<QueueCompletion, QueueError> {
        let mut i = 0u32;
        loop {
            let e = idle::epoch();
            if let SlotPoll::Complete(c) = self.poll(slot)? {
                self.waited(i);
                return Ok(c);
            }
            if i % 64 == 63 && Instant::now() >= deadline {
                return Err(QueueError::TimedOut);
            }
            self.pause_for_pump(i, e);
            i = i.saturating_add(1);
        }
    }

    /// §Q3.5: frees a slot this lane owns (completed, or ALLOCATED). Release store on the device-local word:
    /// this lane's reads of the completion and of the region bytes happen before the next owner's writes.
    /// The sequence stays in the word, so the next owner publishes the one after it.
    pub fn free(&mut self, slot: u32) {
        let own = self.q.own(slot);
        let w = own.load(Relaxed);
        debug_assert_ne!(w & QUEUE_SLOT_STATE_MASK, QUEUE_SLOT_FREE);
        own.store(w & !QUEUE_SLOT_STATE_MASK, Release);
        self.meter.store(QueueRegion::Local);
    }

    /// Allocate, publish, wait, free. On [`QueueError::TimedOut`] the slot is not freed (the pump still owns
    /// the request); use the step-by-step API where a lane must keep waiting for it.
    pub fn submit(&mut self, req: &Request, budget: u32) -> Result<QueueCompletion, QueueError> {
        let slot = self.alloc(budget)?;
        self.publish(slot, req);
        let r = self.wait(slot, budget);
        match r {
            Ok(_) | Err(QueueError::PumpStopped) => self.free(slot),
            _ => {}
        }
        r
    }
}

/// The most polls a waiting lane spins before it sleeps: on the 2-core test machine about the publish→complete
/// time of a hot 4 KiB READ (p50 about 2 µs), so a lane alone with the pump sees its completion spinning.
const SPIN_MAX: u32 = 1024;
/// The fewest: lanes that keep missing their completion while spinning spin this little before they sleep.
const SPIN_MIN: u32 = 32;
/// Every this many waits, a lane spins the full [`SPIN_MAX`] whatever its budget.
const PROBE_EVERY: u32 = 8;
/// With an idle wait installed (the pump wakes parked lanes), the most polls a lane spins before it parks: a
/// lane spinning its full budget keeps a core from the pump and SQ threads (read_throughput, 7 rounds each:
/// pump 1x8 about 0.56x of the baseline parking after 32 polls against 0.40x–0.45x after the adaptive budget,
/// pump 8x1 about 0.53x against 0.39x–0.47x).
const PARK_AFTER: u32 = SPIN_MIN;
/// The sleep between polls after the spin (the timer slack adds tens of µs).
const SLEEP: std::time::Duration = std::time::Duration::from_micros(20);

impl QueueLane<'_> {
    /// Backoff between polls on the CPU reference device (GPU lanes use `__nanosleep` / `s_sleep`): spin for
    /// this lane's spin budget, then sleep. No yields: a yielding lane stays runnable and keeps the core from
    /// the pump thread it waits for (the scheduler runs it again), as a spinning one does; a sleeping lane
    /// frees it.
    fn pause(&self, i: u32) {
        if i < self.budget() {
            std::hint::spin_loop();
        } else {
            std::thread::sleep(SLEEP);
        }
    }

    /// [`Self::pause`] while waiting for the pump: after the spin budget (at most [`PARK_AFTER`] polls), the
    /// device's idle wait where it installed one ([`idle::pause`]; the CPU device's rings the pump's bell if the
    /// pump is parked and parks on the pump's [`super::LaneWake`], bounded), else
    /// the sleep. `epoch` was read before the failed poll.
    fn pause_for_pump(&self, i: u32, epoch: u32) {
        if i >= self.budget().min(PARK_AFTER) && idle::installed() {
            idle::pause(i, epoch);
        } else {
            self.pause(i);
        }
    }

    /// Adapts the spin budget after a wait that saw its completion at poll `i`: caught while spinning, the
    /// budget goes back to [`SPIN_MAX`]; after sleeping, it shrinks by an eighth (down to [`SPIN_MIN`]), and
    /// every [`PROBE_EVERY`]th wait spins the full [`SPIN_MAX`] again, so a lane whose budget shrank finds out
    /// when completions come quickly again. A lane alone with a hot pump keeps spinning through the odd
    /// preemption and sees completions within microseconds, while many lanes sharing the cores with the pump
    /// thread, whose completions come later than a spin, end up sleeping almost at once instead of taking the
    /// cores the pump needs. (Measured by `read_throughput` and `pump_latency`: experiments/README.md.)
    fn waited(&mut self, i: u32) {
        self.spin = if i < self.budget() {
            SPIN_MAX
        } else {
            (self.spin - self.spin / 8).max(SPIN_MIN)
        };
        self.waits = self.waits.wrapping_add(1);
    }

    /// The spin budget of the next wait.
    fn budget(&self) -> u32 {
        if self.waits % PROBE_EVERY == PROBE_EVERY - 1 {
            SPIN_MAX
        } else {
            self.spin
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pump::queue::QueueArenaPlan;

    /// The counters of one request, the pump's part played by the test: alloc (a local load and CAS),
    /// publish (local load, fields, request sequence, local store), two polls (one pending, which also reads
    /// the pump state, one done with its completion read), free.
    #[test]
    fn one_request_counts_its_accesses_and_no_host_shared_rmw() {
        let a = PumpArena::new(QueueArenaPlan::new(4, &[64], 0).unwrap()).unwrap();
        let v = a.view();
        let mut lane = QueueLane::new(v, 0);
        let slot = lane.try_alloc().unwrap();
        lane.publish(slot, &Request::nop().tag(9));
        let seq = lane.seq(slot);
        assert_eq!(v.req_seq(slot).load(Relaxed), seq);
        assert_eq!(lane.poll(slot), Ok(SlotPoll::Pending));
        v.done_seq(slot).store(seq, Release);
        assert!(matches!(lane.poll(slot), Ok(SlotPoll::Complete(c)) if c.tag == 9 && c.done));
        lane.free(slot);
        assert_eq!(lane.poll(slot), Err(QueueError::NotPublished(slot)));

        let b = lane.bus();
        let slot_c = b.get(QueueRegion::Slot);
        assert_eq!(
            (slot_c.rmw, slot_c.waited_loads, slot_c.loads, slot_c.stores),
            (0, 2, 1, 1)
        );
        let req = b.get(QueueRegion::ReqSeq);
        assert_eq!((req.rmw, req.stores), (0, 1));
        assert_eq!(b.host_shared().rmw, 0, "no RMW on host-shared memory");
        assert_eq!(b.device_local().rmw, 1, "the allocation CAS");
    }

    /// A slot's sequence wraps at 30 bits and the next owner continues it.
    #[test]
    fn sequences_continue_across_owners_and_wrap() {
        let a = PumpArena::new(QueueArenaPlan::new(1, &[64], 0).unwrap()).unwrap();
        let v = a.view();
        v.own(0).store(QUEUE_SEQ_MASK << QUEUE_SEQ_SHIFT, Relaxed);
        let mut l0 = QueueLane::new(v, 0);
        let s = l0.try_alloc().unwrap();
        l0.publish(s, &Request::nop());
        assert_eq!(l0.seq(s), 0, "wrapped");
        v.done_seq(s).store(0, Release);
        assert!(matches!(l0.poll(s), Ok(SlotPoll::Complete(_))));
        l0.free(s);
        let mut l1 = QueueLane::new(v, 1);
        let s = l1.try_alloc().unwrap();
        l1.publish(s, &Request::nop());
        assert_eq!(l1.seq(s), 1);
        assert_eq!(l1.poll(s), Ok(SlotPoll::Pending));
        // A stopped pump that never completed it: withdrawn, owned again.
        v.pump_state().store(PUMP_STOPPED, Release);
        assert_eq!(l1.poll(s), Err(QueueError::PumpStopped));
        assert_eq!(v.slot_state(s), Some(QueueSlotState::Allocated));
        l1.free(s);
    }
}
