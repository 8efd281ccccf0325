//! The built-in programs of the C++ library (`kernels/src/programs/`) on the host C++ target, checked exactly as
//! the device suite (host/tests/device_suite.rs) checks a device: each check below is written once and run on
//! both the CPU reference device (the Rust lanes, through `Programs::run`) and the C++ lanes (threads calling
//! the kernels' lane bodies on the same kind of ring), so the C++ lanes are held to the suite's own checks and
//! their oracles (`check_prints`, `backend::checksum`, `layout_sqe_expected`, `edit_buffer_host`,
//! `FormatCase::probe_cases` / `reference`). Where a result is deterministic (read checksums, layout bytes,
//! the exact program's results), the two must also agree with each other.

#[path = "../../host/tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gpu_uring::backend::{
    checksum, edit_buffer_host, layout_sqe_expected, FormatCase, LaneReport, Program, Programs,
    RunReport,
};
use gpu_uring::protocol::shared::{STATUS_LINE_TOO_LONG, STATUS_READY};
use gpu_uring::protocol::{DeviceRing, PrintMode, PrintTarget};
use gpu_uring::ring::{DeviceAccess, RingConfig, RingLayout, Sqe, WakerConfig};
use gpu_uring_kernels::{
    format_lane, nop_lane, print_lane, ring_program_lane, NopMode, Report, RingMemory, RingProgram,
};
use io_uring::{opcode, squeue::Flags, types};

const TIMEOUT: Duration = Duration::from_secs(20);
/// Polls a C++ lane's bounded waits may take (its backoff yields): far more than a healthy run needs, finite
/// so a lost completion fails the test instead of hanging it.
const BUDGET: u32 = 1 << 24;

/// Who runs the lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lanes {
    /// The CPU reference device (`Programs::run`): the Rust lanes.
    Rust,
    /// The C++ library's lanes on threads.
    Cpp,
}

const BOTH: [Lanes; 2] = [Lanes::Rust, Lanes::Cpp];

fn ring(cfg: RingConfig) -> DeviceRing {
    common::ring(cfg)
}

/// The ring's memory for the C++ lanes; `layout` (the caller's copy) must outlive the lanes.
fn memory(ring: &DeviceRing, layout: &RingLayout) -> RingMemory {
    RingMemory {
        arena: ring.arena().0,
        local: ring.local_block().as_ptr(),
        layout: (layout as *const RingLayout).cast(),
    }
}

fn report(r: Report) -> LaneReport {
    LaneReport {
        done: r.done,
        failed: r.failed,
        checksum: r.checksum,
        bytes: r.bytes,
    }
}

/// `program` on `lanes` C++ lanes (one thread each), as the device runs it: the per-lane reports.
fn cpp_run(ring: &DeviceRing, lanes: u32, program: &Program) -> RunReport {
    let layout = *ring.view().layout();
    let m = memory(ring, &layout);
    let t = std::time::Instant::now();
    let lane = |id: u32| -> LaneReport {
        // SAFETY: `m` is borrowed from `ring`, which outlives the scoped threads; one thread per lane.
        unsafe {
            match *program {
                Program::Print { lines } => {
                    // The lines printed READY, and the lane flushed (else every line counts failed).
                    let (st, printed) = print_lane(m, id, lines, BUDGET);
                    let done = if st == STATUS_READY || st == STATUS_LINE_TOO_LONG {
                        printed
                    } else {
                        0
                    };
                    LaneReport {
                        done: done as u64,
                        failed: (lines - done) as u64,
                        ..Default::default()
                    }
                }
                Program::Nop {
                    ops,
                    fire_and_forget,
                } => {
                    let mode = if fire_and_forget {
                        NopMode::FireAndForget
                    } else {
                        NopMode::Waited
                    };
                    let (_, ready) = nop_lane(m, id, mode, ops, BUDGET);
                    LaneReport {
                        done: ready as u64,
                        failed: (ops - ready) as u64,
                        ..Default::default()
                    }
                }
                ref p => {
                    let rp = match *p {
                        Program::Write { file, ops, len } => RingProgram::Write { file, ops, len },
                        Program::Read {
                            file,
                            chunk,
                            total,
                            depth,
                        } => RingProgram::Read {
                            lanes,
                            file,
                            chunk,
                            total,
                            depth,
                        },
                        Program::LaneStress { ops } => RingProgram::LaneStress { ops },
                        Program::EditBuffer { steps } => RingProgram::EditBuffer { steps },
                        Program::Layout => RingProgram::Layout,
                        Program::Exact { count } => RingProgram::Exact { count },
                        Program::Hostile { case } => RingProgram::Hostile { which: case.code() },
                        Program::Print { .. } | Program::Nop { .. } => unreachable!(),
                    };
                    report(ring_program_lane(m, id, rp, BUDGET).1)
                }
            }
        }
    };
    let reports = std::thread::scope(|s| {
        let lane = &lane;
        let hs: Vec<_> = (0..lanes).map(|id| s.spawn(move || lane(id))).collect();
        hs.into_iter()
            .map(|h| h.join().expect("a C++ lane thread panicked"))
            .collect()
    });
    RunReport {
        lanes: reports,
        elapsed: t.elapsed(),
        dispatches: 1,
        states: Vec::new(),
    }
}

