//! pump_latency: what the megakernel io_queue pump costs.
//!
//! 1. Publish→complete latency (p50/p99/p99.9) of one lane's NOP and 4 KiB READ while the pump is hot
//!    (back-to-back requests), and after it has gone idle (a pause longer than its backoff before each one).
//! 2. Idle cost vs cold latency: for several `max_park` bounds, the pump thread's CPU time and wake-ups over an
//!    idle second, and the publish→complete latency of a NOP published to the fully parked pump.
//! 3. 4 KiB READ throughput through the pump vs the same reads submitted directly by device lanes into a device
//!    ring (`Program::Read` on the CPU reference device), for 1, 8 and 32 lanes, each lane with one read in
//!    flight, checksummed on both paths against the host's checksum.
//!
//! Output: tables (or `--json` rows), `latency.csv`, `idle.csv`, `throughput.csv`, and `latency.svg`,
//! `idle.svg`, `throughput.svg`.

use gpu_uring::backend::Programs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use gpu_uring::backend::cpu::run_queue_lanes;
use gpu_uring::backend::{checksum, open, DeviceSelector, Program};
use gpu_uring::protocol::DeviceRing;
use gpu_uring::pump::{IdleConfig, Pump, PumpConfig, PumpFile, QueueLane, Request};
use gpu_uring::ring::RingConfig;
use gpu_uring_experiments::cli::Devices;
use gpu_uring_experiments::{
    bar_chart, data_file, fail, loadavg, CommonArgs, Experiment, Percentiles, Record,
};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "publish→complete latency and 4 KiB READ throughput of the io_queue pump"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Hot samples per op.
    #[arg(long, default_value_t = 20_000)]
    hot: u32,
    /// Cold samples per op (each after `--pause-ms` of idleness).
    #[arg(long, default_value_t = 200)]
    cold: u32,
    /// Idle pause before each cold sample, in ms.
    #[arg(long, default_value_t = 20)]
    pause_ms: u64,
    /// File size for the throughput runs, MiB.
    #[arg(long, default_value_t = 64)]
    mib: u64,
    /// `max_park` bounds (µs) for the idle-cost sweep.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
    park_us: Vec<u64>,
    /// Runs of each throughput configuration (median and best are reported).
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    /// Lane counts for the throughput runs.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32", value_parser = clap::value_parser!(u32).range(1..))]
    lanes: Vec<u32>,
}

/// The longest any single wait may take before the experiment gives up.
const WAIT: Duration = Duration::from_secs(60);

fn stats_us(v: Vec<f64>) -> (f64, f64, f64) {
    let p = Percentiles::of(&v);
    (p.p50, p.p99, p.p999)
}

/// One request's publish→complete time, in µs.
fn one(lane: &mut QueueLane<'_>, req: &Request) -> f64 {
    let slot = lane.alloc(1 << 20).expect("a free slot");
    let t = Instant::now();
    lane.publish(slot, req);
    let c = lane
        .wait_until(slot, t + WAIT)
        .expect("completes within a minute");
    let us = t.elapsed().as_secs_f64() * 1e6;
    assert!(c.done, "{c:?}");
    lane.free(slot);
    us
}

fn host_checksum(f: &std::fs::File, total: u64, chunk: u64) -> u64 {
    let mut sum = 0u64;
    let mut buf = vec![0u8; chunk as usize];
    let mut off = 0;
    while off < total {
        let n = (total - off).min(chunk) as usize;
        f.read_exact_at(&mut buf[..n], off).unwrap();
        sum = sum.wrapping_add(checksum(off, &buf[..n]));
        off += n as u64;
    }
    sum
}

