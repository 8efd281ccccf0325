//! The C++ pump probe (`kernels/src/programs/pump_probe.h`, the `gu_pump_probe` kernel) on the host C++ target
//! against a real pump (host/src/pump): threads as lanes, each dispatched again until its `PumpLaneState` says
//! it finished, as `run_pump` re-dispatches a device's kernel. Each mode is held to what host/tests/pump_vulkan.rs
//! requires of the GLSL probe (`pump_probe.comp`): the C++ view of `PumpLayout`, `QueueHeader`, the region
//! table, `IoSlot` and `PumpRunParams`/`PumpLaneState` equals the Rust `#[repr(C)]` structs; many lanes READ
//! exactly once; the pump's validation errors reach the lane; a stopped pump's requests are withdrawn; WRITE then
//! FENCE. And the io_queue row of the hostile-input table (host/tests/hostile_input.rs: a slot re-published
//! while the pump holds it) on the C++ lane and on the Rust lane (`QueueLane`), with the row's oracle: the same
//! status, result and `protocol_violations` delta from both.

#[path = "../../host/tests/pump_oracles/mod.rs"]
mod pump_oracles;
#[path = "../../host/tests/pump_util/mod.rs"]
mod pump_util;
use pump_oracles::*;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gpu_uring::backend::pump::{status, PumpLaneState, PumpRunParams, PUMP_LANE_FINISHED};
use gpu_uring::pump::queue::*;
use gpu_uring::pump::{Pump, PumpLayout, Request};
use gpu_uring_kernels::{
    pump_probe_dispatch, QueueMemory, PROGRAM_REFUSED, PUMP_LANE_STATE_BYTES, PUMP_RUN_PARAMS_BYTES,
};
use pump_util::*;

/// Loop rounds per dispatch (a GPU backend's `lane_iter_budget` is of this order).
const ITER_BUDGET: u32 = 3000;
/// How long a run may take on a loaded 2-core machine before the test fails (no lane hangs it).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// What a probe run left: every lane's final state and the dispatches each took.
struct ProbeRun {
    lanes: Vec<PumpLaneState>,
}

impl ProbeReport for ProbeRun {
    fn lanes(&self) -> &[PumpLaneState] {
        &self.lanes
    }
    fn sum(&self) -> u64 {
        self.lanes.iter().fold(0u64, |a, s| a.wrapping_add(s.sum))
    }
    fn bytes(&self) -> u64 {
        self.lanes.iter().map(|s| s.bytes).sum()
    }
}

/// The probe on `lanes` C++ lanes (one thread each) with `params` (its `lanes` and `iter_budget` set here): each
/// lane is dispatched until it finishes; a lane still unfinished after [`RUN_TIMEOUT`] fails the test.
fn probe(pump: &Pump, lanes: u32, params: PumpRunParams) -> ProbeRun {
    let layout: PumpLayout = pump.layout();
    let m = QueueMemory {
        arena: pump.arena().raw().0,
        local: pump.arena().local_raw().0,
        layout: (&layout as *const PumpLayout).cast(),
    };
    let params = PumpRunParams {
        lanes,
        iter_budget: ITER_BUDGET,
        dispatch: 0,
        ..params
    };
    // The run buffer, 8-byte aligned: the params, then one zeroed state per lane.
    let mut run = vec![0u64; (PUMP_RUN_PARAMS_BYTES + lanes as usize * PUMP_LANE_STATE_BYTES) / 8];
    bytemuck::cast_slice_mut::<u64, u8>(&mut run)[..PUMP_RUN_PARAMS_BYTES]
        .copy_from_slice(bytemuck::bytes_of(&params));
    let base = run.as_mut_ptr() as usize;
    let state_at = |lane: u32| {
        (base + PUMP_RUN_PARAMS_BYTES + lane as usize * PUMP_LANE_STATE_BYTES) as *const u8
    };
    let end = Instant::now() + RUN_TIMEOUT;
    let unfinished: Vec<u32> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..lanes)
            .map(|lane| {
                s.spawn(move || loop {
                    // SAFETY: `m` is borrowed from `pump` and `run` lives past the scope; the params are not
                    // written while lanes run, and this thread alone touches lane `lane`'s state.
                    unsafe { pump_probe_dispatch(m, base as *mut u8, lane) };
                    // SAFETY: this lane's state, written by the dispatch above on this thread; 8-byte aligned.
                    let st: PumpLaneState = unsafe { std::ptr::read(state_at(lane).cast()) };
                    if st.flags & PUMP_LANE_FINISHED != 0 {
                        return None;
                    }
                    if Instant::now() > end {
                        return Some(lane);
                    }
                })
            })
            .collect();
        hs.into_iter()
            .filter_map(|h| h.join().expect("a lane thread panicked"))
            .collect()
    });
    let states: Vec<PumpLaneState> = bytemuck::cast_slice::<u64, u8>(&run)[PUMP_RUN_PARAMS_BYTES..]
        .chunks_exact(PUMP_LANE_STATE_BYTES)
        .map(bytemuck::pod_read_unaligned)
        .collect();
    assert!(
        unfinished.is_empty(),
        "lanes {unfinished:?} unfinished after {RUN_TIMEOUT:?}: {states:?}; pump {:?}",
        pump.stats()
    );
    ProbeRun { lanes: states }
}

