//! ring_latency — single-lane round-trip latency: one operation submitted and waited for, again and again.
//!
//! Two paths, two operations, two modes (one table row each; latencies in microseconds):
//! - `device-ring`: one lane of the CPU reference device on the main thread, through a device ring (NO_MMAP
//!   arena, SQPOLL): reserve + fill + publish the SQE, then reap its CQE into the lane's completion slot
//!   (`Lane::nop`/`Lane::write` with `CompletionMode::Slot`, then `Lane::wait`). No syscall on the lane's path:
//!   when the SQ thread sleeps, the waker thread wakes it.
//! - `io-uring-crate`: a plain CPU thread with its own SQPOLL ring from the `io-uring` crate: push the SQE,
//!   `submit()` (a syscall only when the SQ thread sleeps), poll the CQ with the lane's backoff function.
//! - operations: `nop` (IORING_OP_NOP) and `write1` (a 1-byte WRITE_FIXED to /dev/null).
//! - `hot`: back to back, the SQ thread polling. `cold`: `--cold-gap-ms` of idleness before each request (longer
//!   than the SQ idle time), so the SQ thread is asleep: the device-ring path pays the waker's reaction, the
//!   crate path its own `io_uring_enter(IORING_ENTER_SQ_WAKEUP)`. `asleep` is the fraction of cold requests
//!   that really found the SQ thread asleep.
//!
//! Fairness: both paths run on the same thread (same pinning: `--lane-cpu`, and `--sq-cpu` for both SQ
//! threads), wait with the same function ([`gpu_uring::protocol::backoff`]), and are measured in `--rounds`
//! interleaved rounds (the order alternates each round). Each round gets a new pair of rings, built once the
//! previous pair's SQ threads have exited (`--same-rings` keeps one pair for the whole run): one pair's latencies
//! hold within a few percent for its lifetime but differ from pair to pair by more (where its memory and SQ
//! thread land), so rounds on one pair repeat one draw. Before a hot round the other path's SQ thread is left to
//! go to sleep (it would otherwise spin on a core for its idle time), then the path warms up. The ratio table
//! gives, per operation and mode, the median over rounds of the per-round ratio device ring / crate (p50 and
//! p99), with its minimum and maximum.
//!
//! Before each hot round, with both SQ threads asleep, the run measures a cache line's round trip between the
//! measuring thread and another thread (on `--sq-cpu` if given): `c2c_us` in the ratio table, per round in
//! `ring_latency_rounds.csv` (printed with `--per-round`). The lane and the SQ thread make that transfer twice per
//! operation, and on a VM it moves with where the hypervisor runs the vCPUs; when it is cheap, what is left of a
//! round trip is each path's own work (`lane_work` measures the lane's). Rounds whose c2c was under 0.1 µs get a
//! note: how many, and the median p50 ratio in them and in the others.
//!
//! The device-ring rows also report the lane's bus traffic per round trip (PROTOCOL.md §1): RMWs, waited loads,
//! other loads and stores on host-shared memory, and RMWs on device-local memory.
//!
//! Output: tables, `ring_latency.csv`, `ring_latency_ratio.csv`, `ring_latency_rounds.csv`, and
//! `ring_latency_hot.svg` / `ring_latency_cold.svg` (percentile curves).

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use gpu_uring::protocol::DeviceRing;
use gpu_uring::protocol::{backoff, CompletionMode, FileRef, Lane, DEFAULT_BUDGET};
use gpu_uring::ring::bus::{BusCounters, RingRegion};
use gpu_uring::ring::{RingConfig, WakerConfig};
use gpu_uring_experiments::cli::Devices;
use gpu_uring_experiments::{
    core_to_core_rtt, fail, line_chart, ring_mode_line, settle_sqpoll, CommonArgs, Experiment,
    Percentiles, Record, Series,
};
use io_uring::{opcode, types, IoUring};
use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

