//! Timeline semaphores: a 64-bit value that only grows, or a failure that ends it.
//!
//! # Threading
//! Every method is thread-safe. [`Semaphore::signal`] and [`Semaphore::fail`] never
//! block on a proactor: they update the value under the semaphore's own lock, wake
//! thread waiters (a futex), then complete proactor waits outside that lock (each
//! completion takes its proactor's core lock for a moment).
//!
//! # Waiting
//! - a thread: [`Semaphore::wait`] blocks until `value ≥ n`, failure, or the timeout;
//! - a proactor operation: [`Operation::semaphore_wait`](super::Operation::semaphore_wait),
//!   [`semaphore_wait_all`](super::Operation::semaphore_wait_all) and
//!   [`semaphore_wait_any`](super::Operation::semaphore_wait_any), delivered raw or as
//!   an [`OpFuture`](super::OpFuture) through `submit_future`; these run in user space
//!   on every backend (the kernel has no 64-bit futex);
//! - a pollable descriptor: [`Semaphore::export_fd`] (a device-fence export).
//!
//! # Failure
//! [`Semaphore::fail`] delivers the error to every current waiter (thread, operation,
//! descriptor) and to every later one: operations complete with `Outcome::Err` carrying
//! the errno given to `fail`, exported descriptors become readable.
//!
//! # Cancellation and ownership
//! A wait operation owns clones of its semaphores (handed back in the completion); a
//! cancelled one unsubscribes, so a semaphore keeps no trace of it. A semaphore lives
//! as long as any clone, operation or exported descriptor's registration refers to it.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::op::{OpCode, OpError, Outcome};
use super::sync::{lock, SoftWaiter, Subscriber};
use super::sys;

/// What a semaphore's waiter list holds.
enum Waiter {
    /// A proactor operation (user-space wait).
    Op { at: u64, sub: Subscriber },
    /// An exported descriptor (an eventfd made readable when the value is reached).
    Fd { at: u64, fd: OwnedFd },
}

impl Waiter {
    fn at(&self) -> u64 {
        match self {
            Waiter::Op { at, .. } | Waiter::Fd { at, .. } => *at,
        }
    }
}

struct Waiters {
    list: Vec<Waiter>,
    /// Kept between signals so that signalling does not allocate.
    spare: Vec<Waiter>,
}

pub(crate) struct SemInner {
    /// The value. Written only under `waiters` (so a subscription sees either the old
    /// value and is then found by the signal, or the new one); read anywhere (Acquire
    /// pairs with the Release store, so what the signaller wrote before is visible).
    value: AtomicU64,
    /// 0, or the errno the semaphore failed with (written under `waiters`).
    failure: AtomicI32,
    /// Futex word for thread waiters: bumped on every change.
    epoch: AtomicU32,
    waiters: Mutex<Waiters>,
}

/// A timeline semaphore: a 64-bit value that only grows, waited for as `value ≥ n`
/// by threads, proactor operations and futures, or a failure delivered to every
/// waiter. Cloning shares it. See the module docs for threading and ownership.
#[derive(Clone)]
pub struct Semaphore(pub(crate) Arc<SemInner>);

impl std::fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.value())
            .field("failure", &self.failure())
            .finish()
    }
}

fn failed(op: OpCode, errno: i32) -> Outcome {
    Outcome::Err(OpError { op, errno })
}

impl Semaphore {
    /// A semaphore at `initial`.
    pub fn new(initial: u64) -> Semaphore {
        Semaphore(Arc::new(SemInner {
            value: AtomicU64::new(initial),
            failure: AtomicI32::new(0),
            epoch: AtomicU32::new(0),
            waiters: Mutex::new(Waiters {
                list: Vec::new(),
                spare: Vec::new(),
            }),
        }))
    }

    /// The current value (a snapshot).
    pub fn value(&self) -> u64 {
        self.0.value.load(Ordering::Acquire)
    }

    /// The errno it failed with, if it failed.
    pub fn failure(&self) -> Option<i32> {
        match self.0.failure.load(Ordering::Acquire) {
            0 => None,
            e => Some(e),
        }
    }

