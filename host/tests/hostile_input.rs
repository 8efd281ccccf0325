//! Hostile device code, one table for every backend: each row corrupts a ring the way device code holding the
//! arena could, names ONE expected status and ONE expected counter delta, and runs on the CPU reference
//! device and on Vulkan (lavapipe; with `CI=true` a missing Vulkan device is a failure), and on CUDA and HIP
//! where their device is present (skipped with the reason otherwise, also under `CI=true`). Each must match
//! the row. After every row the ring is dropped: no panic, and the drop ends within a bound. The io_queue row runs
//! each device's own lane side of the pump: the Rust `QueueLane` where lanes are host threads, otherwise the
//! pump probe's mode 5 (`PumpProgram::PROBE`): the GLSL `pump_probe.comp` on Vulkan, the device library's
//! `gu_pump_probe` (kernels/src/programs/pump_probe.h) on CUDA and HIP.
//!
//! Also here: the library-API cases the table stands for, driven through `Lane` directly (the failing
//! skip-success link chain, a forged completion for another lane's slot, a host quiescing while device code
//! rewrites the control words).

mod common;
mod pump_util;

use gpu_uring::backend::Programs;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gpu_uring::backend::cpu::{run_lanes, spawn_lanes};
use gpu_uring::backend::{Device, HostileCase, Program};
use gpu_uring::protocol::shared::*;
use gpu_uring::protocol::DeviceRing;
use gpu_uring::protocol::{CompletionMode, FileRef, Lane, LaneError, DEFAULT_BUDGET};
use gpu_uring::ring::{DeviceAccess, RingConfig, Sqe};
use io_uring::{opcode, squeue::Flags, types};

const TIMEOUT: Duration = Duration::from_secs(30);
/// How long dropping a ring may take: its quiesce gives up after 2 s on a corrupted ring.
const DROP_BOUND: Duration = Duration::from_secs(15);

/// A `LocalControl` counter a row expects to change (read from the device-local host copy after the run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counter {
    ProtocolViolations,
    ForeignCqes,
    FfErrors,
    /// `PumpStats::protocol_violations` of the row's pump.
    PumpProtocolViolations,
}

impl Counter {
    fn read(self, c: &LocalControl) -> u32 {
        match self {
            Counter::ProtocolViolations => c.protocol_violations,
            Counter::ForeignCqes => c.foreign_cqes,
            Counter::FfErrors => c.ff_errors,
            Counter::PumpProtocolViolations => 0,
        }
    }
}

/// What a row does. Extension point: one more kind of row (a re-published pump slot, which drives a
/// `Pump` and its io_queue instead of a ring) adds a variant here and an arm in `run_row` that reports the
/// same [`Outcome`].
#[derive(Debug, Clone, Copy)]
enum Action {
    /// `Program::Hostile` on a fresh confined ring with one lane.
    Ring(HostileCase),
    /// One lane of an io_queue program publishes a READ of an empty pipe, waits until the host says the pump
    /// holds it (in flight), and publishes the same slot again (the next sequence, the same READ); once the
    /// pump counts the violation the host fills the pipe with two chunks: the held READ completes, then the
    /// pump serves the re-publication once, and the lane's wait for its latest sequence returns it.
    RepublishedPumpSlot,
}

/// One row of the table.
struct Row {
    name: &'static str,
    action: Action,
    /// `STATUS_*` of the row's last library call.
    status: u32,
    /// The CQE result the row waited for, where it waits for one.
    res: Option<i32>,
    /// The counter and by how much it must change.
    delta: (Counter, u32),
}

/// Bytes the io_queue row reads.
const PUMP_CHUNK: u32 = 64;

