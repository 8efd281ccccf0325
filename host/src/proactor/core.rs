//! Backend-independent engine: operation slots, delivery, cancellation, linked
//! sequences (including their emulation), and the poll loop.
//!
//! Locking: `Shared::core` (one mutex) guards the slots and every queue the poll
//! thread drains. It is taken once per submitted batch, once per `cancel`, and at most
//! twice per poll iteration (prepare, reap); never across a blocking system call and
//! never while user code (callbacks, wakers, resource drops of user types) runs.
//! `Shared::poll` is held for a whole `poll` call and marks the single poller; it also
//! guards the completion ring and the simple-operation slots (`simple`), which is why
//! `submit_simple` takes it (briefly, only when free) and why simple completions can
//! be handed to the callback with `core` not held. Lock order: `poll` → `core` → a
//! notification's subscriber list.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use super::buffers::Registry;
use super::caps::{Capabilities, Capability};
use super::epoll::{EState, Epoll};
use super::error::{Error, QueueKind, Result};
use super::op::{
    CancelStatus, Completion, OpId, OpKind, Operation, Outcome, Resources, SimpleKind, SimpleOp,
    Target,
};
use super::simple::{self, SimpleCell, SimpleTable};
use super::sync::{lock, Notification, Subscriber};
use super::uring::{UState, Uring};

pub(crate) const NONE: u32 = u32::MAX;

/// Where a slot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Free,
    /// Accepted, not yet handed to the backend (a later step of an emulated chain).
    Queued,
    /// Handed to the backend (SQE pushed, or waiting on a timer, fd or subscription).
    Running,
    /// Finished; the outcome waits in the slot for its future.
    Done,
}

pub(crate) enum Delivery {
    /// Delivered to the handler passed to `poll`.
    Callback,
    /// Stored for an `OpFuture`; the waker is woken on completion.
    Future(Option<Waker>),
    /// The future was dropped: the completion only releases the resources.
    Detached,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chain {
    None,
    /// Linked in the kernel (`IOSQE_IO_LINK`).
    Kernel,
    /// Linked by the proactor: a step starts when the previous one succeeds.
    Emulated,
}

pub(crate) struct Slot {
    pub(crate) gen: u32,
    pub(crate) state: State,
    pub(crate) delivery: Delivery,
    pub(crate) cancel: bool,
    pub(crate) cancel_tries: u8,
    /// A kernel cancel request for this slot is queued or in flight (io_uring).
    pub(crate) cancel_pending: bool,
    /// Running as a user-space wait (emulated notification wait).
    pub(crate) soft: bool,
    pub(crate) user_data: u64,
    pub(crate) op: Option<OpKind>,
    pub(crate) result: Option<(Outcome, Resources)>,
    pub(crate) chain: Chain,
    pub(crate) prev: u32,
    pub(crate) next: u32,
    /// Kernel-read timeout storage (io_uring copies it at submission, but it lives
    /// here, at a stable address, until completion anyway).
    pub(crate) ts: io_uring::types::Timespec,
    /// Kernel-read iovec storage for readv/writev; capacity is kept across reuse.
    pub(crate) iov: Vec<libc::iovec>,
    /// epoll backend: next waiter on the same descriptor.
    pub(crate) next_waiter: u32,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            gen: 0,
            state: State::Free,
            delivery: Delivery::Callback,
            cancel: false,
            cancel_tries: 0,
            cancel_pending: false,
            soft: false,
            user_data: 0,
            op: None,
            result: None,
            chain: Chain::None,
            prev: NONE,
            next: NONE,
            ts: io_uring::types::Timespec::new(),
            iov: Vec::with_capacity(4),
            next_waiter: NONE,
        }
    }
    pub(crate) fn key(&self, index: u32) -> u64 {
        OpId::new(index, self.gen).0
    }
}

/// A completion waiting to be delivered, without its resources: those that own
/// something wait, in the same order, in a separate list (`done_res`). Keeping this
/// record `Copy` and small makes parking and delivering a completion that owns nothing
/// (nop, timer, fsync) a few stores and loads, with no drop glue.
#[derive(Clone, Copy)]
pub(crate) struct Done {
    pub(crate) id: OpId,
    pub(crate) user_data: u64,
    pub(crate) outcome: Outcome,
    /// Its resources are the next entry of the matching `done_res` list.
    pub(crate) owns: bool,
}

pub(crate) enum BackendState {
    Uring(UState),
    Epoll(EState),
}

pub(crate) struct Core {
    pub(crate) slots: Box<[Slot]>,
    pub(crate) free: Vec<u32>,
    /// Completions for the raw path, waiting for the poll thread to deliver them.
    pub(crate) done: Vec<Done>,
    /// The resources of the entries of `done` that own some, in the same order.
    pub(crate) done_res: Vec<Resources>,
    /// Futures to wake once the lock is released.
    pub(crate) wakers: Vec<Waker>,
    /// Slots (index, gen) the poll thread must start (emulated chain steps finished off
    /// the poll thread, or a ring that was full).
    pub(crate) deferred: Vec<(u32, u32)>,
    /// Slots whose kernel cancellation the poll thread must request.
    pub(crate) cancels: Vec<u32>,
    /// Keys of simple-operation slots whose kernel cancellation the poll thread must
    /// request (at most one per slot and generation: `simple::mark_cancelling`).
    pub(crate) simple_cancels: Vec<u64>,
    pub(crate) live: usize,
    /// Emulated fixed files: `dup`ed descriptors indexed like the registration.
    pub(crate) files: Vec<std::os::fd::OwnedFd>,
    pub(crate) native_files: u32,
    pub(crate) be: BackendState,
}

