//! megakernel_stream: a persistent kernel streams a file through the io_queue pump and checksums it.
//!
//! On a device whose lanes are host threads (the CPU reference device: `cpu`, and `auto` without a GPU) the
//! "kernel" runs once (`--lanes` lanes, one thread each) and never relaunches.
//! Lane `l` owns chunks `l, l + lanes, …` of the file and a double buffer (two `--chunk`-byte halves of its
//! part of the pump's buffer region): it publishes the READ of its next chunk into one half, then checksums the
//! chunk already in the other half in place while the pump and the kernel fill the first. The checksum
//! (`backend::checksum` per chunk, seeded by the chunk's offset, summed) must equal the host's over the same file:
//! both are printed and the program exits non-zero on a mismatch.
//!
//! Any other device (`--device vulkan[:NAME]`, `auto` on a GPU) runs the same kernel as a compute shader (`device-shaders/src/pump_stream.comp`, the
//! GLSL io_queue lane side in `gpu_uring_pump.glsl`) on the pump arena imported into Vulkan: one lane per
//! invocation, resumable (lavapipe caps loops, so every lane keeps its progress — chunks published and consumed,
//! the partial checksum of the current chunk — in a lane-state buffer and the host re-dispatches until every lane
//! is done). Defaults on a CPU-type Vulkan device (lavapipe): 4 MiB, 64 KiB chunks, 32 lanes; on a GPU the CPU
//! defaults. An unavailable device (HIP, CUDA today) ends it with exit status 2.
//!
//! Bus traffic (CPU reference device only: its lanes count every access to the io_queue arena and to the
//! device-local block): per request, the lanes' RMWs, waited loads, other loads and stores on host-shared
//! memory (`host_*_per_op`; the hand-off has one writer per host-shared word, so `host_rmw_per_op` is 0), and
//! the RMWs on device-local memory (`local_rmw_per_op`: the allocation CAS).

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use gpu_uring::backend::cpu::run_queue_lanes;
use gpu_uring::backend::pump::{run_pump, PumpProgram, PumpRunParams};
use gpu_uring::backend::{checksum, DeviceType};
use gpu_uring::pump::{Pump, PumpConfig, PumpFile, QueueError, QueueLane, QueueRegion, Request};
use gpu_uring::ring::bus::BusCounters;
use gpu_uring_experiments::{bar_chart, data_file, fail, loadavg, CommonArgs, Experiment, Record};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "a persistent kernel streams a file through the io_queue pump and checksums it"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// File to stream (default: a generated file of --mib MiB in the output directory, removed afterwards).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Size of the generated file, MiB [default: 256; 4 on a CPU-type Vulkan device].
    #[arg(long)]
    mib: Option<u64>,
    /// Bytes per READ (one half of a lane's double buffer) [default: 256 KiB; 64 KiB on a CPU-type Vulkan
    /// device].
    #[arg(long)]
    chunk: Option<u32>,
    /// Lanes of the persistent kernel [default: 4; 32 on a CPU-type Vulkan device].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    lanes: Option<u32>,
    /// Longest the Vulkan kernel may run (seconds) before the run fails.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// Self-check of the mismatch path: the kernel corrupts its checksum of chunk 0 (must exit non-zero).
    #[arg(long, hide = true)]
    corrupt: bool,
}

/// The longest a lane waits for one chunk before it reports the chunk failed.
const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// What one lane of the kernel reports.
#[derive(Default, Clone, Copy)]
struct LaneOut {
    sum: u64,
    bytes: u64,
    chunks: u64,
    failed: u64,
    /// The lane's io_queue arena accesses (`None` where lanes are not host threads: not counted).
    bus: Option<BusCounters<QueueRegion>>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut exp = Experiment::new("megakernel_stream", args.common.clone());
    // A device whose lanes are host threads runs the kernel as Rust lane code on its threads; any other device
    // runs the GLSL kernel (`PumpProgram::STREAM`) through `run_pump`.
    let dev = exp.open_device();
    let info = dev.info();
    let host_lanes = info.caps.lanes_are_host_threads;
    let small = !host_lanes && info.device_type == DeviceType::Cpu;
    let mib = args.mib.unwrap_or(if small { 4 } else { 256 });
    let chunk = args
        .chunk
        .unwrap_or(if small { 64 << 10 } else { 256 << 10 });
    let lanes = args.lanes.unwrap_or(if small { 32 } else { 4 });
    if lanes == 0 || chunk == 0 || chunk % 4 != 0 {
        fail("--lanes must be ≥ 1 and --chunk a positive multiple of 4");
    }
    let dir = exp.out_dir().to_path_buf();
    let file = match &args.file {
        Some(p) => std::fs::File::open(p)
            .unwrap_or_else(|e| fail(&format!("opening {}: {e}", p.display()))),
        None => data_file(&dir, ".megakernel_stream.data", mib << 20)
            .unwrap_or_else(|e| fail(&format!("creating the data file in {}: {e}", dir.display()))),
    };
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let chunk = chunk as u64;
    let nchunks = total.div_ceil(chunk);
    exp.say(&format!(
        "megakernel_stream: {total} bytes, {nchunks} chunks of {chunk}, {lanes} lanes, double-buffered"
    ));

