//! Group-commit prints through the print log (PROTOCOL.md §7) on the CPU reference device: the hazards of the
//! design — a duty claimed but not yet pushed, the log's wrap, a short pipe write, a duty handed on after a
//! budget ran out, the host finishing after lanes stopped — and the byte fate of a print that times out. The
//! device-local words are set by hand where a test plays a lane that stopped at a given step.

mod common;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering::*;
use std::time::Duration;

use gpu_uring::abi::{BELL_DIRTY, BELL_LOCK, LOG_TICKETS, RING_SLOT_DONE};
use gpu_uring::backend::{format_print_line, Program, Programs};
use gpu_uring::local_off;
use gpu_uring::protocol::{
    DeviceRing, Lane, LaneError, LineBuf, PrintMode, PrintTarget, Subgroup, DEFAULT_BUDGET,
};
use gpu_uring::ring::RingConfig;

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two fresh fds we now own.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// A ring printing into a pipe whose reader collects everything until the write end closes.
struct PipeRing {
    ring: Option<DeviceRing>,
    wr: Option<OwnedFd>,
    reader: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl PipeRing {
    fn new(lanes: u32, log: u32) -> PipeRing {
        let (rd, wr) = pipe();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            std::fs::File::from(rd).read_to_end(&mut out).unwrap();
            out
        });
        let ring = common::ring(RingConfig {
            lanes,
            print_log_bytes: log,
            ..Default::default()
        });
        ring.set_print_target(PrintTarget::Fd(wr.as_raw_fd()))
            .unwrap();
        PipeRing {
            ring: Some(ring),
            wr: Some(wr),
            reader: Some(reader),
        }
    }

    fn ring(&self) -> &DeviceRing {
        self.ring.as_ref().unwrap()
    }

    /// Finishes (quiesce, which writes what the log still holds), closes, returns what the reader got.
    fn output(mut self) -> Vec<u8> {
        let ring = self.ring.take().unwrap();
        assert!(ring.quiesce(Duration::from_secs(10)));
        drop(ring);
        drop(self.wr.take());
        self.reader.take().unwrap().join().unwrap()
    }
}

fn line(lane: u32, seq: u32) -> Vec<u8> {
    let mut b = LineBuf::with_capacity(256);
    format_print_line(&mut b, lane, seq);
    b.str("\n");
    b.as_bytes().to_vec()
}

fn bell(ring: &DeviceRing) -> u32 {
    ring.view().local32(local_off!(log_bell)).load(Acquire)
}

#[test]
fn a_claimed_duty_lets_late_lines_return_to_the_claimer() {
    let p = PipeRing::new(2, 1 << 16);
    let v = p.ring().view();
    // A lane holds the duty but has not pushed its write yet (claimed, not in flight).
    v.local32(local_off!(log_bell)).store(BELL_LOCK, Release);
    let mut a = Lane::new(v, 0);
    for seq in 0..3 {
        // Returns at once: the line is complete; the claimer will take it (DIRTY).
        a.print_with(DEFAULT_BUDGET, |b| format_print_line(b, 0, seq))
            .unwrap();
    }
    assert_eq!(bell(p.ring()), BELL_LOCK | BELL_DIRTY);
    assert_eq!(v.local32(local_off!(log_writes)).load(Acquire), 0);
    // The claimer's bounded duty ends with the lines still to submit: it leaves them in the flag.
    v.local32(local_off!(log_bell)).store(BELL_DIRTY, Release);
    // The next lane that touches the ring (a reap) takes the duty and submits all three in one write.
    let mut b = Lane::new(v, 1);
    b.reap(16);
    a.flush(DEFAULT_BUDGET).unwrap();
    assert_eq!(v.local32(local_off!(log_writes)).load(Acquire), 1);
    drop((a, b));
    let want: Vec<u8> = (0..3).flat_map(|s| line(0, s)).collect();
    assert_eq!(p.output(), want);
}

