//! memory_placement — where should device-visible memory live? One shader invocation's load and store
//! latency in each placement a device ring could use: device-local memory, driver-allocated host-visible
//! (coherent) memory, and host memory imported with `VK_EXT_external_memory_host` (what device rings use for
//! their arena).
//!
//! Per placement: a `--mib` buffer holds a full-period pseudo-random chain (`memory_placement.comp` on Vulkan,
//! the device library's `gu_memory_placement` on CUDA/HIP — the same program — built by the kernel in
//! parallel); one invocation then makes `--accesses` dependent loads along it (each load's
//! address is the previous load's value: pure latency, no overlap), or `--accesses` stores along the same
//! scattered sequence. Each dispatch is timed from submission to its fence; the per-access time is
//! `(median time with N accesses − median time with 0 accesses) / N` over `--repeat` dispatches of each, so the
//! dispatch overhead cancels out. The table also gives each buffer's memory-type flags: on lavapipe every type
//! is host memory, so the three placements are expected to agree there; on a discrete GPU they would not.
//!
//! Needs a GPU-style device (Vulkan, CUDA or HIP). `--device auto` without one prints `skip: …` with each
//! backend's reason and exits 0 (auto takes only real GPUs; name lavapipe with `--device vulkan`); `--device
//! cpu`, or an unavailable device named explicitly, exits 2 with the reason. The kernel and its buffers go
//! through the backend's kernel API (`Device::alloc`, `launch`; the SPIR-V by `load_kernel`, the device
//! library's kernel by `LibraryDevice::library_kernel`).
//!
//! The host checks the chase where it can read the memory (on Vulkan the host-visible and the imported buffer;
//! on CUDA/HIP every buffer, device memory through the driver's copy): the sink must hold the index
//! `--accesses` steps along the chain (`chase_checked`; exit status 1 otherwise).
//!
//! Output: table (or `--json` rows), `memory_placement.csv`, `memory_placement.svg`.

use std::time::Duration;

use clap::Parser;
use gpu_uring::backend::{Grid, KernelArg, KernelCode, KernelLayout, Placement};
use gpu_uring_experiments::cli::Devices;
use gpu_uring_experiments::{
    bar_chart, fail, loadavg, CommonArgs, Experiment, Percentiles, Record,
};

/// The shader (device-shaders/src/memory_placement.comp, built by device-shaders/build.sh).
static SHADER: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../device-shaders/spirv/memory_placement.spv"
));

/// Kernel load/store latency: imported host memory vs device-local vs host-visible (Vulkan, CUDA, HIP).
#[derive(Parser, Debug)]
#[command(name = "memory_placement", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Dependent accesses per dispatch (at most 60000: lavapipe stops any loop after 65535 iterations).
    #[arg(long, default_value_t = 50_000)]
    accesses: u32,
    /// Buffer size in MiB (a power of two: the chain spans all of it).
    #[arg(long, default_value_t = 64)]
    mib: u32,
    /// Dispatches per measurement (the median is used).
    #[arg(long, default_value_t = 9)]
    repeat: u32,
    /// Time limit of one dispatch, seconds.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
}

/// Where every chase starts.
const SEED: u32 = 12345;
const MODE_INIT: u32 = 0;
const MODE_CHASE: u32 = 1;
const MODE_STORE: u32 = 2;
/// Chain words each invocation initialises at most (the shader's init loop bound).
const INIT_PER_INVOCATION: u32 = 1024;