/// `IORING_SQ_NEED_WAKEUP` from `<linux/io_uring.h>`.
const IORING_SQ_NEED_WAKEUP: u32 = 1;
/// Lane-relative completion slot for the waited operations (slot 0 is the print slot).
const SLOT: u32 = 1;
/// A core-to-core round trip shorter than this (ns) means transfers are nearly free for the round (on the 2-vCPU
/// VM: 50 ns with the two vCPUs on one core, 220–480 ns on two).
const CHEAP_C2C_NS: f64 = 100.0;

/// Single-lane round-trip latency: device ring vs the io-uring crate, hot vs cold SQ thread.
#[derive(Parser, Debug)]
#[command(name = "ring_latency", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Hot samples per (path, operation).
    #[arg(long, default_value_t = 20_000)]
    hot: usize,
    /// Cold samples per (path, operation).
    #[arg(long, default_value_t = 100)]
    cold: usize,
    /// Interleaved rounds the samples are split into (at least 5; the ratios are medians over rounds).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(5..=1000))]
    rounds: u32,
    /// Pin the measuring thread (both paths' lane) to this CPU [default: not pinned].
    #[arg(long)]
    lane_cpu: Option<u32>,
    /// Pin both rings' SQ threads to this CPU (`IORING_SETUP_SQ_AFF`) [default: not pinned].
    #[arg(long)]
    sq_cpu: Option<u32>,
    /// SQPOLL idle time in milliseconds (both paths).
    #[arg(long, default_value_t = 10)]
    sq_idle_ms: u64,
    /// Idle gap before each cold request, in milliseconds [default: 2 x SQ idle + 5].
    #[arg(long)]
    cold_gap_ms: Option<u64>,
    /// The device ring's waker: sleep between checks while lanes are active, in microseconds [default: the
    /// library's].
    #[arg(long)]
    waker_min_sleep_us: Option<u64>,
    /// The device ring's waker: spin after a wake-up, in microseconds [default: the library's].
    #[arg(long)]
    waker_spin_us: Option<u64>,
    /// Measure every round on the same two rings instead of a new pair per round. One pair's latencies stay
    /// within a few percent for its lifetime, but differ from pair to pair by more than that (memory placement,
    /// CPU placement of the SQ threads), so with one pair the rounds repeat one draw and the ratio's median says
    /// less about the typical ratio.
    #[arg(long)]
    same_rings: bool,
    /// Also print the hot rounds one by one (`ring_latency_rounds.csv` is written either way): each round's p50
    /// of both paths and the core-to-core round trip measured before it.
    #[arg(long)]
    per_round: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Nop,
    Write1,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Nop => "nop",
            Op::Write1 => "write1",
        }
    }
    fn want(self) -> i32 {
        match self {
            Op::Nop => 0,
            Op::Write1 => 1,
        }
    }
}

/// One measured series.
#[derive(Default)]
struct Sample {
    ns: Vec<f64>,
    asleep: usize,
    failed: usize,
    wakeups: u64,
    /// Bus accesses of the measured round trips (device-ring path only).
    bus: Option<BusCounters<RingRegion>>,
    /// (p50, p99) of each round, in nanoseconds.
    rounds: Vec<(f64, f64)>,
}

/// Something that does one round trip: returns whether the SQ thread was asleep before it, and the result.
trait RoundTrip {
    fn asleep(&mut self) -> bool;
    fn once(&mut self, op: Op) -> Result<i32, String>;
    fn wakeups(&self) -> u64 {
        0
    }
    /// The lane's bus counters so far (device-ring path only).
    fn bus(&self) -> Option<BusCounters<RingRegion>> {
        None
    }
}

struct DevicePath<'a> {
    ring: &'a DeviceRing,
    lane: Lane<'a>,
    line: u32,
}

