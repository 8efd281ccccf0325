//! One device test suite, every backend: each test is written once against `&dyn Device` and instantiated per
//! backend by `suite!` (the CPU reference device always; Vulkan when a device is present — in CI
//! (`CI=true`) a missing Vulkan device is a failure, elsewhere a skip that prints `SKIP vulkan: <reason>`).
//! CUDA and HIP run when their device is present and are skipped with the reason otherwise (`SKIP cuda: …`),
//! also under `CI=true` (CI has no GPU). Sizes are small: lavapipe is a software rasteriser on a
//! 2-core machine, and its programs are re-dispatched until every lane is done (never timed tightly).

mod common;

use gpu_uring::backend::Programs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use gpu_uring::abi::{BELL_DIRTY, BELL_LOCK, RING_SLOT_DONE};
use gpu_uring::backend::format_print_line;
use gpu_uring::backend::run_buffer::{self, LaneState, RunParams};
use gpu_uring::backend::{
    backend, checksum, edit_buffer_host, layout_sqe_expected, open, open_with, Device,
    DeviceConfig, DeviceError, DeviceSelector, DeviceType, Grid, KernelArg, KernelCode,
    KernelLayout, Program,
};
use gpu_uring::local_off;
use gpu_uring::protocol::{DeviceRing, Lane, LineBuf, PrintMode, PrintTarget, DEFAULT_BUDGET};
use gpu_uring::ring::{DeviceAccess, RingConfig, RingLayout, Sqe, WakerConfig};
use io_uring::{opcode, squeue::Flags, types};
use std::sync::atomic::Ordering::{Relaxed, Release};

const TIMEOUT: Duration = Duration::from_secs(20);

/// A backend for one test, and (Vulkan) the guard that serialises Vulkan tests.
type Backend = Option<(Arc<dyn Device>, Option<MutexGuard<'static, ()>>)>;

fn cpu() -> Backend {
    let (dev, _) = open(&DeviceSelector::Cpu).expect("the CPU reference device always opens");
    Some((Arc::from(dev), None))
}

/// The suite's one Vulkan device (one instance and logical device shared by every test), and a lock that runs
/// Vulkan tests one at a time (one queue; lavapipe shares 2 cores with the SQPOLL threads).
fn vulkan_device() -> Option<(Arc<dyn Device>, MutexGuard<'static, ()>)> {
    static DEV: OnceLock<Result<Arc<dyn Device>, DeviceError>> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    match DEV.get_or_init(|| open_vulkan(&DeviceConfig::from_env()).map(Arc::from)) {
        Ok(d) => Some((d.clone(), LOCK.lock().unwrap_or_else(|p| p.into_inner()))),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI needs a Vulkan device (lavapipe: mesa-vulkan-drivers): {e}");
            }
            eprintln!("SKIP vulkan: {e}");
            None
        }
    }
}

/// `--device vulkan` with `config`.
fn open_vulkan(config: &DeviceConfig) -> Result<Box<dyn Device>, DeviceError> {
    open_with(&DeviceSelector::Vulkan(None), config).map(|(d, _)| d)
}

fn vulkan() -> Backend {
    vulkan_device().map(|(d, g)| (d, Some(g)))
}

/// The suite's device of a GPU backend that CI does not have (CUDA, HIP): opened once and shared, its tests run
/// one at a time; absent (no driver, no device, or the cargo feature off), every test prints
/// `SKIP <backend>: <reason>` and passes — also with `CI=true`, since CI has no GPU.
fn gpu_device(
    sel: DeviceSelector,
    slot: &'static OnceLock<Result<Arc<dyn Device>, DeviceError>>,
    lock: &'static Mutex<()>,
) -> Backend {
    match slot.get_or_init(|| open_with(&sel, &DeviceConfig::from_env()).map(|(d, _)| Arc::from(d)))
    {
        Ok(d) => Some((
            d.clone(),
            Some(lock.lock().unwrap_or_else(|p| p.into_inner())),
        )),
        Err(e) => {
            eprintln!("SKIP {sel}: {e}");
            None
        }
    }
}

fn cuda() -> Backend {
    static DEV: OnceLock<Result<Arc<dyn Device>, DeviceError>> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    gpu_device(DeviceSelector::Cuda, &DEV, &LOCK)
}

fn hip() -> Backend {
    static DEV: OnceLock<Result<Arc<dyn Device>, DeviceError>> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    gpu_device(DeviceSelector::Hip, &DEV, &LOCK)
}

/// Instantiates `body(&dyn Device)` once per backend.
macro_rules! suite {
    ($name:ident) => {
        mod $name {
            #[test]
            fn cpu() {
                if let Some((d, _g)) = super::cpu() {
                    super::$name(&*d);
                }
            }
            #[test]
            fn vulkan() {
                if let Some((d, _g)) = super::vulkan() {
                    super::$name(&*d);
                }
            }
            #[test]
            fn cuda() {
                if let Some((d, _g)) = super::cuda() {
                    super::$name(&*d);
                }
            }
            #[test]
            fn hip() {
                if let Some((d, _g)) = super::hip() {
                    super::$name(&*d);
                }
            }
        }
    };
}