fn run(who: Lanes, ring: &DeviceRing, lanes: u32, program: &Program) -> RunReport {
    match who {
        Lanes::Rust => common::cpu()
            .run(ring, lanes, program, TIMEOUT)
            .unwrap_or_else(|e| panic!("{program:?} on the CPU device: {e}")),
        Lanes::Cpp => cpp_run(ring, lanes, program),
    }
}

/// The device suite's `assert_clean`.
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
    assert_eq!(c.protocol_violations, 0, "no violation");
}

/// A pipe's write end and a thread reading everything from its read end until every write end is closed.
fn pipe_reader() -> (OwnedFd, std::thread::JoinHandle<Vec<u8>>) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2(2) writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2");
    // SAFETY: pipe2 returned two fresh descriptors, each owned once here.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::fs::File::from(rd)
            .read_to_end(&mut out)
            .expect("reading the pipe");
        out
    });
    (wr, reader)
}

fn null_file() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null")
}

// ---- operations -------------------------------------------------------------------------------------------

/// device_suite `nops_and_writes`: NOPs both ways and fire-and-forget writes to a registered file.
#[test]
fn nops_and_writes() {
    for who in BOTH {
        let lanes = 16;
        let null = null_file();
        let ring = ring(RingConfig {
            lanes,
            fixed_files: vec![null.as_raw_fd()],
            ..Default::default()
        });
        for fire_and_forget in [true, false] {
            let rep = run(
                who,
                &ring,
                lanes,
                &Program::Nop {
                    ops: 100,
                    fire_and_forget,
                },
            );
            assert_eq!(
                rep.total().done,
                lanes as u64 * 100,
                "{who:?} ff={fire_and_forget}"
            );
            assert_eq!(rep.total().failed, 0, "{who:?}");
        }
        let rep = run(
            who,
            &ring,
            lanes,
            &Program::Write {
                file: 0,
                ops: 50,
                len: 100,
            },
        );
        assert_eq!(rep.total().done, lanes as u64 * 50, "{who:?}");
        assert_eq!(rep.total().bytes, lanes as u64 * 50 * 100, "{who:?}");
        assert_clean(&ring);
    }
}

/// The write program's bytes reach the file: 'a' + i mod 26, `len` bytes per write, every write once.
#[test]
fn writes_reach_a_registered_file() {
    let (lanes, ops, len) = (4u32, 20u32, 40u32);
    let out = tempfile::tempfile().expect("a temporary file");
    let ring = ring(RingConfig {
        lanes,
        fixed_files: vec![out.as_raw_fd()],
        access: DeviceAccess::default(),
        ..Default::default()
    });
    let rep = cpp_run(&ring, lanes, &Program::Write { file: 0, ops, len });
    assert_eq!(rep.total().done, (lanes * ops) as u64);
    assert_clean(&ring);
    let bytes = common::read_fd_file(out.as_raw_fd());
    let line: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
    assert_eq!(
        bytes.len(),
        (lanes * ops * len) as usize,
        "every write once"
    );
    assert!(
        bytes.chunks(len as usize).all(|c| c == line),
        "every write is the lane's staging bytes, never torn"
    );
}

