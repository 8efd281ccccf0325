//! The built-in programs on the CUDA/HIP device library (`kernels/`): a device whose backend loads the
//! library's committed binaries (PTX or cubin on CUDA, the code object for its gfx target on HIP) returns a
//! [`LibraryDevice`] from [`Device::library`], and [`Programs`](super::Programs) and
//! [`run_pump`](super::pump::run_pump) run on the library's kernels instead of the SPIR-V or native ones:
//!
//! | what | kernel | per-lane result |
//! | --- | --- | --- |
//! | [`Program::Nop`] | `gu_nop` (waited on the wait slot, or fire-and-forget) | `ready`: NOPs completed (waited) or submitted |
//! | [`Program::Print`] | `gu_print` (group commit or line mode, as the ring's print target says) | `report` (done = lines printed) |
//! | [`Program::Write`] | `gu_write` | `report` |
//! | [`Program::Read`] | `gu_read` | `report` (checksum = the sum of its chunks') |
//! | [`Program::LaneStress`] | `gu_lane_stress` | `report` |
//! | [`Program::EditBuffer`] | `gu_edit_buffer` | `report` |
//! | [`Program::Layout`] | `gu_layout` (SQE and `RingLayout`; no run parameters: the kernels have none) | `report` |
//! | [`Program::Exact`] | `gu_exact` | `report` |
//! | [`Program::Hostile`] | `gu_hostile` | `report` (checksum = status, bytes = result) |
//! | [`Programs::format_probe`](super::Programs::format_probe) | `gu_format_probe` | the formatted bytes |
//! | [`PumpProgram::STREAM`](super::pump::PumpProgram::STREAM) | `gu_pump_stream` | `report` as a [`PumpLaneState`] |
//! | [`PumpProgram::PROBE`](super::pump::PumpProgram::PROBE) | `gu_pump_probe` (resumable: [`run_pump`](super::pump::run_pump)'s run buffer and re-dispatch loop, as on every device) | its [`PumpLaneState`] |
//!
//! Each lane is one thread and the whole program one launch (but the pump probe, re-dispatched like the SPIR-V
//! programs): every device wait is bounded by a poll budget derived from the run's timeout ([`wait_budget`];
//! or the device's [`DeviceConfig::wait_budget`](super::DeviceConfig)), so a run ends within its timeout or
//! is reported past it. `gu_pump_read` (exactly-once READs with the slot
//! allocation aggregated per warp) is launched by name ([`LibraryDevice::library_kernel`]). Not on the
//! library, so [`DeviceError::Unsupported`] with the reason: caller pump programs (SPIR-V only), and any
//! program on a ring without SQPOLL (its lanes need the host to submit between dispatches; a library kernel
//! runs to its end in one launch). Arguments and parameter lists: [`kernel_layout`] and kernels/README.md.
//!
//! Where the device-local block lives is decided by the device's capabilities (PROTOCOL.md §2): with coherent
//! host-native atomics ([`Capabilities::host_native_atomics`](super::Capabilities)) the kernels run on the
//! host copy itself; otherwise it is a [`Placement::DeviceLocal`] buffer, filled from the host copy before the
//! launch and copied back after it however the launch ended ([`LibraryDevice::write_buffer`],
//! [`LibraryDevice::read_buffer`]), so no atomic read-modify-write ever crosses the bus.
//!
//! Results are device-written words, read as untrusted: a lane whose status word was never written counts
//! every operation failed (a print lane that stops half-way counts only its unprinted lines failed: its
//! `report` says how many it printed); a status of `program_refused` (the ring lacks what the program needs, which the checks here should have caught) is a
//! run error.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::error::DeviceError;
use super::hal::{
    BetweenDispatches, Device, DeviceBuffer, FormatCase, Grid, KernelArg, KernelLayout,
    LibraryDevice,
};
use super::program::check_fixed_buffer;
use super::run_buffer::{LaneState, LANE_FINISHED};
use super::{LaneReport, Placement, Program, RunReport};
use crate::abi::run::{PumpLaneState, PumpRunParams, PUMP_LANE_FINISHED};
use crate::abi::{RING_FLAG_SQPOLL, STATUS_READY};
use crate::protocol::DeviceRing;
use crate::pump::Pump;

