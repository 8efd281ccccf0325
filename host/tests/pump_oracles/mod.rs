//! Oracles shared by the pump-probe tests: one check, run against each way of running the probe program
//! (the Vulkan device in pump_vulkan.rs, the C++ lanes in kernels/tests/pump_probe.rs, the mock CUDA device in
//! cuda_mock/pump.rs).
#![allow(dead_code)]

use std::sync::atomic::Ordering;

use std::os::unix::fs::FileExt;

use gpu_uring::backend::checksum;
use gpu_uring::backend::pump::{
    status, PumpLaneState, PumpRunParams, PumpRunReport, PUMP_LANE_FINISHED,
};
use gpu_uring::pump::queue::*;
use gpu_uring::pump::{Pump, PumpConfig, PumpFile, PumpStats};

use crate::pump_util::{pattern_file, read_at};

/// What [`io_queue_layout`] leaves for the caller's own checks: the pump (not started), the file it reads,
/// the slot the probe lane published, and every lane's final state.
pub struct LayoutRun {
    pub pump: Pump,
    pub data: std::fs::File,
    pub slot: u32,
    pub lanes: Vec<PumpLaneState>,
}

/// A probe run's outcome as the oracles read it.
pub trait ProbeReport {
    /// Every lane's final state.
    fn lanes(&self) -> &[PumpLaneState];
    /// Sum of the lanes' checksums (wrapping).
    fn sum(&self) -> u64;
    /// Bytes the lanes checksummed.
    fn bytes(&self) -> u64;
}

impl ProbeReport for PumpRunReport {
    fn lanes(&self) -> &[PumpLaneState] {
        &self.lanes
    }
    fn sum(&self) -> u64 {
        PumpRunReport::sum(self)
    }
    fn bytes(&self) -> u64 {
        PumpRunReport::bytes(self)
    }
}

fn words(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
        .collect()
}

