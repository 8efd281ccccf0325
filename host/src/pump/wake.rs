//! Wake-ups between the pump thread and devices whose lanes are OS threads, in host memory only (never in the
//! arena, never seen by device code):
//!
//! - the **epoch**, a word the pump thread bumps after it completes requests, which such lanes may park on
//!   between polls instead of sleeping a fixed interval (the CPU reference device installs that wait,
//!   [`crate::protocol::idle`]);
//! - the **bell**, a word the idle pump thread parks on (bounded by its park timeout) while nothing is in
//!   flight, which such lanes ring after publishing a request they then wait for — only while the pump is
//!   parked. [`super::Pump::kick`] and [`super::Pump::stop`] ring it too. A GPU lane cannot ring it: the pump
//!   then finds a publication by its own polling, at most about `IdleConfig::max_park` late.
//!
//! Each side pays only while the other is parked: a completion pass with no parked lane costs one uncontended
//! increment and one load, a lane's pause while the pump is awake one fence and one load, and neither makes a
//! system call.

use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering::*};
use std::time::Duration;

use rustix::thread::futex;

/// The pump's wake-up words: the lanes' epoch with its parked-lane count, and the pump's bell.
#[derive(Debug, Default)]
pub struct LaneWake {
    /// Bumped after every pump loop pass that completed requests; the futex word lanes park on.
    epoch: AtomicU32,
    /// Lanes parked on `epoch` (or about to be).
    parked: AtomicU32,
    /// The CPU the lane that parked last ran on, plus one (0: none yet); see [`LaneWake::notify`].
    lane_cpu: AtomicU32,
    /// Bumped by every ring; the futex word the idle pump thread parks on.
    bell: AtomicU32,
    /// Whether the pump thread is parked on `bell` (or about to be).
    pump_parked: AtomicBool,
}

fn timespec(d: Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as _,
        tv_nsec: d.subsec_nanos() as _,
    }
}

/// The CPU the calling thread runs on now, plus one (0 where it cannot be told).
fn this_cpu() -> u32 {
    // SAFETY: `sched_getcpu` takes no argument and touches no memory of ours (glibc reads its rseq area or
    // calls the vDSO).
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).map_or(0, |c| c.saturating_add(1))
}

impl LaneWake {
    // ---- lanes parked on the epoch ------------------------------------------------------------------------

    /// The epoch now: a lane reads it before the poll whose failure leads to [`LaneWake::park`].
    pub fn epoch(&self) -> u32 {
        // SeqCst: see `park`.
        self.epoch.load(SeqCst)
    }

    /// Parks the calling thread while the epoch is still `epoch`, for at most `timeout` (plus the timer's
    /// slack). Returns early on a wake-up, a signal, or an epoch that has already moved.
    pub fn park(&self, epoch: u32, timeout: Duration) {
        // Relaxed: a hint for the pump's yield only (`notify`), ordered with nothing.
        self.lane_cpu.store(this_cpu(), Relaxed);
        // SeqCst on `parked` and `epoch` here and in `notify`: either the pump sees this lane parked and wakes
        // it, or this lane's futex wait sees the new epoch and returns at once.
        self.parked.fetch_add(1, SeqCst);
        // EAGAIN (the epoch moved), ETIMEDOUT and EINTR all end the wait: the lane polls again.
        let _ = futex::wait(
            &self.epoch,
            futex::Flags::PRIVATE,
            epoch,
            Some(&timespec(timeout)),
        );
        self.parked.fetch_sub(1, SeqCst);
    }

    /// The pump completed `n` requests (their completion sequences are stored): parked lanes may go on. Wakes
    /// at most `n` parked lanes (a lane woken without its completion parks again, its wait still bounded).
    /// Returns whether it woke a lane that last ran on the calling thread's CPU (the lane that parked last,
    /// as a hint): that lane can only run once the caller gives the CPU up.
    pub(super) fn notify(&self, n: u32) -> bool {
        // SeqCst: after the release stores of the completions, so a lane that reads the new epoch sees them.
        self.epoch.fetch_add(1, SeqCst);
        if self.parked.load(SeqCst) == 0 {
            return false;
        }
        let woken = futex::wake(&self.epoch, futex::Flags::PRIVATE, n.min(i32::MAX as u32));
        // Relaxed: a hint (see `park`).
        matches!(woken, Ok(w) if w > 0) && self.lane_cpu.load(Relaxed) == this_cpu()
    }

