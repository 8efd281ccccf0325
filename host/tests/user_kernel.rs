//! Your own kernels, the way a user writes them:
//! - the example `host/examples/user_kernel/` (its GLSL compiled at run time by `backend::glsl`, loaded and
//!   run through `RingKernel` on a Vulkan device), its lines checked against a Rust replica of the shader, and
//!   the resume contract (every lane's work takes several dispatches);
//! - the print API of `gpu_uring_print.glsl` (the committed `print_api` shader): every piece kind, file writes
//!   and reads, prints into a regular file (device-assigned offsets) and into a pipe (stream), on a small ring
//!   so that operations meet a full SQ;
//! - lines too long for the lane's line, refused (`LINE_TOO_LONG`), not cut (`print_too_long` shader);
//! - the run API's checks (on the CPU reference device, with native kernels);
//! - the README's "Write your own kernel" blocks, which must be the example's files verbatim.
//!
//! In CI (`CI=true`) a missing Vulkan device or glslangValidator is a failure; elsewhere a skip that says why.

mod common;
#[allow(dead_code)]
#[path = "../examples/user_kernel/main.rs"]
mod example;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use gpu_uring::backend::run_buffer::{LaneState, RunHeader, LANE_FINISHED, LANE_NO_TARGET};
use gpu_uring::backend::{
    open, Device, DeviceError, DeviceSelector, KernelCode, NativeArg, RingKernel, RunConfig,
};
use gpu_uring::protocol::{DeviceRing, LineBuf, PrintTarget};
use gpu_uring::ring::RingConfig;

static PRINT_API: &[u8] = include_bytes!("../../device-shaders/spirv/print_api.spv");

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (prints why) outside CI; fails in CI.
fn skip(what: &str, why: impl std::fmt::Display) {
    assert!(!in_ci(), "CI needs {what}: {why}");
    eprintln!("SKIP {what}: {why}");
}