    /// Raises the value to `value` and completes every wait it satisfies. Thread-safe.
    /// Errors: `InvalidArgument` when `value` is not above the current value, `Op`
    /// (with the failure's errno) when the semaphore failed.
    pub fn signal(&self, value: u64) -> Result<()> {
        let mut ready = {
            let mut w = lock(&self.0.waiters);
            if let Some(errno) = self.failure() {
                return Err(Error::Op {
                    op: "semaphore signal",
                    errno,
                });
            }
            if value <= self.0.value.load(Ordering::Relaxed) {
                return Err(Error::InvalidArgument(
                    "a semaphore is signalled to a value above its current one",
                ));
            }
            // Release: a waiter that sees the value sees what was written before.
            self.0.value.store(value, Ordering::Release);
            let mut ready = std::mem::take(&mut w.spare);
            let mut i = 0;
            while i < w.list.len() {
                if w.list[i].at() <= value {
                    ready.push(w.list.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            ready
        };
        self.wake_threads();
        notify(&mut ready);
        let mut w = lock(&self.0.waiters);
        if w.spare.capacity() < ready.capacity() {
            w.spare = ready;
        }
        Ok(())
    }

    /// Fails the semaphore with `errno` (`EIO` if 0 or negative is given): every
    /// current and future wait completes with that error. The first failure wins;
    /// returns whether this call set it. Thread-safe.
    pub fn fail(&self, errno: i32) -> bool {
        let errno = if errno > 0 { errno } else { libc::EIO };
        let mut all = {
            let mut w = lock(&self.0.waiters);
            if self.failure().is_some() {
                return false;
            }
            self.0.failure.store(errno, Ordering::Release);
            std::mem::take(&mut w.list)
        };
        self.wake_threads();
        notify(&mut all);
        true
    }

    fn wake_threads(&self) {
        self.0.epoch.fetch_add(1, Ordering::Release);
        sys::futex_wake_all(&self.0.epoch);
    }

    /// Blocks the calling thread until `value ≥ n` (`Ok(true)`), the timeout passes
    /// (`Ok(false)`), or the semaphore fails (`Err(Op)` with its errno).
    pub fn wait(&self, n: u64, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            // Acquire pairs with the Release bump in `wake_threads`.
            let token = self.0.epoch.load(Ordering::Acquire);
            match self.status(n) {
                Some(Outcome::Ok(_)) => return Ok(true),
                Some(Outcome::Err(e)) => return Err(e.into()),
                _ => {}
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(l) if !l.is_zero() => Some(l),
                    _ => return Ok(false),
                },
                None => None,
            };
            sys::futex_wait(&self.0.epoch, token, left);
        }
    }

    /// Whether a wait for `n` is over: `Ok(0)` reached, `Err` failed, `None` not yet.
    pub(crate) fn status(&self, n: u64) -> Option<Outcome> {
        if self.value() >= n {
            return Some(Outcome::Ok(0));
        }
        self.failure().map(|e| failed(OpCode::SemaphoreWait, e))
    }

    /// A pollable descriptor (an eventfd) that becomes readable once `value ≥ n` or
    /// the semaphore fails (check [`failure`](Self::failure) then): a device-fence
    /// export, made readable by whichever thread signals. The caller owns it.
    pub fn export_fd(&self, n: u64) -> Result<OwnedFd> {
        let fd = sys::eventfd().map_err(|e| Error::sys("eventfd", e))?;
        let mine = sys::dup(fd.as_fd()).map_err(|e| Error::sys("dup", e))?;
        {
            let mut w = lock(&self.0.waiters);
            if self.status(n).is_none() {
                w.list.push(Waiter::Fd { at: n, fd: mine });
                return Ok(fd);
            }
        }
        sys::eventfd_signal(fd.as_fd()).map_err(|e| Error::sys("eventfd write", e))?;
        Ok(fd)
    }

    /// Registers a proactor wait for `n`; false (nothing registered) when the wait is
    /// already over.
    pub(crate) fn subscribe(&self, n: u64, sub: Subscriber) -> bool {
        let mut w = lock(&self.0.waiters);
        // Checked under the lock: a signal either already stored its value (seen
        // here) or has not yet scanned the list (it will find this entry).
        if self.status(n).is_some() {
            return false;
        }
        w.list.push(Waiter::Op { at: n, sub });
        true
    }

    pub(crate) fn unsubscribe(&self, key: u64, proactor: &Weak<dyn SoftWaiter>) {
        lock(&self.0.waiters).list.retain(|w| match w {
            Waiter::Op { sub, .. } => !(sub.key == key && sub.proactor.ptr_eq(proactor)),
            Waiter::Fd { .. } => true,
        });
    }

    /// Waiters registered now (operations and exported descriptors; a test hook).
    pub fn waiter_count(&self) -> usize {
        lock(&self.0.waiters).list.len()
    }
}

/// Completes the waits in `ready` (no lock held), leaving it empty.
fn notify(ready: &mut Vec<Waiter>) {
    for w in ready.drain(..) {
        match w {
            Waiter::Op { sub, .. } => {
                if let Some(p) = sub.proactor.upgrade() {
                    p.soft_complete(sub.key);
                }
            }
            Waiter::Fd { fd, .. } => {
                // A full counter is still readable; nothing else can fail here.
                let _ = sys::eventfd_signal(fd.as_fd());
            }
        }
    }
}
