//! The device side of the io_queue (PROTOCOL.md "io_queue (megakernel pump)", §Q3): allocate a slot,
//! publish a request, wait (bounded, with a status) for DONE or FAILED, read the result, free the slot. The
//! CPU reference device runs this code on its threads; GLSL and HIP/CUDA versions follow the same steps.
//!
//! No lane ever waits on another lane: allocation is one bounded scan of CAS attempts that fails with
//! [`QueueError::WouldBlock`] when every slot is taken, and every wait is for the pump and is bounded.
//!
//! Every access a lane makes to the arena is counted in the lane's own [`BusMeter`] (no atomic, no
//! allocation), per [`QueueRegion`]; [`QueueLane::bus`] reads them. A slot's request fields written by
//! [`publish_raw`](QueueLane::publish_raw) count as one store and a completion's fields read by
//! [`poll`](QueueLane::poll) as one load, as an SQE and a CQE do in the ring. The payload bytes of a region
//! are not counted (they cross the bus once, by design). All of the arena is host-shared, so the slot CAS and
//! the bitmap `fetch_or` show up as host-shared RMWs ([`crate::pump::bus`]).

use std::sync::atomic::Ordering::*;
use std::time::Instant;

use super::bus::QueueRegion;
use super::queue::*;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
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

    /// §Q3.1: one bounded scan for a FREE slot; CAS FREE → ALLOCATED with acquire (pairs with the release
    /// store of FREE by the slot's previous owner: its reads of the old request are done). `None` if every
    /// slot is taken.
    pub fn try_alloc(&mut self) -> Option<u32> {
        let n = self.q.layout().nslots;
        for i in 0..n {
            let idx = (self.next + i) % n;
            let st = self.q.state(idx);
            self.meter.load(QueueRegion::Slot);
            if st.load(Relaxed) != QUEUE_SLOT_FREE {
                continue;
            }
            // A host-shared RMW (counted as one): the io_queue's slot pool is not single-writer yet.
            self.meter.rmw(QueueRegion::Slot);
            if st
                .compare_exchange(QUEUE_SLOT_FREE, QUEUE_SLOT_ALLOCATED, Acquire, Relaxed)
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
            backoff(i);
        }
        Err(QueueError::WouldBlock)
    }

    /// §Q3.2: fills an ALLOCATED slot with every field of `s` except `state`, clears `result` and `error`, then
    /// publishes it. Used by [`publish`](Self::publish) and by tests that need arbitrary slot contents.
    pub fn publish_raw(&mut self, slot: u32, s: &IoSlot) {
        use slot_off::*;
        let q = &self.q;
        debug_assert_eq!(q.state(slot).load(Relaxed), QUEUE_SLOT_ALLOCATED);
        // Relaxed stores: the release store of PUBLISHED below orders them before the pump's claim.
        q.slot32(slot, OP).store(s.op, Relaxed);
        q.slot32(slot, FILE).store(s.file, Relaxed);
        q.slot32(slot, BUF).store(s.buf, Relaxed);
        q.slot64(slot, FILE_OFFSET).store(s.file_offset, Relaxed);
        q.slot64(slot, BUF_OFFSET).store(s.buf_offset, Relaxed);
        q.slot32(slot, LEN).store(s.len, Relaxed);
        q.slot32(slot, OWNER).store(s.owner, Relaxed);
        q.slot64(slot, TAG).store(s.tag, Relaxed);
        q.slot32(slot, RESULT).store(0, Relaxed);
        q.slot32(slot, ERROR).store(0, Relaxed);
        q.slot32(slot, RESERVED0).store(s.reserved[0], Relaxed);
        q.slot32(slot, RESERVED1).store(s.reserved[1], Relaxed);
        self.meter.store(QueueRegion::Slot);
        // Release: the pump's acquire CAS that claims the slot sees every field above (and, for WRITE, the
        // buffer bytes this lane wrote before publishing).
        q.state(slot).store(QUEUE_SLOT_PUBLISHED, Release);
        self.meter.store(QueueRegion::Slot);
        // Release RMW: the pump's acquire swap of this word makes the PUBLISHED store visible, and orders this
        // publication before any later one of this lane (what FENCE relies on, §Q6). A host-shared RMW
        // (counted): the bitmap has many writers.
        q.bitmap_word(slot / 32).fetch_or(1 << (slot % 32), Release);
        self.meter.rmw(QueueRegion::Bitmap);
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

    /// §Q3.3: one look at slot `slot`. Acquire load of the state: on DONE/FAILED the result, error (and READ
    /// data) written before the pump's release store are visible. If the pump has stopped and the slot is
    /// still PUBLISHED, withdraws it (CAS PUBLISHED → ALLOCATED, racing fairly with the pump's own claim) and
    /// returns [`QueueError::PumpStopped`].
    pub fn poll(&mut self, slot: u32) -> Result<SlotPoll, QueueError> {
        let q = &self.q;
        let meter = &self.meter;
        // The lane waits on the state: a waited load each poll.
        meter.waited_load(QueueRegion::Slot);
        // A state no value names (device code rewrote the word) reads as still the pump's, like CLAIMED.
        match QueueSlotState::try_from(q.state(slot).load(Acquire)) {
            Ok(s @ (QueueSlotState::Done | QueueSlotState::Failed)) => {
                // The completion's fields: one load, as a CQE.
                meter.load(QueueRegion::Slot);
                Ok(SlotPoll::Complete(QueueCompletion {
                    done: s == QueueSlotState::Done,
                    result: q.result(slot).load(Relaxed),
                    error: q.slot32(slot, slot_off::ERROR).load(Relaxed),
                    tag: q.slot64(slot, slot_off::TAG).load(Relaxed),
                }))
            }
            Ok(QueueSlotState::Published)
                if {
                    meter.waited_load(QueueRegion::Header);
                    matches!(
                        PumpState::try_from(q.pump_state().load(Acquire)),
                        Ok(PumpState::Stopped | PumpState::Failed)
                    )
                } && {
                    // A host-shared RMW (counted): the withdrawal races the pump's claim on the slot word.
                    meter.rmw(QueueRegion::Slot);
                    q.state(slot)
                        .compare_exchange(
                            QUEUE_SLOT_PUBLISHED,
                            QUEUE_SLOT_ALLOCATED,
                            Acquire,
                            Relaxed,
                        )
                        .is_ok()
                } =>
            {
                Err(QueueError::PumpStopped)
            }
            Ok(QueueSlotState::Free | QueueSlotState::Allocated) => {
                Err(QueueError::NotPublished(slot))
            }
            Ok(QueueSlotState::Published | QueueSlotState::Claimed) | Err(_) => {
                Ok(SlotPoll::Pending)
            }
        }
    }

    /// §Q3.3: polls up to `budget` times. [`QueueError::TimedOut`] leaves the slot with the pump.
    pub fn wait(&mut self, slot: u32, budget: u32) -> Result<QueueCompletion, QueueError> {
        for i in 0..budget.max(1) {
            if let SlotPoll::Complete(c) = self.poll(slot)? {
                return Ok(c);
            }
            backoff(i);
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
            if let SlotPoll::Complete(c) = self.poll(slot)? {
                return Ok(c);
            }
            if i % 64 == 63 && Instant::now() >= deadline {
                return Err(QueueError::TimedOut);
            }
            backoff(i);
            i = i.saturating_add(1);
        }
    }

    /// §Q3.4: frees a slot this lane owns (DONE, FAILED, or ALLOCATED). Release: this lane's reads of the
    /// result and of the region bytes happen before the next owner's writes.
    pub fn free(&mut self, slot: u32) {
        debug_assert!(matches!(
            self.q.state(slot).load(Relaxed),
            QUEUE_SLOT_DONE | QUEUE_SLOT_FAILED | QUEUE_SLOT_ALLOCATED
        ));
        self.q.state(slot).store(QUEUE_SLOT_FREE, Release);
        self.meter.store(QueueRegion::Slot);
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

/// Backoff between polls on the CPU reference device: spin, then yield, then short sleeps (lanes outnumber
/// the cores; the pump thread must get to run). GPU implementations use `__nanosleep` / `s_sleep`.
#[inline]
pub fn backoff(i: u32) {
    if i < 256 {
        std::hint::spin_loop();
    } else if i < 512 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(std::time::Duration::from_micros(20));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pump::queue::QueueArenaPlan;

    /// The counters of one request, the pump's part played by the test: alloc (a slot load and CAS), publish
    /// (fields, state, bitmap fetch_or), two polls (one pending, one done with its completion read), free.
    #[test]
    fn one_request_counts_its_host_shared_accesses() {
        let a = PumpArena::new(QueueArenaPlan::new(4, &[64], 0).unwrap()).unwrap();
        let v = a.view();
        let mut lane = QueueLane::new(v, 0);
        let slot = lane.try_alloc().unwrap();
        lane.publish(slot, &Request::nop().tag(9));
        assert_eq!(lane.poll(slot), Ok(SlotPoll::Pending));
        v.state(slot).store(QUEUE_SLOT_DONE, Release);
        assert!(matches!(lane.poll(slot), Ok(SlotPoll::Complete(c)) if c.tag == 9));
        lane.free(slot);

        let b = lane.bus();
        let slot_c = b.get(QueueRegion::Slot);
        assert_eq!(
            (slot_c.rmw, slot_c.waited_loads, slot_c.loads, slot_c.stores),
            (1, 2, 2, 3)
        );
        let bitmap = b.get(QueueRegion::Bitmap);
        assert_eq!((bitmap.rmw, bitmap.stores), (1, 0));
        // Every access is host-shared: 2 RMWs on host memory per request today (slot CAS, bitmap fetch_or).
        assert_eq!(b.host_shared().rmw, 2);
        assert_eq!(b.device_local(), Default::default());
    }
}
