//! Backend-independent engine: operation slots, delivery, cancellation, linked
//! sequences (including their emulation) and the poll loop, generic over the
//! [`Driver`] (the seam to a backend, defined here). `slots.rs`: slot life and
//! delivery; `submit.rs`: submission and cancellation; `poll.rs`: the poll loop;
//! `host.rs`: what futures and notifications call back into.
//!
//! Locking: `Shared::core` (one mutex) guards the slots and every queue the poll
//! thread drains. It is taken once per submitted batch, once per `cancel`, and at most
//! twice per poll iteration (prepare, reap); never across a blocking system call and
//! never while user code (callbacks, wakers, resource drops of user types) runs.
//! `Shared::poll` is held for a whole `poll` call and marks the single poller; it also
//! guards the driver's poll-thread state (on io_uring the completion ring and the
//! simple-operation table, which is why `submit_simple` takes it, briefly, only when
//! free). Lock order: `poll` → `core` → a notification's subscriber list.

mod host;
mod poll;
pub(crate) mod slots;
mod submit;
mod take;

pub(crate) use take::OpSource;

use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::Waker;
use std::time::Duration;

use super::buffers::Registry;
use super::caps::{BackendKind, Capabilities};
use super::deliver::Sink;
use super::error::{Error, Result};
use super::op::{CancelStatus, OpId, Outcome, Resources};
use super::operation::SimpleOp;
use super::ops::OpKind;

pub(crate) const NONE: u32 = u32::MAX;
/// Generations of ordinary slots are 30 bits, so their keys never reach bits 62 and
/// 63 (which drivers may use for their own requests).
pub(crate) const SLOT_GEN_MASK: u32 = 0x3fff_ffff;

/// Where a slot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Free,
    /// Accepted, not yet handed to the driver (a later step of an emulated chain).
    Queued,
    /// Handed to the driver (or waiting on a user-space subscription).
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

/// In declaration order (`repr(C)`): what every operation reads or writes comes
/// first, next to each other, so that an operation's life touches as few of its
/// slot's cache lines as it can; what only futures and some kinds use comes last.
#[repr(C)]
pub(crate) struct Slot<X> {
    pub(crate) gen: u32,
    pub(crate) prev: u32,
    pub(crate) next: u32,
    pub(crate) state: State,
    pub(crate) cancel: bool,
    /// Running as a user-space wait (emulated notification wait).
    pub(crate) soft: bool,
    pub(crate) chain: Chain,
    pub(crate) user_data: u64,
    /// Emulated operation timeout: CLOCK_MONOTONIC deadline in nanoseconds (0: none).
    pub(crate) deadline: u64,
    pub(crate) op: Option<OpKind>,
    pub(crate) delivery: Delivery,
    /// The driver's part (its per-operation flags first).
    pub(crate) ext: X,
    /// Cancelled by its emulated timeout (completes with `ETIMEDOUT`).
    pub(crate) timed_out: bool,
    pub(crate) result: Option<(Outcome, Resources)>,
}

impl<X: SlotExt> Slot<X> {
    fn new() -> Slot<X> {
        Slot {
            gen: 0,
            state: State::Free,
            delivery: Delivery::Callback,
            cancel: false,
            soft: false,
            user_data: 0,
            op: None,
            result: None,
            chain: Chain::None,
            prev: NONE,
            next: NONE,
            deadline: 0,
            timed_out: false,
            ext: X::new(),
        }
    }
    #[inline(always)]
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
    /// Not the operation's last completion (multishot).
    pub(crate) more: bool,
}

pub(crate) struct Core<D: Driver> {
    pub(crate) slots: Box<[Slot<D::Slot>]>,
    pub(crate) free: Vec<u32>,
    /// Completions for the raw path, waiting for the poll thread to deliver them.
    pub(crate) done: Vec<Done>,
    /// The resources of the entries of `done` that own some, in the same order.
    pub(crate) done_res: Vec<Resources>,
    /// Futures to wake once the lock is released.
    pub(crate) wakers: Vec<Waker>,
    pub(crate) live: usize,
    /// Emulated fixed files: `dup`ed descriptors indexed like the registration.
    pub(crate) files: Vec<OwnedFd>,
    /// Files registered with the kernel.
    pub(crate) native_files: u32,
    /// Slots with an emulated timeout (`Slot::deadline`) pending.
    pub(crate) timed: usize,
    /// The driver's state.
    pub(crate) be: D::State,
}

