//! The C++ lane side of the io_queue (`gpu_uring/queue.h`) and the megakernel stream kernel's body
//! (`programs::stream_lane`) on the host C++ target, against a real pump (host/src/pump): threads as lanes,
//! held to what host/tests/pump_vulkan.rs requires of the GLSL stream kernel — the checksum equal to the host's
//! `backend::checksum` of the file, every chunk served once, the arena's guard bytes intact — and to the
//! withdrawal rule of §Q3.3 on a stopped pump.

#[path = "../../host/tests/pump_util/mod.rs"]
mod pump_util;

use std::time::Duration;

use gpu_uring::abi::QueueSlotState;
use gpu_uring::backend::checksum;
use gpu_uring::pump::{Pump, PumpConfig, PumpFile, PumpLayout};
use gpu_uring_kernels::{
    group_read_lane, run_in_teams, stream_lane, take_rmws, QueueMemory, Report, PROGRAM_REFUSED,
};
use pump_util::{pattern_file, read_at};

/// Polls a lane's waits may take without progress: far more than a healthy run needs, finite.
const BUDGET: u32 = 1 << 22;
const QUEUE_STATUS_READY: u32 = 0;
const QUEUE_STATUS_PUMP_STOPPED: u32 = 3;

fn memory(pump: &Pump, layout: &PumpLayout) -> QueueMemory {
    QueueMemory {
        arena: pump.arena().raw().0,
        local: pump.arena().local_raw().0,
        layout: (layout as *const PumpLayout).cast(),
    }
}

/// The stream kernel on `lanes` C++ lanes: each lane's (status, report).
fn stream(pump: &Pump, lanes: u32, chunk: u32, total: u64) -> Vec<(u32, Report)> {
    let layout = pump.layout();
    let m = memory(pump, &layout);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..lanes)
            .map(|lane| {
                // SAFETY: `m` is borrowed from `pump`, which outlives the scoped threads; one thread per lane.
                s.spawn(move || unsafe { stream_lane(m, lane, lanes, 0, 0, chunk, total, BUDGET) })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("a lane thread panicked"))
            .collect()
    })
}

/// pump_vulkan `glsl_stream_kernel_matches_the_host_checksum` on the C++ lanes: an odd size (a partial last
/// chunk whose length is not a multiple of 4), two slots per lane; then a queue with fewer slots than READs in
/// flight would need, so allocations fail and are retried.
#[test]
fn stream_kernel_matches_the_host_checksum() {
    let total = 200_003u64;
    let (lanes, chunk) = (8u32, 8192u32);
    let data = pattern_file(total);
    let mut want = 0u64;
    let mut off = 0u64;
    while off < total {
        let n = (total - off).min(chunk as u64) as usize;
        want = want.wrapping_add(checksum(off, &read_at(&data, off, n)));
        off += n as u64;
    }
    for slots in [2 * lanes, 4] {
        let pump = Pump::spawn(PumpConfig {
            slots,
            regions: vec![(2 * lanes * chunk) as usize],
            files: vec![PumpFile::reader(&data).expect("the pump file")],
            stop_timeout: Duration::from_secs(30),
            ..Default::default()
        })
        .expect("a pump");
        let out = stream(&pump, lanes, chunk, total);
        let stats = pump.stop().expect("the pump stops");
        let failed: u64 = out.iter().map(|(_, r)| r.failed).sum();
        let bytes: u64 = out.iter().map(|(_, r)| r.bytes).sum();
        let sum = out
            .iter()
            .fold(0u64, |a, (_, r)| a.wrapping_add(r.checksum));
        assert!(
            out.iter().all(|(st, _)| *st == QUEUE_STATUS_READY),
            "{slots} slots: {out:?}"
        );
        assert_eq!(failed, 0, "{slots} slots: {out:?}");
        assert_eq!(bytes, total, "{slots} slots");
        assert_eq!(sum, want, "{slots} slots: device checksum vs host");
        assert_eq!(
            stats.served,
            total.div_ceil(chunk as u64),
            "{slots} slots: every chunk served once: {stats:?}"
        );
        assert!(pump.arena().guards_intact());
        for i in 0..slots {
            assert_eq!(
                pump.view().slot_state(i),
                Some(QueueSlotState::Free),
                "slot {i} freed"
            );
        }
    }
}

/// pump_vulkan `glsl_lane_withdraws_from_a_stopped_pump`: a pump that stopped before the lanes published
/// never serves them; each lane withdraws every READ (PUMP_STOPPED), counts it failed and frees its slot.
#[test]
fn lanes_withdraw_from_a_stopped_pump() {
    let (lanes, chunk) = (4u32, 1024u32);
    let data = pattern_file(4 * lanes as u64 * chunk as u64);
    let pump = Pump::new(PumpConfig {
        slots: 8,
        regions: vec![(2 * lanes * chunk) as usize],
        files: vec![PumpFile::reader(&data).expect("the pump file")],
        ..Default::default()
    })
    .expect("a pump");
    pump.stop().expect("the pump stops");
    let out = stream(&pump, lanes, chunk, 4 * lanes as u64 * chunk as u64);
    for (l, (st, rep)) in out.iter().enumerate() {
        assert_eq!(*st, QUEUE_STATUS_PUMP_STOPPED, "lane {l}");
        assert_eq!((rep.done, rep.failed, rep.bytes), (0, 4, 0), "lane {l}");
    }
    for i in 0..8 {
        assert_eq!(pump.view().slot_state(i), Some(QueueSlotState::Free));
    }
}

