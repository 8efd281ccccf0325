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
    // Alternate to spread machine noise; keep the best of each.
    let (mut r_best, mut r2_best, mut p_best, mut e_best, mut s_best) =
        (0f64, 0f64, 0f64, 0f64, 0f64);
    for _ in 0..9 {
        r_best = r_best.max(rate(Duration::from_millis(150), || raw.round()));
        r2_best = r2_best.max(rate(Duration::from_millis(150), || raw2.round()));
        p_best = p_best.max(rate(Duration::from_millis(150), || pro.round()));
        s_best = s_best.max(rate(Duration::from_millis(150), || simple.round_simple()));
        e_best = e_best.max(rate(Duration::from_millis(150), || epoll.round()));
    }
    // The ceiling is the faster of the two raw loops (default flags, or the flags the
    // proactor itself runs with); the ratio is taken against it.
    let ceiling = r_best.max(r2_best);
    println!(
        "proactor_nop (batch {BATCH}, ring flags {}): raw io-uring {:.2} Mops/s (raw with SINGLE_ISSUER|DEFER_TASKRUN {:.2}), proactor io_uring {:.2} Mops/s (ratio {:.3} to the faster raw), proactor epoll {:.2} Mops/s (ratio {:.3})",
        pro.p.ring_flags().unwrap_or("-"),
        r_best / 1e6,
        r2_best / 1e6,
        p_best / 1e6,
        p_best / ceiling,
        e_best / 1e6,
        e_best / ceiling
    );
    println!(
        "proactor_nop simple path (submit_simple + poll_lent, batch {BATCH}): {:.2} Mops/s, ratio {:.3} to the faster raw ({:.2} Mops/s)",
        s_best / 1e6,
        s_best / ceiling,
        ceiling / 1e6
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
