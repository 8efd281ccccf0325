//! device_check — which device backends this build and machine offer, and does each usable one work?
//!
//! For every backend (the CPU reference device, then each adapter of Vulkan, HIP and CUDA; with `--device X`
//! only X) it opens the device and reports usable or the reason it is not: the backend compiled out of this
//! build (and the cargo feature that adds it), no driver (`libcuda.so not found`), no device, or an adapter
//! the protocol cannot use. On each usable device it runs one small dispatch of each kind
//! through a fresh device ring and checks the result:
//! - `nop`: `--lanes` lanes × 4 waited NOPs (`Program::Nop`), every one completed with result 0;
//! - `print`: every lane prints one line (`Program::Print`) into a regular file, read back and compared with
//!   the line every backend must format ([`expected_line`]), each exactly once.
//!
//! Output: table (or `--json` rows) and `device_check.csv`. Exit status 0 when every usable device passed (with
//! `auto`, an unavailable backend is reported, not an error), 1 if a check failed, 2 if the device named with
//! `--device` is unavailable.

use gpu_uring::backend::Programs;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use clap::Parser;
use gpu_uring::backend::{self, expected_line, Device, DeviceSelector, Program};
use gpu_uring::protocol::{DeviceRing, PrintTarget};
use gpu_uring::ring::RingConfig;
use gpu_uring_experiments::{fail, CommonArgs, Experiment, Record};

/// Lists every device backend with why it is (not) usable, and runs a one-dispatch sanity check on each.
#[derive(Parser, Debug)]
#[command(name = "device_check", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Lanes of each sanity dispatch.
    #[arg(long, default_value_t = 8)]
    lanes: u32,
    /// Time limit of each dispatch, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
}

/// NOPs per lane in the sanity check.
const NOPS: u32 = 4;