// SAFETY: `Core` is only reached through `Shared::core` (a mutex). Its raw pointers
// (`Slot::iov`) point into buffers owned by the same slot's operation and are only
// read by the kernel; nothing in it is tied to a thread.
unsafe impl Send for Core {}

// One per proactor, never moved after creation: boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Backend {
    Uring(Uring),
    Epoll(Epoll),
}

/// Scratch owned by the polling thread (guarded by `Shared::poll`).
pub(crate) struct PollScratch {
    pub(crate) done: Vec<Done>,
    pub(crate) done_res: Vec<Resources>,
    pub(crate) wakers: Vec<Waker>,
    pub(crate) events: Vec<libc::epoll_event>,
    /// Simple-operation slots (io_uring; empty on epoll): see `simple`.
    pub(crate) simple: SimpleTable,
    /// CQEs of ordinary slots seen while reaping, processed under the core lock.
    pub(crate) heavy: Vec<(u64, i32)>,
}

// SAFETY: `epoll_event` is plain data; the scratch is only used under `Shared::poll`.
unsafe impl Send for PollScratch {}

pub(crate) struct Shared {
    pub(crate) me: Weak<Shared>,
    /// Declared before `core`/`buffers`: see `Drop for Shared` for the teardown order.
    pub(crate) backend: Backend,
    pub(crate) core: Mutex<Core>,
    pub(crate) poll: Mutex<PollScratch>,
    /// Thread id (see `thread_id`) of the poll owner; 0 before the first poll.
    pub(crate) owner: AtomicU64,
    /// Thread id of the thread inside `poll` (0: none); tells a re-entrant poll from a
    /// `submit_simple` holding the poll mutex for a moment.
    pub(crate) polling: AtomicU64,
    /// Set by the poll thread just before it may block in the kernel; read by
    /// submitters to decide whether a wake is needed (Dekker pair with `hint`).
    pub(crate) sleeping: AtomicBool,
    /// Set by any thread that queued work only the poll thread can do. Stores are
    /// Relaxed: a thread other than the poller always follows its store with `nudge`,
    /// whose SeqCst fence orders it before the `sleeping` load (fence-based Dekker with
    /// the poller's SeqCst `sleeping` store and `hint` load); the poll thread itself
    /// reads its own store in program order.
    pub(crate) hint: AtomicBool,
    /// Set by `Proactor::wake`: the current or next poll returns.
    pub(crate) user_wake: AtomicBool,
    pub(crate) caps: Capabilities,
    pub(crate) buffers: OnceLock<Arc<Registry>>,
    pub(crate) max_in_flight: u32,
    /// The shared part of the simple-operation slots (see `simple`).
    pub(crate) simple_cells: Box<[SimpleCell]>,
    /// Simple operations submitted and not yet delivered, for `in_flight`: a copy of
    /// `SimpleTable::live` stored by the poll-mutex holder (a plain store, no
    /// read-modify-write, since only that thread changes it).
    pub(crate) simple_live: AtomicUsize,
}

thread_local! {
    static TID: u64 = {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
}

/// A cheap, never-reused, nonzero id of the calling thread.
pub(crate) fn thread_id() -> u64 {
    TID.with(|t| *t)
}

/// Parks a raw-path completion for delivery.
#[inline]
fn park(
    done: &mut Vec<Done>,
    done_res: &mut Vec<Resources>,
    id: OpId,
    user_data: u64,
    outcome: Outcome,
    resources: Resources,
) {
    let owns = !matches!(resources, Resources::None);
    if owns {
        done_res.push(resources);
    }
    done.push(Done {
        id,
        user_data,
        outcome,
        owns,
    });
}

fn outcome_is_ok(slot_expected: Option<usize>, o: &Outcome) -> bool {
    match o {
        Outcome::Ok(n) => slot_expected.map_or(true, |e| *n as usize >= e),
        _ => false,
    }
}

/// `Core::alloc` on the slot table's fields (so a caller can keep other parts of the
/// core borrowed), in the given state; hands back the index, the slot and its key
/// (one slot lookup for the whole submission of an op).
#[inline(always)]
pub(crate) fn alloc_slot<'a>(
    slots: &'a mut [Slot],
    free: &mut Vec<u32>,
    live: &mut usize,
    op: Operation,
    future: bool,
    state: State,
) -> (u32, &'a mut Slot, u64) {
    let idx = free.pop().expect("caller checked free_slots");
    *live += 1;
    let s = &mut slots[idx as usize];
    debug_assert!(
        s.state == State::Free
            && s.op.is_none()
            && s.result.is_none()
            && s.prev == NONE
            && s.next == NONE
            && s.next_waiter == NONE
            && s.chain == Chain::None
            && !s.cancel
            && !s.cancel_pending
            && !s.soft
            && matches!(s.delivery, Delivery::Callback)
    );
    // Never 0, so that no key is 0 (`OpId::default()`).
    let gen = match s.gen.wrapping_add(1) & simple::SLOT_GEN_MASK {
        0 => 1,
        g => g,
    };
    s.gen = gen;
    s.state = state;
    if future {
        s.delivery = Delivery::Future(None);
    }
    s.user_data = op.user_data;
    s.op = Some(op.kind);
    (idx, s, OpId::new(idx, gen).0)
}