/// Lanes read chunks `l, l + lanes, …` through the pump into their own 4 KiB of region 0, one read in flight
/// each, and checksum them in place. Returns (seconds, checksum, SQEs per batch).
fn through_pump(
    data: &std::fs::File,
    lanes: u32,
    chunks: u64,
    idle: IdleConfig,
) -> (f64, u64, Option<f64>) {
    let pump = Pump::spawn(PumpConfig {
        slots: (lanes * 2).max(32),
        regions: vec![lanes as usize * 4096],
        files: vec![PumpFile::reader(data).unwrap()],
        idle,
        ..Default::default()
    })
    .expect("starting the pump");
    let t = Instant::now();
    let sums = run_queue_lanes(&pump, lanes, |lane| {
        let id = lane.id() as u64;
        let v = lane.view();
        let mut sum = 0u64;
        let mut c = id;
        while c < chunks {
            let slot = lane.alloc(1 << 20).expect("slot");
            lane.publish(slot, &Request::read(0, c * 4096, 0, id * 4096, 4096));
            let r = lane
                .wait_until(slot, Instant::now() + WAIT)
                .expect("completes within a minute");
            assert_eq!(r.bytes(), Some(4096), "{r:?}");
            // SAFETY: the READ into these bytes is DONE and nothing else writes them.
            let bytes = unsafe { v.region_slice(0, id * 4096, 4096) };
            sum = sum.wrapping_add(checksum(c * 4096, bytes));
            lane.free(slot);
            c += lanes as u64;
        }
        sum
    })
    .unwrap_or_else(|e| fail(&e.to_string()));
    let el = t.elapsed().as_secs_f64();
    let st = pump.stop().expect("stopping the pump");
    let sum = sums.iter().fold(0u64, |a, &b| a.wrapping_add(b));
    (el, sum, Some(st.sqes as f64 / st.batches.max(1) as f64))
}

/// The same reads as READ_FIXED SQEs the lanes write into a device ring (SQPOLL): `Program::Read`.
fn through_ring(data: &std::fs::File, lanes: u32, total: u64) -> (f64, u64, Option<f64>) {
    let ring = DeviceRing::new(RingConfig {
        lanes,
        fixed_buffer_bytes: lanes as usize * 4096,
        fixed_files: vec![data.as_raw_fd()],
        ..Default::default()
    })
    .expect("creating the device ring");
    let (cpu, _) = open(&DeviceSelector::Cpu).expect("the CPU reference device always opens");
    let rep = cpu
        .run(
            &ring,
            lanes,
            &Program::Read {
                file: 0,
                chunk: 4096,
                total,
                depth: 1,
            },
            Duration::from_secs(300),
        )
        .expect("running Program::Read");
    let tot = rep.total();
    let sum = if tot.failed == 0 {
        tot.checksum
    } else {
        !tot.checksum
    };
    log::info!(
        "direct path {}",
        gpu_uring_experiments::ring_mode_line(&ring)
    );
    (rep.elapsed.as_secs_f64(), sum, None)
}

