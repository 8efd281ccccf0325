//! The host pump: one thread that claims published io_queue requests, validates them, and services READ and
//! WRITE with `IORING_OP_READ_FIXED` / `IORING_OP_WRITE_FIXED` on its own io_uring, into and out of buffer
//! regions registered as fixed buffers. Spec: PROTOCOL.md, "io_queue (megakernel pump)", §Q4–§Q7.
//!
//! One loop iteration: reap CQEs into slots → swap the pending bitmap into a private copy → claim, validate
//! and push SQEs (up to the batch size and the in-flight cap) → one `io_uring_enter` for the batch → complete
//! fences whose predecessors are done → back off when nothing happened. The steady state allocates nothing:
//! every buffer the loop uses is sized when the pump is built.
//!
//! Every arena word is device-written and untrusted: the pump keeps its own record of which slots it holds and
//! which I/O is in flight (never re-reading them from the arena), counts whatever breaks the protocol, and
//! never panics on it.

#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};

use super::queue::*;

/// A file the pump may read or write, registered with its ring. Its handle is its index in
/// [`PumpConfig::files`]. Requests are validated against `extent`, never against the live file size, so
/// validation costs no system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PumpFile {
    /// The descriptor to register (the pump's ring holds its own reference; the caller may close it after
    /// [`Pump::new`]).
    pub fd: RawFd,
    /// Whether WRITE is allowed (READ always is).
    pub writable: bool,
    /// Requests must lie inside `[0, extent)`.
    pub extent: u64,
}

impl PumpFile {
    /// Read-only, with the file's current size as its extent (`fstat`).
    pub fn reader(f: &impl AsRawFd) -> io::Result<PumpFile> {
        let fd = f.as_raw_fd();
        // SAFETY: an all-zero `stat` is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid out-parameter; `fd` is only a number to the kernel.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PumpFile {
            fd,
            writable: false,
            extent: st.st_size.max(0) as u64,
        })
    }

    /// Read-only with an explicit extent (pipes, devices, files that will grow).
    pub fn reader_with_extent(f: &impl AsRawFd, extent: u64) -> PumpFile {
        PumpFile {
            fd: f.as_raw_fd(),
            writable: false,
            extent,
        }
    }

    /// Readable and writable inside `[0, extent)` (writes may grow the file up to `extent`).
    pub fn writer(f: &impl AsRawFd, extent: u64) -> PumpFile {
        PumpFile {
            fd: f.as_raw_fd(),
            writable: true,
            extent,
        }
    }
}

/// Idle backoff: spin while work is likely, then park with a doubling timeout up to `max_park`. A request
/// published while the pump parks waits at most about `max_park` (plus scheduling) for it to look again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleConfig {
    /// Keep polling without sleeping for this long after the last activity.
    pub spin: Duration,
    /// First park timeout.
    pub min_park: Duration,
    /// Longest park timeout: the bound on cold-request latency added by the pump.
    pub max_park: Duration,
}

impl Default for IdleConfig {
    fn default() -> Self {
        IdleConfig {
            spin: Duration::from_micros(50),
            min_park: Duration::from_micros(50),
            max_park: Duration::from_millis(1),
        }
    }
}

/// Test hook: make one `io_uring_enter` of the pump fail after the kernel consumed `consume` SQEs of the
/// batch (that part is a real, partial `io_uring_enter`; the error is then reported as `errno`). Fires on the
/// first submit, counting from the `after`-th, that carries at least `min_sqes` SQEs; fires `times` times.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitFault {
    pub after: u64,
    pub min_sqes: u32,
    pub consume: u32,
    pub errno: i32,
    pub times: u32,
}

