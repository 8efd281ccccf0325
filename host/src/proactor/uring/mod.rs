//! io_uring driver.
//!
//! Any thread may push SQEs (under the core lock); only the poll thread enters the
//! kernel (`io_uring_enter`, registration after the first poll). That is what
//! `IORING_SETUP_SINGLE_ISSUER` requires, and the ring is created disabled
//! (`IORING_SETUP_R_DISABLED`) and enabled by the first poll so that the poll thread,
//! not the creating thread, becomes the issuer. Other threads that submit or cancel
//! wake the poll thread through an eventfd that has a read armed on the ring.

mod multishot;
mod setup;
mod simple;

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

use super::buffers::Registry;
use super::caps::{BackendKind, Capability};
use super::core::slots::alloc_slot;
use super::core::{Chain, Core, Driver, OpSource, Shared, Slot, SlotExt, State, NONE};
use super::deliver::Sink;
use super::error::{Error, QueueKind, Result};
use super::op::{CancelStatus, OpId, Outcome};
use super::operation::SimpleOp;
use super::ops::{Env, UringCx};
use super::sync::lock;
use super::sys;

/// user_data of the wake-eventfd read.
const WAKE: u64 = u64::MAX;
/// Bit set in the user_data of a cancel request (slot keys never use bit 63).
const CANCEL: u64 = simple::OWN;
/// user_data of the `LINK_TIMEOUT` entry that follows an operation with a timeout:
/// `LINK_TIMEOUT | key`. Its completion is ignored (the operation's own says whether
/// it timed out), as is that of a simple operation's cancel request, which carries
/// the same two bits.
const LINK_TIMEOUT: u64 = CANCEL | simple::LITE;
/// `IORING_ENTER_GETEVENTS`.
const ENTER_GETEVENTS: u32 = 1;

pub(crate) struct Uring {
    /// First field: dropped (the ring closed) before anything else of the driver.
    ring: IoUring,
    wakefd: OwnedFd,
    single_issuer: bool,
    r_disabled: bool,
    enabled: AtomicBool,
    sq_cap: u32,
    flags_used: &'static str,
    /// The shared part of the simple-operation table.
    simple: simple::Cells,
    /// Provided-buffer groups registered with the kernel: kept until the ring closes.
    buf_rings: std::sync::Mutex<Vec<std::sync::Arc<super::bufring::RingInner>>>,
    /// Zero-copy send notifications reaped (a diagnostic count).
    pub(crate) zc_notifications: AtomicU64,
    /// Where messages posted into this ring by `MSG_RING` go.
    pub(crate) mailbox: Option<std::sync::Arc<super::message::Mailbox>>,
}

/// Where every ring's wake read puts the eventfd counter. Only the kernel writes it
/// and nothing reads it (the value carries no information), so one never-freed static
/// serves all rings: a ring torn down off its poll thread, whose read may still be
/// armed, cannot leave the kernel a dangling target.
static WAKE_SINK: AtomicU64 = AtomicU64::new(0);

/// The io_uring part of a slot.
/// The flags every operation resets come first (`repr(C)`, see `Slot`).
#[repr(C)]
pub(crate) struct USlot {
    /// A kernel cancel request for this slot is queued or in flight.
    cancel_pending: bool,
    cancel_tries: u8,
    /// Kernel-read timeout storage (io_uring copies it at submission, but it lives
    /// here, at a stable address, until completion anyway).
    ts: types::Timespec,
    /// Kernel-read iovec storage for readv/writev; capacity is kept across reuse.
    iov: Vec<libc::iovec>,
}

// SAFETY: the iovecs point into buffers owned by the same slot's operation and are
// only read by the kernel; the slot is only reached under the core mutex.
unsafe impl Send for USlot {}

impl SlotExt for USlot {
    fn new() -> USlot {
        USlot {
            ts: types::Timespec::new(),
            iov: Vec::with_capacity(4),
            cancel_pending: false,
            cancel_tries: 0,
        }
    }
    #[inline(always)]
    fn reset(&mut self) {
        self.cancel_pending = false;
        self.cancel_tries = 0;
    }
    fn is_reset(&self) -> bool {
        !self.cancel_pending && self.cancel_tries == 0
    }
}

