//! The C++ protocol lanes (`kernels/include/gpu_uring/ring.h`, host target) on a real io_uring device ring:
//! threads as lanes calling `gu::programs::{nop_lane, print_lane, hostile_lane}` with the ring's arena,
//! device-local block and layout. Exactly-once NOPs and prints (offset mode into a file, stream mode into a
//! pipe), a clean quiesce with every credit back, and rows of the hostile-input table compared with what the
//! Rust lane reports for the same row.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use gpu_uring::backend::{expected_line, HostileCase, Program, Programs};
use gpu_uring::protocol::shared::*;
use gpu_uring::protocol::{DeviceRing, PrintMode, PrintTarget};
use gpu_uring::ring::{DeviceAccess, RingConfig, RingLayout};
use gpu_uring_kernels::{
    hostile_lane, nop_lane, print_lane, ring_program_lane, run_in_teams, take_rmws, NopMode,
    RingMemory, RingProgram,
};

const LANES: u32 = 8;
/// Iterations a lane's bounded waits may take (the host target's backoff yields): far more than a healthy
/// run needs, finite so a lost completion fails the test instead of hanging it.
const BUDGET: u32 = 1 << 24;
const QUIESCE: Duration = Duration::from_secs(10);

fn ring(cfg: RingConfig) -> DeviceRing {
    DeviceRing::new(RingConfig {
        sq_thread_idle: Duration::from_millis(10),
        ..cfg
    })
    .expect("creating a device ring")
}

/// The ring's memory for the C++ lanes. `layout` is the caller's copy of `ring.view().layout()` (the view
/// holds its layout by value, so the reference would not outlive it); it must outlive the lanes.
fn memory(ring: &DeviceRing, layout: &RingLayout) -> RingMemory {
    RingMemory {
        arena: ring.arena().0,
        local: ring.local_block().as_ptr(),
        layout: (layout as *const RingLayout).cast(),
    }
}

/// Runs `f(lane)` on `lanes` threads; the results in lane order.
fn run<R: Send>(lanes: u32, f: impl Fn(u32) -> R + Sync) -> Vec<R> {
    run_in_teams(lanes, 1, f)
}

/// After a run: the ring quiesces, every credit is back, nothing was counted as a violation or foreign.
fn assert_clean(ring: &DeviceRing) {
    ring.try_quiesce(QUIESCE).expect("the ring quiesces");
    let c = ring.view().local_snapshot();
    let l = *ring.view().layout();
    assert_eq!(c.cq_credits, l.credit_pool, "every credit is back");
    let v = ring.violations();
    assert_eq!(
        (v.host_detected, v.device_reported, v.foreign_cqes),
        (0, 0, 0),
        "no violations"
    );
    assert_eq!(c.ff_errors, 0);
    assert_eq!(c.print_errors, 0);
}

/// Every line is some lane's next line (exactly once, in order per lane); returns how many.
fn check_lines(out: &[u8], lanes: u32, lines: u32) -> usize {
    let text = std::str::from_utf8(out).expect("UTF-8 (a torn line would not be)");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "output ends mid-line"
    );
    let mut next = vec![0u32; lanes as usize];
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let lane: u32 = line
            .strip_prefix("lane=")
            .and_then(|r| r.split(' ').next())
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("line {i} is malformed: {line:?}"));
        let want = &mut next[lane as usize];
        assert_eq!(
            line,
            expected_line(lane, *want),
            "line {i}: lane {lane} out of order, torn or duplicated"
        );
        *want += 1;
        n += 1;
    }
    assert!(
        next.iter().all(|&k| k == lines),
        "every lane printed every line: {next:?}"
    );
    n
}

