//! Re-dispatch of resumable programs, for every backend.
//!
//! A device with a loop cap (lavapipe ends every loop of an invocation after 65535 iterations) or a dispatch
//! time limit cannot promise a program finishes in one dispatch. Each lane therefore keeps its progress in
//! a state record, starts no new work past a soft loop budget, and the host dispatches again until every
//! lane reports finished or the run's time is up. [`run_resumable`] is that loop; a backend supplies one
//! dispatch (returning every lane's state), the test for "finished" and a progress signature.

use std::time::{Duration, Instant};

use super::error::DeviceError;

/// Pacing and deadline of a resumable run's re-dispatch loop: each dispatch gets the per-dispatch limit or
/// what is left of the run's time, whichever is less, and a dispatch in which no lane moved (its lanes only
/// waited for the kernel, the SQPOLL thread or the pump) is followed by a pause, 100 µs doubling to 1.6 ms
/// while nothing moves, because on a CPU device (lavapipe) the device's threads compete with those host
/// threads for the same cores.
pub struct Pacer {
    deadline: Instant,
    last_signature: u64,
    idle: u32,
}

impl Pacer {
    /// A pacer for a run that must end by `deadline`.
    pub fn new(deadline: Instant) -> Pacer {
        Pacer {
            deadline,
            last_signature: u64::MAX,
            idle: 0,
        }
    }

    /// The time limit of the next dispatch (at least 1 ms, so a run at its deadline still gets one try).
    pub fn next_limit(&self, per_dispatch: Duration) -> Duration {
        per_dispatch
            .min(self.deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(1))
    }

    /// After a dispatch that left some lane unfinished: `signature` sums the lanes' progress counters. Pauses
    /// when it did not change; returns true when the run's deadline has passed.
    pub fn after_unfinished_dispatch(&mut self, signature: u64) -> bool {
        if signature == self.last_signature {
            self.idle = (self.idle + 1).min(5);
            std::thread::sleep(Duration::from_micros(100 << (self.idle - 1)));
        } else {
            self.idle = 0;
            self.last_signature = signature;
        }
        Instant::now() >= self.deadline
    }
}

/// How one resumable run went.
#[derive(Debug, Clone)]
pub struct Resumed<S> {
    /// Every lane's final state.
    pub states: Vec<S>,
    /// Wall time of the dispatches.
    pub elapsed: Duration,
    /// Dispatches submitted.
    pub dispatches: u32,
}

/// One dispatch of a resumable run: its index and time limit in, every lane's state out.
pub type DispatchOnce<'a, S> = dyn FnMut(u32, Duration) -> Result<Vec<S>, DeviceError> + 'a;
/// The host's turn after a dispatch: its index and every lane's state.
pub type AfterDispatch<'a, S> = dyn FnMut(u32, &[S]) -> Result<(), DeviceError> + 'a;

/// What a resumable run needs from its backend and program.
pub struct Resumable<'a, S> {
    /// Backend name (errors).
    pub backend: &'static str,
    /// The run's time limit.
    pub timeout: Duration,
    /// The time limit of one dispatch.
    pub per_dispatch: Duration,
    /// Runs dispatch `i` with the given time limit and returns every lane's state after it.
    pub dispatch: &'a mut DispatchOnce<'a, S>,
    /// Called after every dispatch with its index and the states (the host's turn between dispatches).
    pub between: &'a mut AfterDispatch<'a, S>,
    /// Whether a lane has finished.
    pub finished: fn(&S) -> bool,
    /// A lane's progress counters summed (unchanged: the dispatch did nothing).
    pub progress: fn(&S) -> u64,
}

/// Dispatches until every lane has finished or the run's time is up ([`DeviceError::Timeout`], with the
/// first unfinished lane logged at `warn`).
pub fn run_resumable<S: std::fmt::Debug>(r: Resumable<'_, S>) -> Result<Resumed<S>, DeviceError> {
    let start = Instant::now();
    let mut pacer = Pacer::new(start + r.timeout);
    let mut dispatches = 0u32;
    let states = loop {
        let limit = pacer.next_limit(r.per_dispatch);
        let states = (r.dispatch)(dispatches, limit)?;
        dispatches += 1;
        (r.between)(dispatches - 1, &states)?;
        if states.iter().all(r.finished) {
            break states;
        }
        let signature: u64 = states.iter().map(r.progress).sum();
        if pacer.after_unfinished_dispatch(signature) {
            let unfinished = states.iter().filter(|s| !(r.finished)(s)).count();
            log::warn!(
                "{}: run timed out after {dispatches} dispatches with {unfinished} lanes unfinished; first: {:?}",
                r.backend,
                states.iter().find(|s| !(r.finished)(s)),
            );
            return Err(DeviceError::Timeout {
                backend: r.backend,
                limit: r.timeout,
            });
        }
    };
    Ok(Resumed {
        states,
        elapsed: start.elapsed(),
        dispatches,
    })
}
