//! The io_queue's GLSL lane side (`device-shaders/include/gpu_uring_pump.glsl`) on Vulkan (lavapipe in CI):
//! the GLSL view of `PumpLayout`, `QueueHeader`, the region table and `IoSlot` equals the Rust `#[repr(C)]`
//! structs; many lanes READ through the pump exactly once; a GLSL lane observes the pump's validation errors;
//! the megakernel_stream kernel's checksum equals the host's. Without a Vulkan device each test prints
//! `SKIP vulkan: <reason>` and passes, except under `CI=true`, where a missing device is a failure (as in
//! `device_suite.rs`). Sizes are small and every wait is bounded by a generous deadline (loaded 2-core machine).

mod pump_oracles;
mod pump_util;
use pump_oracles::*;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use gpu_uring::backend::pump::{run_pump, PumpProgram, PumpRunParams, PUMP_LANE_FINISHED};
use gpu_uring::backend::{open_with, Device, DeviceConfig, DeviceError, DeviceSelector};
use gpu_uring::pump::queue::*;
use gpu_uring::pump::Pump;
use pump_util::*;

const TIMEOUT: Duration = Duration::from_secs(120);

/// One Vulkan device for the whole file, and a lock that runs the tests one at a time.
fn vulkan() -> Option<(Arc<dyn Device>, MutexGuard<'static, ()>)> {
    static DEV: OnceLock<Result<Arc<dyn Device>, DeviceError>> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    match DEV.get_or_init(|| {
        open_with(&DeviceSelector::Vulkan(None), &DeviceConfig::from_env())
            .map(|(d, _)| Arc::from(d))
    }) {
        Ok(d) => Some((d.clone(), LOCK.lock().unwrap_or_else(|p| p.into_inner()))),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI needs a Vulkan device (lavapipe: mesa-vulkan-drivers): {e}");
            }
            eprintln!("SKIP vulkan: {e}");
            None
        }
    }
}

#[test]
fn glsl_io_queue_layout_matches_rust() {
    let Some((dev, _g)) = vulkan() else { return };
    let LayoutRun {
        pump,
        data: _data,
        slot: s,
        lanes,
    } = io_queue_layout(
        "GLSL",
        "GqRunParams",
        |budget| assert!(budget >= 64, "iter_budget {budget}"),
        |pump, lanes, params| {
            run_pump(&*dev, pump, lanes, PumpProgram::PROBE, params, TIMEOUT)
                .unwrap()
                .lanes
        },
    );
    let v = pump.view();
    assert!(lanes[1..].iter().all(|l| l.flags == PUMP_LANE_FINISHED));
    // The pump serves the GLSL lane's NOP once started.
    v.own(9).store(QUEUE_SLOT_FREE, Ordering::Release);
    pump.start().unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while v.done_seq(s).load(Ordering::Acquire) != 1 {
        assert!(Instant::now() < end, "the NOP was not served");
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = pump.stop().unwrap();
    assert_eq!((stats.claimed, stats.served), (1, 1));
}

#[test]
fn glsl_lanes_read_exactly_once() {
    let Some((dev, _g)) = vulkan() else { return };
    // Far fewer slots than lanes (lavapipe runs a few subgroups of 8 at once): allocation would-blocks and
    // lanes retry, in this dispatch or the next.
    let lanes = 64;
    let (r, n) = reads_exactly_once(lanes, |pump, lanes, params| {
        run_pump(&*dev, pump, lanes, PumpProgram::PROBE, params, TIMEOUT).unwrap()
    });
    eprintln!(
        "{n} READs by {lanes} GLSL lanes in {} dispatches, {:?}; would-block scans {}",
        r.dispatches,
        r.elapsed,
        r.lanes.iter().map(|s| s.would_block as u64).sum::<u64>()
    );
}

#[test]
fn glsl_lane_observes_validation_errors() {
    let Some((dev, _g)) = vulkan() else { return };
    observes_validation_errors(|pump, lanes, params| {
        run_pump(&*dev, pump, lanes, PumpProgram::PROBE, params, TIMEOUT).unwrap()
    });
}

#[test]
fn glsl_stream_kernel_matches_the_host_checksum() {
    let Some((dev, _g)) = vulkan() else { return };
    stream_matches_host_checksum(|pump, lanes, params| {
        run_pump(&*dev, pump, lanes, PumpProgram::STREAM, params, TIMEOUT).unwrap()
    });
}

#[test]
fn glsl_lane_withdraws_from_a_stopped_pump() {
    let Some((dev, _g)) = vulkan() else { return };
    withdraws_from_a_stopped_pump(|pump, lanes, params| {
        run_pump(&*dev, pump, lanes, PumpProgram::PROBE, params, TIMEOUT).unwrap()
    });
}

#[test]
fn glsl_lanes_write_then_fence() {
    let Some((dev, _g)) = vulkan() else { return };
    writes_then_fences(|pump, lanes, params| {
        run_pump(&*dev, pump, lanes, PumpProgram::PROBE, params, TIMEOUT).unwrap()
    });
}

#[test]
fn run_pump_refuses_parameters_outside_the_region() {
    let Some((dev, _g)) = vulkan() else { return };
    let data = pattern_file(4096);
    let pump = Pump::spawn(pump_util::probe_config(&data)).unwrap();
    let stream = |lanes, chunk, region| {
        let params = PumpRunParams {
            region,
            chunk,
            total: 4096,
            ..Default::default()
        };
        run_pump(&*dev, &pump, lanes, PumpProgram::STREAM, params, TIMEOUT)
    };
    for (lanes, chunk, region) in [(2, 2048, 0), (1, 2048, 1), (1, 6, 0), (1, 0, 0)] {
        let e = stream(lanes, chunk, region).unwrap_err();
        assert!(
            matches!(e, DeviceError::Run { .. }),
            "{lanes} lanes, chunk {chunk}, region {region}: {e}"
        );
    }
    // The largest that fits runs.
    let r = stream(1, 2048, 0).unwrap();
    assert_eq!(r.bytes(), 4096);
    pump.stop().unwrap();
}

/// The probe's parameters that kernels/tests/pump_probe.rs shows the C++ lane refusing are refused by
/// `run_pump` before the GLSL probe is dispatched: no lane runs, nothing is published.
#[test]
fn run_pump_refuses_probe_parameters_outside_the_region() {
    let Some((dev, _g)) = vulkan() else { return };
    let stats = probe_refuses_parameters_outside_the_region(|pump, lanes, params, what| {
        let e = run_pump(&*dev, pump, lanes, PumpProgram::PROBE, params, TIMEOUT).unwrap_err();
        assert!(matches!(e, DeviceError::Run { .. }), "{what}: {e}");
    });
    assert_eq!(stats.claimed, 0, "{stats:?}");
}