/// How to build a [`Pump`].
#[derive(Debug, Clone)]
pub struct PumpConfig {
    /// io_queue slots (1..=65536).
    pub slots: u32,
    /// Sizes of the buffer regions; region `i` is handle `i` and registered buffer `i`.
    pub regions: Vec<usize>,
    /// Registered files; file `i` is handle `i`.
    pub files: Vec<PumpFile>,
    /// The pump ring's SQ entries (power of two): the most SQEs one `io_uring_enter` carries.
    pub sq_entries: u32,
    /// CQ entries (default `2 * sq_entries`): the cap on requests in flight in the kernel.
    pub cq_entries: Option<u32>,
    /// Most requests claimed per loop iteration (0: `sq_entries`).
    pub max_batch: u32,
    /// Idle backoff.
    pub idle: IdleConfig,
    /// How long [`Pump::stop`] lets in-flight I/O finish before cancelling it.
    pub stop_timeout: Duration,
    #[doc(hidden)]
    pub fault: Option<SubmitFault>,
}

impl Default for PumpConfig {
    fn default() -> Self {
        PumpConfig {
            slots: 256,
            regions: Vec::new(),
            files: Vec::new(),
            sq_entries: 128,
            cq_entries: None,
            max_batch: 0,
            idle: IdleConfig::default(),
            stop_timeout: Duration::from_secs(5),
            fault: None,
        }
    }
}

/// An error building or running a pump. Each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PumpError {
    /// The arena cannot be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A configuration value is wrong.
    #[error("invalid pump configuration: {0}")]
    Config(String),
    /// Setting up the arena or the ring failed.
    #[error("{context} failed (errno {errno}): {fix}")]
    Setup {
        /// What was being done.
        context: &'static str,
        /// The errno.
        errno: i32,
        /// What to do about it.
        fix: String,
    },
    /// The pump's ring failed (`io_uring_enter` returned a non-transient error): unstarted requests were
    /// failed with `ERR_SUBMIT`, in-flight ones drained, and the pump stopped.
    #[error(
        "the pump's io_uring_enter failed with errno {errno} ({}); every claimed request was completed and the \
         pump stopped; build a new pump",
        io::Error::from_raw_os_error(*.errno)
    )]
    Submit {
        /// The errno.
        errno: i32,
    },
    /// The pump thread panicked (a bug); slots it owned may be left CLAIMED.
    #[error("the pump thread panicked: a bug in gpu-uring, please report it")]
    Panicked,
    /// [`Pump::start`] was called twice.
    #[error("the pump was already started")]
    AlreadyStarted,
}

/// The pump's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PumpStats {
    /// Requests claimed (each publication is claimed at most once).
    pub claimed: u64,
    /// Requests completed DONE.
    pub served: u64,
    /// Requests completed FAILED, by `ERR_*` code.
    pub failed: [u64; ERR_COUNT],
    /// `io_uring_enter` calls that carried SQEs.
    pub batches: u64,
    /// SQEs submitted.
    pub sqes: u64,
    /// Times the idle pump parked (futex or a timed CQ wait).
    pub idle_parks: u64,
    /// FENCEs completed.
    pub fences: u64,
    /// Bytes read into buffer regions.
    pub bytes_read: u64,
    /// Bytes written from buffer regions.
    pub bytes_written: u64,
    /// Bitmap bits whose slot was not PUBLISHED (withdrawn by its lane, or a device bug), or that name no
    /// slot; left untouched.
    pub stale_bits: u64,
    /// Device writes that broke the protocol and were refused (PROTOCOL.md §Q4): a slot published again while
    /// the pump still held it (its I/O in flight, or a FENCE waiting). The held request completes normally;
    /// the second publication is dropped.
    pub protocol_violations: u64,
    /// CQEs whose `user_data` matched no request in flight, or carried a stale generation; never applied
    /// (must stay 0).
    pub foreign_cqes: u64,
    /// Transient `io_uring_enter` errors that were retried.
    pub submit_errors: u64,
    /// In-flight requests cancelled while stopping.
    pub cancelled: u64,
    /// In-flight requests the kernel never completed, even after cancellation, when the pump stopped: their
    /// slots were failed `ERR_STOPPED` anyway (see PROTOCOL.md §Q7). Must stay 0 for regular files.
    pub abandoned: u64,
    /// Requests pushed to the pump's ring whose CQE has not been reaped yet (a gauge, not a counter; 0 once
    /// the pump stopped).
    pub in_flight: u64,
}

impl PumpStats {
    /// All FAILED completions.
    pub fn failed_total(&self) -> u64 {
        self.failed.iter().sum()
    }

