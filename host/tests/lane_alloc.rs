//! A device lane allocates nothing per operation in steady state: a counting global allocator sees zero heap
//! allocations (on any thread, the ring's waker included) across thousands of waited NOPs and writes, fire-and-
//! forget writes and prints once the ring is warm. (One test in this binary, so no other test thread allocates
//! meanwhile.)

use std::os::fd::AsRawFd;

use gpu_uring::protocol::{CompletionMode, DeviceRing, FileRef, Lane, PrintTarget, DEFAULT_BUDGET};
use gpu_uring::ring::RingConfig;

#[path = "common/alloc.rs"]
mod alloc;

#[global_allocator]
static A: alloc::Counting = alloc::Counting;

#[test]
fn steady_state_lane_operations_allocate_nothing() {
    let devnull = std::fs::File::options()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let ring = DeviceRing::new(RingConfig {
        lanes: 1,
        fixed_files: vec![devnull.as_raw_fd()],
        ..Default::default()
    })
    .unwrap();
    ring.set_print_target(PrintTarget::Fd(devnull.as_raw_fd()))
        .unwrap();
    let line = ring.view().line_off(0, 1);
    ring.view().write_bytes(line, b"x");
    let mut lane = Lane::new(ring.view(), 0);
    let slot = CompletionMode::Slot(1);
    let round = |lane: &mut Lane<'_>| {
        lane.nop(slot, DEFAULT_BUDGET).unwrap();
        assert_eq!(lane.wait(1, DEFAULT_BUDGET).unwrap(), 0);
        lane.write(FileRef::Fixed(0), line, 1, -1, slot, DEFAULT_BUDGET)
            .unwrap();
        assert_eq!(lane.wait(1, DEFAULT_BUDGET).unwrap(), 1);
        lane.write(
            FileRef::Fixed(0),
            line,
            1,
            -1,
            CompletionMode::FireAndForget,
            DEFAULT_BUDGET,
        )
        .unwrap();
        let (id, seq) = (lane.id(), lane.stats().lines as u32);
        lane.print_with(DEFAULT_BUDGET, |b| {
            gpu_uring::backend::format_print_line(b, id, seq)
        })
        .unwrap();
    };
    for _ in 0..200 {
        round(&mut lane); // warm-up: the kernel's and the waker's first-use paths
    }
    // The waker thread allocates once as it starts (std's start-up copies its name). With the lane and the SQ
    // thread spinning on a 2-core machine it may not have run yet: wait (bounded) until it has gone round its
    // loop once.
    let start = std::time::Instant::now();
    while ring.waker_stats().sleeps == 0 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the waker thread never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let before = alloc::calls();
    for _ in 0..5000 {
        round(&mut lane);
    }
    let allocs = alloc::calls() - before;
    assert_eq!(
        allocs, 0,
        "{allocs} heap allocations in 20 000 steady-state lane operations"
    );
    assert!(lane.flush(DEFAULT_BUDGET).is_ok());
    assert_eq!(ring.violations().host_detected, 0);
}
