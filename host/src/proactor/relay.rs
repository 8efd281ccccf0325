//! Relays: when a source fires, signal a sink — without a callback of the caller's.
//!
//! Sources: a descriptor becoming readable, an [`Event`] being set (the relay resets
//! it), a [`Notification`] epoch moving, a [`Semaphore`] reaching a value. Sinks: set
//! an `Event`, signal a `Notification`, raise a `Semaphore`.
//!
//! # Native and emulated
//! A one-shot relay from a descriptor or an event to an event is one kernel-linked
//! sequence where [`Capability::LinkedOperations`]
//! is native: `POLL_ADD` linked to a `WRITE` of the sink eventfd — no user-space
//! round trip ([`Relay::is_native`]). Everything else is emulated: the proactor
//! waits for the source (poll, notification or semaphore wait) and signals the sink
//! from its `poll`, on the poll thread. Semaphore values are 64-bit, so no futex
//! (32-bit) can stand for them: semaphore sources and sinks are always emulated;
//! a notification sink needs its epoch advanced, which no io_uring operation does,
//! so it is emulated too.
//!
//! # Persistent relays
//! A persistent relay re-arms after each firing until unregistered: a descriptor
//! source fires again while the descriptor stays readable (level-triggered; the
//! relay does not read it), an event source is reset before the sink is signalled,
//! a notification source fires once per epoch change seen (changes between two
//! firings coalesce), a semaphore source fires each time the value grew. A
//! semaphore sink is raised to the next value each time (its configured value
//! first, then one above the current value).
//!
//! # Threading, cancellation, ownership
//! Register from any thread (a submission). [`Relay::unregister`] (or dropping the
//! handle) cancels the pending wait; the sink is not signalled after it returns
//! except by a kernel-linked write already under way. A failure (the source
//! descriptor is invalid, the sink semaphore failed) faults the relay: it stops and
//! [`Relay::error`] tells the errno. The relay owns clones of its event,
//! notification and semaphore handles; a source descriptor is the caller's and must
//! stay open until the relay is unregistered. No strong reference to the proactor
//! is kept.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::caps::Capability;
use super::error::{Error, Result};
use super::op::{OpId, Outcome};
use super::operation::Operation;
use super::ops::event_signal::EventSignal;
use super::ops::notification_wait::NotificationWait;
use super::ops::poll_source::PollSource;
use super::ops::semaphore_wait::{SemaphoreWait, Waits};
use super::ops::OpKind;
use super::semaphore::Semaphore;
use super::service::Route;
use super::sync::{lock, Event, Notification};
use super::{Proactor, WeakProactor};

/// What a relay waits for.
#[derive(Debug, Clone)]
pub enum RelaySource {
    /// The descriptor becomes readable (the caller keeps it open).
    Fd(RawFd),
    /// The event is set (the relay resets it when it fires).
    Event(Event),
    /// The notification's epoch moves past its value at registration.
    Notification(Notification),
    /// The semaphore reaches the value.
    Semaphore(Semaphore, u64),
}

/// What a relay signals.
#[derive(Debug, Clone)]
pub enum RelaySink {
    /// Sets the event.
    Event(Event),
    /// Signals the notification.
    Notification(Notification),
    /// Raises the semaphore to the value (see the module docs for persistent relays).
    Semaphore(Semaphore, u64),
}

/// Which operation of a relay completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Source,
    /// The kernel-linked sink write of a native relay.
    Sink,
}

pub(crate) struct RelayInner {
    proactor: WeakProactor,
    source: RelaySource,
    sink: RelaySink,
    persistent: bool,
    native: bool,
    closed: AtomicBool,
    fired: AtomicU64,
    error: AtomicI32,
    /// The wait now pending (the front of a native sequence).
    id: Mutex<OpId>,
    /// Notification source: the epoch it waits to move past.
    token: AtomicU32,
    /// Semaphore source: the value it waits for.
    threshold: AtomicU64,
}

/// A registered relay; unregistered by [`unregister`](Self::unregister) or when
/// dropped. See the module docs.
pub struct Relay {
    inner: Arc<RelayInner>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("source", &self.inner.source)
            .field("sink", &self.inner.sink)
            .field("persistent", &self.inner.persistent)
            .field("native", &self.inner.native)
            .field("fired", &self.fired())
            .finish()
    }
}

fn fd_of(source: &RelaySource) -> Option<RawFd> {
    match source {
        RelaySource::Fd(fd) => Some(*fd),
        RelaySource::Event(e) => Some(e.as_raw_fd()),
        _ => None,
    }
}

