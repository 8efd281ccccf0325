//! The CPU reference device's idle wait for lanes of a device ring ([`crate::protocol::idle::IdleWait`]):
//! instead of sleeping a fixed interval between polls, a waiting lane blocks until a completion is likely.
//!
//! - An eventfd is registered with the ring (`IORING_REGISTER_EVENTFD`): the kernel signals it whenever it
//!   posts a CQE.
//! - One waiting lane at a time is the *kernel waiter* (a flag here, in host memory, never in the ring): it
//!   blocks in `poll(2)` on the eventfd, so it runs again as soon as the kernel posts a CQE, and then reaps
//!   (its own next poll), which moves every lane's completions into their slots.
//! - The other waiting lanes park on a futex word, the *epoch*, which every reap pass that moved completions
//!   bumps ([`IdleWait::notify`]); the futex wake is made only while some lane is parked, so a lane alone
//!   (one lane, several reads in flight) never makes a wake-up call.
//!
//! Every wait is bounded: the eventfd poll and the futex wait both time out ([`KERNEL_WAIT`], [`PARK_WAIT`]), after which the
//! lane polls its slot itself, so no lane depends on another to make progress. A lane that snapshotted the
//! epoch before its poll does not sleep through a completion reaped after that poll: the epoch differs, and
//! the futex wait returns at once. These are OS primitives a GPU lane does not have: a GPU lane pauses with
//! `__nanosleep` / `s_sleep` ([`crate::protocol::backoff`]), and device code is unchanged by this wait.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::*};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use rustix::thread::futex;

use crate::protocol::backoff;
use crate::protocol::idle::IdleWait;
use crate::protocol::DeviceRing;
use crate::pump::LaneWake;
use crate::ring::sys;

/// Polls a lane spins (without a system call) before it blocks. Few: on 2 shared cores spinning lanes take the
/// core the SQPOLL thread needs (read_throughput, direct 8x1, 7 rounds each: 0.62x/0.57x of the baseline
/// spinning 0 polls, 0.59x/0.58x with 4, 0.52x/0.48x with 32, 0.22x/0.26x with 256).
const SPIN_POLLS: u32 = 4;
/// The longest the kernel waiter blocks on the eventfd before it polls again by itself. It waits on the kernel
/// alone (every CQE the kernel posts ends the wait), so it can be long; the one completion it may not see at
/// once is its own, reaped by another lane between its last poll and the start of its wait, which it then sees
/// at the next CQE or after this bound. Against 50 µs it cut direct 1x8's CPU per read from about 15.5 µs
/// to about 11 µs (read_throughput).
const KERNEL_WAIT: Duration = Duration::from_millis(1);
/// The longest a parked lane waits on the epoch before it polls again by itself. Reap passes wake at most as
/// many lanes as they moved completions, so a lane can be woken for another lane's completion and the one whose
/// completion it was waits for the next wake or this bound (against 50 µs: direct 8x1 about 0.51x instead of
/// 0.36x–0.47x of the baseline, CPU per read about 17 µs instead of 21 µs).
const PARK_WAIT: Duration = Duration::from_micros(200);
/// Polls after which a lane stops blocking and pauses with [`backoff`] instead, as a lane without this wait
/// does: a budget keeps about the wall time it has with `backoff` (`DEFAULT_BUDGET`, about 100 s), not up to
/// `KERNEL_WAIT` per poll (2^21 ms). At most about 16 s of blocking waits come first; a wait on an operation
/// that completes within that never gets here.
const BLOCKING_POLLS: u32 = 1 << 14;

/// The idle wait of the lanes of one device ring during one launch.
pub struct RingWait {
    /// The ring (a duplicate of its descriptor), to unregister the eventfd from when the launch ends.
    ring: OwnedFd,
    /// Non-blocking eventfd registered with the ring.
    efd: OwnedFd,
    /// Whether a lane is the kernel waiter.
    waiter: AtomicBool,
    /// The futex word parked lanes wait on; bumped by every reap pass that moved completions.
    epoch: AtomicU32,
    /// Lanes parked on [`Self::epoch`] (or about to be).
    parked: AtomicU32,
}