#[test]
fn lines_cross_the_log_wrap_exactly_once_into_a_pipe_and_a_file() {
    const LANES: u32 = 16;
    const LINES: u32 = 1500;
    // A 4 KiB log: ~70 lines, so the log wraps hundreds of times and writes are cut at its end.
    let p = PipeRing::new(LANES, 4096);
    let rep = common::cpu()
        .run(
            p.ring(),
            LANES,
            &Program::Print { lines: LINES },
            Duration::from_secs(300),
        )
        .unwrap();
    assert_eq!(rep.total().done, (LANES * LINES) as u64);
    let out = p.output();
    assert_eq!(
        common::check_prints(&out, LANES, LINES),
        (LANES * LINES) as usize
    );
    assert!(out.len() > 100 * 4096, "the log wrapped many times");

    let f = tempfile::tempfile().unwrap();
    let ring = common::ring(RingConfig {
        lanes: LANES,
        print_log_bytes: 4096,
        ..Default::default()
    });
    ring.set_print_target(PrintTarget::Fd(f.as_raw_fd()))
        .unwrap();
    common::cpu()
        .run(
            &ring,
            LANES,
            &Program::Print { lines: LINES },
            Duration::from_secs(300),
        )
        .unwrap();
    assert!(ring.quiesce(Duration::from_secs(10)));
    let end = ring.finish_prints().expect("offset mode");
    let out = common::read_fd_file(f.as_raw_fd());
    assert_eq!(end as usize, out.len());
    assert_eq!(
        common::check_prints(&out, LANES, LINES),
        (LANES * LINES) as usize
    );
    let r = ring.print_log_report();
    assert_eq!((r.incomplete_ranges, r.host_errors), (0, 0));
    assert!(r.device_writes > 0 && r.device_writes < (LANES * LINES) as u64 / 2);
}

#[test]
fn a_short_pipe_write_has_its_remainder_resubmitted_before_the_next_range() {
    let p = PipeRing::new(2, 1 << 16);
    let v = p.ring().view();
    v.local32(local_off!(log_bell)).store(BELL_LOCK, Release);
    let mut a = Lane::new(v, 0);
    for seq in 0..4 {
        a.print_with(DEFAULT_BUDGET, |b| format_print_line(b, 0, seq))
            .unwrap();
    }
    // Play a holder whose write of the first three lines came back short: the kernel wrote `short` bytes.
    let first3: Vec<u8> = (0..3).flat_map(|s| line(0, s)).collect();
    let short = 10;
    // SAFETY: writing a valid buffer to our own pipe.
    let w = unsafe {
        libc::write(
            p.wr.as_ref().unwrap().as_raw_fd(),
            first3.as_ptr().cast(),
            short,
        )
    };
    assert_eq!(w, short as isize);
    v.local32(local_off!(log_sub))
        .store(first3.len() as u32, Relaxed);
    v.local32(local_off!(log_wres)).store(short as u32, Relaxed);
    v.local32(local_off!(log_wstate))
        .store(1 << 8 | RING_SLOT_DONE, Release);
    v.local32(local_off!(log_bell)).store(BELL_DIRTY, Release);
    // The next lane on duty finishes that write: the remainder goes first, with the fourth line after it.
    a.flush(DEFAULT_BUDGET).unwrap();
    assert_eq!(v.local32(local_off!(log_short_writes)).load(Acquire), 1);
    drop(a);
    let want: Vec<u8> = (0..4).flat_map(|s| line(0, s)).collect();
    assert_eq!(p.output(), want);
}

#[test]
fn a_duty_handed_on_after_its_budget_ran_out_is_taken_by_the_next_lane() {
    let p = PipeRing::new(2, 1 << 16);
    let v = p.ring().view();
    let mut a = Lane::new(v, 0);
    // Budget 0: the holder submits its write and, finding it in flight, hands the duty on at once.
    a.print_with(0, |b| format_print_line(b, 0, 0)).unwrap();
    let w = bell(p.ring());
    assert!(
        w & BELL_DIRTY != 0 && w & BELL_LOCK == 0,
        "duty left in the flag: {w:#x}"
    );
    // The next lane that prints takes the duty first (the write in flight), then its own line goes.
    let mut b = Lane::new(v, 1);
    b.print_with(DEFAULT_BUDGET, |b| format_print_line(b, 1, 0))
        .unwrap();
    b.flush(DEFAULT_BUDGET).unwrap();
    a.flush(DEFAULT_BUDGET).unwrap();
    assert_eq!(bell(p.ring()), 0);
    drop((a, b));
    let want: Vec<u8> = [line(0, 0), line(1, 0)].concat();
    assert_eq!(p.output(), want);
}