/// Bytes of the `RingLayout` and `PumpLayout` kernel parameters.
const RING_LAYOUT: u32 = std::mem::size_of::<crate::ring::RingLayout>() as u32;
const PUMP_LAYOUT: u32 = std::mem::size_of::<crate::pump::PumpLayout>() as u32;

/// Every kernel of the device library (kernels/src/gpu_uring_kernels.cu) with its parameter list as the HAL
/// counts it: (name, buffers, bytes by value).
const KERNELS: &[(&str, u32, u32)] = &[
    // (arena, local, RingLayout, mode, count, budget, status, ready)
    ("gu_nop", 4, RING_LAYOUT + 12),
    // (arena, local, RingLayout, lines, budget, status, report)
    ("gu_print", 4, RING_LAYOUT + 8),
    // (arena, local, RingLayout, file, ops, len, budget, status, report)
    ("gu_write", 4, RING_LAYOUT + 16),
    // (arena, local, RingLayout, lanes, file, chunk, total: u64, depth, budget, status, report)
    ("gu_read", 4, RING_LAYOUT + 28),
    // (arena, local, RingLayout, ops, budget, status, report)
    ("gu_lane_stress", 4, RING_LAYOUT + 8),
    // (arena, local, RingLayout, steps, budget, status, report)
    ("gu_edit_buffer", 4, RING_LAYOUT + 8),
    // (arena, local, RingLayout, status, report)
    ("gu_layout", 4, RING_LAYOUT),
    // (arena, local, RingLayout, count, budget, status, report)
    ("gu_exact", 4, RING_LAYOUT + 8),
    // (arena, local, RingLayout, which, budget, status, report)
    ("gu_hostile", 4, RING_LAYOUT + 8),
    // (arena, local, RingLayout, count)
    ("gu_format", 2, RING_LAYOUT + 4),
    // (arena, local, PumpLayout, lanes, file, region, chunk, total: u64, budget, status, report)
    ("gu_pump_stream", 4, PUMP_LAYOUT + 28),
    // (arena, run, local, PumpLayout): run_pump's argument scheme (run = PumpRunParams, PumpLaneState per lane)
    ("gu_pump_probe", 3, PUMP_LAYOUT),
    // (arena, local, PumpLayout, lanes, file, region, chunk, count, budget, status, report)
    ("gu_pump_read", 4, PUMP_LAYOUT + 24),
    // (records, count)
    ("gu_format_probe", 1, 4),
    // (out, lanes, lines, line_bytes)
    ("gu_print_lines", 1, 12),
    // (lanes, lines)
    ("gu_vendor_printf", 0, 8),
    // (mailboxes, lanes, lines, budget, status)
    ("gu_rpc_print", 2, 12),
    // (buf, mode, n, mask, seed)
    ("gu_memory_placement", 1, 16),
    // (local, shared, n)
    ("gu_ticket_probe", 2, 4),
    // (flag, budget, polls_out)
    ("gu_wait_probe", 2, 4),
];

/// The parameter list of the device library's kernel `name`, for backends loading it (and for callers of
/// [`LibraryDevice::library_kernel`]: experiments launching `gu_memory_placement` or `gu_rpc_print`).
pub fn kernel_layout(backend: &'static str, name: &str) -> Result<KernelLayout, DeviceError> {
    KERNELS
        .iter()
        .find(|k| k.0 == name)
        .map(|k| KernelLayout {
            buffers: k.1,
            value_bytes: k.2,
        })
        .ok_or_else(|| DeviceError::Unsupported {
            backend,
            what: format!("device library kernel {name} (the library has no such kernel)"),
        })
}

/// The names of every kernel of the device library.
pub fn kernel_names() -> impl Iterator<Item = &'static str> {
    KERNELS.iter().map(|k| k.0)
}

/// A status word no kernel writes: the lane never ran.
const NOT_RUN: u32 = u32::MAX;
/// A kernel's status when the ring lacks what the program needs (kernels/src/programs/ring_programs.h).
const PROGRAM_REFUSED: u32 = 0x100;

