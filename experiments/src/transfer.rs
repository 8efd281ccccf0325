//! [`core_to_core_rtt`]: what one cache line's round trip between two threads costs right now — the transfer a
//! ring's lane and its kernel SQ thread make twice per operation. On a VM the figure moves with where the
//! hypervisor runs the vCPUs (experiments/README.md, ring_latency), so latency experiments report it beside
//! their ratios.

use std::sync::atomic::{AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use rustix::thread::{sched_setaffinity, CpuSet};

/// One atomic on a cache line (two lines on processors that fetch pairs) of its own.
#[repr(align(128))]
#[derive(Default)]
struct Line(AtomicU64);

/// Round trips per timed batch.
const BATCH: u64 = 100;

/// The median, over `batches` batches, of one round trip's time in nanoseconds: this thread stores a value into
/// one line, a helper thread (pinned to `helper_cpu` if given) that spins on it stores it back into another, and
/// this thread spins until it sees it. `None` if the helper did not answer within 100 ms (its CPU busy).
pub fn core_to_core_rtt(batches: usize, helper_cpu: Option<u32>) -> Option<f64> {
    let (ping, pong) = (Line::default(), Line::default());
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(cpu) = helper_cpu.filter(|c| (*c as usize) < CpuSet::MAX_CPU) {
                let mut set = CpuSet::new();
                set.set(cpu as usize);
                // Unpinned if refused: the figure is then between whatever CPUs the threads run on.
                let _ = sched_setaffinity(None, &set);
            }
            let mut seen = 0;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                // Acquire/release: a plain message pass; the figure is the transfer, not the ordering.
                let v = ping.0.load(Acquire);
                if v == u64::MAX {
                    return;
                }
                if v != seen {
                    seen = v;
                    pong.0.store(v, Release);
                } else if Instant::now() > deadline {
                    return;
                }
                std::hint::spin_loop();
            }
        });
        let mut v = 0u64;
        let mut round_trip = || -> bool {
            v += 1;
            ping.0.store(v, Release);
            let t = Instant::now();
            let mut i = 0u32;
            while pong.0.load(Acquire) != v {
                std::hint::spin_loop();
                i = i.wrapping_add(1);
                if i.is_multiple_of(1024) && t.elapsed() > Duration::from_millis(100) {
                    return false;
                }
            }
            true
        };
        // Warm up: the helper starts, both lines settle.
        let ok = (0..BATCH).all(|_| round_trip());
        let mut per_batch = Vec::with_capacity(batches);
        if ok {
            for _ in 0..batches.max(1) {
                let t = Instant::now();
                if !(0..BATCH).all(|_| round_trip()) {
                    break;
                }
                per_batch.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
            }
        }
        ping.0.store(u64::MAX, Release);
        if per_batch.len() < batches.max(1) {
            return None;
        }
        per_batch.sort_by(f64::total_cmp);
        per_batch.get(per_batch.len() / 2).copied()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_round_trip_takes_some_time() {
        let ns = super::core_to_core_rtt(5, None).expect("helper answered");
        assert!(ns > 0.0 && ns < 1e6, "{ns}");
    }
}