const TABLE: &[Row] = &[
    Row {
        name: "io_queue slot re-published while the pump holds it: counted, served once after the held one",
        action: Action::RepublishedPumpSlot,
        status: gpu_uring::abi::QueueStatus::Ready as u32,
        res: Some(PUMP_CHUNK as i32),
        delta: (Counter::PumpProtocolViolations, 1),
    },
    Row {
        name: "sq_pub rewritten between reserve and publish: the ticket is outside the SQ window",
        action: Action::Ring(HostileCase::SqWindowAtPublish),
        status: STATUS_PROTOCOL_VIOLATION,
        res: None,
        delta: (Counter::ProtocolViolations, 1),
    },
    Row {
        name: "sq_pub rewritten: the reservation sees the published tail 1000 behind",
        action: Action::Ring(HostileCase::SqWindowAtReserve),
        status: STATUS_WOULD_BLOCK,
        res: None,
        delta: (Counter::ProtocolViolations, 1),
    },
    Row {
        name: "cq_pub rewritten: the next claim is outside the CQ window",
        action: Action::Ring(HostileCase::CqWindow),
        status: STATUS_WOULD_BLOCK,
        res: None,
        delta: (Counter::ProtocolViolations, 1),
    },
    Row {
        name: "completion slot one past the lane's last",
        action: Action::Ring(HostileCase::SlotOutOfRange),
        status: STATUS_BAD_SLOT,
        res: None,
        delta: (Counter::ProtocolViolations, 0),
    },
    Row {
        name: "write range whose end wraps u32: a plain WRITE (refused by confinement), never WRITE_FIXED",
        action: Action::Ring(HostileCase::WriteRangeWrapsU32),
        status: STATUS_READY,
        res: Some(-libc::EACCES),
        delta: (Counter::ProtocolViolations, 0),
    },
    Row {
        name: "cq_credits set above the pool",
        action: Action::Ring(HostileCase::CqCreditsWild),
        status: STATUS_WOULD_BLOCK,
        res: None,
        delta: (Counter::ProtocolViolations, 1),
    },
    Row {
        name: "cq_credits set to 0: the ring's lanes starve",
        action: Action::Ring(HostileCase::CqCreditsZero),
        status: STATUS_WOULD_BLOCK,
        res: None,
        delta: (Counter::ProtocolViolations, 0),
    },
    Row {
        name: "cq_claim moved far ahead of the CQ tail",
        action: Action::Ring(HostileCase::CqClaimWild),
        status: STATUS_WOULD_BLOCK,
        res: None,
        delta: (Counter::ProtocolViolations, 1),
    },
    Row {
        name: "sq_reserve moved far ahead of the SQ head",
        action: Action::Ring(HostileCase::SqReserveWild),
        status: STATUS_WOULD_BLOCK,
        res: None,
        delta: (Counter::ProtocolViolations, 1),
    },
    Row {
        name: "stale completion: slot 0's tag with the generation of its finished operation",
        action: Action::Ring(HostileCase::StaleCompletion),
        status: STATUS_READY,
        res: Some(0),
        delta: (Counter::ForeignCqes, 1),
    },
    Row {
        name: "skip-success with IOSQE_IO_LINK refused",
        action: Action::Ring(HostileCase::LinkedSkipSuccess),
        status: STATUS_BAD_FLAGS,
        res: None,
        delta: (Counter::FfErrors, 0),
    },
    Row {
        name: "IOSQE_CQE_SKIP_SUCCESS from the caller on a fire-and-forget op refused",
        action: Action::Ring(HostileCase::CallerSkipSuccess),
        status: STATUS_BAD_FLAGS,
        res: None,
        delta: (Counter::FfErrors, 0),
    },
];

/// What a row produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outcome {
    status: u32,
    res: i32,
    delta: u32,
}

fn null_file() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap()
}

fn confined_ring(lanes: u32, fixed_files: Vec<i32>) -> DeviceRing {
    common::ring(RingConfig {
        lanes,
        sq_entries: 64,
        fixed_files,
        fixed_buffer_bytes: 4096,
        access: DeviceAccess::default(),
        ..Default::default()
    })
}

/// Runs one row; returns its outcome and the ring (to be dropped by the caller, bounded).
fn run_row(dev: &dyn Device, row: &Row, null: &std::fs::File) -> (Outcome, Option<DeviceRing>) {
    match row.action {
        Action::RepublishedPumpSlot => (republished_pump_slot(dev), None),
        Action::Ring(case) => {
            let ring = confined_ring(1, vec![null.as_raw_fd()]);
            let before = ring.view().local_snapshot();
            let rep = dev
                .run(&ring, 1, &Program::Hostile { case }, TIMEOUT)
                .unwrap_or_else(|e| panic!("{}: {e}", row.name));
            let after = ring.view().local_snapshot();
            let lane = rep.lanes[0];
            assert_eq!(lane.done, 1, "{}: the case ran", row.name);
            let c = row.delta.0;
            (
                Outcome {
                    status: lane.checksum as u32,
                    res: lane.bytes as u32 as i32,
                    delta: c.read(&after).wrapping_sub(c.read(&before)),
                },
                Some(ring),
            )
        }
    }
}

