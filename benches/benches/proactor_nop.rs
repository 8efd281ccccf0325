//! NOP throughput through the proactor vs a raw `io-uring` submit/reap loop.
//!
//! Guards the proactor's per-operation overhead (slot, locking, delivery) on top of
//! the kernel: both sides push `BATCH` NOPs, enter the kernel once, and reap them.
//! The proactor runs two ways: the general API (`Operation` values moved in through
//! `submit_batch`, `Completion` values moved out of `poll`) and the simple-operation
//! path (`SimpleOp`s submitted by reference with `submit_simple`, completions lent by
//! `poll_lent`). Before the criterion groups run, `main` measures all of them in the
//! same process, alternating them, and prints the throughput ratios (target: proactor
//! >= 0.9x raw; the simple path is the one built for it).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use gpu_uring::proactor::{BackendChoice, Operation, Options, Proactor, SimpleOp};
use io_uring::{opcode, IoUring};

const BATCH: usize = 64;

struct Raw {
    ring: IoUring,
}

impl Raw {
    fn new() -> Raw {
        Raw {
            ring: IoUring::new(256).expect("io_uring"),
        }
    }
    /// The same ring flags the proactor uses (minus R_DISABLED, which only matters for
    /// which thread becomes the issuer).
    fn new_like_proactor() -> Raw {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(256)
            .unwrap_or_else(|_| IoUring::new(256).expect("io_uring"));
        Raw { ring }
    }
    fn round(&mut self) -> usize {
        {
            let mut sq = self.ring.submission();
            for i in 0..BATCH {
                let e = opcode::Nop::new().build().user_data(i as u64);
                // SAFETY: a NOP carries no pointers.
                unsafe { sq.push(&e) }.expect("sq has room for a batch");
            }
        }
        self.ring.submit_and_wait(BATCH).expect("submit");
        let mut n = 0;
        for cqe in self.ring.completion() {
            black_box(cqe.result());
            n += 1;
        }
        n
    }
}

struct Pro {
    p: Proactor,
    ops: Vec<Operation>,
    ids: Vec<gpu_uring::proactor::OpId>,
    simple: [SimpleOp; BATCH],
}

impl Pro {
    fn new(backend: BackendChoice) -> Option<Pro> {
        let p = Proactor::new(Options {
            backend,
            ..Options::default()
        })
        .ok()?;
        // Become the poll owner before measuring.
        p.poll(Some(Duration::ZERO), |_| {}).unwrap();
        Some(Pro {
            p,
            ops: Vec::with_capacity(BATCH),
            ids: Vec::with_capacity(BATCH),
            simple: [SimpleOp::nop(); BATCH],
        })
    }
    /// Like `round`, through `submit_simple` (ops by reference, built in place; ids
    /// not requested, as the raw loop does not keep any).
    fn round_simple(&mut self) -> usize {
        for (i, op) in self.simple.iter_mut().enumerate() {
            *op = SimpleOp::nop().user_data(i as u64);
        }
        self.p.submit_simple(&self.simple, &mut []).expect("submit");
        let mut n = 0;
        while n < BATCH {
            self.p
                .poll_lent(None, |c| {
                    black_box(&c.outcome);
                    n += 1;
                })
                .expect("poll");
        }
        n
    }
    fn round(&mut self) -> usize {
        self.ops
            .extend((0..BATCH).map(|i| Operation::nop().user_data(i as u64)));
        self.ids.clear();
        self.p
            .submit_batch(&mut self.ops, &mut self.ids)
            .expect("submit");
        self.reap()
    }
    fn reap(&mut self) -> usize {
        let mut n = 0;
        while n < BATCH {
            self.p
                .poll(None, |c| {
                    black_box(&c.outcome);
                    n += 1;
                })
                .expect("poll");
        }
        n
    }
}

/// Operations per second of `f` over about `d` (the benches' shared measuring loop).
fn rate(d: Duration, f: impl FnMut() -> usize) -> f64 {
    gpu_uring_benches::rate(d, 200, 64, f)
}