impl Core {
    pub(crate) fn new(max: u32, be: BackendState) -> Core {
        Core {
            slots: (0..max).map(|_| Slot::new()).collect(),
            free: (0..max).rev().collect(),
            done: Vec::with_capacity(max as usize),
            done_res: Vec::with_capacity(max as usize),
            wakers: Vec::with_capacity(max as usize),
            deferred: Vec::with_capacity(max as usize),
            cancels: Vec::with_capacity(max as usize),
            simple_cancels: Vec::with_capacity(max as usize),
            live: 0,
            files: Vec::new(),
            native_files: 0,
            be,
        }
    }

    pub(crate) fn free_slots(&self) -> usize {
        self.free.len()
    }

    /// Takes a free slot for `op`. A free slot already holds the defaults `release`
    /// restores (no chain, no cancel state, no op, no result), so only what describes
    /// the new operation is written here.
    #[inline(always)]
    pub(crate) fn alloc(&mut self, op: Operation, future: bool) -> u32 {
        alloc_slot(
            &mut self.slots,
            &mut self.free,
            &mut self.live,
            op,
            future,
            State::Queued,
        )
        .0
    }

    /// Frees slot `idx`, restoring every per-operation field to its default (which
    /// `alloc` relies on).
    #[inline(always)]
    pub(crate) fn release(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        s.state = State::Free;
        s.op = None;
        s.result = None;
        s.delivery = Delivery::Callback;
        s.cancel = false;
        s.cancel_tries = 0;
        s.cancel_pending = false;
        s.soft = false;
        s.chain = Chain::None;
        s.prev = NONE;
        s.next = NONE;
        s.next_waiter = NONE;
        self.live -= 1;
        self.free.push(idx);
    }

    /// Looks up a live slot by id.
    #[inline(always)]
    pub(crate) fn find(&self, id: OpId) -> Option<u32> {
        let s = self.slots.get(id.index() as usize)?;
        (s.gen == id.gen() && s.state != State::Free).then_some(id.index())
    }

    /// Hands a queued slot to the backend (or completes it at once).
    pub(crate) fn start(&mut self, sh: &Shared, idx: u32) {
        let s = &mut self.slots[idx as usize];
        debug_assert_eq!(s.state, State::Queued);
        s.state = State::Running;
        if s.cancel {
            self.finish(sh, idx, Outcome::Cancelled);
            return;
        }
        if let Some(OpKind::NotificationWait(n, token)) = &s.op {
            if !sh.caps.is_native(Capability::KernelNotificationWait) {
                let (n, token) = (n.clone(), *token);
                s.soft = true;
                let key = s.key(idx);
                if !n.subscribe(
                    token,
                    Subscriber {
                        proactor: sh.me.clone(),
                        key,
                    },
                ) {
                    self.finish(sh, idx, Outcome::Ok(0));
                }
                return;
            }
        }
        match (&sh.backend, &mut self.be) {
            (Backend::Uring(u), BackendState::Uring(_)) => u.start(sh, self, idx),
            (Backend::Epoll(e), BackendState::Epoll(_)) => e.start(sh, self, idx),
            _ => unreachable!("backend and state always match"),
        }
    }

    /// Records the outcome of slot `idx` exactly once: advances or breaks its linked
    /// sequence, then delivers (raw path), stores (future) or drops (detached).
    #[inline(always)]
    pub(crate) fn finish(&mut self, sh: &Shared, idx: u32, outcome: Outcome) {
        // Fast path: an unlinked operation on the raw path.
        let Core {
            slots,
            done,
            done_res,
            free,
            live,
            ..
        } = self;
        let s = &mut slots[idx as usize];
        if s.next == NONE && s.prev == NONE && matches!(s.delivery, Delivery::Callback) {
            let id = OpId(s.key(idx));
            let user_data = s.user_data;
            // Lean path: an op that owns nothing (nop, timer, fsync) only has its tag
            // cleared (forgetting the taken value skips the drop glue), and its
            // completion is built with constant resources.
            if s.op.as_ref().is_some_and(OpKind::owns_nothing) {
                std::mem::forget(s.op.take());
                done.push(Done {
                    id,
                    user_data,
                    outcome,
                    owns: false,
                });
            } else {
                let resources = match s.op.take() {
                    Some(op) => op.into_resources(),
                    None => unreachable!("running slot has an op"),
                };
                park(done, done_res, id, user_data, outcome, resources);
            }
            // Like `release`, minus what already holds its default here: the op was
            // just taken, the delivery is `Callback`, and a raw-path slot never stores
            // a result.
            debug_assert!(s.op.is_none() && s.result.is_none());
            s.state = State::Free;
            s.cancel = false;
            s.cancel_tries = 0;
            s.cancel_pending = false;
            s.soft = false;
            s.chain = Chain::None;
            s.next_waiter = NONE;
            *live -= 1;
            free.push(idx);
            return;
        }
        self.finish_slow(sh, idx, outcome);
    }

