//! Lane wake-ups for devices whose lanes are OS threads: a host-memory word (never in the arena, never seen by
//! device code) that the pump thread bumps after it completes requests, and that such lanes may park on
//! between polls instead of sleeping a fixed interval (the CPU reference device installs that wait,
//! [`crate::protocol::idle`]).
//!
//! The pump pays for it only while a lane is parked: a completion pass with no parked lane costs one
//! uncontended increment and one load, and no system call.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use rustix::thread::futex;

/// The pump's wake-up word and its parked-lane count.
#[derive(Debug, Default)]
pub struct LaneWake {
    /// Bumped after every pump loop pass that completed requests; the futex word lanes park on.
    epoch: AtomicU32,
    /// Lanes parked on `epoch` (or about to be).
    parked: AtomicU32,
}

impl LaneWake {
    /// The epoch now: a lane reads it before the poll whose failure leads to [`LaneWake::park`].
    pub fn epoch(&self) -> u32 {
        // SeqCst: see `park`.
        self.epoch.load(SeqCst)
    }

    /// Parks the calling thread while the epoch is still `epoch`, for at most `timeout` (plus the timer's
    /// slack). Returns early on a wake-up, a signal, or an epoch that has already moved.
    pub fn park(&self, epoch: u32, timeout: Duration) {
        // SeqCst on `parked` and `epoch` here and in `notify`: either the pump sees this lane parked and wakes
        // it, or this lane's futex wait sees the new epoch and returns at once.
        self.parked.fetch_add(1, SeqCst);
        let ts = rustix::time::Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        // EAGAIN (the epoch moved), ETIMEDOUT and EINTR all end the wait: the lane polls again.
        let _ = futex::wait(&self.epoch, futex::Flags::PRIVATE, epoch, Some(&ts));
        self.parked.fetch_sub(1, SeqCst);
    }

    /// The pump completed `n` requests (their completion sequences are stored): parked lanes may go on. Wakes
    /// at most `n` parked lanes (a lane woken without its completion parks again, its wait still bounded).
    pub(super) fn notify(&self, n: u32) {
        // SeqCst: after the release stores of the completions, so a lane that reads the new epoch sees them.
        self.epoch.fetch_add(1, SeqCst);
        if self.parked.load(SeqCst) > 0 {
            let _ = futex::wake(&self.epoch, futex::Flags::PRIVATE, n.min(i32::MAX as u32));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_parked_lane_returns_at_its_timeout_when_nothing_completes() {
        let w = LaneWake::default();
        let t = Instant::now();
        w.park(w.epoch(), Duration::from_millis(20));
        let el = t.elapsed();
        assert!(el >= Duration::from_millis(20), "{el:?}");
        assert!(el < Duration::from_secs(5), "{el:?}");
    }

    #[test]
    fn a_moved_epoch_does_not_park_and_notify_wakes_a_parked_lane() {
        let w = Arc::new(LaneWake::default());
        let e = w.epoch();
        w.notify(1);
        let t = Instant::now();
        w.park(e, Duration::from_secs(10));
        assert!(t.elapsed() < Duration::from_secs(5));

        let e = w.epoch();
        let w2 = w.clone();
        let h = std::thread::spawn(move || {
            let t = Instant::now();
            w2.park(e, Duration::from_secs(30));
            t.elapsed()
        });
        while w.parked.load(SeqCst) == 0 {
            std::thread::yield_now();
        }
        w.notify(1);
        assert!(h.join().unwrap() < Duration::from_secs(20));
    }
}