impl RelayInner {
    fn arm(self: &Arc<Self>, p: &Proactor) -> Result<()> {
        let route = Route::Relay(self.clone(), Role::Source);
        let wait = match &self.source {
            RelaySource::Fd(_) | RelaySource::Event(_) => {
                let fd = fd_of(&self.source).unwrap_or(-1);
                OpKind::PollSource(PollSource::new(fd, libc::POLLIN as u32, false, route))
            }
            RelaySource::Notification(n) => OpKind::NotificationWait(NotificationWait {
                n: n.clone(),
                token: self.token.load(Ordering::SeqCst),
                route: Some(route),
            }),
            RelaySource::Semaphore(s, _) => OpKind::SemaphoreWait(SemaphoreWait {
                waits: Waits::One(s.clone(), self.threshold.load(Ordering::SeqCst)),
                route: Some(route),
            }),
        };
        let id = match (&self.sink, self.native) {
            (RelaySink::Event(e), true) => {
                let write = OpKind::EventSignal(EventSignal {
                    event: e.clone(),
                    one: 1,
                    route: Some(Route::Relay(self.clone(), Role::Sink)),
                });
                let mut ops = vec![Operation::internal(wait), Operation::internal(write)];
                let mut ids = Vec::with_capacity(2);
                p.submit_linked(&mut ops, &mut ids)?;
                ids.first().copied().unwrap_or_default()
            }
            _ => p.submit(Operation::internal(wait)).map_err(|e| e.error)?,
        };
        *lock(&self.id) = id;
        if self.closed.load(Ordering::SeqCst) {
            p.cancel(id);
        }
        Ok(())
    }

    fn fault(&self, errno: i32) {
        self.error.store(errno, Ordering::SeqCst);
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Signals the sink (emulated relays, poll thread).
    fn signal_sink(&self) -> Result<()> {
        match &self.sink {
            RelaySink::Event(e) => e.set(),
            RelaySink::Notification(n) => {
                n.signal();
                Ok(())
            }
            RelaySink::Semaphore(s, v) => {
                let first = self.fired.load(Ordering::SeqCst) <= 1;
                let to = if first {
                    (*v).max(s.value().saturating_add(1))
                } else {
                    s.value().saturating_add(1)
                };
                s.signal(to)
            }
        }
    }

    /// A completion of the relay's wait or of its kernel-linked sink (poll thread).
    pub(crate) fn on_completion(self: &Arc<Self>, role: Role, outcome: Outcome, _more: bool) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        match (role, outcome) {
            (_, Outcome::Cancelled) => {}
            (_, Outcome::Err(e)) => self.fault(e.errno),
            (Role::Sink, Outcome::Ok(_)) => {}
            (Role::Source, Outcome::Ok(_)) => {
                self.fired.fetch_add(1, Ordering::SeqCst);
                match &self.source {
                    RelaySource::Event(e) => {
                        let _ = e.reset();
                    }
                    RelaySource::Notification(n) => self.token.store(n.epoch(), Ordering::SeqCst),
                    RelaySource::Semaphore(s, _) => self
                        .threshold
                        .store(s.value().saturating_add(1), Ordering::SeqCst),
                    RelaySource::Fd(_) => {}
                }
                if !self.native {
                    if let Err(e) = self.signal_sink() {
                        self.fault(e.errno().unwrap_or(libc::EINVAL));
                        return;
                    }
                }
                if self.persistent && !self.closed.load(Ordering::SeqCst) {
                    if let Some(p) = self.proactor.upgrade() {
                        if let Err(e) = self.arm(&p) {
                            self.fault(e.errno().unwrap_or(libc::EAGAIN));
                        }
                    }
                }
            }
        }
    }
}

impl Relay {
    /// Stops the relay (see the module docs).
    pub fn unregister(&self) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(p) = self.inner.proactor.upgrade() {
            p.cancel(*lock(&self.inner.id));
        }
    }

    /// How many times the source fired.
    pub fn fired(&self) -> u64 {
        self.inner.fired.load(Ordering::SeqCst)
    }

    /// The errno that faulted the relay, if one did.
    pub fn error(&self) -> Option<i32> {
        match self.inner.error.load(Ordering::SeqCst) {
            0 => None,
            e => Some(e),
        }
    }

    /// Whether the kernel carries the relay from source to sink (a kernel-linked
    /// sequence) rather than the proactor's `poll`.
    pub fn is_native(&self) -> bool {
        self.inner.native
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.unregister();
    }
}

impl Proactor {
    /// Relays `source` to `sink`, once or (`persistent`) until unregistered.
    /// Thread-safe. See the [`relay` docs](self) for what is native, threading,
    /// cancellation and ownership. `InvalidArgument` for a negative descriptor.
    pub fn relay(&self, source: RelaySource, sink: RelaySink, persistent: bool) -> Result<Relay> {
        if matches!(source, RelaySource::Fd(fd) if fd < 0) {
            return Err(Error::InvalidArgument(
                "relay source descriptor is negative",
            ));
        }
        let native = !persistent
            && fd_of(&source).is_some()
            && matches!(sink, RelaySink::Event(_))
            && self.capabilities().is_native(Capability::LinkedOperations);
        let (token, threshold) = match &source {
            RelaySource::Notification(n) => (n.epoch(), 0),
            RelaySource::Semaphore(_, v) => (0, *v),
            _ => (0, 0),
        };
        let inner = Arc::new(RelayInner {
            proactor: self.downgrade(),
            source,
            sink,
            persistent,
            native,
            closed: AtomicBool::new(false),
            fired: AtomicU64::new(0),
            error: AtomicI32::new(0),
            id: Mutex::new(OpId::default()),
            token: AtomicU32::new(token),
            threshold: AtomicU64::new(threshold),
        });
        inner.arm(self)?;
        Ok(Relay { inner })
    }
}