    /// `finish` for linked steps, futures and detached operations.
    #[inline(never)]
    fn finish_slow(&mut self, sh: &Shared, idx: u32, outcome: Outcome) {
        let mut idx = idx;
        let mut outcome = outcome;
        loop {
            let s = &mut self.slots[idx as usize];
            debug_assert!(matches!(s.state, State::Running | State::Queued));
            let (prev, next) = (s.prev, s.next);
            let chain = s.chain;
            let ok = next != NONE
                && outcome_is_ok(s.op.as_ref().and_then(OpKind::expected_len), &outcome);
            // Splice this step out. Emulated sequences finish front to back (prev is
            // NONE); the kernel may post a later step's CQE before an earlier one's, so
            // a kernel-linked step can finish with its predecessor still pending.
            if prev != NONE {
                self.slots[prev as usize].next = next;
            }
            if next != NONE {
                self.slots[next as usize].prev = prev;
            }
            let s = &mut self.slots[idx as usize];
            s.next = NONE;
            s.prev = NONE;
            s.chain = Chain::None;
            let op = s.op.take().expect("running slot has an op");
            let resources = op.into_resources();
            let key = s.key(idx);
            match std::mem::replace(&mut s.delivery, Delivery::Callback) {
                Delivery::Callback => {
                    let user_data = s.user_data;
                    park(
                        &mut self.done,
                        &mut self.done_res,
                        OpId(key),
                        user_data,
                        outcome,
                        resources,
                    );
                    self.release(idx);
                }
                Delivery::Future(w) => {
                    s.state = State::Done;
                    s.result = Some((outcome, resources));
                    s.delivery = Delivery::Future(None);
                    if let Some(w) = w {
                        self.wakers.push(w);
                    }
                }
                Delivery::Detached => {
                    drop(resources);
                    self.release(idx);
                }
            }
            if next == NONE {
                return;
            }
            match chain {
                // The kernel delivers the rest itself (-ECANCELED after a failure).
                Chain::Kernel | Chain::None => return,
                Chain::Emulated => {
                    if ok {
                        self.start(sh, next);
                        return;
                    }
                    idx = next;
                    outcome = Outcome::Cancelled;
                }
            }
        }
    }

    /// First step of `idx`'s sequence that has not finished (`idx` itself if unlinked).
    pub(crate) fn chain_front(&self, mut idx: u32) -> u32 {
        while self.slots[idx as usize].prev != NONE {
            idx = self.slots[idx as usize].prev;
        }
        idx
    }

    pub(crate) fn cancel(&mut self, sh: &Shared, id: OpId) -> CancelStatus {
        let Some(target) = self.find(id) else {
            return CancelStatus::NotFound;
        };
        if self.slots[target as usize].state == State::Done {
            return CancelStatus::NotFound;
        }
        // A linked sequence is cancelled as a unit from its running step on: that step
        // and every later one complete as Cancelled (steps already done are unaffected).
        self.slots[target as usize].cancel = true;
        let front = self.chain_front(target);
        self.cancel_slot(sh, front);
        CancelStatus::Requested
    }

    pub(crate) fn cancel_slot(&mut self, sh: &Shared, idx: u32) {
        let s = &mut self.slots[idx as usize];
        s.cancel = true;
        match s.state {
            State::Queued => self.finish(sh, idx, Outcome::Cancelled),
            State::Running if s.soft => {
                if let Some(OpKind::NotificationWait(n, _)) = &s.op {
                    let n: Notification = n.clone();
                    n.unsubscribe(s.key(idx), &sh.me);
                }
                self.finish(sh, idx, Outcome::Cancelled);
            }
            State::Running => match &sh.backend {
                Backend::Uring(_) => {
                    // One kernel cancel request at a time per slot; a repeated `cancel`
                    // is answered `Requested` without another request.
                    if !s.cancel_pending {
                        s.cancel_pending = true;
                        s.cancel_tries = s.cancel_tries.saturating_add(1);
                        self.cancels.push(idx);
                        sh.hint.store(true, Ordering::Relaxed);
                    }
                }
                Backend::Epoll(e) => e.cancel(sh, self, idx),
            },
            State::Free | State::Done => {}
        }
    }

    /// Completes an emulated notification wait (called by `Notification::signal`).
    fn soft_complete(&mut self, sh: &Shared, key: u64) -> bool {
        let id = OpId(key);
        let Some(idx) = self.find(id) else {
            return false;
        };
        let s = &self.slots[idx as usize];
        if s.state != State::Running || !s.soft {
            return false;
        }
        self.finish(sh, idx, Outcome::Ok(0));
        true
    }

    #[inline]
    pub(crate) fn map_target(&self, sh: &Shared, t: Target) -> Result<(), Error> {
        match t {
            Target::Fd(_) => Ok(()),
            Target::Fixed(i) => {
                let n = if sh.caps.is_native(Capability::FixedFiles) {
                    self.native_files as usize
                } else {
                    self.files.len()
                };
                if (i as usize) < n {
                    Ok(())
                } else {
                    Err(Error::InvalidArgument("fixed file index is not registered"))
                }
            }
        }
    }
}