/// `gu_nop`'s completion modes (kernels/src/programs/ring_programs.h).
const NOP_WAITED: u32 = 0;
const NOP_FIRE_AND_FORGET: u32 = 1;

/// A per-lane `lane_report` (kernels/src/programs/ring_programs.h): done, failed, checksum, bytes.
const REPORT_WORDS: usize = 8;

/// What a kernel hands back per lane besides its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// A `u32` per lane counting the operations that completed.
    Ready,
    /// A `lane_report` per lane.
    Report,
}

/// One program as a library kernel: its name, values after the layout, per-lane operations, output.
struct Call {
    name: &'static str,
    values: Vec<Vec<u8>>,
    ops: u32,
    out: Output,
}

fn run_error(backend: &'static str, message: impl std::fmt::Display) -> DeviceError {
    DeviceError::Run {
        backend,
        message: message.to_string(),
    }
}

fn u32s(words: &[u32]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.to_le_bytes().to_vec()).collect()
}

/// The kernel, arguments and checks of `program` on `lanes` lanes of a ring laid out as `l` (the same checks
/// and messages as the SPIR-V and native runs, so a bad program fails alike on every device).
fn call(
    backend: &'static str,
    l: &crate::ring::RingLayout,
    lanes: u32,
    program: &Program,
    budget: u32,
) -> Result<Call, DeviceError> {
    let c = |name, values, ops, out| Call {
        name,
        values,
        ops,
        out,
    };
    let call = match *program {
        Program::Print { lines } => c("gu_print", u32s(&[lines, budget]), lines, Output::Report),
        Program::Nop {
            ops,
            fire_and_forget,
        } => {
            let mode = if fire_and_forget {
                NOP_FIRE_AND_FORGET
            } else {
                NOP_WAITED
            };
            c("gu_nop", u32s(&[mode, ops, budget]), ops, Output::Ready)
        }
        Program::Write { file, ops, len } => c(
            "gu_write",
            u32s(&[file, ops, len.min(l.line_bytes), budget]),
            ops,
            Output::Report,
        ),
        Program::Read {
            file,
            chunk,
            total,
            depth,
        } => {
            if chunk == 0 || chunk % 4 != 0 {
                return Err(run_error(
                    backend,
                    format!("Read chunk must be a positive multiple of 4, got {chunk}"),
                ));
            }
            if depth == 0 || depth > 32 || depth > l.slots_per_lane {
                return Err(run_error(
                    backend,
                    format!(
                        "Read depth must be in 1..=32 and at most the ring's slots_per_lane ({}), got {depth}",
                        l.slots_per_lane
                    ),
                ));
            }
            let mut values = u32s(&[lanes, file, chunk]);
            values.push(total.to_le_bytes().to_vec());
            values.extend(u32s(&[depth, budget]));
            // Per lane: its chunks l, l + lanes, … (at most total / chunk + 1 of them in all).
            let chunks = total.div_ceil(chunk as u64).div_ceil(lanes as u64);
            c(
                "gu_read",
                values,
                chunks.min(u32::MAX as u64) as u32,
                Output::Report,
            )
        }
        Program::LaneStress { ops } => {
            c("gu_lane_stress", u32s(&[ops, budget]), ops, Output::Report)
        }
        Program::EditBuffer { steps } => c(
            "gu_edit_buffer",
            u32s(&[steps, budget]),
            steps,
            Output::Report,
        ),
        Program::Layout => c("gu_layout", Vec::new(), 1, Output::Report),
        Program::Exact { count } => c("gu_exact", u32s(&[count, budget]), count, Output::Report),
        Program::Hostile { case } => c(
            "gu_hostile",
            u32s(&[case.code(), budget]),
            1,
            Output::Report,
        ),
    };
    check_fixed_buffer(backend, l, lanes, program)?;
    Ok(call)
}

