//! Tests of [`step_subgroup`] and of the read program's stepped lanes ([`super::ReadLane`]).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::super::device::CpuDevice;
use super::super::stepped::{step_subgroup, Step, SteppedLane};
use super::super::wait::RingWait;
use super::*;
use crate::backend::{checksum, Program, Programs};
use crate::protocol::idle::with_idle_wait;
use crate::protocol::DeviceRing;
use crate::ring::RingConfig;

/// A lane that needs `work` steps of progress, one every `every`-th step (waiting in between), and gives up
/// after `budget` idle waits of its subgroup; it records what it was told.
struct Fake {
    work: u32,
    every: u32,
    budget: u32,
    steps: u32,
    done: u32,
    timed_out: bool,
    /// `pauses` of each step.
    seen: Vec<u32>,
    /// The round in which the lane ended (its step count then).
    finished_at: Option<u32>,
}

impl Fake {
    fn new(work: u32, every: u32, budget: u32) -> Fake {
        Fake {
            work,
            every,
            budget,
            steps: 0,
            done: 0,
            timed_out: false,
            seen: Vec::new(),
            finished_at: None,
        }
    }
}

impl SteppedLane for Fake {
    fn step(&mut self, _: &mut (), pauses: u32) -> Step {
        assert!(self.finished_at.is_none(), "a finished lane is not stepped");
        self.steps += 1;
        self.seen.push(pauses);
        if self.done == self.work {
            self.finished_at = Some(self.steps);
            return Step::Done;
        }
        // `every == 0`: never progresses (waits for what never comes).
        if self.every > 0 && self.steps % self.every == 0 {
            self.done += 1;
            return Step::Progress;
        }
        if pauses >= self.budget {
            self.timed_out = true;
            self.finished_at = Some(self.steps);
            return Step::Done;
        }
        Step::Waiting
    }
}

#[test]
fn lanes_that_finish_at_different_times_are_each_stepped_until_done_and_no_longer() {
    let mut lanes = vec![
        Fake::new(1, 1, 1000),
        Fake::new(5, 2, 1000),
        Fake::new(3, 7, 1000),
        Fake::new(0, 1, 1000),
    ];
    let stats = step_subgroup(&mut (), &mut lanes, 0);
    for l in &lanes {
        assert_eq!(l.done, l.work);
        assert!(!l.timed_out);
    }
    let ends: Vec<u32> = lanes.iter().map(|l| l.finished_at.unwrap()).collect();
    // Each lane's last step is the one after its last progress: work · every + 1 steps.
    assert_eq!(ends, vec![2, 11, 22, 1]);
    // A round steps every lane still running, so the slowest lane's steps are the rounds.
    assert_eq!(stats.rounds, 22);
    // Lane 2 progresses every 7th step; in the rounds between, lane 1 progressed until its 11th step, so
    // only the rounds after that, where no lane progressed, were idle waits.
    assert!(stats.pauses > 0 && stats.pauses < 22, "{stats:?}");
}

#[test]
fn a_lane_that_times_out_ends_after_its_budget_of_idle_waits_while_the_others_complete() {
    let budget = 50;
    let mut lanes = vec![
        Fake::new(20, 1, budget),
        Fake::new(1, 0, budget),
        Fake::new(4, 3, budget),
    ];
    let t = Instant::now();
    let stats = step_subgroup(&mut (), &mut lanes, 4);
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!((lanes[0].done, lanes[0].timed_out), (20, false));
    assert_eq!((lanes[2].done, lanes[2].timed_out), (4, false));
    let stuck = &lanes[1];
    assert!(stuck.timed_out, "the lane that never progresses times out");
    // Its budget counts idle waits only: while a sibling progressed (the first 20 rounds) its count stayed 0.
    assert!(stuck.seen[..20].iter().all(|&p| p == 0), "{:?}", stuck.seen);
    assert_eq!(*stuck.seen.last().unwrap(), budget);
    assert_eq!(stats.pauses, budget as u64);
    // Counts are consecutive: each idle wait adds one.
    let idle: Vec<u32> = stuck.seen.iter().copied().skip_while(|&p| p == 0).collect();
    assert_eq!(idle, (1..=budget).collect::<Vec<_>>());
}

