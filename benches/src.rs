//! Helpers shared by the criterion benchmarks in `benches/benches/` (see `benches/README.md`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// A global allocator that forwards to the system allocator and counts allocation calls (`alloc`,
/// `alloc_zeroed`, `realloc`), so a bench can assert zero heap allocations per operation. Install it in a bench
/// binary with `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.
pub struct CountingAlloc;

/// Allocation calls made so far by the whole process (when [`CountingAlloc`] is the global allocator).
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::SeqCst)
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s guarantees
// hold; the counter is a relaxed atomic add that allocates nothing.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded contract (see the impl).
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded contract (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded contract (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Operations per second of `round` (which returns the operations it did) over about `d`, after `warmup`
/// rounds; the clock is read once every `per_check` rounds.
pub fn rate(d: Duration, warmup: usize, per_check: usize, mut round: impl FnMut() -> usize) -> f64 {
    for _ in 0..warmup {
        round();
    }
    let start = Instant::now();
    let mut ops = 0usize;
    while start.elapsed() < d {
        for _ in 0..per_check {
            ops += round();
        }
    }
    ops as f64 / start.elapsed().as_secs_f64()
}

/// Median and range of `v` (sorted in place); `(NaN, NaN, NaN)` when empty.
pub fn median_range(v: &mut [f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static A: CountingAlloc = CountingAlloc;

    #[test]
    fn allocations_are_counted() {
        let before = allocations();
        let b = std::hint::black_box(Box::new([7u8; 64]));
        let v = std::hint::black_box(vec![0u8; 4096]);
        assert!(allocations() >= before + 2);
        drop((b, v));
    }

    #[test]
    fn median_and_range() {
        assert_eq!(median_range(&mut [3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(median_range(&mut [4.0, 1.0, 2.0, 3.0]), (2.5, 1.0, 4.0));
        assert!(median_range(&mut []).0.is_nan());
    }
}