/// Runs the nop program; returns the C++ lanes' device-local RMWs per NOP.
fn nops(mode: NopMode, m_per_lane: u32, team: u32) -> f64 {
    let ring = ring(RingConfig {
        lanes: LANES,
        ..Default::default()
    });
    let layout = *ring.view().layout();
    let m = memory(&ring, &layout);
    // SAFETY: `m` is borrowed from `ring`, which outlives the scoped threads; one thread per lane.
    let out = run_in_teams(LANES, team, |id| unsafe {
        let r = nop_lane(m, id, mode, m_per_lane, BUDGET);
        (r, take_rmws())
    });
    let rmws: u64 = out.iter().map(|(_, n)| n).sum();
    for (id, ((st, ready), _)) in out.iter().enumerate() {
        assert_eq!(*st, STATUS_READY, "{mode:?} team {team} lane {id}: status");
        assert_eq!(
            *ready, m_per_lane,
            "{mode:?} team {team} lane {id}: every NOP completed (or was submitted)"
        );
    }
    assert_clean(&ring);
    let c = ring.view().local_snapshot();
    assert_eq!(c.skip_failures, 0);
    // Every ticket handed out was published and reached the kernel (quiesce waited for the SQ head).
    assert_eq!(c.sq_reserve, LANES * m_per_lane);
    let per_op = rmws as f64 / (LANES * m_per_lane) as f64;
    eprintln!("{mode:?}, subgroups of {team}: {per_op:.2} device-local RMWs per NOP");
    per_op
}

#[test]
fn waited_nops_complete_exactly_once() {
    nops(NopMode::Waited, 300, 1);
}

#[test]
fn fire_and_forget_and_skip_success_nops_return_every_credit() {
    nops(NopMode::FireAndForget, 300, 1);
    nops(NopMode::SkipSuccess, 300, 1);
}

/// The aggregated path (gpu_uring/group.h) in emulated subgroups of 4 and 8 lanes: the elected lane takes the
/// credits and tickets of its whole subgroup and publishes them with one CAS; every NOP still completes
/// exactly once and every credit comes back.
#[test]
fn nops_aggregated_per_subgroup_complete_exactly_once() {
    for team in [4, 8] {
        nops(NopMode::Waited, 200, team);
        nops(NopMode::FireAndForget, 200, team);
        nops(NopMode::SkipSuccess, 200, team);
    }
}

/// Aggregation saves device-local RMWs (the credits, tickets and publication of a subgroup's NOPs are one CAS
/// each): waited NOPs in subgroups of 8 make fewer RMWs per NOP than lane by lane. (The exact figures depend on
/// contention and are printed, not asserted.)
#[test]
fn aggregation_saves_device_local_rmws() {
    let single = nops(NopMode::Waited, 200, 1);
    let grouped = nops(NopMode::Waited, 200, 8);
    assert!(
        grouped < single * 0.8,
        "{grouped:.2} RMWs per NOP in subgroups of 8, {single:.2} lane by lane"
    );
}

/// lane_stress in subgroups of 8 on an 8-entry SQ (the device suite's tiny ring): batches larger than the free
/// SQ or credits are cut, the first lanes in rank order get them and the rest retry.
#[test]
fn lane_stress_aggregated_on_a_tiny_ring() {
    let (lanes, ops) = (32u32, 40u32);
    let ring = ring(RingConfig {
        sq_entries: 8,
        lanes,
        ..Default::default()
    });
    let layout = *ring.view().layout();
    let m = memory(&ring, &layout);
    // SAFETY: as in `nops`.
    let out = run_in_teams(lanes, 8, |id| unsafe {
        ring_program_lane(m, id, RingProgram::LaneStress { ops }, BUDGET)
    });
    for (id, (st, rep)) in out.iter().enumerate() {
        assert_eq!(*st, STATUS_READY, "lane {id}");
        assert_eq!((rep.done, rep.failed), (ops as u64, 0), "lane {id}");
    }
    assert_clean(&ring);
    assert_eq!(ring.view().local_snapshot().sq_reserve, lanes * ops);
}