/// [`Programs::run_with`](super::Programs::run_with) on a library device (lanes already checked against the
/// ring).
pub(super) fn run<D: Device + ?Sized>(
    dev: &D,
    lib: &dyn LibraryDevice,
    ring: &DeviceRing,
    lanes: u32,
    program: &Program,
    timeout: Duration,
    between: &mut BetweenDispatches<'_>,
) -> Result<RunReport, DeviceError> {
    let backend = dev.info().backend;
    let l = ring.layout();
    if l.ring_flags & RING_FLAG_SQPOLL == 0 {
        return Err(DeviceError::Unsupported {
            backend,
            what: format!(
                "{program:?} on a ring without SQPOLL (its SQEs need host submissions between dispatches; \
                 a device library kernel runs to its end in one launch)"
            ),
        });
    }
    let Call {
        name,
        values,
        ops,
        out,
    } = call(
        backend,
        &l,
        lanes,
        program,
        lib.wait_budget().unwrap_or_else(|| wait_budget(timeout)),
    )?;
    let kernel = lib.library_kernel(name)?;
    let arena = import_arena(dev, ring)?;
    let local = LocalBlock::for_ring(dev, ring)?;
    let status = dev.alloc(Placement::HostVisible, lanes as usize * 4)?;
    let extra = match out {
        Output::Ready => dev.alloc(Placement::HostVisible, lanes as usize * 4)?,
        Output::Report => dev.alloc(Placement::HostVisible, lanes as usize * REPORT_WORDS * 4)?,
    };
    for i in 0..lanes as usize {
        status.store_u32(i, NOT_RUN);
    }
    for i in 0..extra.len() / 4 {
        extra.store_u32(i, 0);
    }
    let mut args = vec![
        KernelArg::Buffer(&arena),
        KernelArg::Buffer(&local.buffer),
        KernelArg::Bytes(bytemuck::bytes_of(&l)),
    ];
    args.extend(values.iter().map(|v| KernelArg::Bytes(v)));
    args.push(KernelArg::Buffer(&status));
    args.push(KernelArg::Buffer(&extra));
    let v = ring.view();
    // Acquire: the host copy is quiet (no run in progress); pairs with its last writer's release.
    let host_words = (0..local.words as u32)
        .map(|i| v.local32(4 * i).load(Ordering::Acquire))
        .collect();
    local.copy_in(lib, host_words)?;
    let launched = dev.launch(&kernel, &args, exact_grid(lanes), timeout);
    // Copied back however the launch ended: the host's quiesce and counters read the host copy.
    let copied = local.copy_out(lib).map(|w| {
        for (i, x) in w.iter().enumerate() {
            // Release: whoever reads the host copy next (quiesce, counters) sees the device's final words.
            v.local32(4 * i as u32).store(*x, Ordering::Release);
        }
    });
    let elapsed = launched?;
    copied?;
    let mut reports = Vec::with_capacity(lanes as usize);
    for i in 0..lanes as usize {
        let st = status.load_u32(i).unwrap_or(NOT_RUN);
        if st == PROGRAM_REFUSED {
            return Err(run_error(
                backend,
                format!(
                    "{name}: lane {i} refused the program (the ring lacks what {program:?} needs)"
                ),
            ));
        }
        if st != STATUS_READY {
            log::warn!("{backend}: {name} lane {i} ended with status {st:#x}");
        }
        let rep = match out {
            _ if st == NOT_RUN => counts(0, ops),
            Output::Ready => counts(extra.load_u32(i).unwrap_or(0).min(ops), ops),
            Output::Report => lane_report(&extra, i),
        };
        reports.push(rep);
    }
    let states: Vec<LaneState> = reports
        .iter()
        .zip(0..)
        .map(|(r, i)| LaneState {
            seq: r.done as u32,
            done: r.done as u32,
            failed: r.failed as u32,
            flags: LANE_FINISHED,
            checksum: r.checksum,
            bytes: r.bytes,
            dispatches: 1,
            last_status: status.load_u32(i).unwrap_or(NOT_RUN),
            ..LaneState::default()
        })
        .collect();
    between(0, &states)?;
    Ok(RunReport {
        lanes: reports,
        elapsed,
        dispatches: 1,
        states,
    })
}

