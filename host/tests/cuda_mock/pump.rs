//! The mock run's io_queue part (host/tests/cuda_mock.rs): the pump kernels of the device library —
//! gu_pump_stream, gu_pump_probe (`PumpProgram::PROBE`, re-dispatched) and gu_pump_read launched by name —
//! against a real pump, with pump_vulkan.rs's oracles.

use std::time::Duration;

use gpu_uring::backend::pump::{run_pump, PumpProgram, PumpRunParams};
use gpu_uring::backend::{checksum, Device, Grid, KernelArg, LibraryDevice, Placement};
use gpu_uring::pump::Pump;

use crate::{pump_oracles, pump_util, TIMEOUT};

/// The megakernel stream kernel on gu_pump_stream: 8 lanes stream a 200 003-byte file in 8 KiB chunks;
/// the checksum equals the host's, every chunk is served once, every slot freed.
pub fn pump_stream(dev: &dyn Device) {
    pump_oracles::stream_matches_host_checksum(|pump, lanes, params| {
        run_pump(dev, pump, lanes, PumpProgram::STREAM, params, TIMEOUT).unwrap()
    });
}

/// `PumpProgram::PROBE` on gu_pump_probe (resumable, run_pump's arguments), held to pump_vulkan.rs's oracles:
/// the layout echo, many lanes READing exactly once through few slots, the pump's validation errors, withdrawal
/// from a stopped pump, WRITE then FENCE, parameters outside the region refused, and the hostile table's
/// io_queue row (a slot re-published while the pump holds it).
pub fn pump_probe(dev: &dyn Device) {
    use gpu_uring::backend::pump::PUMP_LANE_FINISHED;

    let run = |pump: &Pump, lanes, params| {
        run_pump(dev, pump, lanes, PumpProgram::PROBE, params, TIMEOUT).unwrap()
    };
    // Mode 0, the echo, on a pump not started: the NOP the lane publishes stays PUBLISHED.
    let echo = pump_oracles::io_queue_layout(
        "C++",
        "PumpRunParams",
        |budget| assert!(budget >= 64, "iter_budget {budget}"),
        |pump, lanes, params| run(pump, lanes, params).lanes,
    );
    assert!(echo.lanes.iter().all(|l| l.flags == PUMP_LANE_FINISHED));
    drop(echo);

    // Mode 1: 32 lanes, 6 slots, every READ served once and checksummed as the host does.
    pump_oracles::reads_exactly_once(32, run);

    // Mode 2: each lane's bad request is rejected with its error.
    pump_oracles::observes_validation_errors(run);

    // Mode 3: a stopped pump; every lane withdraws its request and frees the slot.
    pump_oracles::withdraws_from_a_stopped_pump(run);

    // Mode 4: WRITE then FENCE; the file holds every lane's words.
    pump_oracles::writes_then_fences(run);

    // Parameters outside the region: run_pump refuses them before any lane runs.
    let stats =
        pump_oracles::probe_refuses_parameters_outside_the_region(|pump, lanes, params, what| {
            let e = run_pump(dev, pump, lanes, PumpProgram::PROBE, params, TIMEOUT).unwrap_err();
            assert!(
                matches!(e, gpu_uring::backend::DeviceError::Run { .. }),
                "{what}: {e}"
            );
        });
    assert_eq!(stats.claimed, 0, "{stats:?}");

    republished_pump_slot(dev);
}