/// The probe's mode 0 on 3 lanes against a pump that is not started: the lane copies the pump layout, the
/// queue header, the region table, a known slot and the run parameters into region 1, fills and publishes a
/// NOP in the first free slot from arg2, and leaves a known lane state; each is checked against the Rust
/// structs. `who` names the probe's source language in messages, `params_name` its run-parameter struct;
/// `iter_budget` checks the parameters' iteration budget as the runner sets it; `run` runs the probe.
pub fn io_queue_layout(
    who: &str,
    params_name: &str,
    iter_budget: impl FnOnce(u32),
    run: impl FnOnce(&Pump, u32, PumpRunParams) -> Vec<PumpLaneState>,
) -> LayoutRun {
    let data = pattern_file(8192);
    // Not started: the NOP the probe publishes stays PUBLISHED for the host to inspect.
    let pump = Pump::new(PumpConfig {
        slots: 40,
        regions: vec![8192, 4096],
        files: vec![PumpFile::reader(&data).unwrap()],
        ..Default::default()
    })
    .unwrap();
    let v = pump.view();
    // A slot with a known value in every field, which no lane allocates (its device-local word says ALLOCATED).
    v.own(9).store(QUEUE_SLOT_ALLOCATED, Ordering::Release);
    let known = IoSlot {
        done_seq: 0x0a0b_0c0d,
        op: 0x0102_0304,
        file: 0x0506_0708,
        buf: 0x090a_0b0c,
        file_offset: 0x1112_1314_1516_1718,
        buf_offset: 0x2122_2324_2526_2728,
        len: 0x3132_3334,
        owner: 0x3536_3738,
        tag: 0x4142_4344_4546_4748,
        result: -0x5152_5354,
        error: 0x5556_5758,
        reserved: [0x6162_6364, 0x6566_6768],
    };
    let w = words(bytemuck::bytes_of(&known));
    for (i, x) in w.iter().enumerate() {
        v.slot32(9, 4 * i as u32).store(*x, Ordering::Relaxed);
    }
    let params = PumpRunParams {
        program: 77,
        file: 0,
        region: 1,
        chunk: 0x1234,
        count: 0x5678,
        total: 0x0000_0009_8765_4321,
        arg0: 0,
        arg1: 9,
        arg2: 17,
        arg3: 0xdead_beef,
        ..Default::default()
    };
    let lanes = run(&pump, 3, params);
    let mut out = vec![0u8; 56 * 4];
    v.read_region(1, 0, &mut out);
    let out = words(&out);
    let layout = pump.layout();
    assert_eq!(
        &out[0..16],
        &words(bytemuck::bytes_of(&layout))[..],
        "PumpLayout"
    );
    assert_eq!(
        &out[16..22],
        &[QUEUE_MAGIC, QUEUE_VERSION, 40, PUMP_NOT_STARTED, 2, 1],
        "QueueHeader"
    );
    let r0 = v.region(0).unwrap();
    assert_eq!(&out[22..24], &[r0.offset, r0.size], "region table");
    assert_eq!(
        &out[24..40],
        &w[..],
        "IoSlot fields read through the {who} offsets"
    );
    let p = &out[40..56];
    assert_eq!(
        (p[0], p[1], p[3], p[4], p[5], p[6], p[7]),
        (77, 3, 0, 0, 1, 0x1234, 0x5678),
        "{params_name}"
    );
    iter_budget(p[2]);
    assert_eq!(
        (p[8], p[9], p[10], p[11], p[12], p[13]),
        (0x8765_4321, 9, 0, 9, 17, 0xdead_beef)
    );
    // The slot the {who} lane filled and published, as the Rust struct sees it.
    let s = lanes[0].slot0;
    assert_eq!(s, 17, "the scan starts at arg2 and slot 17 was free");
    assert_eq!(
        v.snapshot(s),
        IoSlot {
            done_seq: 0,
            op: OP_NOP,
            file: 3,
            buf: 5,
            file_offset: 0x1122_3344_5566_7788,
            buf_offset: 0x99aa_bbcc_ddee_ff00,
            len: 7,
            owner: 0,
            tag: 0x0123_4567_89ab_cdef,
            result: 0,
            error: 0,
            reserved: [0, 0],
        }
    );
    // Published with sequence 1 (host-shared), recorded in the lane's device-local word (copied back where the
    // device keeps it apart).
    assert_eq!(v.req_seq(s).load(Ordering::Acquire), 1);
    assert_eq!(
        v.own(s).load(Ordering::Acquire),
        (1 << QUEUE_SEQ_SHIFT) | QUEUE_SLOT_PUBLISHED
    );
    assert_eq!(v.own(9).load(Ordering::Acquire), QUEUE_SLOT_ALLOCATED);
    // The lane state (PumpLaneState, GqLaneState on GLSL) field for field.
    let st = lanes[0];
    assert_eq!(
        PumpLaneState {
            dispatches: 0,
            waits: 0,
            iters: 0,
            ..st
        },
        PumpLaneState {
            flags: PUMP_LANE_FINISHED,
            phase: 2,
            seq: 3,
            done: 4,
            failed: 5,
            issued: 6,
            consumed: 7,
            next_alloc: 8,
            slot0: 17,
            slot1: 10,
            hpos: 11,
            last_status: 26,
            last_error: 12,
            last_result: -13,
            dispatches: 0,
            waits: 0,
            iters: 0,
            would_block: 17,
            reserved0: 18,
            reserved1: 19,
            hash: 0x1111_2222_3333_4444,
            sum: 0x5555_6666_7777_8888,
            bytes: 0x9999_0000_aaaa_0000,
            last_tag: 0xbbbb_cccc_dddd_eeee,
            reserved2: [22, 23, 24, 25],
        }
    );
    assert_eq!(st.dispatches, 1);
    LayoutRun {
        pump,
        data,
        slot: s,
        lanes,
    }
}