/// `ok` of `ops` operations done, the rest failed.
fn counts(ok: u32, ops: u32) -> LaneReport {
    LaneReport {
        done: ok as u64,
        failed: (ops - ok.min(ops)) as u64,
        checksum: 0,
        bytes: 0,
    }
}

/// Lane `i`'s `lane_report`, device-written: counts clamped so sums over lanes cannot overflow.
fn lane_report(buf: &DeviceBuffer, i: usize) -> LaneReport {
    let word = |k: usize| {
        let at = i * REPORT_WORDS + 2 * k;
        buf.load_u32(at).unwrap_or(0) as u64 | (buf.load_u32(at + 1).unwrap_or(0) as u64) << 32
    };
    LaneReport {
        done: word(0).min(u32::MAX as u64),
        failed: word(1).min(u32::MAX as u64),
        checksum: word(2),
        bytes: word(3).min(1 << 48),
    }
}

/// [`Programs::format_probe`](super::Programs::format_probe) on a library device: one thread per case over
/// 128-byte records (kind, precision, value; the formatted length at `+ 16`, its bytes at `+ 20`).
pub(super) fn format_probe<D: Device + ?Sized>(
    dev: &D,
    lib: &dyn LibraryDevice,
    cases: &[FormatCase],
) -> Result<Vec<Vec<u8>>, DeviceError> {
    const RECORD: usize = 128;
    let kernel = lib.library_kernel("gu_format_probe")?;
    let n = cases.len();
    let records = dev.alloc(Placement::HostVisible, n * RECORD)?;
    for (i, c) in cases.iter().enumerate() {
        let (kind, prec, val) = c.record();
        let words = [kind, prec, val as u32, (val >> 32) as u32, 0];
        for (k, w) in words.iter().enumerate() {
            records.store_u32(i * RECORD / 4 + k, *w);
        }
    }
    let count = (n as u32).to_le_bytes();
    dev.launch(
        &kernel,
        &[KernelArg::Buffer(&records), KernelArg::Bytes(&count)],
        exact_grid(n as u32),
        Duration::from_secs(60),
    )?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let len = records.load_u32(i * RECORD / 4 + 4).unwrap_or(0).min(108) as usize;
        let mut bytes = vec![0u8; len.div_ceil(4) * 4];
        lib.read_buffer(&records, i * RECORD + 20, &mut bytes)?;
        bytes.truncate(len);
        out.push(bytes);
    }
    Ok(out)
}

/// The device library's kernel for the resumable pump program `program` (`builtin`: one of the built-in
/// ones), launched with [`run_pump`](super::pump::run_pump)'s argument scheme and re-dispatch loop: the
/// pump probe on `gu_pump_probe`. `None`: not a resumable library program ([`run_pump`] runs or refuses it).
pub(super) fn resumable_pump_kernel(program: &str, builtin: bool) -> Option<&'static str> {
    (builtin && program == "pump_probe").then_some("gu_pump_probe")
}