/// A source of operations for `submit_many`: inspected first, consumed only once
/// the whole submission is accepted.
pub(crate) trait OpSource {
    fn ops(&self) -> &[Operation];
    /// Moves the operations out, in order.
    fn take_all(&mut self) -> impl Iterator<Item = Operation> + '_;
}

impl OpSource for Vec<Operation> {
    fn ops(&self) -> &[Operation] {
        self
    }
    #[inline]
    fn take_all(&mut self) -> impl Iterator<Item = Operation> + '_ {
        self.drain(..)
    }
}

impl OpSource for Option<Operation> {
    fn ops(&self) -> &[Operation] {
        self.as_slice()
    }
    #[inline]
    fn take_all(&mut self) -> impl Iterator<Item = Operation> + '_ {
        self.take().into_iter()
    }
}

impl Shared {
    /// Wakes the poll thread if it may be blocked in the kernel. Pairs with the
    /// SeqCst store of `sleeping` in `poll`: either the poller sees our queued work (or
    /// SQE tail) before it blocks, or we see `sleeping` and wake it.
    pub(crate) fn nudge(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            self.interrupt();
        }
    }

    /// `Proactor::wake`: the current or next `poll` returns.
    pub(crate) fn wake(&self) {
        self.user_wake.store(true, Ordering::SeqCst);
        self.interrupt();
    }

    /// Interrupts a blocked kernel wait; `poll` then loops (or returns on a user wake).
    fn interrupt(&self) {
        match &self.backend {
            Backend::Uring(u) => u.wake(),
            Backend::Epoll(e) => e.wake(),
        }
    }

    fn is_poll_thread(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == thread_id()
    }

    /// Validates resources an op references before anything is started.
    #[inline]
    fn validate(&self, core: &Core, op: &Operation) -> Result<()> {
        match &op.kind {
            OpKind::Nop
            | OpKind::Timer(_)
            | OpKind::EventWait(_)
            | OpKind::NotificationWait(..)
            | OpKind::Open { .. }
            | OpKind::Close { .. } => Ok(()),
            OpKind::Read { fd, .. } | OpKind::Write { fd, .. } | OpKind::Fsync { fd, .. } => {
                core.map_target(self, *fd)
            }
            OpKind::ReadFixed { fd, buf, len, .. } | OpKind::WriteFixed { fd, buf, len, .. } => {
                core.map_target(self, *fd)?;
                if *len as usize > buf.capacity() {
                    return Err(Error::InvalidArgument(
                        "fixed read/write length exceeds the buffer",
                    ));
                }
                Ok(())
            }
            OpKind::Readv { fd, bufs, .. } | OpKind::Writev { fd, bufs, .. } => {
                core.map_target(self, *fd)?;
                if bufs.len() > libc::UIO_MAXIOV as usize {
                    return Err(Error::InvalidArgument("too many iovecs"));
                }
                Ok(())
            }
        }
    }

    /// Submits `ops` (all or nothing). `linked` makes them one sequence. Each id is
    /// passed to `on_id` in submission order.
    pub(crate) fn submit_many<S: OpSource>(
        &self,
        ops: &mut S,
        mut on_id: impl FnMut(OpId),
        linked: bool,
        future: bool,
    ) -> Result<()> {
        let n = ops.ops().len();
        if n == 0 {
            return Ok(());
        }
        {
            let mut core = lock(&self.core);
            // One pass: validate, and note whether the batch can take the io_uring
            // fast path (`Uring::start_batch`).
            let mut batchable = true;
            for op in ops.ops() {
                // Kinds that reference nothing to check and that `start_batch` always
                // takes: one test instead of the full match.
                if matches!(
                    op.kind,
                    OpKind::Nop | OpKind::Timer(_) | OpKind::EventWait(_)
                ) {
                    continue;
                }
                self.validate(&core, op)?;
                batchable &= Uring::batchable(self, &op.kind);
            }
            if core.free_slots() < n {
                return Err(Error::SubmissionQueueFull {
                    queue: QueueKind::OperationSlots,
                    capacity: self.max_in_flight,
                });
            }
            let kernel_chain = linked
                && n > 1
                && self.caps.is_native(Capability::LinkedOperations)
                && matches!(self.backend, Backend::Uring(_))
                // A futex wait that finds the epoch already moved fails with EAGAIN, which
                // would break a kernel link although it is a success here.
                && ops.ops().iter().all(|o| !matches!(o.kind, OpKind::NotificationWait(..)));
            if let Backend::Uring(u) = &self.backend {
                u.reserve(self, &core, if linked && !kernel_chain { 1 } else { n })?;
            }
            let core = &mut *core;
            let mut prev = NONE;
            let mut head = NONE;
            let chain = if !linked || n == 1 {
                Chain::None
            } else if kernel_chain {
                Chain::Kernel
            } else {
                Chain::Emulated
            };
            let batched = match &self.backend {
                Backend::Uring(u) if chain == Chain::None && batchable => {
                    // The common case: one SQ view for the whole batch.
                    u.start_batch(self, core, ops, &mut on_id, future);
                    true
                }
                _ => false,
            };
            if !batched {
                for op in ops.take_all() {
                    let idx = core.alloc(op, future);
                    on_id(OpId(core.slots[idx as usize].key(idx)));
                    if chain == Chain::None {
                        core.start(self, idx);
                        continue;
                    }
                    let s = &mut core.slots[idx as usize];
                    s.chain = chain;
                    s.prev = prev;
                    if prev == NONE {
                        head = idx;
                    } else {
                        core.slots[prev as usize].next = idx;
                    }
                    prev = idx;
                }
                match chain {
                    Chain::None => {}
                    Chain::Emulated => core.start(self, head),
                    Chain::Kernel => {
                        let mut i = head;
                        while i != NONE {
                            let next = core.slots[i as usize].next;
                            core.start(self, i);
                            i = next;
                        }
                    }
                }
            }
        }
        if !self.is_poll_thread() {
            self.nudge();
        }
        Ok(())
    }

    /// Submits resource-free operations (all or nothing), building each slot and SQE
    /// in place. `ids` is empty (ids not wanted) or at least `ops.len()` long.
    pub(crate) fn submit_simple(&self, ops: &[SimpleOp], ids: &mut [OpId]) -> Result<()> {
        let n = ops.len();
        if !ids.is_empty() && ids.len() < n {
            return Err(Error::InvalidArgument(
                "submit_simple: ids must be empty or at least as long as ops",
            ));
        }
        if n == 0 {
            return Ok(());
        }
        // The simple-slot table when no poll runs (see `simple`); ordinary slots otherwise.
        let scratch = match &self.backend {
            Backend::Uring(_) => match self.poll.try_lock() {
                Ok(g) => Some(g),
                // A callback panicked inside an earlier poll; the table is consistent
                // (see `reap_simple`).
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            },
            Backend::Epoll(_) => None,
        };
        {
            let mut core = lock(&self.core);
            for op in ops {
                if let SimpleKind::Fsync { fd, .. } = op.kind {
                    core.map_target(self, fd)?;
                }
            }
            match (&self.backend, scratch) {
                (Backend::Uring(u), Some(mut scratch)) => {
                    if scratch.simple.free_len() < n {
                        return Err(Error::SubmissionQueueFull {
                            queue: QueueKind::OperationSlots,
                            capacity: self.max_in_flight,
                        });
                    }
                    u.reserve(self, &core, n)?;
                    // Monomorphized on whether ids are wanted (no test per operation).
                    if ids.is_empty() {
                        u.start_simple::<false>(self, &core, &mut scratch.simple, ops, ids);
                    } else {
                        u.start_simple::<true>(self, &core, &mut scratch.simple, ops, ids);
                    }
                    self.simple_live
                        .store(scratch.simple.live(), Ordering::Relaxed);
                }
                (backend, _) => {
                    if core.free_slots() < n {
                        return Err(Error::SubmissionQueueFull {
                            queue: QueueKind::OperationSlots,
                            capacity: self.max_in_flight,
                        });
                    }
                    if let Backend::Uring(u) = backend {
                        u.reserve(self, &core, n)?;
                    }
                    for (i, op) in ops.iter().enumerate() {
                        let idx = core.alloc(Operation::from(*op), false);
                        if let Some(id) = ids.get_mut(i) {
                            *id = OpId(core.slots[idx as usize].key(idx));
                        }
                        core.start(self, idx);
                    }
                }
            }
        }
        if !self.is_poll_thread() {
            self.nudge();
        }
        Ok(())
    }

    /// `cancel` of a simple-operation slot: exact without the poll mutex (see `simple`).
    fn cancel_simple(&self, id: OpId) -> CancelStatus {
        let Some(cell) = self.simple_cells.get(id.index() as usize) else {
            return CancelStatus::NotFound;
        };
        match simple::mark_cancelling(&cell.state, id.0) {
            None => CancelStatus::NotFound,
            Some(false) => CancelStatus::Requested,
            Some(true) => {
                lock(&self.core).simple_cancels.push(id.0);
                self.hint.store(true, Ordering::Relaxed);
                self.nudge();
                CancelStatus::Requested
            }
        }
    }

    pub(crate) fn cancel(&self, id: OpId) -> CancelStatus {
        if id.0 & simple::SIMPLE != 0 {
            return self.cancel_simple(id);
        }
        let (st, wakers) = {
            let mut core = lock(&self.core);
            let st = core.cancel(self, id);
            let w = take_wakers(&mut core);
            if !core.done.is_empty() || !core.cancels.is_empty() {
                self.hint.store(true, Ordering::Relaxed);
            }
            (st, w)
        };
        for w in wakers {
            w.wake();
        }
        if st == CancelStatus::Requested {
            self.nudge();
        }
        st
    }

    pub(crate) fn soft_complete(&self, key: u64, _n: &Notification) {
        let wakers = {
            let mut core = lock(&self.core);
            if !core.soft_complete(self, key) {
                return;
            }
            if !core.done.is_empty() || !core.deferred.is_empty() {
                self.hint.store(true, Ordering::Relaxed);
            }
            take_wakers(&mut core)
        };
        for w in wakers {
            w.wake();
        }
        self.nudge();
    }

    /// The poll loop; see `Proactor::poll` and `Proactor::poll_lent`.
    pub(crate) fn poll(&self, timeout: Option<Duration>, mut on: impl Sink) -> Result<usize> {
        let me = thread_id();
        let owner = self.owner.load(Ordering::Acquire);
        if owner != 0 && owner != me {
            return Err(Error::NotPollOwner);
        }
        let mut scratch = match self.poll.try_lock() {
            Ok(g) => g,
            // A poll from inside this thread's own poll (a completion callback).
            Err(std::sync::TryLockError::WouldBlock)
                if self.polling.load(Ordering::Relaxed) == me =>
            {
                return Err(Error::PollBusy)
            }
            // Held for a moment by `submit_simple` on another thread, or by another
            // thread's poll that got there first (it sets the owner at once): retry
            // until the mutex is free or the owner turns out to be someone else.
            Err(std::sync::TryLockError::WouldBlock) => loop {
                std::thread::yield_now();
                let owner = self.owner.load(Ordering::Acquire);
                if owner != 0 && owner != me {
                    return Err(Error::NotPollOwner);
                }
                match self.poll.try_lock() {
                    Ok(g) => break g,
                    Err(std::sync::TryLockError::WouldBlock) => continue,
                    Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                }
            },
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        };
        // Cleared when this guard drops (before the poll mutex is released).
        let _polling = PollingMark::set(&self.polling, me);
        // The owner is set once; after that a load decides (no read-modify-write per poll).
        if owner != me {
            match self
                .owner
                .compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {}
                Err(o) if o == me => {}
                Err(_) => return Err(Error::NotPollOwner),
            }
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let scratch = &mut *scratch;
        loop {
            // Phase 1: work only the poll thread may do, and completions produced
            // elsewhere (cancellations, signals).
            // (Cleared only when set: a hint raised after this load is seen by the
            // check before blocking, below.)
            if self.hint.load(Ordering::Relaxed) {
                self.hint.store(false, Ordering::SeqCst);
            }
            {
                let mut core = lock(&self.core);
                self.prepare(&mut core)?;
                take_parked(scratch, &mut core);
            }
            let have = !scratch.done.is_empty() || !scratch.wakers.is_empty();
            let wait = if have {
                Some(Duration::ZERO)
            } else {
                deadline.map(|d| d.saturating_duration_since(Instant::now()))
            };
            // Phase 2: block in the kernel. `sleeping` is published before we look at
            // `hint` (and before the kernel reads the SQ tail), see `nudge`.
            self.sleeping.store(true, Ordering::SeqCst);
            let wait = if self.hint.load(Ordering::SeqCst) || self.user_wake.load(Ordering::SeqCst)
            {
                Some(Duration::ZERO)
            } else {
                wait
            };
            let r = match &self.backend {
                Backend::Uring(u) => u.wait(wait),
                Backend::Epoll(e) => e.wait(wait, &mut scratch.events),
            };
            // A plain store: a submitter that still sees `true` only sends a spare wake.
            self.sleeping.store(false, Ordering::Release);
            r?;
            // Phase 3: reap. Simple operations are delivered right here, from the
            // completion ring, with no lock held (see `simple`); the rest is processed
            // under the core lock and delivered in phase 4.
            // With no simple operation in flight (none can be submitted while this
            // poll holds the poll mutex, and each has exactly one CQE, counted until it
            // is delivered) the ring is reaped in one pass under the core lock.
            let split = scratch.simple.live() > 0;
            let simple_n = match &self.backend {
                Backend::Uring(u) if split => u.reap_simple(self, scratch, &mut on),
                _ => 0,
            };
            // Only simple completions this time: the core lock is not needed (what
            // other threads queued meanwhile also raised `hint`, so the next poll picks
            // it up without blocking).
            let only_simple = split && simple_n > 0 && scratch.heavy.is_empty();
            if !only_simple {
                let mut core = lock(&self.core);
                // Interrupt events carry no meaning of their own; `user_wake` decides.
                let _interrupted = match &self.backend {
                    Backend::Uring(u) if split => u.reap_heavy(self, &mut core, &mut scratch.heavy),
                    Backend::Uring(u) => {
                        // CQEs set aside by a poll whose callback panicked, if any.
                        let w = u.reap_heavy(self, &mut core, &mut scratch.heavy);
                        u.reap(self, &mut core) || w
                    }
                    Backend::Epoll(e) => e.reap(self, &mut core, &scratch.events),
                };
                take_parked(scratch, &mut core);
            }
            let woken = self.user_wake.load(Ordering::Relaxed)
                && self.user_wake.swap(false, Ordering::SeqCst);
            // Phase 4: deliver, with no lock held.
            let n = simple_n + scratch.done.len() + scratch.wakers.len();
            deliver(scratch, &mut on);
            if n > 0 || woken {
                return Ok(n);
            }
            if let Some(d) = deadline {
                if Instant::now() >= d {
                    return Ok(0);
                }
            }
        }
    }

    fn prepare(&self, core: &mut Core) -> Result<()> {
        match &self.backend {
            Backend::Uring(u) => u.prepare(self, core),
            Backend::Epoll(e) => e.prepare(self, core),
        }
    }
}