/// The probe's mode 1 on `lanes` lanes, 6 READs of 64 bytes each from a pattern file, with far fewer slots (6)
/// than lanes, so allocations would-block and lanes retry: every lane completes its count without failures,
/// the lanes' checksum equals the host's, the pump serves each READ once and every slot ends free. Returns the
/// run and the number of READs.
pub fn reads_exactly_once<R: ProbeReport>(
    lanes: u32,
    run: impl FnOnce(&Pump, u32, PumpRunParams) -> R,
) -> (R, u64) {
    let (count, chunk) = (6u32, 64u32);
    let total = (lanes * count * chunk) as u64;
    let data = pattern_file(total);
    let pump = Pump::spawn(crate::pump_util::reader_config(
        &data,
        6,
        (lanes * chunk) as usize,
    ))
    .unwrap();
    let params = PumpRunParams {
        file: 0,
        region: 0,
        chunk,
        count,
        arg0: 1,
        ..Default::default()
    };
    let r = run(&pump, lanes, params);
    let stats = pump.stop().unwrap();
    let mut want = 0u64;
    let mut buf = vec![0u8; chunk as usize];
    for c in 0..(lanes * count) as u64 {
        data.read_exact_at(&mut buf, c * chunk as u64).unwrap();
        want = want.wrapping_add(checksum(c * chunk as u64, &buf));
    }
    for (l, s) in r.lanes().iter().enumerate() {
        assert_eq!(
            (s.done, s.failed, s.seq),
            (count, 0, count),
            "lane {l}: {s:?}"
        );
    }
    assert_eq!(r.bytes(), total);
    assert_eq!(r.sum(), want, "device checksum vs host");
    let n = (lanes * count) as u64;
    assert_eq!(stats.claimed, n, "{stats:?}");
    assert_eq!(stats.served, n, "{stats:?}");
    assert_eq!(stats.failed_total(), 0, "{stats:?}");
    assert_eq!(stats.stale_bits, 0, "{stats:?}");
    assert_eq!(stats.bytes_read, total, "{stats:?}");
    assert!(pump.arena().guards_intact());
    for i in 0..6 {
        assert_eq!(pump.view().slot_state(i), Some(QueueSlotState::Free));
    }
    (r, n)
}

/// The probe's mode 2 on 10 lanes: lane `l` publishes a request the pump must refuse with the `l % 5`-th of
/// ERR_BAD_BUFFER, ERR_BAD_FILE, ERR_RESERVED, ERR_BAD_LENGTH, ERR_BUFFER_RANGE; each lane's wait returns READY
/// with that error and its tag, the pump counts each code twice and serves nothing.
pub fn observes_validation_errors<R: ProbeReport>(
    run: impl FnOnce(&Pump, u32, PumpRunParams) -> R,
) {
    let data = pattern_file(4096);
    let pump = Pump::spawn(crate::pump_util::probe_config(&data)).unwrap();
    let params = PumpRunParams {
        file: 0,
        region: 0,
        arg0: 2,
        ..Default::default()
    };
    let r = run(&pump, 10, params);
    let stats = pump.stop().unwrap();
    let expect = [
        ERR_BAD_BUFFER,
        ERR_BAD_FILE,
        ERR_RESERVED,
        ERR_BAD_LENGTH,
        ERR_BUFFER_RANGE,
    ];
    for (l, s) in r.lanes().iter().enumerate() {
        assert_eq!(
            (s.last_status, s.last_error, s.last_result, s.done, s.failed),
            (status::READY, expect[l % 5], 0, 0, 1),
            "lane {l}: {s:?}"
        );
        assert_eq!(s.last_tag, l as u64);
    }
    for code in expect {
        assert_eq!(stats.failed[code as usize], 2, "{stats:?}");
    }
    assert_eq!((stats.served, stats.bytes_read), (0, 0));
    assert!(pump.arena().guards_intact());
}

/// The stream program on 8 lanes over a 200 003-byte pattern file in 8 KiB chunks, 16 slots: no lane fails,
/// the lanes checksum every byte and their checksum equals the host's, the pump serves each chunk once.
pub fn stream_matches_host_checksum(run: impl FnOnce(&Pump, u32, PumpRunParams) -> PumpRunReport) {
    // An odd size: a partial last chunk whose length is not a multiple of 4.
    let total = 200_003u64;
    let (lanes, chunk) = (8u32, 8192u32);
    let data = pattern_file(total);
    let pump = Pump::spawn(crate::pump_util::reader_config(
        &data,
        2 * lanes,
        (2 * lanes * chunk) as usize,
    ))
    .unwrap();
    let params = PumpRunParams {
        file: 0,
        region: 0,
        chunk,
        total,
        ..Default::default()
    };
    let r = run(&pump, lanes, params);
    let stats = pump.stop().unwrap();
    let mut want = 0u64;
    let mut off = 0u64;
    while off < total {
        let n = (total - off).min(chunk as u64) as usize;
        want = want.wrapping_add(checksum(off, &read_at(&data, off, n)));
        off += n as u64;
    }
    assert_eq!(r.failed(), 0, "{:?}", r.lanes);
    assert_eq!(r.bytes(), total);
    assert_eq!(r.sum(), want, "device checksum vs host");
    assert_eq!(stats.served, total.div_ceil(chunk as u64), "{stats:?}");
    assert!(pump.arena().guards_intact());
}