/// The hostile table's io_queue row (host/tests/hostile_input.rs) on gu_pump_probe mode 5: a READ of an empty
/// pipe, published again in the same slot while the pump holds it: the pump counts one violation, serves the
/// held READ, then the re-publication once, and the lane's wait returns READY with the chunk's length.
fn republished_pump_slot(dev: &dyn Device) {
    const CHUNK: u32 = 64;
    let (pr, pw) = pump_util::pipe();
    let pump = pump_util::held_slot_pump(&pr);
    let r = std::thread::scope(|s| {
        let pump = &pump;
        // The host's part: say when the pump holds the READ, fill the pipe once the violation is counted.
        s.spawn(move || pump_util::hold_then_fill(pump, CHUNK, 0, Duration::from_secs(60), pw));
        let params = PumpRunParams {
            chunk: CHUNK,
            arg0: 5,
            ..Default::default()
        };
        run_pump(dev, pump, 1, PumpProgram::PROBE, params, TIMEOUT).unwrap()
    });
    let stats = pump.stop().unwrap();
    let l = r.lanes[0];
    assert_eq!(
        (l.last_status, l.last_result, stats.protocol_violations),
        (gpu_uring::backend::pump::status::READY, CHUNK as i32, 1),
        "{l:?} {stats:?}"
    );
}

/// gu_pump_read launched by name (slot allocation aggregated per warp; a subgroup of one per mock thread):
/// every lane's READs served once, the checksums the host's.
pub fn pump_read_by_name(dev: &dyn Device) {
    let lib: &dyn LibraryDevice = dev.library().expect("CUDA runs the device library");
    let k = lib.library_kernel("gu_pump_read").unwrap();
    let (lanes, count, chunk) = (8u32, 5u32, 128u32);
    let total = (lanes * count * chunk) as u64;
    let data = pump_util::pattern_file(total);
    let pump = Pump::spawn(pump_util::reader_config(&data, 4, (lanes * chunk) as usize)).unwrap();
    let arena = pump.arena_shared();
    let (base, len) = arena.raw();
    // SAFETY: the pump arena is one page-aligned, writable mapping of `len` bytes kept mapped by the Arc.
    let arena_buf = unsafe { dev.import_host(base, len, arena.clone()) }.unwrap();
    let (lp, ll) = arena.local_raw();
    // SAFETY: the arena's device-local host copy, one page-aligned writable mapping kept mapped by the Arc (the
    // mock's lanes are host threads: its atomics are the host's).
    let local = unsafe { dev.import_host(lp, ll, arena.clone()) }.unwrap();
    let status = dev
        .alloc(Placement::HostVisible, 4 * lanes as usize)
        .unwrap();
    let report = dev
        .alloc(Placement::HostVisible, 32 * lanes as usize)
        .unwrap();
    let layout = pump.layout();
    let v: Vec<[u8; 4]> = [lanes, 0, 0, chunk, count, 1 << 20]
        .iter()
        .map(|x| x.to_le_bytes())
        .collect();
    let mut args = vec![
        KernelArg::Buffer(&arena_buf),
        KernelArg::Buffer(&local),
        KernelArg::Bytes(bytemuck::bytes_of(&layout)),
    ];
    args.extend(v.iter().map(|x| KernelArg::Bytes(x)));
    args.push(KernelArg::Buffer(&status));
    args.push(KernelArg::Buffer(&report));
    let grid = Grid {
        groups: 1,
        group_size: lanes,
    };
    dev.launch(&k, &args, grid, TIMEOUT).unwrap();
    let stats = pump.stop().unwrap();
    let (mut sum, mut bytes) = (0u64, 0u64);
    for l in 0..lanes as usize {
        assert_eq!(
            status.load_u32(l),
            Some(gpu_uring::backend::pump::status::READY)
        );
        let w = |i: usize| {
            report.load_u32(8 * l + 2 * i).unwrap() as u64
                | (report.load_u32(8 * l + 2 * i + 1).unwrap() as u64) << 32
        };
        assert_eq!((w(0), w(1)), (count as u64, 0), "lane {l}");
        sum = sum.wrapping_add(w(2));
        bytes += w(3);
    }
    let want = (0..(lanes * count) as u64).fold(0u64, |a, c| {
        let off = c * chunk as u64;
        a.wrapping_add(checksum(
            off,
            &pump_util::read_at(&data, off, chunk as usize),
        ))
    });
    assert_eq!((sum, bytes), (want, total));
    assert_eq!(stats.served, (lanes * count) as u64, "{stats:?}");
}