/// Moves the completions and wakers parked in the core to the poll thread's lists,
/// after what is already there (left over by a callback that panicked).
fn take_parked(scratch: &mut PollScratch, core: &mut Core) {
    if scratch.done.is_empty() {
        // Swap rather than copy; both keep their capacity.
        std::mem::swap(&mut scratch.done, &mut core.done);
    } else {
        scratch.done.append(&mut core.done);
    }
    if scratch.done_res.is_empty() {
        std::mem::swap(&mut scratch.done_res, &mut core.done_res);
    } else {
        scratch.done_res.append(&mut core.done_res);
    }
    scratch.wakers.append(&mut core.wakers);
}

/// Phase 4 of `poll`: delivers the parked completions, then wakes the futures. If a
/// callback (or a waker) panics, what was not handed over yet stays parked for the
/// next poll instead of being dropped ([`Delivered`]).
fn deliver(scratch: &mut PollScratch, on: &mut impl Sink) {
    let mut g = Delivered {
        scratch,
        done: 0,
        res: 0,
        wakers: 0,
    };
    while let Some(&d) = g.scratch.done.get(g.done) {
        g.done += 1;
        if d.owns {
            let resources = std::mem::replace(&mut g.scratch.done_res[g.res], Resources::None);
            g.res += 1;
            on.owning(Completion {
                id: d.id,
                user_data: d.user_data,
                outcome: d.outcome,
                resources,
            });
        } else {
            on.lean(d.id, d.user_data, d.outcome);
        }
    }
    while g.wakers < g.scratch.wakers.len() {
        g.wakers += 1;
        g.scratch.wakers[g.wakers - 1].wake_by_ref();
    }
}