/// The file's one Vulkan device, and a lock that runs its Vulkan tests one at a time.
fn vulkan() -> Option<(Arc<dyn Device>, MutexGuard<'static, ()>)> {
    static DEV: OnceLock<Result<Arc<dyn Device>, DeviceError>> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    match DEV.get_or_init(|| open(&DeviceSelector::Vulkan(None)).map(|(d, _)| Arc::from(d))) {
        Ok(d) => Some((d.clone(), LOCK.lock().unwrap_or_else(|p| p.into_inner()))),
        Err(e) => {
            skip("a Vulkan device (lavapipe: mesa-vulkan-drivers)", e);
            None
        }
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two fresh fds we now own.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

// ---- the example ------------------------------------------------------------------------------------------------

/// `point()` of pi.comp.
fn point(lane: u32, i: u32) -> u32 {
    let mut x = lane.wrapping_mul(0x9e37_79b9).wrapping_add(i);
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

fn inside(lane: u32, n: u32) -> u32 {
    (0..n)
        .filter(|&i| {
            let p = point(lane, i);
            let (x, y) = ((p & 0xffff) as u64, (p >> 16) as u64);
            x * x + y * y < 1 << 32
        })
        .count() as u32
}

#[test]
fn the_example_prints_and_resumes() {
    let Some((_dev, _serial)) = vulkan() else {
        return;
    };
    let (lanes, points, every) = (8u32, 20_000u32, 5_000u32);
    let f = tempfile::tempfile().unwrap();
    let report = match example::run(PrintTarget::Fd(f.as_raw_fd()), lanes, points, every) {
        Ok(r) => r,
        Err(e) if e.to_string().contains("glslangValidator not found") => {
            return skip("glslangValidator (glslang-tools)", e);
        }
        Err(e) => panic!("the example failed: {e}"),
    };
    // The resume contract: 20 000 points are more loop iterations than one dispatch allows.
    assert!(report.dispatches > 1, "one dispatch did it all: {report:?}");
    let out = String::from_utf8(common::read_fd_file(f.as_raw_fd())).unwrap();
    let mut next = vec![1u32; lanes as usize];
    for line in out.lines() {
        let lane: u32 = line
            .strip_prefix("lane ")
            .and_then(|r| r.split(':').next())
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("malformed line {line:?}"));
        let k = next[lane as usize];
        next[lane as usize] += 1;
        let n = (k * every).min(points);
        let ins = inside(lane, n);
        let diff = ins as i64 - (n as u64 * 51472 / 65536) as i64;
        let want = format!(
            "lane {lane}: {n} points, {ins} inside, diff {diff}, last {:x}, pi ~ ",
            point(lane, n - 1)
        );
        let pi = line
            .strip_prefix(&want)
            .unwrap_or_else(|| panic!("line {line:?}, want {want:?}…"));
        // The device divides in f32 (not always correctly rounded on a GPU): the digits may differ in the last.
        let pi: f64 = pi.parse().unwrap();
        assert!((pi - 4.0 * ins as f64 / n as f64).abs() < 2e-4, "{line}");
    }
    for (lane, state) in report.states.iter().enumerate() {
        let lane = lane as u32;
        assert_eq!(
            next[lane as usize] - 1,
            points.div_ceil(every),
            "lane {lane}'s lines"
        );
        assert_eq!(state.seq, points);
        assert_eq!(state.flags & LANE_FINISHED, LANE_FINISHED);
        assert!(
            state.dispatches > 1,
            "lane {lane} finished in one dispatch: {state:?}"
        );
        assert_eq!(
            report.lanes[lane as usize].checksum,
            inside(lane, points) as u64
        );
    }
    eprintln!(
        "example: {lanes} lanes x {points} points, {} dispatches, {:?}",
        report.dispatches, report.elapsed
    );
}

// ---- the print API ----------------------------------------------------------------------------------------------

const ROUNDS: u32 = 6;
const LANES: u32 = 16;

/// What print_api.comp's file writes put at `16 * (lane * ROUNDS + k)`.
fn written(lane: u32, k: u32) -> String {
    format!("w{lane}.{k};")
}

/// The source file print_api reads from: printable bytes.
fn source() -> Vec<u8> {
    (0..256u32).map(|i| b'a' + (i % 26) as u8).collect()
}

/// print_api's lines of lane `lane`, in program order.
fn print_api_lines(lane: u32) -> Vec<String> {
    let src = source();
    let mut v = Vec::new();
    for k in 0..ROUNDS {
        let mut f = LineBuf::with_capacity(64);
        f.f32(k as f32 * 0.125 - lane as f32, 3);
        v.push(format!(
            "L={lane} K={k} i={} x={:x} f={}!",
            k as i64 - lane as i64 - 5,
            (lane << 8) | k,
            String::from_utf8(f.as_bytes().to_vec()).unwrap()
        ));
        let at = (8 * lane + k) as usize;
        v.push(format!(
            "r{lane}.{k} 8 {}",
            std::str::from_utf8(&src[at..at + 8]).unwrap()
        ));
    }
    v
}

/// Runs print_api on `dev` with prints to `target`; returns the ring (for its counters) and the written file.
fn run_print_api(dev: &dyn Device, target: PrintTarget) -> (DeviceRing, std::fs::File) {
    let writes = tempfile::tempfile().unwrap();
    let mut reads = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut reads, &source()).unwrap();
    let ring = common::ring(RingConfig {
        lanes: LANES,
        // A small SQ: operations of 16 lanes meet a full ring and retry.
        sq_entries: 4,
        staging_lines: 2,
        fixed_buffer_bytes: 64 * LANES as usize,
        fixed_files: vec![writes.as_raw_fd(), reads.as_raw_fd()],
        ..RingConfig::default()
    });
    ring.set_print_target(target).unwrap();
    // SAFETY: print_api.spv is built by device-shaders/build.sh (checked in CI) from print_api.comp, whose only
    // indexing of its own is the lane's 64-byte range of the fixed buffer, which the ring has (64 per lane).
    let kernel = unsafe { RingKernel::spirv(dev, "print_api", PRINT_API) }
        .unwrap()
        .with_texts(&["L=", " K=", " i=", " x=", " f=", "w", ".", ";", "r"])
        .unwrap();
    // The run API ends a run whose lane a loop cap stopped before its budget (RingKernel::run); this is its
    // witness: every dispatch's unfinished lanes stopped at their budget.
    let budget = dev.lane_iter_budget();
    let mut cut = Vec::new();
    let report = kernel
        .run_with(
            &ring,
            &RunConfig {
                count: ROUNDS,
                arg0: 0,
                arg1: 1,
                timeout: Duration::from_secs(120),
                ..RunConfig::lanes(LANES)
            },
            &mut |i, states| {
                cut.extend(
                    states
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.flags & LANE_FINISHED == 0 && s.iters < budget)
                        .map(|(lane, s)| (i, lane, *s)),
                );
                Ok(())
            },
        )
        .unwrap();
    assert!(cut.is_empty(), "lanes stopped before their budget: {cut:?}");
    for lane in 0..LANES {
        let r = report.lanes[lane as usize];
        assert_eq!(
            (r.done, r.failed),
            (ROUNDS as u64, 0),
            "lane {lane}: {:?}",
            report.states[lane as usize]
        );
        let results: u64 = (0..ROUNDS).map(|k| written(lane, k).len() as u64 + 8).sum();
        assert_eq!(r.checksum, results, "lane {lane}: the operations' results");
    }
    assert!(ring.quiesce(Duration::from_secs(20)), "ring drained");
    let c = ring.view().local_snapshot();
    assert_eq!((c.ff_errors, c.print_errors, c.foreign_cqes), (0, 0, 0));
    assert_eq!(c.protocol_violations, 0);
    let file = common::read_fd_file(writes.as_raw_fd());
    for lane in 0..LANES {
        for k in 0..ROUNDS {
            let w = written(lane, k);
            let at = (16 * (lane * ROUNDS + k)) as usize;
            assert_eq!(
                file.get(at..at + w.len()),
                Some(w.as_bytes()),
                "write of lane {lane} round {k}"
            );
        }
    }
    eprintln!(
        "print_api: {LANES} lanes, {} dispatches, {:?}",
        report.dispatches, report.elapsed
    );
    (ring, writes)
}

