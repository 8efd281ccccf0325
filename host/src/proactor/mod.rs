//! Completion-based async I/O for the CPU side (io_uring backend, epoll fallback).
//!
//! # How it works
//!
//! A [`Proactor`] owns a fixed table of operation *slots* (`Options::max_in_flight`),
//! allocated once at creation. [`Proactor::submit`] moves an [`Operation`] (with every
//! buffer, path, event or notification it uses) into a free slot and hands it to the
//! backend: on io_uring it becomes an SQE in the submission ring, on epoll it is queued
//! for the poll thread. No memory is allocated per operation: the slot table, the
//! completion list and the wake machinery are sized at creation, and an operation's
//! buffers are the caller's, moved in and handed back.
//!
//! [`Proactor::poll`] drives everything: it flushes submissions and cancel requests
//! to the kernel, blocks until something completes (or the timeout passes, or
//! [`Proactor::wake`] is called), and delivers each completion exactly once, in one of
//! two ways chosen per operation at submission:
//!
//! - **raw path**: operations submitted with [`submit`](Proactor::submit),
//!   [`submit_batch`](Proactor::submit_batch) or [`submit_linked`](Proactor::submit_linked)
//!   are delivered as [`Completion`] values to the closure passed to `poll`, on the poll
//!   thread. This is for code that runs its own loop; it costs nothing beyond the slot.
//! - **futures**: [`submit_future`](Proactor::submit_future) returns an [`OpFuture`] that
//!   resolves to the `Completion`. It works with any executor: `poll` (or whichever
//!   thread completed the operation) wakes its waker. Some thread must keep calling
//!   `poll`, e.g. the executor's idle hook or a dedicated I/O thread.
//!
//! The raw path is the primitive; futures are built on the same slots (the outcome is
//! parked in the slot until the future takes it).
//!
//! # The simple-operation path (lowest overhead)
//!
//! Operations that own nothing — nop, timers, fsync — can also be described as
//! [`SimpleOp`] values (`Copy`, 32 bytes) and submitted by reference with
//! [`submit_simple`](Proactor::submit_simple), and any completion can be lent to the
//! poll closure by reference with [`poll_lent`](Proactor::poll_lent) instead of moved
//! into it. On io_uring the two together form the cheapest path: each slot and
//! submission entry is written in place, and `poll` hands these completions to the
//! closure straight from the completion ring, without a lock, an intermediate list or
//! a value built and dropped. Semantics are those of the raw path (exactly-once
//! delivery, ids, `cancel`, `in_flight`, teardown); the differences:
//!
//! - simple operations have a slot table of their own, of `Options::max_in_flight`
//!   slots (besides the ordinary ones), used when `submit_simple` is called while no
//!   `poll` runs — from any thread. Inside a completion callback, or while `poll`
//!   blocks on another thread, `submit_simple` uses ordinary slots instead (same
//!   behaviour, ordinary cost); the epoll backend always does;
//! - within one `poll`, simple completions may be delivered before other completions
//!   reaped by the same call (no order between operations is promised anyway);
//! - `in_flight` may still count a simple operation while the callback that receives
//!   it runs; once that `poll` returns it no longer does.
//!
//! ```
//! use std::time::Duration;
//! use gpu_uring::proactor::{OpId, Options, Outcome, Proactor, SimpleOp};
//!
//! let p = Proactor::new(Options::default())?;
//! let ops = [SimpleOp::nop().user_data(1), SimpleOp::timer(Duration::from_millis(1)).user_data(2)];
//! let mut ids = [OpId::default(); 2];
//! p.submit_simple(&ops, &mut ids)?; // or `&mut []` when the ids are not needed
//! let mut seen = 0;
//! while seen < ops.len() {
//!     p.poll_lent(Some(Duration::from_secs(5)), |c| {
//!         assert_eq!(c.outcome, Outcome::Ok(0));
//!         assert!(ids.contains(&c.id));
//!         seen += 1;
//!     })?;
//! }
//! # Ok::<(), gpu_uring::proactor::Error>(())
//! ```
//!
//! ```
//! use std::time::Duration;
//! use gpu_uring::proactor::{Operation, Options, Outcome, Proactor};
//!
//! let p = Proactor::new(Options::default())?; // io_uring, or epoll where unavailable
//! // Raw path: the completion comes to the closure given to `poll`.
//! let id = p.submit(Operation::timer(Duration::from_millis(1)).user_data(7))?;
//! let mut done = Vec::new();
//! while done.is_empty() {
//!     p.poll(Some(Duration::from_secs(5)), |c| done.push(c))?;
//! }
//! assert_eq!((done[0].id, done[0].user_data, done[0].outcome), (id, 7, Outcome::Ok(0)));
//! // Future path: any executor; someone keeps polling the proactor meanwhile.
//! let fut = p.submit_future(Operation::nop())?;
//! # drop(fut);
//! # Ok::<(), gpu_uring::proactor::Error>(())
//! ```
//!
//! # Threading rules
//!
//! - `poll` is owned by one thread: the first thread that polls owns the proactor for
//!   its lifetime (io_uring's `SINGLE_ISSUER` needs this; the epoll backend enforces the
//!   same rule so code behaves alike on both). Another thread gets
//!   [`Error::NotPollOwner`]; a poll from inside a completion callback gets
//!   [`Error::PollBusy`]. (A `submit_simple` on another thread holds the poll mutex
//!   for a moment; the owner's `poll` then waits for it, it never fails for that.)
//! - `submit*`, `cancel`, `wake`, `Event::set` and `Notification::signal` may be called
//!   from any thread, also while `poll` blocks. They never enter the kernel ring
//!   themselves (only the poll thread does); they queue work and wake the poll thread
//!   when it sleeps.
//! - `Proactor` is a cheap handle (`Clone`, `Send`, `Sync`); the state lives until the
//!   last handle and the last `OpFuture` are gone.
//! - Registration (`register_buffers`, `register_files`) must happen before the first
//!   poll or on the poll thread.
//!
//! # Cancellation
//!
//! [`Proactor::cancel`] answers [`CancelStatus::Requested`] when the operation is still
//! pending — its completion is then delivered exactly once, as [`Outcome::Cancelled`]
//! unless it finished first — or [`CancelStatus::NotFound`] when its completion was
//! already determined (then no second completion comes). Cancelling twice is harmless.
//! A linked sequence is cancelled as a unit: the running step and all later steps
//! complete `Cancelled`. Dropping an unfinished [`OpFuture`] cancels its operation;
//! the operation's memory is released only after the kernel is done with it (a
//! zero-copy send, whose kernel posts a result and then a notification, completes
//! once, after the notification, even when cancelled between the two). Dropping
//! the proactor with operations in flight cancels them and waits (bounded) for the
//! kernel; if it cannot confirm that (io_uring single-issuer ring dropped on a thread
//! other than its poll thread while operations are still in flight), the memory of
//! those operations is leaked rather than freed under the kernel. Drop the last handle
//! on the poll thread, or after the operations completed, to avoid that.
//!
//! # Backends
//!
//! [`Options::backend`] picks io_uring, epoll, or `Auto`: io_uring when it can be set up,
//! epoll otherwise. The library reads no environment variable; a program that wants
//! one to choose (the tests use [`BACKEND_ENV`]) parses it with
//! [`BackendChoice::from_env_value`] and sets `Options::backend`. io_uring rings are created with
//! `SINGLE_ISSUER | DEFER_TASKRUN | R_DISABLED` and retried with fewer flags on `EINVAL`;
//! `EPERM`, `EACCES`, `ENOSYS` or `kernel.io_uring_disabled=2` report
//! [`Error::Unavailable`]. [`Proactor::capabilities`] tells what is native, emulated or
//! absent; `Options::allowed_capabilities` masks native features to force the emulated
//! paths (the conformance suite runs every test under several masks).
//!
//! # Operations
//!
//! nop, timers (relative and absolute), event waits ([`Event`], an eventfd), notification
//! waits ([`Notification`], an epoch counter), and positioned file I/O: open, read,
//! write, readv, writev, fsync, close, plus reads and writes of registered buffers
//! ([`FixedBuf`]) and on registered files ([`Target::Fixed`]); sockets: accept (also
//! multishot), connect, recv (also with a timeout, multishot into provided buffers, or
//! into a leased registered buffer), send, zero-copy send, recvmsg, sendmsg, shutdown.
//! [`Proactor::submit_linked`] runs operations as a sequence in which a failed (or
//! short) step cancels the rest.
//!
//! # Services: sources, semaphores, fences, relays, messages, signals
//!
//! Built on internal operations whose completions never reach a `poll` closure: each
//! carries its route (`Resources::Internal`) and `poll` hands it to its owner during
//! delivery, on the poll thread, with no lock held. Every registration is a
//! submission (thread-safe) and counts in [`Proactor::in_flight`] while armed; none
//! keeps a strong reference to the proactor, and dropping the proactor ends them.
//! Each module states its threading, cancellation and ownership rules:
//!
//! - [`source`]: [`Proactor::register_event_source`], readiness callbacks
//!   (multishot `POLL_ADD`, or re-armed / epoll);
//! - [`semaphore`]: [`Semaphore`], timeline values with waits as operations,
//!   futures, wait-any / wait-all, and failure delivered to every waiter;
//! - [`fence`]: [`Proactor::import_fence`] and [`Semaphore::export_fd`];
//! - [`relay`]: [`Proactor::relay`], source to sink (kernel-linked where possible);
//! - [`message`]: [`Proactor::send_message`] (`MSG_RING` or a bounded queue, with
//!   credits) and [`Proactor::set_message_callback`];
//! - [`signals`]: [`Proactor::subscribe_signal`] through one signalfd per process.

