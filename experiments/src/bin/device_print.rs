//! device_print — the main job: `--lanes` device lanes each print `--lines` formatted lines
//! (`lane=<L> seq=<K> d=… x=… v=… gpu-uring`, [`gpu_uring::backend::format_print_line`]) through one device
//! ring, every line one io_uring write issued by the lane itself, executed by the kernel's SQPOLL thread. By
//! default a short demo (4 lanes x 5 lines); `--stress` prints 64 lanes x 1000 lines.
//!
//! Where the lines go: stdout (a terminal, a pipe, or a redirected regular file — the ring picks stream or
//! offset mode from what fd 1 is), or `--print-to FILE`. The summary (device, lines, bytes, seconds, lines/s,
//! MB/s, waker wake-ups, failures) goes to stderr, so `device_print > out.txt` leaves only the lines in
//! `out.txt`. With `--json`, stdout carries the JSON summary row instead, so the lines go to `--print-to`
//! (default /dev/null). `--verify` reads a file target back and checks every line is there exactly once,
//! untorn, in each lane's order. Exit status 1 if any line failed (not submitted within its budget, a failed
//! or short write, or a failed verification), 2 on a setup error.

use gpu_uring::backend::Programs;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use gpu_uring::backend::{expected_line, DeviceError, LaneReport, Program};
use gpu_uring::protocol::{DeviceRing, PrintTarget};
use gpu_uring::ring::RingConfig;
use gpu_uring::shared_off;
use gpu_uring_experiments::progress::Progress;
use gpu_uring_experiments::{errno_text, fail, ring_mode_line, si, CommonArgs, Experiment, Record};

/// The default run: a short demo that reads well on a terminal.
const DEMO: (u32, u32) = (4, 5);
/// `--stress`: 64 000 lines.
const STRESS: (u32, u32) = (64, 1000);

/// N device lanes print formatted lines through a device ring; a summary goes to stderr.
///
/// Each line is `lane=L seq=K d=D x=X v=V gpu-uring`: L is the lane, K the line's number in that lane (0, 1,
/// …), then the same numbers through each formatter every device implements: D = K − L as a signed decimal,
/// X = (L << 32) | K in lowercase hex, V = K / 8 − L as a float with 3 decimals. Each lane's lines appear in
/// order; lanes interleave.
#[derive(Parser, Debug)]
#[command(name = "device_print", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Device lanes (the CPU reference device runs one thread per lane) [default: 4; 64 with --stress].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65535))]
    lanes: Option<u32>,
    /// Lines each lane prints [default: 5; 1000 with --stress].
    #[arg(long)]
    lines: Option<u32>,
    /// The stress size: 64 lanes x 1000 lines (--lanes and --lines still override it).
    #[arg(long)]
    stress: bool,
    /// Print into FILE (created or truncated) instead of stdout. Default with --json: /dev/null.
    #[arg(long, value_name = "FILE")]
    print_to: Option<PathBuf>,
    /// SQ entries of the ring (a power of two).
    #[arg(long, default_value_t = 256)]
    sq_entries: u32,
    /// SQPOLL idle time in milliseconds before the SQ thread sleeps (the waker then wakes it).
    #[arg(long, default_value_t = 50)]
    sq_idle_ms: u64,
    /// Give up after this many seconds: lines not yet printed count as failed, and the summary still prints.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// After the run, read the lines back (needs a regular file: --print-to FILE or stdout redirected to a
    /// file) and check that every line is present exactly once, untorn, and in each lane's order.
    #[arg(long)]
    verify: bool,
}

