//! device_ff_write — fire-and-forget 64-byte writes to /dev/null from 1, 8 and 64 lanes of the CPU reference
//! device through one device ring, against the same writes pushed by one CPU thread through the `io-uring`
//! crate with SQPOLL (the kernel-side ceiling: the SQ thread executing writes as fast as one submitter feeds
//! it).
//!
//! What is measured (criterion, one "element" = one write):
//! - `skip/<n>-lanes`: `CompletionMode::SkipSuccess` (`IOSQE_CQE_SKIP_SUCCESS`): the true fire-and-forget; no CQE
//!   on success. A batch ends when the kernel has consumed every SQE (for /dev/null, executed).
//! - `ff/<n>-lanes`: `CompletionMode::FireAndForget`: a CQE per write, reaped by whichever lane passes by; a batch
//!   ends when every lane's flush returns.
//! - `ceiling-skip` / `ceiling-cqe`: one thread and an `io-uring` crate SQPOLL ring, the same 64-byte
//!   WRITE_FIXED to /dev/null, with SKIP_SUCCESS, or reaping every CQE.
//!
//! Lanes are persistent threads (one per lane) parked on a barrier between batches, so thread creation is not
//! measured. After criterion, a summary runs every configuration once per round, interleaved, for 7 rounds (`GPU_URING_BENCH_ROUNDS=N` for more)
//! (so load changes on a shared machine hit all alike) and prints each one's median throughput, its ratio to
//! the ceiling with the same completion mode measured in the same round (median and range; target: ≥ 0.8 for
//! `skip/8-lanes`), and allocations per write counted by this binary's global allocator over a steady-state
//! batch on the persistent lanes (target: 0). Set `GPU_URING_BENCH_PIN=1` to pin the SQPOLL threads apart
//! from the submitters (see [`sq_cpu`]).

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use gpu_uring::protocol::DeviceRing;
use gpu_uring::protocol::{CompletionMode, FileRef, Lane, DEFAULT_BUDGET};
use gpu_uring::ring::RingConfig;
use gpu_uring_benches::{allocations, CountingAlloc};
use io_uring::{opcode, squeue, types, IoUring};

/// Counts every allocation (alloc, alloc_zeroed, realloc) made by the process.
#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Bytes per write.
const LEN: u32 = 64;
/// SQPOLL idle time of every ring here, in milliseconds.
const SQ_IDLE_MS: u64 = 20;
/// With `GPU_URING_BENCH_PIN=1`, the CPU every SQPOLL thread here is pinned to (`IORING_SETUP_SQ_AFF`): the
/// last one; the benchmark's own threads (lanes, the ceiling's submitter, the wakers) then run on the others.
/// `None` without the variable or on a 1-CPU machine.
///
/// Pinning is the usual SQPOLL deployment and gives the SQ thread a core of its own on a quiet machine. It is
/// off by default because on a small machine shared with other work it backfires: the pinned SQ thread cannot
/// escape the load on its core, and it and the submitters meet only when both happen to be scheduled, so every
/// configuration drops to about one SQ-ring's worth of writes per scheduling round (measured: 20-60x slower
/// on the 2-core development VM at load average 10+). Unpinned, every waiting loop here backs off by
/// yielding, so a submitter sharing a core with its SQ thread hands the core over.
fn sq_cpu() -> Option<u32> {
    if std::env::var("GPU_URING_BENCH_PIN").as_deref() != Ok("1") {
        return None;
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    (n >= 2).then_some(n - 1)
}

/// Pins the calling thread (and so every thread it spawns later) to all CPUs but `sq_cpu`, when pinning is on.
fn pin_submitters() {
    let Some(sq) = sq_cpu() else { return };
    // SAFETY: an all-zero cpu_set_t is a valid empty set; CPU_SET/sched_setaffinity get valid pointers to it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..sq {
            libc::CPU_SET(cpu as usize, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!(
                "warning: could not pin the benchmark threads: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Lane counts benchmarked.
const LANES: [u32; 3] = [1, 8, 64];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Skip = 0,
    Ff = 1,
    Stop = 2,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Skip => "skip",
            Mode::Ff => "ff",
            Mode::Stop => "stop",
        }
    }
}

/// A batch handed to the persistent lanes.
struct Job {
    ops: AtomicU64,
    mode: AtomicU8,
    failed: AtomicU64,
    start: Barrier,
    end: Barrier,
    lanes: u32,
}

/// Persistent lanes of one ring.
struct Pool<'a> {
    job: &'a Job,
    ring: &'a DeviceRing,
}