/// [`run_pump`](super::pump::run_pump) on a library device (parameters already checked against the pump):
/// [`PumpProgram::STREAM`](super::pump::PumpProgram::STREAM) on `gu_pump_stream`, one launch; any other
/// program but the pump probe ([`resumable_pump_kernel`]) is [`DeviceError::Unsupported`]. Returns every
/// lane's state and the launch's time.
pub(super) fn run_pump(
    dev: &dyn Device,
    lib: &dyn LibraryDevice,
    pump: &Pump,
    lanes: u32,
    program: &str,
    params: PumpRunParams,
    timeout: Duration,
) -> Result<(Vec<PumpLaneState>, Duration), DeviceError> {
    let backend = dev.info().backend;
    if program != "pump_stream" {
        return Err(DeviceError::Unsupported {
            backend,
            what: format!(
                "pump program {program} on the CUDA/HIP device library (it has the stream kernel and the \
                 pump probe; caller pump programs are SPIR-V)"
            ),
        });
    }
    let kernel = lib.library_kernel("gu_pump_stream")?;
    let arena = pump.arena_shared();
    let (base, len) = arena.raw();
    let owner: Arc<dyn Send + Sync> = arena.clone();
    // SAFETY: the pump arena is one page-aligned, writable anonymous mapping of `len` bytes (a multiple of
    // the page size), kept mapped by `owner` (an Arc of the arena) for as long as the import and every launch
    // using it exist.
    let arena_buf = unsafe { dev.import_host(base, len, owner) }?;
    let layout = pump.layout();
    let words = layout.local_size.div_ceil(4) as usize;
    let local = LocalBlock::new(dev, words, || {
        let (ptr, len) = arena.local_raw();
        (ptr, len, arena.clone() as Arc<dyn Send + Sync>)
    })?;
    let status = dev.alloc(Placement::HostVisible, lanes as usize * 4)?;
    let report = dev.alloc(Placement::HostVisible, lanes as usize * REPORT_WORDS * 4)?;
    for i in 0..lanes as usize {
        status.store_u32(i, NOT_RUN);
    }
    for i in 0..lanes as usize * REPORT_WORDS {
        report.store_u32(i, 0);
    }
    let budget = lib.wait_budget().unwrap_or_else(|| wait_budget(timeout));
    let mut values = u32s(&[lanes, params.file, params.region, params.chunk]);
    values.push(params.total.to_le_bytes().to_vec());
    values.extend(u32s(&[budget]));
    let mut args = vec![
        KernelArg::Buffer(&arena_buf),
        KernelArg::Buffer(&local.buffer),
        KernelArg::Bytes(bytemuck::bytes_of(&layout)),
    ];
    args.extend(values.iter().map(|v| KernelArg::Bytes(v)));
    args.push(KernelArg::Buffer(&status));
    args.push(KernelArg::Buffer(&report));
    let v = pump.view();
    let slots = (words as u32).min(layout.nslots);
    // Acquire: no run is in progress; pairs with the last writer's release of each ownership word.
    let host_words: Vec<u32> = (0..slots)
        .map(|i| v.own(i).load(Ordering::Acquire))
        .collect();
    local.copy_in(lib, host_words)?;
    let launched = dev.launch(&kernel, &args, exact_grid(lanes), timeout);
    let copied = local.copy_out(lib).map(|w| {
        for (i, x) in w.iter().take(slots as usize).enumerate() {
            // Release: the pump and the next run see the device's final ownership words.
            v.own(i as u32).store(*x, Ordering::Release);
        }
    });
    let elapsed = launched?;
    copied?;
    let mut states = Vec::with_capacity(lanes as usize);
    for i in 0..lanes as usize {
        let st = status.load_u32(i).unwrap_or(NOT_RUN);
        if st == PROGRAM_REFUSED {
            return Err(run_error(
                backend,
                format!(
                    "gu_pump_stream: lane {i} refused the program (the pump lacks what it needs)"
                ),
            ));
        }
        let r = if st == NOT_RUN {
            LaneReport {
                failed: 1,
                ..LaneReport::default()
            }
        } else {
            lane_report(&report, i)
        };
        states.push(PumpLaneState {
            flags: PUMP_LANE_FINISHED,
            done: r.done as u32,
            failed: r.failed as u32,
            consumed: (r.done + r.failed) as u32,
            last_status: st,
            dispatches: 1,
            sum: r.checksum,
            bytes: r.bytes,
            ..PumpLaneState::default()
        });
    }
    Ok((states, elapsed))
}

/// Imports a ring's arena for a launch.
fn import_arena<D: Device + ?Sized>(
    dev: &D,
    ring: &DeviceRing,
) -> Result<DeviceBuffer, DeviceError> {
    let keep = ring.arena_keepalive();
    let (base, len) = keep.arena();
    let owner: Arc<dyn Send + Sync> = Arc::new(keep);
    // SAFETY: a ring's arena is one page-aligned, writable mapping of `len` bytes (a multiple of the page
    // size), kept mapped by `owner` (its keep-alive) for as long as the import and every launch using it exist.
    unsafe { dev.import_host(base, len, owner) }
}

/// Each device wait's budget in polls: a poll backs off to at most 8 µs (kernels/include/gpu_uring/backoff.h),
/// and a lane makes a few waits in a row, so a quarter of the run's time in 8 µs polls, at least 1024.
fn wait_budget(timeout: Duration) -> u32 {
    let polls = timeout.as_micros() / 8 / 4;
    polls.clamp(1024, u32::MAX as u128) as u32
}

