//! The host pump: one thread that claims published io_queue requests, validates them, and services READ and
//! WRITE with `IORING_OP_READ_FIXED` / `IORING_OP_WRITE_FIXED` on its own io_uring, into and out of buffer
//! regions registered as fixed buffers. Spec: PROTOCOL.md, "io_queue (megakernel pump)", §Q4–§Q7.
//!
//! One loop iteration: reap CQEs into slots → scan the request sequences for slots whose sequence changed →
//! claim, validate and push SQEs (up to the batch size and the in-flight cap) → one `io_uring_enter` for the batch → complete
//! fences whose predecessors are done → back off when nothing happened. The steady state allocates nothing:
//! every buffer the loop uses is sized when the pump is built.
//!
//! Every arena word is device-written and untrusted: the pump keeps its own record of which slots it holds and
//! which I/O is in flight (never re-reading them from the arena), counts whatever breaks the protocol, and
//! never panics on it.
//!
//! This file is the pump thread's state and loop ([`Engine`]); [`super::host::Pump`] builds it and owns the
//! thread that runs it.

#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};

#[cfg(feature = "testing")]
use super::config::SubmitFault;
use super::config::{IdleConfig, PumpConfig, PumpError, PumpFile, PumpStats};
use super::queue::*;
use super::validate::{validate, Valid, ValidIo};
use super::wake::LaneWake;

/// The live counters behind [`PumpStats`], shared by the pump thread (writer) and its handle (readers).
#[derive(Default)]
pub(super) struct Counters {
    claimed: AtomicU64,
    served: AtomicU64,
    failed: [AtomicU64; ERR_COUNT],
    batches: AtomicU64,
    sqes: AtomicU64,
    idle_parks: AtomicU64,
    fences: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    stale_bits: AtomicU64,
    protocol_violations: AtomicU64,
    foreign_cqes: AtomicU64,
    submit_errors: AtomicU64,
    cancelled: AtomicU64,
    abandoned: AtomicU64,
    in_flight: AtomicU64,
}

/// Counter updates: only the pump thread writes, so a relaxed load + store would do; `fetch_add` keeps it
/// obviously right. Readers get a relaxed snapshot.
fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

impl Counters {
    pub(super) fn snapshot(&self) -> PumpStats {
        let l = |c: &AtomicU64| c.load(Relaxed);
        let mut failed = [0; ERR_COUNT];
        for (f, c) in failed.iter_mut().zip(&self.failed) {
            *f = l(c);
        }
        PumpStats {
            claimed: l(&self.claimed),
            served: l(&self.served),
            failed,
            batches: l(&self.batches),
            sqes: l(&self.sqes),
            idle_parks: l(&self.idle_parks),
            fences: l(&self.fences),
            bytes_read: l(&self.bytes_read),
            bytes_written: l(&self.bytes_written),
            stale_bits: l(&self.stale_bits),
            protocol_violations: l(&self.protocol_violations),
            foreign_cqes: l(&self.foreign_cqes),
            submit_errors: l(&self.submit_errors),
            cancelled: l(&self.cancelled),
            abandoned: l(&self.abandoned),
            in_flight: l(&self.in_flight),
        }
    }
}

fn is_transient(errno: i32) -> bool {
    matches!(errno, libc::EAGAIN | libc::EBUSY | libc::EINTR)
}

/// Consecutive transient `io_uring_enter` failures after which the ring is treated as failed.
const MAX_TRANSIENT: u32 = 10_000;

/// What the pump holds a slot for, in its private per-slot record. The arena's `state` word says the same
/// thing to lanes, but a device can overwrite it at any time; the pump decides from this record only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Not held: the slot may be claimed when its bit is seen and it is PUBLISHED.
    No,
    /// A READ or WRITE of this op (`OP_READ`/`OP_WRITE`) is pushed to the ring; its CQE is not reaped yet.
    Io(u32),
    /// A FENCE waiting for its before set.
    Fence,
}

/// `user_data` of the SQE for slot `idx` armed with generation `gen`: the generation in the high 32 bits, the
/// slot index in the low 32.
fn user_data(idx: u32, gen: u32) -> u64 {
    (u64::from(gen) << 32) | u64::from(idx)
}