/// Line mode (one write per line; lane by lane, then in subgroups of 4: one print_offset add per subgroup and
/// round) and group commit through the print log (the host's default).
#[test]
fn prints_into_a_file_offset_mode_exactly_once() {
    prints_into_a_file(1, PrintMode::LinePerWrite);
    prints_into_a_file(4, PrintMode::LinePerWrite);
    prints_into_a_file(1, PrintMode::GroupCommit);
    prints_into_a_file(4, PrintMode::GroupCommit);
}

/// After a group-commit run: the lanes' duty wrote every line (the host wrote nothing, found nothing
/// incomplete or rewritten), in fewer writes than lines.
fn assert_log_written_by_the_device(ring: &DeviceRing, lines: u32, what: &str) {
    let rep = ring.print_log_report();
    eprintln!(
        "{what}: {lines} lines in {} device writes ({:.1} lines per write), {:?}",
        rep.device_writes,
        lines as f64 / rep.device_writes.max(1) as f64,
        rep
    );
    assert_eq!(
        (
            rep.host_bytes,
            rep.incomplete_ranges,
            rep.violations,
            rep.write_in_flight
        ),
        (0, 0, 0, false),
        "{what}: {rep:?}"
    );
    assert!(
        rep.device_writes >= 1 && rep.device_writes < lines as u64,
        "{what}: {rep:?}"
    );
}

/// A print log of 4 KiB (the smallest): reservations keep running out of bytes and tickets while writes are
/// in flight, so subgroups reserve the prefix of lines that fits and the rest retry; duties are handed on.
#[test]
fn prints_through_a_small_log_exactly_once() {
    for team in [1, 8] {
        prints_into_a_file_with(team, PrintMode::GroupCommit, 4096);
    }
}

fn prints_into_a_file(team: u32, mode: PrintMode) {
    prints_into_a_file_with(team, mode, RingConfig::default().print_log_bytes);
}

fn prints_into_a_file_with(team: u32, mode: PrintMode, print_log_bytes: u32) {
    const M: u32 = 400;
    let path = std::env::temp_dir().join(format!("gu-kernels-print-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("creating the output file");
    let _ = std::fs::remove_file(&path);
    let ring = ring(RingConfig {
        lanes: LANES,
        print_log_bytes,
        ..Default::default()
    });
    ring.set_print_mode(mode);
    ring.set_print_target(PrintTarget::Fd(f.as_raw_fd()))
        .expect("print target");
    let layout = *ring.view().layout();
    let m = memory(&ring, &layout);
    // SAFETY: as in `nops_complete_exactly_once`.
    let out = run_in_teams(LANES, team, |id| unsafe { print_lane(m, id, M, BUDGET) });
    assert!(
        out.iter().all(|&s| s == (STATUS_READY, M)),
        "statuses, lines printed {out:?}"
    );
    assert_clean(&ring);
    let end = ring
        .finish_prints()
        .expect("a regular file uses offset mode");
    let bytes =
        std::fs::read(format!("/proc/self/fd/{}", f.as_raw_fd())).expect("reading the output");
    assert_eq!(
        end as usize,
        bytes.len(),
        "the print offset is the file's length: no hole"
    );
    assert_eq!(check_lines(&bytes, LANES, M), (LANES * M) as usize);
    assert_eq!(ring.view().local_snapshot().lines_printed, LANES * M);
    if mode == PrintMode::GroupCommit {
        assert_log_written_by_the_device(
            &ring,
            LANES * M,
            &format!("file, subgroups of {team}, log of {print_log_bytes} bytes"),
        );
    }
}

#[test]
fn prints_into_a_pipe_stream_mode_exactly_once() {
    prints_into_a_pipe(1, PrintMode::LinePerWrite);
    prints_into_a_pipe(8, PrintMode::LinePerWrite);
    prints_into_a_pipe(1, PrintMode::GroupCommit);
    prints_into_a_pipe(8, PrintMode::GroupCommit);
}

fn prints_into_a_pipe(team: u32, mode: PrintMode) {
    const M: u32 = 150;
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: pipe(2) returned two fresh descriptors this test now owns.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let ring = ring(RingConfig {
        lanes: LANES,
        ..Default::default()
    });
    ring.set_print_mode(mode);
    ring.set_print_target(PrintTarget::Fd(wr.as_raw_fd()))
        .expect("print target");
    assert!(ring.finish_prints().is_none(), "a pipe uses stream mode");
    let want_lines = (LANES * M) as usize;
    // The ring holds its own reference to the write end: read until every line arrived.
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(rd);
        let mut all = Vec::new();
        let mut buf = [0u8; 1 << 16];
        while all.iter().filter(|&&b| b == b'\n').count() < want_lines {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        all
    });
    let layout = *ring.view().layout();
    let m = memory(&ring, &layout);
    // SAFETY: as in `nops_complete_exactly_once`.
    let out = run_in_teams(LANES, team, |id| unsafe { print_lane(m, id, M, BUDGET) });
    assert!(
        out.iter().all(|&s| s == (STATUS_READY, M)),
        "statuses, lines printed {out:?}"
    );
    let bytes = reader.join().expect("reader");
    assert_clean(&ring);
    assert_eq!(check_lines(&bytes, LANES, M), want_lines);
    if mode == PrintMode::GroupCommit {
        assert_log_written_by_the_device(&ring, LANES * M, &format!("pipe, subgroups of {team}"));
    }
    drop(wr);
}

/// What a hostile row produced: status, result, and the `LocalControl` words the rows touch, as deltas
/// (counters) or final values (the corrupted words), after the program's final flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outcome {
    status: u32,
    res: i32,
    protocol_violations: u32,
    foreign_cqes: u32,
    ff_errors: u32,
    skip_failures: u32,
    ff_last_error: i32,
    sq_reserve: u32,
    cq_credits: u32,
    cq_claim: u32,
}

