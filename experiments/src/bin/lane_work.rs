//! lane_work — what a lane's own work adds to a round trip when nothing crosses cores: one thread submits a NOP,
//! completes it in the kernel's place and reaps it, again and again, on a detached copy of a ring's memory
//! ([`DetachedRing`]: no SQ thread, no waker, every line in this core's caches).
//!
//! Four paths, measured in `--rounds` interleaved rounds on the same memory:
//! - `device-lane waited`: `Lane::nop` with a completion slot, `DetachedRing::complete`, `Lane::wait` (what
//!   ring_latency's device path does, without the SQ thread);
//! - `device-lane fire-and-forget`: `Lane::nop` without a slot, `complete`, one reap pass (`Lane::reap`);
//! - `plain ring`: the single-owner sequence an io_uring user runs on the same memory: write the SQE, store the
//!   SQ tail (release), `complete`, load the CQ tail (acquire), read the CQE, store the CQ head (release);
//! - `plain ring + lane RMWs`: the plain ring's sequence with the waited path's device-local read-modify-writes
//!   added where the lane makes them (credit and ticket before the fill; the publishing CAS and the SQ bell's
//!   take and release around the tail store; claim, slot, credit return, CQ publication and the CQ bell's take
//!   and release after the completion), each an uncontended `fetch_add` on the word the lane uses. Its
//!   `extra_ns` is what those RMWs cost on this CPU, with the stores around them, and the rest of the waited
//!   path's `extra_ns` is the protocol's other work.
//!
//! Every path writes its SQEs with the same `RingView::write_sqe`, and `complete` is the same call, so their
//! difference (`extra_ns`, per round, median over rounds) is the protocol's own work per operation: tickets,
//! credits, publication windows, doorbells, claims and completion slots, the bus counting, and the demotion of
//! the published SQE's line (`RingView::demote_sqe`), which the plain ring does not make. ring_latency
//! measures a whole round trip with the kernel's SQ thread on another core, where cross-core transfers hide most
//! of this work; here none do. The device rows also give the lane's bus accesses per operation (PROTOCOL.md §1).
//!
//! Output: table and `lane_work.csv`.

use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::time::Instant;

use clap::Parser;
use gpu_uring::local_off;
use gpu_uring::protocol::{CompletionMode, DeviceRing, Lane, DEFAULT_BUDGET};
use gpu_uring::ring::bus::BusCounters;
use gpu_uring::ring::{DetachedRing, RingConfig, RingView, Sqe};
use gpu_uring_experiments::cli::Devices;
use gpu_uring_experiments::{fail, CommonArgs, Experiment, Percentiles, Record};
use io_uring::opcode;

/// Lane-relative completion slot for the waited operations (slot 0 is the print slot).
const SLOT: u32 = 1;

/// A lane's own work per round trip, on one thread with no kernel: device lane vs a plain ring on the same memory.
#[derive(Parser, Debug)]
#[command(name = "lane_work", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Operations per path and round.
    #[arg(long, default_value_t = 200_000)]
    ops: u64,
    /// Interleaved rounds (the order of the paths rotates each round).
    #[arg(long, default_value_t = 9)]
    rounds: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Waited,
    FireAndForget,
    Plain,
    PlainRmw,
}

impl Path {
    const ALL: [Path; 4] = [
        Path::Waited,
        Path::FireAndForget,
        Path::Plain,
        Path::PlainRmw,
    ];

    fn name(self) -> &'static str {
        match self {
            Path::Waited => "device-lane waited",
            Path::FireAndForget => "device-lane fire-and-forget",
            Path::Plain => "plain ring",
            Path::PlainRmw => "plain ring + lane RMWs",
        }
    }
}

/// The paths' round trips: the lane's on one detached copy of the ring, the plain ring's on another (the plain
/// sequence moves the kernel's indices without the protocol's words, so it cannot share the lane's copy).
struct Runner<'a> {
    ring: &'a DetachedRing,
    lane: Lane<'a>,
    plain: &'a DetachedRing,
    plain_view: RingView<'a>,
    nop: Sqe,
    /// RMWs `plain ring + lane RMWs` made (its `local_rmw_per_op`, checked against the waited path's).
    plain_rmws: Cell<u64>,
}