impl RoundTrip for DevicePath<'_> {
    fn asleep(&mut self) -> bool {
        let v = self.ring.view();
        v.u32_at(v.layout().sq_flags).load(Ordering::Acquire) & IORING_SQ_NEED_WAKEUP != 0
    }
    fn once(&mut self, op: Op) -> Result<i32, String> {
        let c = CompletionMode::Slot(SLOT);
        match op {
            Op::Nop => self.lane.nop(c, DEFAULT_BUDGET),
            Op::Write1 => self
                .lane
                .write(FileRef::Fixed(0), self.line, 1, -1, c, DEFAULT_BUDGET),
        }
        .and_then(|_| self.lane.wait(SLOT, DEFAULT_BUDGET))
        .map_err(|e| e.to_string())
    }
    fn wakeups(&self) -> u64 {
        self.ring.waker_stats().wakeups
    }
    fn bus(&self) -> Option<BusCounters<RingRegion>> {
        Some(self.lane.stats().bus)
    }
}

/// The baseline: an io-uring crate SQPOLL ring with the same registered file and buffer as the device ring.
struct CratePath {
    ring: IoUring,
    buf: Box<[u8; 4096]>,
}

impl RoundTrip for CratePath {
    fn asleep(&mut self) -> bool {
        self.ring.submission().need_wakeup()
    }
    fn once(&mut self, op: Op) -> Result<i32, String> {
        let e = match op {
            Op::Nop => opcode::Nop::new().build(),
            Op::Write1 => opcode::WriteFixed::new(types::Fixed(0), self.buf.as_ptr(), 1, 0)
                .offset(u64::MAX)
                .build(),
        };
        // SAFETY: the SQE's buffer (`self.buf`, registered as fixed buffer 0) lives as long as `self`, and we
        // wait for the CQE below before returning, so the kernel is done with it.
        unsafe { self.ring.submission().push(&e) }.map_err(|_| "SQ full".to_string())?;
        // With SQPOLL this enters the kernel only if the SQ thread sleeps (IORING_ENTER_SQ_WAKEUP).
        self.ring.submit().map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut i = 0u32;
        loop {
            if let Some(c) = self.ring.completion().next() {
                return Ok(c.result());
            }
            if Instant::now() > deadline {
                return Err("no CQE within 5 s".into());
            }
            // The lane's own backoff function, so both paths treat a shared core alike.
            backoff(i);
            i = i.saturating_add(1);
        }
    }
}

/// Waits (bounded) until a path's SQ thread has gone to sleep, so it does not spin on a core while the other
/// path is measured. Returns whether it did.
fn quiet(p: &mut dyn RoundTrip, idle: Duration) -> bool {
    let deadline = Instant::now() + idle * 5 + Duration::from_millis(20);
    while !p.asleep() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    true
}

/// One round of `n` samples of one path, added to `s`.
fn measure(s: &mut Sample, p: &mut dyn RoundTrip, op: Op, n: usize, gap: Option<Duration>) {
    if gap.is_none() {
        // Warm up: wakes the SQ thread (that first round trip is cold) and settles the caches.
        for _ in 0..n.clamp(1, 200) {
            let _ = p.once(op);
        }
    }
    let w0 = p.wakeups();
    let b0 = p.bus();
    let first = s.ns.len();
    for _ in 0..n {
        if let Some(g) = gap {
            std::thread::sleep(g);
            if p.asleep() {
                s.asleep += 1;
            }
        }
        let t = Instant::now();
        let r = p.once(op);
        let dt = t.elapsed().as_nanos() as f64;
        match r {
            Ok(v) if v == op.want() => s.ns.push(dt),
            _ => s.failed += 1,
        }
    }
    s.wakeups += p.wakeups() - w0;
    let round = Percentiles::of(s.ns.get(first..).unwrap_or_default());
    s.rounds.push((round.p50, round.p99));
    if let (Some(b0), Some(b1)) = (b0, p.bus()) {
        let mut d = b1;
        d.sub(&b0);
        s.bus.get_or_insert_with(BusCounters::default).add(&d);
    }
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: u32) -> std::io::Result<()> {
    if cpu as usize >= CpuSet::MAX_CPU {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("CPU numbers go up to {}", CpuSet::MAX_CPU - 1),
        ));
    }
    let mut set = CpuSet::new();
    set.set(cpu as usize);
    set_affinity(&set)
}