mod buffers;
mod bufring;
mod caps;
mod core;
mod deliver;
mod epoll;
mod error;
pub mod fence;
mod future;
pub mod message;
pub mod net;
mod op;
mod operation;
mod ops;
pub mod relay;
pub mod semaphore;
mod service;
pub mod signals;
pub mod source;
mod sync;
mod sys;
mod uring;

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

pub use buffers::FixedBuf;
pub use bufring::{BufRing, RingBuf};
pub use caps::{BackendKind, Capabilities, Capability, CapabilitySet, Support};
pub use error::{Error, QueueKind, Result};
pub use future::OpFuture;
pub use message::MessageStats;
pub use op::{
    CancelStatus, Completion, Deadline, OpCode, OpError, OpId, Outcome, Resources, Target,
    TimerSpec,
};
pub use operation::{Operation, SimpleOp};
pub use relay::{Relay, RelaySink, RelaySource};
pub use semaphore::Semaphore;
pub use signals::{Signal, SignalSubscription};
pub use source::{EventSource, Interest};
pub use sync::{Event, Notification};
pub use sys::open_fd_count;

use self::core::{Driver, Shared};
use self::epoll::Epoll;
use self::uring::Uring;

/// Name of the environment variable the tests and tools of this crate read to pick a
/// backend (`io_uring`, `epoll` or `auto`; see [`BackendChoice::from_env_value`]).
/// The library itself never reads it.
pub const BACKEND_ENV: &str = "GPU_URING_PROACTOR";