/// The io_queue row: see [`Action::RepublishedPumpSlot`].
fn republished_pump_slot(dev: &dyn Device) -> Outcome {
    use gpu_uring::backend::pump::{run_pump, PumpProgram, PumpRunParams};
    use gpu_uring::pump::Request;

    let (pr, pw) = pump_util::pipe();
    let pump = pump_util::held_slot_pump(&pr);
    let before = pump.stats().protocol_violations;
    let (status, res) = std::thread::scope(|s| {
        // The host's part: tell the lane once the pump holds its READ (a word in the region, which the lane
        // polls; the host is its only writer), then fill the pipe once the pump has counted the second
        // publication (or give up after a bound, so a device that never attacks still finishes).
        let pump = &pump;
        s.spawn(move || {
            pump_util::hold_then_fill(pump, PUMP_CHUNK, before, Duration::from_secs(20), pw)
        });
        if dev.info().caps.lanes_are_host_threads {
            let r = gpu_uring::backend::cpu::run_queue_lanes(pump, 1, |lane| {
                let v = lane.view();
                let req = Request::read(0, 0, 0, 0, PUMP_CHUNK);
                let slot = lane.alloc(100).unwrap();
                lane.publish(slot, &req);
                // A bounded wait on the host (not on a lane): it says when the pump holds the READ.
                let held_word = v.region(0).unwrap().offset + PUMP_CHUNK;
                assert!(pump_util::eventually(Duration::from_secs(20), || {
                    v.u32_at(held_word).load(Ordering::Acquire) != 0
                }));
                // The attack, as device code can write it: the device-local word back to ALLOCATED, then a
                // normal publication of the same READ — the next sequence over the one the pump holds.
                let own = v.own(slot).load(Ordering::Relaxed);
                v.own(slot).store(
                    (own & !gpu_uring::abi::QUEUE_SLOT_STATE_MASK)
                        | gpu_uring::abi::QUEUE_SLOT_ALLOCATED,
                    Ordering::Relaxed,
                );
                lane.publish(slot, &req);
                let c = lane.wait_until(slot, pump_util::deadline());
                lane.free(slot);
                c
            })
            .expect("lanes start");
            match r.into_iter().next() {
                Some(Ok(c)) => (gpu_uring::abi::QueueStatus::Ready as u32, c.result),
                other => panic!("the CPU lane's wait failed: {other:?}"),
            }
        } else {
            let params = PumpRunParams {
                file: 0,
                region: 0,
                chunk: PUMP_CHUNK,
                arg0: 5,
                ..Default::default()
            };
            let r = run_pump(dev, pump, 1, PumpProgram::PROBE, params, TIMEOUT).unwrap();
            (r.lanes[0].last_status, r.lanes[0].last_result)
        }
    });
    let delta = pump.stats().protocol_violations - before;
    pump.stop().unwrap();
    Outcome {
        status,
        res,
        delta: delta as u32,
    }
}

/// Drops every ring on a thread of its own (they quiesce concurrently) and fails unless all are gone within
/// `DROP_BOUND`.
fn drop_bounded(rings: Vec<(&'static str, DeviceRing)>) {
    let (tx, rx) = mpsc::channel();
    let n = rings.len();
    for (name, ring) in rings {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            drop(ring);
            let _ = tx.send((name, t.elapsed()));
        });
    }
    let deadline = Instant::now() + DROP_BOUND;
    for _ in 0..n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((name, took)) => eprintln!("dropped after {name:?} in {took:?}"),
            Err(e) => panic!("a ring did not drop within {DROP_BOUND:?} ({e})"),
        }
    }
}

fn table(dev: &dyn Device) {
    let null = null_file();
    let backend = dev.info().backend;
    let mut rings = Vec::new();
    let mut bad = Vec::new();
    for row in TABLE {
        let (got, ring) = run_row(dev, row, &null);
        rings.extend(ring.map(|r| (row.name, r)));
        let want = Outcome {
            status: row.status,
            res: row.res.unwrap_or(got.res),
            delta: row.delta.1,
        };
        eprintln!("{backend}: {:70} {got:?}", row.name);
        if got != want {
            bad.push(format!(
                "{}: want {want:?} ({:?}), got {got:?}",
                row.name, row.delta.0
            ));
        }
    }
    drop_bounded(rings);
    assert!(
        bad.is_empty(),
        "{backend}: rows that differ:\n{}",
        bad.join("\n")
    );
}

#[test]
fn hostile_table_cpu() {
    let (dev, _) = gpu_uring::backend::open_with(
        &gpu_uring::backend::DeviceSelector::Cpu,
        &gpu_uring::backend::DeviceConfig {
            wait_budget: Some(4000),
            ..Default::default()
        },
    )
    .unwrap();
    table(&*dev);
}

