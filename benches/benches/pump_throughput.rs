//! Pump throughput: requests per second through the megakernel io_queue pump (NOP and 4 KiB READ_FIXED, one
//! reference-device lane keeping 1 or 32 requests in flight), and a steady-state allocation check: a counting
//! global allocator must see zero heap allocations per request, on any thread, once the pump is warm.
//! Guards: regressions in the pump loop (claim/validate/submit/reap) and any allocation sneaking into it.

use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gpu_uring::pump::{Pump, PumpConfig, PumpFile, QueueLane, Request};
use gpu_uring_benches::{allocations, CountingAlloc};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const FILE: u64 = 8 << 20;

fn setup() -> (std::fs::File, Pump) {
    let path = std::env::temp_dir().join(format!("gpu-uring-pump-bench-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f.write_all(&vec![0x5a; FILE as usize]).unwrap();
    let p = Pump::spawn(PumpConfig {
        slots: 64,
        regions: vec![64 * 4096],
        files: vec![PumpFile::reader(&f).unwrap()],
        ..Default::default()
    })
    .unwrap();
    (f, p)
}

/// Publishes `depth` requests, waits for all, frees them; `k` varies the file offsets.
fn round(lane: &mut QueueLane<'_>, slots: &mut [u32], read: bool, k: u64) {
    let depth = slots.len() as u64;
    for (i, s) in slots.iter_mut().enumerate() {
        *s = lane.alloc(1 << 20).unwrap();
        let req = if read {
            let off = ((k * depth + i as u64) * 4096) % FILE;
            Request::read(0, off, 0, i as u64 * 4096, 4096)
        } else {
            Request::nop()
        };
        lane.publish(*s, &req);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for s in slots.iter() {
        let c = lane.wait_until(*s, deadline).unwrap();
        assert!(c.done);
        lane.free(*s);
    }
}

/// Allocations per request over 20 000 requests after a warm-up; panics if not zero.
fn allocation_check() {
    let (_f, p) = setup();
    let mut lane = QueueLane::new(p.view(), 0);
    let mut slots = [0u32; 32];
    for k in 0..100 {
        round(&mut lane, &mut slots, k % 2 == 0, k);
    }
    let before = allocations();
    let t = Instant::now();
    let rounds = 625u64;
    for k in 0..rounds {
        round(&mut lane, &mut slots, k % 2 == 0, k);
    }
    let el = t.elapsed();
    let allocs = allocations() - before;
    let n = rounds * 32;
    println!(
        "pump steady state: {allocs} heap allocations over {n} requests ({:.3} per request); {:.0} requests/s",
        allocs as f64 / n as f64,
        n as f64 / el.as_secs_f64()
    );
    assert_eq!(
        allocs, 0,
        "the pump or the lane side allocated in steady state"
    );
    p.stop().unwrap();
}

fn bench(c: &mut Criterion) {
    allocation_check();
    let (_f, p) = setup();
    let mut g = c.benchmark_group("pump");
    // The workspace's convention (benches/README.md): 1 s warm-up, 3 s measurement, 10 samples.
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    for (name, read) in [("nop", false), ("read4k", true)] {
        for depth in [1usize, 32] {
            g.throughput(Throughput::Elements(depth as u64));
            g.bench_with_input(BenchmarkId::new(name, depth), &depth, |b, &depth| {
                let mut lane = QueueLane::new(p.view(), 0);
                let mut slots = vec![0u32; depth];
                let mut k = 0;
                b.iter(|| {
                    round(&mut lane, &mut slots, read, k);
                    k += 1;
                });
            });
        }
    }
    g.finish();
    let st = p.stop().unwrap();
    println!(
        "pump counters: served {}, batches {}, SQEs {} ({:.1} per batch), idle parks {}",
        st.served,
        st.batches,
        st.sqes,
        st.sqes as f64 / st.batches.max(1) as f64,
        st.idle_parks
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