fn ring(cfg: RingConfig) -> DeviceRing {
    common::ring(cfg)
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two fresh fds we now own.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn assert_clean(ring: &DeviceRing) {
    assert!(ring.quiesce(Duration::from_secs(20)), "ring drained");
    let c = ring.view().local_snapshot();
    assert_eq!(c.ff_errors, 0, "no failed fire-and-forget operation");
    assert_eq!(c.print_errors, 0, "no failed or short print");
    assert_eq!(c.foreign_cqes, 0, "no unrecognised CQE");
    assert_eq!(
        ring.waker_stats().overflow_flushes,
        0,
        "the CQ never overflowed"
    );
}

// ---- exactly-once prints ---------------------------------------------------------------------------------------

/// Both print modes (PROTOCOL.md §7): group commit through the print log, and one write per line.
const MODES: [PrintMode; 2] = [PrintMode::GroupCommit, PrintMode::LinePerWrite];

/// After a print run in `mode`: group commit wrote several lines per write, line mode wrote none from the log.
fn assert_writes(ring: &DeviceRing, mode: PrintMode, lines: u32) {
    let r = ring.print_log_report();
    assert_eq!(
        (r.incomplete_ranges, r.host_errors, r.violations),
        (0, 0, 0)
    );
    match mode {
        PrintMode::GroupCommit => assert!(
            r.device_writes > 0 && r.device_writes < lines as u64 / 2,
            "{} writes for {lines} lines",
            r.device_writes
        ),
        PrintMode::LinePerWrite => assert_eq!(r.device_writes, 0),
    }
}

fn prints_to_a_regular_file(dev: &dyn Device) {
    let (lanes, lines) = (16, 150);
    for mode in MODES {
        let f = tempfile::tempfile().unwrap();
        let ring = ring(RingConfig {
            lanes,
            ..Default::default()
        });
        ring.set_print_mode(mode);
        ring.set_print_target(PrintTarget::Fd(f.as_raw_fd()))
            .unwrap();
        let rep = dev
            .run(&ring, lanes, &Program::Print { lines }, TIMEOUT)
            .unwrap();
        assert_eq!(rep.total().failed, 0);
        assert_eq!(rep.total().done, (lanes * lines) as u64);
        assert_clean(&ring);
        let end = ring.finish_prints().expect("offset mode");
        let out = common::read_fd_file(f.as_raw_fd());
        assert_eq!(end as usize, out.len());
        assert_eq!(
            common::check_prints(&out, lanes, lines),
            (lanes * lines) as usize
        );
        assert_writes(&ring, mode, lanes * lines);
        eprintln!(
            "{} {mode:?}: {} lines to a file in {:?}, {} dispatches, {:?}",
            dev.info().backend,
            lanes * lines,
            rep.elapsed,
            rep.dispatches,
            ring.print_log_report()
        );
    }
}
suite!(prints_to_a_regular_file);

/// A ring printing into a pipe whose reader collects everything until the write end closes.
fn pipe_ring(
    cfg: RingConfig,
    mode: PrintMode,
) -> (DeviceRing, OwnedFd, std::thread::JoinHandle<Vec<u8>>) {
    let (rd, wr) = pipe();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::fs::File::from(rd).read_to_end(&mut out).unwrap();
        out
    });
    let ring = ring(cfg);
    ring.set_print_mode(mode);
    ring.set_print_target(PrintTarget::Fd(wr.as_raw_fd()))
        .unwrap();
    (ring, wr, reader)
}

fn prints_to_a_pipe(dev: &dyn Device) {
    let (lanes, lines) = (16, 100);
    for mode in MODES {
        let (ring, wr, reader) = pipe_ring(
            RingConfig {
                lanes,
                ..Default::default()
            },
            mode,
        );
        let rep = dev
            .run(&ring, lanes, &Program::Print { lines }, TIMEOUT)
            .unwrap();
        assert_eq!(rep.total().failed, 0);
        assert_clean(&ring);
        assert!(ring.finish_prints().is_none(), "a pipe uses stream mode");
        assert_writes(&ring, mode, lanes * lines);
        drop(ring);
        drop(wr);
        let out = reader.join().unwrap();
        assert_eq!(
            common::check_prints(&out, lanes, lines),
            (lanes * lines) as usize
        );
    }
}
suite!(prints_to_a_pipe);

/// A ring whose lines are shorter than some of the program's lines, in both print modes: a line that does not
/// fit is not printed (`LINE_TOO_LONG`, counted as failed), every other line is, whole and in order, on every
/// device (PROTOCOL.md §7).
fn prints_refuse_lines_longer_than_the_ring_lines(dev: &dyn Device) {
    for mode in MODES {
        refuses_long_lines(dev, mode);
    }
}
suite!(prints_refuse_lines_longer_than_the_ring_lines);

