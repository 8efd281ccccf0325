//! print_latency — three ways for device lanes to print, measured on one device in one run:
//!
//! - `direct`: the project's design. The lane formats its line into its staging line, writes one WRITE SQE into
//!   the device ring and publishes it; the kernel's SQPOLL thread executes it; the lane reaps the completion.
//!   Host threads involved: the ring's waker and the kernel's SQPOLL thread.
//! - `rpc`: the design of LLVM libc for GPUs ([`gpu_uring_experiments::rpc`]). The lane fills its mailbox in
//!   shared memory and raises a flag; a host server thread polls the mailboxes, calls `write(2)` and replies
//!   through the flag. Host thread involved: the server.
//! - `native`: the device's own printf. The CPU reference device has none; its "native" path is a plain
//!   `write(2)` from the lane's own thread (no helper thread at all), the floor any design can reach on a CPU.
//!   Vulkan compute has none (debugPrintfEXT needs the validation layers): no native row there.
//!
//! On Vulkan the rpc path's client is the `rpc_print` shader (device-shaders/src/rpc_print.comp: each lane
//! formats its line into its mailbox in imported host memory and waits for the same server's reply), run
//! through the HAL's API for caller-supplied kernels (`Device::load_kernel` / `launch`); on CUDA/HIP it is the
//! device library's port of it (`gu_rpc_print`, `LibraryDevice::library_kernel`). On those devices there are
//! no per-line timestamps inside a dispatch, so no single-lane percentiles: the throughput table's
//! `mean_us_per_line` at `--lanes 1` is the mean round trip.
//!
//! Measured: single-lane round trip (line handed over → its completion visible to the lane), min/p50/p90/p99/
//! p99.9/max over `--samples`; and `--lanes` lanes printing `--lines` lines each (one line in flight per lane
//! on every path): lines/s, MB/s, and CPU time per line of the host helper threads (waker + SQPOLL thread, or
//! the RPC server; per-thread CPU clocks) and of the whole process (`getrusage`). Lines are the
//! [`format_print_line`] lines every device prints, written to `/dev/null` unless `--print-to PATH`.
//!
//! `--rounds N` runs the throughput paths N times, interleaved round by round; `ratios.csv` holds direct's
//! lines/s over each other path's in the same round (median, min–max). `--print-to-pipe` prints into a pipe read
//! by a child `cat > /dev/null`.
//!
//! Output: tables (or `--json` rows), `latency.csv`, `throughput.csv`, `ratios.csv`, `latency.svg` (percentile
//! curves, log scale), `throughput.svg` (lines/s, median rounds) and `helper_cpu.svg` (helper CPU ns per line).
//! Exit status 1 if any line failed on any path.

use gpu_uring::backend::Programs;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use gpu_uring::backend::{cpu::spawn_lanes, expected_line, format_print_line, Device, Program};
use gpu_uring::protocol::{DeviceRing, Lane, LineBuf, PrintMode, PrintTarget};
use gpu_uring::ring::bus::PerOp;
use gpu_uring::ring::{DeviceAccess, RingConfig};
use gpu_uring_experiments::rpc::{
    MailboxArena, RpcClient, RpcServer, ServerConfig, MB_DONE, MB_FAILED, MB_FINISHED,
};
use gpu_uring_experiments::{
    bar_chart, fail, line_chart, loadavg, process_cpu, ring_mode_line, si, threads_cpu, CommonArgs,
    Experiment, Percentiles, Record, Series,
};

/// Direct SQE printing vs a mailbox RPC server vs the device's own print: latency and throughput.
#[derive(Parser, Debug)]
#[command(name = "print_latency", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Single-lane round trips measured per path (after 10% as many warm-up prints).
    #[arg(long, default_value_t = 20_000)]
    samples: u32,
    /// Lanes for the throughput runs.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    lanes: u32,
    /// Lines per lane in the throughput runs.
    #[arg(long, default_value_t = 20_000)]
    lines: u32,
    /// Where lines go (created or truncated); default /dev/null.
    #[arg(long, value_name = "PATH")]
    print_to: Option<PathBuf>,
    /// Print into a pipe read by a child process `cat > /dev/null` instead (a stream target: one write in flight).
    #[arg(long, conflicts_with = "print_to")]
    print_to_pipe: bool,
    /// Throughput rounds: every path runs once per round, the paths interleaved (direct, rpc[, native], direct,
    /// …), so that a change in the machine's load reaches them alike; the `ratios` table gives each ratio's
    /// median and min–max over the rounds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// SQPOLL idle time of the device ring, and how long the RPC server keeps spinning after its last request
    /// (both helpers poll the same way), in ms.
    #[arg(long, default_value_t = 50)]
    poll_idle_ms: u64,
    /// Give up on a run after this many seconds (its unprinted lines count as failed).
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
    /// How the direct path's lines reach the target: `group` (group commit through the ring's print log, many
    /// lines per write) or `line` (one write per line), PROTOCOL.md §7.
    #[arg(long, default_value = "group", value_parser = ["group", "line"])]
    print_mode: String,
    /// The direct path's print log in KiB (a power of two, 4 or more; `RingConfig::print_log_bytes`, 64 KiB by
    /// default): what lanes fill while the write in flight waits for the SQPOLL thread — here a scheduler slice.
    #[arg(long, value_name = "KIB", default_value = "4096")]
    print_log_kib: Option<u32>,
}