impl RingWait {
    /// The idle wait for lanes of `ring`, or `None` when the ring's completion eventfd cannot be registered
    /// (another launch on this ring holds it, or the kernel refuses): those lanes then back off as GPU lanes
    /// do, which is slower on a shared core but correct.
    pub(crate) fn new(ring: &DeviceRing) -> Option<Arc<RingWait>> {
        let fd = ring.ring().clone_fd().ok()?;
        let efd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).ok()?;
        sys::register_eventfd(fd.as_fd(), efd.as_fd()).ok()?;
        Some(Arc::new(RingWait {
            ring: fd,
            efd,
            waiter: AtomicBool::new(false),
            epoch: AtomicU32::new(0),
            parked: AtomicU32::new(0),
        }))
    }

    /// Blocks until the kernel posts a CQE or `KERNEL_WAIT` passes, then empties the eventfd's counter.
    fn wait_kernel(&self) {
        let mut fds = [PollFd::new(&self.efd, PollFlags::IN)];
        let timeout = timespec(KERNEL_WAIT);
        // An error (EINTR) only ends this wait early; the lane polls again.
        if let Ok(n) = poll(&mut fds, Some(&timeout)) {
            if n > 0 {
                let mut b = [0u8; 8];
                // Non-blocking; a failure (EAGAIN: another reader emptied it) changes nothing.
                let _ = rustix::io::read(&self.efd, &mut b);
            }
        }
    }

    /// Parks on the epoch while it is still `epoch`, at most `PARK_WAIT`.
    fn park(&self, epoch: u32) {
        // SeqCst on `parked` and `epoch` here and in `notify`: either the notifier sees this lane parked and
        // wakes it, or this lane's futex wait sees the new epoch and returns at once.
        self.parked.fetch_add(1, SeqCst);
        let timeout = timespec(PARK_WAIT);
        // EAGAIN (the epoch moved), ETIMEDOUT and EINTR all end the wait: the lane polls again.
        let _ = futex::wait(&self.epoch, futex::Flags::PRIVATE, epoch, Some(&timeout));
        self.parked.fetch_sub(1, SeqCst);
    }
}

/// Rings whose lanes a launch may find by their arena's address: the built-in programs pass the arena as an
/// imported buffer, not as the ring ([`attach_ring_wait`]).
static ATTACHED: Mutex<Vec<(usize, Weak<RingWait>)>> = Mutex::new(Vec::new());

/// Makes the CPU device's launches whose arguments include `ring`'s arena (as an imported buffer) install
/// `ring`'s idle wait on their lanes, for as long as the returned value lives (`None` when the ring's
/// completion eventfd cannot be registered, e.g. another launch on the ring holds it: its lanes then back off).
pub fn attach_ring_wait(ring: &DeviceRing) -> Option<Arc<RingWait>> {
    let w = RingWait::new(ring)?;
    let base = ring.ring().arena().0 as usize;
    let mut a = ATTACHED.lock().unwrap_or_else(PoisonError::into_inner);
    a.retain(|(_, w)| w.strong_count() > 0);
    a.push((base, Arc::downgrade(&w)));
    Some(w)
}

/// The idle wait attached to the ring whose arena starts at `base`, if any.
pub(super) fn attached(base: usize) -> Option<Arc<RingWait>> {
    let a = ATTACHED.lock().unwrap_or_else(PoisonError::into_inner);
    a.iter()
        .rev()
        .find(|(b, _)| *b == base)
        .and_then(|(_, w)| w.upgrade())
}

impl IdleWait for RingWait {
    fn epoch(&self) -> u32 {
        // SeqCst: ordered before the lane's poll of its slot (see `park`).
        self.epoch.load(SeqCst)
    }

    fn pause(&self, polls: u32, epoch: u32) {
        if polls < SPIN_POLLS {
            std::hint::spin_loop();
            return;
        }
        if polls >= BLOCKING_POLLS {
            backoff(polls);
            return;
        }
        if self.epoch.load(SeqCst) != epoch {
            return;
        }
        // Acquire: the previous kernel waiter's wait is over before this lane takes the eventfd.
        if !self.waiter.swap(true, Acquire) {
            self.wait_kernel();
            // Release: pairs with the next waiter's acquire.
            self.waiter.store(false, Release);
        } else {
            self.park(epoch);
        }
    }

    fn notify(&self, reaped: u32) {
        // SeqCst: see `park`. The reap's release stores of the slots come before this bump, so a lane that
        // reads the new epoch sees its completion.
        self.epoch.fetch_add(1, SeqCst);
        if self.parked.load(SeqCst) > 0 {
            // At most as many lanes as completions moved: waking every parked lane for each completion (8
            // lanes with one read each) cost more reads/s than the odd lane woken without its completion,
            // which parks again (read_throughput, direct 8x1: about 0.53x against 0.60x of the baseline).
            let _ = futex::wake(
                &self.epoch,
                futex::Flags::PRIVATE,
                reaped.min(i32::MAX as u32),
            );
        }
    }
}

impl Drop for RingWait {
    fn drop(&mut self) {
        // Every lane has returned; the ring no longer signals the eventfd, which closes with this value.
        let _ = sys::unregister_eventfd(self.ring.as_fd());
    }
}