fn main() {
    let cli = Cli::parse();
    let sel = cli.common.device.clone();
    let exp = Experiment::new("device_check", cli.common.clone());
    if cli.lanes == 0 {
        fail("--lanes must be at least 1");
    }
    // Each candidate: its label and what opens it, or why it cannot be opened.
    let candidates: Vec<(String, Result<Candidate, String>)> = match &sel {
        DeviceSelector::Auto => {
            let mut c = vec![(
                "cpu".to_owned(),
                Ok(Candidate::Selector(DeviceSelector::Cpu)),
            )];
            // Every adapter of every GPU backend, each by its index (what `--device vulkan:INDEX` selects);
            // a backend compiled out of this build is listed with the feature that enables it, one without a
            // driver or a device with the driver's reason.
            for entry in backend::backends().into_iter().rev() {
                match entry.get().and_then(|b| b.adapters()) {
                    Ok(list) if list.is_empty() => c.push((
                        entry.name.into(),
                        Err(format!("{} unavailable: no adapter found", entry.name)),
                    )),
                    Ok(list) => {
                        for p in list {
                            let label = format!("{}:{}", entry.name, p.index);
                            c.push(match p.usable {
                                Ok(()) => (label, Ok(Candidate::Adapter(entry.name, p.index))),
                                Err(why) => {
                                    (label, Err(format!("{} ({}): {why}", p.name, p.device_type)))
                                }
                            });
                        }
                    }
                    Err(e) => c.push((entry.name.into(), Err(e.to_string()))),
                }
            }
            c
        }
        one => vec![(one.to_string(), Ok(Candidate::Selector(one.clone())))],
    };
    exp.say(&format!(
        "device: each backend in turn [--device {sel}]: {}",
        candidates
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let timeout = Duration::from_secs(cli.timeout_s);
    let mut rows = Vec::new();
    let mut failed = false;
    for (label, cand) in &candidates {
        let row = Record::new().text("backend", label.clone());
        let opened = cand
            .as_ref()
            .map_err(|why| why.clone())
            .and_then(|c| c.open().map_err(|e| e.to_string()));
        let dev = match opened {
            Ok(dev) => dev,
            Err(e) => {
                if sel != DeviceSelector::Auto {
                    fail(&format!("--device {sel}: {e}"));
                }
                rows.push(
                    row.text("device", "-")
                        .text("status", "unavailable")
                        .text("reason", e),
                );
                continue;
            }
        };
        let info = dev.info();
        exp.say(&format!("checking {info}"));
        let nop = check_nop(&*dev, cli.lanes, timeout);
        let print = check_print(&*dev, cli.lanes, timeout, exp.out_dir());
        let ok = nop.is_ok() && print.is_ok();
        failed |= !ok;
        let reason = [("nop", &nop), ("print", &print)]
            .iter()
            .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
            .collect::<Vec<_>>()
            .join("; ");
        rows.push(
            row.text("device", info.to_string())
                .text("status", if ok { "usable" } else { "check failed" })
                .text("reason", reason)
                .text("nop", nop.unwrap_or_else(|_| "FAIL".into()))
                .text("print", print.unwrap_or_else(|_| "FAIL".into()))
                .pass("passed", ok),
        );
    }
    exp.table("device_check", "device backends", &rows);
    if failed {
        eprintln!("FAILED: a usable device did not pass its sanity check");
        std::process::exit(1);
    }
}

/// What opens one candidate device.
enum Candidate {
    /// A `--device` selector.
    Selector(DeviceSelector),
    /// Adapter `index` of the backend named.
    Adapter(&'static str, usize),
}

impl Candidate {
    fn open(&self) -> Result<Box<dyn Device>, backend::DeviceError> {
        let config = backend::DeviceConfig::from_env();
        match self {
            Candidate::Selector(sel) => backend::open_with(sel, &config).map(|(d, _)| d),
            Candidate::Adapter(name, index) => {
                backend::backend(name)?.open(Some(&index.to_string()), false, &config)
            }
        }
    }
}

fn ring(lanes: u32) -> Result<DeviceRing, String> {
    DeviceRing::new(RingConfig {
        lanes,
        sq_entries: 64,
        ..Default::default()
    })
    .map_err(|e| format!("creating the device ring: {e}"))
}

/// `lanes` × [`NOPS`] waited NOPs; returns a short summary.
fn check_nop(dev: &dyn Device, lanes: u32, timeout: Duration) -> Result<String, String> {
    let ring = ring(lanes)?;
    let t = Instant::now();
    let rep = dev
        .run(
            &ring,
            lanes,
            &Program::Nop {
                ops: NOPS,
                fire_and_forget: false,
            },
            timeout,
        )
        .map_err(|e| e.to_string())?;
    let tot = rep.total();
    let want = lanes as u64 * NOPS as u64;
    if tot.done != want || tot.failed != 0 {
        return Err(format!(
            "{} of {want} NOPs completed, {} failed",
            tot.done, tot.failed
        ));
    }
    if !ring.quiesce(Duration::from_secs(5)) {
        return Err("the ring did not quiesce after the NOPs".into());
    }
    Ok(format!(
        "{want} NOPs ok ({:.1} ms)",
        t.elapsed().as_secs_f64() * 1e3
    ))
}

/// One line per lane into a file, read back and compared line by line.
fn check_print(
    dev: &dyn Device,
    lanes: u32,
    timeout: Duration,
    dir: &std::path::Path,
) -> Result<String, String> {
    let path = dir.join(format!("print-check-{}.txt", std::process::id()));
    let file = File::create(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    let ring = ring(lanes)?;
    ring.set_print_target(PrintTarget::Fd(file.as_raw_fd()))
        .map_err(|e| format!("setting the print target: {e}"))?;
    let t = Instant::now();
    let rep = dev
        .run(&ring, lanes, &Program::Print { lines: 1 }, timeout)
        .map_err(|e| e.to_string())?;
    let quiet = ring.quiesce(Duration::from_secs(5));
    ring.finish_prints();
    let errors = ring.view().local_snapshot().print_errors;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    drop(ring);
    drop(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading back: {e}"));
    let _ = std::fs::remove_file(&path);
    let text = text?;
    let tot = rep.total();
    if tot.done != lanes as u64 || tot.failed != 0 || errors != 0 || !quiet {
        return Err(format!(
            "{} of {lanes} lines printed, {} failed, {errors} write errors{}",
            tot.done,
            tot.failed,
            if quiet { "" } else { ", ring did not quiesce" }
        ));
    }
    let mut want: HashMap<String, u32> = (0..lanes).map(|l| (expected_line(l, 0), 0)).collect();
    for line in text.lines() {
        match want.get_mut(line) {
            Some(n) => *n += 1,
            None => return Err(format!("unexpected line {line:?}")),
        }
    }
    if let Some((l, n)) = want.iter().find(|(_, &n)| n != 1) {
        return Err(format!("line {l:?} found {n} times"));
    }
    Ok(format!("{lanes} lines verified ({ms:.1} ms)"))
}