/// The direct path's print mode (`--print-mode`).
static PRINT_MODE: std::sync::OnceLock<PrintMode> = std::sync::OnceLock::new();

/// The direct path's print log size in bytes (`--print-log-kib`).
static PRINT_LOG_BYTES: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();

/// The RPC client shader (device-shaders/src/rpc_print.comp, built by device-shaders/build.sh).
static RPC_PRINT: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../device-shaders/spirv/rpc_print.spv"
));

/// The host threads that work for the direct path: the ring's waker, the kernel's SQPOLL thread (a thread of
/// this process, named `iou-sqp-<pid>`), and the kernel's io-wq workers (`iou-wrk-<pid>`), which execute the
/// writes the SQPOLL thread cannot complete without blocking — e.g. buffered writes to a regular file on a
/// filesystem without async buffered writes (ext4), which is where `--print-to FILE` lines go. Workers that
/// exit during a run (after seconds idle) drop out of this count; the process CPU column keeps them.
const DIRECT_HELPERS: &[&str] = &["gpu-uring-waker", "iou-sqp-", "iou-wrk-"];

/// One path's single-lane result.
struct Latency {
    path: &'static str,
    samples: Vec<f64>,
    failed: u64,
    /// Bus traffic per line (device-ring paths with host-thread lanes; PROTOCOL.md §1).
    bus: Option<PerOp>,
}

/// One path's many-lane result.
struct Throughput {
    path: &'static str,
    helpers: &'static str,
    lines: u64,
    bytes: u64,
    secs: f64,
    helper_cpu: Option<Duration>,
    process_cpu: Duration,
    failed: u64,
    /// Bus traffic per line (device-ring paths with host-thread lanes; PROTOCOL.md §1).
    bus: Option<PerOp>,
    /// Lines per write syscall the kernel executed (direct path: lines / print-log writes; one per line in
    /// line mode and on the other paths).
    lines_per_write: f64,
}

/// The bus columns of a row: per-line figures, or "-" for paths that do not go through a device ring.
fn bus_cols(r: Record, b: Option<PerOp>) -> Record {
    match b {
        Some(b) => r
            .float("host_rmw_per_op", b.host_rmw, 3)
            .float("host_waited_loads_per_op", b.host_waited_loads, 3)
            .float("host_stores_per_op", b.host_stores, 3)
            .float("local_rmw_per_op", b.local_rmw, 3),
        None => r
            .text("host_rmw_per_op", "-")
            .text("host_waited_loads_per_op", "-")
            .text("host_stores_per_op", "-")
            .text("local_rmw_per_op", "-"),
    }
}