#[test]
fn the_host_writes_completed_ranges_after_lanes_stopped_and_reports_incomplete_ones() {
    let p = PipeRing::new(3, 1 << 16);
    let v = p.ring().view();
    // A lane stopped while holding the duty (a fault, a timeout): nothing more is submitted during the run.
    v.local32(local_off!(log_bell)).store(BELL_LOCK, Release);
    let mut a = Lane::new(v, 0);
    a.print_with(DEFAULT_BUDGET, |b| format_print_line(b, 0, 0))
        .unwrap();
    // Lane 1 reserved 10 bytes and a ticket, then stopped before completing them.
    let res = v.local64(local_off!(log_reserve));
    let cur = res.load(Acquire);
    let (r, n) = (cur as u32, (cur >> 32) as u16);
    let i = (n as u32 % LOG_TICKETS) * 4;
    v.local32(local_off!(log_starts) + i).store(r, Relaxed);
    v.local32(local_off!(log_ends) + i).store(r + 10, Relaxed);
    res.store((r + 10) as u64 | ((n + 1) as u64) << 32, Release);
    // Lane 2's line completes after the gap.
    let mut c = Lane::new(v, 2);
    c.print_with(DEFAULT_BUDGET, |b| format_print_line(b, 2, 0))
        .unwrap();
    drop((a, c));
    // After the run the host takes over.
    let rep = p.ring().finish_print_log(Duration::from_secs(5));
    assert_eq!(rep.incomplete_ranges, 1);
    assert_eq!(rep.incomplete_bytes, 10);
    assert_eq!(rep.ranges_after_gap, 1);
    assert_eq!(rep.host_bytes as usize, line(0, 0).len() + line(2, 0).len());
    assert_eq!(bell(p.ring()), 0);
    assert_eq!(p.output(), [line(0, 0), line(2, 0)].concat());
}