/// Sets the calling thread's affinity.
fn set_affinity(set: &CpuSet) -> std::io::Result<()> {
    Ok(sched_setaffinity(None, set)?)
}

/// Median, minimum and maximum of per-round values.
fn spread(v: &[f64]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    let med = if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    };
    (med, v[0], v[v.len() - 1])
}

/// What both rings of a pair are built with.
struct Setup {
    /// The measuring thread's CPU (`--lane-cpu`), and its affinity before it was pinned: a pair is built with
    /// the latter, so that the device ring's waker thread does not inherit the pin.
    lane_cpu: Option<u32>,
    first_affinity: CpuSet,
    idle: Duration,
    sq_cpu: Option<u32>,
    waker: WakerConfig,
    fd: i32,
    access: gpu_uring::ring::DeviceAccess,
}

/// One device ring and one io-uring crate ring, measured side by side in a round.
struct Pair {
    ring: DeviceRing,
    /// Arena offset of the byte `write1` writes.
    line: u32,
    crate_path: CratePath,
}

impl Setup {
    /// A new pair of rings (exits the run if either cannot be built).
    fn pair(&self) -> Pair {
        if self.lane_cpu.is_some() {
            set_affinity(&self.first_affinity)
                .unwrap_or_else(|e| fail(&format!("restoring the thread's affinity: {e}")));
        }
        let ring = DeviceRing::new(RingConfig {
            lanes: 1,
            sq_thread_idle: self.idle,
            sq_thread_cpu: self.sq_cpu,
            waker: self.waker.clone(),
            fixed_files: vec![self.fd],
            access: self.access.clone(),
            ..Default::default()
        })
        .unwrap_or_else(|e| fail(&format!("creating the device ring: {e}")));
        let line = ring.view().line_off(0, 0);
        ring.view().write_bytes(line, b"x");

        let mut builder = IoUring::builder();
        builder.setup_sqpoll(self.idle.as_millis() as u32);
        if let Some(cpu) = self.sq_cpu {
            builder.setup_sqpoll_cpu(cpu);
        }
        let cring = builder
            .build(256)
            .unwrap_or_else(|e| fail(&format!("io-uring crate ring with SQPOLL: {e}")));
        let mut buf = Box::new([b'x'; 4096]);
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: `buf` is owned by `CratePath` below and outlives the ring's use of it (the ring is dropped with
        // it, after every request has completed).
        unsafe { cring.submitter().register_buffers(&[iov]) }
            .unwrap_or_else(|e| fail(&format!("registering the crate ring's buffer: {e}")));
        cring
            .submitter()
            .register_files(&[self.fd])
            .unwrap_or_else(|e| fail(&format!("registering the crate ring's file: {e}")));
        if let Some(cpu) = self.lane_cpu {
            pin_to(cpu).unwrap_or_else(|e| fail(&format!("pinning to CPU {cpu}: {e}")));
        }
        Pair {
            ring,
            line,
            crate_path: CratePath { ring: cring, buf },
        }
    }
}