/// A group that records the order of its hooks around the lanes' steps.
#[derive(Default)]
struct Hooks(Vec<&'static str>);

impl super::super::stepped::Group for Hooks {
    fn begin_round(&mut self) -> bool {
        self.0.push("begin");
        false
    }
    fn after_step(&mut self) -> bool {
        self.0.push("step");
        false
    }
    fn end_round(&mut self) -> bool {
        self.0.push("end");
        false
    }
}

/// One step of progress then done: a lane for the hook order.
struct Once(bool);

impl SteppedLane<Hooks> for Once {
    fn step(&mut self, _: &mut Hooks, _: u32) -> Step {
        if std::mem::replace(&mut self.0, true) {
            Step::Done
        } else {
            Step::Progress
        }
    }
}

/// Each round: `begin_round`, `after_step` after every lane still running, then `end_round`.
#[test]
fn a_groups_hooks_run_around_each_round_and_after_each_lanes_step() {
    let mut g = Hooks::default();
    let mut lanes = vec![Once(false), Once(true)];
    let stats = step_subgroup(&mut g, &mut lanes, 0);
    assert_eq!(stats.rounds, 2);
    assert_eq!(
        g.0,
        ["begin", "step", "step", "end", "begin", "step", "end"],
        "round 1: both lanes (the second ends); round 2: the first ends"
    );
}

/// A file of `total` bytes with a recognisable pattern, and the checksum each of `lanes` lanes must report
/// for it in `chunk`-byte reads (lane `l`: chunks `l, l + lanes, …`).
fn data(total: u64, lanes: u32, chunk: u32) -> (std::fs::File, Vec<u64>) {
    let bytes: Vec<u8> = (0..total)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(&bytes).unwrap();
    let mut sums = vec![0u64; lanes as usize];
    for (c, b) in bytes.chunks(chunk as usize).enumerate() {
        let s = &mut sums[c % lanes as usize];
        *s = s.wrapping_add(checksum(c as u64 * chunk as u64, b));
    }
    (f, sums)
}

fn read_ring(f: &std::fs::File, lanes: u32, depth: u32, chunk: u32) -> DeviceRing {
    DeviceRing::new(RingConfig {
        lanes,
        slots_per_lane: depth + 1,
        fixed_buffer_bytes: (lanes * depth * chunk) as usize,
        fixed_files: vec![f.as_raw_fd()],
        ..Default::default()
    })
    .unwrap()
}

/// Exactly once: every lane of subgroups of 8 (12 lanes: a full subgroup and one of 4; 3 lanes asking for up
/// to 32 reads each, more than one batch holds) reports what the same lane reports on threads of one lane each
/// and what the host computes — each chunk read and summed once.
#[test]
fn subgroups_of_stepped_lanes_report_what_one_thread_per_lane_reports() {
    let chunk = 4096;
    for (lanes, depth) in [(12u32, 1u32), (12, 3), (1, 8), (3, 32)] {
        let total = (lanes * depth * chunk * 5 + 777) as u64;
        let (f, want) = data(total, lanes, chunk);
        let program = Program::Read {
            file: 0,
            chunk,
            total,
            depth,
        };
        let mut reports = Vec::new();
        for sg in [8, 1] {
            let ring = read_ring(&f, lanes, depth, chunk);
            let dev = CpuDevice {
                subgroup_size: sg,
                ..CpuDevice::default()
            };
            let rep = dev
                .run(&ring, lanes, &program, Duration::from_secs(60))
                .unwrap();
            assert!(ring.quiesce(Duration::from_secs(20)));
            let c = ring.view().local_snapshot();
            assert_eq!(c.foreign_cqes, 0);
            let sums: Vec<u64> = rep.lanes.iter().map(|r| r.checksum).collect();
            assert_eq!(sums, want, "{lanes}×{depth}, subgroups of {sg}");
            assert_eq!(rep.total().failed, 0);
            assert_eq!(rep.total().bytes, total);
            assert_eq!(rep.total().done, total.div_ceil(chunk as u64));
            reports.push(rep.lanes);
        }
        assert_eq!(reports[0], reports[1], "{lanes}×{depth}");
    }
}

/// A lane whose read never completes (a socket nobody writes to) ends after its budget of idle waits with
/// its chunks counted failed, while the other lanes of its subgroup read theirs; the read then completes
/// once data arrives, and the ring drains.
#[test]
fn a_lane_that_times_out_does_not_hold_up_its_subgroup() {
    let chunk = 4096;
    let lanes = 4;
    let total = (lanes * chunk * 6) as u64;
    let (f, want) = data(total, lanes, chunk);
    let (rd, wr) = UnixStream::pair().unwrap();
    let ring = DeviceRing::new(RingConfig {
        lanes,
        slots_per_lane: 2,
        fixed_buffer_bytes: (lanes * chunk) as usize,
        fixed_files: vec![f.as_raw_fd(), rd.as_raw_fd()],
        ..Default::default()
    })
    .unwrap();
    let l = ring.layout();
    let budget = 200;
    let params = |file: u32, total: u64| RunParams {
        program: crate::backend::run_buffer::PROGRAM_READ,
        lanes,
        arg0: file,
        arg1: chunk,
        arg2: 1,
        iter_budget: budget,
        total,
        ..RunParams::default()
    };
    // Lane 0 reads its first chunk (file offset 0) from the socket; lanes 1–3 read the file.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut g = RingGroup::new(ring.view(), 0, lanes);
    let mut ls: Vec<ReadLane> = (0..lanes)
        .map(|i| {
            let p = if i == 0 {
                params(1, chunk as u64)
            } else {
                params(0, total)
            };
            ReadLane::new(i as usize, i, &p, l.slots_per_lane, l.fixed, deadline)
        })
        .collect();
    let wait = RingWait::new(&ring).expect("the ring's completion eventfd");
    let t = Instant::now();
    let stats = with_idle_wait(wait, || step_subgroup(&mut g, &mut ls, 0));
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert!(stats.pauses >= budget as u64, "{stats:?}");
    let r0 = ls[0].report();
    assert_eq!(
        (r0.done, r0.failed, r0.bytes),
        (0, 1, 0),
        "lane 0 timed out"
    );
    for (i, lane) in ls.iter().enumerate().skip(1) {
        let r = lane.report();
        assert_eq!((r.done, r.failed), (6, 0), "lane {i}");
        assert_eq!(r.checksum, want[i], "lane {i}");
    }
    // The abandoned read is still the kernel's: it completes once the peer writes, and the ring drains.
    (&wr).write_all(&[7u8; 16]).unwrap();
    assert!(ring.quiesce(Duration::from_secs(20)));
    let _ = g.subgroup().flush(crate::protocol::DEFAULT_BUDGET);
}