/// Exactly `lanes` threads: blocks of the largest size up to 256 that divides `lanes` (the kernels run
/// every thread below the ring's lane count, so a partial block would run lanes that were not asked for).
fn exact_grid(lanes: u32) -> Grid {
    let block = (1..=lanes.min(256))
        .rev()
        .find(|b| lanes % b == 0)
        .unwrap_or(1);
    Grid {
        groups: lanes / block,
        group_size: block,
    }
}

/// Where a run's device-local block lives (the module docs).
struct LocalBlock {
    buffer: DeviceBuffer,
    /// Whether `buffer` is a device copy (filled before the launch, copied back after it).
    copied: bool,
    words: usize,
}

impl LocalBlock {
    /// A ring's device-local block.
    fn for_ring<D: Device + ?Sized>(dev: &D, ring: &DeviceRing) -> Result<LocalBlock, DeviceError> {
        let words = (ring.layout().local_size() as usize).div_ceil(4);
        LocalBlock::new(dev, words, || {
            let keep = ring.arena_keepalive();
            let block = keep.local_block();
            let (ptr, len) = (block.as_ptr(), block.len());
            (ptr, len, Arc::new(keep) as Arc<dyn Send + Sync>)
        })
    }

    /// A block of `words` words: a device copy, or (host-native atomics) the host copy `host` returns — its
    /// address, length and the owner that keeps it mapped.
    fn new<D: Device + ?Sized>(
        dev: &D,
        words: usize,
        host: impl FnOnce() -> (*mut u8, usize, Arc<dyn Send + Sync>),
    ) -> Result<LocalBlock, DeviceError> {
        if !dev.info().caps.host_native_atomics {
            return Ok(LocalBlock {
                buffer: dev.alloc(Placement::DeviceLocal, words * 4)?,
                copied: true,
                words,
            });
        }
        let (ptr, len, owner) = host();
        // SAFETY: a device-local host copy (a ring's or a pump's) is one page-aligned, writable mapping of
        // `len` bytes, kept mapped by `owner` for as long as the import and every launch using it exist; the
        // device's atomics on it are coherent with the host's (host-native atomics).
        let buffer = unsafe { dev.import_host(ptr, len, owner) }?;
        Ok(LocalBlock {
            buffer,
            copied: false,
            words,
        })
    }

    /// Before the launch: the host copy's words into the device's buffer.
    fn copy_in(&self, lib: &dyn LibraryDevice, words: Vec<u32>) -> Result<(), DeviceError> {
        if !self.copied {
            return Ok(());
        }
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        lib.write_buffer(&self.buffer, 0, &bytes)
    }