/// The longest a queue lane parks on the pump's [`LaneWake`] before it polls again by itself: the pump thread
/// wakes parked lanes after every pass that completed requests, so the bound matters only when it does not
/// (against the lanes' 20 µs sleep: pump 8x1 about 0.37x instead of 0.28x of the baseline, CPU per read about
/// 23 µs instead of 29 µs; read_throughput).
const QUEUE_PARK_WAIT: Duration = Duration::from_micros(200);

fn timespec(d: Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: d.as_secs() as _,
        tv_nsec: d.subsec_nanos() as _,
    }
}

/// The idle wait of lanes of a pump's io_queue: they park on the pump's [`LaneWake`], which the pump thread
/// bumps after storing completions (the lane calls this only once its own spin budget is spent). Before it
/// parks, a lane rings the pump's bell if the pump thread is parked on it (idle with nothing in flight), so a
/// request published to an idle pump is served at once instead of after the pump's park timeout; while the
/// pump is awake that costs a fence and a load. Host threads only: a GPU lane has no bell to ring.
pub(crate) struct PumpWait(pub(crate) Arc<LaneWake>);

impl IdleWait for PumpWait {
    fn epoch(&self) -> u32 {
        self.0.epoch()
    }

    fn pause(&self, polls: u32, epoch: u32) {
        // The lane published the request it waits for before its first poll.
        self.0.ring_if_parked();
        if polls >= BLOCKING_POLLS {
            backoff(polls);
            return;
        }
        self.0.park(epoch, QUEUE_PARK_WAIT);
    }

    fn notify(&self, _: u32) {}
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    use super::super::lanes::{run_lanes, run_queue_lanes};
    use super::*;
    use crate::protocol::{idle, FileRef, LaneError};
    use crate::pump::{Pump, PumpConfig, QueueError, Request};
    use crate::ring::RingConfig;

    /// A lane of a device ring, with the CPU device's idle wait installed, waits for a read that does not
    /// complete (a socket nobody writes to): the wait ends `TimedOut` when its budget is spent, in about
    /// `budget × KERNEL_WAIT`; once the peer writes, the same slot completes.
    #[test]
    fn a_parked_ring_lane_times_out_within_its_budget_and_then_completes() {
        let (rd, wr) = UnixStream::pair().unwrap();
        let ring = DeviceRing::new(RingConfig {
            lanes: 2,
            slots_per_lane: 2,
            fixed_buffer_bytes: 4096,
            fixed_files: vec![rd.as_raw_fd()],
            ..Default::default()
        })
        .unwrap();
        let budget = 500;
        let r = run_lanes(&ring, 2, |lane| {
            assert!(idle::installed(), "the CPU device installs its wait");
            let id = lane.id();
            if id == 1 {
                // A lane with nothing to wait for parks on the epoch; its waits are bounded too.
                let t = Instant::now();
                for i in 0..400 {
                    idle::pause(i, idle::epoch());
                }
                return (None, t.elapsed());
            }
            lane.read_fixed(FileRef::Fixed(0), 0, 1, u64::MAX, 1, 1 << 16)
                .unwrap();
            let t = Instant::now();
            let first = lane.wait(1, budget);
            let el = t.elapsed();
            assert_eq!(first, Err(LaneError::TimedOut));
            (&wr).write_all(b"x").unwrap();
            (Some(lane.wait(1, 1 << 20)), el)
        })
        .unwrap();
        let (done, el) = r[0];
        assert_eq!(done, Some(Ok(1)), "the read completes once data arrives");
        // 500 polls of at most KERNEL_WAIT each (plus the timer's slack): far less than the bound.
        assert!(el < Duration::from_secs(10), "timed out after {el:?}");
        assert!(r[1].1 < Duration::from_secs(10), "{:?}", r[1].1);
        assert!(ring.quiesce(Duration::from_secs(20)));
    }

    /// A queue lane parked on a pump that never serves (not started) returns `TimedOut` within its budget.
    #[test]
    fn a_parked_queue_lane_times_out_within_its_budget() {
        let pump = Pump::new(PumpConfig::default()).unwrap();
        let r = run_queue_lanes(&pump, 1, |lane| {
            assert!(idle::installed());
            let slot = lane.alloc(16).unwrap();
            lane.publish(slot, &Request::nop());
            let t = Instant::now();
            (lane.wait(slot, 3000), t.elapsed())
        })
        .unwrap();
        assert_eq!(r[0].0, Err(QueueError::TimedOut));
        assert!(r[0].1 < Duration::from_secs(10), "{:?}", r[0].1);
    }
}
