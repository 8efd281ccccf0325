//! Event sources: a descriptor watched for readiness, with a callback run from `poll`
//! each time it is ready, until unregistered.
//!
//! Natively an `IORING_OP_POLL_ADD` with `IORING_POLL_ADD_MULTI` ([`Capability::Multishot`](super::Capability::Multishot));
//! emulated, a single-shot poll re-armed after each event (io_uring) or an epoll
//! readiness registration. The callback should consume what made the descriptor
//! ready (read the eventfd, drain the socket): where emulated, readiness is level-
//! triggered and a descriptor left ready fires again at the next `poll`; natively the
//! kernel reports new wake-ups. A kernel that ends the multishot poll is re-armed.
//!
//! # Threading
//! Register from any thread (it is a submission). The callback runs on the poll
//! thread inside `poll`, with no proactor lock held: it may submit, cancel, register
//! and unregister (also itself). [`EventSource::unregister`] (or dropping the handle)
//! from another thread waits for a callback that is running to return; after it
//! returns the callback never runs again.
//!
//! # Ownership and cancellation
//! The descriptor is not owned: keep it open until `unregister` returned (the kernel
//! holds its own reference while its poll is pending, and the epoll registration is
//! removed by `unregister`). Unregistering cancels the poll; its last completion is
//! absorbed by the proactor. The source holds no strong reference to the proactor.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::error::Result;
use super::op::{OpError, OpId, Outcome};
use super::operation::Operation;
use super::ops::{poll_source::PollSource, OpKind};
use super::service::Route;
use super::sync::lock;
use super::{Proactor, WeakProactor};

/// Readiness to watch for (poll bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest(pub(crate) u32);

impl Interest {
    /// Readable (`POLLIN`).
    pub const READABLE: Interest = Interest(libc::POLLIN as u32);
    /// Writable (`POLLOUT`).
    pub const WRITABLE: Interest = Interest(libc::POLLOUT as u32);
    /// Both.
    pub const BOTH: Interest = Interest((libc::POLLIN | libc::POLLOUT) as u32);
}

type Callback = Box<dyn FnMut(std::result::Result<u32, OpError>) + Send>;

pub(crate) struct SourceInner {
    proactor: WeakProactor,
    fd: RawFd,
    events: u32,
    closed: AtomicBool,
    /// The poll operation now pending.
    id: Mutex<OpId>,
    callback: Mutex<Callback>,
    fired: AtomicU64,
}

/// A registered event source; unregistered by [`unregister`](Self::unregister) or
/// when dropped. See the module docs.
pub struct EventSource {
    inner: Arc<SourceInner>,
}

impl std::fmt::Debug for EventSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSource")
            .field("fd", &self.inner.fd)
            .field("fired", &self.fired())
            .finish()
    }
}

impl SourceInner {
    fn arm(self: &Arc<Self>, p: &Proactor) -> Result<()> {
        let op = PollSource::new(self.fd, self.events, true, Route::Source(self.clone()));
        let id = p
            .submit(Operation::internal(OpKind::PollSource(op)))
            .map_err(|e| e.error)?;
        *lock(&self.id) = id;
        // Unregistered meanwhile (another thread): cancel what was just armed.
        if self.closed.load(Ordering::SeqCst) {
            p.cancel(id);
        }
        Ok(())
    }

    /// A completion of the poll (poll thread).
    pub(crate) fn on_event(self: &Arc<Self>, outcome: Outcome, more: bool) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let r = match outcome {
            Outcome::Ok(mask) => Ok(mask),
            Outcome::Err(e) => Err(e),
            // Teardown (or a cancel not made by `unregister`): nothing to report.
            Outcome::Cancelled => return,
        };
        {
            let mut cb = lock(&self.callback);
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            self.fired.fetch_add(1, Ordering::Relaxed);
            cb(r);
        }
        // The kernel ended a multishot poll after an event: watch again.
        if r.is_ok() && !more && !self.closed.load(Ordering::SeqCst) {
            if let Some(p) = self.proactor.upgrade() {
                if let Err(e) = self.arm(&p) {
                    self.closed.store(true, Ordering::SeqCst);
                    log::warn!("event source on fd {} could not re-arm: {e}", self.fd);
                }
            }
        }
    }
}

impl EventSource {
    /// Stops the source: the callback does not run after this returns (see the module
    /// docs for calls from another thread and from the callback itself).
    pub fn unregister(&self) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let p = self.inner.proactor.upgrade();
        if let Some(p) = &p {
            p.cancel(*lock(&self.inner.id));
        }
        // Wait out a callback running on the poll thread (not when we are it).
        if !p.as_ref().is_some_and(Proactor::on_poll_thread) {
            drop(lock(&self.inner.callback));
        }
    }

    /// How many times the callback ran.
    pub fn fired(&self) -> u64 {
        self.inner.fired.load(Ordering::Relaxed)
    }
}

impl Drop for EventSource {
    fn drop(&mut self) {
        self.unregister();
    }
}

impl Proactor {
    /// Watches `fd` for `interest` and runs `callback` from `poll` each time it is
    /// ready (`Ok(revents)`), or once with the error that ends the source (an
    /// invalid descriptor: `EBADF`; on epoll a descriptor it cannot watch, e.g. a
    /// regular file: `ENOTSOCK`). Thread-safe. See the module docs of
    /// [`EventSource`] for threading, cancellation and ownership.
    pub fn register_event_source(
        &self,
        fd: &impl AsRawFd,
        interest: Interest,
        callback: impl FnMut(std::result::Result<u32, OpError>) + Send + 'static,
    ) -> Result<EventSource> {
        let inner = Arc::new(SourceInner {
            proactor: self.downgrade(),
            fd: fd.as_raw_fd(),
            events: interest.0,
            closed: AtomicBool::new(false),
            id: Mutex::new(OpId::default()),
            callback: Mutex::new(Box::new(callback)),
            fired: AtomicU64::new(0),
        });
        inner.arm(self)?;
        Ok(EventSource { inner })
    }
}
