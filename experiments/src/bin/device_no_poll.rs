//! device_no_poll — a device ring without SQPOLL: the device fills SQEs and publishes the SQ tail, and the host
//! submits everything the dispatch published with one `io_uring_enter` after it.
//!
//! The ring is created with `RingConfig { sqpoll: false, .. }` (no SQPOLL thread, no waker). Each round is one
//! dispatch of `--lanes` lanes; every lane first consumes its completions of the previous round (checking each
//! result, as a device would), then writes `--ops` fixed-length lines into its staging lines and submits one
//! WRITE SQE per line (a waited op: completion slot `k`) at the line's own offset in a file, and returns. Nothing
//! executes yet: no kernel thread polls this ring. After the dispatch the host calls
//! `io_uring_enter(fd, tail - head, tail - head, GETEVENTS)` once, reaps the CQEs into the completion slots and
//! checks every slot (DONE, result = line length). At the end the file is read back and every line checked.
//! The lanes × ops SQEs of one round must fit the SQ (`--sq-entries`), since the kernel's head only moves at
//! the host's enter.
//!
//! That is the version for devices whose lanes are host threads (the CPU reference device: lanes are spawned
//! per dispatch, so the dispatch time includes thread start-up). On other devices (Vulkan) the lanes run `Program::Write` (fire-and-forget writes of
//! `--line-bytes` pattern bytes to the file position) as one resumable run through
//! `Programs::run_with`: during a dispatch lanes reserve, fill and publish as many SQEs as the SQ and
//! their credits allow, and a lane that can go no further (nothing to reap, no SQ slot or credit: only the host's
//! next enter can give one) yields the dispatch early (PROTOCOL.md §9). After each dispatch the host callback
//! calls `io_uring_enter(tail - head, tail - head, GETEVENTS)` once — no host thread runs during a dispatch —
//! and the next dispatch's lanes reap those completions (checking each; failures count in `ff_errors`) and go
//! on. The file must hold exactly every write's bytes. Output: table (or `--json` rows), `device_no_poll.csv`,
//! `rounds.csv` (per round, or per dispatch on Vulkan), `device_no_poll.svg` (per-round times, CPU). Exit
//! status 1 if any completion or line is wrong.

use gpu_uring::backend::Programs;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::time::{Duration, Instant};

use clap::Parser;
use gpu_uring::backend::cpu::spawn_lanes;
use gpu_uring::backend::run_buffer::LaneState;
use gpu_uring::backend::{Device, DeviceError, Program};
use gpu_uring::protocol::shared::{slot_state, RING_SLOT_DONE};
use gpu_uring::protocol::DeviceRing;
use gpu_uring::protocol::{CompletionMode, FileRef, Lane, Poll};
use gpu_uring::ring::RingConfig;
use gpu_uring_experiments::{
    fail, line_chart, loadavg, CommonArgs, Experiment, Percentiles, Record, Series,
};

/// The device fills SQEs, the host submits them with one io_uring_enter per dispatch (no SQPOLL).
#[derive(Parser, Debug)]
#[command(name = "device_no_poll", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Lanes per dispatch.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    lanes: u32,
    /// WRITE SQEs per lane per dispatch (each with its own completion slot and staging line).
    #[arg(long, default_value_t = 4)]
    ops: u32,
    /// Dispatches (rounds).
    #[arg(long, default_value_t = 100)]
    rounds: u32,
    /// SQ entries (a power of two ≥ lanes × ops).
    #[arg(long, default_value_t = 256)]
    sq_entries: u32,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// Bytes per write on a GPU backend (`Program::Write`; at most the ring's 256-byte staging line).
    #[arg(long, default_value_t = 64)]
    line_bytes: u32,
}

/// Spin budget of a lane's reservation: the SQ never fills within a round (checked up front), so a lane that
/// cannot reserve quickly has found a bug, not congestion.
const BUDGET: u32 = 4096;

/// The fixed-length line of (round, lane, op).
fn line(round: u32, lane: u32, op: u32) -> String {
    format!("no-poll round={round:06} lane={lane:05} op={op:03}\n")
}

/// Per-round measurements.
struct Round {
    dispatch_us: f64,
    enter_us: f64,
    reap_us: f64,
    submitted: u32,
    enters: u32,
}