/// Which backend to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// io_uring if it can be set up, epoll otherwise.
    #[default]
    Auto,
    /// io_uring only (fails with `Error::Unavailable` when it cannot be used).
    IoUring,
    /// epoll only.
    Epoll,
}

impl BackendChoice {
    /// Parses a backend name as written in [`BACKEND_ENV`]: `io_uring`, `epoll` or
    /// `auto` (also empty), case-insensitive.
    pub fn from_env_value(v: &str) -> Option<BackendChoice> {
        match v.trim().to_ascii_lowercase().as_str() {
            "io_uring" | "iouring" | "uring" => Some(BackendChoice::IoUring),
            "epoll" | "posix" => Some(BackendChoice::Epoll),
            "auto" | "" => Some(BackendChoice::Auto),
            _ => None,
        }
    }
}

/// Creation options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Backend selection.
    pub backend: BackendChoice,
    /// Operation slots: the most operations pending at once (default 1024).
    pub max_in_flight: u32,
    /// io_uring submission ring entries (default 256; rounded up to a power of two).
    pub ring_entries: u32,
    /// Native capabilities the backend may use; masked ones use their emulation.
    pub allowed_capabilities: CapabilitySet,
    /// Messages from other proactors that may wait for this one's message callback
    /// (default 256): the credit count behind "target full" (see
    /// [`Proactor::send_message`]).
    pub message_capacity: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backend: BackendChoice::Auto,
            max_in_flight: 1024,
            ring_entries: 256,
            allowed_capabilities: CapabilitySet::ALL,
            message_capacity: 256,
        }
    }
}