/// Driver state under the core lock.
pub(crate) struct UState {
    wake_armed: bool,
    /// Slots whose kernel cancellation the poll thread must request.
    cancels: Vec<u32>,
    /// Keys of simple-operation slots whose kernel cancellation the poll thread must
    /// request (at most one per slot and generation: `simple::mark_cancelling`).
    simple_cancels: Vec<u64>,
    /// Slots (index, gen) the poll thread must start (a ring that was full).
    deferred: Vec<(u32, u32)>,
}

/// Poll-thread scratch.
pub(crate) struct UPoll {
    /// Simple-operation slots: see `simple`.
    table: simple::Table,
    /// CQEs of ordinary slots seen while reaping simple ones, processed under the
    /// core lock.
    heavy: Vec<(u64, i32, u32)>,
    /// This round's reap went through the simple-operation path first.
    split: bool,
}

impl Uring {
    /// A descriptor of the ring for other proactors' `MSG_RING` entries (kept by the
    /// mailbox, so a send never names a closed or reused descriptor).
    pub(crate) fn ring_fd_dup(&self) -> Result<OwnedFd> {
        // SAFETY: the ring's descriptor is open for the whole life of `self.ring`.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.ring.as_raw_fd()) };
        sys::dup(fd).map_err(|e| Error::sys("dup", e))
    }

    fn is_poll_thread(&self, sh: &Shared<Self>) -> bool {
        sh.is_poll_thread()
    }

    /// Whether this thread may register resources now.
    fn may_register(&self, sh: &Shared<Self>) -> bool {
        !(self.single_issuer && self.enabled.load(Ordering::Acquire) && !self.is_poll_thread(sh))
    }

    /// Flushes the SQ to the kernel when this thread is allowed to enter.
    fn try_flush(&self, sh: &Shared<Self>) -> bool {
        if self.enabled.load(Ordering::Acquire) && (self.is_poll_thread(sh) || !self.single_issuer)
        {
            self.ring.submitter().submit().is_ok()
        } else {
            false
        }
    }

    fn sq_free(&self) -> usize {
        // SAFETY: called with the core lock held; the core lock guards every
        // `SubmissionQueue` of this ring, so no other one exists.
        let sq = unsafe { self.ring.submission_shared() };
        sq.capacity() - sq.len()
    }