fn main() {
    let cli = Cli::parse();
    let _ = PRINT_MODE.set(if cli.print_mode == "line" {
        PrintMode::LinePerWrite
    } else {
        PrintMode::GroupCommit
    });
    let _ = PRINT_LOG_BYTES.set(cli.print_log_kib.map(|k| k.saturating_mul(1024)));
    let mut exp = Experiment::new("print_latency", cli.common.clone());
    let dev = exp.open_device();
    let info = dev.info();
    if cli.lanes == 0 || cli.samples == 0 || cli.lines == 0 {
        fail("--lanes, --samples and --lines must be at least 1");
    }
    let target_name = if cli.print_to_pipe {
        "a pipe read by `cat > /dev/null`".to_owned()
    } else {
        cli.print_to
            .as_ref()
            .map_or("/dev/null".to_owned(), |p| p.display().to_string())
    };
    let mut reader = None;
    let target = if cli.print_to_pipe {
        let mut child = std::process::Command::new("cat")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start `cat > /dev/null`: {e}")));
        let w = child.stdin.take().map(std::os::fd::OwnedFd::from);
        reader = Some(child);
        w.map(File::from)
            .ok_or_else(|| std::io::Error::other("no pipe to the child"))
    } else {
        match &cli.print_to {
            Some(p) => File::create(p),
            None => File::options().write(true).open("/dev/null"),
        }
    }
    .unwrap_or_else(|e| fail(&format!("cannot open {target_name}: {e}")));
    let fd = target.as_raw_fd();
    let idle = Duration::from_millis(cli.poll_idle_ms.max(1));
    let timeout = Duration::from_secs(cli.timeout_s);
    // Lanes that are host threads can be played by host code (per-line timestamps, the rpc and native
    // clients as threads); other devices run the rpc client as a shader and report throughput only.
    let host_lanes = info.caps.lanes_are_host_threads;
    exp.say(&format!(
        "lines go to {target_name}; native path: {}",
        if host_lanes {
            "none on host-thread lanes: plain write(2) from the lane thread instead"
        } else {
            "none on this device (Vulkan compute has no printf outside validation layers' debugPrintfEXT; \
             CUDA's printf goes to the driver's buffer, not to the target, so it is not a row here)"
        }
    ));

    let mut lat = Vec::new();
    if host_lanes {
        let warm = (cli.samples / 10).max(10);
        exp.phase("latency, direct path");
        lat.push(direct_latency(
            fd,
            idle,
            warm,
            cli.samples,
            timeout,
            &exp.access(),
        ));
        exp.phase("latency, rpc path");
        lat.push(rpc_latency(fd, idle, warm, cli.samples, timeout));
        exp.phase("latency, native path");
        lat.push(native_latency(fd, warm, cli.samples));
    } else {
        exp.say(&format!(
            "on {}: no per-line timestamps inside a dispatch, so no single-lane percentiles; the throughput \
             table's mean_us_per_line (run with --lanes 1 for the mean round trip) stands in. The rpc path's \
             client is the rpc_print kernel (mailboxes in imported host memory, the same server thread)",
            info.backend
        ));
    }
    // (round, result) of every path, interleaved round by round.
    let mut tp: Vec<(u32, Throughput)> = Vec::new();
    for round in 0..cli.rounds {
        exp.phase(&format!(
            "throughput, round {} of {}",
            round + 1,
            cli.rounds
        ));
        tp.push((
            round,
            direct_throughput(
                &*dev,
                fd,
                idle,
                cli.lanes,
                cli.lines,
                timeout,
                &exp.access(),
            ),
        ));
        if host_lanes {
            tp.push((
                round,
                rpc_throughput(fd, idle, cli.lanes, cli.lines, timeout),
            ));
            tp.push((round, native_throughput(fd, cli.lanes, cli.lines)));
        } else {
            tp.push((
                round,
                rpc_kernel_throughput(&*dev, fd, idle, cli.lanes, cli.lines, timeout),
            ));
        }
    }
    drop(target);
    if let Some(mut child) = reader {
        // The pipe's write end is closed: cat sees the end of its input and exits.
        if let Err(e) = child.wait() {
            eprintln!("warning: waiting for the pipe's reader: {e}");
        }
    }

    let load = loadavg();
    let lat_rows: Vec<Record> = lat
        .iter()
        .map(|l| {
            let s = &l.samples;
            let p = Percentiles::of(s);
            let r = Record::new()
                .text("device", info.backend)
                .text("path", l.path)
                .int("samples", p.n)
                .float("min_us", p.min, 2)
                .float("p50_us", p.p50, 2)
                .float("p90_us", p.p90, 2)
                .float("p99_us", p.p99, 2)
                .float("p999_us", p.p999, 2)
                .float("max_us", p.max, 1)
                .int("failed", l.failed);
            bus_cols(r, l.bus).float("loadavg_1m", load, 2)
        })
        .collect();
    if !lat_rows.is_empty() {
        exp.table(
            "latency",
            "single-lane round trip: line handed over → completion visible to the lane (µs)",
            &lat_rows,
        );
        let labels = ["p50", "p90", "p99", "p99.9"];
        let series: Vec<Series> = lat
            .iter()
            .map(|l| {
                let s = &l.samples;
                let p = Percentiles::of(s);
                Series {
                    label: l.path.to_owned(),
                    points: [p.p50, p.p90, p.p99, p.p999]
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| (i as f64, v.max(1e-3)))
                        .collect(),
                }
            })
            .collect();
        warn(line_chart(
            &exp.out_dir().join("latency.svg"),
            &format!("print round trip, one lane ({})", info.name),
            "percentile",
            "µs (log)",
            Some(&labels),
            true,
            &series,
        ));
    }
    let tp_rows: Vec<Record> = tp
        .iter()
        .map(|(round, t)| {
            let per_line = |d: Duration| d.as_secs_f64() * 1e6 / t.lines.max(1) as f64;
            let mut r = Record::new()
                .text("device", info.backend)
                .text("path", t.path)
                .int("round", round + 1)
                .int("lanes", cli.lanes)
                .int("lines", t.lines)
                .int("bytes", t.bytes)
                .float("seconds", t.secs, 4)
                .float("lines_per_s", t.lines as f64 / t.secs, 0)
                .float("mb_per_s", t.bytes as f64 / t.secs / 1e6, 2)
                // One line in flight per lane: a lane's mean time per line is its mean round trip.
                .float(
                    "mean_us_per_line",
                    t.secs * 1e6 * cli.lanes as f64 / t.lines.max(1) as f64,
                    2,
                )
                .text("host_helpers", t.helpers);
            if let Some(h) = t.helper_cpu {
                r = r.float("helper_cpu_us_per_line", per_line(h), 3);
            }
            let r = r
                .float("process_cpu_us_per_line", per_line(t.process_cpu), 3)
                .float("lines_per_write", t.lines_per_write, 1)
                .int("failed", t.failed);
            bus_cols(r, t.bus).float("loadavg_1m", load, 2)
        })
        .collect();
    exp.table(
        "throughput",
        &format!(
            "{} lanes x {} lines, one line in flight per lane, into {target_name}",
            cli.lanes, cli.lines
        ),
        &tp_rows,
    );
    let ratio_rows = ratios(&tp, cli.rounds, load);
    // Every round's failures count, not only the median rounds'.
    let tp_failed: u64 = tp.iter().map(|(_, t)| t.failed).sum();
    exp.table(
        "ratios",
        &format!(
            "direct lines/s over each other path's, in the same round: median and min–max of {} round(s)",
            cli.rounds
        ),
        &ratio_rows,
    );
    // The charts show the median round of each path.
    let tp: Vec<&Throughput> = median_rounds(&tp);
    let labels: Vec<String> = tp.iter().map(|t| t.path.to_owned()).collect();
    // One unit per axis: throughput and the helpers' CPU per line are two charts.
    warn(bar_chart(
        &exp.out_dir().join("throughput.svg"),
        &format!("{} lanes printing: lines/s ({})", cli.lanes, info.name),
        "k lines/s",
        &labels,
        &[(
            "k lines/s",
            tp.iter().map(|t| t.lines as f64 / t.secs / 1e3).collect(),
        )],
    ));
    warn(bar_chart(
        &exp.out_dir().join("helper_cpu.svg"),
        &format!(
            "{} lanes printing: helper CPU per line ({})",
            cli.lanes, info.name
        ),
        "helper CPU ns per line",
        &labels,
        &[(
            "helper CPU ns/line",
            tp.iter()
                .map(|t| {
                    t.helper_cpu
                        .map_or(0.0, |h| h.as_secs_f64() * 1e9 / t.lines.max(1) as f64)
                })
                .collect(),
        )],
    ));
    for t in &tp {
        exp.say(&format!(
            "{:>7}: {} lines/s, {:.2} MB/s (median round)",
            t.path,
            si(t.lines as f64 / t.secs),
            t.bytes as f64 / t.secs / 1e6
        ));
    }
    for m in RING_MODES.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        exp.say(&format!(" direct {m}"));
    }
    let failed: u64 = lat.iter().map(|l| l.failed).sum::<u64>() + tp_failed;
    if failed > 0 {
        eprintln!("FAILED: {failed} lines were not printed");
        std::process::exit(1);
    }
}

