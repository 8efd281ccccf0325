//! How a lane waits between polls (PROTOCOL.md §6): a backend-provided idle wait. The protocol's waits are
//! polls with a bounded budget; between two polls a lane calls [`pause`]. Without a wait installed that is
//! [`backoff`] (spin, yield, sleep), the step a GPU lane takes with `__nanosleep` / `s_sleep`. A device whose
//! lanes are OS threads (the CPU reference device) may install an [`IdleWait`] on a lane's thread that blocks
//! in the kernel until a completion is likely instead of sleeping a fixed interval.
//!
//! The contract keeps every wait bounded and no lane dependent on another: an [`IdleWait::pause`] returns
//! within a bounded time whatever other lanes do (the lane then polls again itself), and a wait that is
//! never woken behaves like a sleep. The protocol's side is two calls: [`epoch`] before a poll (a snapshot
//! the wait compares against, so a completion reaped between the poll and the wait is not slept through) and
//! [`notify`] after a reap pass that moved CQEs into slots (other lanes parked on them may go on). Neither
//! touches ring memory; GPU code has no counterpart to them.

use std::cell::RefCell;
use std::sync::Arc;

use super::lane::backoff;

/// A backend's wait between a lane's polls (see the module docs for the contract).
pub trait IdleWait: Send + Sync {
    /// The wake-up epoch now: read before the poll whose failure leads to [`IdleWait::pause`].
    fn epoch(&self) -> u32;
    /// Waits after the `polls`-th failed poll of one wait, for at most a bounded time, or less once the epoch
    /// is no longer `epoch`.
    fn pause(&self, polls: u32, epoch: u32);
    /// A reap pass moved `reaped` completions into slots: lanes parked since an earlier [`IdleWait::epoch`]
    /// may continue.
    fn notify(&self, reaped: u32);
}

thread_local! {
    /// This thread's installed wait, if its device installed one.
    static WAIT: RefCell<Option<Arc<dyn IdleWait>>> = const { RefCell::new(None) };
}

/// Runs `f` with `wait` as this thread's idle wait (the previous one is restored afterwards, also when `f`
/// unwinds).
pub fn with_idle_wait<R>(wait: Arc<dyn IdleWait>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<dyn IdleWait>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            WAIT.with(|w| *w.borrow_mut() = prev);
        }
    }
    let prev = WAIT.with(|w| w.borrow_mut().replace(wait));
    let _restore = Restore(prev);
    f()
}

/// Whether this thread has an idle wait installed.
pub fn installed() -> bool {
    WAIT.with(|w| w.borrow().is_some())
}

/// The installed wait's epoch (0 without one).
#[inline]
pub fn epoch() -> u32 {
    WAIT.with(|w| w.borrow().as_ref().map_or(0, |w| w.epoch()))
}

/// Waits after the `polls`-th failed poll: the installed wait, or [`backoff`].
#[inline]
pub fn pause(polls: u32, epoch: u32) {
    WAIT.with(|w| match w.borrow().as_ref() {
        Some(w) => w.pause(polls, epoch),
        None => backoff(polls),
    })
}

/// Tells the installed wait (if any) that a reap pass moved `reaped` completions into slots.
#[inline]
pub fn notify(reaped: u32) {
    WAIT.with(|w| {
        if let Some(w) = w.borrow().as_ref() {
            w.notify(reaped);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

    #[derive(Default)]
    struct Count {
        pauses: AtomicU32,
        notifies: AtomicU32,
    }

    impl IdleWait for Count {
        fn epoch(&self) -> u32 {
            7
        }
        fn pause(&self, _: u32, epoch: u32) {
            assert_eq!(epoch, 7);
            self.pauses.fetch_add(1, Relaxed);
        }
        fn notify(&self, _: u32) {
            self.notifies.fetch_add(1, Relaxed);
        }
    }

    #[test]
    fn an_installed_wait_is_used_on_its_thread_only_and_removed_after() {
        let c = Arc::new(Count::default());
        assert!(!installed());
        with_idle_wait(c.clone(), || {
            assert!(installed());
            let e = epoch();
            pause(1000, e);
            notify(1);
            std::thread::spawn(|| {
                assert!(!installed(), "another thread has none");
                pause(0, epoch());
            })
            .join()
            .unwrap();
        });
        assert!(!installed());
        assert_eq!(epoch(), 0);
        pause(0, 0);
        notify(1);
        assert_eq!((c.pauses.load(Relaxed), c.notifies.load(Relaxed)), (1, 1));
    }
}