    /// Pushes one SQE. Caller holds the core lock.
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid (and, for buffers the kernel writes,
    /// unaliased) until the entry's completion has been reaped.
    unsafe fn push(&self, sh: &Shared<Self>, entry: &squeue::Entry) -> bool {
        for _ in 0..2 {
            {
                // SAFETY: the core lock (held by the caller) guards every SubmissionQueue.
                let mut sq = unsafe { self.ring.submission_shared() };
                // SAFETY: forwarded from this function's contract. Dropping `sq` publishes
                // the new tail (Release), which is what the kernel reads.
                if unsafe { sq.push(entry) }.is_ok() {
                    return true;
                }
            }
            if !self.try_flush(sh) {
                return false;
            }
        }
        false
    }

    /// Builds the entry of slot `s` (key `key`; `link` sets `IOSQE_IO_LINK`) and hands
    /// it to `emit`, from the operation kind's own branch.
    #[inline(always)]
    fn with_entry<R>(
        env: Env<'_>,
        s: &mut Slot<USlot>,
        key: u64,
        link: bool,
        emit: impl FnOnce(squeue::Entry) -> R,
    ) -> R {
        let mut cx = UringCx {
            env,
            ts: &mut s.ext.ts,
            iov: &mut s.ext.iov,
        };
        let op = s.op.as_mut().expect("started slot has an op");
        op.with_entry(&mut cx, |e| {
            let e = if link {
                e.flags(squeue::Flags::IO_LINK)
            } else {
                e
            };
            emit(e.user_data(key))
        })
    }

    /// Poll-thread work before waiting: enable the ring, arm the wake read, send
    /// cancel requests, start deferred steps.
    fn prepare_inner(&self, sh: &Shared<Self>, core: &mut Core<Self>) -> Result<()> {
        if !self.enabled.load(Ordering::Acquire) {
            if self.r_disabled {
                self.ring
                    .submitter()
                    .register_enable_rings()
                    .map_err(|e| Error::sys("IORING_REGISTER_ENABLE_RINGS", e))?;
            }
            self.enabled.store(true, Ordering::Release);
        }
        if !core.be.wake_armed {
            let e = opcode::Read::new(
                types::Fd(self.wakefd.as_raw_fd()),
                WAKE_SINK.as_ptr().cast::<u8>(),
                8,
            )
            .build()
            .user_data(WAKE);
            // SAFETY: the target is a static, valid for the whole program; the kernel's
            // write is the only access to it.
            if unsafe { self.push(sh, &e) } {
                core.be.wake_armed = true;
            }
        }
        let mut cancels = std::mem::take(&mut core.be.cancels);
        for &idx in &cancels {
            let s = &core.slots[idx as usize];
            if s.state != State::Running || !s.ext.cancel_pending {
                continue;
            }
            let key = s.key(idx);
            let e = opcode::AsyncCancel::new(key)
                .build()
                .user_data(CANCEL | key);
            // SAFETY: a cancel SQE carries no pointers.
            if !unsafe { self.push(sh, &e) } {
                // Still full after flushing: retry on the next poll iteration.
                core.be.cancels.push(idx);
            }
        }
        cancels.clear();
        if core.be.cancels.is_empty() {
            core.be.cancels = cancels;
        }
        // Simple operations' cancel requests (one per slot and generation; a stale
        // one finds nothing: the key carries the generation).
        while let Some(&key) = core.be.simple_cancels.last() {
            let e = opcode::AsyncCancel::new(key)
                .build()
                .user_data(CANCEL | key);
            // SAFETY: a cancel SQE carries no pointers.
            if !unsafe { self.push(sh, &e) } {
                break; // still full after flushing: retry on the next poll iteration
            }
            core.be.simple_cancels.pop();
        }
        let mut deferred = std::mem::take(&mut core.be.deferred);
        for &(idx, gen) in &deferred {
            let s = &core.slots[idx as usize];
            if s.gen == gen && s.state == State::Queued {
                core.start(sh, idx);
            }
        }
        deferred.clear();
        if core.be.deferred.is_empty() {
            core.be.deferred = deferred;
        }
        Ok(())
    }

    /// Processes the CQEs `reap_simple` set aside (caller holds the core lock).
    fn reap_heavy(
        &self,
        sh: &Shared<Self>,
        core: &mut Core<Self>,
        heavy: &mut Vec<(u64, i32, u32)>,
    ) {
        for &(ud, res, flags) in heavy.iter() {
            Self::reap_one(sh, core, ud, res, flags);
        }
        heavy.clear();
    }

    /// Processes every available CQE of ordinary slots (caller holds the core lock).
    /// CQEs of simple operations are dropped: `poll` calls this only when none is in
    /// flight, and teardown delivers nothing any more.
    fn reap_all(&self, sh: &Shared<Self>, core: &mut Core<Self>) {
        // SAFETY: the CQ is only touched by the poll thread, which holds
        // `Shared::poll` for the whole poll call; teardown has exclusive access.
        let mut cq = unsafe { self.ring.completion_shared() };
        loop {
            cq.sync();
            if cq.is_empty() {
                break;
            }
            for cqe in &mut cq {
                let ud = cqe.user_data();
                if !simple::is_simple(ud) {
                    Self::reap_one(sh, core, ud, cqe.result(), cqe.flags());
                }
            }
        }
    }

    #[inline(always)]
    fn reap_one(sh: &Shared<Self>, core: &mut Core<Self>, ud: u64, res: i32, flags: u32) {
        // Slot keys never have bit 63 set; WAKE, cancel requests and messages do.
        if ud & CANCEL != 0 {
            if super::message::is_message(ud) {
                if let Some(m) = &sh.driver.mailbox {
                    m.post_from_ring(core, super::message::payload(ud, res));
                }
                return;
            }
            if ud & LINK_TIMEOUT == LINK_TIMEOUT && ud != WAKE {
                // A linked timeout's own completion: the operation's tells.
                return;
            }
            if ud == WAKE {
                // Interrupts carry no meaning of their own; `user_wake` decides.
                core.be.wake_armed = false;
            } else {
                Self::cancel_done(sh, core, OpId(ud & !CANCEL), res);
            }
            return;
        }
        let id = OpId(ud);
        let idx = id.index();
        let Some(s) = core.slots.get(idx as usize) else {
            return;
        };
        // A stale key (generation moved on) or a slot not running: nothing to do.
        if s.gen != id.gen() || s.state != State::Running {
            return;
        }
        let outcome = if res >= 0 {
            Outcome::Ok(res as u32)
        } else {
            s.op.as_ref()
                .expect("running slot has an op")
                .cqe_error(res, s.cancel)
        };
        if s.op.as_ref().is_some_and(|o| o.many_completions()) {
            Self::reap_multishot(sh, core, idx, outcome, flags);
            return;
        }
        core.finish(sh, idx, outcome);
    }

    fn cancel_done(sh: &Shared<Self>, core: &mut Core<Self>, id: OpId, res: i32) {
        if simple::is_simple(id.0) {
            // A simple operation's cancel request: nothing to retry (never linked).
            return;
        }
        let Some(idx) = core.find(id) else { return };
        let s = &mut core.slots[idx as usize];
        s.ext.cancel_pending = false;
        let tries = s.ext.cancel_tries;
        if res != -libc::ENOENT
            || s.state != State::Running
            || s.chain != Chain::Kernel
            || tries > 32
        {
            return;
        }
        // Not found but still pending: a later step of a kernel-linked sequence whose
        // predecessor finished as our request went in. Cancel the new front.
        let front = core.chain_front(idx);
        let f = &mut core.slots[front as usize];
        f.ext.cancel_tries = f.ext.cancel_tries.max(tries);
        core.cancel_slot(sh, front);
    }

    fn push_cancels(&self, sh: &Shared<Self>, core: &mut Core<Self>) {
        let cancels = std::mem::take(&mut core.be.cancels);
        for &idx in &cancels {
            let s = &core.slots[idx as usize];
            if s.state != State::Running {
                continue;
            }
            let key = s.key(idx);
            let e = opcode::AsyncCancel::new(key)
                .build()
                .user_data(CANCEL | key);
            // SAFETY: a cancel SQE carries no pointers.
            unsafe { self.push(sh, &e) };
        }
    }
}

impl Driver for Uring {
    type Slot = USlot;
    type State = UState;
    type PollState = UPoll;