fn main() {
    let cli = Cli::parse();
    let mut exp = Experiment::new("device_no_poll", cli.common.clone());
    let dev = exp.open_device();
    // Lanes that are host threads run this program's own lane code per round; other devices run
    // `Program::Write` as one resumable run.
    if !dev.info().caps.lanes_are_host_threads {
        return on_gpu(&exp, &*dev, &cli);
    }
    let per_round = cli.lanes as u64 * cli.ops as u64;
    if cli.lanes == 0 || cli.ops == 0 || cli.rounds == 0 {
        fail("--lanes, --ops and --rounds must be at least 1");
    }
    if per_round > cli.sq_entries as u64 {
        fail(&format!(
            "--lanes × --ops = {per_round} SQEs per dispatch do not fit --sq-entries {} (the kernel's SQ head \
             only moves at the host's io_uring_enter)",
            cli.sq_entries
        ));
    }
    let len = line(0, 0, 0).len() as u32;
    let (path, file) = output_file(&exp);
    let fd = file.as_raw_fd();
    let ring = DeviceRing::new(RingConfig {
        sq_entries: cli.sq_entries,
        lanes: cli.lanes,
        slots_per_lane: cli.ops,
        staging_lines: cli.ops,
        line_bytes: len.next_multiple_of(8),
        sqpoll: false,
        fixed_files: vec![fd],
        access: exp.access(),
        ..Default::default()
    })
    .unwrap_or_else(|e| fail(&format!("creating the device ring without SQPOLL: {e}")));
    exp.say(&format!(
        "ring without SQPOLL (setup flags {:#x}, no waker): {} lanes x {} WRITEs per dispatch, {} dispatches, \
         lines of {len} bytes into {}",
        ring.setup_flags(),
        cli.lanes,
        cli.ops,
        cli.rounds,
        path.display()
    ));
    let view = ring.view();
    let lay = ring.layout();
    let deadline = Instant::now() + Duration::from_secs(cli.timeout_s);
    let ops = cli.ops;
    let lanes = cli.lanes;

    let mut rounds = Vec::new();
    let (mut bad_device, mut bad_host, mut not_submitted) = (0u64, 0u64, 0u64);
    let t_all = Instant::now();
    for round in 0..cli.rounds {
        if Instant::now() > deadline {
            eprintln!("error: timed out after {} of {} rounds", round, cli.rounds);
            not_submitted += (cli.rounds - round) as u64 * per_round;
            break;
        }
        // ---- the dispatch: lanes consume last round's completions, fill and publish this round's SQEs ----
        let t = Instant::now();
        let per_lane = spawn_lanes(lanes, "lane", |id| {
            let mut lane = Lane::new(view, id);
            let (mut bad, mut unsubmitted) = (0u64, 0u64);
            for k in 0..ops {
                if round > 0 {
                    // The host has reaped last round's CQE into slot k; taking it frees the slot.
                    match lane.poll(k) {
                        Ok(Poll::Ready(r)) if r == len as i32 => {}
                        _ => bad += 1,
                    }
                }
                let off = view.line_off(id, k);
                view.write_bytes(off, line(round, id, k).as_bytes());
                let pos = ((round as u64 * lanes as u64 + id as u64) * ops as u64 + k as u64)
                    * len as u64;
                if lane
                    .write(
                        FileRef::Fixed(0),
                        off,
                        len,
                        pos as i64,
                        CompletionMode::Slot(k),
                        BUDGET,
                    )
                    .is_err()
                {
                    unsubmitted += 1;
                }
            }
            (bad, unsubmitted)
        })
        .unwrap_or_else(|e| fail(&e.to_string()));
        let dispatch_us = t.elapsed().as_secs_f64() * 1e6;
        bad_device += per_lane.iter().map(|r| r.0).sum::<u64>();
        not_submitted += per_lane.iter().map(|r| r.1).sum::<u64>();

        // ---- the host: one io_uring_enter for everything the dispatch published ----
        let t = Instant::now();
        let head = view.u32_at(lay.sq_head).load(Acquire);
        // Acquire: every SQE before the published tail is written (lanes release it when they publish).
        let tail = view.u32_at(lay.sq_tail).load(Acquire);
        let want = tail.wrapping_sub(head);
        let (mut submitted, mut enters) = (0u32, 0u32);
        while submitted < want && Instant::now() < deadline {
            enters += 1;
            match ring.submit_and_wait(want - submitted, want - submitted) {
                Ok(n) => submitted += n,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)
                    ) => {}
                Err(e) => fail(&format!("io_uring_enter: {e}")),
            }
        }
        let enter_us = t.elapsed().as_secs_f64() * 1e6;
        // ---- reap into the slots and check every completion ----
        let t = Instant::now();
        let mut host = Lane::host(view);
        let mut reaped = 0;
        while reaped < submitted && Instant::now() < deadline {
            let n = host.reap(64);
            if n == 0 {
                std::thread::yield_now();
            }
            reaped += n;
        }
        for g in 0..lanes * ops {
            let (state, result, _, _) = view.slot(g);
            // Acquire: pairs with the reaper's release store of DONE.
            if slot_state(state.load(Acquire)) != RING_SLOT_DONE
                || result.load(Relaxed) != len as i32
            {
                bad_host += 1;
            }
        }
        let reap_us = t.elapsed().as_secs_f64() * 1e6;
        rounds.push(Round {
            dispatch_us,
            enter_us,
            reap_us,
            submitted,
            enters,
        });
    }
    let total_s = t_all.elapsed().as_secs_f64();
    // The last round's completions are consumed by the host here (no further dispatch will).
    for lane in 0..lanes {
        let mut l = Lane::new(view, lane);
        for k in 0..ops {
            let _ = l.poll(k);
        }
    }

    // ---- read the file back ----
    let mut bad_lines = 0u64;
    let mut buf = vec![0u8; len as usize];
    for round in 0..rounds.len() as u32 {
        for lane in 0..lanes {
            for k in 0..ops {
                let pos = ((round as u64 * lanes as u64 + lane as u64) * ops as u64 + k as u64)
                    * len as u64;
                if file.read_exact_at(&mut buf, pos).is_err()
                    || buf != line(round, lane, k).as_bytes()
                {
                    bad_lines += 1;
                }
            }
        }
    }
    let ff_errors = view.local_snapshot().ff_errors as u64;
    let sqes: u64 = rounds.iter().map(|r| r.submitted as u64).sum();
    let enters: u64 = rounds.iter().map(|r| r.enters as u64).sum();
    let pct = |f: fn(&Round) -> f64| {
        let v: Vec<f64> = rounds.iter().map(f).collect();
        Percentiles::of(&v)
    };
    let (d, e, r) = (
        pct(|r| r.dispatch_us),
        pct(|r| r.enter_us),
        pct(|r| r.reap_us),
    );
    let ok = bad_device == 0
        && bad_host == 0
        && bad_lines == 0
        && not_submitted == 0
        && ff_errors == 0
        && sqes == cli.rounds as u64 * per_round;
    let row = Record::new()
        .text("device", dev.info().backend)
        .int("lanes", lanes)
        .int("ops_per_lane", ops)
        .int("rounds", rounds.len())
        .int("sqes", sqes)
        .int("enter_calls", enters)
        .float("sqes_per_enter", sqes as f64 / enters.max(1) as f64, 1)
        .float("dispatch_p50_us", d.p50, 1)
        .float("enter_p50_us", e.p50, 1)
        .float("enter_p99_us", e.p99, 1)
        .float("reap_check_p50_us", r.p50, 1)
        .float("writes_per_s", sqes as f64 / total_s, 0)
        .int("bad_completions", bad_device + bad_host)
        .int("bad_lines", bad_lines)
        .int("not_submitted", not_submitted)
        .float("loadavg_1m", loadavg(), 2)
        .ring_mode(&ring)
        .pass("verified", ok);
    exp.table(
        "device_no_poll",
        "device fills SQEs, host submits with one io_uring_enter per dispatch",
        &[row],
    );
    let per: Vec<Record> = rounds
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Record::new()
                .int("round", i)
                .float("dispatch_us", r.dispatch_us, 1)
                .float("enter_us", r.enter_us, 1)
                .float("reap_check_us", r.reap_us, 1)
                .int("submitted", r.submitted)
                .int("enter_calls", r.enters)
        })
        .collect();
    let csv = exp.out_dir().join("rounds.csv");
    if let Err(e) = std::fs::write(&csv, gpu_uring_experiments::render_csv(&per)) {
        eprintln!("warning: cannot write {}: {e}", csv.display());
    }
    let series = |label: &str, f: fn(&Round) -> f64| Series {
        label: label.to_owned(),
        points: rounds
            .iter()
            .enumerate()
            .map(|(i, r)| (i as f64, f(r).max(0.01)))
            .collect(),
    };
    if let Err(e) = line_chart(
        &exp.out_dir().join("device_no_poll.svg"),
        &format!("no SQPOLL: {lanes} lanes x {ops} WRITEs per dispatch, one io_uring_enter each"),
        "round",
        "µs (log)",
        None,
        true,
        &[
            series("dispatch (lanes fill + publish)", |r| r.dispatch_us),
            series("io_uring_enter (submit + wait)", |r| r.enter_us),
            series("reap + check", |r| r.reap_us),
        ],
    ) {
        eprintln!("warning: {e}");
    }
    if !ok {
        eprintln!(
            "FAILED: {} bad completions (device {bad_device}, host {bad_host}), {bad_lines} bad lines, \
             {not_submitted} not submitted, {ff_errors} failed CQEs",
            bad_device + bad_host
        );
        std::process::exit(1);
    }
    exp.say(&format!(
        "every completion and every line checked: {sqes} WRITEs in {enters} io_uring_enter calls"
    ));
}

