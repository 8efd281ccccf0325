//! cpu_mt — `--threads` CPU threads (default 10), each one lane of the CPU reference device, write through
//! ONE SQPOLL device ring while the waker nudges the SQ thread (the seed experiment `io_uring_cpu_mt`).
//!
//! Three runs, one table row each:
//! - `continuous/ff`: every thread writes `--ops` `--len`-byte buffers to /dev/null back to back as
//!   fire-and-forget operations (a CQE each, reaped by whichever lane passes by), then flushes.
//! - `continuous/skip`: the same with `IOSQE_CQE_SKIP_SUCCESS` (no CQE on success); the run ends when the
//!   kernel has consumed every SQE.
//! - `bursty/ff`: `--bursts` bursts of `--burst` writes per thread, with `--gap-ms` of idleness before each —
//!   longer than the SQ thread's idle time (`--sq-idle-ms`), so the SQ thread is asleep when each burst starts
//!   and only the waker can wake it. Reports the wake-ups per burst and how long a burst takes from its first
//!   submission to its last completion (it includes the waker's reaction).
//!
//! Throughput is ops/s and MB/s over the run's wall time; `waker_wakeups` counts
//! `io_uring_enter(IORING_ENTER_SQ_WAKEUP)` calls the waker made during the run.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use gpu_uring::backend::cpu::run_lanes;
use gpu_uring::protocol::DeviceRing;
use gpu_uring::protocol::{CompletionMode, FileRef, Lane, DEFAULT_BUDGET};
use gpu_uring::ring::RingConfig;
use gpu_uring_experiments::cli::Devices;
use gpu_uring_experiments::{fail, ring_mode_line, CommonArgs, Experiment, Percentiles, Record};

/// CPU threads as lanes writing through one SQPOLL device ring: throughput and waker wake-ups.
#[derive(Parser, Debug)]
#[command(name = "cpu_mt", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Threads (lanes).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    threads: u32,
    /// Writes per thread in the continuous runs.
    #[arg(long, default_value_t = 50_000)]
    ops: u32,
    /// Bytes per write (≤ 256, the staging line size).
    #[arg(long, default_value_t = 64)]
    len: u32,
    /// Bursts per thread in the bursty run.
    #[arg(long, default_value_t = 20)]
    bursts: u32,
    /// Writes per burst.
    #[arg(long, default_value_t = 256)]
    burst: u32,
    /// Idle gap before each burst, in milliseconds (make it longer than --sq-idle-ms).
    #[arg(long, default_value_t = 30)]
    gap_ms: u64,
    /// SQPOLL idle time in milliseconds.
    #[arg(long, default_value_t = 10)]
    sq_idle_ms: u64,
}

struct Run {
    ops: u64,
    failed: u64,
    elapsed: Duration,
    wakeups: u64,
    bursts: Vec<f64>,
}