/// Scratch owned by the polling thread (guarded by `Shared::poll`).
pub(crate) struct PollScratch<D: Driver> {
    pub(crate) done: Vec<Done>,
    pub(crate) done_res: Vec<Resources>,
    pub(crate) wakers: Vec<Waker>,
    pub(crate) drv: D::PollState,
}

pub(crate) struct Shared<D: Driver> {
    pub(crate) me: Weak<Shared<D>>,
    /// Declared before `core`/`buffers`: the driver (the kernel ring) goes first, so
    /// nothing the kernel may still reference is freed before it.
    pub(crate) driver: D,
    pub(crate) core: Mutex<Core<D>>,
    pub(crate) poll: Mutex<PollScratch<D>>,
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

impl<D: Driver> Shared<D> {
    pub(crate) fn new(driver: D, caps: Capabilities, max_in_flight: u32) -> Arc<Shared<D>> {
        let be = driver.new_state(max_in_flight);
        let drv = driver.new_poll_state(max_in_flight);
        Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            driver,
            core: Mutex::new(Core::new(max_in_flight, be)),
            poll: Mutex::new(PollScratch {
                done: Vec::with_capacity(max_in_flight as usize),
                done_res: Vec::with_capacity(max_in_flight as usize),
                wakers: Vec::with_capacity(64),
                drv,
            }),
            owner: AtomicU64::new(0),
            polling: AtomicU64::new(0),
            sleeping: AtomicBool::new(false),
            hint: AtomicBool::new(false),
            user_wake: AtomicBool::new(false),
            caps,
            buffers: OnceLock::new(),
            max_in_flight,
        })
    }

    /// Wakes the poll thread if it may be blocked in the kernel. Pairs with the
    /// SeqCst store of `sleeping` in `poll`: either the poller sees our queued work (or
    /// SQE tail) before it blocks, or we see `sleeping` and wake it.
    pub(crate) fn nudge(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            self.driver.interrupt();
        }
    }

    /// `Proactor::wake`: the current or next `poll` returns.
    pub(crate) fn wake(&self) {
        self.user_wake.store(true, Ordering::SeqCst);
        self.driver.interrupt();
    }

    pub(crate) fn is_poll_thread(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == thread_id()
    }
}

/// Takes the wakers to wake after unlocking. Empty (the raw path) costs nothing; a
/// non-empty list moves out with its allocation (cancel and signal paths only).
pub(crate) fn take_wakers<D: Driver>(core: &mut Core<D>) -> Vec<Waker> {
    if core.wakers.is_empty() {
        Vec::new()
    } else {
        std::mem::take(&mut core.wakers)
    }
}

impl<D: Driver> Drop for Shared<D> {
    fn drop(&mut self) {
        // Teardown with operations in flight: the driver makes sure the kernel is done
        // with their memory before the slots (buffers) are freed, or leaks it.
        let owner = *self.owner.get_mut();
        self.driver
            .teardown(self, owner == 0 || owner == thread_id());
    }
}

/// Per-slot state a driver keeps next to the core's.
pub(crate) trait SlotExt: Send {
    fn new() -> Self;
    /// Restores the defaults of a free slot (`Core::release`).
    fn reset(&mut self);
    /// Whether it holds the defaults of a free slot (debug checks).
    fn is_reset(&self) -> bool;
}