fn refuses_long_lines(dev: &dyn Device, mode: PrintMode) {
    let (lanes, lines, line_bytes) = (8, 40, 48);
    let (ring, wr, reader) = pipe_ring(
        RingConfig {
            lanes,
            line_bytes,
            ..Default::default()
        },
        mode,
    );
    let rep = dev
        .run(&ring, lanes, &Program::Print { lines }, TIMEOUT)
        .unwrap();
    assert_clean(&ring);
    drop(ring);
    drop(wr);
    let out = reader.join().unwrap();
    let mut want: Vec<u8> = Vec::new();
    let mut long = 0u64;
    let mut per_lane = vec![Vec::new(); lanes as usize];
    for lane in 0..lanes {
        for seq in 0..lines {
            let mut b = LineBuf::with_capacity(256);
            format_print_line(&mut b, lane, seq);
            let mut l = b.as_bytes().to_vec();
            l.push(b'\n');
            if l.len() > line_bytes as usize {
                long += 1;
            } else {
                per_lane[lane as usize].extend_from_slice(&l);
                want.extend_from_slice(&l);
            }
        }
    }
    assert!(
        long > 0 && long < (lanes * lines) as u64,
        "some lines are too long"
    );
    assert_eq!(rep.total().failed, long, "{mode:?}");
    assert_eq!(rep.total().done, (lanes * lines) as u64 - long, "{mode:?}");
    assert_eq!(out.len(), want.len(), "{mode:?}");
    // Each lane's lines in order, every line whole.
    let mut got = vec![Vec::new(); lanes as usize];
    for l in out.split_inclusive(|&c| c == b'\n') {
        let lane: usize = std::str::from_utf8(l).unwrap()[5..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        got[lane].extend_from_slice(l);
    }
    assert_eq!(got, per_lane, "{mode:?}");
}

// ---- the print log's hazards (PROTOCOL.md §7.1), on every device's own print program --------------------------

/// A 4 KiB log (about 70 lines) wraps many times: writes are cut at its end, every line still once, in order.
fn print_log_wraps_into_a_pipe_and_a_file(dev: &dyn Device) {
    let (lanes, lines) = (16, 200);
    let cfg = || RingConfig {
        lanes,
        print_log_bytes: 4096,
        ..Default::default()
    };
    let (pr, wr, reader) = pipe_ring(cfg(), PrintMode::GroupCommit);
    let rep = dev
        .run(&pr, lanes, &Program::Print { lines }, TIMEOUT)
        .unwrap();
    assert_eq!(rep.total().done, (lanes * lines) as u64);
    assert_clean(&pr);
    assert_writes(&pr, PrintMode::GroupCommit, lanes * lines);
    drop(pr);
    drop(wr);
    let out = reader.join().unwrap();
    assert!(out.len() > 30 * 4096, "the log wrapped many times");
    assert_eq!(
        common::check_prints(&out, lanes, lines),
        (lanes * lines) as usize
    );

    let f = tempfile::tempfile().unwrap();
    let ring = ring(cfg());
    ring.set_print_target(PrintTarget::Fd(f.as_raw_fd()))
        .unwrap();
    let rep = dev
        .run(&ring, lanes, &Program::Print { lines }, TIMEOUT)
        .unwrap();
    assert_eq!(rep.total().done, (lanes * lines) as u64);
    assert_clean(&ring);
    let end = ring.finish_prints().expect("offset mode");
    let out = common::read_fd_file(f.as_raw_fd());
    assert_eq!(end as usize, out.len());
    assert_eq!(
        common::check_prints(&out, lanes, lines),
        (lanes * lines) as usize
    );
    assert_writes(&ring, PrintMode::GroupCommit, lanes * lines);
}
suite!(print_log_wraps_into_a_pipe_and_a_file);

/// A duty left in the flag with a short write to finish: the program's lanes take it over, the remainder goes
/// first, then the line completed after it, then their own lines. Lane 1 of the ring is played by the host
/// (a `Lane` printing before the run); the program runs lane 0.
fn print_log_duty_and_short_write_are_taken_over(dev: &dyn Device) {
    let lines = 4;
    let (ring, wr, reader) = pipe_ring(
        RingConfig {
            lanes: 2,
            ..Default::default()
        },
        PrintMode::GroupCommit,
    );
    let v = ring.view();
    let line = |lane, seq| {
        let mut b = LineBuf::with_capacity(256);
        format_print_line(&mut b, lane, seq);
        b.str("\n");
        b.as_bytes().to_vec()
    };
    // A holder claimed the duty; lane 1's lines complete and return at once, leaving DIRTY for it.
    v.local32(local_off!(log_bell)).store(BELL_LOCK, Release);
    let mut host = Lane::new(v, 1);
    for seq in 0..lines {
        host.print_with(DEFAULT_BUDGET, |b| format_print_line(b, 1, seq))
            .unwrap();
    }
    drop(host);
    // The holder's write of the first three lines came back short: the kernel wrote `short` bytes. Then it
    // stopped, leaving the duty in the flag.
    let first3: Vec<u8> = (0..3).flat_map(|s| line(1, s)).collect();
    let short = 10;
    // SAFETY: writing a valid buffer to our own pipe.
    let w = unsafe { libc::write(wr.as_raw_fd(), first3.as_ptr().cast(), short) };
    assert_eq!(w, short as isize);
    v.local32(local_off!(log_sub))
        .store(first3.len() as u32, Relaxed);
    v.local32(local_off!(log_wres)).store(short as u32, Relaxed);
    v.local32(local_off!(log_wstate))
        .store(1 << 8 | RING_SLOT_DONE, Release);
    v.local32(local_off!(log_bell)).store(BELL_DIRTY, Release);
    let rep = dev
        .run(&ring, 1, &Program::Print { lines }, TIMEOUT)
        .unwrap();
    assert_eq!(rep.total().done, lines as u64);
    assert_clean(&ring);
    assert_eq!(ring.print_log_report().short_writes, 1);
    drop(ring);
    drop(wr);
    let out = reader.join().unwrap();
    let host_lines: Vec<u8> = (0..lines).flat_map(|s| line(1, s)).collect();
    assert!(
        out.starts_with(&host_lines),
        "the remainder and the line after it come first"
    );
    assert_eq!(common::check_prints(&out, 2, lines), 2 * lines as usize);
}
suite!(print_log_duty_and_short_write_are_taken_over);

/// Device code rewrote `log_reserve` far past what was written: every print finds the violation (counted),
/// fails instead of waiting, and nothing is printed; the host's finish counts it too and hangs nothing.
fn print_log_corrupted_reservation_fails_prints(dev: &dyn Device) {
    let (lanes, lines) = (8, 20);
    let (ring, wr, reader) = pipe_ring(
        RingConfig {
            lanes,
            ..Default::default()
        },
        PrintMode::GroupCommit,
    );
    ring.view()
        .local64(local_off!(log_reserve))
        .store(0x0010_0000, Release);
    let rep = dev
        .run(&ring, lanes, &Program::Print { lines }, TIMEOUT)
        .unwrap();
    assert_eq!(rep.total().done, 0);
    assert_eq!(rep.total().failed, (lanes * lines) as u64);
    assert!(ring.violations().device_reported > 0);
    let t = std::time::Instant::now();
    ring.finish_prints();
    assert!(ring.print_log_report().violations > 0);
    assert!(t.elapsed() < Duration::from_secs(5));
    drop(ring);
    drop(wr);
    assert!(reader.join().unwrap().is_empty());
}
suite!(print_log_corrupted_reservation_fails_prints);

// ---- backpressure, SQPOLL sleep -----------------------------------------------------------------------------

fn lane_stress_on_a_tiny_ring(dev: &dyn Device) {
    let (lanes, ops) = (32, 40);
    let ring = ring(RingConfig {
        sq_entries: 8,
        lanes,
        ..Default::default()
    });
    let rep = dev
        .run(&ring, lanes, &Program::LaneStress { ops }, TIMEOUT)
        .unwrap();
    assert_eq!(rep.total().failed, 0);
    assert_eq!(
        rep.total().done,
        (lanes * ops) as u64,
        "every NOP completed"
    );
    assert_clean(&ring);
    eprintln!(
        "{}: lane_stress {} NOPs on an 8-entry SQ in {:?}, {} dispatches",
        dev.info().backend,
        lanes * ops,
        rep.elapsed,
        rep.dispatches
    );
}
suite!(lane_stress_on_a_tiny_ring);

fn sqpoll_sleeps_and_the_waker_wakes_it(dev: &dyn Device) {
    let ring = ring(RingConfig {
        lanes: 1,
        waker: WakerConfig {
            max_sleep: Duration::from_millis(1),
            ..Default::default()
        },
        ..Default::default()
    });
    for round in 0..4 {
        // Idle past the SQ thread's idle time (10 ms): it goes to sleep, and the waker wakes it.
        common::completes_through_a_wakeup(&ring, &format!("round {round}"), || {
            let rep = dev
                .run(
                    &ring,
                    1,
                    &Program::Nop {
                        ops: 1,
                        fire_and_forget: false,
                    },
                    TIMEOUT,
                )
                .unwrap();
            assert_eq!(rep.total().done, 1, "round {round}: the NOP completed");
        });
    }
    assert_clean(&ring);
}
suite!(sqpoll_sleeps_and_the_waker_wakes_it);

// ---- operations ------------------------------------------------------------------------------------------------

fn nops_and_writes(dev: &dyn Device) {
    let lanes = 16;
    // Writes go to a registered fixed file (a confined ring refuses raw fds).
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let ring = ring(RingConfig {
        lanes,
        fixed_files: vec![null.as_raw_fd()],
        ..Default::default()
    });
    for fire_and_forget in [true, false] {
        let rep = dev
            .run(
                &ring,
                lanes,
                &Program::Nop {
                    ops: 100,
                    fire_and_forget,
                },
                TIMEOUT,
            )
            .unwrap();
        assert_eq!(rep.total().done, lanes as u64 * 100, "ff={fire_and_forget}");
        assert_eq!(rep.total().failed, 0);
    }
    let rep = dev
        .run(
            &ring,
            lanes,
            &Program::Write {
                file: 0,
                ops: 50,
                len: 100,
            },
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(rep.total().done, lanes as u64 * 50);
    assert_eq!(rep.total().bytes, lanes as u64 * 50 * 100);
    assert_clean(&ring);
}
suite!(nops_and_writes);

fn read_checksum(dev: &dyn Device) {
    // One read in flight per lane, and several (the last lanes' pipelines end early and unevenly).
    for (chunk, depth) in [(4096u32, 1u32), (8192, 1), (4096, 4)] {
        read_checksum_with(dev, chunk, depth);
    }
}

fn read_checksum_with(dev: &dyn Device, chunk: u32, depth: u32) {
    let lanes = 8u32;
    // A partial last chunk checks the zero padding.
    let total = (lanes * chunk * 3 * depth + 101) as u64;
    let data: Vec<u8> = (0..total)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut f = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut f, &data).unwrap();
    let ring = ring(RingConfig {
        lanes,
        slots_per_lane: depth + 1,
        fixed_buffer_bytes: (lanes * chunk * depth) as usize,
        fixed_files: vec![f.as_raw_fd()],
        ..Default::default()
    });
    let rep = dev
        .run(
            &ring,
            lanes,
            &Program::Read {
                file: 0,
                chunk,
                total,
                depth,
            },
            TIMEOUT,
        )
        .unwrap();
    let want = data
        .chunks(chunk as usize)
        .enumerate()
        .fold(0u64, |acc, (i, c)| {
            acc.wrapping_add(checksum(i as u64 * chunk as u64, c))
        });
    assert_eq!(rep.total().failed, 0, "chunk {chunk}, depth {depth}");
    assert_eq!(rep.total().bytes, total, "chunk {chunk}, depth {depth}");
    assert_eq!(
        rep.total().checksum,
        want,
        "checksum equals backend::checksum (chunk {chunk}, depth {depth})"
    );
    assert_clean(&ring);
}
suite!(read_checksum);

// ---- confinement -----------------------------------------------------------------------------------------------

fn confined_ring_refuses_what_it_must(dev: &dyn Device) {
    let out = tempfile::tempfile().unwrap();
    let ring = ring(RingConfig {
        lanes: 1,
        fixed_buffer_bytes: 8192,
        fixed_files: vec![out.as_raw_fd()],
        access: DeviceAccess::default(),
        ..Default::default()
    });
    let l = ring.layout();
    let v = ring.view();
    let data = l.fixed + 4096;
    v.write_bytes(data, b"allowed fixed write\n");
    let addr = v.host_addr(data) as *const u8;
    let buf = l.fixed_buf_index as u16;
    let images = [
        // Allowed: WRITE_FIXED from the registered buffer to fixed file 0.
        opcode::WriteFixed::new(types::Fixed(0), addr, 20, buf)
            .offset(0)
            .build(),
        // A NOP (what the protocol itself needs) is allowed (on a fixed "file", as confinement requires).
        opcode::Nop::new().build().flags(Flags::FIXED_FILE),
        // Forbidden opcode: plain WRITE on the fixed file.
        opcode::Write::new(types::Fixed(0), addr, 5)
            .offset(0)
            .build(),
        // A raw fd: WRITE_FIXED without IOSQE_FIXED_FILE.
        opcode::WriteFixed::new(types::Fd(out.as_raw_fd()), addr, 5, buf)
            .offset(0)
            .build(),
        // An address outside every registered buffer (the SQ ring itself), claimed to be in the fixed buffer.
        opcode::WriteFixed::new(types::Fixed(0), v.host_addr(l.sqes) as *const u8, 64, buf)
            .offset(0)
            .build()
            .flags(Flags::FIXED_FILE),
    ];
    for (i, e) in images.iter().enumerate() {
        v.write_bytes(
            l.fixed + 64 * i as u32,
            bytemuck::bytes_of(&Sqe::from_entry(e)),
        );
    }
    let n = images.len() as u32;
    let rep = dev
        .run(&ring, 1, &Program::Exact { count: n }, TIMEOUT)
        .unwrap();
    assert_eq!(rep.total().done, n as u64);
    let mut res = [0u8; 20];
    v.read_bytes(l.fixed + 64 * n, &mut res);
    let res: Vec<i32> = res
        .chunks(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(res[0], 20, "allowed WRITE_FIXED wrote 20 bytes");
    assert_eq!(res[1], 0, "NOP allowed");
    assert_eq!(res[2], -libc::EACCES, "forbidden opcode");
    assert_eq!(res[3], -libc::EACCES, "raw fd (IOSQE_FIXED_FILE required)");
    assert_eq!(
        res[4],
        -libc::EFAULT,
        "address outside the registered buffer"
    );
    assert!(ring.quiesce(Duration::from_secs(20)));
    assert_eq!(
        common::read_fd_file(out.as_raw_fd()),
        b"allowed fixed write\n",
        "the refused SQEs changed nothing"
    );
}
suite!(confined_ring_refuses_what_it_must);

fn confined_ring_prints_to_a_fixed_file(dev: &dyn Device) {
    let (lanes, lines) = (8, 50);
    let out = tempfile::tempfile().unwrap();
    let ring = ring(RingConfig {
        lanes,
        fixed_files: vec![out.as_raw_fd()],
        access: DeviceAccess::default(),
        ..Default::default()
    });
    ring.set_print_target(PrintTarget::Fixed(0)).unwrap();
    let rep = dev
        .run(&ring, lanes, &Program::Print { lines }, TIMEOUT)
        .unwrap();
    assert_eq!(rep.total().failed, 0);
    assert_clean(&ring);
    ring.finish_prints();
    common::check_prints(&common::read_fd_file(out.as_raw_fd()), lanes, lines);
}
suite!(confined_ring_prints_to_a_fixed_file);

// ---- layout agreement, host-visible edits -----------------------------------------------------------------

fn layout_agreement(dev: &dyn Device) {
    let lanes = 8;
    let ring = ring(RingConfig {
        lanes,
        fixed_buffer_bytes: 256 * lanes as usize,
        ..Default::default()
    });
    let rep = dev.run(&ring, lanes, &Program::Layout, TIMEOUT).unwrap();
    assert_eq!(rep.total().done, lanes as u64);
    let v = ring.view();
    let l = ring.layout();
    for lane in 0..lanes {
        let mut sqe = Sqe::default();
        v.read_bytes(l.fixed + 256 * lane, bytemuck::bytes_of_mut(&mut sqe));
        assert_eq!(sqe, layout_sqe_expected(&l, lane), "lane {lane}: SQE bytes");
        let mut echo = RingLayout::default();
        v.read_bytes(l.fixed + 256 * lane + 64, bytemuck::bytes_of_mut(&mut echo));
        assert_eq!(echo, l, "lane {lane}: the RingLayout the device received");
    }
}
suite!(layout_agreement);

fn edit_buffer_seen_while_running(dev: &dyn Device) {
    let (lanes, steps) = (8, 20);
    let ring = ring(RingConfig {
        lanes,
        fixed_buffer_bytes: 4096,
        ..Default::default()
    });
    let stop = AtomicBool::new(false);
    let (rep, changes) = std::thread::scope(|s| {
        let host = s.spawn(|| edit_buffer_host(&ring, lanes, &stop));
        let rep = dev.run(&ring, lanes, &Program::EditBuffer { steps }, TIMEOUT);
        stop.store(true, Ordering::Release);
        (rep, host.join().unwrap())
    });
    let rep = rep.unwrap();
    assert_eq!(rep.total().done, (lanes * steps) as u64);
    assert_eq!(
        changes,
        (lanes * steps) as u64,
        "the host saw every value while the program ran (it cannot finish without the host's acks)"
    );
}
suite!(edit_buffer_seen_while_running);

// ---- Vulkan only ---------------------------------------------------------------------------------------------

#[test]
fn vulkan_run_buffer_structs_agree_with_the_glsl() {
    let Some((dev, _g)) = vulkan_device() else {
        return;
    };
    let lanes = 8;
    let ring = ring(RingConfig {
        lanes,
        fixed_buffer_bytes: 256 * lanes as usize,
        ..Default::default()
    });
    let states = dev
        .run(&ring, lanes, &Program::Layout, TIMEOUT)
        .unwrap()
        .states;
    let v = ring.view();
    let l = ring.layout();
    for (lane, s) in states.iter().enumerate() {
        let want = LaneState {
            seq: 11,
            phase: 12,
            done: 1,
            failed: 0,
            flags: run_buffer::LANE_FINISHED,
            next_line: 15,
            pending_len: 16,
            line_len: 17,
            checksum: 0x1122_3344_5566_7788,
            bytes: 0x1_0000_0000 + lane as u64,
            dispatches: 1,
            waits: 0,
            iters: s.iters,
            last_status: 0,
            log_end: 18,
            reserved: 0,
        };
        assert_eq!(
            *s, want,
            "lane {lane}: LaneState fields as the shader wrote them"
        );
        let mut p = RunParams::default();
        v.read_bytes(
            l.fixed + 256 * lane as u32 + 192,
            bytemuck::bytes_of_mut(&mut p),
        );
        assert_eq!(p.program, run_buffer::PROGRAM_LAYOUT);
        assert_eq!(p.lanes, lanes);
        assert_eq!(p.count, 1);
        assert!(p.iter_budget >= 64);
        assert_eq!(p.dispatch, 0);
    }
}

#[test]
fn vulkan_edit_buffer_values_are_seen_during_a_dispatch() {
    let Some((dev, _g)) = vulkan_device() else {
        return;
    };
    let (lanes, steps) = (8, 30);
    // A step needs the host's ack of the value the lane stored. A lane that finished `steps` steps in fewer
    // dispatches completed two steps in one dispatch: the host saw a value and acknowledged it while that
    // dispatch was still running. A lane waits for the ack only within its loop budget (lavapipe's cap), so
    // on a machine loaded enough that the host thread gets no CPU inside that window every step can take a
    // dispatch of its own: up to five attempts, and one that shows it is enough.
    let mut seen = Vec::new();
    for _attempt in 0..5 {
        let ring = ring(RingConfig {
            lanes,
            fixed_buffer_bytes: 4096,
            ..Default::default()
        });
        let stop = AtomicBool::new(false);
        let states = std::thread::scope(|s| {
            let host = s.spawn(|| edit_buffer_host(&ring, lanes, &stop));
            let r = dev.run(&ring, lanes, &Program::EditBuffer { steps }, TIMEOUT);
            stop.store(true, Ordering::Release);
            host.join().unwrap();
            r.unwrap().states
        });
        let per_lane: Vec<u32> = states.iter().map(|s| s.dispatches).collect();
        if per_lane.iter().any(|&d| d < steps) {
            return;
        }
        seen.push(per_lane);
    }
    panic!("no dispatch saw the host's ack of a value it wrote, in 5 runs (dispatches per lane: {seen:?})");
}

#[test]
fn vulkan_selection_errors_name_the_reason() {
    let Some((_dev, _g)) = vulkan_device() else {
        return;
    };
    let list = backend("vulkan").unwrap().adapters().unwrap();
    assert!(!list.is_empty());
    for d in &list {
        eprintln!(
            "vulkan device {}: {} ({}) {:?}",
            d.index, d.name, d.device_type, d.usable
        );
    }
    match open(&DeviceSelector::Vulkan(Some(
        "no-such-device-anywhere".into(),
    )))
    .map(|_| ())
    {
        Err(DeviceError::Unavailable { backend, reason }) => {
            assert_eq!(backend, "vulkan");
            assert!(reason.contains("no Vulkan device matches"), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // auto never picks a CPU-type Vulkan device: with only lavapipe it falls back to the reference device.
    if list.iter().all(|d| d.device_type == DeviceType::Cpu) {
        let (d, skipped) = open(&DeviceSelector::Auto).unwrap();
        assert_eq!(d.info().backend, "cpu");
        assert!(
            skipped
                .iter()
                .any(|e| e.to_string().contains("CPU reference device")),
            "{skipped:?}"
        );
    }
}

#[test]
fn vulkan_a_dispatch_over_its_time_limit_is_reported_not_waited_for() {
    let Some((_shared, _g)) = vulkan_device() else {
        return;
    };
    // A device of its own, so its limits can be changed.
    let dev = open_vulkan(&DeviceConfig {
        dispatch_timeout: Duration::from_micros(1), // waits at least 1 ms
        ..DeviceConfig::from_env()
    })
    .unwrap();
    let lanes = 8;
    let ring = ring(RingConfig {
        lanes,
        fixed_buffer_bytes: 4096,
        ..Default::default()
    });
    // Nobody acknowledges: every lane polls until its budget is spent (several ms per dispatch).
    let t = std::time::Instant::now();
    let r = dev.run(&ring, lanes, &Program::EditBuffer { steps: 5 }, TIMEOUT);
    assert!(
        matches!(
            r,
            Err(DeviceError::Timeout {
                backend: "vulkan",
                ..
            })
        ),
        "{r:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "not waited for");
    // The ring (and its arena) may go first: the parked dispatch keeps the arena alive until it ends.
    drop(ring);
    drop(dev);
    // And a run whose lanes cannot finish in the run's time ends with Timeout too.
    let dev = open_vulkan(&DeviceConfig::from_env()).unwrap();
    let ring = self::ring(RingConfig {
        lanes,
        fixed_buffer_bytes: 4096,
        ..Default::default()
    });
    let r = dev.run(
        &ring,
        lanes,
        &Program::EditBuffer { steps: 5 },
        Duration::from_millis(200),
    );
    assert!(
        matches!(
            r,
            Err(DeviceError::Timeout {
                backend: "vulkan",
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn vulkan_named_programs_run() {
    let Some((dev, _g)) = vulkan_device() else {
        return;
    };
    let lanes = 8;
    let ring = ring(RingConfig {
        lanes,
        ..Default::default()
    });
    for name in ["nop", "nop_wait", "lane_stress"] {
        let rep = dev
            .run(&ring, lanes, &Program::named(name, 10).unwrap(), TIMEOUT)
            .unwrap();
        assert_eq!(rep.total().done, lanes as u64 * 10, "{name}");
        assert!(rep
            .states
            .iter()
            .all(|s| s.flags & run_buffer::LANE_FINISHED != 0));
    }
    assert!(matches!(
        Program::named("no-such-program", 1).and_then(|p| dev.run(&ring, lanes, &p, TIMEOUT)),
        Err(DeviceError::Run { .. })
    ));
    assert_clean(&ring);
}

#[test]
fn vulkan_number_formatting_matches_the_reference_byte_for_byte() {
    let Some((dev, _g)) = vulkan_device() else {
        return;
    };
    let cases = gpu_uring::backend::FormatCase::probe_cases();
    let ring = ring(RingConfig {
        lanes: cases.len() as u32,
        fixed_buffer_bytes: 128 * cases.len(),
        ..Default::default()
    });
    let got = dev.format_probe(&ring, &cases).unwrap();
    for (c, g) in cases.iter().zip(&got) {
        assert_eq!(
            String::from_utf8_lossy(g),
            String::from_utf8_lossy(&c.reference()),
            "{c:?}"
        );
    }
}

#[test]
fn vulkan_a_ring_without_sqpoll_is_driven_between_dispatches() {
    use std::sync::atomic::Ordering::Acquire;
    let Some((dev, _g)) = vulkan_device() else {
        return;
    };
    let (lanes, ops) = (8u32, 20u32);
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let ring = ring(RingConfig {
        lanes,
        sq_entries: 32,
        sqpoll: false,
        fixed_files: vec![null.as_raw_fd()],
        ..Default::default()
    });
    let (view, l) = (ring.view(), ring.layout());
    let (mut calls, mut enters, mut submitted) = (0u32, 0u32, 0u32);
    let mut first_iters = 0;
    let rep = dev
        .run_with(
            &ring,
            lanes,
            &Program::Write {
                file: 0,
                ops,
                len: 16,
            },
            TIMEOUT,
            &mut |i, states| {
                assert_eq!(i, calls, "called once after every dispatch, in order");
                calls += 1;
                if i == 0 {
                    // Nothing the lanes published could execute during the dispatch: they must have yielded
                    // it early rather than spent their loop budget waiting.
                    first_iters = states.iter().map(|s| s.iters).max().unwrap();
                }
                let head = view.u32_at(l.sq_head).load(Acquire);
                let n = view.u32_at(l.sq_tail).load(Acquire).wrapping_sub(head);
                assert!(n <= 32, "one dispatch publishes at most the SQ");
                if n > 0 {
                    enters += 1;
                    submitted += ring.submit_and_wait(n, n).map_err(|e| DeviceError::Run {
                        backend: "test",
                        message: e.to_string(),
                    })?;
                }
                Ok(())
            },
        )
        .unwrap();
    let want = lanes * ops;
    assert_eq!(rep.total().done, want as u64);
    assert_eq!(submitted, want);
    assert_eq!(calls, rep.dispatches);
    assert!(
        enters >= want / 32 && enters < rep.dispatches,
        "{enters} enters, {} dispatches",
        rep.dispatches
    );
    assert!(
        first_iters < dev.lane_iter_budget().min(3000) / 2,
        "lanes spent {first_iters} loop iterations in a dispatch that could not progress"
    );
    assert_eq!(ring.view().local_snapshot().ff_errors, 0);
}

#[test]
fn vulkan_caller_kernels_run_on_their_buffers_and_the_ring_arena() {
    use gpu_uring::backend::Placement;
    static SHADER: &[u8] = include_bytes!("../../device-shaders/spirv/memory_placement.spv");
    const LAYOUT: KernelLayout = KernelLayout {
        buffers: 1,
        value_bytes: 16,
    };
    let Some((dev, _g)) = vulkan_device() else {
        return;
    };
    // SAFETY: memory_placement.spv (device-shaders/build.sh): one storage buffer at binding 0, 16 bytes of
    // push constants; it touches words 0..=mask + 1 only, and every buffer below holds more.
    let kernel =
        unsafe { dev.load_kernel("memory_placement", KernelCode::SpirV(SHADER), LAYOUT) }.unwrap();
    let push = |w: [u32; 4]| -> Vec<u8> { w.iter().flat_map(|x| x.to_ne_bytes()).collect() };
    let next = |i: u32, mask: u32| 1664525u32.wrapping_mul(i).wrapping_add(1013904223) & mask;
    let (mask, seed, n) = (1023u32, 12345u32, 500u32);
    let mut want = seed & mask;
    for _ in 0..n {
        want = next(want, mask);
    }
    for place in [
        Placement::DeviceLocal,
        Placement::HostVisible,
        Placement::ImportedHost,
    ] {
        let buf = dev.alloc(place, 4 * (mask as usize + 16)).unwrap();
        assert_eq!(buf.placement(), place);
        assert!(buf.len() >= 4 * (mask as usize + 16));
        let p0 = push([0, 64, mask, seed]);
        let p1 = push([1, n, mask, seed]);
        dev.launch(
            &kernel,
            &[KernelArg::Buffer(&buf), KernelArg::Bytes(&p0)],
            Grid::groups(1),
            TIMEOUT,
        )
        .unwrap();
        dev.launch(
            &kernel,
            &[KernelArg::Buffer(&buf), KernelArg::Bytes(&p1)],
            Grid::groups(1),
            TIMEOUT,
        )
        .unwrap();
        match place {
            Placement::DeviceLocal => {}
            _ => {
                assert!(buf.host_accessible());
                assert_eq!(buf.load_u32(mask as usize + 1), Some(want), "{place:?}");
                assert_eq!(buf.load_u32(5), Some(next(5, mask)), "{place:?}");
            }
        }
    }
    // Caller-owned host memory, kept alive by its owner.
    struct Pages(*mut u8, usize);
    // SAFETY: plain memory, only reached through the buffer's atomics.
    unsafe impl Send for Pages {}
    // SAFETY: as above.
    unsafe impl Sync for Pages {}
    impl Drop for Pages {
        fn drop(&mut self) {
            // SAFETY: our own mapping, no longer imported (the owner outlives the import).
            unsafe { libc::munmap(self.0.cast(), self.1) };
        }
    }
    let len = 8192;
    // SAFETY: an anonymous private mapping; checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let pages = Arc::new(Pages(p.cast(), len));
    // SAFETY: page-aligned, whole pages, mapped while `pages` lives (the buffer holds it).
    let buf = unsafe { dev.import_host(pages.0, len, pages.clone()) }.unwrap();
    drop(pages);
    dev.launch(
        &kernel,
        &[
            KernelArg::Buffer(&buf),
            KernelArg::Bytes(&push([1, 0, 1023, 7])),
        ],
        Grid::groups(1),
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(buf.load_u32(1024), Some(7));
    // The ring arena as binding 0: a chase of 0 steps stores `seed & mask` at word mask + 1, which must land
    // in the ring's fixed buffer (a power-of-two word index inside it).
    let ring = ring(RingConfig {
        lanes: 8,
        fixed_buffer_bytes: 1 << 20,
        ..Default::default()
    });
    let l = ring.layout();
    let sink_byte = (l.fixed as u64).next_power_of_two();
    assert!(sink_byte + 4 <= l.fixed as u64 + l.fixed_size as u64);
    let mask = (sink_byte / 4 - 1) as u32;
    dev.launch(
        &kernel,
        &[
            KernelArg::RingArena(&ring),
            KernelArg::Bytes(&push([1, 0, mask, 0xabcd])),
        ],
        Grid::groups(1),
        TIMEOUT,
    )
    .unwrap();
    let mut got = [0u8; 4];
    ring.view().read_bytes(sink_byte as u32, &mut got);
    assert_eq!(u32::from_le_bytes(got), 0xabcd & mask);
    // Bindings must match the kernel.
    assert!(matches!(
        dev.launch(&kernel, &[], Grid::groups(1), TIMEOUT),
        Err(DeviceError::Run { .. })
    ));
    assert_clean(&ring);
    drop(ring);
    // A dispatch over its limit (filling 64 MiB takes lavapipe far more than the 1 ms minimum) is reported,
    // and the kernel and buffer it uses may be dropped at once: the parked dispatch keeps them alive.
    let big = dev.alloc(Placement::ImportedHost, 64 << 20).unwrap();
    let r = dev.launch(
        &kernel,
        &[
            KernelArg::Buffer(&big),
            KernelArg::Bytes(&push([0, 1024, (16 << 20) - 1, 0])),
        ],
        Grid::groups(256),
        Duration::from_micros(1),
    );
    assert!(
        matches!(
            r,
            Err(DeviceError::Timeout {
                backend: "vulkan",
                ..
            }) | Ok(_)
        ),
        "{r:?}"
    );
    eprintln!("over-limit dispatch: {r:?}");
    drop(big);
    drop(kernel);
    // The device goes on (and frees the parked dispatch once it has ended).
    std::thread::sleep(Duration::from_millis(200));
    let buf = dev.alloc(Placement::HostVisible, 8192).unwrap();
    // SAFETY: as above.
    let kernel =
        unsafe { dev.load_kernel("memory_placement", KernelCode::SpirV(SHADER), LAYOUT) }.unwrap();
    dev.launch(
        &kernel,
        &[
            KernelArg::Buffer(&buf),
            KernelArg::Bytes(&push([1, 0, 1023, 9])),
        ],
        Grid::groups(1),
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(buf.load_u32(1024), Some(9));
}