    const KIND: BackendKind = BackendKind::IoUring;
    const SIMPLE_TABLE: bool = true;

    fn new_state(&self, max: u32) -> UState {
        UState {
            wake_armed: false,
            cancels: Vec::with_capacity(max as usize),
            simple_cancels: Vec::with_capacity(max as usize),
            deferred: Vec::with_capacity(max as usize),
        }
    }

    fn new_poll_state(&self, max: u32) -> UPoll {
        UPoll {
            table: simple::Table::new(max, simple::slots_for(max)),
            heavy: Vec::with_capacity(256),
            split: false,
        }
    }

    fn interrupt(&self) {
        // A failed write leaves the counter set (EAGAIN is swallowed); nothing to do.
        let _ = sys::eventfd_signal(self.wakefd.as_fd());
    }

    /// Ensures `n` SQ entries are free (flushing if this thread may), or reports the
    /// retryable queue-full error. Caller holds the core lock.
    fn reserve(&self, sh: &Shared<Self>, _core: &Core<Self>, n: usize) -> Result<()> {
        if n > self.sq_cap as usize {
            return Err(Error::SubmissionQueueFull {
                queue: QueueKind::SubmissionRing,
                capacity: self.sq_cap,
            });
        }
        if self.sq_free() >= n {
            return Ok(());
        }
        if self.try_flush(sh) && self.sq_free() >= n {
            return Ok(());
        }
        Err(Error::SubmissionQueueFull {
            queue: QueueKind::SubmissionRing,
            capacity: self.sq_cap,
        })
    }

    /// Builds and pushes the SQE of slot `idx`.
    fn start(&self, sh: &Shared<Self>, core: &mut Core<Self>, idx: u32) {
        let Core {
            slots,
            files,
            native_files,
            be,
            ..
        } = core;
        let env = Env {
            caps: sh.caps,
            files,
            native_files: *native_files,
        };
        let s = &mut slots[idx as usize];
        let key = s.key(idx);
        let timeout_ns = match &s.op {
            Some(op) if sh.caps.is_native(Capability::OperationTimeouts) => op.timeout_ns(),
            _ => 0,
        };
        // A timeout is a second entry linked after the operation: both or neither.
        let room =
            timeout_ns == 0 || self.sq_free() >= 2 || (self.try_flush(sh) && self.sq_free() >= 2);
        let link = (s.chain == Chain::Kernel && s.next != NONE) || timeout_ns != 0;
        // SAFETY: the entry points into this slot's op (buffers, path, iovecs, event,
        // notification epoch) or its `ts`; the slot is not released and the op not
        // dropped until the completion is reaped (`Core::finish`), and teardown waits
        // for outstanding completions or leaks the memory.
        let pushed = room && Self::with_entry(env, s, key, link, |e| unsafe { self.push(sh, &e) });
        if pushed && timeout_ns != 0 {
            s.ext.ts = types::Timespec::new()
                .sec(timeout_ns / 1_000_000_000)
                .nsec((timeout_ns % 1_000_000_000) as u32);
            let e = opcode::LinkTimeout::new(&s.ext.ts)
                .build()
                .user_data(LINK_TIMEOUT | key);
            // SAFETY: the timespec lives in the slot until the operation's completion
            // (the kernel copies it at submission anyway). Room for it was checked
            // above under the same core lock, so this push cannot fail.
            let ok = unsafe { self.push(sh, &e) };
            debug_assert!(ok);
        }
        if pushed {
            if let Some(op) = &mut s.op {
                op.queued();
            }
        } else {
            // Ring full and this thread may not flush: the poll thread starts it.
            s.state = State::Queued;
            be.deferred.push((idx, s.gen));
            sh.hint.store(true, Ordering::Relaxed);
        }
    }