/// Every lane's lines, each once and in its program order.
fn check_print_api_output(out: &[u8]) {
    let text = std::str::from_utf8(out).unwrap();
    let mut next = vec![0usize; LANES as usize];
    let want: Vec<Vec<String>> = (0..LANES).map(print_api_lines).collect();
    for line in text.lines() {
        let lane: usize = line[1..]
            .split(['=', '.', ' '])
            .find(|s| !s.is_empty())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("malformed line {line:?}"));
        assert_eq!(
            Some(line),
            want[lane].get(next[lane]).map(String::as_str),
            "lane {lane}'s line {}",
            next[lane]
        );
        next[lane] += 1;
    }
    for (lane, n) in next.iter().enumerate() {
        assert_eq!(*n, 2 * ROUNDS as usize, "lane {lane}'s lines");
    }
}

#[test]
fn print_api_into_a_regular_file() {
    let Some((dev, _serial)) = vulkan() else {
        return;
    };
    let out = tempfile::tempfile().unwrap();
    let (ring, _) = run_print_api(&*dev, PrintTarget::Fd(out.as_raw_fd()));
    let end = ring
        .finish_prints()
        .expect("a regular file is printed to at offsets");
    let bytes = common::read_fd_file(out.as_raw_fd());
    assert_eq!(end as usize, bytes.len());
    check_print_api_output(&bytes);
}

#[test]
fn print_api_into_a_pipe() {
    let Some((dev, _serial)) = vulkan() else {
        return;
    };
    let (rd, wr) = pipe();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::fs::File::from(rd).read_to_end(&mut out).unwrap();
        out
    });
    let (ring, _) = run_print_api(&*dev, PrintTarget::Fd(wr.as_raw_fd()));
    assert!(ring.finish_prints().is_none(), "a pipe is a stream");
    drop(ring);
    drop(wr);
    check_print_api_output(&reader.join().unwrap());
}

// ---- lines too long for the lane's line --------------------------------------------------------------------------

static PRINT_TOO_LONG: &[u8] = include_bytes!("../../device-shaders/spirv/print_too_long.spv");