/// Everything the pump thread owns.
pub(super) struct Engine {
    ring: IoUring,
    /// A view of `_arena`, which this struct keeps alive (declared after `ring`, so the ring closes first).
    q: QueueView<'static>,
    _arena: Arc<PumpArena>,
    arena_base: u64,
    regions: Box<[RegionDesc]>,
    files: Box<[PumpFile]>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    /// Wakes lanes parked between polls ([`LaneWake`]) after a loop pass that completed requests.
    wake: Arc<LaneWake>,
    /// Requests completed since the last [`LaneWake::notify`].
    completed: std::cell::Cell<u32>,
    nslots: u32,
    /// Private bitmap of slots whose request sequence changed (bit `i % 32` of word `i / 32`), not yet claimed.
    pending: Box<[u32]>,
    /// Per slot: the request sequence last consumed (claimed, or found already consumed at claim time). A slot
    /// whose `req_seq` word differs from this holds a new publication.
    seen: Box<[u32]>,
    /// Per slot: the sequence of the request the pump holds or last completed (what `done_seq` gets).
    serving: Box<[u32]>,
    /// Per slot: the last request sequence already counted as a protocol violation (published while held).
    flagged: Box<[u32]>,
    /// While a FENCE waits: the requests published before it that are still unclaimed.
    fence_mask: Box<[u32]>,
    fence_waiters: Vec<u32>,
    fence_mode: bool,
    /// Requests pushed to the ring whose CQE has not been reaped: the number of `Held::Io` entries in `held`.
    inflight: u32,
    /// Per slot: what the pump holds it for (private; never read back from the arena).
    held: Box<[Held]>,
    /// Per slot: the generation of its latest READ/WRITE, carried in `user_data` so that a CQE that is not the
    /// one the pump waits for is never applied.
    gen: Box<[u32]>,
    /// Slots whose SQEs are pushed but not yet consumed by the kernel, in push order (a ring).
    fifo: Box<[u32]>,
    fifo_head: usize,
    fifo_len: usize,
    cap: u32,
    max_batch: u32,
    scan_word: usize,
    idle: IdleConfig,
    stop_timeout: Duration,
    #[cfg(feature = "testing")]
    fault: Option<SubmitFault>,
    submits: u64,
    transient_run: u32,
    /// Set once `io_uring_enter` failed for good: from then on the pump never submits again (it only waits
    /// for CQEs of SQEs the kernel already consumed), so SQEs it failed `ERR_SUBMIT` can never run.
    dead: Option<i32>,
    cancelling: bool,
}

impl Engine {
    /// The engine for a ring already set up with `cq` CQ entries and the arena's regions and `cfg.files`
    /// registered; `q` is a view of `arena`.
    pub(super) fn new(
        ring: IoUring,
        q: QueueView<'static>,
        arena: Arc<PumpArena>,
        cfg: &PumpConfig,
        cq: u32,
        counters: Arc<Counters>,
        stop: Arc<AtomicBool>,
    ) -> Engine {
        let nslots = cfg.slots;
        let words = nslots.div_ceil(32) as usize;
        let max_batch = if cfg.max_batch == 0 {
            cfg.sq_entries
        } else {
            cfg.max_batch.min(cfg.sq_entries)
        };
        let (base, _) = arena.raw();
        Engine {
            ring,
            q,
            arena_base: base as u64,
            regions: arena.regions().into(),
            _arena: arena,
            files: cfg.files.clone().into(),
            counters,
            stop,
            wake: Arc::default(),
            completed: std::cell::Cell::new(0),
            nslots,
            pending: vec![0; words].into(),
            seen: vec![0; nslots as usize].into(),
            serving: vec![0; nslots as usize].into(),
            flagged: vec![0; nslots as usize].into(),
            fence_mask: vec![0; words].into(),
            fence_waiters: Vec::with_capacity(nslots as usize),
            fence_mode: false,
            inflight: 0,
            held: vec![Held::No; nslots as usize].into(),
            gen: vec![0; nslots as usize].into(),
            fifo: vec![0; cfg.sq_entries as usize].into(),
            fifo_head: 0,
            fifo_len: 0,
            cap: cq.min(nslots),
            max_batch,
            scan_word: 0,
            idle: cfg.idle,
            stop_timeout: cfg.stop_timeout,
            #[cfg(feature = "testing")]
            fault: cfg.fault,
            submits: 0,
            transient_run: 0,
            dead: None,
            cancelling: false,
        }
    }

    // ---- completing slots ---------------------------------------------------------------------------------