/// pump_vulkan `glsl_io_queue_layout_matches_rust`.
#[test]
fn cpp_io_queue_layout_matches_rust() {
    let LayoutRun {
        pump,
        data: _data,
        slot: s,
        lanes,
    } = io_queue_layout(
        "C++",
        "PumpRunParams",
        |budget| assert_eq!(budget, ITER_BUDGET, "PumpRunParams"),
        |pump, lanes, params| probe(pump, lanes, params).lanes,
    );
    let v = pump.view();
    assert!(lanes[1..]
        .iter()
        .all(|l| l.flags == PUMP_LANE_FINISHED && l.dispatches == 1));
    // The pump serves the C++ lane's NOP once started.
    v.own(9).store(QUEUE_SLOT_FREE, Ordering::Release);
    pump.start().unwrap();
    assert!(
        eventually(Duration::from_secs(30), || v
            .done_seq(s)
            .load(Ordering::Acquire)
            == 1),
        "the NOP was not served"
    );
    let stats = pump.stop().unwrap();
    assert_eq!((stats.claimed, stats.served), (1, 1));
}

/// pump_vulkan `glsl_lanes_read_exactly_once`: far fewer slots than lanes, so allocations would-block and lanes
/// retry.
#[test]
fn cpp_lanes_read_exactly_once() {
    let lanes = 16;
    let (r, n) = reads_exactly_once(lanes, probe);
    eprintln!(
        "{n} READs by {lanes} C++ lanes; dispatches {}, would-block scans {}",
        r.lanes.iter().map(|s| s.dispatches as u64).sum::<u64>(),
        r.lanes.iter().map(|s| s.would_block as u64).sum::<u64>()
    );
}

/// pump_vulkan `glsl_lane_observes_validation_errors`.
#[test]
fn cpp_lane_observes_validation_errors() {
    observes_validation_errors(probe);
}

/// pump_vulkan `glsl_lane_withdraws_from_a_stopped_pump`.
#[test]
fn cpp_lane_withdraws_from_a_stopped_pump() {
    withdraws_from_a_stopped_pump(probe);
}

/// pump_vulkan `glsl_lanes_write_then_fence`.
#[test]
fn cpp_lanes_write_then_fence() {
    writes_then_fences(probe);
}

/// Device code checks what `run_pump` checks for the GLSL: a region too small for the lanes, a chunk that is
/// not a positive multiple of 4, or no such region, and the lane finishes at once, refused, touching nothing.
#[test]
fn cpp_probe_refuses_parameters_outside_the_region() {
    let stats = probe_refuses_parameters_outside_the_region(|pump, lanes, params, what| {
        let r = probe(pump, lanes, params);
        let last = r.lanes.last().unwrap();
        assert_eq!(
            (last.last_status, last.failed, last.done, last.dispatches),
            (PROGRAM_REFUSED, 1, 0, 1),
            "{what}: {last:?}"
        );
    });
    assert_eq!(
        stats.claimed, 1,
        "only the one lane that fits published: {stats:?}"
    );
}