impl Runner<'_> {
    /// `n` round trips of `path`; false if one failed.
    fn run(&mut self, path: Path, n: u64) -> bool {
        let mut ok = true;
        for i in 0..n {
            ok &= match path {
                Path::Waited => {
                    self.lane
                        .nop(CompletionMode::Slot(SLOT), DEFAULT_BUDGET)
                        .is_ok()
                        && self.ring.complete(0) == 1
                        && self.lane.wait(SLOT, DEFAULT_BUDGET) == Ok(0)
                }
                Path::FireAndForget => {
                    self.lane
                        .nop(CompletionMode::FireAndForget, DEFAULT_BUDGET)
                        .is_ok()
                        && self.ring.complete(0) == 1
                        && self.lane.reap(16) == 1
                }
                Path::Plain => self.plain(i, false),
                Path::PlainRmw => self.plain(i, true),
            };
        }
        ok
    }

    /// The plain ring's round trip: the SQ and CQ have one owner, this thread. With `rmw`, the waited lane's
    /// device-local RMWs are added where the lane makes them, on the plain copy's own protocol words, which the
    /// plain sequence otherwise leaves alone (their values mean nothing here).
    fn plain(&self, i: u64, rmw: bool) -> bool {
        let v = self.plain_view;
        let l = v.layout();
        let rmws = |words: &[&AtomicU32]| {
            if rmw {
                for w in words {
                    // AcqRel, as the lane's CASes (on x86-64 every locked RMW is a full barrier anyway).
                    w.fetch_add(1, AcqRel);
                }
                self.plain_rmws
                    .set(self.plain_rmws.get() + words.len() as u64);
            }
        };
        let local = |off: u32| v.local32(off);
        // Credit, ticket.
        rmws(&[local(local_off!(cq_credits)), local(local_off!(sq_reserve))]);
        // Relaxed: this thread is the only writer of the SQ tail.
        let tail = v.u32_at(l.sq_tail).load(Relaxed);
        let mut sqe = self.nop;
        sqe.user_data = i;
        v.write_sqe(tail, &sqe);
        // Publishing CAS (the 64-bit window word's low half), SQ bell taken.
        rmws(&[local(local_off!(sq_pub)), local(local_off!(sq_bell))]);
        // Release: the SQE is written before the kernel sees the tail.
        v.u32_at(l.sq_tail).store(tail.wrapping_add(1), Release);
        // SQ bell released.
        rmws(&[local(local_off!(sq_bell))]);
        self.plain.complete(0);
        // Relaxed: this thread is the only writer of the CQ head.
        let head = v.u32_at(l.cq_head).load(Relaxed);
        // Acquire: the CQE before the tail is written.
        if v.u32_at(l.cq_tail).load(Acquire) == head {
            return false;
        }
        // Claim.
        rmws(&[local(local_off!(cq_claim))]);
        let cqe = black_box(v.read_cqe(head));
        // Slot (the lane's slot `SLOT`: lane 0's global index is the same), credit return, CQ publication, CQ
        // bell taken.
        rmws(&[
            v.slot(SLOT).0,
            local(local_off!(cq_credits)),
            local(local_off!(cq_pub)),
            local(local_off!(cq_bell)),
        ]);
        // Release: the CQE is read before the kernel may reuse it.
        v.u32_at(l.cq_head).store(head.wrapping_add(1), Release);
        // CQ bell released.
        rmws(&[local(local_off!(cq_bell))]);
        cqe.user_data == i && cqe.res == 0
    }
}