fn main() {
    let cli = gpu_uring_experiments::cli::parse::<Cli>(Devices::GpuOnly);
    let mut exp = Experiment::new("memory_placement", cli.common.clone());
    let Some(dev) = exp.gpu_only("device-local memory apart from host memory, and shaders") else {
        return;
    };
    let info = dev.info();
    if cli.accesses == 0 || cli.accesses > 60_000 || !cli.mib.is_power_of_two() || cli.repeat == 0 {
        fail("--accesses in 1..=60000, --mib a power of two, --repeat ≥ 1");
    }
    let gpu = &*dev;
    let gpu_name = info.name.clone();
    let words = (cli.mib as u64) << 18; // MiB / 4 bytes
    let mask = (words - 1) as u32;
    let bytes = (words as usize + 16) * 4;
    let layout = KernelLayout {
        buffers: 1,
        value_bytes: 16,
    };
    let lib = gpu.library();
    let kernel = match lib {
        // The device library's port of the shader (kernels/src/programs/baselines.h), with its arguments.
        Some(lib) => lib.library_kernel("gu_memory_placement"),
        // SAFETY: memory_placement.spv is built from device-shaders/src/memory_placement.comp by
        // device-shaders/build.sh (CI checks it matches): one storage buffer at binding 0, 16 bytes of push
        // constants, and every index it touches is at most `mask + 1` < the buffer's `words + 16` words.
        None => unsafe { gpu.load_kernel("memory_placement", KernelCode::SpirV(SHADER), layout) },
    }
    .unwrap_or_else(|e| fail(&e.to_string()));
    // The shader's workgroups are 64 invocations; the library kernel's blocks are made the same.
    let grid = |groups: u32| match lib {
        Some(_) => Grid {
            groups,
            group_size: 64,
        },
        None => Grid::groups(groups),
    };
    let limit = Duration::from_secs(cli.timeout_s);
    let mut rows = Vec::new();
    let mut failed = false;
    let mut chart = (Vec::new(), Vec::new(), Vec::new());
    for place in [
        Placement::DeviceLocal,
        Placement::HostVisible,
        Placement::ImportedHost,
    ] {
        let buf = match gpu.alloc(place, bytes) {
            Ok(b) => b,
            Err(e) => {
                exp.say(&format!("{}: not measured: {e}", place.name()));
                rows.push(
                    Record::new()
                        .text("device", info.backend)
                        .text("placement", place.name())
                        .text("memory_type", format!("unavailable: {e}")),
                );
                continue;
            }
        };
        let run = |mode: u32, n: u32, groups: u32| {
            // One argument per kernel parameter (CUDA/HIP); Vulkan appends them to the push constants.
            let values: Vec<[u8; 4]> = [mode, n, mask, SEED]
                .iter()
                .map(|w| w.to_le_bytes())
                .collect();
            let mut args = vec![KernelArg::Buffer(&buf)];
            args.extend(values.iter().map(|v| KernelArg::Bytes(v)));
            gpu.launch(&kernel, &args, grid(groups), limit)
                .unwrap_or_else(|e| fail(&format!("{}: {e}", place.name())))
                .as_secs_f64()
                * 1e6
        };
        let init_groups = (words as u32).div_ceil(64 * INIT_PER_INVOCATION);
        run(MODE_INIT, INIT_PER_INVOCATION, init_groups);
        let median = |run: &mut dyn FnMut() -> f64| {
            let v: Vec<f64> = (0..cli.repeat).map(|_| run()).collect();
            Percentiles::of(&v).p50
        };
        // Dependent loads first (stores overwrite the chain).
        let base = median(&mut || run(MODE_CHASE, 0, 1));
        let chase = median(&mut || run(MODE_CHASE, cli.accesses, 1));
        // The host checks the chase on the memory it can read (host-visible and imported buffers; any buffer
        // through the device library's copy): the sink must hold the index `accesses` steps along the chain.
        let sink = match lib {
            Some(lib) => {
                let mut w = [0u8; 4];
                lib.read_buffer(&buf, 4 * words as usize, &mut w)
                    .map(|()| u32::from_le_bytes(w))
                    .ok()
            }
            None => buf.load_u32(words as usize),
        };
        let verified = sink.map(|sink| {
            let mut idx = SEED & mask;
            for _ in 0..cli.accesses {
                idx = 1664525u32.wrapping_mul(idx).wrapping_add(1013904223) & mask;
            }
            sink == idx
        });
        let store_base = median(&mut || run(MODE_STORE, 0, 1));
        let store = median(&mut || run(MODE_STORE, cli.accesses, 1));
        let per = |t: f64, b: f64| ((t - b) * 1e3 / cli.accesses as f64).max(0.0);
        let (load_ns, store_ns) = (per(chase, base), per(store, store_base));
        chart.0.push(place.name().to_owned());
        chart.1.push(load_ns);
        chart.2.push(store_ns);
        rows.push(
            Record::new()
                .text("device", info.backend)
                .text("placement", place.name())
                .text("memory_type", buf.memory_flags())
                .int("mib", cli.mib)
                .int("accesses", cli.accesses)
                .float("dispatch_us", base, 1)
                .float("chase_dispatch_us", chase, 1)
                .float("load_ns", load_ns, 2)
                .float("store_dispatch_us", store, 1)
                .float("store_ns", store_ns, 2)
                .text(
                    "chase_checked",
                    match verified {
                        Some(true) => "pass",
                        Some(false) => "FAIL",
                        None => "-",
                    },
                )
                .float("loadavg_1m", loadavg(), 2),
        );
        failed |= verified == Some(false);
    }
    exp.table(
        "memory_placement",
        &format!(
            "one invocation's dependent load / scattered store time per access ({})",
            gpu_name
        ),
        &rows,
    );
    if let Err(e) = bar_chart(
        &exp.out_dir().join("memory_placement.svg"),
        &format!("shader access time by memory placement ({gpu_name})"),
        "ns per access",
        &chart.0,
        &[("dependent load", chart.1), ("store", chart.2)],
    ) {
        eprintln!("warning: {e}");
    }
    if failed {
        eprintln!(
            "FAILED: the chase's last index in host-readable memory is not what the host computed"
        );
        std::process::exit(1);
    }
}