/// The probe's mode 4 on 16 lanes, 256-byte chunks, 8 slots: each lane WRITEs its chunk (word `k` of lane `l`
/// is `l << 16 | k`) to a file, then FENCEs; each lane completes both, the pump counts one fence a lane and
/// every byte written, and the file holds each lane's words.
pub fn writes_then_fences<R: ProbeReport>(run: impl FnOnce(&Pump, u32, PumpRunParams) -> R) {
    let (lanes, chunk) = (16u32, 256u32);
    let out = tempfile::tempfile().unwrap();
    let pump = Pump::spawn(PumpConfig {
        slots: 8,
        regions: vec![(lanes * chunk) as usize],
        files: vec![PumpFile::writer(&out, (lanes * chunk) as u64)],
        ..Default::default()
    })
    .unwrap();
    let params = PumpRunParams {
        file: 0,
        region: 0,
        chunk,
        arg0: 4,
        ..Default::default()
    };
    let r = run(&pump, lanes, params);
    let stats = pump.stop().unwrap();
    for (l, s) in r.lanes().iter().enumerate() {
        assert_eq!(
            (s.done, s.failed, s.bytes, s.last_tag),
            (2, 0, chunk as u64, l as u64 | 1 << 32),
            "lane {l}: {s:?}"
        );
    }
    assert_eq!(stats.fences, lanes as u64, "{stats:?}");
    assert_eq!(stats.bytes_written, (lanes * chunk) as u64, "{stats:?}");
    let got = words(&read_at(&out, 0, (lanes * chunk) as usize));
    for (i, w) in got.iter().enumerate() {
        let (lane, k) = (i as u32 / (chunk / 4), i as u32 % (chunk / 4));
        assert_eq!(*w, lane << 16 | k, "word {i}");
    }
}

/// The probe's mode 3 on 8 lanes against a stopped pump: each lane's request is withdrawn — its wait returns
/// `PUMP_STOPPED`, the lane counts it failed and nothing done — and every slot ends free.
pub fn withdraws_from_a_stopped_pump<R: ProbeReport>(
    run: impl FnOnce(&Pump, u32, PumpRunParams) -> R,
) {
    let data = pattern_file(4096);
    let pump = Pump::new(crate::pump_util::probe_config(&data)).unwrap();
    pump.stop().unwrap();
    assert_eq!(
        pump.view().pump_state().load(Ordering::Acquire),
        PUMP_STOPPED
    );
    let params = PumpRunParams {
        file: 0,
        region: 0,
        arg0: 3,
        ..Default::default()
    };
    let r = run(&pump, 8, params);
    for (l, s) in r.lanes().iter().enumerate() {
        assert_eq!(
            (s.last_status, s.done, s.failed),
            (status::PUMP_STOPPED, 0, 1),
            "lane {l}: {s:?}"
        );
    }
    for i in 0..8 {
        assert_eq!(pump.view().slot_state(i), Some(QueueSlotState::Free));
    }
}

/// Probe parameters with which a lane would touch memory outside its buffer region, on a pump with one
/// 4096-byte region: (lanes, chunk, region, mode) — a region too small for the lanes' chunks (mode 1), no such
/// region, a chunk that is not a multiple of 4 (mode 4), a zero chunk and a chunk without room for its length
/// word (mode 5). `refused` runs each and asserts that it was refused (how depends on who refuses: `run_pump`
/// on the host, or the lane itself); `what` names the case in messages. Returns the pump's statistics (the
/// requests lanes published before a lane refused).
pub fn probe_refuses_parameters_outside_the_region(
    mut refused: impl FnMut(&Pump, u32, PumpRunParams, &str),
) -> PumpStats {
    let data = pattern_file(4096);
    let pump = Pump::spawn(crate::pump_util::probe_config(&data)).unwrap();
    for (lanes, chunk, region, mode) in [
        (2u32, 4096u32, 0u32, 1u32),
        (1, 2048, 1, 1),
        (1, 6, 0, 4),
        (1, 0, 0, 5),
        (1, 4096, 0, 5),
    ] {
        let params = PumpRunParams {
            file: 0,
            region,
            chunk,
            count: 1,
            arg0: mode,
            ..Default::default()
        };
        let what = format!("{lanes} lanes, chunk {chunk}, region {region}, mode {mode}");
        refused(&pump, lanes, params, &what);
    }
    let stats = pump.stop().unwrap();
    assert!(pump.arena().guards_intact());
    stats
}