fn main() {
    let cli = gpu_uring_experiments::cli::parse::<Cli>(Devices::CpuOnly);
    let mut exp = Experiment::new("lane_work", cli.common.clone());
    exp.cpu_only();
    let rounds = cli.rounds.max(1) as usize;
    let ring = DeviceRing::new(RingConfig {
        lanes: 1,
        access: exp.access(),
        ..Default::default()
    })
    .unwrap_or_else(|e| fail(&format!("creating the device ring: {e}")));
    let copy = || {
        DetachedRing::copy_of(ring.ring())
            .unwrap_or_else(|e| fail(&format!("copying the ring's memory: {e}")))
    };
    let l = ring.view().layout();
    exp.say(&format!(
        "one thread, no kernel: detached copies of a {}-entry SQ / {}-entry CQ ring, new ones each round; {} ops \
         per path in each of {rounds} interleaved rounds",
        l.sq_entries, l.cq_entries, cli.ops
    ));
    let nop = Sqe::from_entry(&opcode::Nop::new().build());
    let mut ns = [const { Vec::new() }; Path::ALL.len()];
    let mut bus = [BusCounters::default(), BusCounters::default()];
    let mut plain_rmws = 0;
    let mut failed = 0;
    for round in 0..rounds {
        // New copies each round: where a copy's memory lands moves the figures by more than a round's noise (the
        // demoted SQE line goes to a slice of the shared cache its address picks), so one copy would be one draw.
        let (detached, plain) = (copy(), copy());
        let mut r = Runner {
            ring: &detached,
            lane: Lane::new(detached.view(), 0),
            plain: &plain,
            plain_view: plain.view(),
            nop,
            plain_rmws: Cell::new(0),
        };
        // Warm up every path (caches, branch predictors, the slot's first generation).
        for p in Path::ALL {
            if !r.run(p, 10_000) {
                fail(&format!("{}: a warm-up round trip failed", p.name()));
            }
        }
        for k in 0..Path::ALL.len() {
            let i = (k + round) % Path::ALL.len();
            let p = Path::ALL[i];
            exp.phase(&format!("round {}/{rounds}, {}", round + 1, p.name()));
            let before = r.lane.stats().bus;
            let rmws_before = r.plain_rmws.get();
            let t = Instant::now();
            if !r.run(p, cli.ops) {
                failed += 1;
            }
            ns[i].push(t.elapsed().as_nanos() as f64 / cli.ops as f64);
            if let Some(b) = bus.get_mut(i) {
                let mut d = r.lane.stats().bus;
                d.sub(&before);
                b.add(&d);
            }
            if p == Path::PlainRmw {
                plain_rmws += r.plain_rmws.get() - rmws_before;
            }
        }
    }
    let measured = cli.ops * rounds as u64;
    let plain_rmw_per_op = plain_rmws as f64 / measured as f64;
    let plain = &ns[2];
    let mut rows = Vec::new();
    for (i, p) in Path::ALL.iter().enumerate() {
        let per_round = &ns[i];
        let pc = Percentiles::of(per_round);
        let extra: Vec<f64> = per_round.iter().zip(plain).map(|(d, c)| d - c).collect();
        let ex = Percentiles::of(&extra);
        let mut row = Record::new()
            .text("path", p.name())
            .int("rounds", per_round.len() as u64)
            .float("ns_per_op", pc.p50, 1)
            .float("ns_min", pc.min, 1)
            .float("ns_max", pc.max, 1)
            .float("extra_ns", ex.p50, 1);
        if let Some(b) = bus.get(i) {
            let b = b.per_op(measured);
            row = row
                .float("host_rmw_per_op", b.host_rmw, 2)
                .float("host_waited_loads_per_op", b.host_waited_loads, 2)
                .float("host_stores_per_op", b.host_stores, 2)
                .float("local_rmw_per_op", b.local_rmw, 2)
                .float("local_loads_per_op", b.local_loads, 2)
                .float("local_stores_per_op", b.local_stores, 2);
        }
        if *p == Path::PlainRmw {
            row = row.float("local_rmw_per_op", plain_rmw_per_op, 2);
        }
        rows.push(row);
    }
    exp.table(
        "lane_work",
        "lane_work: one round trip's own work on one thread, no kernel (ns per op: median over rounds, min, max; \
         extra_ns: minus the plain ring's, per round)",
        &rows,
    );
    exp.say(
        "device-lane: the protocol's reserve/fill/publish/doorbell and claim/dispatch/release/doorbell, as a lane \
         runs them; plain ring: write the SQE, store the tail, read the CQE, store the head. Both write SQEs with \
         RingView::write_sqe and are completed by the same stand-in for the kernel (DetachedRing::complete). \
         plain ring + lane RMWs: the plain ring with the waited lane's device-local RMWs (uncontended fetch_add) \
         where the lane makes them; its extra_ns is what those RMWs cost here.",
    );
    let waited_rmw = bus[0].per_op(measured).local_rmw;
    if (waited_rmw - plain_rmw_per_op).abs() > 0.005 {
        exp.say(&format!(
            "note: the waited path made {waited_rmw:.2} device-local RMWs per operation, but `plain ring + lane \
             RMWs` adds {plain_rmw_per_op:.2}: the protocol's count changed and this path no longer matches it"
        ));
    }
    if failed > 0 {
        eprintln!(
            "FAILED: {failed} rounds had a round trip that failed or returned the wrong result"
        );
        std::process::exit(1);
    }
}