#[test]
fn a_print_that_times_out_reserved_nothing_and_writes_nothing() {
    let p = PipeRing::new(1, 4096);
    let v = p.ring().view();
    v.local32(local_off!(log_bell)).store(BELL_LOCK, Release);
    let mut a = Lane::new(v, 0);
    let mut ok = 0;
    let timed_out = loop {
        match a.print_with(2, |b| format_print_line(b, 0, ok)) {
            Ok(()) => ok += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(timed_out, LaneError::TimedOut);
    assert!(ok > 10);
    v.local32(local_off!(log_bell)).store(BELL_DIRTY, Release);
    a.flush(DEFAULT_BUDGET).unwrap();
    drop(a);
    let want: Vec<u8> = (0..ok).flat_map(|s| line(0, s)).collect();
    assert_eq!(p.output(), want, "exactly the lines that returned Ok");
}

#[test]
fn subgroup_prints_make_no_host_shared_rmw_and_batch_lines_into_few_writes() {
    const SUB: u32 = 8;
    const N: u32 = 400;
    let f = tempfile::tempfile().unwrap();
    let ring = common::ring(RingConfig {
        lanes: SUB,
        ..Default::default()
    });
    ring.set_print_target(PrintTarget::Fd(f.as_raw_fd()))
        .unwrap();
    let mut g = Subgroup::new(ring.view(), 0, SUB);
    let all = g.all();
    for seq in 0..N {
        let r = g.print_with(all, DEFAULT_BUDGET, |_, id, b| {
            format_print_line(b, id, seq)
        });
        assert!(r.iter().take(SUB as usize).all(|r| *r == Some(Ok(()))));
    }
    let _ = g.flush(DEFAULT_BUDGET);
    let bus: u64 = g.stats().map(|s| s.bus.host_shared().rmw).sum();
    drop(g);
    assert_eq!(bus, 0, "no RMW on host-shared memory");
    assert!(ring.quiesce(Duration::from_secs(5)));
    ring.finish_prints();
    common::check_prints(&common::read_fd_file(f.as_raw_fd()), SUB, N);
}

#[test]
fn line_per_write_mode_stays_available_for_comparison() {
    const LANES: u32 = 8;
    let f = tempfile::tempfile().unwrap();
    let ring = common::ring(RingConfig {
        lanes: LANES,
        ..Default::default()
    });
    ring.set_print_mode(PrintMode::LinePerWrite);
    ring.set_print_target(PrintTarget::Fd(f.as_raw_fd()))
        .unwrap();
    common::cpu()
        .run(
            &ring,
            LANES,
            &Program::Print { lines: 500 },
            Duration::from_secs(60),
        )
        .unwrap();
    assert!(ring.quiesce(Duration::from_secs(10)));
    ring.finish_prints();
    assert_eq!(ring.print_log_report().device_writes, 0);
    let sq = ring.view().local32(local_off!(sq_reserve)).load(Acquire);
    assert_eq!(sq, LANES * 500, "one write per line");
    common::check_prints(&common::read_fd_file(f.as_raw_fd()), LANES, 500);
}

#[test]
fn every_print_hands_its_duty_on_and_every_line_is_still_written_once_in_order() {
    // Budget 0 everywhere: a holder hands the duty on at its first wait for the kernel (its write in flight),
    // and a reservation that finds no room times out at once; a log of 4 KiB (the smallest) and six threads keep
    // reservations, hand-offs and writes in flight overlapping (on two cores threads are also preempted
    // between their loads of the log words, which must not read as violations).
    const SINGLE: u32 = 4;
    const SUB: u32 = 4;
    const N: u32 = 1500;
    let p = PipeRing::new(SINGLE + 2 * SUB, 4096);
    let v = p.ring().view();
    let retry = |timeouts: &mut u64| {
        *timeouts += 1;
        std::thread::yield_now();
    };
    let timeouts: u64 = std::thread::scope(|s| {
        let mut hs = Vec::new();
        for id in 0..SINGLE {
            hs.push(s.spawn(move || {
                let mut lane = Lane::new(v, id);
                let mut timeouts = 0;
                for seq in 0..N {
                    loop {
                        match lane.print_with(0, |b| format_print_line(b, id, seq)) {
                            Ok(()) => break,
                            Err(LaneError::TimedOut) => {
                                lane.reap(16);
                                retry(&mut timeouts);
                            }
                            Err(e) => panic!("lane {id} line {seq}: {e:?}"),
                        }
                    }
                }
                lane.flush(DEFAULT_BUDGET).unwrap();
                timeouts
            }));
        }
        for k in 0..2 {
            hs.push(s.spawn(move || {
                let mut g = Subgroup::new(v, SINGLE + k * SUB, SUB);
                let mut timeouts = 0;
                for seq in 0..N {
                    let mut mask = g.all();
                    while mask != 0 {
                        let r = g.print_with(mask, 0, |_, id, b| format_print_line(b, id, seq));
                        for (i, r) in r.iter().enumerate() {
                            match r {
                                Some(Ok(())) => mask &= !(1 << i),
                                Some(Err(LaneError::TimedOut)) | None => {}
                                Some(Err(e)) => panic!("subgroup {k} lane {i} line {seq}: {e:?}"),
                            }
                        }
                        if mask != 0 {
                            // The retry path reaps (a budget of 0 returns before the print's own reap).
                            g.reap();
                            retry(&mut timeouts);
                        }
                    }
                }
                assert!(g.flush(DEFAULT_BUDGET).iter().flatten().all(|r| r.is_ok()));
                timeouts
            }));
        }
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let c = v.local_snapshot();
    assert_eq!(c.protocol_violations, 0);
    assert_eq!(c.print_errors, 0);
    assert_eq!(c.foreign_cqes, 0);
    assert!(c.log_writes > 0);
    eprintln!(
        "{} writes for {} lines ({} short), {timeouts} timed-out reservations retried",
        c.log_writes,
        (SINGLE + 2 * SUB) * N,
        c.log_short_writes
    );
    let out = p.output();
    assert_eq!(
        common::check_prints(&out, SINGLE + 2 * SUB, N),
        ((SINGLE + 2 * SUB) * N) as usize
    );
}

#[test]
fn a_line_longer_than_the_rings_lines_is_an_error_and_prints_nothing() {
    const SUB: u32 = 4;
    for mode in [PrintMode::GroupCommit, PrintMode::LinePerWrite] {
        let f = tempfile::tempfile().unwrap();
        let ring = common::ring(RingConfig {
            lanes: SUB,
            line_bytes: 64,
            ..Default::default()
        });
        ring.set_print_mode(mode);
        ring.set_print_target(PrintTarget::Fd(f.as_raw_fd()))
            .unwrap();
        let long = "x".repeat(64);
        {
            let mut lane = Lane::new(ring.view(), 0);
            lane.print_with(DEFAULT_BUDGET, |b| {
                b.str("before");
            })
            .unwrap();
            assert_eq!(
                lane.print_with(DEFAULT_BUDGET, |b| {
                    b.str(&long);
                }),
                Err(LaneError::LineTooLong { len: 65, max: 64 }),
                "{mode:?}"
            );
            // 63 bytes and the newline fit exactly.
            lane.print_with(DEFAULT_BUDGET, |b| {
                b.str(&long[..63]);
            })
            .unwrap();
            lane.flush(DEFAULT_BUDGET).unwrap();
        }
        {
            let mut g = Subgroup::new(ring.view(), 0, SUB);
            let r = g.print_with(g.all(), DEFAULT_BUDGET, |i, _, b| {
                b.str(if i == 1 { &long } else { "sub" });
            });
            assert_eq!(r[1], Some(Err(LaneError::LineTooLong { len: 65, max: 64 })));
            assert!([0, 2, 3].iter().all(|&i| r[i] == Some(Ok(()))), "{r:?}");
            let _ = g.flush(DEFAULT_BUDGET);
        }
        assert!(ring.quiesce(Duration::from_secs(5)));
        ring.finish_prints();
        let out = String::from_utf8(common::read_fd_file(f.as_raw_fd())).unwrap();
        let mut lines: Vec<&str> = out.lines().collect();
        lines.sort_unstable();
        let mut want = vec!["before", &long[..63], "sub", "sub", "sub"];
        want.sort_unstable();
        assert_eq!(lines, want, "{mode:?}: the long lines printed nothing");
    }
}