fn outcome(status: u32, res: i32, before: &LocalControl, after: &LocalControl) -> Outcome {
    Outcome {
        status,
        res,
        protocol_violations: after
            .protocol_violations
            .wrapping_sub(before.protocol_violations),
        foreign_cqes: after.foreign_cqes.wrapping_sub(before.foreign_cqes),
        ff_errors: after.ff_errors.wrapping_sub(before.ff_errors),
        skip_failures: after.skip_failures.wrapping_sub(before.skip_failures),
        ff_last_error: after.ff_last_error,
        sq_reserve: after.sq_reserve.wrapping_sub(before.sq_reserve),
        cq_credits: after.cq_credits,
        cq_claim: after.cq_claim.wrapping_sub(before.cq_claim),
    }
}

/// The hostile-input table's ring (as host/tests/hostile_input.rs makes it): confined, one lane, 64 SQ
/// entries, /dev/null as fixed file 0, a 4 KiB fixed buffer.
fn confined_ring(null: &std::fs::File) -> DeviceRing {
    ring(RingConfig {
        lanes: 1,
        sq_entries: 64,
        fixed_files: vec![null.as_raw_fd()],
        fixed_buffer_bytes: 4096,
        access: DeviceAccess::default(),
        ..Default::default()
    })
}

/// The row on the C++ lane.
fn cpp_row(case: HostileCase, null: &std::fs::File) -> Outcome {
    let ring = confined_ring(null);
    let before = ring.view().local_snapshot();
    let layout = *ring.view().layout();
    let m = memory(&ring, &layout);
    // SAFETY: as in `nops_complete_exactly_once` (one lane).
    let (st, res) = run(1, |id| unsafe { hostile_lane(m, id, case.code(), BUDGET) })[0];
    outcome(st, res, &before, &ring.view().local_snapshot())
}

/// The same row on the Rust lane (the CPU reference device's `Program::Hostile`).
fn rust_row(case: HostileCase, null: &std::fs::File) -> Outcome {
    let ring = confined_ring(null);
    let before = ring.view().local_snapshot();
    let dev = gpu_uring::backend::open(&gpu_uring::backend::DeviceSelector::Cpu)
        .expect("the CPU reference device")
        .0;
    let rep = dev
        .run(
            &ring,
            1,
            &Program::Hostile { case },
            Duration::from_secs(30),
        )
        .expect("the Rust row runs");
    let lane = rep.lanes[0];
    assert_eq!(lane.done, 1, "{case:?}: the Rust row ran");
    outcome(
        lane.checksum as u32,
        lane.bytes as u32 as i32,
        &before,
        &ring.view().local_snapshot(),
    )
}