    /// Completes the request the pump holds in slot `idx` (§Q4): its outbox words, of which the pump is the
    /// only writer. `result`/`error` are plain (relaxed) stores; the store of the completion sequence is a
    /// release, so a lane that acquires its sequence there sees them, and (READ) the data the kernel wrote,
    /// which the pump acquired with the CQ tail before this store. `error == ERR_NONE` means DONE.
    fn complete(&self, idx: u32, ok: bool, result: i32, error: u32) {
        let q = &self.q;
        let error = if ok { ERR_NONE } else { error };
        q.result(idx).store(result, Relaxed);
        q.slot32(idx, slot_off::ERROR).store(error, Relaxed);
        let seq = self.serving.get(idx as usize).copied().unwrap_or(0);
        q.done_seq(idx).store(seq, Release);
        self.completed.set(self.completed.get().saturating_add(1));
        if ok {
            bump(&self.counters.served, 1);
        } else if let Some(c) = self.counters.failed.get(error as usize) {
            bump(c, 1);
        }
    }

    /// The word this engine bumps after completing requests (the [`super::Pump`] hands it to lanes).
    pub(super) fn lane_wake(&self) -> Arc<LaneWake> {
        self.wake.clone()
    }

    /// Tells parked lanes about the completions stored since the last call (a system call only while a lane
    /// is parked, [`LaneWake::notify`]). Returns whether it woke a lane that last ran on this thread's CPU.
    fn wake_lanes(&self) -> bool {
        let n = self.completed.replace(0);
        n > 0 && self.wake.notify(n)
    }

    /// Publishes the in-flight gauge (only this thread writes it).
    fn note_inflight(&self) {
        self.counters
            .in_flight
            .store(u64::from(self.inflight), Relaxed);
    }

    /// Claims slot `idx` (§Q4.3): an acquire load of its request sequence (pairs with the lane's release store:
    /// the request fields it wrote before are visible); a sequence other than the one last consumed is a new
    /// request, which the pump now holds. Fails if the sequence is the one already consumed (the word went
    /// back: `stale_bits`), if there is no such slot, or if the pump still holds the slot (counted
    /// `protocol_violations`; the held request goes on and completes normally). No arena word is written.
    fn claim(&mut self, idx: u32) -> bool {
        let i = idx as usize;
        match self.held.get(i) {
            Some(Held::No) => {}
            Some(_) => {
                bump(&self.counters.protocol_violations, 1);
                return false;
            }
            None => {
                bump(&self.counters.stale_bits, 1);
                return false;
            }
        }
        let v = self.q.req_seq(idx).load(Acquire);
        let (Some(seen), Some(serving), Some(flagged)) = (
            self.seen.get_mut(i),
            self.serving.get_mut(i),
            self.flagged.get_mut(i),
        ) else {
            return false;
        };
        if v == *seen {
            bump(&self.counters.stale_bits, 1);
            return false;
        }
        *seen = v;
        *serving = v;
        *flagged = v;
        bump(&self.counters.claimed, 1);
        true
    }

    // ---- finding requests ----------------------------------------------------------------------------------

    /// §Q4.2: one pass over the request-sequence array (relaxed loads of a dense `u32` array: an idle pump
    /// reads `nslots / 16` cache lines and writes none). A slot whose sequence differs from the one last
    /// consumed goes into the private pending set — unless the pump holds it: then it is a publication over a
    /// held request, counted once per sequence value as a protocol violation and left for after the held
    /// request completes. Returns whether a slot became pending.
    fn collect(&mut self) -> bool {
        let mut any = false;
        for idx in 0..self.nslots {
            let i = idx as usize;
            let v = self.q.req_seq(idx).load(Relaxed);
            if Some(&v) == self.seen.get(i) {
                continue;
            }
            if !matches!(self.held.get(i), Some(Held::No)) {
                if let Some(f) = self.flagged.get_mut(i) {
                    if *f != v {
                        *f = v;
                        bump(&self.counters.protocol_violations, 1);
                    }
                }
                continue;
            }
            if let Some(p) = self.pending.get_mut(i / 32) {
                let bit = 1 << (idx % 32);
                any |= *p & bit == 0;
                *p |= bit;
            }
        }
        any
    }

