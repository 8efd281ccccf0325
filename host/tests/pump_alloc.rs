//! The pump and the lane side allocate nothing per request in steady state: a counting global allocator sees
//! zero heap allocations (on any thread) across thousands of requests once the pump is warm.
//! (One test in this binary, so no other test thread allocates meanwhile.)

mod pump_util;

use gpu_uring::pump::{Pump, PumpConfig, PumpFile, QueueLane, Request};

#[path = "common/alloc.rs"]
mod alloc;

#[global_allocator]
static A: alloc::Counting = alloc::Counting;

#[test]
fn steady_state_requests_allocate_nothing() {
    let data = pump_util::pattern_file(1 << 20);
    let out = tempfile::tempfile().unwrap();
    let p = Pump::spawn(PumpConfig {
        slots: 64,
        regions: vec![64 * 4096],
        files: vec![
            PumpFile::reader(&data).unwrap(),
            PumpFile::writer(&out, 1 << 20),
        ],
        ..Default::default()
    })
    .unwrap();
    let mut lane = QueueLane::new(p.view(), 0);
    let mut slots = [0u32; 16];
    let mut round = |lane: &mut QueueLane<'_>, k: u64| {
        for (i, s) in slots.iter_mut().enumerate() {
            *s = lane.alloc(1 << 20).unwrap();
            let off = ((k * 16 + i as u64) * 4096) % (1 << 20);
            let req = match i % 4 {
                0 | 1 => Request::read(0, off, 0, i as u64 * 4096, 4096),
                2 => Request::write(1, off, 0, i as u64 * 4096, 4096),
                _ if i == 15 => Request::fence(),
                _ => Request::nop(),
            };
            lane.publish(*s, &req);
        }
        for s in slots.iter() {
            let c = lane.wait(*s, 1 << 24).unwrap();
            assert!(c.done, "{c:?}");
            lane.free(*s);
        }
    };
    for k in 0..50 {
        round(&mut lane, k); // warm-up: the kernel's and the pump's first-use paths
    }
    let before = alloc::calls();
    let served_before = p.stats().served;
    for k in 50..550 {
        round(&mut lane, k);
    }
    let allocs = alloc::calls() - before;
    let served = p.stats().served - served_before;
    assert_eq!(served, 500 * 16);
    assert_eq!(
        allocs, 0,
        "{allocs} heap allocations over {served} requests"
    );
    p.stop().unwrap();
}