/// Every row of the hostile-input table (`HostileCase::ALL`; host/tests/hostile_input.rs holds each row's
/// expected status, result and counter, which the Rust lane meets): the C++ lane reports the same status and
/// result and leaves the same counters and control words as the Rust lane.
#[test]
fn every_hostile_row_matches_the_rust_lane() {
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    let mut bad = Vec::new();
    for case in HostileCase::ALL {
        let cpp = cpp_row(case, &null);
        let rust = rust_row(case, &null);
        eprintln!("{case:?}: C++ {cpp:?}");
        if cpp != rust {
            bad.push(format!("{case:?}:\n  C++  {cpp:?}\n  Rust {rust:?}"));
        }
    }
    assert!(bad.is_empty(), "rows that differ:\n{}", bad.join("\n"));
}

/// The aggregated print (`group::print`) on lines longer than the ring's: in subgroups of 4, through the print
/// log and one write per line (offset mode, into a file), a lane whose line does not fit gets `LINE_TOO_LONG`
/// for it while its subgroup prints the others; every line that fits is printed once, in order per lane.
#[test]
fn lines_too_long_are_refused_in_subgroups() {
    const M: u32 = 40;
    const LINE_BYTES: u32 = 48;
    let fits =
        |lane: u32, seq: u32| gpu_uring_kernels::print_line(lane, seq).len() <= LINE_BYTES as usize;
    for mode in [PrintMode::GroupCommit, PrintMode::LinePerWrite] {
        let f = tempfile::tempfile().expect("a temporary file");
        let ring = ring(RingConfig {
            lanes: LANES,
            line_bytes: LINE_BYTES,
            ..Default::default()
        });
        ring.set_print_mode(mode);
        ring.set_print_target(PrintTarget::Fd(f.as_raw_fd()))
            .expect("print target");
        let layout = *ring.view().layout();
        let m = memory(&ring, &layout);
        // SAFETY: as in `nops_complete_exactly_once`.
        let out = run_in_teams(LANES, 4, |id| unsafe { print_lane(m, id, M, BUDGET) });
        for (lane, &(st, printed)) in out.iter().enumerate() {
            let lane = lane as u32;
            let ok = (0..M).filter(|&s| fits(lane, s)).count() as u32;
            let want = if ok < M {
                STATUS_LINE_TOO_LONG
            } else {
                STATUS_READY
            };
            assert_eq!((st, printed), (want, ok), "{mode:?} lane {lane}");
        }
        assert!(
            out.iter().any(|&(st, _)| st == STATUS_READY)
                && out.iter().any(|&(st, _)| st == STATUS_LINE_TOO_LONG),
            "{mode:?}: some lanes have long lines, some none: {out:?}"
        );
        assert_clean(&ring);
        ring.finish_prints();
        drop(ring);
        let bytes =
            std::fs::read(format!("/proc/self/fd/{}", f.as_raw_fd())).expect("reading the output");
        let mut got = vec![Vec::new(); LANES as usize];
        for l in bytes.split_inclusive(|&b| b == b'\n') {
            let lane: usize = std::str::from_utf8(l).expect("utf-8")[5..]
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{mode:?}: a torn line {l:?}"));
            got[lane].extend_from_slice(l);
        }
        for (lane, g) in got.iter().enumerate() {
            let want: Vec<u8> = (0..M)
                .filter(|&s| fits(lane as u32, s))
                .flat_map(|s| gpu_uring_kernels::print_line(lane as u32, s))
                .collect();
            assert_eq!(
                g, &want,
                "{mode:?} lane {lane}: every line that fits, once, in order"
            );
        }
    }
}
