//! shared_ring_cpu_only — the shared-memory device ring driven from the CPU only, checking the SQPOLL wake-up
//! mechanics step by step (the seed experiment `io_uring_svm_cpu_only`).
//!
//! One lane of the CPU reference device (the main thread) submits through a device ring whose SQ thread
//! sleeps after `--sq-idle-ms` (default 10 ms) without work. Each step prints what it expects, what it saw,
//! and pass/FAIL:
//! 1. `submit hot`: a waited NOP while the SQ thread is awake completes without any wake-up.
//! 2. For each of `--cycles` cycles: `sleep` — after idling 5× the SQ idle time the kernel has set
//!    `IORING_SQ_NEED_WAKEUP`; then `submit asleep` — a waited NOP (even cycles) or a 1-byte write to /dev/null
//!    (odd cycles) published into the sleeping ring completes, and the waker's wake-up counter went up: the
//!    completion came through a waker wake-up, not through any syscall of the submitting lane.
//! 3. `fire-and-forget asleep`: the same with a fire-and-forget write, finished by the lane's flush.
//! 4. `idle waker`: 200 ms with no work — the waker makes no wake-up call (it only checks, with backoff).
//! 5. `no CQ overflow` and `quiesce`: the CQ never overflowed, and the ring drains.
//!
//! Exit status 1 if any step fails.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use gpu_uring::protocol::DeviceRing;
use gpu_uring::protocol::{CompletionMode, FileRef, Lane, DEFAULT_BUDGET};
use gpu_uring::ring::RingConfig;
use gpu_uring_experiments::cli::Devices;
use gpu_uring_experiments::{fail, CommonArgs, Experiment, Record};

/// `IORING_SQ_NEED_WAKEUP` from `<linux/io_uring.h>`: set in `sq.flags` by the kernel when the SQPOLL thread
/// has gone to sleep.
const IORING_SQ_NEED_WAKEUP: u32 = 1;

/// The lane-relative completion slot the waited operations use (slot 0 is the lane's print slot).
const SLOT: u32 = 1;

/// Drives a device ring from the CPU only and checks that work published into a sleeping SQPOLL ring is
/// completed through the waker.
#[derive(Parser, Debug)]
#[command(name = "shared_ring_cpu_only", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// SQPOLL idle time in milliseconds.
    #[arg(long, default_value_t = 10)]
    sq_idle_ms: u64,
    /// Sleep/submit cycles.
    #[arg(long, default_value_t = 4)]
    cycles: u32,
}

struct Steps {
    rows: Vec<Record>,
}

impl Steps {
    fn add(&mut self, step: String, expect: &str, observed: String, ok: bool) {
        self.rows.push(
            Record::new()
                .int("n", self.rows.len() as u64 + 1)
                .text("step", step)
                .text("expect", expect)
                .text("observed", observed)
                .pass("result", ok),
        );
    }
}