fn main() {
    let cli = Cli::parse();
    let size = if cli.stress { STRESS } else { DEMO };
    let (lanes, lines) = (cli.lanes.unwrap_or(size.0), cli.lines.unwrap_or(size.1));
    // Human-readable output always goes to stderr: stdout carries the lines (or, with --json, the JSON row).
    // It shows its own progress (from the ring's line counter), not the generic status line.
    let mut exp = Experiment::new("device_print", cli.common.clone())
        .human_to_stderr()
        .without_status_line();

    let target_file = match (&cli.print_to, exp.json()) {
        (Some(p), _) => Some(
            File::create(p)
                .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", p.display()))),
        ),
        (None, true) => Some(
            File::options()
                .write(true)
                .open("/dev/null")
                .unwrap_or_else(|e| fail(&format!("cannot open /dev/null: {e}"))),
        ),
        (None, false) => None,
    };
    let (fd, target_name) = match (&target_file, &cli.print_to) {
        (Some(f), Some(p)) => (f.as_raw_fd(), p.display().to_string()),
        (Some(f), None) => (f.as_raw_fd(), "/dev/null".to_owned()),
        (None, _) => (1, describe_fd(1)),
    };
    if cli.verify && !is_regular_file(fd) {
        fail(&format!(
            "--verify reads the lines back, so they must go to a regular file, and {target_name} is not one: \
             use --print-to FILE or redirect stdout to a file"
        ));
    }
    // The device line is printed with the summary, where it is seen after the lines scroll by.
    let dev = exp.open_device_quietly();
    let info = dev.info();

    let ring = DeviceRing::new(RingConfig {
        sq_entries: cli.sq_entries,
        lanes,
        sq_thread_idle: Duration::from_millis(cli.sq_idle_ms.max(1)),
        access: exp.access(),
        ..Default::default()
    })
    .unwrap_or_else(|e| fail(&format!("creating the device ring: {e}")));
    ring.set_print_target(PrintTarget::Fd(fd))
        .unwrap_or_else(|e| fail(&format!("setting the print target: {e}")));
    let mode = if ring
        .view()
        .shared32(shared_off!(print_flags))
        .load(std::sync::atomic::Ordering::Relaxed)
        & gpu_uring::protocol::shared::PRINT_OFFSET_MODE
        != 0
    {
        "offset"
    } else {
        "stream"
    };
    eprintln!(
        "printing {lanes} lanes x {lines} lines on the {} to {target_name} ({mode} mode)",
        info.name
    );

    // Where the lines start in a regular-file target, for --verify.
    // SAFETY: lseek has no pointer arguments.
    let start_off = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    let before = ring.waker_stats();
    let bus_before = gpu_uring::ring::bus::ring_totals();
    let expected = lanes as u64 * lines as u64;
    let timeout = Duration::from_secs(cli.timeout_s);
    // Progress (after 2 s, on a terminal) from the ring's line counter; not when the lines themselves go to
    // that terminal.
    let show_progress = target_file.is_some() || !is_terminal(1);
    let running = std::sync::atomic::AtomicBool::new(true);
    let started = std::time::Instant::now();
    let result = std::thread::scope(|s| {
        if show_progress {
            s.spawn(|| {
                let p = Progress::new("printing", Some(expected));
                while running.load(std::sync::atomic::Ordering::Relaxed) {
                    p.set_position(ring.view().local_snapshot().lines_printed as u64);
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        let r = dev.run(&ring, lanes, &Program::Print { lines }, timeout);
        running.store(false, std::sync::atomic::Ordering::Relaxed);
        r
    });
    let report = match result {
        Ok(r) => Some(r),
        // The run's time is up: the lines not printed count as failed (below), and the summary still prints.
        Err(e @ DeviceError::Timeout { .. }) => {
            eprintln!("timed out after --timeout-s {}: {e}", cli.timeout_s);
            None
        }
        Err(e) => fail(&format!("running the print program: {e}")),
    };
    let quiet = ring.quiesce(Duration::from_secs(10));
    ring.finish_prints();
    let after = ring.waker_stats();
    let ctl = ring.view().local_snapshot();
    // Bus traffic per line (PROTOCOL.md §1), counted by the lanes where they are host threads.
    let mut bus = gpu_uring::ring::bus::ring_totals();
    bus.sub(&bus_before);
    let counted = info.caps.lanes_are_host_threads;

    // Lines handed to the ring: each lane's report, or (after a timeout) the ring's own count.
    let submitted = report
        .as_ref()
        .map_or(ctl.lines_printed as u64, |r| r.total().done);
    let secs = report
        .as_ref()
        .map_or(started.elapsed(), |r| r.elapsed)
        .as_secs_f64();
    // Bytes of the lines handed over (each lane prints seq 0.. in order, so its first `done` lines).
    let bytes: Option<u64> = report.as_ref().map(|r| {
        r.lanes
            .iter()
            .enumerate()
            .map(|(lane, r)| {
                (0..r.done as u32)
                    .map(|seq| expected_line(lane as u32, seq).len() as u64 + 1)
                    .sum::<u64>()
            })
            .sum()
    });
    // Group-commit prints (PROTOCOL.md §7): lines per write the kernel executed (1 in line mode).
    let log = ring.print_log_report();
    let log_mode = log.device_writes > 0 || log.host_bytes > 0;
    let lines_per_write = if log.device_writes > 0 {
        submitted as f64 / log.device_writes as f64
    } else {
        1.0
    };
    // Lines printed: those handed over, less those whose write failed. One write per line: each failed write
    // is one line. Through the print log a failed write holds several lines, and an incomplete range lines
    // that were never written: the count is then unknown (and --verify counts what is in the file).
    let write_errors = ctl.print_errors as u64;
    let printed: Option<u64> = if write_errors == 0 && log.incomplete_ranges == 0 {
        Some(submitted)
    } else if !log_mode {
        Some(submitted.saturating_sub(write_errors))
    } else {
        None
    };
    let wakeups = after.wakeups - before.wakeups;
    let rate = |n: u64| n as f64 / secs;
    let row = Record::new()
        .text("device", info.backend)
        .text("target", mode)
        .int("lanes", lanes)
        .int("lines", printed.map_or(-1, |p| p as i64))
        .int("bytes", bytes.map_or(-1, |b| b as i64))
        .float("seconds", secs, 4)
        .float("lines_per_s", rate(printed.unwrap_or(submitted)), 0)
        .float("mb_per_s", bytes.map_or(0.0, |b| rate(b) / 1e6), 2)
        .int("waker_wakeups", wakeups)
        .float("lines_per_write", lines_per_write, 1)
        .int("incomplete_ranges", log.incomplete_ranges)
        .int("write_errors", write_errors)
        .int("failed", expected - printed.unwrap_or(0).min(expected));
    let row = if counted {
        let b = bus.per_op(submitted);
        row.float("host_rmw_per_op", b.host_rmw, 3)
            .float("host_waited_loads_per_op", b.host_waited_loads, 3)
            .float("host_loads_per_op", b.host_loads, 3)
            .float("host_stores_per_op", b.host_stores, 3)
            .float("local_rmw_per_op", b.local_rmw, 3)
    } else {
        row.text(
            "host_rmw_per_op",
            "not counted (lanes are not host threads)",
        )
    };
    let row = row.ring_mode(&ring);

    let printed_text = match printed {
        Some(p) => format!("{p} of {expected}"),
        None => format!(
            "unknown of {expected} ({submitted} handed over; some were in failed log writes)"
        ),
    };
    let errors_text = if write_errors > 0 {
        format!(
            "  write errors {write_errors} (last: {})",
            errno_text(ctl.ff_last_error)
        )
    } else {
        String::new()
    };
    eprintln!(
        "\n{}\n{}\nlines printed {printed_text}  bytes {}  seconds {secs:.4}  lines/s {}  MB/s {}  waker \
         wake-ups {wakeups}{errors_text}",
        exp.device_desc(),
        ring_mode_line(&ring),
        bytes.map_or("unknown".to_owned(), |b| b.to_string()),
        si(rate(printed.unwrap_or(submitted))),
        bytes.map_or("unknown".to_owned(), |b| format!("{:.2}", rate(b) / 1e6)),
    );
    if !quiet {
        eprintln!("warning: the ring did not quiesce within 10 s");
    }
    let mut verify_failed = false;
    if cli.verify {
        match verify(fd, start_off, lanes, report.as_ref().map(|r| &r.lanes[..])) {
            Ok(n) => {
                eprintln!("verify: {n} lines read back: each exactly once, untorn, in lane order")
            }
            Err(e) => {
                eprintln!("verify: FAILED: {e}");
                verify_failed = true;
            }
        }
    }
    let row = if cli.verify {
        row.pass("verified", !verify_failed)
    } else {
        row
    };
    exp.table("device_print", "summary", &[row]);
    drop(ring);
    if verify_failed {
        std::process::exit(1);
    }
    if printed != Some(expected) {
        eprintln!(
            "FAILED: {} of {expected} lines not printed",
            printed.map_or("some".to_owned(), |p| (expected - p.min(expected))
                .to_string())
        );
        std::process::exit(1);
    }
}

/// Whether `fd` is a regular file (only a regular file can be read back by --verify).
fn is_regular_file(fd: i32) -> bool {
    // SAFETY: an all-zero `stat` is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-parameter for the duration of the call.
    unsafe { libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG }
}

/// Whether `fd` is a terminal.
fn is_terminal(fd: i32) -> bool {
    // SAFETY: isatty has no pointer arguments.
    unsafe { libc::isatty(fd) == 1 }
}

/// What fd `fd` is, for the log line: a terminal, a pipe, a regular file, …
fn describe_fd(fd: i32) -> String {
    // SAFETY: an all-zero `stat` is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-parameter for the duration of the call.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return format!("fd {fd}");
    }
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => "a regular file",
        libc::S_IFIFO => "a pipe",
        libc::S_IFCHR => {
            // SAFETY: isatty has no pointer arguments.
            if unsafe { libc::isatty(fd) } == 1 {
                "a terminal"
            } else {
                "a character device"
            }
        }
        libc::S_IFSOCK => "a socket",
        _ => "a file",
    };
    format!("stdout ({kind})")
}

/// Reads the target back from `start` and checks it against what each lane reported printing (after a timeout
/// there are no lane reports: every lane's lines must then still be in order, each once and untorn).
fn verify(fd: i32, start: i64, lanes: u32, reports: Option<&[LaneReport]>) -> Result<u64, String> {
    use std::io::{BufRead, BufReader, Seek, SeekFrom};
    if start < 0 {
        return Err(
            "the target is not a regular file (use --print-to FILE or redirect stdout to a file)"
                .into(),
        );
    }
    let mut f = File::open(format!("/proc/self/fd/{fd}"))
        .map_err(|e| format!("reopening the target: {e}"))?;
    f.seek(SeekFrom::Start(start as u64))
        .map_err(|e| e.to_string())?;
    let mut next = vec![0u32; lanes as usize];
    let mut n = 0u64;
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| format!("line {i}: {e} (torn or not UTF-8)"))?;
        let lane: u32 = line
            .strip_prefix("lane=")
            .and_then(|r| r.split(' ').next())
            .and_then(|x| x.parse().ok())
            .filter(|&l| l < lanes)
            .ok_or_else(|| format!("line {i} is malformed: {line:?}"))?;
        let want = expected_line(lane, next[lane as usize]);
        if line != want {
            return Err(format!(
                "line {i}: got {line:?}, lane {lane} should print {want:?} next"
            ));
        }
        next[lane as usize] += 1;
        n += 1;
    }
    for (lane, r) in reports.unwrap_or_default().iter().enumerate() {
        if next[lane] as u64 != r.done {
            return Err(format!(
                "lane {lane}: {} lines in the file, {} reported printed",
                next[lane], r.done
            ));
        }
    }
    Ok(n)
}