fn read_checksum_with(who: Lanes, chunk: u32, depth: u32) -> u64 {
    let lanes = 8u32;
    let total = (lanes * chunk * 3 + 101) as u64; // a partial last chunk checks the zero padding
    let data: Vec<u8> = (0..total)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut f = tempfile::tempfile().expect("a temporary file");
    std::io::Write::write_all(&mut f, &data).expect("writing the input");
    let ring = ring(RingConfig {
        lanes,
        slots_per_lane: depth.max(2),
        fixed_buffer_bytes: (lanes * depth * chunk) as usize,
        fixed_files: vec![f.as_raw_fd()],
        ..Default::default()
    });
    let rep = run(
        who,
        &ring,
        lanes,
        &Program::Read {
            file: 0,
            chunk,
            total,
            depth,
        },
    );
    let want = data
        .chunks(chunk as usize)
        .enumerate()
        .fold(0u64, |acc, (i, c)| {
            acc.wrapping_add(checksum(i as u64 * chunk as u64, c))
        });
    assert_eq!(rep.total().failed, 0, "{who:?} chunk {chunk} depth {depth}");
    assert_eq!(rep.total().bytes, total, "{who:?}");
    assert_eq!(
        rep.total().checksum,
        want,
        "{who:?}: checksum equals backend::checksum"
    );
    assert_clean(&ring);
    rep.total().checksum
}

/// device_suite `read_checksum`: chunks of 4 and 8 KiB with one read in flight per lane, and 4 KiB with four.
#[test]
fn read_checksum() {
    for (chunk, depth) in [(4096u32, 1u32), (8192, 1), (4096, 4)] {
        let rust = read_checksum_with(Lanes::Rust, chunk, depth);
        let cpp = read_checksum_with(Lanes::Cpp, chunk, depth);
        assert_eq!(cpp, rust, "chunk {chunk} depth {depth}");
    }
}

// ---- backpressure, SQPOLL sleep -------------------------------------------------------------------------

/// device_suite `lane_stress_on_a_tiny_ring`.
#[test]
fn lane_stress_on_a_tiny_ring() {
    for who in BOTH {
        let (lanes, ops) = (32, 40);
        let ring = ring(RingConfig {
            sq_entries: 8,
            lanes,
            ..Default::default()
        });
        let rep = run(who, &ring, lanes, &Program::LaneStress { ops });
        assert_eq!(rep.total().failed, 0, "{who:?}");
        assert_eq!(
            rep.total().done,
            (lanes * ops) as u64,
            "{who:?}: every NOP completed"
        );
        assert_clean(&ring);
    }
}