    /// After the launch (however it ended): the device's buffer's words, for the host copy (none when the
    /// launch ran on the host copy itself).
    fn copy_out(&self, lib: &dyn LibraryDevice) -> Result<Vec<u32>, DeviceError> {
        if !self.copied {
            return Ok(Vec::new());
        }
        let mut bytes = vec![0u8; self.words * 4];
        lib.read_buffer(&self.buffer, 0, &mut bytes)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_run_exactly_the_lanes_asked_for() {
        for lanes in [1u32, 7, 8, 32, 100, 256, 257, 1000, 4096, 65535] {
            let g = exact_grid(lanes);
            assert_eq!(g.groups * g.group_size, lanes, "{lanes}");
            assert!(g.group_size <= 256);
        }
        assert_eq!(exact_grid(64).groups, 1);
    }

    #[test]
    fn wait_budgets_scale_with_the_timeout() {
        assert_eq!(wait_budget(Duration::ZERO), 1024);
        assert_eq!(wait_budget(Duration::from_secs(20)), 625_000);
        assert_eq!(wait_budget(Duration::MAX), u32::MAX);
    }

    #[test]
    fn every_kernel_of_the_committed_ptx_has_its_parameter_list() {
        let ptx = include_str!("../../../kernels/bin/gpu_uring_kernels.compute_75.ptx");
        let mut found = Vec::new();
        for entry in ptx.split(".entry ").skip(1) {
            let (name, rest) = entry.split_once('(').unwrap();
            let params = rest.split(')').next().unwrap();
            // Bytes of the parameters: pointers and u64 are 8, u32 4, a by-value struct `.b8 name[n]` n.
            let bytes: u32 = params
                .split(',')
                .map(|p| match p.split_once('[') {
                    Some((_, n)) => n.trim_end_matches([']', ' ', '\n']).parse().unwrap(),
                    None if p.contains(".u64") => 8,
                    None if p.contains(".u32") => 4,
                    None => panic!("{name}: parameter {p:?}"),
                })
                .sum();
            let k = kernel_layout("test", name).unwrap();
            assert_eq!(bytes, 8 * k.buffers + k.value_bytes, "{name}");
            found.push(name);
        }
        let mut names: Vec<&str> = kernel_names().collect();
        names.sort_unstable();
        found.sort_unstable();
        assert_eq!(
            names, found,
            "kernels/bin has exactly the kernels listed here"
        );
    }

    /// Every program's call matches its kernel's parameter list: the arena, the local block and the layout,
    /// its values, `status`, and `ready` or `report`.
    #[test]
    fn every_program_calls_its_kernel_with_its_parameter_list() {
        use crate::backend::HostileCase;
        let l = crate::ring::RingLayout {
            lanes: 8,
            slots_per_lane: 4,
            line_bytes: 256,
            fixed_size: 1 << 20,
            ..Default::default()
        };
        let programs = [
            Program::Print { lines: 3 },
            Program::Nop {
                ops: 3,
                fire_and_forget: true,
            },
            Program::Write {
                file: 0,
                ops: 3,
                len: 1000,
            },
            Program::Read {
                file: 0,
                chunk: 4096,
                total: 100_000,
                depth: 2,
            },
            Program::LaneStress { ops: 3 },
            Program::EditBuffer { steps: 3 },
            Program::Layout,
            Program::Exact { count: 3 },
            Program::Hostile {
                case: HostileCase::CqWindow,
            },
        ];
        for p in &programs {
            let c = call("test", &l, 8, p, 1024).unwrap();
            let k = kernel_layout("test", c.name).unwrap();
            let bytes: usize = c.values.iter().map(Vec::len).sum();
            assert_eq!(bytes as u32 + RING_LAYOUT, k.value_bytes, "{p:?}");
            // The arena, the local block, `status`, and `ready` or `report`.
            assert_eq!(4, k.buffers, "{p:?}");
        }
        // Write's length is cut to a staging line; Read's per-lane operations are its chunks.
        let w = call("test", &l, 8, &programs[2], 1024).unwrap();
        assert_eq!(w.values[2], 256u32.to_le_bytes());
        assert_eq!(call("test", &l, 8, &programs[3], 1024).unwrap().ops, 4);
    }

    #[test]
    fn programs_the_ring_cannot_hold_are_refused() {
        let l = crate::ring::RingLayout {
            lanes: 8,
            slots_per_lane: 2,
            line_bytes: 256,
            fixed_size: 4096,
            ..Default::default()
        };
        let read = |chunk, depth| Program::Read {
            file: 0,
            chunk,
            total: 1 << 20,
            depth,
        };
        for p in [
            read(0, 1),
            read(6, 1),
            read(512, 3),
            read(4096, 1),
            Program::EditBuffer { steps: 1 },
            Program::Layout,
            Program::Exact { count: 100 },
        ] {
            let lanes = match p {
                Program::EditBuffer { .. } => 1024,
                Program::Layout => 32,
                _ => 8,
            };
            assert!(
                matches!(
                    call("test", &l, lanes, &p, 1024),
                    Err(DeviceError::Run { .. })
                ),
                "{p:?}"
            );
        }
        assert!(call("test", &l, 8, &read(512, 1), 1024).is_ok());
    }

    #[test]
    fn an_unknown_kernel_is_unsupported() {
        assert!(matches!(
            kernel_layout("test", "gu_nothing"),
            Err(DeviceError::Unsupported { .. })
        ));
    }
}