/// print_too_long.comp (the print API through the print log, GUP_PRINT_LOG) on a ring of 64-byte lines: a line
/// that does not fit (bytes, or pieces) and a file write that does not fit return LINE_TOO_LONG and submit
/// nothing; lines that fit exactly, with the appended newline or with their own, are printed whole, many per
/// write.
#[test]
fn print_api_refuses_lines_too_long() {
    let Some((dev, _serial)) = vulkan() else {
        return;
    };
    let (lanes, count) = (16u32, 70u32);
    let writes = tempfile::tempfile().unwrap();
    let ring = common::ring(RingConfig {
        lanes,
        line_bytes: 64,
        fixed_files: vec![writes.as_raw_fd()],
        ..RingConfig::default()
    });
    let (rd, wr) = pipe();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::fs::File::from(rd).read_to_end(&mut out).unwrap();
        out
    });
    ring.set_print_target(PrintTarget::Fd(wr.as_raw_fd()))
        .unwrap();
    let mut texts = vec!["0123456789"];
    let letters = "abcdefghi";
    texts.extend((1..=9).map(|k| &letters[..k]));
    texts.push("xyz\n");
    // SAFETY: print_too_long.spv is built by device-shaders/build.sh (checked in CI) from print_too_long.comp,
    // which indexes nothing of its own.
    let kernel = unsafe { RingKernel::spirv(&*dev, "print_too_long", PRINT_TOO_LONG) }
        .unwrap()
        .with_texts(&texts)
        .unwrap();
    let report = kernel
        .run(
            &ring,
            &RunConfig {
                count,
                timeout: Duration::from_secs(120),
                ..RunConfig::lanes(lanes)
            },
        )
        .unwrap();
    // Per lane: lines of 1 … 64 bytes and the 64-byte line with its own newline printed; 6 lines of 65 … 70
    // bytes, the 33-piece line and the 64-byte write refused.
    let printed: u64 = (1..=64u64).sum::<u64>() + 64;
    for lane in 0..lanes as usize {
        let r = report.lanes[lane];
        assert_eq!(
            (r.done, r.failed, r.checksum),
            (65, 8, printed),
            "lane {lane}: {:?}",
            report.states[lane]
        );
    }
    assert!(ring.quiesce(Duration::from_secs(20)), "ring drained");
    let c = ring.view().local_snapshot();
    assert_eq!(
        (c.ff_errors, c.print_errors, c.protocol_violations),
        (0, 0, 0)
    );
    assert!(ring.finish_prints().is_none(), "a pipe is a stream");
    // The shader prints through the print log (GUP_PRINT_LOG; the ring is in group-commit mode): its lanes
    // wrote it, many lines per write, and each lane's flush left the host nothing to write.
    let log = ring.print_log_report();
    let lines = 65 * lanes as u64;
    assert!(
        log.device_writes > 0 && log.device_writes < lines,
        "{lines} lines in {} writes: {log:?}",
        log.device_writes
    );
    assert_eq!(
        (log.host_bytes, log.incomplete_ranges, log.violations),
        (0, 0, 0),
        "{log:?}"
    );
    drop(ring);
    drop(wr);
    let out = reader.join().unwrap();
    let mut want: Vec<String> = (0..64usize)
        .map(|n| {
            let mut l = "0123456789".repeat(n / 10);
            l.push_str(&letters[..n % 10]);
            l + "\n"
        })
        .collect();
    want.push("0123456789".repeat(6) + "xyz\n");
    let mut got: Vec<&[u8]> = out.split_inclusive(|&c| c == b'\n').collect();
    got.sort_unstable();
    let mut want: Vec<&[u8]> = want
        .iter()
        .flat_map(|l| std::iter::repeat(l.as_bytes()).take(lanes as usize))
        .collect();
    want.sort_unstable();
    assert_eq!(got, want, "every line that fits, whole, once per lane");
    assert!(
        common::read_fd_file(writes.as_raw_fd()).is_empty(),
        "the refused write wrote nothing"
    );
}

// ---- the run API's checks (CPU reference device, native kernels) ----------------------------------------------

/// A native ring kernel: each lane stores `done = params.count` and `flags = flags_set` in its lane state.
fn native(flags_set: u32) -> KernelCode<'static> {
    let head = std::mem::size_of::<RunHeader>() / 4;
    let each = std::mem::size_of::<LaneState>() / 4;
    KernelCode::Native(Arc::new(move |id, args, _deadline| {
        let Some(NativeArg::Words(run)) = args.get(2) else {
            return;
        };
        let word = |i: usize| -> &AtomicU32 { &run[i] };
        let lane = head + id as usize * each;
        // Relaxed: the launch's end orders these before the host's reads.
        let count = word(2).load(Ordering::Relaxed);
        word(lane + 2).store(count, Ordering::Relaxed);
        word(lane + 4).store(flags_set, Ordering::Relaxed);
    }))
}