#[test]
fn hostile_table_vulkan() {
    let dev = match gpu_uring::backend::open_with(
        &gpu_uring::backend::DeviceSelector::Vulkan(None),
        &gpu_uring::backend::DeviceConfig::from_env(),
    ) {
        Ok((d, _)) => d,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI needs a Vulkan device (lavapipe: mesa-vulkan-drivers): {e}");
            }
            eprintln!("SKIP vulkan: {e}");
            return;
        }
    };
    table(&*dev);
}

/// The table on a GPU backend CI does not have: skipped with the reason when its device is absent (no
/// driver, no device, or the cargo feature off), also under `CI=true`.
fn hostile_table_gpu(sel: gpu_uring::backend::DeviceSelector) {
    match gpu_uring::backend::open_with(&sel, &gpu_uring::backend::DeviceConfig::from_env()) {
        Ok((dev, _)) => table(&*dev),
        Err(e) => eprintln!("SKIP {sel}: {e}"),
    }
}

#[test]
fn hostile_table_cuda() {
    hostile_table_gpu(gpu_uring::backend::DeviceSelector::Cuda);
}

#[test]
fn hostile_table_hip() {
    hostile_table_gpu(gpu_uring::backend::DeviceSelector::Hip);
}

// ---- the library API cases, driven through Lane -----------------------------------------------------------

/// The failing skip-success link chain: a member with `IOSQE_CQE_SKIP_SUCCESS` that fails makes the kernel
/// cancel the rest of its chain without CQEs, so the credited operations after it would never return their
/// credits. The lane refuses it (at `submit` before reserving, at `commit` by publishing a NOP) and every
/// credit is back afterwards.
#[test]
fn linked_skip_success_is_refused_and_credits_come_back() {
    let ring = confined_ring(1, vec![]);
    let l = ring.layout();
    let view = ring.view();
    run_lanes(&ring, 1, |lane| {
        // A head that fails: WRITE_FIXED to a fixed file that does not exist.
        let failing = || {
            let mut s = Sqe::from_entry(
                &opcode::WriteFixed::new(
                    types::Fixed(7),
                    view.host_addr(l.fixed) as *const u8,
                    8,
                    l.fixed_buf_index as u16,
                )
                .build(),
            );
            s.flags |= Flags::IO_LINK.bits();
            s
        };
        for _ in 0..8 {
            let r = lane.reserve(DEFAULT_BUDGET).unwrap();
            let e = lane
                .commit(r, failing(), CompletionMode::SkipSuccess)
                .unwrap_err();
            assert!(matches!(e, LaneError::BadFlags { .. }), "{e}");
            assert!(e.to_string().contains("IOSQE_IO_LINK"), "{e}");
            lane.nop(CompletionMode::FireAndForget, DEFAULT_BUDGET)
                .unwrap();
        }
        // Refused before reserving too, and a caller's SKIP_SUCCESS in a credited mode.
        let e = lane
            .submit(failing(), CompletionMode::SkipSuccess, DEFAULT_BUDGET)
            .unwrap_err();
        assert!(matches!(e, LaneError::BadFlags { .. }));
        let mut hard = failing();
        hard.flags = Flags::IO_HARDLINK.bits();
        assert!(matches!(
            lane.submit(hard, CompletionMode::SkipSuccess, DEFAULT_BUDGET),
            Err(LaneError::BadFlags { .. })
        ));
        let mut skip = Sqe::from_entry(&opcode::Nop::new().build());
        skip.flags = Flags::SKIP_SUCCESS.bits();
        for c in [CompletionMode::FireAndForget, CompletionMode::Slot(0)] {
            let e = lane.submit(skip, c, DEFAULT_BUDGET).unwrap_err();
            assert!(matches!(e, LaneError::BadFlags { .. }), "{c:?}");
            assert!(e.to_string().contains("SKIP_SUCCESS"), "{e}");
        }
        // Linked fire-and-forget is fine: every member posts its CQE.
        let mut linked = Sqe::from_entry(&opcode::Nop::new().build());
        linked.flags = Flags::IO_LINK.bits();
        lane.submit(linked, CompletionMode::FireAndForget, DEFAULT_BUDGET)
            .unwrap();
        lane.nop(CompletionMode::FireAndForget, DEFAULT_BUDGET)
            .unwrap();
    })
    .expect("lanes start");
    Lane::host(view)
        .flush(DEFAULT_BUDGET)
        .expect("every credit back at the pool");
    assert!(ring.quiesce(Duration::from_secs(10)));
    let c = view.local_snapshot();
    assert_eq!(c.cq_credits, l.credit_pool);
    assert_eq!(c.protocol_violations, 0);
    assert_eq!(c.foreign_cqes, 0);
}