// ---- the hostile-input table's io_queue row ------------------------------------------------------------------

/// Bytes the io_queue row reads (host/tests/hostile_input.rs `PUMP_CHUNK`).
const PUMP_CHUNK: u32 = 64;

/// What the row produced (host/tests/hostile_input.rs `Outcome`): the lane's status, the result it waited for,
/// the pump's `protocol_violations` delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outcome {
    status: u32,
    res: i32,
    delta: u64,
}

/// Who runs the row's lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lanes {
    /// The Rust `QueueLane` (the CPU reference device's lane side).
    Rust,
    /// The C++ pump probe, mode 5.
    Cpp,
}

/// The io_queue row, as host/tests/hostile_input.rs `republished_pump_slot` drives it: one lane publishes a
/// READ of an empty pipe, waits until the host says the pump holds it, and publishes the same slot again (the
/// next sequence, the same READ); once the pump counts the violation the host fills the pipe with two chunks:
/// the held READ completes, then the pump serves the re-publication once, and the lane's wait for its latest
/// sequence returns it.
fn republished_pump_slot(who: Lanes) -> Outcome {
    let (pr, pw) = pipe();
    let pump = held_slot_pump(&pr);
    let before = pump.stats().protocol_violations;
    let (status, res) = std::thread::scope(|s| {
        // The host's part: tell the lane once the pump holds its READ (a word in the region, which the lane
        // polls; the host is its only writer), then fill the pipe once the pump has counted the second
        // publication (or give up after a bound, so a lane that never attacks still finishes).
        let pump = &pump;
        s.spawn(move || hold_then_fill(pump, PUMP_CHUNK, before, Duration::from_secs(20), pw));
        match who {
            Lanes::Rust => {
                let r = gpu_uring::backend::cpu::run_queue_lanes(pump, 1, |lane| {
                    let v = lane.view();
                    let req = Request::read(0, 0, 0, 0, PUMP_CHUNK);
                    let slot = lane.alloc(100).unwrap();
                    lane.publish(slot, &req);
                    let held_word = v.region(0).unwrap().offset + PUMP_CHUNK;
                    assert!(eventually(Duration::from_secs(20), || {
                        v.u32_at(held_word).load(Ordering::Acquire) != 0
                    }));
                    let own = v.own(slot).load(Ordering::Relaxed);
                    v.own(slot).store(
                        (own & !gpu_uring::abi::QUEUE_SLOT_STATE_MASK) | QUEUE_SLOT_ALLOCATED,
                        Ordering::Relaxed,
                    );
                    lane.publish(slot, &req);
                    let c = lane.wait_until(slot, deadline());
                    lane.free(slot);
                    c
                })
                .expect("lanes start");
                match r.into_iter().next() {
                    Some(Ok(c)) => (status::READY, c.result),
                    other => panic!("the Rust lane's wait failed: {other:?}"),
                }
            }
            Lanes::Cpp => {
                let params = PumpRunParams {
                    file: 0,
                    region: 0,
                    chunk: PUMP_CHUNK,
                    arg0: 5,
                    ..Default::default()
                };
                let r = probe(pump, 1, params);
                assert_eq!(r.lanes[0].issued, 1, "the C++ lane re-published");
                (r.lanes[0].last_status, r.lanes[0].last_result)
            }
        }
    });
    let delta = pump.stats().protocol_violations - before;
    pump.stop().unwrap();
    Outcome { status, res, delta }
}

/// The io_queue row of the hostile-input table on the C++ lane and on the Rust lane: both meet the row
/// (status READY, result `PUMP_CHUNK`, one protocol violation counted) and agree.
#[test]
fn hostile_io_queue_row_matches_the_rust_lane() {
    let want = Outcome {
        status: status::READY,
        res: PUMP_CHUNK as i32,
        delta: 1,
    };
    let rust = republished_pump_slot(Lanes::Rust);
    let cpp = republished_pump_slot(Lanes::Cpp);
    eprintln!("io_queue row: Rust {rust:?}, C++ {cpp:?}");
    assert_eq!(rust, want, "the Rust lane meets the row");
    assert_eq!(cpp, rust, "the C++ lane as the Rust lane");
}