    // Host checksum (the oracle).
    let t = Instant::now();
    let mut host = 0u64;
    let mut buf = vec![0u8; chunk as usize];
    for c in 0..nchunks {
        let off = c * chunk;
        let n = (total - off).min(chunk) as usize;
        file.read_exact_at(&mut buf[..n], off).unwrap();
        host = host.wrapping_add(checksum(off, &buf[..n]));
    }
    let host_s = t.elapsed().as_secs_f64();

    let pump = match Pump::spawn(PumpConfig {
        slots: (lanes * 2).max(8),
        regions: vec![lanes as usize * 2 * chunk as usize],
        files: vec![PumpFile::reader(&file).unwrap()],
        ..Default::default()
    }) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let load = loadavg();
    let t = Instant::now();
    // A GPU kernel: the dispatches' time only (not the arena import and the pipeline build before them).
    let mut kernel_s = None;
    let outs = if !host_lanes {
        // The GLSL kernel: resumable dispatches until every lane has consumed its chunks.
        let params = PumpRunParams {
            file: 0,
            region: 0,
            chunk: chunk as u32,
            total,
            arg0: args.corrupt as u32,
            ..Default::default()
        };
        match run_pump(
            &*dev,
            &pump,
            lanes,
            PumpProgram::STREAM,
            params,
            std::time::Duration::from_secs(args.timeout_s),
        ) {
            Ok(r) => {
                kernel_s = Some(r.elapsed.as_secs_f64());
                exp.say(&format!(
                    "{}: {} dispatches in {:.3} s, {} would-block allocation scans",
                    info.backend,
                    r.dispatches,
                    r.elapsed.as_secs_f64(),
                    r.lanes.iter().map(|s| s.would_block as u64).sum::<u64>()
                ));
                r.lanes
                    .iter()
                    .map(|s| LaneOut {
                        sum: s.sum,
                        bytes: s.bytes,
                        chunks: s.done as u64,
                        failed: s.failed as u64,
                        bus: None,
                    })
                    .collect()
            }
            Err(e) => {
                eprintln!("error: the {} kernel failed: {e}", info.backend);
                let _ = pump.stop();
                return ExitCode::FAILURE;
            }
        }
    } else {
        run_cpu_kernel(&pump, &args, lanes, chunk, total, nchunks)
    };
    let el = kernel_s.unwrap_or_else(|| t.elapsed().as_secs_f64());
    exp.say(&format!(
        "load average: {load:.1} before the kernel, {:.1} after",
        loadavg()
    ));
    let st = match pump.stop() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: the pump stopped with: {e}");
            return ExitCode::FAILURE;
        }
    };
    let device_sum = outs.iter().fold(0u64, |a, o| a.wrapping_add(o.sum));
    let bytes: u64 = outs.iter().map(|o| o.bytes).sum();
    let failed: u64 = outs.iter().map(|o| o.failed).sum();
    let ok = device_sum == host && bytes == total && failed == 0;
    // One READ request per chunk a lane finished or failed.
    let requests: u64 = outs.iter().map(|o| o.chunks + o.failed).sum();
    let bus = outs
        .iter()
        .map(|o| o.bus)
        .collect::<Option<Vec<_>>>()
        .map(|b| BusCounters::total(&b));
    let row = Record::new()
        .text("device", info.backend)
        .int("lanes", lanes)
        .int("chunk", chunk)
        .int("bytes", bytes)
        .float("seconds", el, 3)
        .float("mb_per_s", bytes as f64 / el / 1e6, 3)
        .float("host_mb_per_s", total as f64 / host_s / 1e6, 3)
        .int("batches", st.batches)
        .float(
            "sqes_per_batch",
            st.sqes as f64 / st.batches.max(1) as f64,
            3,
        )
        .int("idle_parks", st.idle_parks)
        .int("requests", requests);
    let per = |n: u64| n as f64 / requests.max(1) as f64;
    let row = match &bus {
        Some(b) => {
            let p = b.per_op(requests);
            exp.say(&format!(
                "bus per request: {p}; device-local rmw {:.2}",
                per(b.get(QueueRegion::Local).rmw),
            ));
            row.float("host_rmw_per_op", p.host_rmw, 3)
                .float("host_waited_loads_per_op", p.host_waited_loads, 3)
                .float("host_loads_per_op", p.host_loads, 3)
                .float("host_stores_per_op", p.host_stores, 3)
                .float("local_rmw_per_op", per(b.get(QueueRegion::Local).rmw), 3)
        }
        None => row.text(
            "host_rmw_per_op",
            "not counted (lanes are not host threads)",
        ),
    };
    let row = row
        .int("protocol_violations", st.protocol_violations)
        .int("foreign_cqes", st.foreign_cqes)
        .text("device_checksum", format!("{device_sum:016x}"))
        .text("host_checksum", format!("{host:016x}"))
        .pass("match", ok);
    exp.table("megakernel_stream", "persistent kernel stream", &[row]);
    let labels: Vec<String> = (0..lanes).map(|l| format!("lane {l}")).collect();
    if let Err(e) = bar_chart(
        &dir.join("megakernel_stream.svg"),
        &format!(
            "megakernel_stream: MiB streamed per lane ({:.0} MB/s total)",
            bytes as f64 / el / 1e6
        ),
        "MiB",
        &labels,
        &[(
            "MiB",
            outs.iter()
                .map(|o| o.bytes as f64 / (1 << 20) as f64)
                .collect(),
        )],
    ) {
        eprintln!("warning: {e}");
    }
    exp.say(&format!("device checksum {device_sum:016x}"));
    exp.say(&format!("host checksum   {host:016x}"));
    if ok {
        exp.say("checksums match");
        ExitCode::SUCCESS
    } else {
        eprintln!("error: checksum mismatch ({failed} chunks failed, {bytes} of {total} bytes)");
        ExitCode::FAILURE
    }
}