    /// Fails every pending request with `ERR_STOPPED` (stopping).
    fn fail_pending(&mut self) {
        self.fence_mask.fill(0);
        for w in 0..self.pending.len() {
            let mut bits = self.pending.get_mut(w).map_or(0, std::mem::take);
            while bits != 0 {
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                let idx = (w as u32) * 32 + b;
                // `claim` counts a bit past the last slot as stale.
                if self.claim(idx) {
                    self.complete(idx, false, 0, ERR_STOPPED);
                }
            }
        }
    }

    // ---- claiming and validating ----------------------------------------------------------------------------

    /// Claims, validates and pushes pending requests until the batch, the SQ or the in-flight cap is full.
    fn process(&mut self) -> bool {
        let words = self.pending.len();
        let mut did = false;
        let mut pushed = 0u32;
        for k in 0..words {
            let w = (self.scan_word + k) % words.max(1);
            loop {
                let mut bits = self.pending.get(w).copied().unwrap_or(0);
                if self.fence_mode {
                    bits &= self.fence_mask.get(w).copied().unwrap_or(0);
                }
                if bits == 0 {
                    break;
                }
                if self.inflight >= self.cap
                    || pushed >= self.max_batch
                    || self.fifo_len >= self.fifo.len()
                {
                    // Out of room: resume at this word next time (fairness under overload).
                    self.scan_word = w;
                    return did;
                }
                let b = bits.trailing_zeros();
                if let Some(p) = self.pending.get_mut(w) {
                    *p &= !(1 << b);
                }
                if let Some(m) = self.fence_mask.get_mut(w) {
                    *m &= !(1 << b);
                }
                did = true;
                let idx = (w as u32) * 32 + b;
                if !self.claim(idx) {
                    continue;
                }
                let s = self.q.snapshot(idx);
                match validate(&s, &self.regions, &self.files) {
                    Err(code) => self.complete(idx, false, 0, code),
                    Ok(Valid::Nop) => self.complete(idx, true, 0, ERR_NONE),
                    Ok(Valid::Fence) => self.begin_fence(idx),
                    Ok(Valid::Io(io)) => {
                        self.push_io(idx, &io);
                        pushed += 1;
                    }
                }
            }
        }
        self.scan_word = (self.scan_word + 1) % words.max(1);
        did
    }

    /// A FENCE was claimed. Every request published before it (by happens-before: its release store of the
    /// request sequence precedes the FENCE's) is now either claimed, in `pending`, or visible in the
    /// request-sequence array — the claim loaded the FENCE's sequence with acquire, so by coherence a fresh
    /// scan reads each earlier request's sequence (or a later one of the same slot). From here until the fence
    /// completes, only those requests are claimed; the fence completes when they are claimed and nothing is
    /// in flight.
    fn begin_fence(&mut self, idx: u32) {
        self.collect();
        self.fence_mode = true;
        for (m, p) in self.fence_mask.iter_mut().zip(self.pending.iter()) {
            *m |= *p;
        }
        if let Some(h) = self.held.get_mut(idx as usize) {
            *h = Held::Fence;
        }
        self.fence_waiters.push(idx);
    }

    /// Completes every waiting FENCE (DONE when `ok`, else FAILED `STOPPED`) and releases it.
    fn complete_fences(&mut self, ok: bool) {
        let waiters = std::mem::take(&mut self.fence_waiters);
        for &idx in &waiters {
            if let Some(h) = self.held.get_mut(idx as usize) {
                *h = Held::No;
            }
            if ok {
                self.complete(idx, true, 0, ERR_NONE);
                bump(&self.counters.fences, 1);
            } else {
                self.complete(idx, false, 0, ERR_STOPPED);
            }
        }
        // Keep the allocation (the steady state allocates nothing).
        self.fence_waiters = waiters;
        self.fence_waiters.clear();
    }

    fn check_fences(&mut self) -> bool {
        if !self.fence_mode || self.inflight != 0 || self.fence_mask.iter().any(|&m| m != 0) {
            return false;
        }
        self.complete_fences(true);
        self.fence_mode = false;
        true
    }