fn compare() {
    let Some(mut pro) = Pro::new(BackendChoice::IoUring) else {
        println!("proactor_nop: io_uring unavailable, no comparison");
        return;
    };
    let mut raw = Raw::new();
    let mut raw2 = Raw::new_like_proactor();
    let mut epoll = Pro::new(BackendChoice::Epoll).unwrap();
    let mut simple = Pro::new(BackendChoice::IoUring).expect("io_uring");
    let rounds: usize = std::env::var("PROACTOR_BENCH_COMPARE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    // Rounds of every variant back to back (150 ms each), so that load changes on a
    // shared machine hit all alike. Each variant's rate is summarised by its median
    // over the rounds (robust to the short stalls a shared VM suffers) and by its best
    // round; the ratios divide a proactor variant by the faster of the two raw loops
    // (default flags, or the flags the proactor runs with) under the same summary.
    let d = Duration::from_millis(150);
    let mut rates: [Vec<f64>; 5] = Default::default();
    for _ in 0..rounds.max(1) {
        rates[0].push(rate(d, || raw.round()));
        rates[1].push(rate(d, || raw2.round()));
        rates[2].push(rate(d, || pro.round()));
        rates[3].push(rate(d, || simple.round_simple()));
        rates[4].push(rate(d, || epoll.round()));
    }
    let med: Vec<f64> = rates
        .iter_mut()
        .map(|v| gpu_uring_benches::median_range(v).0)
        .collect();
    let best: Vec<f64> = rates.iter().map(|v| v[v.len() - 1]).collect();
    let (ceil_med, ceil_best) = (med[0].max(med[1]), best[0].max(best[1]));
    println!(
        "proactor_nop: an Operation is {} bytes, a Completion {} bytes (moved in and out once per operation on the general path)",
        std::mem::size_of::<Operation>(),
        std::mem::size_of::<gpu_uring::proactor::Completion>(),
    );
    println!(
        "proactor_nop (batch {BATCH}, ring flags {}, {rounds} rounds of 150 ms; rates as median / best, ratios to the faster raw loop as median / best): raw io-uring {:.2} / {:.2} Mops/s, with SINGLE_ISSUER|DEFER_TASKRUN {:.2} / {:.2}; proactor io_uring {:.2} / {:.2} Mops/s, ratio {:.3} / {:.3}; proactor epoll {:.2} / {:.2} Mops/s, ratio {:.3} / {:.3}",
        pro.p.ring_flags().unwrap_or("-"),
        med[0] / 1e6,
        best[0] / 1e6,
        med[1] / 1e6,
        best[1] / 1e6,
        med[2] / 1e6,
        best[2] / 1e6,
        med[2] / ceil_med,
        best[2] / ceil_best,
        med[4] / 1e6,
        best[4] / 1e6,
        med[4] / ceil_med,
        best[4] / ceil_best,
    );
    let (r_med, r_best) = (med[3] / ceil_med, best[3] / ceil_best);
    let verdict = |r: f64| if r >= 0.9 { "met" } else { "MISSED" };
    println!(
        "proactor_nop simple path (submit_simple + poll_lent, batch {BATCH}): {:.2} / {:.2} Mops/s, ratio {r_med:.3} / {r_best:.3}; target >= 0.9: {} on median rounds, {} on best rounds",
        med[3] / 1e6,
        best[3] / 1e6,
        verdict(r_med),
        verdict(r_best),
    );
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("nop");
    g.throughput(Throughput::Elements(BATCH as u64));
    if let Some(mut pro) = Pro::new(BackendChoice::IoUring) {
        let mut raw = Raw::new();
        let mut raw2 = Raw::new_like_proactor();
        g.bench_function("raw_io_uring", |b| b.iter(|| raw.round()));
        g.bench_function("raw_io_uring_proactor_flags", |b| b.iter(|| raw2.round()));
        g.bench_function("proactor_io_uring", |b| b.iter(|| pro.round()));
        g.bench_function("proactor_io_uring_simple", |b| {
            b.iter(|| pro.round_simple())
        });
    }
    let mut epoll = Pro::new(BackendChoice::Epoll).unwrap();
    g.bench_function("proactor_epoll", |b| b.iter(|| epoll.round()));
    g.bench_function("proactor_epoll_simple", |b| b.iter(|| epoll.round_simple()));
    g.finish();
}

/// `PROACTOR_BENCH_ROUNDS=<raw|raw_flags|proactor|epoll|simple|simple_epoll>:<rounds>`
/// runs just that many
/// rounds of one variant and exits: for `perf stat` or `valgrind --tool=callgrind`
/// (instructions per operation are far less noisy than time on a shared machine; the
/// difference between two round counts gives user-space instructions per NOP).
fn rounds_only(spec: &str) {
    let (what, n) = spec.split_once(':').expect("variant:rounds");
    let n: usize = n.parse().expect("rounds");
    let mut done = 0;
    match what {
        "raw" => {
            let mut r = Raw::new();
            (0..n).for_each(|_| done += r.round());
        }
        "raw_flags" => {
            let mut r = Raw::new_like_proactor();
            (0..n).for_each(|_| done += r.round());
        }
        "proactor" => {
            let mut p = Pro::new(BackendChoice::IoUring).expect("io_uring");
            (0..n).for_each(|_| done += p.round());
        }
        "epoll" => {
            let mut p = Pro::new(BackendChoice::Epoll).unwrap();
            (0..n).for_each(|_| done += p.round());
        }
        "simple" => {
            let mut p = Pro::new(BackendChoice::IoUring).expect("io_uring");
            (0..n).for_each(|_| done += p.round_simple());
        }
        "simple_epoll" => {
            let mut p = Pro::new(BackendChoice::Epoll).unwrap();
            (0..n).for_each(|_| done += p.round_simple());
        }
        _ => panic!("unknown variant {what}"),
    }
    println!("{what}: {done} NOPs");
}

fn main() {
    if let Ok(spec) = std::env::var("PROACTOR_BENCH_ROUNDS") {
        rounds_only(&spec);
        return;
    }
    if std::env::var_os("PROACTOR_BENCH_NO_COMPARE").is_none() {
        compare();
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