/// The persistent kernel on the CPU reference device: one dispatch, every lane loops until its chunks are done.
fn run_cpu_kernel(
    pump: &Pump,
    args: &Args,
    lanes: u32,
    chunk: u64,
    total: u64,
    nchunks: u64,
) -> Vec<LaneOut> {
    run_queue_lanes(pump, lanes, |lane| {
        let mut out = stream_lane(lane, args, lanes, chunk, total, nchunks);
        out.bus = Some(lane.bus());
        out
    })
    .unwrap_or_else(|e| fail(&e.to_string()))
}

/// One lane of the CPU kernel: its chunks, double-buffered.
fn stream_lane(
    lane: &mut QueueLane<'_>,
    args: &Args,
    lanes: u32,
    chunk: u64,
    total: u64,
    nchunks: u64,
) -> LaneOut {
    let id = lane.id() as u64;
    let v = lane.view();
    let half = |j: u64| (id * 2 + j) * chunk;
    let read = |c: u64, j: u64| {
        let off = c * chunk;
        let len = (total - off).min(chunk) as u32;
        (Request::read(0, off, 0, half(j), len).tag(c), len)
    };
    let mut out = LaneOut::default();
    let mut c = id;
    if c >= nchunks {
        return out;
    }
    // Prime: the first chunk into half 0.
    let mut cur = (lane.alloc(1 << 20).expect("slot"), c, 0u64);
    lane.publish(cur.0, &read(c, 0).0);
    loop {
        // Prefetch the next chunk into the other half while this one is checksummed.
        let next_c = c + lanes as u64;
        let next = (next_c < nchunks).then(|| {
            let s = lane.alloc(1 << 20).expect("slot");
            lane.publish(s, &read(next_c, 1 - cur.2).0);
            (s, next_c, 1 - cur.2)
        });
        let (slot, cc, j) = cur;
        let len = read(cc, j).1;
        match lane.wait_until(slot, Instant::now() + WAIT) {
            Ok(done) if done.bytes() == Some(len) && done.tag == cc => {
                // SAFETY: the READ into this half is DONE; the next READ targets the other half.
                let bytes = unsafe { v.region_slice(0, half(j), len as usize) };
                let sum = checksum(cc * chunk, bytes) ^ (args.corrupt && cc == 0) as u64;
                out.sum = out.sum.wrapping_add(sum);
                out.bytes += len as u64;
                out.chunks += 1;
            }
            Ok(done) => {
                eprintln!("lane {id}: chunk {cc} failed: {done:?}");
                out.failed += 1;
            }
            Err(QueueError::TimedOut) => {
                // The READ is still the pump's (and may still fill this half): leave both slots to the
                // pump, whose stop completes them, and give up on this lane's remaining chunks.
                eprintln!("lane {id}: chunk {cc} did not complete within {WAIT:?}; lane gives up");
                out.failed += 1;
                return out;
            }
            Err(e) => {
                eprintln!("lane {id}: chunk {cc}: {e}");
                out.failed += 1;
            }
        }
        lane.free(slot);
        match next {
            Some(n) => {
                cur = n;
                c = next_c;
            }
            None => break,
        }
    }
    out
}
