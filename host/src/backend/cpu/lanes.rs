//! The reference device's dispatch: threads as lanes, or as subgroups of stepped lanes. Every CPU-side
//! dispatch (built-in programs, native kernels, io_queue programs, experiments with lanes of their own) spawns
//! its threads through [`spawn_lanes`].

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use super::stepped::{step_subgroup, SteppedLane};
use super::wait::{PumpWait, RingWait};
use crate::backend::DeviceError;
use crate::protocol::idle::{with_idle_wait, IdleWait};
use crate::protocol::DeviceRing;
use crate::protocol::{Lane, DEFAULT_BUDGET};
use crate::pump::{Pump, QueueLane};

/// Runs `f(id)` for `id` in `0..lanes`, each on its own scoped thread named `{name}-{id}`, and returns the
/// results in lane order.
///
/// Every thread is spawned before any lane runs `f`: if one cannot be spawned (`EAGAIN` under a thread or
/// memory limit), the threads already started return without calling `f` and the error is
/// [`DeviceError::LaneStart`].
///
/// # Panics
///
/// A panicking lane panics the caller (with the lane's panic) once every lane has been joined.
pub fn spawn_lanes<R: Send>(
    lanes: u32,
    name: &str,
    f: impl Fn(u32) -> R + Sync,
) -> Result<Vec<R>, DeviceError> {
    spawn_lanes_with(lanes, name, &|_| None, f)
}

/// Whether the lanes may run: `None` until every thread is spawned, then `Some(go)`.
struct StartGate {
    go: Mutex<Option<bool>>,
    decided: Condvar,
}

impl StartGate {
    fn decide(&self, go: bool) {
        *self.go.lock().unwrap_or_else(PoisonError::into_inner) = Some(go);
        self.decided.notify_all();
    }

    /// Waits until the spawning thread has decided; that thread decides right after its spawn loop, so
    /// this wait is as long as spawning the remaining threads.
    fn wait(&self) -> bool {
        let g = self.go.lock().unwrap_or_else(PoisonError::into_inner);
        let g = self
            .decided
            .wait_while(g, |go| go.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        g.unwrap_or(false)
    }
}

/// [`spawn_lanes`] with a stack size per lane (`None`: the default), which lets the tests make a spawn fail.
fn spawn_lanes_with<R: Send>(
    lanes: u32,
    name: &str,
    stack: &dyn Fn(u32) -> Option<usize>,
    f: impl Fn(u32) -> R + Sync,
) -> Result<Vec<R>, DeviceError> {
    let gate = StartGate {
        go: Mutex::new(None),
        decided: Condvar::new(),
    };
    std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(lanes as usize);
        let mut failed = None;
        for id in 0..lanes {
            let (f, gate) = (&f, &gate);
            let mut b = std::thread::Builder::new().name(format!("{name}-{id}"));
            if let Some(size) = stack(id) {
                b = b.stack_size(size);
            }
            match b.spawn_scoped(s, move || gate.wait().then(|| f(id))) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    failed = Some((id, e));
                    break;
                }
            }
        }
        gate.decide(failed.is_none());
        let results: Vec<Option<R>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        match failed {
            Some((lane, e)) => Err(DeviceError::LaneStart {
                backend: "cpu",
                lane,
                lanes,
                message: e.to_string(),
            }),
            None => Ok(results.into_iter().flatten().collect()),
        }
    })
}