    /// Allocates a slot for each of `ops` (unlinked) and pushes their SQEs through one
    /// view of the submission ring, publishing the tail once. Caller holds the core
    /// lock and has reserved SQ room for all of them.
    fn start_batch<S: OpSource>(
        &self,
        sh: &Shared<Self>,
        core: &mut Core<Self>,
        ops: &mut S,
        on_id: &mut impl FnMut(OpId),
        future: bool,
    ) -> bool {
        // SAFETY: the core lock (held by the caller) guards every SubmissionQueue of
        // this ring, so this is the only one until it is dropped at the end.
        let mut sq = unsafe { self.ring.submission_shared() };
        let Core {
            slots,
            free,
            live,
            files,
            native_files,
            be,
            ..
        } = core;
        let env = Env {
            caps: sh.caps,
            files,
            native_files: *native_files,
        };
        ops.take_each(|op| {
            let (idx, s, key) = alloc_slot(slots, free, live, op, future, State::Running);
            on_id(OpId(key));
            // Unlinked by the caller's contract: no IO_LINK flag.
            // SAFETY: as in `start`: everything the entry points at lives in the slot
            // until its completion is reaped (or is leaked by teardown).
            let pushed = Self::with_entry(env, s, key, false, |e| unsafe { sq.push(&e).is_ok() });
            if pushed {
                if let Some(op) = &mut s.op {
                    op.queued();
                }
            } else {
                // Not expected (the caller reserved room); the poll thread starts it.
                s.state = State::Queued;
                be.deferred.push((idx, s.gen));
                sh.hint.store(true, Ordering::Relaxed);
            }
        });
        // Dropping `sq` publishes the new tail (Release), which is what the kernel reads.
        drop(sq);
        true
    }

    fn cancel(&self, sh: &Shared<Self>, core: &mut Core<Self>, idx: u32) {
        let s = &mut core.slots[idx as usize];
        // One kernel cancel request at a time per slot; a repeated `cancel` is
        // answered `Requested` without another request.
        if !s.ext.cancel_pending {
            s.ext.cancel_pending = true;
            s.ext.cancel_tries = s.ext.cancel_tries.saturating_add(1);
            core.be.cancels.push(idx);
            sh.hint.store(true, Ordering::Relaxed);
        }
    }

    fn prepare(&self, sh: &Shared<Self>, core: &mut Core<Self>) -> Result<()> {
        self.prepare_inner(sh, core)
    }