/// device_suite `sqpoll_sleeps_and_the_waker_wakes_it`.
#[test]
fn sqpoll_sleeps_and_the_waker_wakes_it() {
    for who in BOTH {
        let ring = ring(RingConfig {
            lanes: 1,
            waker: WakerConfig {
                max_sleep: Duration::from_millis(1),
                ..Default::default()
            },
            ..Default::default()
        });
        let flags = ring.view().u32_at(ring.layout().sq_flags);
        for round in 0..3 {
            // A loaded machine may wake the SQ thread for another reason or keep it from sleeping in time:
            // up to 20 tries, each after it was seen asleep (at most 10 s), must include one through the waker.
            let mut woken = false;
            for _ in 0..20 {
                let t = std::time::Instant::now();
                while flags.load(Ordering::Acquire) & 1 == 0 {
                    assert!(
                        t.elapsed() < Duration::from_secs(10),
                        "{who:?} round {round}: SQ thread asleep within 10 s"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
                let before = ring.waker_stats().wakeups;
                let rep = run(
                    who,
                    &ring,
                    1,
                    &Program::Nop {
                        ops: 1,
                        fire_and_forget: false,
                    },
                );
                assert_eq!(
                    rep.total().done,
                    1,
                    "{who:?} round {round}: the NOP completed"
                );
                // The waker counts a wake-up before making it, so a completion it caused is never seen first.
                if ring.waker_stats().wakeups > before {
                    woken = true;
                    break;
                }
            }
            assert!(
                woken,
                "{who:?} round {round}: a NOP after the SQ thread slept completed through a waker wake-up"
            );
        }
        assert_clean(&ring);
    }
}

// ---- confinement --------------------------------------------------------------------------------------------

/// device_suite `confined_ring_refuses_what_it_must` (the exact program).
#[test]
fn confined_ring_refuses_what_it_must() {
    let mut results = Vec::new();
    for who in BOTH {
        let out = tempfile::tempfile().expect("a temporary file");
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
            opcode::WriteFixed::new(types::Fixed(0), addr, 20, buf)
                .offset(0)
                .build(),
            opcode::Nop::new().build().flags(Flags::FIXED_FILE),
            opcode::Write::new(types::Fixed(0), addr, 5)
                .offset(0)
                .build(),
            opcode::WriteFixed::new(types::Fd(out.as_raw_fd()), addr, 5, buf)
                .offset(0)
                .build(),
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
        let rep = run(who, &ring, 1, &Program::Exact { count: n });
        assert_eq!(rep.total().done, n as u64, "{who:?}");
        let mut res = [0u8; 20];
        v.read_bytes(l.fixed + 64 * n, &mut res);
        let res: Vec<i32> = res
            .chunks(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(res[0], 20, "{who:?}: allowed WRITE_FIXED wrote 20 bytes");
        assert_eq!(res[1], 0, "{who:?}: NOP allowed");
        assert_eq!(res[2], -libc::EACCES, "{who:?}: forbidden opcode");
        assert_eq!(res[3], -libc::EACCES, "{who:?}: raw fd");
        assert_eq!(res[4], -libc::EFAULT, "{who:?}: address outside the buffer");
        assert!(ring.quiesce(Duration::from_secs(20)));
        assert_eq!(
            common::read_fd_file(out.as_raw_fd()),
            b"allowed fixed write\n",
            "{who:?}: the refused SQEs changed nothing"
        );
        results.push(res);
    }
    assert_eq!(results[0], results[1]);
}

/// device_suite `confined_ring_prints_to_a_fixed_file`.
#[test]
fn confined_ring_prints_to_a_fixed_file() {
    for who in BOTH {
        let (lanes, lines) = (8, 50);
        let out = tempfile::tempfile().expect("a temporary file");
        let ring = ring(RingConfig {
            lanes,
            fixed_files: vec![out.as_raw_fd()],
            access: DeviceAccess::default(),
            ..Default::default()
        });
        ring.set_print_target(PrintTarget::Fixed(0))
            .expect("print target");
        let rep = run(who, &ring, lanes, &Program::Print { lines });
        assert_eq!(rep.total().failed, 0, "{who:?}");
        assert_clean(&ring);
        ring.finish_prints();
        common::check_prints(&common::read_fd_file(out.as_raw_fd()), lanes, lines);
    }
}

/// device_suite `print_log_refuses_lines_longer_than_the_ring_lines`, in every print mode: on a ring whose lines
/// are shorter than some of the program's lines, a line that does not fit is not printed (`LINE_TOO_LONG`,
/// counted failed) and every other line is, whole and in order — through the print log into a pipe, one write
/// per line into a pipe (stream mode) and into a file (offset mode).
#[test]
fn lines_longer_than_the_ring_lines_are_not_printed() {
    let (lanes, lines, line_bytes) = (8u32, 40u32, 48u32);
    // The lines that fit, per lane, in order; and how many do not.
    let mut per_lane = vec![Vec::new(); lanes as usize];
    let mut long = 0u64;
    for lane in 0..lanes {
        for seq in 0..lines {
            let l = gpu_uring_kernels::print_line(lane, seq);
            if l.len() > line_bytes as usize {
                long += 1;
            } else {
                per_lane[lane as usize].extend_from_slice(&l);
            }
        }
    }
    assert!(
        long > 0 && long < (lanes * lines) as u64,
        "some lines are too long"
    );
    let by_lane = |out: &[u8]| {
        let mut got = vec![Vec::new(); lanes as usize];
        for l in out.split_inclusive(|&c| c == b'\n') {
            let lane: usize = std::str::from_utf8(l).expect("utf-8")[5..]
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a torn line {l:?}"));
            got[lane].extend_from_slice(l);
        }
        got
    };
    for who in BOTH {
        for (mode, file) in [
            (PrintMode::GroupCommit, false),
            (PrintMode::LinePerWrite, false),
            (PrintMode::LinePerWrite, true),
        ] {
            let what = format!(
                "{who:?} {mode:?} into a {}",
                if file { "file" } else { "pipe" }
            );
            // The print target's fd, and what reads everything printed once the ring is gone.
            let (fd, printed): (i32, Box<dyn FnOnce() -> Vec<u8>>) = if file {
                let f = tempfile::tempfile().expect("a temporary file");
                (
                    f.as_raw_fd(),
                    Box::new(move || common::read_fd_file(f.as_raw_fd())),
                )
            } else {
                let (wr, reader) = pipe_reader();
                (
                    wr.as_raw_fd(),
                    Box::new(move || {
                        drop(wr);
                        reader.join().expect("the pipe's reader")
                    }),
                )
            };
            let ring = ring(RingConfig {
                lanes,
                line_bytes,
                ..Default::default()
            });
            ring.set_print_mode(mode);
            ring.set_print_target(PrintTarget::Fd(fd))
                .expect("print target");
            let rep = run(who, &ring, lanes, &Program::Print { lines });
            assert_eq!(
                (rep.total().done, rep.total().failed),
                ((lanes * lines) as u64 - long, long),
                "{what}"
            );
            assert_clean(&ring);
            ring.finish_prints();
            drop(ring);
            let out = printed();
            assert_eq!(
                by_lane(&out),
                per_lane,
                "{what}: every line that fits, once, in order"
            );
        }
    }
}

// ---- layout agreement, host-visible edits -------------------------------------------------------------

/// device_suite `layout_agreement`: the SQE bytes the C++ library builds equal the io-uring crate's.
#[test]
fn layout_agreement() {
    for who in BOTH {
        let lanes = 8;
        let ring = ring(RingConfig {
            lanes,
            fixed_buffer_bytes: 256 * lanes as usize,
            ..Default::default()
        });
        let rep = run(who, &ring, lanes, &Program::Layout);
        assert_eq!(rep.total().done, lanes as u64, "{who:?}");
        let v = ring.view();
        let l = ring.layout();
        for lane in 0..lanes {
            let mut sqe = Sqe::default();
            v.read_bytes(l.fixed + 256 * lane, bytemuck::bytes_of_mut(&mut sqe));
            assert_eq!(
                sqe,
                layout_sqe_expected(&l, lane),
                "{who:?} lane {lane}: SQE bytes"
            );
            let mut echo = RingLayout::default();
            v.read_bytes(l.fixed + 256 * lane + 64, bytemuck::bytes_of_mut(&mut echo));
            assert_eq!(
                echo, l,
                "{who:?} lane {lane}: the RingLayout the lane received"
            );
        }
    }
}

/// device_suite `edit_buffer_seen_while_running`.
#[test]
fn edit_buffer_seen_while_running() {
    for who in BOTH {
        let (lanes, steps) = (8, 20);
        let ring = ring(RingConfig {
            lanes,
            fixed_buffer_bytes: 4096,
            ..Default::default()
        });
        let stop = AtomicBool::new(false);
        let (rep, changes) = std::thread::scope(|s| {
            let host = s.spawn(|| edit_buffer_host(&ring, lanes, &stop));
            let rep = run(who, &ring, lanes, &Program::EditBuffer { steps });
            stop.store(true, Ordering::Release);
            (rep, host.join().expect("the host thread"))
        });
        assert_eq!(rep.total().done, (lanes * steps) as u64, "{who:?}");
        assert_eq!(
            changes,
            (lanes * steps) as u64,
            "{who:?}: the host saw every value while the program ran"
        );
    }
}

/// The format program on a ring (`gu_format`: records at the fixed region), with the device suite's cases and
/// reference bytes.
#[test]
fn number_formatting_through_the_ring_matches_the_reference() {
    let cases = FormatCase::probe_cases();
    let n = cases.len() as u32;
    let ring = ring(RingConfig {
        lanes: n,
        fixed_buffer_bytes: 128 * cases.len(),
        ..Default::default()
    });
    let l = ring.layout();
    let v = ring.view();
    for (i, c) in cases.iter().enumerate() {
        let (kind, prec, val) = c.record();
        let words = [kind, prec, val as u32, (val >> 32) as u32];
        v.write_bytes(l.fixed + 128 * i as u32, bytemuck::bytes_of(&words));
    }
    let m = memory(&ring, &l);
    std::thread::scope(|s| {
        for id in 0..n {
            // SAFETY: the ring outlives the scope; each thread formats its own record inside the fixed region.
            s.spawn(move || unsafe { format_lane(m, id) });
        }
    });
    for (i, c) in cases.iter().enumerate() {
        let mut len = [0u8; 4];
        v.read_bytes(l.fixed + 128 * i as u32 + 16, &mut len);
        let len = u32::from_le_bytes(len).min(108) as usize;
        let mut got = vec![0u8; len];
        v.read_bytes(l.fixed + 128 * i as u32 + 20, &mut got);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&c.reference()),
            "{c:?}"
        );
    }
}

// ---- baselines ----------------------------------------------------------------------------------------------

/// The RPC print client (`rpc_print_lane`) against the experiments' server thread: every line exactly once,
/// in order per lane (the device suite's `check_prints`), and the mailboxes' counters say so. A budget too
/// small to finish in one call is resumed by the next, as the shader is across dispatches.
#[test]
fn rpc_print_client_prints_every_line_once() {
    use gpu_uring_experiments::rpc::{
        MailboxArena, RpcServer, ServerConfig, MB_DONE, MB_FAILED, MB_FINISHED,
    };
    let (lanes, lines) = (8u32, 60u32);
    let (wr, reader) = pipe_reader();
    let arena = Arc::new(MailboxArena::new(lanes).expect("mailboxes"));
    let server = RpcServer::start(arena.clone(), wr.as_raw_fd(), ServerConfig::default())
        .expect("the RPC server");
    let (base, _) = arena.memory();
    let base = base as usize;
    let mut calls = 0;
    while (0..lanes).any(|l| arena.word(l, MB_FINISHED) == 0) {
        calls += 1;
        assert!(calls < 100_000, "the client never finished");
        std::thread::scope(|s| {
            for lane in 0..lanes {
                // SAFETY: `lanes` mailboxes live in `arena` (kept alive past the scope); the server is their
                // other side; one thread per lane.
                s.spawn(move || unsafe {
                    gpu_uring_kernels::rpc_print_lane(base as *mut u8, lanes, lines, 2000, lane)
                });
            }
        });
    }
    let stats = server.stop();
    drop(wr);
    let out = reader.join().expect("reader");
    assert_eq!(
        common::check_prints(&out, lanes, lines),
        (lanes * lines) as usize
    );
    let done: u32 = (0..lanes).map(|l| arena.word(l, MB_DONE)).sum();
    let failed: u32 = (0..lanes).map(|l| arena.word(l, MB_FAILED)).sum();
    assert_eq!((done, failed), (lanes * lines, 0));
    assert_eq!(stats.calls, (lanes * lines) as u64);
    eprintln!("rpc_print: {calls} calls of 2000 iterations per lane");
}

/// The memory-placement probe: what the device suite checks of the shader (init with several invocations,
/// a chase of `n` dependent loads ending at the LCG's n-th index, stores along the same sequence).
#[test]
fn memory_placement_chases_the_chain() {
    use gpu_uring_kernels::memory_placement_lane;
    let next = |i: u32, mask: u32| 1664525u32.wrapping_mul(i).wrapping_add(1013904223) & mask;
    let (mask, seed, n) = (1023u32, 12345u32, 500u32);
    let mut want = seed & mask;
    for _ in 0..n {
        want = next(want, mask);
    }
    let buf: Vec<AtomicU32> = (0..mask + 16).map(|_| AtomicU32::new(0)).collect();
    let total = 64;
    std::thread::scope(|s| {
        for gid in 0..total {
            let buf = &buf;
            s.spawn(move || memory_placement_lane(buf, 0, 64, mask, seed, gid, total));
        }
    });
    memory_placement_lane(&buf, 1, n, mask, seed, 0, 1);
    assert_eq!(buf[mask as usize + 1].load(Ordering::Relaxed), want);
    assert_eq!(buf[5].load(Ordering::Relaxed), next(5, mask));
    // A chase of 0 steps stores seed & mask; other invocations do nothing.
    memory_placement_lane(&buf, 1, 0, mask, 7, 3, 4);
    assert_eq!(buf[mask as usize + 1].load(Ordering::Relaxed), want);
    memory_placement_lane(&buf, 1, 0, mask, 7, 0, 4);
    assert_eq!(buf[mask as usize + 1].load(Ordering::Relaxed), 7);
    // Stores: word next^k(seed) holds k (the last store to it).
    memory_placement_lane(&buf, 2, 100, mask, seed, 0, 1);
    let mut idx = seed & mask;
    let mut last = std::collections::HashMap::new();
    for k in 0..100u32 {
        last.insert(idx, k);
        idx = next(idx, mask);
    }
    for (i, k) in last {
        assert_eq!(buf[i as usize].load(Ordering::Relaxed), k, "word {i}");
    }
}