impl Pool<'_> {
    /// Runs `ops` writes spread over the lanes; returns the time until they are done (see the module doc).
    fn run(&self, ops: u64, mode: Mode) -> Duration {
        let j = self.job;
        j.ops.store(ops, Ordering::Relaxed);
        j.mode.store(mode as u8, Ordering::Relaxed);
        let t = Instant::now();
        j.start.wait();
        j.end.wait();
        if mode == Mode::Skip {
            wait_sq_consumed(self.ring);
        }
        t.elapsed()
    }

    fn stop(&self) {
        self.job.mode.store(Mode::Stop as u8, Ordering::Relaxed);
        self.job.start.wait();
    }
}

/// The backoff every waiting loop here uses, the device's and the ceiling's alike (the same as the reference
/// device's lanes): spin 32 times, then yield the CPU. A submitter that only spins can starve the SQPOLL thread
/// when the scheduler puts both on one core; on the loaded 2-core development VM that cut the ceiling's
/// throughput 10-100x.
fn backoff(i: u32) {
    if i < 32 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// Waits until the kernel's SQ head reaches the tail: every published SQE consumed.
fn wait_sq_consumed(ring: &DeviceRing) {
    let v = ring.view();
    let l = v.layout();
    let (head, tail) = (v.u32_at(l.sq_head), v.u32_at(l.sq_tail));
    let mut i = 0u32;
    while head.load(Ordering::Acquire) != tail.load(Ordering::Acquire) {
        backoff(i);
        i = i.saturating_add(1);
    }
}

fn worker(ring: &DeviceRing, id: u32, job: &Job) {
    let view = ring.view();
    let mut lane = Lane::new(view, id);
    let off = view.line_off(id, 0);
    let data = [b'w'; LEN as usize];
    view.write_bytes(off, &data);
    loop {
        job.start.wait();
        let mode = job.mode.load(Ordering::Relaxed);
        if mode == Mode::Stop as u8 {
            return;
        }
        let total = job.ops.load(Ordering::Relaxed);
        let n = total / job.lanes as u64 + u64::from((id as u64) < total % job.lanes as u64);
        let c = if mode == Mode::Skip as u8 {
            CompletionMode::SkipSuccess
        } else {
            CompletionMode::FireAndForget
        };
        let mut failed = 0;
        for _ in 0..n {
            if lane
                .write(FileRef::Fixed(0), off, LEN, -1, c, DEFAULT_BUDGET)
                .is_err()
            {
                failed += 1;
            }
        }
        if lane.flush(DEFAULT_BUDGET).is_err() {
            failed += 1;
        }
        if failed > 0 {
            job.failed.fetch_add(failed, Ordering::Relaxed);
        }
        job.end.wait();
    }
}

/// Starts `lanes` persistent lanes on a fresh ring, runs `f` with them, stops them.
fn with_pool<R>(lanes: u32, fd: i32, f: impl FnOnce(&Pool<'_>) -> R) -> R {
    let ring = DeviceRing::new(RingConfig {
        lanes,
        sq_thread_idle: Duration::from_millis(SQ_IDLE_MS),
        sq_thread_cpu: sq_cpu(),
        fixed_files: vec![fd],
        ..Default::default()
    })
    .expect("creating the device ring");
    let job = Job {
        ops: AtomicU64::new(0),
        mode: AtomicU8::new(0),
        failed: AtomicU64::new(0),
        start: Barrier::new(lanes as usize + 1),
        end: Barrier::new(lanes as usize + 1),
        lanes,
    };
    let r = std::thread::scope(|s| {
        for id in 0..lanes {
            let (ring, job) = (&ring, &job);
            std::thread::Builder::new()
                .name(format!("lane-{id}"))
                .spawn_scoped(s, move || worker(ring, id, job))
                .expect("spawning a lane");
        }
        let pool = Pool {
            job: &job,
            ring: &ring,
        };
        let r = f(&pool);
        pool.stop();
        r
    });
    let ctl = ring.view().local_snapshot();
    let failed = job.failed.load(Ordering::Relaxed) + ctl.ff_errors as u64;
    assert_eq!(
        failed, 0,
        "{lanes} lanes: {failed} writes failed (last error {})",
        ctl.ff_last_error
    );
    r
}

/// The ceiling: one thread pushing the same writes through an `io-uring` crate SQPOLL ring, with the same
/// registered file and buffer as the (confined) device ring.
struct Ceiling {
    ring: IoUring,
    buf: Box<[u8; 4096]>,
}

impl Ceiling {
    fn new(fd: i32) -> Ceiling {
        let mut b = IoUring::builder();
        b.setup_sqpoll(SQ_IDLE_MS as u32);
        if let Some(cpu) = sq_cpu() {
            b.setup_sqpoll_cpu(cpu);
        }
        let ring = b.build(256).expect("io-uring crate ring with SQPOLL");
        let mut buf = Box::new([b'w'; 4096]);
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: `buf` is owned by the returned `Ceiling` and outlives every request (`run` waits for all).
        unsafe { ring.submitter().register_buffers(&[iov]) }.expect("registering the buffer");
        ring.submitter()
            .register_files(&[fd])
            .expect("registering the file");
        Ceiling { ring, buf }
    }

    /// Pushes `ops` writes; with `skip` they carry SKIP_SUCCESS and the run ends when the SQ is consumed,
    /// otherwise every CQE is reaped.
    fn run(&mut self, ops: u64, skip: bool) -> Duration {
        let e = opcode::WriteFixed::new(types::Fixed(0), self.buf.as_ptr(), LEN, 0)
            .offset(u64::MAX)
            .build()
            .flags(if skip {
                squeue::Flags::SKIP_SUCCESS
            } else {
                squeue::Flags::empty()
            });
        let cq_cap = self.ring.params().cq_entries() as u64;
        let t = Instant::now();
        let (mut pushed, mut done, mut failed) = (0u64, 0u64, 0u64);
        let mut idle = 0u32;
        while pushed < ops || (!skip && done < ops) {
            let before = (pushed, done);
            {
                let mut sq = self.ring.submission();
                while pushed < ops && !sq.is_full() && (skip || pushed - done < cq_cap) {
                    // SAFETY: the buffer outlives the request (see `new`).
                    unsafe { sq.push(&e) }.expect("SQ has room");
                    pushed += 1;
                }
            }
            // Enters the kernel only when the SQ thread sleeps.
            self.ring.submit().expect("submit");
            if !skip {
                for c in self.ring.completion() {
                    done += 1;
                    if c.result() != LEN as i32 {
                        failed += 1;
                    }
                }
            }
            idle = if (pushed, done) == before {
                idle + 1
            } else {
                0
            };
            backoff(idle);
        }
        if skip {
            let mut i = 0;
            while !self.ring.submission().is_empty() {
                self.ring.submit().expect("submit");
                backoff(i);
                i += 1;
            }
            for c in self.ring.completion() {
                if c.result() < 0 {
                    failed += 1;
                }
            }
        }
        assert_eq!(failed, 0, "ceiling: {failed} writes failed");
        t.elapsed()
    }
}

/// Everything criterion ran, per benchmark: (writes, seconds).
static TOTALS: Mutex<BTreeMap<String, (u64, f64)>> = Mutex::new(BTreeMap::new());

fn record(name: &str, ops: u64, d: Duration) -> Duration {
    let mut t = TOTALS.lock().unwrap();
    let e = t.entry(name.to_owned()).or_default();
    e.0 += ops;
    e.1 += d.as_secs_f64();
    d
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .configure_from_args();
    let bench_mode = std::env::args().any(|a| a == "--bench");
    pin_submitters();
    if let Some(cpu) = sq_cpu() {
        println!(
            "SQPOLL threads pinned to CPU {cpu}; lanes, the ceiling's submitter and the wakers to CPUs 0-{}",
            cpu - 1
        );
    }
    let devnull = std::fs::File::options()
        .write(true)
        .open("/dev/null")
        .expect("opening /dev/null");
    let fd = devnull.as_raw_fd();

    let mut g = c.benchmark_group("device_ff_write");
    g.throughput(Throughput::Elements(1));
    let mut ceiling = Ceiling::new(fd);
    for (name, skip) in [("ceiling-skip", true), ("ceiling-cqe", false)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| record(name, iters, ceiling.run(iters, skip)))
        });
    }
    for lanes in LANES {
        with_pool(lanes, fd, |pool| {
            for mode in [Mode::Skip, Mode::Ff] {
                let key = format!("{}/{lanes}-lanes", mode.name());
                g.bench_function(
                    BenchmarkId::new(mode.name(), format!("{lanes}-lanes")),
                    |b| b.iter_custom(|iters| record(&key, iters, pool.run(iters, mode))),
                );
            }
        });
    }
    g.finish();
    c.final_summary();

    // The summary: interleaved rounds (every configuration once per round, the SQ threads of the others
    // asleep), so load drift on a shared machine hits all configurations alike; then the allocation window.
    let quick = !bench_mode;
    // More rounds (`GPU_URING_BENCH_ROUNDS`) narrow the median on a loaded machine.
    let rounds_env = std::env::var("GPU_URING_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&r| r > 0);
    let (rounds, batch): (usize, u64) = if quick {
        (1, 2_000)
    } else {
        (rounds_env.unwrap_or(7), 200_000)
    };
    let settle = Duration::from_millis(SQ_IDLE_MS * 2 + 10);
    let mut rates: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut allocs: BTreeMap<String, f64> = BTreeMap::new();
    let mut measure = |name: String, run: &mut dyn FnMut(u64) -> Duration| {
        run(batch / 10);
        let a0 = allocations();
        let d = run(batch);
        let a = allocations() - a0;
        allocs.insert(name.clone(), a as f64 / batch as f64);
        rates
            .entry(name)
            .or_default()
            .push(batch as f64 / d.as_secs_f64());
        // Let this ring's SQ thread fall asleep so it does not spin beside the next configuration.
        std::thread::sleep(settle);
    };
    with_pool(1, fd, |p1| {
        with_pool(8, fd, |p8| {
            with_pool(64, fd, |p64| {
                std::thread::sleep(settle);
                for _ in 0..rounds {
                    for (name, skip) in [("ceiling-skip", true), ("ceiling-cqe", false)] {
                        measure(name.into(), &mut |n| ceiling.run(n, skip));
                    }
                    for (lanes, pool) in [(1, p1), (8, p8), (64, p64)] {
                        for mode in [Mode::Skip, Mode::Ff] {
                            measure(format!("{}/{lanes}-lanes", mode.name()), &mut |n| {
                                pool.run(n, mode)
                            });
                        }
                    }
                }
            })
        })
    });
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let rate = |k: &str| rates.get(k).map_or(0.0, |v| median(v));
    // Ratios pair each configuration with the ceiling measured in the same round (seconds apart), then take
    // the median and the range over rounds.
    let ratios = |k: &str, ceil: &str| -> (f64, f64, f64) {
        let (a, b) = (&rates[k], &rates[ceil]);
        let mut r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
        let m = median(&r);
        r.sort_by(|x, y| x.total_cmp(y));
        (m, r[0], r[r.len() - 1])
    };
    let crit = TOTALS.lock().unwrap().clone();
    let crit_rate = |k: &str| crit.get(k).map_or(0.0, |(n, s)| *n as f64 / s);
    println!(
        "\ndevice_ff_write summary: {LEN}-byte writes to /dev/null. Mwrites/s: median of {rounds} interleaved \
         rounds of {batch} writes (criterion: mean over all iterations it ran). ratio: device ring / the \
         io-uring crate ceiling with the same completion mode (skip: SKIP_SUCCESS; ff: a CQE per write), \
         measured in the same round; median and range over the rounds. \
         allocs/write: allocations by the whole process during one {batch}-write steady-state batch."
    );
    println!(
        "{:<16} {:>10} {:>10} {:>8} {:>13} {:>13}",
        "config", "Mwrites/s", "criterion", "ratio", "ratio range", "allocs/write"
    );
    let mut ratio8 = 0.0;
    let mut zero_alloc = true;
    let mut rows: Vec<(String, &str)> = vec![
        ("ceiling-skip".into(), "ceiling-skip"),
        ("ceiling-cqe".into(), "ceiling-cqe"),
    ];
    for mode in [Mode::Skip, Mode::Ff] {
        for lanes in LANES {
            let ceil = if mode == Mode::Skip {
                "ceiling-skip"
            } else {
                "ceiling-cqe"
            };
            rows.push((format!("{}/{lanes}-lanes", mode.name()), ceil));
        }
    }
    for (k, ceil) in &rows {
        let (r, lo, hi) = ratios(k, ceil);
        let a = allocs.get(k).copied().unwrap_or(f64::NAN);
        if k == "skip/8-lanes" {
            ratio8 = r;
        }
        if !k.starts_with("ceiling") && a != 0.0 {
            zero_alloc = false;
        }
        println!(
            "{k:<16} {:>10.3} {:>10.3} {:>8.2} {:>13} {:>13.4}",
            rate(k) / 1e6,
            crit_rate(k) / 1e6,
            r,
            format!("{lo:.2}-{hi:.2}"),
            a
        );
    }
    println!(
        "target: skip/8-lanes >= 0.80 of ceiling-skip: {} ({ratio8:.2}); zero allocations per write on the \
         device path: {}",
        if ratio8 >= 0.8 { "met" } else { "MISSED" },
        if zero_alloc { "met" } else { "MISSED" }
    );
}