    /// Submits queued SQEs and waits for at least one completion, `timeout` (None:
    /// forever; zero: just submit and run completion work).
    fn wait(&self, timeout: Option<Duration>, _ps: &mut UPoll) -> Result<()> {
        let sub = self.ring.submitter();
        let r = match timeout {
            Some(t) if t.is_zero() => {
                // SAFETY: no extended argument; `to_submit` is clamped by the kernel to the
                // number of queued SQEs.
                unsafe { sub.enter::<libc::sigset_t>(self.sq_cap, 0, ENTER_GETEVENTS, None) }
            }
            Some(t) => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                sub.submit_with_args(1, &args)
            }
            None => sub.submit_and_wait(1),
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {
                    Ok(())
                }
                _ => Err(Error::sys("io_uring_enter", e)),
            },
        }
    }

    #[inline(always)]
    fn reap_unlocked(
        &self,
        _sh: &Shared<Self>,
        ps: &mut UPoll,
        on: &mut impl Sink,
    ) -> (usize, bool) {
        // With no simple operation in flight (none can be submitted while this poll
        // holds the poll mutex, and each has exactly one CQE, counted until it is
        // delivered) the ring is reaped in one pass under the core lock.
        ps.split = ps.table.live() > 0;
        if !ps.split {
            return (0, true);
        }
        // SAFETY: this is the poll thread holding the poll mutex (`ps`), the only
        // user of the completion queue.
        let n = unsafe { simple::reap(&self.ring, &self.simple, &mut ps.table, &mut ps.heavy, on) };
        // Only simple completions this time: the core lock is not needed (what other
        // threads queued meanwhile also raised `hint`, so the next poll picks it up
        // without blocking).
        (n, !(n > 0 && ps.heavy.is_empty()))
    }

    fn reap(&self, sh: &Shared<Self>, core: &mut Core<Self>, ps: &mut UPoll) {
        // CQEs set aside by the simple path (or by a poll whose callback panicked).
        self.reap_heavy(sh, core, &mut ps.heavy);
        if !ps.split {
            self.reap_all(sh, core);
        }
    }

    /// Cancels everything still in the kernel and waits (bounded) for it to finish,
    /// so the slots' memory can be freed; leaks that memory otherwise.
    fn teardown(&self, sh: &Shared<Self>, can_enter: bool) {
        let mut core = lock(&sh.core);
        let core = &mut *core;
        // The wake read needs no waiting: its target is a static (`WAKE_SINK`).
        let running = |core: &Core<Self>| {
            core.slots
                .iter()
                .any(|s| s.state == State::Running && !s.soft)
        };
        for s in core.slots.iter_mut() {
            s.cancel = true;
        }
        if !self.enabled.load(Ordering::Acquire) {
            // Nothing ever reached the kernel; queued SQEs die with the ring.
            return;
        }
        let can_enter = can_enter || !self.single_issuer;
        if can_enter {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                for idx in 0..core.slots.len() as u32 {
                    let s = &mut core.slots[idx as usize];
                    if s.state == State::Running && !s.soft && !s.ext.cancel_pending {
                        s.ext.cancel_pending = true;
                        core.be.cancels.push(idx);
                    }
                }
                self.push_cancels(sh, core);
                if !running(core) || Instant::now() >= deadline {
                    break;
                }
                let mut ps = UPoll {
                    table: simple::Table::new(0, 0),
                    heavy: Vec::new(),
                    split: false,
                };
                let _ = self.wait(Some(Duration::from_millis(20)), &mut ps);
                self.reap_all(sh, core);
                if !running(core) {
                    break;
                }
            }
        }
        if running(core) {
            // The kernel may still use these operations' memory: never free it. Only
            // what an SQE points at is leaked (the op's buffers, path, event, epoch and
            // its iovec array); timeouts were copied by the kernel when submitted.
            for s in core.slots.iter_mut() {
                if s.state == State::Running && !s.soft {
                    std::mem::forget(s.op.take());
                    std::mem::forget(std::mem::take(&mut s.ext.iov));
                }
            }
        }
    }

    fn submit_simple(
        &self,
        sh: &Shared<Self>,
        core: &Core<Self>,
        ps: &mut UPoll,
        ops: &[SimpleOp],
        ids: &mut [OpId],
    ) -> Result<()> {
        if ps.table.free_len() < ops.len() {
            return Err(Error::SubmissionQueueFull {
                queue: QueueKind::OperationSlots,
                capacity: sh.max_in_flight,
            });
        }
        self.reserve(sh, core, ops.len())?;
        let env = core.env(sh.caps);
        // Monomorphized on whether ids are wanted (no test per operation).
        // SAFETY: the caller holds the core lock (which guards the submission queue)
        // and the poll mutex (`ps`); room was checked and reserved above; `Shared`
        // drops the driver (the ring) before the poll state (the table).
        unsafe {
            if ids.is_empty() {
                simple::start::<false>(&self.ring, &self.simple, &env, &mut ps.table, ops, ids);
            } else {
                simple::start::<true>(&self.ring, &self.simple, &env, &mut ps.table, ops, ids);
            }
        }
        self.simple.set_live(ps.table.live());
        Ok(())
    }

    fn cancel_simple(&self, sh: &Shared<Self>, id: OpId) -> Option<CancelStatus> {
        if !simple::is_simple(id.0) {
            return None;
        }
        Some(match self.simple.mark_cancelling(id) {
            None => CancelStatus::NotFound,
            Some(false) => CancelStatus::Requested,
            Some(true) => {
                lock(&sh.core).be.simple_cancels.push(id.0);
                sh.hint.store(true, Ordering::Relaxed);
                sh.nudge();
                CancelStatus::Requested
            }
        })
    }

    #[inline(always)]
    fn simple_live(&self) -> usize {
        self.simple.live()
    }

    fn register_buf_ring(
        &self,
        sh: &Shared<Self>,
        ring: &std::sync::Arc<super::bufring::RingInner>,
    ) -> Result<()> {
        if !ring.native {
            return Ok(());
        }
        if !self.may_register(sh) {
            return Err(Error::NotPollOwner);
        }
        // SAFETY: the ring memory (page-aligned, `count` entries) lives in `ring`, kept
        // in `buf_rings` until this driver, and with it the io_uring, is dropped.
        unsafe {
            self.ring.submitter().register_buf_ring_with_flags(
                ring.ring_addr(),
                ring.count(),
                ring.group,
                0,
            )
        }
        .map_err(|e| Error::sys("IORING_REGISTER_PBUF_RING", e))?;
        lock(&self.buf_rings).push(ring.clone());
        Ok(())
    }

    fn register_buffers(&self, sh: &Shared<Self>, reg: &Registry) -> Result<()> {
        if !sh.caps.is_native(Capability::RegisteredBuffers) {
            return Ok(());
        }
        if !self.may_register(sh) {
            return Err(Error::NotPollOwner);
        }
        let iov = reg.iovecs();
        // SAFETY: the registry's memory is never moved or freed before the ring is
        // closed: `Shared` keeps an `Arc` to it and drops its driver (the ring) first.
        unsafe { self.ring.submitter().register_buffers(&iov) }
            .map_err(|e| Error::sys("IORING_REGISTER_BUFFERS", e))
    }

    fn register_files(
        &self,
        sh: &Shared<Self>,
        core: &mut Core<Self>,
        fds: &[RawFd],
    ) -> Result<bool> {
        if !sh.caps.is_native(Capability::FixedFiles) {
            return Ok(false);
        }
        if !self.may_register(sh) {
            return Err(Error::NotPollOwner);
        }
        let sub = self.ring.submitter();
        if core.native_files > 0 {
            sub.unregister_files()
                .map_err(|e| Error::sys("IORING_UNREGISTER_FILES", e))?;
            core.native_files = 0;
        }
        sub.register_files(fds)
            .map_err(|e| Error::sys("IORING_REGISTER_FILES", e))?;
        core.native_files = fds.len() as u32;
        Ok(true)
    }

    fn ring_flags(&self) -> Option<&'static str> {
        Some(self.flags_used)
    }
}