fn main() {
    let cli = gpu_uring_experiments::cli::parse::<Cli>(Devices::CpuOnly);
    let mut exp = Experiment::new("ring_latency", cli.common.clone());
    exp.cpu_only();
    let idle = Duration::from_millis(cli.sq_idle_ms.max(1));
    let gap = Duration::from_millis(cli.cold_gap_ms.unwrap_or(2 * cli.sq_idle_ms.max(1) + 5));
    let devnull = std::fs::File::options()
        .write(true)
        .open("/dev/null")
        .unwrap_or_else(|e| fail(&format!("opening /dev/null: {e}")));
    let fd = devnull.as_raw_fd();

    let mut waker = WakerConfig::default();
    if let Some(us) = cli.waker_min_sleep_us {
        waker.min_sleep = Duration::from_micros(us);
    }
    if let Some(us) = cli.waker_spin_us {
        waker.spin = Duration::from_micros(us);
    }
    let waker_desc = format!(
        "waker spin {:?}, min sleep {:?}, max sleep {:?}",
        waker.spin, waker.min_sleep, waker.max_sleep
    );
    let setup = Setup {
        lane_cpu: cli.lane_cpu,
        first_affinity: sched_getaffinity(None)
            .unwrap_or_else(|e| fail(&format!("reading the thread's affinity: {e}"))),
        idle,
        sq_cpu: cli.sq_cpu,
        waker,
        fd,
        access: exp.access(),
    };
    // Built at the first round (and, unless `--same-rings`, again at every round).
    let mut pair: Option<Pair> = None;
    let mut mode_lines = Vec::new();
    let mut unsettled = 0;

    let pinning = format!(
        "lane (both paths) on {}, SQ threads (both rings) on {}",
        cli.lane_cpu
            .map_or("any CPU".into(), |c| format!("CPU {c}")),
        cli.sq_cpu.map_or("any CPU".into(), |c| format!("CPU {c}"))
    );
    exp.say(&format!(
        "single lane, waited round trips; SQ idle {} ms; cold gap {} ms; {} hot / {} cold samples per row in {} \
         interleaved rounds; {pinning}; device ring's {waker_desc}",
        idle.as_millis(),
        gap.as_millis(),
        cli.hot,
        cli.cold,
        cli.rounds
    ));

    let mut rows = Vec::new();
    let mut ratio_rows = Vec::new();
    let mut round_rows = Vec::new();
    let mut hot_series = Vec::new();
    let mut cold_series = Vec::new();
    let mut failed = 0;
    let mut unquiet = 0;
    let mut c2c_unquiet = 0;
    // Hot rounds' (c2c ns, p50 ratio), for the note on rounds where transfers were nearly free.
    let mut c2c_ratio: Vec<(f64, f64)> = Vec::new();
    let rounds = cli.rounds as usize;
    for (mode, n, g) in [("hot", cli.hot, None), ("cold", cli.cold, Some(gap))] {
        for op in [Op::Nop, Op::Write1] {
            let mut dev_s = Sample::default();
            let mut crate_s = Sample::default();
            let mut c2c = Vec::new();
            for r in 0..rounds {
                if !cli.same_rings {
                    // A new pair for this round. The old one goes first, and its SQ threads with it: a dropped
                    // ring's SQ thread polls on a core until the kernel's teardown stops it.
                    if let Some(old) = pair.take() {
                        mode_lines.push(ring_mode_line(&old.ring));
                        drop(old);
                        if !settle_sqpoll(Duration::from_secs(2)) {
                            unsettled += 1;
                        }
                    }
                }
                let Pair {
                    ring,
                    line,
                    crate_path,
                } = pair.get_or_insert_with(|| setup.pair());
                let ring: &DeviceRing = ring;
                let mut dev = DevicePath {
                    ring,
                    lane: Lane::new(ring.view(), 0),
                    line: *line,
                };
                if g.is_none() {
                    // The core-to-core round trip now, with both SQ threads asleep (helper on the SQ threads'
                    // CPU if pinned): which regime the round runs in (experiments/README.md).
                    exp.phase(&format!(
                        "{mode} {op:?} round {}/{rounds}, core-to-core",
                        r + 1
                    ));
                    if !(quiet(&mut dev, idle) && quiet(crate_path, idle)) {
                        c2c_unquiet += 1;
                    }
                    c2c.push(core_to_core_rtt(20, cli.sq_cpu).unwrap_or(f64::NAN));
                }
                // Round r's share of the samples; the order alternates so neither path always goes first.
                let k = n / rounds + usize::from(r < n % rounds);
                let mut order = [true, false];
                if r % 2 == 1 {
                    order.reverse();
                }
                for device in order {
                    let path = if device {
                        "device-ring"
                    } else {
                        "io-uring-crate"
                    };
                    exp.phase(&format!("{mode} {op:?} round {}/{rounds}, {path}", r + 1));
                    let (p, other, s): (&mut dyn RoundTrip, &mut dyn RoundTrip, _) = if device {
                        (&mut dev, crate_path, &mut dev_s)
                    } else {
                        (crate_path, &mut dev, &mut crate_s)
                    };
                    if g.is_none() && !quiet(other, idle) {
                        unquiet += 1;
                    }
                    measure(s, p, op, k, g);
                }
            }
            let mut per_round = Vec::new();
            for (path, s) in [("device-ring", &dev_s), ("io-uring-crate", &crate_s)] {
                failed += s.failed;
                let pc = Percentiles::of(&s.ns);
                let us = |v: f64| v / 1e3;
                let mut row = Record::new()
                    .text("path", path)
                    .text("op", op.name())
                    .text("mode", mode)
                    .int("n", pc.n as u64)
                    .int("rounds", s.rounds.len() as u64);
                row = row
                    .float(
                        "asleep",
                        if g.is_some() {
                            s.asleep as f64 / n.max(1) as f64
                        } else {
                            0.0
                        },
                        2,
                    )
                    .float("min_us", us(pc.min), 2)
                    .float("p50_us", us(pc.p50), 2)
                    .float("p90_us", us(pc.p90), 2)
                    .float("p99_us", us(pc.p99), 2)
                    .float("p999_us", us(pc.p999), 2)
                    .float("max_us", us(pc.max), 2)
                    .float("mean_us", us(pc.mean), 2)
                    .int("waker_wakeups", s.wakeups)
                    .int("failed", s.failed as u64);
                let b = s
                    .bus
                    .map(|b| b.per_op(s.ns.len() as u64 + s.failed as u64))
                    .unwrap_or_default();
                row = row
                    .float("host_rmw_per_op", b.host_rmw, 2)
                    .float("host_waited_loads_per_op", b.host_waited_loads, 2)
                    .float("host_stores_per_op", b.host_stores, 2)
                    .float("local_rmw_per_op", b.local_rmw, 2);
                rows.push(row);
                per_round.push(&s.rounds);
                let series = Series {
                    label: format!("{path} {}", op.name()),
                    points: [pc.p50, pc.p90, pc.p99, pc.p999]
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (i as f64, us(*v).max(1e-3)))
                        .collect(),
                };
                if g.is_some() {
                    cold_series.push(series);
                } else {
                    hot_series.push(series);
                }
            }
            // Per-round ratios, device ring / crate, of the rounds measured side by side.
            let ratio = |f: fn(&(f64, f64)) -> f64| -> Vec<f64> {
                per_round[0]
                    .iter()
                    .zip(per_round[1].iter())
                    .map(|(d, c)| f(d) / f(c))
                    .collect()
            };
            let (p50, p50_lo, p50_hi) = spread(&ratio(|x| x.0));
            let (p99, p99_lo, p99_hi) = spread(&ratio(|x| x.1));
            let (c2c_med, c2c_lo, c2c_hi) = spread(&c2c);
            for (r, ((d, c), t)) in per_round[0]
                .iter()
                .zip(per_round[1].iter())
                .zip(&c2c)
                .enumerate()
            {
                round_rows.push(
                    Record::new()
                        .text("op", op.name())
                        .text("mode", mode)
                        .int("round", r as u64 + 1)
                        .float("c2c_us", t / 1e3, 3)
                        .float("device_p50_us", d.0 / 1e3, 3)
                        .float("crate_p50_us", c.0 / 1e3, 3)
                        .float("p50_ratio", d.0 / c.0, 3),
                );
                c2c_ratio.push((*t, d.0 / c.0));
            }
            let mut ratio_row = Record::new()
                .text("op", op.name())
                .text("mode", mode)
                .int("rounds", per_round[0].len() as u64)
                .float("p50_ratio", p50, 3)
                .float("p50_ratio_min", p50_lo, 3)
                .float("p50_ratio_max", p50_hi, 3)
                .float("p99_ratio", p99, 3)
                .float("p99_ratio_min", p99_lo, 3)
                .float("p99_ratio_max", p99_hi, 3);
            if !c2c.is_empty() {
                ratio_row = ratio_row
                    .float("c2c_us", c2c_med / 1e3, 3)
                    .float("c2c_us_min", c2c_lo / 1e3, 3)
                    .float("c2c_us_max", c2c_hi / 1e3, 3);
            }
            ratio_rows.push(ratio_row);
        }
    }
    exp.table(
        "ring_latency",
        "ring_latency: single-lane round trip (microseconds)",
        &rows,
    );
    exp.table(
        "ring_latency_ratio",
        "ring_latency: device ring / io-uring crate, per round (median over rounds, min, max)",
        &ratio_rows,
    );
    exp.say(
        "c2c_us: a cache line's round trip between this thread and another (on the SQ threads' CPU if pinned), \
         measured before each hot round with both SQ threads asleep; the lane and the SQ thread make that \
         transfer twice per operation.",
    );
    if cli.per_round {
        exp.table(
            "ring_latency_rounds",
            "ring_latency: hot rounds one by one",
            &round_rows,
        );
    } else {
        exp.write_csv("ring_latency_rounds", &round_rows);
    }
    if unsettled > 0 {
        exp.say(&format!(
            "note: {unsettled} rounds started while an SQ thread of an earlier pair was still running"
        ));
    }
    let (cheap, dear): (Vec<_>, Vec<_>) = c2c_ratio
        .iter()
        .filter(|(t, _)| t.is_finite())
        .partition(|(t, _)| *t < CHEAP_C2C_NS);
    if !cheap.is_empty() {
        let median = |v: &[&(f64, f64)]| {
            let r: Vec<f64> = v.iter().map(|x| x.1).collect();
            spread(&r).0
        };
        let others = if dear.is_empty() {
            String::new()
        } else {
            format!(", {:.2} in the other {}", median(&dear), dear.len())
        };
        exp.say(&format!(
            "note: in {} of {} hot rounds a cache line's round trip between two threads took under {:.2} µs (the \
             two threads on one core, or on cores that share a cache): transfers are nearly free there, and the \
             lane's own work (lane_work) sets the ratio. Median p50 ratio {:.2} in those rounds{others}.",
            cheap.len(),
            cheap.len() + dear.len(),
            CHEAP_C2C_NS / 1e3,
            median(&cheap),
        ));
    }
    if c2c_unquiet > 0 {
        exp.say(&format!(
            "note: {c2c_unquiet} core-to-core measurements ran while an SQ thread was still awake"
        ));
    }
    if unquiet > 0 {
        exp.say(&format!(
            "note: {unquiet} hot rounds started while the other path's SQ thread was still awake"
        ));
    }
    for (name, series, what) in [
        (
            "ring_latency_hot.svg",
            &hot_series,
            "hot (SQ thread polling)",
        ),
        (
            "ring_latency_cold.svg",
            &cold_series,
            "cold (SQ thread asleep before each request)",
        ),
    ] {
        let path = exp.out_dir().join(name);
        match line_chart(
            &path,
            &format!("Single-lane round trip, {what}"),
            "percentile",
            "latency (us, log scale)",
            Some(&["p50", "p90", "p99", "p99.9"]),
            true,
            series,
        ) {
            Ok(()) => exp.say(&format!("wrote {}", path.display())),
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    exp.say(
        "device-ring: lane reserves/fills/publishes and reaps its own CQE, no syscall (the waker wakes a sleeping \
         SQ thread); io-uring-crate: push + submit() (enters the kernel only to wake a sleeping SQ thread) + poll \
         the CQ; both wait with the same backoff function (the lane's: spin, then yield, then sleep).",
    );
    if let Some(last) = pair.take() {
        mode_lines.push(ring_mode_line(&last.ring));
    }
    // One line per distinct outcome (every pair's counters are in one of them).
    mode_lines.sort();
    mode_lines.dedup();
    for l in &mode_lines {
        exp.say(l);
    }
    if failed > 0 {
        eprintln!("FAILED: {failed} round trips failed or returned the wrong result");
        std::process::exit(1);
    }
}