    fn push_io(&mut self, idx: u32, io: &ValidIo) {
        let Some(gen) = self.gen.get_mut(idx as usize) else {
            // Cannot happen: `claim` succeeded, so `idx` names a slot.
            self.complete(idx, false, -libc::EINVAL, ERR_SUBMIT);
            return;
        };
        *gen = gen.wrapping_add(1);
        let gen = *gen;
        let addr = self.arena_base + io.arena_offset;
        let file = types::Fixed(io.file);
        let entry = if io.op == OP_READ {
            opcode::ReadFixed::new(file, addr as *mut u8, io.len, io.buf as u16)
                .offset(io.file_offset)
                .build()
        } else {
            opcode::WriteFixed::new(file, addr as *const u8, io.len, io.buf as u16)
                .offset(io.file_offset)
                .build()
        }
        .user_data(user_data(idx, gen));
        // SAFETY: the buffer `[addr, addr + len)` lies inside registered buffer `io.buf` (validated), which
        // is arena memory that outlives the ring (the engine owns the arena and drops the ring first, and the
        // kernel pins registered pages); the lane does not touch it until it sees the slot complete.
        let pushed = unsafe { self.ring.submission().push(&entry) };
        debug_assert!(pushed.is_ok(), "process() checks the SQ has room");
        if pushed.is_err() {
            // Cannot happen (fifo_len < sq entries was checked); fail rather than strand the slot.
            self.complete(idx, false, -libc::EBUSY, ERR_SUBMIT);
            return;
        }
        let at = (self.fifo_head + self.fifo_len) % self.fifo.len().max(1);
        if let Some(f) = self.fifo.get_mut(at) {
            *f = idx;
        }
        self.fifo_len += 1;
        self.inflight += 1;
        if let Some(h) = self.held.get_mut(idx as usize) {
            *h = Held::Io(io.op);
        }
        self.note_inflight();
    }

    // ---- submitting -------------------------------------------------------------------------------------------