    /// All completions.
    pub fn completed(&self) -> u64 {
        self.served + self.failed_total()
    }
}

#[derive(Default)]
struct Counters {
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
    fn snapshot(&self) -> PumpStats {
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

/// A validated READ or WRITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidIo {
    /// `OP_READ` or `OP_WRITE`.
    pub op: u32,
    /// File handle (= registered file index).
    pub file: u32,
    /// Buffer handle (= registered buffer index).
    pub buf: u32,
    /// Arena offset of the first byte.
    pub arena_offset: u64,
    /// File offset.
    pub file_offset: u64,
    /// Bytes.
    pub len: u32,
}

/// What a claimed request asks for, once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Valid {
    /// NOP.
    Nop,
    /// FENCE.
    Fence,
    /// READ or WRITE.
    Io(ValidIo),
}

/// Validates a request (PROTOCOL.md §Q5). Checks run in this order and the first failure names the error:
/// op, reserved words, then for READ/WRITE: file handle, buffer handle, length, write permission, buffer range,
/// file range. Pure: no system call, nothing touched.
pub fn validate(s: &IoSlot, regions: &[RegionDesc], files: &[PumpFile]) -> Result<Valid, u32> {
    // An unknown op and non-zero op bits 8-31 are both ERR_BAD_OP (the match sees the whole word).
    if !matches!(s.op, OP_NOP | OP_READ | OP_WRITE | OP_FENCE) {
        return Err(ERR_BAD_OP);
    }
    if s.reserved != [0, 0] {
        return Err(ERR_RESERVED);
    }
    match s.op {
        OP_NOP => return Ok(Valid::Nop),
        OP_FENCE => return Ok(Valid::Fence),
        _ => {}
    }
    let file = files.get(s.file as usize).ok_or(ERR_BAD_FILE)?;
    let region = regions.get(s.buf as usize).ok_or(ERR_BAD_BUFFER)?;
    if s.len == 0 {
        return Err(ERR_BAD_LENGTH);
    }
    if s.op == OP_WRITE && !file.writable {
        return Err(ERR_READ_ONLY);
    }
    let len = s.len as u64;
    match s.buf_offset.checked_add(len) {
        Some(end) if end <= region.size as u64 => {}
        _ => return Err(ERR_BUFFER_RANGE),
    }
    match s.file_offset.checked_add(len) {
        // Offsets must also fit the kernel's signed loff_t.
        Some(end) if end <= file.extent && end <= i64::MAX as u64 => {}
        _ => return Err(ERR_FILE_RANGE),
    }
    Ok(Valid::Io(ValidIo {
        op: s.op,
        file: s.file,
        buf: s.buf,
        arena_offset: region.offset as u64 + s.buf_offset,
        file_offset: s.file_offset,
        len: s.len,
    }))
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
struct Engine {
    ring: IoUring,
    /// A view of `_arena`, which this struct keeps alive (declared after `ring`, so the ring closes first).
    q: QueueView<'static>,
    _arena: Arc<PumpArena>,
    arena_base: u64,
    regions: Box<[RegionDesc]>,
    files: Box<[PumpFile]>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    nslots: u32,
    /// Bits taken from the shared bitmap, not yet processed.
    pending: Box<[u32]>,
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
    fault: Option<SubmitFault>,
    submits: u64,
    transient_run: u32,
    /// Set once `io_uring_enter` failed for good: from then on the pump never submits again (it only waits
    /// for CQEs of SQEs the kernel already consumed), so SQEs it failed `ERR_SUBMIT` can never run.
    dead: Option<i32>,
    cancelling: bool,
}

impl Engine {
    // ---- completing slots ---------------------------------------------------------------------------------

    /// Completes a slot the pump owns (CLAIMED). `result`/`error` are plain (relaxed) stores; the state store
    /// is a release, so a lane that acquires DONE/FAILED sees them, and (READ) the data the kernel wrote,
    /// which the pump acquired with the CQ tail before this store.
    fn complete(&self, idx: u32, ok: bool, result: i32, error: u32) {
        let q = &self.q;
        q.result(idx).store(result, Relaxed);
        q.slot32(idx, slot_off::ERROR).store(error, Relaxed);
        q.state(idx).store(
            if ok {
                QUEUE_SLOT_DONE
            } else {
                QUEUE_SLOT_FAILED
            },
            Release,
        );
        if ok {
            bump(&self.counters.served, 1);
        } else if let Some(c) = self.counters.failed.get(error as usize) {
            bump(c, 1);
        }
    }

    /// Publishes the in-flight gauge (only this thread writes it).
    fn note_inflight(&self) {
        self.counters
            .in_flight
            .store(u64::from(self.inflight), Relaxed);
    }

    /// Claims slot `idx`: CAS PUBLISHED → CLAIMED with acquire (pairs with the lane's release store of
    /// PUBLISHED: the request fields it wrote are visible). Fails if the slot is not PUBLISHED, if there is no
    /// such slot, or if the pump still holds it (a device published it again while its I/O is in flight or
    /// its FENCE waits: counted `protocol_violations`; the held request goes on and completes normally).
    fn claim(&self, idx: u32) -> bool {
        match self.held.get(idx as usize) {
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
        let ok = self
            .q
            .state(idx)
            .compare_exchange(QUEUE_SLOT_PUBLISHED, QUEUE_SLOT_CLAIMED, Acquire, Relaxed)
            .is_ok();
        if ok {
            bump(&self.counters.claimed, 1);
        } else {
            bump(&self.counters.stale_bits, 1);
        }
        ok
    }

    // ---- bitmap ---------------------------------------------------------------------------------------------

    /// Moves every set bit of the shared pending bitmap into `pending`. Returns whether any were set.
    /// Swap with acquire: pairs with each lane's release `fetch_or`, so every slot whose bit we take is seen
    /// PUBLISHED (or later) by the claim CAS.
    fn collect(&mut self) -> bool {
        let mut any = false;
        for (w, p) in self.pending.iter_mut().enumerate() {
            let word = self.q.bitmap_word(w as u32);
            // Relaxed pre-check: an idle pump only reads the bitmap's cache line, it never writes it.
            if word.load(Relaxed) != 0 {
                let bits = word.swap(0, Acquire);
                *p |= bits;
                any |= bits != 0;
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
                // A bit past the last slot is counted stale by `claim`.
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

    /// A FENCE was claimed. Every request published before it (by happens-before: its publication's
    /// `fetch_or` precedes the FENCE's) is now either claimed, in `pending`, or still in the shared bitmap —
    /// we took the FENCE's bit with acquire, so a fresh swap sees those bits. From here until the fence
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
        let mut result = None;
        if let Some(f) = &mut self.fault {
            if f.times > 0 && self.submits >= f.after && n >= f.min_sqes {
                f.times -= 1;
                let consume = f.consume.min(n);
                if consume > 0 {
                    // SAFETY: a plain io_uring_enter submitting `consume` of the SQEs already in the SQ (each
                    // valid, see `push_io`); no extra argument.
                    let _ = unsafe {
                        self.ring
                            .submitter()
                            .enter::<libc::sigset_t>(consume, 0, 0, None)
                    };
                }
                result = Some(Err(io::Error::from_raw_os_error(f.errno)));
            }
        }
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

    /// Waits up to `timeout` for a CQE, or, with nothing in flight, parks the thread (unparked by `stop`).
    fn wait(&mut self, timeout: Duration) {
        if self.inflight == 0 {
            std::thread::park_timeout(timeout);
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

    fn run(mut self) -> Result<(), PumpError> {
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
    fn shutdown(mut self, fatal: Option<i32>) -> Result<(), PumpError> {
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
        // Release: lanes that acquire STOPPED/FAILED see every completion above; from now on a lane may
        // withdraw a still-PUBLISHED slot (CAS PUBLISHED → ALLOCATED), racing only with the sweep below,
        // which also uses CAS.
        self.q.pump_state().store(final_state, Release);
        self.collect();
        self.fail_pending();
        match self.dead {
            Some(errno) => Err(PumpError::Submit { errno }),
            None => Ok(()),
        }
    }
}

enum Run {
    Ready(Box<Engine>),
    Running(JoinHandle<Result<(), PumpError>>),
    Finished(Result<(), PumpError>),
}

/// The megakernel io_queue pump: an arena with the io_queue and buffer regions, a ring with those regions
/// and the files registered, and (after [`start`](Pump::start)) the thread serving them.
pub struct Pump {
    arena: Arc<PumpArena>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    run: Mutex<Run>,
    thread: Mutex<Option<(std::thread::Thread, libc::pthread_t)>>,
    files: Vec<PumpFile>,
}

fn setup_err(context: &'static str, e: io::Error, entries: u32) -> PumpError {
    let errno = e.raw_os_error().unwrap_or(0);
    let fix = match errno {
        libc::EPERM | libc::ENOSYS | libc::EINVAL if context == "io_uring_setup" => {
            crate::ring::error::classify_setup_error(
                e,
                0,
                entries,
                &crate::ring::error::kernel_release(),
            )
            .to_string()
        }
        libc::ENOMEM => format!(
            "registered buffers are pinned against RLIMIT_MEMLOCK (now {}): raise it (`ulimit -l`) or run \
             with CAP_IPC_LOCK",
            crate::ring::error::memlock_limit_text()
        ),
        libc::EBADF => "a PumpFile's fd is not open".into(),
        _ => e.to_string(),
    };
    PumpError::Setup {
        context,
        errno,
        fix,
    }
}

impl Pump {
    /// Builds the arena and the ring and registers regions and files. The pump does not serve until
    /// [`start`](Pump::start); lanes may publish before that.
    pub fn new(cfg: PumpConfig) -> Result<Pump, PumpError> {
        if !cfg.sq_entries.is_power_of_two() || !(1..=4096).contains(&cfg.sq_entries) {
            return Err(PumpError::Config(format!(
                "sq_entries must be a power of two in 1..=4096, got {}",
                cfg.sq_entries
            )));
        }
        let cq = cfg.cq_entries.unwrap_or(cfg.sq_entries * 2);
        if !cq.is_power_of_two() || cq < cfg.sq_entries || cq > 65536 {
            return Err(PumpError::Config(format!(
                "cq_entries must be a power of two in sq_entries..=65536, got {cq}"
            )));
        }
        if cfg.regions.len() > u16::MAX as usize + 1 {
            return Err(PumpError::Config("at most 65536 buffer regions".into()));
        }
        let plan = ArenaPlan::new(cfg.slots, &cfg.regions, cfg.files.len() as u32)?;
        let arena = Arc::new(PumpArena::new(plan).map_err(|e| setup_err("mmap", e, 0))?);

        let build = |coop: bool| {
            let mut b = IoUring::builder();
            b.dontfork().setup_cqsize(cq);
            if coop {
                // Task work runs only when the pump enters the kernel (it checks IORING_SQ_TASKRUN), instead
                // of interrupting it with IPIs.
                b.setup_coop_taskrun().setup_taskrun_flag();
            }
            b.build(cfg.sq_entries)
        };
        let ring = match build(true) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => build(false),
            r => r,
        }
        .map_err(|e| setup_err("io_uring_setup", e, cfg.sq_entries))?;
        if ring.params().cq_entries() != cq {
            return Err(PumpError::Config(format!(
                "the kernel made the CQ {} entries (asked {cq})",
                ring.params().cq_entries()
            )));
        }

        let (base, _) = arena.raw();
        if !cfg.regions.is_empty() {
            let iovs: Vec<libc::iovec> = arena
                .regions()
                .iter()
                .map(|r| libc::iovec {
                    // SAFETY: the region lies inside the mapping (planned so).
                    iov_base: unsafe { base.add(r.offset as usize) }.cast(),
                    iov_len: r.size as usize,
                })
                .collect();
            // SAFETY: every iovec is arena memory that outlives the ring: the engine owns an Arc of the arena
            // and drops the ring first; the kernel also pins the pages until the ring is gone.
            unsafe { ring.submitter().register_buffers(&iovs) }
                .map_err(|e| setup_err("IORING_REGISTER_BUFFERS", e, 0))?;
        }
        if !cfg.files.is_empty() {
            let fds: Vec<RawFd> = cfg.files.iter().map(|f| f.fd).collect();
            ring.submitter()
                .register_files(&fds)
                .map_err(|e| setup_err("IORING_REGISTER_FILES", e, 0))?;
        }

        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let nslots = cfg.slots;
        let words = arena.layout().bitmap_words as usize;
        let cap = cq.min(nslots);
        let max_batch = if cfg.max_batch == 0 {
            cfg.sq_entries
        } else {
            cfg.max_batch.min(cfg.sq_entries)
        };
        // SAFETY: the view points into `arena`, which the engine keeps alive (Arc) for longer than the view.
        let q: QueueView<'static> = unsafe { QueueView::new(base, arena.layout()) };
        let engine = Engine {
            ring,
            q,
            _arena: arena.clone(),
            arena_base: base as u64,
            regions: arena.regions().into(),
            files: cfg.files.clone().into(),
            counters: counters.clone(),
            stop: stop.clone(),
            nslots,
            pending: vec![0; words].into(),
            fence_mask: vec![0; words].into(),
            fence_waiters: Vec::with_capacity(nslots as usize),
            fence_mode: false,
            inflight: 0,
            held: vec![Held::No; nslots as usize].into(),
            gen: vec![0; nslots as usize].into(),
            fifo: vec![0; cfg.sq_entries as usize].into(),
            fifo_head: 0,
            fifo_len: 0,
            cap,
            max_batch,
            scan_word: 0,
            idle: cfg.idle,
            stop_timeout: cfg.stop_timeout,
            fault: cfg.fault,
            submits: 0,
            transient_run: 0,
            dead: None,
            cancelling: false,
        };
        Ok(Pump {
            arena,
            counters,
            stop,
            run: Mutex::new(Run::Ready(Box::new(engine))),
            thread: Mutex::new(None),
            files: cfg.files,
        })
    }

    /// [`new`](Pump::new) then [`start`](Pump::start).
    pub fn spawn(cfg: PumpConfig) -> Result<Pump, PumpError> {
        let p = Pump::new(cfg)?;
        p.start()?;
        Ok(p)
    }

    /// Starts the pump thread.
    pub fn start(&self) -> Result<(), PumpError> {
        let mut run = self.run.lock().unwrap_or_else(|e| e.into_inner());
        let engine = match std::mem::replace(&mut *run, Run::Finished(Ok(()))) {
            Run::Ready(e) => e,
            other => {
                *run = other;
                return Err(PumpError::AlreadyStarted);
            }
        };
        let handle = std::thread::Builder::new()
            .name("gpu-uring-pump".into())
            .spawn(move || engine.run())
            .map_err(|e| setup_err("spawning the pump thread", e, 0))?;
        {
            use std::os::unix::thread::JoinHandleExt;
            *self.thread.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((handle.thread().clone(), handle.as_pthread_t()));
        }
        *run = Run::Running(handle);
        Ok(())
    }

    /// The device's view of the io_queue and regions.
    pub fn view(&self) -> QueueView<'_> {
        self.arena.view()
    }

    /// The layout descriptor to hand to a device.
    pub fn layout(&self) -> PumpLayout {
        self.arena.layout()
    }

    /// The arena (base and size for importing into a GPU API, regions, guard check).
    pub fn arena(&self) -> &PumpArena {
        &self.arena
    }

    /// A shared handle on the arena, for a GPU API that imports it and must keep it mapped for as long as the
    /// import exists (even past the pump, e.g. a dispatch that outlived its time limit).
    pub fn arena_shared(&self) -> Arc<PumpArena> {
        self.arena.clone()
    }

    /// The registered files (handle = index).
    pub fn files(&self) -> &[PumpFile] {
        &self.files
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PumpStats {
        self.counters.snapshot()
    }

    /// Wakes a parked pump now (host code that knows work was published can cut the idle latency).
    pub fn kick(&self) {
        if let Some((t, _)) = &*self.thread.lock().unwrap_or_else(|e| e.into_inner()) {
            t.unpark();
        }
    }

    /// CPU time the pump thread has used so far (`None` before start or after stop).
    pub fn cpu_time(&self) -> Option<Duration> {
        let run = self.run.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*run, Run::Running(_)) {
            return None;
        }
        let pt = self
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()?
            .1;
        let mut clock: libc::clockid_t = 0;
        // SAFETY: `pt` names a thread that has not been joined (we hold the run lock and it is Running), and
        // `clock` is a valid out-parameter.
        if unsafe { libc::pthread_getcpuclockid(pt, &mut clock) } != 0 {
            return None;
        }
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-parameter.
        if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
            return None;
        }
        Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    /// Stops the pump (PROTOCOL.md §Q7) and returns its counters, or the error that stopped it. Idempotent.
    /// A pump that never started is stopped too: requests published to it fail `ERR_STOPPED`.
    pub fn stop(&self) -> Result<PumpStats, PumpError> {
        let mut run = self.run.lock().unwrap_or_else(|e| e.into_inner());
        // Release: pairs with the pump's acquire load of the flag.
        self.stop.store(true, Release);
        let outcome = match std::mem::replace(&mut *run, Run::Finished(Ok(()))) {
            Run::Ready(engine) => engine.shutdown(None),
            Run::Running(h) => {
                h.thread().unpark();
                match h.join() {
                    Ok(r) => r,
                    Err(_) => Err(PumpError::Panicked),
                }
            }
            Run::Finished(r) => r,
        };
        *run = Run::Finished(outcome.clone());
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = None;
        outcome.map(|()| self.stats())
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn slot(op: u32, file: u32, buf: u32, buf_offset: u64, file_offset: u64, len: u32) -> IoSlot {
        IoSlot {
            op,
            file,
            buf,
            buf_offset,
            file_offset,
            len,
            ..Default::default()
        }
    }

    #[test]
    fn validation_order_and_codes() {
        let regions = [RegionDesc {
            offset: 8192,
            size: 1000,
        }];
        let files = [
            PumpFile {
                fd: 0,
                writable: false,
                extent: 500,
            },
            PumpFile {
                fd: 0,
                writable: true,
                extent: 2000,
            },
        ];
        let v = |s: IoSlot| validate(&s, &regions, &files);
        assert_eq!(v(slot(OP_NOP, 99, 99, 0, 0, 0)), Ok(Valid::Nop));
        assert_eq!(v(slot(OP_FENCE, 99, 99, 0, 0, 0)), Ok(Valid::Fence));
        assert_eq!(v(slot(7, 0, 0, 0, 0, 1)), Err(ERR_BAD_OP));
        assert_eq!(v(slot(OP_READ | 0x100, 0, 0, 0, 0, 1)), Err(ERR_BAD_OP));
        let mut r = slot(OP_READ, 0, 0, 0, 0, 1);
        r.reserved[1] = 1;
        assert_eq!(v(r), Err(ERR_RESERVED));
        assert_eq!(v(slot(OP_READ, 2, 0, 0, 0, 1)), Err(ERR_BAD_FILE));
        assert_eq!(v(slot(OP_READ, 0, 1, 0, 0, 1)), Err(ERR_BAD_BUFFER));
        assert_eq!(v(slot(OP_READ, 0, 0, 0, 0, 0)), Err(ERR_BAD_LENGTH));
        assert_eq!(v(slot(OP_WRITE, 0, 0, 0, 0, 1)), Err(ERR_READ_ONLY));
        assert_eq!(v(slot(OP_READ, 0, 0, 999, 0, 2)), Err(ERR_BUFFER_RANGE));
        assert_eq!(
            v(slot(OP_READ, 0, 0, u64::MAX, 0, 2)),
            Err(ERR_BUFFER_RANGE)
        );
        assert_eq!(v(slot(OP_READ, 0, 0, 0, 499, 2)), Err(ERR_FILE_RANGE));
        assert_eq!(
            v(slot(OP_WRITE, 1, 0, 0, u64::MAX - 1, 2)),
            Err(ERR_FILE_RANGE)
        );
        assert_eq!(
            v(slot(OP_WRITE, 1, 0, 10, 1990, 10)),
            Ok(Valid::Io(ValidIo {
                op: OP_WRITE,
                file: 1,
                buf: 0,
                arena_offset: 8202,
                file_offset: 1990,
                len: 10
            }))
        );
    }
}