/// What `deliver` has handed over; dropping it removes exactly that from the parked
/// lists (everything, unless a callback panicked).
struct Delivered<'a> {
    scratch: &'a mut PollScratch,
    done: usize,
    res: usize,
    wakers: usize,
}

impl Drop for Delivered<'_> {
    fn drop(&mut self) {
        let s = &mut *self.scratch;
        if self.done == s.done.len() && self.wakers == s.wakers.len() {
            s.done.clear();
            s.done_res.clear();
            s.wakers.clear();
        } else {
            s.done.drain(..self.done);
            s.done_res.drain(..self.res);
            s.wakers.drain(..self.wakers);
        }
    }
}

/// Marks the thread inside `poll` (`Shared::polling`) for as long as it lives.
struct PollingMark<'a>(&'a AtomicU64);

impl<'a> PollingMark<'a> {
    fn set(cell: &'a AtomicU64, me: u64) -> PollingMark<'a> {
        cell.store(me, Ordering::Relaxed);
        PollingMark(cell)
    }
}

impl Drop for PollingMark<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// Where `poll` delivers raw completions.
pub(crate) trait Sink {
    /// A completion that hands resources back.
    fn owning(&mut self, c: Completion);
    /// A completion whose resources are `Resources::None`.
    fn lean(&mut self, id: OpId, user_data: u64, outcome: Outcome);
}

/// Completions moved into a closure (`Proactor::poll`).
pub(crate) struct ByValue<F>(pub(crate) F);

impl<F: FnMut(Completion)> Sink for ByValue<F> {
    #[inline(always)]
    fn owning(&mut self, c: Completion) {
        (self.0)(c)
    }
    #[inline(always)]
    fn lean(&mut self, id: OpId, user_data: u64, outcome: Outcome) {
        (self.0)(Completion {
            id,
            user_data,
            outcome,
            resources: Resources::None,
        })
    }
}

/// Completions lent to a closure (`Proactor::poll_lent`); what it leaves in
/// `resources` is dropped when it returns.
pub(crate) struct Lent<F>(pub(crate) F);

impl<F: FnMut(&mut Completion)> Sink for Lent<F> {
    #[inline(always)]
    fn owning(&mut self, mut c: Completion) {
        (self.0)(&mut c)
    }
    #[inline(always)]
    fn lean(&mut self, id: OpId, user_data: u64, outcome: Outcome) {
        let mut c = Completion {
            id,
            user_data,
            outcome,
            resources: Resources::None,
        };
        (self.0)(&mut c);
        // Nothing to drop unless the closure put resources in (the drop glue is an
        // out-of-line call; skipping it is the point of lending). A separate function,
        // so that the compiler cannot merge both arms into one unconditional drop.
        if matches!(c.resources, Resources::None) {
            std::mem::forget(c);
        } else {
            drop_lent(c);
        }
    }
}

#[cold]
#[inline(never)]
fn drop_lent(c: Completion) {
    drop(c);
}

/// Takes the wakers to wake after unlocking. Empty (the raw path) costs nothing; a
/// non-empty list moves out with its allocation (cancel and signal paths only).
fn take_wakers(core: &mut Core) -> Vec<Waker> {
    if core.wakers.is_empty() {
        Vec::new()
    } else {
        std::mem::take(&mut core.wakers)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Teardown with operations in flight: cancel them and wait for the kernel to
        // finish with their memory; only then may the slots (buffers) be freed. When
        // that cannot be done (io_uring single-issuer ring dropped off its poll thread,
        // or the kernel does not answer in time) the in-flight memory is leaked instead.
        let owner = *self.owner.get_mut();
        if let Backend::Uring(u) = &self.backend {
            u.teardown(self, owner == 0 || owner == thread_id());
        }
    }
}