fn main() {
    let cli = gpu_uring_experiments::cli::parse::<Cli>(Devices::CpuOnly);
    let mut exp = Experiment::new("cpu_mt", cli.common.clone());
    exp.cpu_only();
    if cli.len == 0 || cli.len > 256 {
        fail("--len must be in 1..=256");
    }
    let devnull = std::fs::File::options()
        .write(true)
        .open("/dev/null")
        .unwrap_or_else(|e| fail(&format!("opening /dev/null: {e}")));
    let fd = devnull.as_raw_fd();
    let ring = DeviceRing::new(RingConfig {
        lanes: cli.threads.max(1),
        sq_thread_idle: Duration::from_millis(cli.sq_idle_ms.max(1)),
        fixed_files: vec![fd],
        access: exp.access(),
        ..Default::default()
    })
    .unwrap_or_else(|e| fail(&format!("creating the device ring: {e}")));
    exp.say(&format!(
        "{} threads, one SQPOLL device ring ({} SQ entries, SQ idle {} ms), {}-byte writes to /dev/null",
        cli.threads,
        ring.layout().sq_entries,
        cli.sq_idle_ms,
        cli.len
    ));

    let mut rows = Vec::new();
    for (mode, completion) in [
        ("continuous", CompletionMode::FireAndForget),
        ("continuous", CompletionMode::SkipSuccess),
        ("bursty", CompletionMode::FireAndForget),
    ] {
        let bursty = mode == "bursty";
        let r = run(&ring, &cli, completion, bursty);
        let bytes = r.ops * cli.len as u64;
        let secs = r.elapsed.as_secs_f64();
        let mut row = Record::new()
            .text("mode", mode)
            .text(
                "completion",
                match completion {
                    CompletionMode::SkipSuccess => "skip",
                    _ => "ff",
                },
            )
            .int("threads", cli.threads)
            .int("ops", r.ops)
            .float("seconds", secs, 4)
            .float("ops_per_s", r.ops as f64 / secs, 0)
            .float("mb_per_s", bytes as f64 / secs / 1e6, 2)
            .int("waker_wakeups", r.wakeups);
        if bursty {
            let rounds = cli.bursts as f64;
            let b = r.bursts;
            let p = Percentiles::of(&b);
            row = row
                .float("wakeups_per_round", r.wakeups as f64 / rounds, 2)
                .float("burst_p50_us", p.p50 / 1e3, 1)
                .float("burst_p99_us", p.p99 / 1e3, 1);
        }
        rows.push(row.int("failed", r.failed));
    }
    exp.table(
        "cpu_mt",
        "cpu_mt: CPU threads as lanes through one SQPOLL device ring",
        &rows,
    );
    exp.say(
        "bursty: the SQ thread sleeps in every gap, so each round of bursts needs at least one wake-up; \
         burst_*_us is one thread's burst from first submission to last completion.",
    );
    let failed: u64 = rows
        .iter()
        .map(|r| match r.get("failed") {
            Some(gpu_uring_experiments::Cell::Int(n)) => *n as u64,
            _ => 0,
        })
        .sum();
    exp.say(&ring_mode_line(&ring));
    drop(ring);
    if failed > 0 {
        eprintln!("FAILED: {failed} operations failed");
        std::process::exit(1);
    }
}

fn run(ring: &DeviceRing, cli: &Cli, c: CompletionMode, bursty: bool) -> Run {
    let view = ring.view();
    let errs_before = view.local_snapshot().ff_errors as u64;
    let w0 = ring.waker_stats().wakeups;
    let start = Instant::now();
    let per_lane = run_lanes(ring, cli.threads, |lane| {
        let off = lane.view().line_off(lane.id(), 0);
        let fill: Vec<u8> = (0..cli.len).map(|i| b'a' + (i % 26) as u8).collect();
        lane.view().write_bytes(off, &fill);
        let (mut ops, mut failed) = (0u64, 0u64);
        let mut bursts = Vec::new();
        let write = |lane: &mut Lane<'_>| {
            lane.write(FileRef::Fixed(0), off, cli.len, -1, c, DEFAULT_BUDGET)
                .is_ok()
        };
        if bursty {
            for _ in 0..cli.bursts {
                std::thread::sleep(Duration::from_millis(cli.gap_ms));
                let t = Instant::now();
                for _ in 0..cli.burst {
                    if write(lane) {
                        ops += 1;
                    } else {
                        failed += 1;
                    }
                }
                // A flush that runs out of budget leaves writes unaccounted for: count it as a failure.
                if lane.flush(DEFAULT_BUDGET).is_err() {
                    failed += 1;
                }
                bursts.push(t.elapsed().as_nanos() as f64);
            }
        } else {
            for _ in 0..cli.ops {
                if write(lane) {
                    ops += 1;
                } else {
                    failed += 1;
                }
            }
        }
        (ops, failed, bursts)
    })
    .unwrap_or_else(|e| fail(&e.to_string()));
    // Skip-success writes post nothing on success: the run ends when the kernel has consumed every SQE.
    let l = ring.layout();
    let (head, tail) = (view.u32_at(l.sq_head), view.u32_at(l.sq_tail));
    let mut i = 0u32;
    while head.load(Ordering::Acquire) != tail.load(Ordering::Acquire) {
        i += 1;
        if i > 64 {
            std::thread::yield_now();
        }
    }
    let elapsed = start.elapsed();
    let errs = view.local_snapshot().ff_errors as u64 - errs_before;
    let mut r = Run {
        ops: 0,
        failed: errs,
        elapsed,
        wakeups: ring.waker_stats().wakeups - w0,
        bursts: Vec::new(),
    };
    for (ops, failed, b) in per_lane {
        r.ops += ops;
        r.failed += failed;
        r.bursts.extend(b);
    }
    r
}