/// What the host did after one Vulkan dispatch.
struct Between {
    submitted: u32,
    enters: u32,
    enter_us: f64,
}

/// The Vulkan version: `Program::Write` on a ring without SQPOLL, run with
/// [`Programs::run_with`]; after each dispatch the callback submits what the dispatch published with
/// one `io_uring_enter` (submit all, wait for all) — no host thread runs during a dispatch.
fn on_gpu(exp: &Experiment, dev: &dyn Device, cli: &Cli) {
    let info = dev.info();
    if cli.lanes == 0 || cli.ops == 0 || cli.line_bytes == 0 || cli.line_bytes > 256 {
        fail("--lanes and --ops must be at least 1, --line-bytes in 1..=256");
    }
    let (path, file) = output_file(exp);
    let ring = DeviceRing::new(RingConfig {
        sq_entries: cli.sq_entries,
        lanes: cli.lanes,
        sqpoll: false,
        fixed_files: vec![file.as_raw_fd()],
        access: exp.access(),
        ..Default::default()
    })
    .unwrap_or_else(|e| fail(&format!("creating the device ring without SQPOLL: {e}")));
    let want = cli.lanes as u64 * cli.ops as u64;
    exp.say(&format!(
        "ring without SQPOLL (setup flags {:#x}, no waker) on {}: {} lanes x {} fire-and-forget WRITEs of {} \
         bytes into {}; after each dispatch the host submits what it published with one io_uring_enter",
        ring.setup_flags(),
        info.name,
        cli.lanes,
        cli.ops,
        cli.line_bytes,
        path.display()
    ));
    let view = ring.view();
    let lay = ring.layout();
    let deadline = Instant::now() + Duration::from_secs(cli.timeout_s);
    let mut per_dispatch: Vec<Between> = Vec::new();
    let mut between = |_dispatch: u32, _lanes: &[LaneState]| -> Result<(), DeviceError> {
        let t = Instant::now();
        let head = view.u32_at(lay.sq_head).load(Acquire);
        // Acquire: every SQE before the published tail is written (lanes release it when they publish).
        let tail = view.u32_at(lay.sq_tail).load(Acquire);
        let n = tail.wrapping_sub(head);
        let (mut submitted, mut enters) = (0u32, 0u32);
        // Normally one call; EINTR / EAGAIN / EBUSY are retried (and counted).
        while submitted < n {
            if Instant::now() > deadline {
                return Err(DeviceError::Timeout {
                    backend: info.backend,
                    limit: Duration::from_secs(cli.timeout_s),
                });
            }
            enters += 1;
            // Submit everything and wait for its completions: the next dispatch's lanes reap them.
            match ring.submit_and_wait(n - submitted, n - submitted) {
                Ok(k) => submitted += k,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                    ) => {}
                Err(e) => {
                    return Err(DeviceError::Run {
                        backend: info.backend,
                        message: format!("io_uring_enter: {e}"),
                    })
                }
            }
        }
        per_dispatch.push(Between {
            submitted,
            enters,
            enter_us: t.elapsed().as_secs_f64() * 1e6,
        });
        Ok(())
    };
    let rep = dev
        .run_with(
            &ring,
            cli.lanes,
            &Program::Write {
                file: 0,
                ops: cli.ops,
                len: cli.line_bytes,
            },
            Duration::from_secs(cli.timeout_s),
            &mut between,
        )
        .unwrap_or_else(|e| fail(&format!("running the write program: {e}")));
    let quiet = ring.quiesce(Duration::from_secs(5));
    let ctl = view.local_snapshot();
    let submitted: u64 = per_dispatch.iter().map(|b| b.submitted as u64).sum();
    let enters: u64 = per_dispatch.iter().map(|b| b.enters as u64).sum();
    let max_enters = per_dispatch.iter().map(|b| b.enters).max().unwrap_or(0);
    // The file: every write appended `line_bytes` bytes of 'a'..'z' at the file position.
    let pattern: Vec<u8> = (0..cli.line_bytes).map(|i| b'a' + (i % 26) as u8).collect();
    let data = std::fs::read(&path).unwrap_or_default();
    let good_writes = data
        .chunks(cli.line_bytes as usize)
        .filter(|c| *c == pattern.as_slice())
        .count() as u64;
    let tot = rep.total();
    let ok = tot.done == want
        && tot.failed == 0
        && ctl.ff_errors == 0
        && submitted == want
        && good_writes == want
        && data.len() as u64 == want * cli.line_bytes as u64
        && per_dispatch.len() as u32 == rep.dispatches
        && quiet;
    let secs = rep.elapsed.as_secs_f64();
    let enter_us: Vec<f64> = per_dispatch
        .iter()
        .filter(|b| b.enters > 0)
        .map(|b| b.enter_us)
        .collect();
    let e = Percentiles::of(&enter_us);
    let row = Record::new()
        .text("device", info.backend)
        .int("lanes", cli.lanes)
        .int("ops_per_lane", cli.ops)
        .int("dispatches", rep.dispatches)
        .int("sqes", submitted)
        .int("enter_calls", enters)
        .int("max_enters_per_dispatch", max_enters)
        .float("sqes_per_enter", submitted as f64 / enters.max(1) as f64, 1)
        .float("enter_p50_us", e.p50, 1)
        .float("seconds", secs, 4)
        .float("writes_per_s", tot.done as f64 / secs, 0)
        .int("failed_cqes", ctl.ff_errors)
        .int("writes_in_file", good_writes)
        .float("loadavg_1m", loadavg(), 2)
        .ring_mode(&ring)
        .pass("verified", ok);
    exp.table(
        "device_no_poll",
        "device fills SQEs (fire-and-forget writes), the host submits them with one io_uring_enter after each dispatch",
        &[row],
    );
    let rows: Vec<Record> = per_dispatch
        .iter()
        .enumerate()
        .map(|(i, b)| {
            Record::new()
                .int("dispatch", i)
                .int("submitted", b.submitted)
                .int("enter_calls", b.enters)
                .float("enter_us", b.enter_us, 1)
        })
        .collect();
    let csv = exp.out_dir().join("rounds.csv");
    if let Err(e) = std::fs::write(&csv, gpu_uring_experiments::render_csv(&rows)) {
        eprintln!("warning: cannot write {}: {e}", csv.display());
    }
    if !ok {
        eprintln!(
            "FAILED: {} of {want} writes done ({} failed), {submitted} submitted, {} failed CQEs, {good_writes} \
             intact writes in a {}-byte file{}",
            tot.done,
            tot.failed,
            ctl.ff_errors,
            data.len(),
            if quiet { "" } else { ", ring did not quiesce" }
        );
        std::process::exit(1);
    }
    exp.say(&format!(
        "every write checked: {submitted} WRITEs in {} dispatches and {enters} io_uring_enter calls",
        rep.dispatches
    ));
}

/// The file the device writes into (created or truncated), read back afterwards.
fn output_file(exp: &Experiment) -> (std::path::PathBuf, File) {
    let path = exp.out_dir().join("device_no_poll.out");
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap_or_else(|e| fail(&format!("creating {}: {e}", path.display())));
    (path, file)
}