#[cfg(test)]
mod tests {
    use super::setup::unavailable;
    use super::*;

    #[test]
    fn setup_errors_map_to_unavailable_with_a_hint() {
        for errno in [libc::EPERM, libc::EACCES, libc::ENOSYS, libc::ENOMEM] {
            match unavailable(errno) {
                Error::Unavailable {
                    backend,
                    errno: e,
                    hint,
                } => {
                    assert_eq!(backend, "io_uring");
                    assert_eq!(e, errno);
                    assert!(!hint.is_empty());
                }
                other => panic!("{other:?}"),
            }
        }
        let s = unavailable(libc::EPERM).to_string();
        assert!(s.contains("io_uring_disabled"), "{s}");
    }

    #[test]
    fn cqe_results_map_to_outcomes() {
        use crate::proactor::op::{OpCode, OpError, TimerSpec};
        use crate::proactor::ops::{self, OpKind};
        let timer = OpKind::Timer(ops::timer::Timer(TimerSpec::After(Duration::ZERO)));
        assert_eq!(timer.cqe_error(-libc::ETIME, false), Outcome::Ok(0));
        assert_eq!(timer.cqe_error(-libc::ECANCELED, false), Outcome::Cancelled);
        let nop = OpKind::Nop(ops::nop::Nop);
        assert_eq!(nop.cqe_error(-libc::EINTR, true), Outcome::Cancelled);
        assert_eq!(
            nop.cqe_error(-libc::EBADF, false),
            Outcome::Err(OpError {
                op: OpCode::Nop,
                errno: libc::EBADF
            })
        );
    }
}
