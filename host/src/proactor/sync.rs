//! Cross-thread signalling objects the proactor can wait on: [`Event`] (an eventfd)
//! and [`Notification`] (an epoch counter).

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::sys;

/// A manual-reset event backed by an `eventfd(2)`.
///
/// [`set`](Event::set) may be called from any thread (or by anything holding the
/// descriptor). A wait operation ([`Operation::event_wait`](super::Operation::event_wait))
/// completes once the event is set and does not consume it; [`reset`](Event::reset)
/// clears it. Cloning shares the same descriptor.
#[derive(Clone, Debug)]
pub struct Event(pub(crate) Arc<OwnedFd>);

impl Event {
    /// Creates an unset event.
    pub fn new() -> Result<Event> {
        Ok(Event(Arc::new(
            sys::eventfd().map_err(|e| Error::sys("eventfd", e))?,
        )))
    }
    /// Sets the event; waits in progress complete. Thread-safe.
    pub fn set(&self) -> Result<()> {
        sys::eventfd_signal(self.0.as_fd()).map_err(|e| Error::sys("eventfd write", e))
    }
    /// Clears the event. Returns whether it was set.
    pub fn reset(&self) -> Result<bool> {
        Ok(sys::eventfd_drain(self.0.as_fd()).map_err(|e| Error::sys("eventfd read", e))? != 0)
    }
    /// Whether the event is set right now.
    pub fn is_set(&self) -> Result<bool> {
        sys::is_readable(self.0.as_fd()).map_err(|e| Error::sys("poll", e))
    }
    /// Number of handles sharing this event (including operations in flight).
    pub fn handle_count(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

impl AsRawFd for Event {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A proactor that runs notification waits in user space (emulated path).
pub(crate) trait SoftWaiter: Send + Sync {
    /// The wait with this key may complete (the epoch moved).
    fn soft_complete(&self, key: u64);
}

/// A waiting proactor operation registered on a notification (emulated path).
pub(crate) struct Subscriber {
    pub(crate) proactor: Weak<dyn SoftWaiter>,
    pub(crate) key: u64,
}

pub(crate) struct NotificationInner {
    /// The epoch. 32 bits so the kernel can futex-wait on it directly. Signal is a
    /// `fetch_add` with Release so a waiter that observes the new epoch (Acquire) also
    /// observes what the signaller wrote before signalling.
    pub(crate) epoch: AtomicU32,
    subscribers: Mutex<Vec<Subscriber>>,
}

/// An epoch-based notification: [`signal`](Notification::signal) advances the epoch
/// and wakes everything waiting for it to move past a token.
///
/// Take a token with [`epoch`](Notification::epoch), check your condition, then wait
/// with the token: a signal between the two is never lost, because the wait completes
/// at once when the epoch already differs from the token. Waits can be thread-blocking
/// ([`wait`](Notification::wait), a futex) or proactor operations
/// ([`Operation::notification_wait`](super::Operation::notification_wait)), from any thread.
/// The epoch is 32 bits (so the kernel can futex-wait on it): a wait whose token is
/// exactly 2^32 signals old sees no change.
#[derive(Clone)]
pub struct Notification(pub(crate) Arc<NotificationInner>);

impl std::fmt::Debug for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notification")
            .field("epoch", &self.epoch())
            .finish()
    }
}

impl Default for Notification {
    fn default() -> Self {
        Self::new()
    }
}

impl Notification {
    /// Creates a notification at epoch 0.
    pub fn new() -> Notification {
        Notification(Arc::new(NotificationInner {
            epoch: AtomicU32::new(0),
            subscribers: Mutex::new(Vec::new()),
        }))
    }

    /// The current epoch, to use as a wait token.
    pub fn epoch(&self) -> u32 {
        // Acquire pairs with the Release in `signal`.
        self.0.epoch.load(Ordering::Acquire)
    }

    /// Advances the epoch and wakes all waiters (threads and proactor operations).
    /// Thread-safe; never blocks on a proactor.
    pub fn signal(&self) {
        self.0.epoch.fetch_add(1, Ordering::Release);
        sys::futex_wake_all(&self.0.epoch);
        // Take the list out so that completing subscribers (which locks their proactor)
        // never happens under our lock: a proactor registers subscribers while holding
        // its own lock, so holding both here could deadlock.
        let mut subs = std::mem::take(&mut *lock(&self.0.subscribers));
        for s in subs.drain(..) {
            if let Some(p) = s.proactor.upgrade() {
                p.soft_complete(s.key);
            }
        }
        // Give the (empty) allocation back so steady-state signalling does not allocate.
        let mut cur = lock(&self.0.subscribers);
        if cur.is_empty() {
            *cur = subs;
        }
    }

    /// Blocks the calling thread until the epoch differs from `token` or `timeout`
    /// passes. Returns whether the epoch moved.
    pub fn wait(&self, token: u32, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if self.epoch() != token {
                return true;
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(l) if !l.is_zero() => Some(l),
                    _ => return self.epoch() != token,
                },
                None => None,
            };
            sys::futex_wait(&self.0.epoch, token, left);
        }
    }

    /// Registers a proactor wait; returns false (nothing registered) when the epoch has
    /// already moved past `token`.
    pub(crate) fn subscribe(&self, token: u32, sub: Subscriber) -> bool {
        let mut subs = lock(&self.0.subscribers);
        // Checked under the lock: a signal either already advanced the epoch (we see it)
        // or has not yet taken the list (it will find our entry).
        if self.epoch() != token {
            return false;
        }
        subs.push(sub);
        true
    }

    pub(crate) fn unsubscribe(&self, key: u64, proactor: &Weak<dyn SoftWaiter>) {
        lock(&self.0.subscribers).retain(|s| !(s.key == key && s.proactor.ptr_eq(proactor)));
    }

    /// Number of handles sharing this notification (including operations in flight).
    pub fn handle_count(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