fn main() {
    let cli = gpu_uring_experiments::cli::parse::<Cli>(Devices::CpuOnly);
    let mut exp = Experiment::new("shared_ring_cpu_only", cli.common.clone());
    exp.cpu_only();
    let idle = Duration::from_millis(cli.sq_idle_ms.max(1));
    let devnull = std::fs::File::options()
        .write(true)
        .open("/dev/null")
        .unwrap_or_else(|e| fail(&format!("opening /dev/null: {e}")));
    let fd = devnull.as_raw_fd();
    let ring = DeviceRing::new(RingConfig {
        lanes: 1,
        sq_thread_idle: idle,
        fixed_files: vec![fd],
        access: exp.access(),
        ..Default::default()
    })
    .unwrap_or_else(|e| fail(&format!("creating the device ring: {e}")));
    let view = ring.view();
    let l = ring.layout();
    exp.say(&format!(
        "ring: {} SQ / {} CQ entries, arena {} KiB at {:#x}, NO_SQARRAY {}, SQ idle {} ms; one lane on the \
         main thread",
        l.sq_entries,
        l.cq_entries,
        l.arena_size / 1024,
        l.arena_host_base,
        if ring.no_sqarray() { "yes" } else { "no" },
        idle.as_millis()
    ));
    let sq_flags = view.u32_at(l.sq_flags);
    let asleep = || sq_flags.load(Ordering::Acquire) & IORING_SQ_NEED_WAKEUP != 0;

    let mut lane = Lane::new(view, 0);
    let line = view.line_off(0, 0);
    view.write_bytes(line, b"x");
    let mut steps = Steps { rows: Vec::new() };

    // A waited NOP or 1-byte write; returns (result, microseconds, wake-ups during it).
    let waited = |lane: &mut Lane<'_>, write: bool| {
        let w0 = ring.waker_stats().wakeups;
        let t = Instant::now();
        let r = if write {
            lane.write(
                FileRef::Fixed(0),
                line,
                1,
                -1,
                CompletionMode::Slot(SLOT),
                DEFAULT_BUDGET,
            )
        } else {
            lane.nop(CompletionMode::Slot(SLOT), DEFAULT_BUDGET)
        }
        .and_then(|_| lane.wait(SLOT, DEFAULT_BUDGET));
        let us = t.elapsed().as_secs_f64() * 1e6;
        (r, us, ring.waker_stats().wakeups - w0)
    };

    // 1. Hot: wake the SQ thread with a first NOP, then measure one while it polls.
    let _ = waited(&mut lane, false);
    let (r, us, dw) = waited(&mut lane, false);
    steps.add(
        "submit hot".into(),
        "NOP completes, res 0, no wake-up",
        format!("res {r:?} in {us:.1} us, wake-ups +{dw}"),
        r == Ok(0) && dw == 0,
    );

    // 2. Sleep / submit cycles.
    for c in 1..=cli.cycles {
        std::thread::sleep(idle * 5);
        let slept = asleep();
        steps.add(
            format!("sleep {c}"),
            "NEED_WAKEUP set after 5x SQ idle",
            format!(
                "NEED_WAKEUP {} after {} ms",
                if slept { "set" } else { "clear" },
                (idle * 5).as_millis()
            ),
            slept,
        );
        let write = c % 2 == 0;
        let (r, us, dw) = waited(&mut lane, write);
        let want = if write { 1 } else { 0 };
        steps.add(
            format!("submit asleep {c}"),
            if write {
                "1-byte write completes (res 1) via a waker wake-up"
            } else {
                "NOP completes (res 0) via a waker wake-up"
            },
            format!("res {r:?} in {us:.1} us, wake-ups +{dw}"),
            r == Ok(want) && dw >= 1,
        );
    }

    // 3. Fire-and-forget into the sleeping ring, finished by flush.
    std::thread::sleep(idle * 5);
    let slept = asleep();
    let e0 = view.local_snapshot().ff_errors;
    let w0 = ring.waker_stats().wakeups;
    let t = Instant::now();
    let sub = lane.write(
        FileRef::Fixed(0),
        line,
        1,
        -1,
        CompletionMode::FireAndForget,
        DEFAULT_BUDGET,
    );
    let fl = lane.flush(DEFAULT_BUDGET);
    let us = t.elapsed().as_secs_f64() * 1e6;
    let dw = ring.waker_stats().wakeups - w0;
    let de = view.local_snapshot().ff_errors - e0;
    steps.add(
        "fire-and-forget asleep".into(),
        "flush returns, no error, wake-up +1 or more",
        format!(
            "asleep before: {slept}; submit {:?}, flush {fl:?} in {us:.1} us, errors +{de}, wake-ups +{dw}",
            sub.map(|_| ())
        ),
        slept && sub.is_ok() && fl.is_ok() && de == 0 && dw >= 1,
    );

    // 4. An idle waker checks but never calls io_uring_enter. Let the ring settle first: a wake-up call the
    // waker decided on just before the last completion may still be in flight and counted a moment later.
    std::thread::sleep(Duration::from_millis(20));
    let s0 = ring.waker_stats();
    std::thread::sleep(Duration::from_millis(200));
    let s1 = ring.waker_stats();
    steps.add(
        "idle waker".into(),
        "200 ms without work: no wake-up calls",
        format!(
            "wake-ups +{}, checks +{} ({:.0}/s)",
            s1.wakeups - s0.wakeups,
            s1.sleeps - s0.sleeps,
            (s1.sleeps - s0.sleeps) as f64 / 0.2
        ),
        s1.wakeups == s0.wakeups,
    );

    // 5. Accounting.
    let st = ring.waker_stats();
    steps.add(
        "no CQ overflow".into(),
        "waker never had to flush an overflow",
        format!(
            "overflow flushes {}, wake-up errors {}",
            st.overflow_flushes, st.errors
        ),
        st.overflow_flushes == 0 && st.errors == 0,
    );
    let q = ring.quiesce(Duration::from_secs(2));
    steps.add(
        "quiesce".into(),
        "SQ consumed and every CQ credit back",
        format!("quiesced: {q}"),
        q,
    );

    exp.table(
        "shared_ring_cpu_only",
        "shared_ring_cpu_only: SQPOLL wake-up mechanics, CPU only",
        &steps.rows,
    );
    let failed = steps
        .rows
        .iter()
        .filter(|r| r.get("result") == Some(&gpu_uring_experiments::Cell::Bool(false)))
        .count();
    let total_wakeups = ring.waker_stats().wakeups;
    exp.say(&format!(
        "{} of {} steps passed; waker wake-ups in total: {total_wakeups}",
        steps.rows.len() - failed,
        steps.rows.len()
    ));
    drop(lane);
    exp.say(&gpu_uring_experiments::ring_mode_line(&ring));
    drop(ring);
    if failed > 0 {
        std::process::exit(1);
    }
}