/// A submission that was refused; the operation (and its resources) is handed back.
#[derive(thiserror::Error)]
#[error("{error}")]
pub struct SubmitError {
    /// Why.
    pub error: Error,
    /// The operation, untouched.
    pub op: Operation,
}

debug_as_display!(SubmitError);

impl From<SubmitError> for Error {
    fn from(e: SubmitError) -> Error {
        e.error
    }
}

/// The engine behind a handle: the core monomorphized for one driver.
#[derive(Clone)]
enum Engine {
    Uring(Arc<Shared<Uring>>),
    Epoll(Arc<Shared<Epoll>>),
}

/// Runs `$body` with `$s` bound to the engine's `Arc<Shared<D>>`, whatever its
/// driver: the one place where the backend is chosen per call.
macro_rules! on_engine {
    ($engine:expr, |$s:ident| $body:expr) => {
        match $engine {
            Engine::Uring($s) => $body,
            Engine::Epoll($s) => $body,
        }
    };
}

/// The completion-based I/O engine. See the module docs for the model and threading rules.
#[derive(Clone)]
pub struct Proactor {
    engine: Engine,
    /// Messages from other proactors (see `message.rs`).
    mailbox: Arc<message::Mailbox>,
}

/// The engine without keeping it alive.
#[derive(Clone)]
enum WeakEngine {
    Uring(std::sync::Weak<Shared<Uring>>),
    Epoll(std::sync::Weak<Shared<Epoll>>),
}

/// A proactor handle that does not keep it alive: what the proactor's own
/// operations (event sources, relays, signals) hold, so that no cycle keeps a
/// proactor from being dropped.
#[derive(Clone)]
pub(crate) struct WeakProactor {
    engine: WeakEngine,
    mailbox: std::sync::Weak<message::Mailbox>,
}

impl WeakProactor {
    pub(crate) fn upgrade(&self) -> Option<Proactor> {
        let engine = match &self.engine {
            WeakEngine::Uring(w) => Engine::Uring(w.upgrade()?),
            WeakEngine::Epoll(w) => Engine::Epoll(w.upgrade()?),
        };
        Some(Proactor {
            engine,
            mailbox: self.mailbox.upgrade()?,
        })
    }

    /// Whether it refers to `p`.
    pub(crate) fn is(&self, p: &Proactor) -> bool {
        self.upgrade().is_some_and(|q| q.same_as(p))
    }
}

impl std::fmt::Debug for Proactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proactor")
            .field("backend", &self.backend())
            .field("capabilities", &self.capabilities())
            .finish()
    }
}

/// Capabilities every backend provides by emulation when not natively.
fn emulated_caps() -> CapabilitySet {
    CapabilitySet::NONE
        .with(Capability::LinkedOperations)
        .with(Capability::RegisteredBuffers)
        .with(Capability::FixedFiles)
        .with(Capability::AbsoluteTimers)
        .with(Capability::KernelNotificationWait)
        .with(Capability::OperationTimeouts)
        .with(Capability::Multishot)
        .with(Capability::ZeroCopySend)
        .with(Capability::Messaging)
        .with(Capability::DeviceFence)
}

impl Proactor {
    /// Creates a proactor.
    pub fn new(options: Options) -> Result<Proactor> {
        if options.max_in_flight == 0 || options.max_in_flight > (1 << 24) {
            return Err(Error::InvalidArgument("max_in_flight must be in 1..=16M"));
        }
        match options.backend {
            BackendChoice::IoUring => Self::new_uring(&options),
            BackendChoice::Epoll => Self::new_epoll(&options),
            BackendChoice::Auto => match Self::new_uring(&options) {
                Err(Error::Unavailable { .. }) => Self::new_epoll(&options),
                r => r,
            },
        }
    }