#[test]
fn run_api_checks_its_arguments() {
    let dev = common::cpu();
    let ring = common::ring(RingConfig {
        lanes: 4,
        ..RingConfig::default()
    });
    // SPIR-V on a device that loads native kernels: refused, naming what would run it.
    // SAFETY: never loaded (refused before loading).
    let e = unsafe { RingKernel::spirv(&*dev, "print_api", PRINT_API) }.unwrap_err();
    assert!(
        matches!(e, DeviceError::Unsupported { .. }) && e.to_string().contains("Vulkan"),
        "{e}"
    );
    // SAFETY: the native kernel touches only its lane's words of the run buffer.
    let k = unsafe { RingKernel::load(&*dev, "finish", &[native(LANE_FINISHED)]) }.unwrap();
    let r = k
        .run(
            &ring,
            &RunConfig {
                count: 7,
                ..RunConfig::lanes(4)
            },
        )
        .unwrap();
    assert_eq!(r.dispatches, 1);
    assert!(r.lanes.iter().all(|l| l.done == 7), "{r:?}");
    for (bad, what) in [
        (RunConfig::lanes(0), "0 lanes"),
        (RunConfig::lanes(5), "5 lanes"),
        (
            RunConfig {
                iter_budget: Some(0),
                ..RunConfig::lanes(4)
            },
            "iter_budget is 0",
        ),
        (
            RunConfig {
                timeout: Duration::ZERO,
                ..RunConfig::lanes(4)
            },
            "timeout is zero",
        ),
    ] {
        let e = k.run(&ring, &bad).unwrap_err();
        assert!(e.to_string().contains(what), "{what}: {e}");
    }
    let too_many = ["x"; 17];
    let e = k.with_texts(&too_many).unwrap_err();
    assert!(e.to_string().contains("17 text pieces"), "{e}");
    // A lane that printed with no print target: the run stops with an error that says what to do.
    // SAFETY: as above.
    let k = unsafe { RingKernel::load(&*dev, "no_target", &[native(LANE_NO_TARGET)]) }.unwrap();
    let e = k.run(&ring, &RunConfig::lanes(2)).unwrap_err();
    assert!(e.to_string().contains("set_print_target"), "{e}");
}

// ---- compiling ---------------------------------------------------------------------------------------------------

#[test]
fn a_shader_with_errors_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.comp");
    std::fs::write(
        &path,
        "#version 460\n#extension GL_GOOGLE_include_directive : require\n#include \"gpu_uring_print.glsl\"\n\
         void main() { gup_print(42); }\n",
    )
    .unwrap();
    match gpu_uring::backend::glsl::compile(&path) {
        Err(gpu_uring::backend::glsl::GlslError::Compile { messages, .. }) => {
            assert!(messages.contains("gup_print"), "{messages}")
        }
        Err(gpu_uring::backend::glsl::GlslError::CompilerMissing(e)) => {
            skip("glslangValidator (glslang-tools)", e)
        }
        other => panic!("{other:?}"),
    }
}

// ---- the README ---------------------------------------------------------------------------------------------------

/// The README's "Write your own kernel" section shows the example's files: each block after a
/// `<!-- include: PATH -->` line must be the file at PATH, verbatim.
#[test]
fn readme_blocks_are_the_example_files() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let mut found = 0;
    for part in readme.split("<!-- include: ").skip(1) {
        let (path, rest) = part.split_once(" -->").unwrap();
        let block = rest
            .split_once("```")
            .and_then(|(_, b)| b.split_once('\n'))
            .and_then(|(_, b)| b.split_once("```"))
            .map(|(b, _)| b)
            .unwrap_or_else(|| panic!("no code block after the include of {path}"));
        let file = std::fs::read_to_string(format!("{root}/{path}")).unwrap();
        assert!(
            block == file,
            "README.md's block for {path} differs from the file: paste the file into it"
        );
        found += 1;
    }
    assert!(
        found >= 2,
        "README.md includes the example's shader and program"
    );
}