/// Lines per second of a throughput result.
fn rate(t: &Throughput) -> f64 {
    t.lines as f64 / t.secs
}

/// The `ratios` rows: for every path other than direct, direct's lines/s over that path's in each round, as
/// median, min and max over the rounds.
fn ratios(tp: &[(u32, Throughput)], rounds: u32, load: f64) -> Vec<Record> {
    let mut others: Vec<&'static str> = tp.iter().map(|(_, t)| t.path).collect();
    others.dedup();
    others.retain(|p| *p != "direct");
    others.sort_unstable();
    others.dedup();
    others
        .into_iter()
        .map(|other| {
            let mut v: Vec<f64> = (0..rounds)
                .filter_map(|r| {
                    let of = |p: &str| {
                        tp.iter()
                            .find(|(q, t)| *q == r && t.path == p)
                            .map(|(_, t)| rate(t))
                    };
                    Some(of("direct")? / of(other)?)
                })
                .collect();
            v.sort_by(f64::total_cmp);
            let median = if v.is_empty() {
                f64::NAN
            } else if v.len() % 2 == 1 {
                v[v.len() / 2]
            } else {
                (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
            };
            Record::new()
                .text("ratio", format!("direct/{other}"))
                .int("rounds", v.len())
                .float("median", median, 2)
                .float("min", v.first().copied().unwrap_or(f64::NAN), 2)
                .float("max", v.last().copied().unwrap_or(f64::NAN), 2)
                .float("loadavg_1m", load, 2)
        })
        .collect()
}

/// Each path's median round by lines/s (the lower middle one for an even count), in first-seen path order.
fn median_rounds(tp: &[(u32, Throughput)]) -> Vec<&Throughput> {
    let mut paths: Vec<&'static str> = Vec::new();
    for (_, t) in tp {
        if !paths.contains(&t.path) {
            paths.push(t.path);
        }
    }
    paths
        .into_iter()
        .filter_map(|p| {
            let mut v: Vec<&Throughput> = tp
                .iter()
                .filter(|(_, t)| t.path == p)
                .map(|(_, t)| t)
                .collect();
            v.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
            v.get(v.len().saturating_sub(1) / 2).copied()
        })
        .collect()
}

fn warn(r: Result<(), String>) {
    if let Err(e) = r {
        eprintln!("warning: {e}");
    }
}

fn micros(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}

fn line_of(buf: &mut LineBuf, lane: u32, seq: u32) -> usize {
    buf.clear();
    format_print_line(buf, lane, seq);
    buf.str("\n");
    buf.as_bytes().len()
}

/// The device ring the direct path prints through.
fn ring(fd: i32, lanes: u32, idle: Duration, access: &DeviceAccess) -> DeviceRing {
    let defaults = RingConfig::default();
    let ring = DeviceRing::new(RingConfig {
        lanes,
        sq_thread_idle: idle,
        access: access.clone(),
        print_log_bytes: PRINT_LOG_BYTES
            .get()
            .copied()
            .flatten()
            .unwrap_or(defaults.print_log_bytes),
        ..defaults
    })
    .unwrap_or_else(|e| fail(&format!("creating the device ring: {e}")));
    ring.set_print_mode(PRINT_MODE.get().copied().unwrap_or_default());
    ring.set_print_target(PrintTarget::Fd(fd))
        .unwrap_or_else(|e| fail(&format!("setting the print target: {e}")));
    ring
}

/// After a direct run: waits (bounded) until the ring is idle and, for a regular-file target (offset mode),
/// moves the file position past the printed lines, so the next path's lines follow them instead of
/// overwriting them.
fn finish(ring: &DeviceRing) {
    if !ring.quiesce(Duration::from_secs(10)) {
        eprintln!("warning: the device ring did not quiesce within 10 s");
    }
    ring.finish_prints();
    RING_MODES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(ring_mode_line(ring));
}

/// The direct runs' ring mode lines, for the summary.
static RING_MODES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Budget of one lane-side wait: with the lanes' backoff, far longer than any healthy print.
const BUDGET: u32 = 1 << 20;

/// What one print came to.
enum Sent {
    /// Printed: `bytes` written, completion seen.
    Printed(u64),
    /// The write failed or was short.
    Failed,
    /// The lane cannot go on (a wait timed out with the request still posted, or the deadline passed).
    GaveUp,
}

/// Single-lane round trips: `print(seq)` hands line `seq` over and returns once its completion is visible.
/// Returns the samples (µs) after `warm` warm-up prints and the lines that failed.
fn round_trips(warm: u32, n: u32, mut print: impl FnMut(u32) -> Sent) -> (Vec<f64>, u64) {
    let mut v = Vec::with_capacity(n as usize);
    let mut failed = 0;
    for seq in 0..warm + n {
        let t = Instant::now();
        let r = print(seq);
        let us = micros(t);
        match r {
            Sent::Printed(_) if seq >= warm => v.push(us),
            Sent::Printed(_) => {}
            Sent::Failed => failed += 1,
            Sent::GaveUp => {
                failed += (warm + n - seq) as u64;
                break;
            }
        }
    }
    (v, failed)
}

/// One lane's `lines` prints: (lines printed, bytes, lines failed).
fn print_lines(lines: u32, mut print: impl FnMut(u32) -> Sent) -> (u64, u64, u64) {
    let (mut done, mut bytes, mut failed) = (0u64, 0u64, 0u64);
    for seq in 0..lines {
        match print(seq) {
            Sent::Printed(b) => {
                done += 1;
                bytes += b;
            }
            Sent::Failed => failed += 1,
            Sent::GaveUp => {
                failed += (lines - seq) as u64;
                break;
            }
        }
    }
    (done, bytes, failed)
}

/// The RPC path's print: formats line `seq` of lane `lane`, posts it and waits for the server's reply.
fn rpc_print(
    c: &mut RpcClient<'_>,
    buf: &mut LineBuf,
    lane: u32,
    seq: u32,
    deadline: Instant,
) -> Sent {
    let len = line_of(buf, lane, seq);
    match c.call(buf.as_bytes(), deadline) {
        Ok(w) if w == len as i32 => Sent::Printed(len as u64),
        Ok(_) => Sent::Failed,
        // Timed out: the request stays posted, so this lane's mailbox is not its own any more.
        Err(_) => Sent::GaveUp,
    }
}

/// The native path's print: `write(2)` from the lane's own thread.
fn native_print(fd: i32, buf: &mut LineBuf, lane: u32, seq: u32) -> Sent {
    let len = line_of(buf, lane, seq);
    // SAFETY: the line's bytes are readable for their length for the duration of the call.
    let r = unsafe { libc::write(fd, buf.as_bytes().as_ptr().cast(), len) };
    if r == len as isize {
        Sent::Printed(len as u64)
    } else {
        Sent::Failed
    }
}

/// A mailbox arena for `lanes` lanes and its server, polling like the device ring's SQPOLL thread.
fn start_rpc(fd: i32, lanes: u32, idle: Duration) -> (Arc<MailboxArena>, RpcServer) {
    let arena = Arc::new(MailboxArena::new(lanes).unwrap_or_else(|e| fail(&e.to_string())));
    let server = RpcServer::start(
        arena.clone(),
        fd,
        ServerConfig {
            spin_idle: idle,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| fail(&format!("starting the RPC server: {e}")));
    (arena, server)
}

fn direct_latency(
    fd: i32,
    idle: Duration,
    warm: u32,
    n: u32,
    timeout: Duration,
    access: &DeviceAccess,
) -> Latency {
    let ring = ring(fd, 1, idle, access);
    let deadline = Instant::now() + timeout;
    let bus0 = gpu_uring::ring::bus::ring_totals();
    let (samples, failed) = gpu_uring::backend::cpu::run_lanes(&ring, 1, |lane: &mut Lane<'_>| {
        round_trips(warm, n, |seq| {
            if Instant::now() > deadline {
                return Sent::GaveUp;
            }
            // The round trip: the line is handed over in print_with, and flush returns once its completion
            // has been reaped by this lane.
            match lane
                .print_with(BUDGET, |b| format_print_line(b, 0, seq))
                .and_then(|_| lane.flush(BUDGET))
            {
                Ok(()) => Sent::Printed(0),
                Err(_) => Sent::Failed,
            }
        })
    })
    .unwrap_or_else(|e| fail(&e.to_string()))
    .pop()
    .unwrap_or_default();
    finish(&ring);
    let errs = ring.view().local_snapshot().print_errors as u64;
    let mut bus = gpu_uring::ring::bus::ring_totals();
    bus.sub(&bus0);
    Latency {
        path: "direct",
        samples,
        failed: failed + errs,
        bus: Some(bus.per_op((warm + n) as u64)),
    }
}

fn rpc_latency(fd: i32, idle: Duration, warm: u32, n: u32, timeout: Duration) -> Latency {
    let (arena, server) = start_rpc(fd, 1, idle);
    let deadline = Instant::now() + timeout;
    let (samples, failed) = spawn_lanes(1, "rpc-lane", |_| {
        let (mut c, mut buf) = (arena.client(0), LineBuf::with_capacity(256));
        round_trips(warm, n, |seq| rpc_print(&mut c, &mut buf, 0, seq, deadline))
    })
    .unwrap_or_else(|e| fail(&e.to_string()))
    .pop()
    .unwrap_or_default();
    let st = server.stop();
    Latency {
        path: "rpc",
        samples,
        failed: failed.max(st.errors),
        bus: None,
    }
}

fn native_latency(fd: i32, warm: u32, n: u32) -> Latency {
    let (samples, failed) = spawn_lanes(1, "native-lane", |_| {
        let mut buf = LineBuf::with_capacity(256);
        round_trips(warm, n, |seq| native_print(fd, &mut buf, 0, seq))
    })
    .unwrap_or_else(|e| fail(&e.to_string()))
    .pop()
    .unwrap_or_default();
    Latency {
        path: "native",
        samples,
        failed,
        bus: None,
    }
}

fn direct_throughput(
    dev: &dyn Device,
    fd: i32,
    idle: Duration,
    lanes: u32,
    lines: u32,
    timeout: Duration,
    access: &DeviceAccess,
) -> Throughput {
    let ring = ring(fd, lanes, idle, access);
    let (h0, p0) = (threads_cpu(DIRECT_HELPERS), process_cpu());
    let bus0 = gpu_uring::ring::bus::ring_totals();
    let started = Instant::now();
    let rep = match dev.run(&ring, lanes, &Program::Print { lines }, timeout) {
        Ok(rep) => Some(rep),
        // Past --timeout-s: the lines not printed count as failed (below) and the tables still print.
        Err(e @ gpu_uring::backend::DeviceError::Timeout { .. }) => {
            eprintln!("direct path timed out: {e}");
            None
        }
        Err(e) => fail(&format!("running the print program: {e}")),
    };
    // Count the helpers' work until the last line is done (the run ends when every lane's lines completed).
    let (h1, p1) = (threads_cpu(DIRECT_HELPERS), process_cpu());
    finish(&ring);
    let errs = ring.view().local_snapshot().print_errors as u64;
    let tot = rep.as_ref().map_or_else(
        || gpu_uring::backend::LaneReport {
            done: ring.view().local_snapshot().lines_printed as u64,
            ..Default::default()
        },
        |r| r.total(),
    );
    let log = ring.print_log_report();
    let lines_per_write = if log.device_writes > 0 {
        tot.done as f64 / log.device_writes as f64
    } else {
        1.0
    };
    let mut bus = gpu_uring::ring::bus::ring_totals();
    bus.sub(&bus0);
    let bus = dev
        .info()
        .caps
        .lanes_are_host_threads
        .then(|| bus.per_op(tot.done));
    let bytes: u64 = rep.as_ref().map_or(0, |rep| {
        rep.lanes
            .iter()
            .enumerate()
            .map(|(l, r)| lane_bytes(l as u32, r.done))
            .sum()
    });
    Throughput {
        path: "direct",
        helpers: "waker + SQPOLL thread + io-wq",
        // Lines whose write failed are not printed (through the print log a failed write can hold several:
        // then this is an upper bound, and `failed` counts the write).
        lines: tot.done.saturating_sub(errs),
        bytes,
        secs: rep
            .as_ref()
            .map_or(started.elapsed(), |r| r.elapsed)
            .as_secs_f64(),
        helper_cpu: h0.zip(h1).map(|(a, b)| b.saturating_sub(a)),
        process_cpu: p1.saturating_sub(p0),
        failed: tot.failed
            + errs
            + (lanes as u64 * lines as u64).saturating_sub(tot.done)
            + log.incomplete_ranges,
        bus,
        lines_per_write,
    }
}

/// Bytes of lane `lane`'s first `n` lines (newlines included).
fn lane_bytes(lane: u32, n: u64) -> u64 {
    (0..n as u32)
        .map(|s| expected_line(lane, s).len() as u64 + 1)
        .sum()
}

fn rpc_throughput(
    fd: i32,
    idle: Duration,
    lanes: u32,
    lines: u32,
    timeout: Duration,
) -> Throughput {
    let (arena, server) = start_rpc(fd, lanes, idle);
    let deadline = Instant::now() + timeout;
    let (h0, p0) = (threads_cpu(&["rpc-server"]), process_cpu());
    let t = Instant::now();
    let per_lane = spawn_lanes(lanes, "rpc-lane", |id| {
        let (mut c, mut buf) = (arena.client(id), LineBuf::with_capacity(256));
        print_lines(lines, |seq| rpc_print(&mut c, &mut buf, id, seq, deadline))
    })
    .unwrap_or_else(|e| fail(&e.to_string()));
    let secs = t.elapsed().as_secs_f64();
    // Read while the server thread is alive (as for the direct path's helpers).
    let (h1, p1) = (threads_cpu(&["rpc-server"]), process_cpu());
    let st = server.stop();
    Throughput {
        helper_cpu: h0.zip(h1).map(|(a, b)| b.saturating_sub(a)),
        ..Throughput::of(
            "rpc",
            "RPC server thread",
            &per_lane,
            secs,
            p1.saturating_sub(p0),
        )
        .with_errors(st.errors)
    }
}

fn native_throughput(fd: i32, lanes: u32, lines: u32) -> Throughput {
    let p0 = process_cpu();
    let t = Instant::now();
    let per_lane = spawn_lanes(lanes, "native-lane", |id| {
        let mut buf = LineBuf::with_capacity(256);
        print_lines(lines, |seq| native_print(fd, &mut buf, id, seq))
    })
    .unwrap_or_else(|e| fail(&e.to_string()));
    let secs = t.elapsed().as_secs_f64();
    let p1 = process_cpu();
    Throughput {
        helper_cpu: Some(Duration::ZERO),
        ..Throughput::of(
            "native",
            "none (lanes call write(2))",
            &per_lane,
            secs,
            p1.saturating_sub(p0),
        )
    }
}

impl Throughput {
    /// A row from each lane's (lines printed, bytes, lines failed); no helper CPU figure yet.
    fn of(
        path: &'static str,
        helpers: &'static str,
        per_lane: &[(u64, u64, u64)],
        secs: f64,
        process_cpu: Duration,
    ) -> Throughput {
        Throughput {
            path,
            helpers,
            lines: per_lane.iter().map(|r| r.0).sum(),
            bytes: per_lane.iter().map(|r| r.1).sum(),
            secs,
            helper_cpu: None,
            process_cpu,
            failed: per_lane.iter().map(|r| r.2).sum(),
            bus: None,
            lines_per_write: 1.0,
        }
    }

    /// Counts at least `errors` failed lines (the server's own count of failed or short writes).
    fn with_errors(mut self, errors: u64) -> Throughput {
        self.failed = self.failed.max(errors);
        self
    }
}

/// The RPC path on a GPU-style device: the `rpc_print` shader (device-shaders/src/rpc_print.comp; on CUDA/HIP
/// the device library's `gu_rpc_print`, the same program) is the client — each lane formats its line into its
/// mailbox in the arena (host memory imported into the device) and waits for the reply — and the same
/// [`RpcServer`] thread as on the CPU serves it. The kernel runs through the backend's kernel API
/// ([`gpu_uring::backend::Device::launch`]) and resumes across launches (lavapipe's loop cap); the host
/// re-launches until every lane has finished.
fn rpc_kernel_throughput(
    vk: &dyn gpu_uring::backend::Device,
    fd: i32,
    idle: Duration,
    lanes: u32,
    lines: u32,
    timeout: Duration,
) -> Throughput {
    use gpu_uring::backend::{Grid, KernelArg, KernelCode, KernelLayout, Placement};
    let device = vk.info();
    let lib = vk.library();
    let kernel = match lib {
        Some(lib) => lib.library_kernel("gu_rpc_print"),
        // SAFETY: rpc_print.spv is built from device-shaders/src/rpc_print.comp by device-shaders/build.sh (CI
        // checks it matches): one storage buffer at binding 0, 16 bytes of push constants, indices bounded by
        // `lanes` mailboxes of the buffer it is given.
        None => unsafe {
            vk.load_kernel(
                "rpc_print",
                KernelCode::SpirV(RPC_PRINT),
                KernelLayout {
                    buffers: 1,
                    value_bytes: 16,
                },
            )
        },
    }
    .unwrap_or_else(|e| fail(&e.to_string()));
    // gu_rpc_print's per-lane status words (the shader keeps its state in the mailboxes only).
    let status = lib.map(|_| {
        vk.alloc(Placement::HostVisible, 4 * lanes.max(1) as usize)
            .unwrap_or_else(|e| fail(&format!("rpc_print status words: {e}")))
    });
    let (arena, server) = start_rpc(fd, lanes, idle);
    let (base, len) = arena.memory();
    // SAFETY: the arena is a page-aligned mapping of whole pages that stays mapped while the `Arc` given as
    // its owner lives (the buffer and any parked dispatch hold it).
    let buf = unsafe { vk.import_host(base, len, arena.clone()) }
        .unwrap_or_else(|e| fail(&format!("importing the mailboxes: {e}")));
    // lavapipe counts loop iterations per SIMD batch of `subgroup` lanes: each lane's share of the 65535 cap.
    // The library kernels' launches have no such cap: a budget that keeps one launch under a second or so.
    let budget = match lib {
        Some(_) => 1 << 20,
        None => 60_000 / (2 * device.subgroup_size.max(1)),
    };
    let deadline = Instant::now() + timeout;
    let (h0, p0) = (threads_cpu(&["rpc-server"]), process_cpu());
    let t = Instant::now();
    let mut dispatches = 0u32;
    while (0..lanes).any(|l| arena.word(l, MB_FINISHED) == 0) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            eprintln!("warning: the RPC client did not finish within {timeout:?}");
            break;
        }
        dispatches += 1;
        let values = [lanes, lines, budget, 0].map(u32::to_ne_bytes);
        let push = values.concat();
        let (args, grid) = match &status {
            // One argument per kernel parameter: (mailboxes, lanes, lines, budget, status).
            Some(status) => {
                let mut args = vec![KernelArg::Buffer(&buf)];
                args.extend(values[..3].iter().map(|v| KernelArg::Bytes(v)));
                args.push(KernelArg::Buffer(status));
                (
                    args,
                    Grid {
                        groups: lanes.div_ceil(64),
                        group_size: 64,
                    },
                )
            }
            None => (
                vec![KernelArg::Buffer(&buf), KernelArg::Bytes(&push)],
                Grid::groups(lanes.div_ceil(8)),
            ),
        };
        if let Err(e) = vk.launch(&kernel, &args, grid, left) {
            fail(&format!("rpc_print dispatch {dispatches}: {e}"));
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let (h1, p1) = (threads_cpu(&["rpc-server"]), process_cpu());
    let st = server.stop();
    let done: u64 = (0..lanes).map(|l| arena.word(l, MB_DONE) as u64).sum();
    let failed: u64 = (0..lanes).map(|l| arena.word(l, MB_FAILED) as u64).sum();
    drop(buf);
    log::info!("rpc_print: {dispatches} dispatches");
    Throughput {
        path: "rpc",
        helpers: "RPC server thread",
        lines: done,
        bytes: st.bytes,
        secs,
        helper_cpu: h0.zip(h1).map(|(a, b)| b.saturating_sub(a)),
        process_cpu: p1.saturating_sub(p0),
        failed: failed.max(st.errors) + (lanes as u64 * lines as u64).saturating_sub(done + failed),
        bus: None,
        lines_per_write: 1.0,
    }
}