    // ---- the pump parked on the bell ----------------------------------------------------------------------

    /// Lane side, after publishing a request it then found not yet complete: wakes the pump thread if it is
    /// parked on the bell. While the pump is awake this is one fence and one load.
    pub fn ring_if_parked(&self) {
        // SeqCst fence between this lane's publication (the release store of its request sequence, earlier)
        // and the load of `pump_parked`, paired with the fence in `arm`: either the pump's scan after `arm`
        // sees the publication, or this load sees the pump parked and rings.
        fence(SeqCst);
        // The swap makes one ring per park of all the lanes that find it parked.
        if self.pump_parked.load(Relaxed) && self.pump_parked.swap(false, SeqCst) {
            self.ring();
        }
    }

    /// Wakes the pump thread if it is parked on the bell, or makes its next park return at once (its futex
    /// wait sees the bell moved).
    pub(super) fn ring(&self) {
        // SeqCst: in the one order with the pump's snapshot of the bell in `arm` (see there).
        self.bell.fetch_add(1, SeqCst);
        let _ = futex::wake(&self.bell, futex::Flags::PRIVATE, 1);
    }

    /// Pump side, before it parks: marks the pump parked and returns the bell's value to park on. The pump
    /// must then look for work once more (scan the request sequences, check its stop flag) and park only if
    /// it finds none, with [`LaneWake::park_pump`]; else [`LaneWake::disarm`].
    pub(super) fn arm(&self) -> u32 {
        // SeqCst: a ring (a lane's, `kick`'s, `stop`'s) whose increment this load does not see comes after it
        // in the one order, so the futex wait in `park_pump` sees the bell moved or is woken.
        let bell = self.bell.load(SeqCst);
        self.pump_parked.store(true, SeqCst);
        // SeqCst fence, paired with the one in `ring_if_parked`: the pump's scan after this fence sees every
        // publication ordered before the lane's fence; a lane whose fence comes later sees `pump_parked`.
        fence(SeqCst);
        bell
    }

    /// Pump side: found work after [`LaneWake::arm`]; not parked after all.
    pub(super) fn disarm(&self) {
        // Relaxed: only makes a lane's ring needless; lanes that still ring cost one wake of nobody.
        self.pump_parked.store(false, Relaxed);
    }

    /// Pump side: parks while the bell is still `bell` (from [`LaneWake::arm`]), at most `timeout`.
    pub(super) fn park_pump(&self, bell: u32, timeout: Duration) {
        // EAGAIN (rung since `arm`), ETIMEDOUT and EINTR all end the wait: the pump looks again.
        let _ = futex::wait(
            &self.bell,
            futex::Flags::PRIVATE,
            bell,
            Some(&timespec(timeout)),
        );
        self.disarm();
    }

    /// Whether the pump thread is parked on the bell (or about to be).
    pub fn pump_parked(&self) -> bool {
        self.pump_parked.load(SeqCst)
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

    #[test]
    fn a_ring_after_arm_ends_the_pumps_park_and_a_ring_before_arm_does_not_count() {
        let w = Arc::new(LaneWake::default());
        // Nobody parked: a lane's ring is a fence and a load.
        w.ring_if_parked();
        assert!(!w.pump_parked());
        let b = w.arm();
        assert!(w.pump_parked());
        // Rung between arm and park: the park returns at once.
        w.ring_if_parked();
        assert!(!w.pump_parked(), "the ring took the parked mark");
        let t = Instant::now();
        w.park_pump(b, Duration::from_secs(30));
        assert!(t.elapsed() < Duration::from_secs(20));

        // Rung while parked: wakes it.
        let w2 = w.clone();
        let h = std::thread::spawn(move || {
            let b = w2.arm();
            let t = Instant::now();
            w2.park_pump(b, Duration::from_secs(30));
            t.elapsed()
        });
        while !w.pump_parked() {
            std::thread::yield_now();
        }
        w.ring_if_parked();
        assert!(h.join().unwrap() < Duration::from_secs(20));
        assert!(!w.pump_parked());

        // Not rung: the park ends at its timeout.
        let b = w.arm();
        let t = Instant::now();
        w.park_pump(b, Duration::from_millis(20));
        assert!(t.elapsed() >= Duration::from_millis(20));
        assert!(!w.pump_parked());
    }
}
