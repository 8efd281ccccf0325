//! device_edit_buffer — device code edits host memory while the host watches, with no copy and no
//! synchronisation call: each of `--lanes` lanes runs the `edit_buffer` shader (`Program::EditBuffer`), storing
//! `value = k` (release) into its word of the ring's fixed buffer — host memory imported into the device
//! (`VK_EXT_external_memory_host`, host-coherent) — and waiting until the host stores `ack ≥ k`; a host thread
//! ([`gpu_uring_experiments::rpc::serve_flags`]) spins on the values, acknowledges each one it sees and
//! timestamps the round trip (its ack of step k → the lane's value k + 1 visible). One run, `--steps` steps per
//! lane; the program is resumable, so the backend re-dispatches it until every lane finished (the
//! `dispatches` column). Checked: the host saw every value exactly once, in order, and each lane's final value
//! and ack equal `--steps`.
//!
//! Needs a GPU-style device (Vulkan): on the CPU reference device the "device" writes are plain stores of
//! another thread, nothing to learn. `--device auto` without one prints `skip: …` with each backend's reason
//! and exits 0 (auto takes only real GPUs; lavapipe must be named: `--device vulkan`); `--device cpu`, or an
//! unavailable device named explicitly, exits 2 with the reason.
//!
//! Output: table (or `--json` rows), `device_edit_buffer.csv`, `device_edit_buffer.svg` (round-trip
//! percentiles, log scale). Exit status 1 if a check fails.

use gpu_uring::backend::Programs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use gpu_uring::backend::Program;
use gpu_uring::protocol::DeviceRing;
use gpu_uring::ring::RingConfig;
use gpu_uring_experiments::cli::Devices;
use gpu_uring_experiments::rpc::serve_flags;
use gpu_uring_experiments::{
    fail, line_chart, loadavg, CommonArgs, Experiment, Percentiles, Record, Series,
};

/// Device code edits imported host memory while the host watches and acknowledges (GPU-style devices only).
#[derive(Parser, Debug)]
#[command(name = "device_edit_buffer", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Lanes.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    lanes: u32,
    /// Steps (value stores, each acknowledged by the host) per lane.
    #[arg(long, default_value_t = 2000)]
    steps: u32,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
}

fn main() {
    let cli = gpu_uring_experiments::cli::parse::<Cli>(Devices::GpuOnly);
    let mut exp = Experiment::new("device_edit_buffer", cli.common.clone());
    let Some(dev) = exp.gpu_only("device code storing into host memory imported into the device")
    else {
        return;
    };
    if cli.lanes == 0 || cli.steps == 0 {
        fail("--lanes and --steps must be at least 1");
    }
    let info = dev.info();
    let ring = DeviceRing::new(RingConfig {
        lanes: cli.lanes,
        fixed_buffer_bytes: (cli.lanes as usize * 8).next_multiple_of(4096),
        access: exp.access(),
        ..Default::default()
    })
    .unwrap_or_else(|e| fail(&format!("creating the device ring: {e}")));
    let stop = AtomicBool::new(false);
    let (rep, flags) = std::thread::scope(|s| {
        let host = s.spawn(|| serve_flags(&ring, cli.lanes, &stop, |_, _| {}));
        let rep = dev.run(
            &ring,
            cli.lanes,
            &Program::EditBuffer { steps: cli.steps },
            Duration::from_secs(cli.timeout_s),
        );
        stop.store(true, Ordering::Release);
        (rep, host.join().expect("the host thread panicked"))
    });
    let rep = rep.unwrap_or_else(|e| fail(&format!("running edit_buffer: {e}")));
    let v = ring.view();
    let fixed = v.layout().fixed;
    let bad_final = (0..cli.lanes)
        .filter(|&l| {
            v.u32_at(fixed + 8 * l).load(Ordering::Acquire) != cli.steps
                || v.u32_at(fixed + 8 * l + 4).load(Ordering::Acquire) != cli.steps
        })
        .count();
    let tot = rep.total();
    let want = cli.lanes as u64 * cli.steps as u64;
    let ok = tot.done == want && tot.failed == 0 && flags.seen == want && bad_final == 0;
    let secs = rep.elapsed.as_secs_f64();
    let rt = &flags.round_trips_us;
    let p = Percentiles::of(rt);
    let row = Record::new()
        .text("device", info.backend)
        .text("name", info.name.clone())
        .int("lanes", cli.lanes)
        .int("steps", cli.steps)
        .int("handshakes", tot.done)
        .int("seen_by_host", flags.seen)
        .int("dispatches", rep.dispatches)
        .float("seconds", secs, 4)
        .float("handshakes_per_s", tot.done as f64 / secs, 0)
        .float("rt_p50_us", p.p50, 2)
        .float("rt_p99_us", p.p99, 2)
        .float("rt_max_us", p.max, 1)
        .int("failed", tot.failed)
        .float("loadavg_1m", loadavg(), 2)
        .ring_mode(&ring)
        .pass("verified", ok);
    exp.table(
        "device_edit_buffer",
        "device stores into imported host memory; the host sees and acknowledges each one",
        &[row],
    );
    if let Err(e) = line_chart(
        &exp.out_dir().join("device_edit_buffer.svg"),
        &format!(
            "host ack → next device store visible, {} lanes ({})",
            cli.lanes, info.name
        ),
        "percentile",
        "µs (log)",
        Some(&["p50", "p90", "p99", "p99.9"]),
        true,
        &[Series {
            label: info.backend.to_owned(),
            points: [p.p50, p.p90, p.p99, p.p999]
                .iter()
                .enumerate()
                .map(|(i, &y)| (i as f64, y.max(1e-3)))
                .collect(),
        }],
    ) {
        eprintln!("warning: {e}");
    }
    if !ok {
        eprintln!(
            "FAILED: {} of {want} handshakes done, {} failed, {} seen by the host, {bad_final} lanes with a \
             wrong final value or ack",
            tot.done, tot.failed, flags.seen
        );
        std::process::exit(1);
    }
}