/// A forged NOP carrying lane 1's slot tag with another generation does not complete lane 1's write: it is
/// counted foreign, and lane 1's 5-byte write reports 5.
#[test]
fn a_forged_completion_does_not_complete_another_lanes_slot() {
    let out = tempfile::tempfile().unwrap();
    let ring = confined_ring(2, vec![out.as_raw_fd()]);
    let l = ring.layout();
    let view = ring.view();
    view.write_bytes(l.fixed, b"hello");
    let armed = AtomicBool::new(false);
    let results = run_lanes(&ring, 2, |lane| {
        if lane.id() == 1 {
            lane.write(
                FileRef::Fixed(0),
                l.fixed,
                5,
                0,
                CompletionMode::Slot(0),
                DEFAULT_BUDGET,
            )
            .unwrap();
            armed.store(true, Ordering::Release);
            lane.wait(0, DEFAULT_BUDGET).unwrap()
        } else {
            while !armed.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            let g = l.slots_per_lane; // lane 1's slot 0
            let gen = slot_generation(view.slot(g).0.load(Ordering::Acquire));
            for forged_gen in [gen.wrapping_sub(1) & SLOT_GEN_MASK, gen ^ 0x80_0000] {
                let mut sqe = Sqe::from_entry(&opcode::Nop::new().build());
                sqe.flags = Flags::FIXED_FILE.bits();
                sqe.user_data = slot_user_data(g, forged_gen);
                let r = lane.reserve(DEFAULT_BUDGET).unwrap();
                lane.commit_exact(r, sqe);
            }
            let t = Instant::now();
            while view.local_snapshot().foreign_cqes < 2 && t.elapsed() < TIMEOUT {
                lane.reap(16);
                std::thread::yield_now();
            }
            0
        }
    })
    .expect("lanes start");
    assert_eq!(results[1], 5, "lane 1's write reports its 5 bytes");
    assert!(ring.quiesce(Duration::from_secs(10)), "every credit back");
    let c = view.local_snapshot();
    assert_eq!(c.foreign_cqes, 2, "both forged completions counted foreign");
    let word = view.slot(l.slots_per_lane).0.load(Ordering::Acquire);
    assert_eq!(
        slot_state(word),
        RING_SLOT_FREE,
        "delivered once, then freed"
    );
    assert_eq!(common::read_fd_file(out.as_raw_fd()), b"hello");
}

/// Device code rewriting `cq_pub`, `cq_claim`, `sq_pub` and `sq_reserve` while lanes run and the host quiesces
/// and drops the ring: counted, never a host panic or hang.
#[test]
fn the_host_survives_control_words_rewritten_under_it() {
    let ring = confined_ring(4, vec![]);
    let view = ring.view();
    let stop = AtomicBool::new(false);
    let rounds = AtomicU32::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut x = 0x9e37_79b9u32;
            while !stop.load(Ordering::Acquire) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Relaxed: hostile stores, nothing ordered by them.
                match x % 4 {
                    0 => view
                        .local64(gpu_uring::local_off!(cq_pub))
                        .store(x as u64 * 0x1_0001, Ordering::Relaxed),
                    1 => view
                        .local32(gpu_uring::local_off!(cq_claim))
                        .store(x, Ordering::Relaxed),
                    2 => view
                        .local64(gpu_uring::local_off!(sq_pub))
                        .store(x as u64, Ordering::Relaxed),
                    _ => view
                        .local32(gpu_uring::local_off!(sq_reserve))
                        .store(x >> 3, Ordering::Relaxed),
                }
                rounds.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        // Lanes without the reference device's final flush (its budget is long; this ring may never drain).
        spawn_lanes(4, "hostile-lane", |id| {
            let mut lane = Lane::new(view, id);
            for _ in 0..200 {
                let _ = lane.nop(CompletionMode::FireAndForget, 200);
                let _ = lane.nop(CompletionMode::Slot(0), 200);
                let _ = lane.wait(0, 200);
            }
            let _ = lane.flush(200);
        })
        .expect("lanes start");
        let _ = ring.quiesce(Duration::from_millis(200));
        stop.store(true, Ordering::Release);
    });
    eprintln!(
        "{} hostile rewrites; control: {:?}",
        rounds.load(Ordering::Relaxed),
        view.local_snapshot()
    );
    assert!(view.local_snapshot().protocol_violations > 0);
    drop_bounded(vec![("rewrites", ring)]);
}