/// The exactly-once read program (`group_read_lane`) on `lanes` C++ lanes in subgroups of `team` against a pump
/// with `slots` slots: every lane's (status, report, device-local RMWs it made).
fn group_read(
    slots: u32,
    lanes: u32,
    team: u32,
    count: u32,
    chunk: u32,
) -> (Vec<(u32, Report, u64)>, gpu_uring::pump::PumpStats, u64) {
    let total = (lanes * count * chunk) as u64;
    let data = pattern_file(total);
    let want = (0..(lanes * count) as u64).fold(0u64, |a, c| {
        let off = c * chunk as u64;
        a.wrapping_add(checksum(off, &read_at(&data, off, chunk as usize)))
    });
    let pump = Pump::spawn(PumpConfig {
        slots,
        regions: vec![(lanes * chunk) as usize],
        files: vec![PumpFile::reader(&data).expect("the pump file")],
        stop_timeout: Duration::from_secs(30),
        ..Default::default()
    })
    .expect("a pump");
    let layout = pump.layout();
    let m = memory(&pump, &layout);
    let out = run_in_teams(lanes, team, |lane| {
        take_rmws();
        // SAFETY: `m` is borrowed from `pump`, which outlives the lane threads; one thread per lane, and the
        // members of a team make the call together.
        let (st, rep) = unsafe { group_read_lane(m, lane, 0, 0, chunk, count, BUDGET) };
        (st, rep, take_rmws())
    });
    let stats = pump.stop().expect("the pump stops");
    assert!(pump.arena().guards_intact());
    for i in 0..slots {
        assert_eq!(
            pump.view().slot_state(i),
            Some(QueueSlotState::Free),
            "slot {i} freed"
        );
    }
    (out, stats, want)
}

/// pump_vulkan `glsl_lanes_read_exactly_once`'s checks on the aggregated allocation: 16 lanes, 6 READs each, on
/// 6 slots (allocations would-block and are retried), lane by lane and in subgroups of 4 and 8 — every READ
/// served once, the checksum equal to the host's, every slot freed.
#[test]
fn subgroups_allocate_together_and_read_exactly_once() {
    let (lanes, count, chunk) = (16u32, 6u32, 256u32);
    for team in [1u32, 4, 8] {
        let (out, stats, want) = group_read(6, lanes, team, count, chunk);
        let n = (lanes * count) as u64;
        assert!(
            out.iter()
                .all(|(st, r, _)| *st == QUEUE_STATUS_READY
                    && (r.done, r.failed) == (count as u64, 0)),
            "team {team}: {out:?}"
        );
        let sum = out
            .iter()
            .fold(0u64, |a, (_, r, _)| a.wrapping_add(r.checksum));
        assert_eq!(sum, want, "team {team}: device checksum vs host");
        assert_eq!(
            out.iter().map(|(_, r, _)| r.bytes).sum::<u64>(),
            n * chunk as u64
        );
        assert_eq!(
            (stats.claimed, stats.served, stats.failed_total()),
            (n, n, 0),
            "team {team}: {stats:?}"
        );
    }
}

/// One subgroup never contends with itself: 8 lanes in one subgroup of 8 on 4 slots allocate with exactly one
/// CAS per READ (each pending lane tries a different FREE word), while 8 lanes each on their own also collide
/// (printed, not asserted: it depends on the scheduling).
#[test]
fn a_subgroup_allocates_with_one_cas_per_slot() {
    let (lanes, count, chunk) = (8u32, 50u32, 64u32);
    let (out, _, want) = group_read(4, lanes, lanes, count, chunk);
    let n = (lanes * count) as u64;
    let rmws: u64 = out.iter().map(|(_, _, r)| r).sum();
    let sum = out
        .iter()
        .fold(0u64, |a, (_, r, _)| a.wrapping_add(r.checksum));
    assert_eq!(sum, want);
    assert_eq!(rmws, n, "one allocation CAS per READ in a subgroup of 8");
    let (alone, _, _) = group_read(4, lanes, 1, count, chunk);
    let rmws_alone: u64 = alone.iter().map(|(_, _, r)| r).sum();
    assert!(rmws_alone >= n);
    eprintln!(
        "allocation CASes per READ: subgroup of 8 {:.2}, lane by lane {:.2}",
        rmws as f64 / n as f64,
        rmws_alone as f64 / n as f64
    );
}

/// A lane refused (its part of the region missing) still takes part in its subgroup's collectives: the other
/// lanes finish.
#[test]
fn a_refused_lane_does_not_stall_its_subgroup() {
    let (lanes, count, chunk) = (4u32, 3u32, 64u32);
    let data = pattern_file((lanes * count * chunk) as u64);
    let pump = Pump::spawn(PumpConfig {
        slots: 4,
        // Room for three lanes' chunks: lane 3 is refused.
        regions: vec![(3 * chunk) as usize],
        files: vec![PumpFile::reader(&data).expect("the pump file")],
        ..Default::default()
    })
    .expect("a pump");
    let layout = pump.layout();
    let m = memory(&pump, &layout);
    // SAFETY: as in `group_read`.
    let out = run_in_teams(lanes, lanes, |lane| unsafe {
        group_read_lane(m, lane, 0, 0, chunk, count, BUDGET)
    });
    pump.stop().expect("the pump stops");
    for (l, (st, r)) in out.iter().enumerate() {
        if l == 3 {
            assert_eq!((*st, r.done), (PROGRAM_REFUSED, 0), "lane {l}");
        } else {
            assert_eq!(
                (*st, r.done, r.failed),
                (QUEUE_STATUS_READY, count as u64, 0),
                "lane {l}"
            );
        }
    }
}