pub(crate) trait Driver: Sized + Send + Sync + 'static {
    type Slot: SlotExt;
    /// State guarded by the core lock.
    type State: Send;
    /// Scratch of the poll thread (guarded by the poll mutex).
    type PollState: Send;

    const KIND: BackendKind;

    fn new_state(&self, max_in_flight: u32) -> Self::State;
    fn new_poll_state(&self, max_in_flight: u32) -> Self::PollState;

    /// Interrupts a blocked `wait` (any thread).
    fn interrupt(&self);

    /// Ensures room for `n` entries, or reports the retryable queue-full error.
    #[inline(always)]
    fn reserve(&self, _sh: &Shared<Self>, _core: &Core<Self>, _n: usize) -> Result<()> {
        Ok(())
    }

    /// Hands a slot that the core marked running to the backend.
    fn start(&self, sh: &Shared<Self>, core: &mut Core<Self>, idx: u32);

    /// Allocates and starts unlinked operations in one go, if the driver has a
    /// faster way than one `start` each; returns whether it did.
    #[inline(always)]
    fn start_batch<S: OpSource>(
        &self,
        _sh: &Shared<Self>,
        _core: &mut Core<Self>,
        _ops: &mut S,
        _on_id: &mut impl FnMut(OpId),
        _future: bool,
    ) -> bool {
        false
    }

    /// Cancels a slot the backend is running (not one the core runs in user space).
    fn cancel(&self, sh: &Shared<Self>, core: &mut Core<Self>, idx: u32);

    /// Poll-thread work before waiting (core lock held).
    fn prepare(&self, sh: &Shared<Self>, core: &mut Core<Self>) -> Result<()>;

    /// Blocks up to `timeout` (`None`: until something happens).
    fn wait(&self, timeout: Option<Duration>, ps: &mut Self::PollState) -> Result<()>;

    /// Reaping that needs no core lock (the simple-operation path): delivers to `on`
    /// and returns how many it delivered and whether `reap` must run as well.
    #[inline(always)]
    fn reap_unlocked(
        &self,
        _sh: &Shared<Self>,
        _ps: &mut Self::PollState,
        _on: &mut impl Sink,
    ) -> (usize, bool) {
        (0, true)
    }

    /// Reaps completions into the core (core lock held).
    fn reap(&self, sh: &Shared<Self>, core: &mut Core<Self>, ps: &mut Self::PollState);

    /// Last words before the slots are freed: make sure the kernel no longer uses
    /// their memory (or leak it).
    fn teardown(&self, _sh: &Shared<Self>, _can_enter: bool) {}

    /// Whether the driver has a table of its own for simple operations.
    const SIMPLE_TABLE: bool = false;

    /// Submits simple operations into that table (poll mutex and core lock held).
    fn submit_simple(
        &self,
        _sh: &Shared<Self>,
        _core: &Core<Self>,
        _ps: &mut Self::PollState,
        _ops: &[SimpleOp],
        _ids: &mut [OpId],
    ) -> Result<()> {
        Err(Error::InvalidArgument(
            "this backend has no simple-operation table",
        ))
    }

    /// `cancel` of an id issued by that table; `None` for ordinary ids.
    #[inline(always)]
    fn cancel_simple(&self, _sh: &Shared<Self>, _id: OpId) -> Option<CancelStatus> {
        None
    }

    /// Simple operations in flight in that table.
    #[inline(always)]
    fn simple_live(&self) -> usize {
        0
    }

    /// Registers a provided-buffer group with the kernel where that is native (and
    /// keeps it alive as long as the kernel may use it).
    fn register_buf_ring(
        &self,
        _sh: &Shared<Self>,
        _ring: &Arc<super::bufring::RingInner>,
    ) -> Result<()> {
        Ok(())
    }

    /// Registers the buffers with the kernel where that is native.
    fn register_buffers(&self, _sh: &Shared<Self>, _reg: &Registry) -> Result<()> {
        Ok(())
    }

    /// Registers files with the kernel where that is native; `Ok(false)`: emulate.
    fn register_files(
        &self,
        _sh: &Shared<Self>,
        _core: &mut Core<Self>,
        _fds: &[RawFd],
    ) -> Result<bool> {
        Ok(false)
    }

    /// io_uring setup flags accepted (diagnostics).
    fn ring_flags(&self) -> Option<&'static str> {
        None
    }
}