/// Runs `f` on `lanes` lanes of `ring`, one thread each, then flushes every lane. Returns each lane's result
/// in lane order. This is the reference device's dispatch of ring programs.
///
/// Errors: [`DeviceError::TooManyLanes`] when `lanes` exceeds the lanes the ring was sized for
/// (`RingConfig::lanes`), [`DeviceError::LaneStart`] when a lane thread cannot be spawned; no lane ran.
///
/// # Panics
///
/// A panicking lane panics the caller once every lane has been joined.
pub fn run_lanes<R: Send>(
    ring: &DeviceRing,
    lanes: u32,
    f: impl Fn(&mut Lane<'_>) -> R + Sync,
) -> Result<Vec<R>, DeviceError> {
    let view = ring.view();
    let max = view.layout().lanes;
    if lanes > max {
        return Err(DeviceError::TooManyLanes {
            backend: "cpu",
            lanes,
            max,
        });
    }
    let wait = RingWait::new(ring);
    spawn_lanes(lanes, "lane", |id| {
        let run = || {
            let mut lane = Lane::new(view, id);
            let r = f(&mut lane);
            let _ = lane.flush(DEFAULT_BUDGET);
            r
        };
        match &wait {
            Some(w) => with_idle_wait(w.clone(), run),
            None => run(),
        }
    })
}

/// The reference device's dispatch of io_queue programs: runs `f` on `lanes` threads against `pump`'s queue,
/// lane `id` on thread `id`, and returns each lane's result in lane order.
///
/// Errors: [`DeviceError::LaneStart`] when a lane thread cannot be spawned; no lane ran.
///
/// # Panics
///
/// A panicking lane panics the caller once every lane has been joined.
pub fn run_queue_lanes<R: Send>(
    pump: &Pump,
    lanes: u32,
    f: impl Fn(&mut QueueLane<'_>) -> R + Sync,
) -> Result<Vec<R>, DeviceError> {
    let view = pump.view();
    let wait: Arc<dyn IdleWait> = Arc::new(PumpWait(pump.lane_wake()));
    spawn_lanes(lanes, "qlane", |id| {
        with_idle_wait(wait.clone(), || f(&mut QueueLane::new(view, id)))
    })
}

/// Consecutive idle rounds a subgroup of queue lanes spins before it parks on the pump's lane wake-up (a lane
/// alone spins up to 32 polls; a subgroup's round is one poll of each of its lanes). read_throughput, 7 rounds,
/// two runs each at load about 3: `pump 8x1` 0.51 / 0.43 of the baseline spinning 0 rounds, 0.46 / 0.45 with
/// 4, 0.47 / 0.42 with 32; `pump 1x8` 0.78 / 0.67, 0.85 / 0.69, 0.46 / 0.47.
const QUEUE_SPIN_ROUNDS: u32 = 4;

/// The reference device's dispatch of io_queue programs written as state machines ([`SteppedLane`]): lanes
/// `0..lanes` against `pump`'s queue in subgroups of `width` lanes (the last may be smaller), one thread per
/// subgroup stepping its lanes ([`step_subgroup`]) with one idle wait for the subgroup (parked on the pump's
/// lane wake-up) when none of them progressed. `make` builds lane `id`'s program around its [`QueueLane`],
/// `finish` turns the finished lane into its result; the results come back in lane order.
///
/// Errors: [`DeviceError::LaneStart`] when a subgroup's thread cannot be spawned; no lane ran.
///
/// # Panics
///
/// A panicking lane panics the caller once every subgroup has been joined.
pub fn run_queue_subgroups<'p, L: SteppedLane, R: Send>(
    pump: &'p Pump,
    lanes: u32,
    width: u32,
    make: impl Fn(QueueLane<'p>) -> L + Sync,
    finish: impl Fn(L) -> R + Sync,
) -> Result<Vec<R>, DeviceError> {
    let view = pump.view();
    let width = width.max(1);
    let wait: Arc<dyn IdleWait> = Arc::new(PumpWait(pump.lane_wake()));
    let groups = spawn_lanes(lanes.div_ceil(width), "qgroup", |g| {
        let first = g * width;
        let n = width.min(lanes - first);
        with_idle_wait(wait.clone(), || {
            let mut ls: Vec<L> = (first..first + n)
                .map(|id| make(QueueLane::new(view, id)))
                .collect();
            step_subgroup(&mut (), &mut ls, QUEUE_SPIN_ROUNDS);
            ls.into_iter().map(&finish).collect::<Vec<R>>()
        })
    })?;
    Ok(groups.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

    #[test]
    fn lanes_run_in_order() {
        let r = spawn_lanes(5, "t", |id| id * 2).unwrap();
        assert_eq!(r, vec![0, 2, 4, 6, 8]);
        assert_eq!(spawn_lanes(0, "t", |id| id).unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn a_lane_that_cannot_be_spawned_is_an_error_and_no_lane_runs() {
        let ran = AtomicU32::new(0);
        // A stack larger than any address space: the thread's stack cannot be mapped, so the spawn fails
        // the way it does under a memory or thread limit.
        let huge = |id: u32| (id == 2).then_some(usize::MAX / 4);
        let r = spawn_lanes_with(4, "t", &huge, |_| {
            ran.fetch_add(1, Relaxed);
        });
        match r {
            Err(
                e @ DeviceError::LaneStart {
                    lane: 2, lanes: 4, ..
                },
            ) => {
                assert!(e.to_string().contains("could not start lane 2 of 4"), "{e}");
            }
            other => panic!("expected LaneStart for lane 2, got {other:?}"),
        }
        assert_eq!(
            ran.load(Relaxed),
            0,
            "no lane may run when one could not start"
        );
    }

    /// Queue lanes as state machines, in subgroups of 8 (12 lanes: two threads): each lane's requests complete
    /// exactly once, with its own tags, and the results come back in lane order.
    #[test]
    fn queue_subgroups_complete_each_lane_s_requests_exactly_once_in_lane_order() {
        use crate::pump::{PumpConfig, Request, SlotPoll};

        use super::super::stepped::Step;

        struct Nops<'p> {
            lane: QueueLane<'p>,
            left: u32,
            slot: Option<u32>,
            tags: Vec<u64>,
            thread: Option<std::thread::ThreadId>,
        }
        impl SteppedLane for Nops<'_> {
            fn step(&mut self, _: &mut (), pauses: u32) -> Step {
                assert!(pauses < 1 << 16, "the pump serves");
                self.thread = Some(std::thread::current().id());
                match self.slot {
                    None if self.left == 0 => Step::Done,
                    None => match self.lane.try_alloc() {
                        Some(s) => {
                            let tag = (self.lane.id() as u64) << 32 | self.left as u64;
                            self.lane.publish(s, &Request::nop().tag(tag));
                            self.slot = Some(s);
                            Step::Progress
                        }
                        None => Step::Waiting,
                    },
                    Some(s) => match self.lane.poll(s).unwrap() {
                        SlotPoll::Pending => Step::Waiting,
                        SlotPoll::Complete(c) => {
                            assert!(c.done);
                            self.tags.push(c.tag);
                            self.lane.free(s);
                            self.slot = None;
                            self.left -= 1;
                            Step::Progress
                        }
                    },
                }
            }
        }
        let pump = Pump::spawn(PumpConfig::default()).unwrap();
        let n = 50;
        let r = run_queue_subgroups(
            &pump,
            12,
            8,
            |lane| Nops {
                lane,
                left: n,
                slot: None,
                tags: Vec::new(),
                thread: None,
            },
            |l| (l.lane.id(), l.tags, l.thread),
        )
        .unwrap();
        pump.stop().unwrap();
        assert_eq!(r.len(), 12);
        for (i, (id, tags, _)) in r.iter().enumerate() {
            assert_eq!(*id, i as u32, "lane order");
            let want: Vec<u64> = (1..=n).rev().map(|s| (i as u64) << 32 | s as u64).collect();
            assert_eq!(tags, &want, "lane {i}: each request once, in order");
        }
        let thread = |i: usize| r[i].2;
        assert!(
            (1..8).all(|i| thread(i) == thread(0)),
            "one thread per subgroup"
        );
        assert!((9..12).all(|i| thread(i) == thread(8)));
        assert_ne!(thread(0), thread(8));
    }

    #[test]
    #[should_panic(expected = "lane 1 fails")]
    fn a_panicking_lane_panics_the_caller_with_its_message() {
        let _ = spawn_lanes(3, "t", |id| {
            if id == 1 {
                panic!("lane 1 fails");
            }
        });
    }
}
