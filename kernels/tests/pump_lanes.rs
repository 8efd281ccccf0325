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
use gpu_uring_kernels::{stream_lane, QueueMemory, Report};
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