    /// One `io_uring_enter` for everything in the SQ. `Err(errno)` when the ring failed for good.
    fn submit(&mut self) -> Result<bool, i32> {
        if self.fifo_len == 0 || self.dead.is_some() {
            return Ok(false);
        }
        let n = self.fifo_len as u32;
        let result = self.injected_fault(n);
        self.submits += 1;
        let result = result.unwrap_or_else(|| self.ring.submitter().submit());
        // How many did the kernel consume? The SQ head says (acquire, in `submission()`).
        let left = self.ring.submission().len();
        let consumed = self.fifo_len.saturating_sub(left);
        self.fifo_head = (self.fifo_head + consumed) % self.fifo.len().max(1);
        self.fifo_len -= consumed;
        if consumed > 0 {
            bump(&self.counters.batches, 1);
            bump(&self.counters.sqes, consumed as u64);
        }
        match result {
            Ok(_) => {
                self.transient_run = 0;
                Ok(consumed > 0)
            }
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(libc::EIO);
                bump(&self.counters.submit_errors, 1);
                self.transient_run += 1;
                if is_transient(errno) && self.transient_run < MAX_TRANSIENT {
                    // The SQEs stay in the SQ and go with the next enter (after we reap: EBUSY means the
                    // kernel wants CQ room).
                    Ok(consumed > 0)
                } else {
                    self.fail_unconsumed(errno);
                    Err(errno)
                }
            }
        }
    }

    /// The `testing` feature's [`SubmitFault`]: when it fires, a real, partial `io_uring_enter` of `consume`
    /// SQEs, then the injected error.
    #[cfg(feature = "testing")]
    fn injected_fault(&mut self, n: u32) -> Option<io::Result<usize>> {
        let f = self.fault.as_mut()?;
        if f.times == 0 || self.submits < f.after || n < f.min_sqes {
            return None;
        }
        f.times -= 1;
        let consume = f.consume.min(n);
        if consume > 0 {
            // SAFETY: a plain io_uring_enter submitting `consume` of the SQEs already in the SQ (each valid, see
            // `push_io`); no extra argument.
            let _ = unsafe {
                self.ring
                    .submitter()
                    .enter::<libc::sigset_t>(consume, 0, 0, None)
            };
        }
        Some(Err(io::Error::from_raw_os_error(f.errno)))
    }

    /// Without the `testing` feature nothing is injected.
    #[cfg(not(feature = "testing"))]
    fn injected_fault(&mut self, _n: u32) -> Option<io::Result<usize>> {
        None
    }

    /// The ring failed: every SQE the kernel did not consume fails `ERR_SUBMIT` with `-errno`. They stay in
    /// the SQ, but the pump never calls `io_uring_enter` with `to_submit > 0` again and closes the ring when
    /// it stops, so they can never run.
    fn fail_unconsumed(&mut self, errno: i32) {
        self.dead = Some(errno);
        while self.fifo_len > 0 {
            let idx = self.fifo.get(self.fifo_head).copied().unwrap_or(u32::MAX);
            self.fifo_head = (self.fifo_head + 1) % self.fifo.len().max(1);
            self.fifo_len -= 1;
            if let Some(h) = self.held.get_mut(idx as usize) {
                if matches!(*h, Held::Io(_)) {
                    *h = Held::No;
                    self.inflight = self.inflight.saturating_sub(1);
                    self.complete(idx, false, -errno, ERR_SUBMIT);
                }
            }
        }
        self.note_inflight();
    }

    // ---- reaping ---------------------------------------------------------------------------------------------

    /// Runs pending task work if the kernel asks for it (`IORING_SQ_TASKRUN`), without submitting anything.
    fn run_task_work(&mut self) {
        if self.ring.submission().taskrun() {
            // SAFETY: io_uring_enter with to_submit = 0 and no argument: it only runs task work and flushes
            // completions.
            let _ = unsafe {
                self.ring.submitter().enter::<libc::sigset_t>(
                    0,
                    0,
                    crate::ring::sys::ENTER_GETEVENTS,
                    None,
                )
            };
        }
    }

    /// Reaps every CQE into its slot. Returns whether any arrived.
    fn reap(&mut self) -> bool {
        if self.inflight == 0 {
            return false;
        }
        self.run_task_work();
        let mut any = false;
        loop {
            // The crate's CQ reads the tail with acquire (the kernel wrote the CQE and, for READ, the data
            // before its release of the tail) and stores the head with release when dropped.
            let next = self.ring.completion().next();
            let Some(cqe) = next else { break };
            any = true;
            self.on_cqe(cqe.user_data(), cqe.result());
        }
        any
    }

    /// Applies one CQE. Only the CQE of the I/O the pump holds the slot for — same slot, same generation — is
    /// applied, and it releases the slot and the in-flight count exactly once; anything else is counted
    /// `foreign_cqes` and dropped.
    fn on_cqe(&mut self, ud: u64, res: i32) {
        let idx = ud as u32;
        let gen = (ud >> 32) as u32;
        let held = self.held.get_mut(idx as usize);
        let current = self.gen.get(idx as usize).copied();
        let op = match held {
            Some(h) if current == Some(gen) => match *h {
                Held::Io(op) => {
                    *h = Held::No;
                    op
                }
                Held::No | Held::Fence => {
                    bump(&self.counters.foreign_cqes, 1);
                    return;
                }
            },
            _ => {
                bump(&self.counters.foreign_cqes, 1);
                return;
            }
        };
        self.inflight = self.inflight.saturating_sub(1);
        self.note_inflight();
        if res >= 0 {
            let c = if op == OP_READ {
                &self.counters.bytes_read
            } else {
                &self.counters.bytes_written
            };
            bump(c, res as u64);
            self.complete(idx, true, res, ERR_NONE);
        } else if self.cancelling && (res == -libc::ECANCELED || res == -libc::EINTR) {
            bump(&self.counters.cancelled, 1);
            self.complete(idx, false, res, ERR_STOPPED);
        } else {
            self.complete(idx, false, res, ERR_IO);
        }
    }

    /// Idle with nothing in flight: parks on the bell ([`LaneWake`]) for at most `timeout`. A lane of the CPU
    /// device that waits for a request it published rings it (only while the pump is parked), and so do
    /// `kick` and `stop`; a GPU lane cannot, and its publication waits for the timeout.
    fn park(&mut self, timeout: Duration) {
        let bell = self.wake.arm();
        // Look once more after arming (the fence in `arm`): a publication this scan misses rings the bell.
        // SeqCst: in the one order with `Pump::stop`'s store of the flag and its ring.
        if self.stop.load(SeqCst) || self.collect() {
            self.wake.disarm();
            return;
        }
        self.wake.park_pump(bell, timeout);
    }

    /// Waits up to `timeout` for a CQE, or, with nothing in flight, parks on the bell ([`Self::park`]).
    fn wait(&mut self, timeout: Duration) {
        if self.inflight == 0 {
            self.park(timeout);
        } else if self.dead.is_some() || self.fifo_len > 0 {
            // Never submit on a failed ring; just let completions arrive.
            self.run_task_work();
            std::thread::sleep(timeout.min(Duration::from_micros(200)));
        } else {
            let ts = types::Timespec::from(timeout);
            let args = types::SubmitArgs::new().timespec(&ts);
            // ETIME (timeout) and EINTR are expected; anything else shows up again on the next submit.
            let _ = self.ring.submitter().submit_with_args(1, &args);
        }
    }

    // ---- the loop ----------------------------------------------------------------------------------------------

    pub(super) fn run(mut self) -> Result<(), PumpError> {
        // Release: lanes that acquire RUNNING see the initialised queue (it was initialised before).
        self.q.pump_state().store(PUMP_RUNNING, Release);
        let mut last_active = Instant::now();
        let mut park = self.idle.min_park;
        loop {
            let mut work = self.reap();
            if self.stop.load(Acquire) {
                break;
            }
            work |= self.collect();
            work |= self.process();
            match self.submit() {
                Ok(s) => work |= s,
                Err(errno) => return self.shutdown(Some(errno)),
            }
            work |= self.check_fences();
            if self.wake_lanes() {
                // A woken lane shares this CPU: let it run now rather than at the end of this thread's slice
                // (read_throughput with every thread on one CPU: pump 1x8 about 0.7x of the baseline instead
                // of 0.57x, pump 8x1 0.73x instead of 0.53x; no difference the rounds show on two CPUs).
                std::thread::yield_now();
            }
            if work {
                last_active = Instant::now();
                park = self.idle.min_park;
            } else if last_active.elapsed() < self.idle.spin {
                std::hint::spin_loop();
            } else {
                bump(&self.counters.idle_parks, 1);
                self.wait(park);
                park = (park * 2).min(self.idle.max_park);
            }
        }
        self.shutdown(None)
    }

    fn drain(&mut self, deadline: Instant) {
        while self.inflight > 0 && Instant::now() < deadline {
            if self.dead.is_none() && self.fifo_len > 0 {
                if let Err(errno) = self.submit() {
                    self.dead = Some(errno);
                }
            }
            if !self.reap() {
                self.wait(Duration::from_millis(1));
            }
        }
    }

    /// Stops cleanly (PROTOCOL.md §Q7): no new work; unstarted requests fail `ERR_STOPPED`; in-flight I/O is
    /// drained (bounded), then cancelled; fences complete; every claimed slot ends DONE or FAILED.
    pub(super) fn shutdown(mut self, fatal: Option<i32>) -> Result<(), PumpError> {
        if let Some(e) = fatal {
            self.dead = Some(e);
        }
        self.q.pump_state().store(PUMP_STOPPING, Release);
        let fence_clean = self.fence_mask.iter().all(|&m| m == 0);
        self.collect();
        self.fail_pending();
        self.drain(Instant::now() + self.stop_timeout);
        if self.inflight > 0 {
            self.cancelling = true;
            let _ = self.ring.submitter().register_sync_cancel(
                Some(types::Timespec::from(Duration::from_secs(1))),
                types::CancelBuilder::any(),
            );
            self.drain(Instant::now() + Duration::from_secs(1));
        }
        let mut abandoned = 0;
        for idx in 0..self.nslots {
            if let Some(h) = self.held.get_mut(idx as usize) {
                if matches!(*h, Held::Io(_)) {
                    // The kernel did not complete it even after cancellation (only non-regular files can do
                    // this).
                    *h = Held::No;
                    self.complete(idx, false, -libc::ECANCELED, ERR_STOPPED);
                    abandoned += 1;
                }
            }
        }
        self.inflight = 0;
        self.note_inflight();
        bump(&self.counters.abandoned, abandoned);
        self.complete_fences(fence_clean && abandoned == 0);
        let final_state = if self.dead.is_some() {
            PUMP_FAILED
        } else {
            PUMP_STOPPED
        };
        // One last sweep: everything published by now fails STOPPED.
        self.collect();
        self.fail_pending();
        // Release: lanes that acquire STOPPED/FAILED see every completion above. The pump writes no slot word
        // after this store, so a lane that then still finds its sequence uncompleted knows it never will be:
        // the request is withdrawn (§Q7), decided without any RMW on the arena.
        self.q.pump_state().store(final_state, Release);
        // Lanes parked on completions see the final state at once.
        self.completed.set(u32::MAX);
        self.wake_lanes();
        match self.dead {
            Some(errno) => Err(PumpError::Submit { errno }),
            None => Ok(()),
        }
    }
}