fn main() -> ExitCode {
    let args = gpu_uring_experiments::cli::parse::<Args>(Devices::CpuOnly);
    let mut exp = Experiment::new("pump_latency", args.common.clone());
    // The io_queue's device side exists for the CPU reference device only (its lanes are CPU threads).
    exp.cpu_only();
    let dir = exp.out_dir().to_path_buf();
    let total = args.mib << 20;
    let data = data_file(&dir, ".pump_latency.data", total)
        .unwrap_or_else(|e| fail(&format!("creating the data file in {}: {e}", dir.display())));
    let idle = IdleConfig::default();
    let maxl = args.lanes.iter().copied().max().unwrap_or(1).max(1);

    // ---- latency --------------------------------------------------------------------------------------------
    exp.phase("latency");
    let pump = Pump::spawn(PumpConfig {
        slots: 256,
        regions: vec![maxl as usize * 4096],
        files: vec![PumpFile::reader(&data).unwrap()],
        idle,
        ..Default::default()
    })
    .expect("starting the pump");
    let mut lat_rows: Vec<Record> = Vec::new();
    let mut lat_chart: Vec<(String, f64, f64)> = Vec::new();
    {
        let mut lane = QueueLane::new(pump.view(), 0);
        let reqs = [
            ("nop", Request::nop()),
            ("read4k", Request::read(0, 0, 0, 0, 4096)),
        ];
        for (name, req) in &reqs {
            for _ in 0..2000 {
                one(&mut lane, req);
            }
            let hot: Vec<f64> = (0..args.hot)
                .map(|i| {
                    let mut r = *req;
                    if r.len > 0 {
                        r.file_offset = (i as u64 * 4096) % total;
                    }
                    one(&mut lane, &r)
                })
                .collect();
            let parks0 = pump.stats().idle_parks;
            let cold: Vec<f64> = (0..args.cold)
                .map(|_| {
                    std::thread::sleep(Duration::from_millis(args.pause_ms));
                    one(&mut lane, req)
                })
                .collect();
            let parks = pump.stats().idle_parks - parks0;
            for (state, v) in [("hot", hot), ("cold", cold)] {
                let n = v.len();
                let (p50, p99, p999) = stats_us(v);
                lat_chart.push((format!("{name} {state}"), p50, p99));
                lat_rows.push(
                    Record::new()
                        .text("device", "cpu")
                        .text("op", *name)
                        .text("pump", state)
                        .int("samples", n)
                        .float("p50_us", p50, 3)
                        .float("p99_us", p99, 3)
                        .float("p999_us", p999, 3)
                        .int("idle_parks", if state == "cold" { parks } else { 0 })
                        .float("loadavg_1m", loadavg(), 2),
                );
            }
        }
    }
    pump.stop().expect("stopping the pump");
    drop(pump);
    exp.table("latency", "publish→complete latency (µs)", &lat_rows);

    // ---- idle cost vs cold latency ------------------------------------------------------------------------
    let mut idle_rows: Vec<Record> = Vec::new();
    let mut idle_chart = (Vec::new(), Vec::new(), Vec::new());
    for &park_us in &args.park_us {
        exp.phase(&format!("idle cost, max_park {park_us} µs"));
        let park = Duration::from_micros(park_us.max(1));
        let cfg = IdleConfig {
            max_park: park,
            min_park: idle.min_park.min(park),
            ..idle
        };
        let pump = Pump::spawn(PumpConfig {
            slots: 16,
            idle: cfg,
            ..Default::default()
        })
        .expect("starting the pump");
        // Let the backoff reach max_park, then watch one idle second.
        std::thread::sleep(Duration::from_millis(50).max(park * 20));
        let (c0, t0, p0) = (pump.cpu_time(), Instant::now(), pump.stats().idle_parks);
        std::thread::sleep(Duration::from_secs(1));
        let (c1, el, p1) = (pump.cpu_time(), t0.elapsed(), pump.stats().idle_parks);
        let cpu_pct = match (c0, c1) {
            (Some(a), Some(b)) => (b - a).as_secs_f64() / el.as_secs_f64() * 100.0,
            _ => f64::NAN,
        };
        let wakeups = (p1 - p0) as f64 / el.as_secs_f64();
        let mut lane = QueueLane::new(pump.view(), 0);
        let pause = Duration::from_millis(args.pause_ms).max(park * 20);
        let cold: Vec<f64> = (0..args.cold.div_ceil(2))
            .map(|_| {
                std::thread::sleep(pause);
                one(&mut lane, &Request::nop())
            })
            .collect();
        pump.stop().expect("stopping the pump");
        let (p50, p99, _) = stats_us(cold);
        idle_chart.0.push(format!("max_park {park_us} µs"));
        idle_chart.1.push(p50);
        idle_chart.2.push(p99);
        idle_rows.push(
            Record::new()
                .text("device", "cpu")
                .int("max_park_us", park_us)
                .float("idle_cpu_pct", cpu_pct, 3)
                .float("idle_wakeups_per_s", wakeups, 3)
                .float("cold_nop_p50_us", p50, 3)
                .float("cold_nop_p99_us", p99, 3)
                .float("loadavg_1m", loadavg(), 2),
        );
    }
    exp.table("idle", "idle cost vs cold latency", &idle_rows);
    chart(bar_chart(
        &dir.join("idle.svg"),
        "io_queue pump: cold NOP latency vs max_park (CPU reference device)",
        "µs",
        &idle_chart.0,
        &[("p50", idle_chart.1), ("p99", idle_chart.2)],
    ));

    // ---- throughput -----------------------------------------------------------------------------------------
    let expect = host_checksum(&data, total, 4096);
    let chunks = total / 4096;
    let mut tp_rows: Vec<Record> = Vec::new();
    let mut pump_mbs = Vec::new();
    let mut ring_mbs = Vec::new();
    let mut ok = true;
    for &lanes in &args.lanes {
        exp.phase(&format!("throughput, {lanes} lanes"));
        for path in ["pump", "device ring"] {
            // Each configuration runs `--repeat` times: this is a shared, noisy machine, so the table shows
            // the median and the best run, and the load average when it ran.
            let mut secs = Vec::new();
            let mut batch = Vec::new();
            for _ in 0..args.repeat.max(1) {
                let (el, sum, per_batch) = if path == "pump" {
                    through_pump(&data, lanes, chunks, idle)
                } else {
                    through_ring(&data, lanes, total)
                };
                ok &= sum == expect;
                secs.push(el);
                batch.extend(per_batch);
            }
            secs.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let median = secs[secs.len() / 2];
            let best = secs[0];
            let mbs = total as f64 / median / 1e6;
            if path == "pump" {
                pump_mbs.push(mbs);
            } else {
                ring_mbs.push(mbs);
            }
            let mut row = Record::new()
                .text("device", "cpu")
                .text("path", path)
                .int("lanes", lanes)
                .int("reads", chunks)
                .int("runs", secs.len())
                .float("median_reads_per_s", chunks as f64 / median, 3)
                .float("best_reads_per_s", chunks as f64 / best, 3)
                .float("median_mb_per_s", mbs, 3);
            // Only the pump batches SQEs; the device ring's rows leave the column empty.
            if !batch.is_empty() {
                row = row.float(
                    "sqes_per_batch",
                    batch.iter().sum::<f64>() / batch.len() as f64,
                    3,
                );
            }
            tp_rows.push(
                row.float("loadavg_1m", loadavg(), 2)
                    .pass("checksum_ok", ok),
            );
        }
    }
    exp.table("throughput", "4 KiB READ throughput", &tp_rows);

    let labels: Vec<String> = lat_chart.iter().map(|r| r.0.clone()).collect();
    chart(bar_chart(
        &dir.join("latency.svg"),
        "io_queue pump: publish→complete latency (CPU reference device)",
        "µs",
        &labels,
        &[
            ("p50", lat_chart.iter().map(|r| r.1).collect()),
            ("p99", lat_chart.iter().map(|r| r.2).collect()),
        ],
    ));
    let labels: Vec<String> = args.lanes.iter().map(|l| format!("{l} lanes")).collect();
    exp.say(&format!(
        "load average (1 min) at the end: {:.2}",
        loadavg()
    ));
    chart(bar_chart(
        &dir.join("throughput.svg"),
        "4 KiB READ throughput (median run): pump vs device ring (CPU reference device)",
        "MB/s",
        &labels,
        &[("pump", pump_mbs), ("device ring", ring_mbs)],
    ));
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: a checksum did not match the host's");
        ExitCode::FAILURE
    }
}

/// Reports a chart that could not be drawn (the tables and CSV are the results; the SVGs illustrate them).
fn chart(r: Result<(), String>) {
    if let Err(e) = r {
        eprintln!("warning: {e}");
    }
}