    fn new_uring(o: &Options) -> Result<Proactor> {
        let entries = o.ring_entries.clamp(2, 32768);
        // CQ sized for every slot (ordinary and simple) plus cancel requests and the
        // wake read.
        // Messages posted by `MSG_RING` take CQ entries too (at most the credits).
        let cq = (o.max_in_flight.saturating_mul(3).saturating_add(64))
            .saturating_add(o.message_capacity)
            .next_power_of_two()
            .max(entries * 2);
        let created = Uring::create(
            entries,
            cq.min(1 << 20),
            o.max_in_flight,
            o.allowed_capabilities,
        )?;
        let caps = Capabilities::new(created.native, emulated_caps());
        let mut uring = created.uring;
        let ring = if caps.is_native(Capability::Messaging) {
            Some(uring.ring_fd_dup()?)
        } else {
            None
        };
        let mailbox = Arc::new(message::Mailbox::new(o.message_capacity, ring)?);
        uring.mailbox = Some(mailbox.clone());
        Ok(Proactor {
            engine: Engine::Uring(Shared::new(uring, caps, o.max_in_flight)),
            mailbox,
        })
    }

    fn new_epoll(o: &Options) -> Result<Proactor> {
        let (e, native) = Epoll::create(o.allowed_capabilities)?;
        let caps = Capabilities::new(native, emulated_caps());
        Ok(Proactor {
            engine: Engine::Epoll(Shared::new(e, caps, o.max_in_flight)),
            mailbox: Arc::new(message::Mailbox::new(o.message_capacity, None)?),
        })
    }

    pub(crate) fn downgrade(&self) -> WeakProactor {
        WeakProactor {
            engine: match &self.engine {
                Engine::Uring(s) => WeakEngine::Uring(Arc::downgrade(s)),
                Engine::Epoll(s) => WeakEngine::Epoll(Arc::downgrade(s)),
            },
            mailbox: Arc::downgrade(&self.mailbox),
        }
    }

    /// Whether the calling thread is this proactor's poll thread.
    pub(crate) fn on_poll_thread(&self) -> bool {
        on_engine!(&self.engine, |s| s.is_poll_thread())
    }

    /// The backend in use.
    pub fn backend(&self) -> BackendKind {
        on_engine!(&self.engine, |s| kind_of(s))
    }

    /// What the backend does natively, emulates, or lacks (after `allowed_capabilities`).
    pub fn capabilities(&self) -> Capabilities {
        on_engine!(&self.engine, |s| s.caps)
    }

