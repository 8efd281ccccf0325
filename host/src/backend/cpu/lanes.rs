//! The reference device's dispatch: threads as lanes. Every CPU-side dispatch (built-in programs, native
//! kernels, io_queue programs, experiments with lanes of their own) spawns its lanes through [`spawn_lanes`].

use crate::protocol::DeviceRing;
use crate::protocol::{Lane, DEFAULT_BUDGET};
use crate::pump::{Pump, QueueLane};

/// Runs `f(id)` for `id` in `0..lanes`, each on its own scoped thread named `{name}-{id}`, and returns the
/// results in lane order. A panicking lane panics the caller once every lane has been joined.
pub fn spawn_lanes<R: Send>(lanes: u32, name: &str, f: impl Fn(u32) -> R + Sync) -> Vec<R> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..lanes)
            .map(|id| {
                let f = &f;
                std::thread::Builder::new()
                    .name(format!("{name}-{id}"))
                    .spawn_scoped(s, move || f(id))
                    .expect("spawning a lane thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a lane panicked"))
            .collect()
    })
}

/// Runs `f` on `lanes` lanes of `ring`, one thread each, then flushes every lane. Returns each lane's result
/// in lane order. This is the reference device's dispatch of ring programs.
pub fn run_lanes<R: Send>(
    ring: &DeviceRing,
    lanes: u32,
    f: impl Fn(&mut Lane<'_>) -> R + Sync,
) -> Vec<R> {
    let view = ring.view();
    assert!(
        lanes <= view.layout().lanes,
        "{lanes} lanes but the ring was sized for {}",
        view.layout().lanes
    );
    spawn_lanes(lanes, "lane", |id| {
        let mut lane = Lane::new(view, id);
        let r = f(&mut lane);
        let _ = lane.flush(DEFAULT_BUDGET);
        r
    })
}

/// The reference device's dispatch of io_queue programs: runs `f` on `lanes` threads against `pump`'s queue,
/// lane `id` on thread `id`, and returns each lane's result in lane order.
pub fn run_queue_lanes<R: Send>(
    pump: &Pump,
    lanes: u32,
    f: impl Fn(&mut QueueLane<'_>) -> R + Sync,
) -> Vec<R> {
    let view = pump.view();
    spawn_lanes(lanes, "qlane", |id| f(&mut QueueLane::new(view, id)))
}