    /// io_uring setup flags that were accepted (for diagnostics); `None` on epoll.
    pub fn ring_flags(&self) -> Option<&'static str> {
        on_engine!(&self.engine, |s| s.driver.ring_flags())
    }

    /// Submits one operation for the raw completion path. Thread-safe.
    ///
    /// On [`Error::SubmissionQueueFull`] (retryable) or a validation error the operation
    /// is handed back untouched in the [`SubmitError`].
    pub fn submit(&self, op: Operation) -> Result<OpId, SubmitError> {
        let mut src = Some(op);
        let mut id = None;
        let r = on_engine!(&self.engine, |s| s.submit_many(
            &mut src,
            |i| id = Some(i),
            false,
            false
        ));
        match (r, id, src) {
            (Ok(()), Some(id), _) => Ok(id),
            (Err(error), _, Some(op)) => Err(SubmitError { error, op }),
            _ => unreachable!("one id per accepted operation; a rejected one is untouched"),
        }
    }

    /// Submits all of `ops` for the raw completion path, or none of them. On success
    /// `ops` is drained (its capacity kept for reuse) and the ids are appended to `ids`
    /// in order; on error both are untouched. Thread-safe.
    pub fn submit_batch(&self, ops: &mut Vec<Operation>, ids: &mut Vec<OpId>) -> Result<()> {
        on_engine!(&self.engine, |s| s.submit_many(
            ops,
            |i| ids.push(i),
            false,
            false
        ))
    }

    /// Submits resource-free operations ([`SimpleOp`]: nop, timers, fsync) for the raw
    /// completion path, all or none of them, like [`submit_batch`](Self::submit_batch).
    /// The operations are read by reference and each slot and submission entry is built
    /// in place, which makes this the cheapest way to submit them. `ids` receives their
    /// ids in order: pass a slice at least as long as `ops`, or an empty slice when the
    /// ids are not needed (any other length is [`Error::InvalidArgument`]). On error
    /// nothing is submitted. Thread-safe.
    pub fn submit_simple(&self, ops: &[SimpleOp], ids: &mut [OpId]) -> Result<()> {
        on_engine!(&self.engine, |s| s.submit_simple(ops, ids))
    }

    /// Submits `ops` as a linked sequence: each step starts after the previous one
    /// succeeded; a failed or short step completes and every later step completes
    /// `Cancelled`. Every step gets its own completion. Kernel-linked on io_uring
    /// (`IOSQE_IO_LINK`), emulated otherwise. All-or-nothing like `submit_batch`.
    pub fn submit_linked(&self, ops: &mut Vec<Operation>, ids: &mut Vec<OpId>) -> Result<()> {
        on_engine!(&self.engine, |s| s.submit_many(
            ops,
            |i| ids.push(i),
            true,
            false
        ))
    }

    /// Submits one operation and returns a future of its completion. Thread-safe.
    pub fn submit_future(&self, op: Operation) -> Result<OpFuture, SubmitError> {
        let mut src = Some(op);
        let mut id = None;
        let r = on_engine!(&self.engine, |s| s.submit_many(
            &mut src,
            |i| id = Some(i),
            false,
            true
        ));
        match (r, id, src) {
            (Ok(()), Some(id), _) => Ok(OpFuture {
                shared: self.host(),
                id,
                taken: false,
            }),
            (Err(error), _, Some(op)) => Err(SubmitError { error, op }),
            _ => unreachable!("one id per accepted operation; a rejected one is untouched"),
        }
    }

    /// Like [`submit_linked`](Self::submit_linked), returning one future per step.
    pub fn submit_linked_futures(&self, ops: &mut Vec<Operation>) -> Result<Vec<OpFuture>> {
        let mut futs = Vec::with_capacity(ops.len());
        let host = self.host();
        on_engine!(&self.engine, |s| s.submit_many(
            ops,
            |id| futs.push(OpFuture {
                shared: host.clone(),
                id,
                taken: false,
            }),
            true,
            true,
        ))?;
        Ok(futs)
    }

    fn host(&self) -> Arc<dyn future::FutureHost> {
        on_engine!(&self.engine, |s| s.clone() as Arc<dyn future::FutureHost>)
    }

    /// Requests cancellation of a pending operation. Thread-safe; see the module docs.
    pub fn cancel(&self, id: OpId) -> CancelStatus {
        on_engine!(&self.engine, |s| s.cancel(id))
    }

    /// Makes a blocked (or the next) `poll` return. Thread-safe; wakes coalesce.
    pub fn wake(&self) {
        on_engine!(&self.engine, |s| s.wake())
    }

    /// Runs the proactor: submits queued work, waits up to `timeout` (`None`: until
    /// something happens) and delivers completions — raw ones to `on_complete`, future
    /// ones by waking them. Returns how many completions were delivered; returns
    /// `Ok(0)` on timeout or after [`wake`](Self::wake). Only the owning thread may poll.
    ///
    /// If `on_complete` (or a future's waker) panics, the panic propagates out of
    /// `poll`; the completion it was given counts as delivered, and every completion not
    /// handed over yet is delivered by a later `poll` — none is lost.
    pub fn poll(
        &self,
        timeout: Option<Duration>,
        on_complete: impl FnMut(Completion),
    ) -> Result<usize> {
        on_engine!(&self.engine, |s| s
            .poll(timeout, service::Routed(deliver::ByValue(on_complete))))
    }

    /// Like [`poll`](Self::poll), but each raw completion is lent to `on_complete`
    /// instead of moved into it: the closure reads it and may take what it wants to
    /// keep (`std::mem::replace(&mut c.resources, Resources::None)`); whatever is left
    /// in it is dropped when the closure returns. Completions that own nothing (nop,
    /// timers, fsync: every [`SimpleOp`]) are then delivered without building or
    /// dropping a value, the cheapest path together with
    /// [`submit_simple`](Self::submit_simple).
    pub fn poll_lent(
        &self,
        timeout: Option<Duration>,
        on_complete: impl FnMut(&mut Completion),
    ) -> Result<usize> {
        on_engine!(&self.engine, |s| s
            .poll(timeout, service::Routed(deliver::Lent(on_complete))))
    }

    /// Operations submitted and not yet delivered (futures count until taken).
    pub fn in_flight(&self) -> usize {
        on_engine!(&self.engine, |s| s.in_flight())
    }

    /// Allocates `count` buffers of `size` bytes and registers them with the kernel
    /// (`IORING_REGISTER_BUFFERS`, 5.1+) where that capability is native. Once per
    /// proactor; before the first poll or on the poll thread.
    pub fn register_buffers(&self, count: u16, size: usize) -> Result<()> {
        if count == 0 || size == 0 {
            return Err(Error::InvalidArgument(
                "register_buffers needs count > 0 and size > 0",
            ));
        }
        let reg = Arc::new(buffers::Registry::new(count as usize, size));
        on_engine!(&self.engine, |s| s.register_buffers(reg))
    }

    /// Makes a group of `count` (a power of two, at most 32768) provided buffers of
    /// `size` bytes for [`Operation::recv_multishot`]: registered with the kernel
    /// (`IORING_REGISTER_PBUF_RING`) where [`Capability::Multishot`] is native, a free
    /// list otherwise. Before the first poll or on the poll thread. The memory lives
    /// until the proactor and every clone of the group and its leased buffers are gone.
    pub fn buf_ring(&self, count: u16, size: usize) -> Result<BufRing> {
        static GROUPS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        let group = GROUPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let native = self.capabilities().is_native(Capability::Multishot);
        let inner = Arc::new(bufring::RingInner::new(group, count, size, native)?);
        on_engine!(&self.engine, |s| s.driver.register_buf_ring(s, &inner))?;
        inner.fill();
        Ok(BufRing { inner })
    }

    /// Leases registered buffer `index` if it is free.
    pub fn fixed_buffer(&self, index: u16) -> Option<FixedBuf> {
        on_engine!(&self.engine, |s| s.buffers.get()?.lease(index as usize))
    }

    /// Leases any free registered buffer (a chunk of the slab made by
    /// [`register_buffers`](Self::register_buffers)), e.g. for
    /// [`Operation::recv_fixed`]; `None` when none is registered or all are leased.
    /// Dropping the [`FixedBuf`] returns it, from any thread.
    pub fn lease_buffer(&self) -> Option<FixedBuf> {
        on_engine!(&self.engine, |s| s.buffers.get()?.lease_any())
    }

    /// Registered buffers not leased now (a snapshot; 0 when none are registered).
    pub fn free_buffers(&self) -> usize {
        on_engine!(&self.engine, |s| s
            .buffers
            .get()
            .map_or(0, |r| r.free_count()))
    }

    /// Zero-copy send notifications the io_uring driver has reaped (0 on epoll, or
    /// with [`Capability::ZeroCopySend`] emulated): shows that completions waited for
    /// them. A test hook.
    #[cfg(feature = "testing")]
    pub fn zero_copy_notifications(&self) -> u64 {
        match &self.engine {
            // Relaxed: a statistic.
            Engine::Uring(s) => s
                .driver
                .zc_notifications
                .load(std::sync::atomic::Ordering::Relaxed),
            Engine::Epoll(_) => 0,
        }
    }

    /// Number and size of the registered buffers.
    pub fn registered_buffers(&self) -> Option<(usize, usize)> {
        on_engine!(&self.engine, |s| s
            .buffers
            .get()
            .map(|r| (r.count(), r.buf_size())))
    }

    /// Registers files for [`Target::Fixed`] (`IORING_REGISTER_FILES`, 5.1+), replacing
    /// any earlier registration. The proactor keeps its own references (the kernel's, or
    /// `dup`s when emulated), so the caller may close its descriptors. Before the first
    /// poll or on the poll thread, with no fixed-file operation pending.
    pub fn register_files(&self, fds: &[BorrowedFd<'_>]) -> Result<()> {
        on_engine!(&self.engine, |s| s.register_files(fds))
    }

    /// Whether the proactor was created with the given handle's state (same engine).
    pub fn same_as(&self, other: &Proactor) -> bool {
        match (&self.engine, &other.engine) {
            (Engine::Uring(a), Engine::Uring(b)) => Arc::ptr_eq(a, b),
            (Engine::Epoll(a), Engine::Epoll(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

fn kind_of<D: Driver>(_: &Shared<D>) -> BackendKind {
    D::KIND
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn handles_cross_threads() {
        send_sync::<Proactor>();
        send_sync::<Event>();
        send_sync::<Notification>();
        send_sync::<Error>();
        send::<OpFuture>();
        send::<Operation>();
        send::<Completion>();
        send::<FixedBuf>();
        send::<SubmitError>();
    }
}
