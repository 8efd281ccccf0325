//! io_queue programs on any device that loads their kernels: a kernel whose lanes run the device lane side
//! of the megakernel pump (`device-shaders/include/gpu_uring_pump.glsl`, PROTOCOL.md §Q3/§Q8) against a
//! [`Pump`]'s arena.
//!
//! Built on the HAL's kernel API ([`Device::import_host`], [`Device::alloc`], [`Device::load_kernel`],
//! [`Device::launch`]): the pump arena (a separate page-aligned mapping, [`crate::pump::PumpArena`]) is
//! imported, the import holding an `Arc` of it, so a launch that outlives its time limit can never see it
//! unmapped. Argument 0 is the arena, argument 1 a host-visible run buffer holding [`PumpRunParams`] and one
//! [`PumpLaneState`] per lane, argument 2 the [`PumpLayout`] by value. Programs are resumable like the ring
//! programs: each lane keeps its progress in its [`PumpLaneState`], spends at most the soft loop budget per
//! dispatch, and the backend-neutral re-dispatch loop ([`crate::backend::redispatch`]) launches again until
//! every lane sets [`PUMP_LANE_FINISHED`] or the run's timeout expires.
//!
//! [`run_pump`] runs any caller-supplied kernel that follows this argument scheme; [`PumpProgram::STREAM`]
//! (the `megakernel_stream` kernel) and [`PumpProgram::PROBE`] (layout echo, exactly-once and validation
//! tests) are built in (SPIR-V: a device that loads no SPIR-V reports them unsupported).

use std::sync::Arc;
use std::time::Duration;

use bytemuck::{Pod, Zeroable};

use super::redispatch::{run_resumable, Resumable};
use super::{spirv, Device, DeviceError, Grid, KernelArg, KernelCode, KernelLayout, Placement};
use crate::pump::{Pump, PumpLayout};

/// `PumpLaneState::flags`: the lane has finished its program.
pub const PUMP_LANE_FINISHED: u32 = 1;
/// `PumpLaneState::slot0/slot1`: no slot.
pub const PUMP_NO_SLOT: u32 = u32::MAX;

/// Lane-side statuses the GLSL io_queue functions return (`GQ_*` in `gpu_uring_pump.glsl`), recorded in
/// `PumpLaneState::last_status`.
pub mod status {
    /// Complete (DONE or FAILED): the result was read.
    pub const READY: u32 = 0;
    /// Not complete yet (a poll), or no free slot (an allocation).
    pub const WOULD_BLOCK: u32 = 1;
    /// A bounded wait ran out of budget; the request is still the pump's.
    pub const TIMED_OUT: u32 = 2;
    /// The pump stopped and never claimed the request: the lane withdrew it.
    pub const PUMP_STOPPED: u32 = 3;
    /// The slot holds no published request.
    pub const NOT_PUBLISHED: u32 = 4;
}

/// What one pump run asks of every lane (64 bytes; `GqRunParams` in the GLSL).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct PumpRunParams {
    /// Program-specific id (diagnostics).
    pub program: u32,
    /// Lanes taking part (set by [`run_pump`]).
    pub lanes: u32,
    /// Soft loop budget per lane and dispatch (set by [`run_pump`]).
    pub iter_budget: u32,
    /// Dispatch number (set by [`run_pump`]).
    pub dispatch: u32,
    /// Pump file handle.
    pub file: u32,
    /// Pump buffer region handle.
    pub region: u32,
    /// Bytes per READ.
    pub chunk: u32,
    /// Requests per lane (probe).
    pub count: u32,
    /// Bytes to stream (stream).
    pub total: u64,
    /// Program arguments (stream: arg0 = 1 corrupts chunk 0's checksum; probe: arg0 = mode, arg1/arg2 echo
    /// inputs).
    pub arg0: u32,
    /// Program argument.
    pub arg1: u32,
    /// Program argument.
    pub arg2: u32,
    /// Program argument.
    pub arg3: u32,
    /// Zero.
    pub reserved: [u32; 2],
}

/// One lane's progress in a pump program, kept across dispatches (128 bytes; `GqLaneState` in the GLSL).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct PumpLaneState {
    /// `PUMP_LANE_FINISHED`.
    pub flags: u32,
    /// Program-specific phase.
    pub phase: u32,
    /// Requests finished (probe).
    pub seq: u32,
    /// Requests / chunks that completed and checked out.
    pub done: u32,
    /// Requests / chunks that failed.
    pub failed: u32,
    /// Chunks published (stream).
    pub issued: u32,
    /// Chunks consumed (stream).
    pub consumed: u32,
    /// Where the lane's next allocation scan starts.
    pub next_alloc: u32,
    /// Slot of the request in flight (stream: of buffer half 0), or `PUMP_NO_SLOT`.
    pub slot0: u32,
    /// Slot of buffer half 1's request (stream), or `PUMP_NO_SLOT`.
    pub slot1: u32,
    /// Bytes of the current chunk already checksummed.
    pub hpos: u32,
    /// The status (`status::*`) of the lane's last poll or wait that did not return WOULD_BLOCK/TIMED_OUT.
    pub last_status: u32,
    /// `ERR_*` of the last completion.
    pub last_error: u32,
    /// `result` of the last completion.
    pub last_result: i32,
    /// Dispatches this lane ran in.
    pub dispatches: u32,
    /// Dispatches that ended with the lane not finished (budget spent).
    pub waits: u32,
    /// Loop iterations counted in the last dispatch.
    pub iters: u32,
    /// Allocation scans that found no free slot (WOULD_BLOCK).
    pub would_block: u32,
    /// Zero (probe echo values).
    pub reserved0: u32,
    /// Zero (probe echo values).
    pub reserved1: u32,
    /// Partial checksum of the current chunk.
    pub hash: u64,
    /// Sum of the finished chunks' checksums (wrapping).
    pub sum: u64,
    /// Bytes checksummed.
    pub bytes: u64,
    /// Tag of the last completion.
    pub last_tag: u64,
    /// Zero (probe echo values).
    pub reserved2: [u32; 4],
}

/// A pump program: its SPIR-V and a name (diagnostics).
#[derive(Debug, Clone, Copy)]
pub struct PumpProgram {
    name: &'static str,
    spirv: &'static [u8],
    /// One of the built-in shaders, whose parameters `run_pump` checks.
    builtin: bool,
}

impl PumpProgram {
    /// `pump_stream.comp`: the `megakernel_stream` kernel (file `file` in `chunk`-byte READs through a per-lane
    /// double buffer in region `region`, checksummed in place).
    pub const STREAM: PumpProgram = PumpProgram {
        name: "pump_stream",
        spirv: spirv::PUMP_STREAM,
        builtin: true,
    };
    /// `pump_probe.comp`: layout echo (arg0 = 0), exactly-once READs (1), validation errors (2), withdrawal
    /// from a stopped pump (3), WRITE then FENCE (4).
    pub const PROBE: PumpProgram = PumpProgram {
        name: "pump_probe",
        spirv: spirv::PUMP_PROBE,
        builtin: true,
    };

    /// A caller's pump program.
    ///
    /// # Safety
    /// `spirv` must be a valid SPIR-V compute module for Vulkan 1.2 (entry point `main`) using only the
    /// argument scheme of this module — storage buffers at set 0 bindings 0 (the arena) and 1 (the run buffer),
    /// push constants within 64 bytes — and must not access either buffer out of bounds (as
    /// [`Device::load_kernel`] requires).
    pub unsafe fn new(name: &'static str, spirv: &'static [u8]) -> PumpProgram {
        PumpProgram {
            name,
            spirv,
            builtin: false,
        }
    }

    /// The program's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Refuses parameters with which a built-in program would touch memory outside the pump arena's region
    /// `params.region` (a caller's program is checked by its author, `PumpProgram::new`).
    fn check(&self, pump: &Pump, lanes: u32, p: &PumpRunParams) -> Result<(), String> {
        if !self.builtin {
            return Ok(());
        }
        let region = pump
            .view()
            .region(p.region)
            .ok_or_else(|| format!("{}: no buffer region {}", self.name, p.region))?;
        let chunk = p.chunk as u64;
        let needs = match (self.name, p.arg0) {
            ("pump_stream", _) => 2 * lanes as u64 * chunk,
            (_, 0) => 56 * 4,
            (_, 1 | 4) => lanes as u64 * chunk,
            _ => 0,
        };
        let chunked = self.name == "pump_stream" || matches!(p.arg0, 1 | 4);
        if chunked && (chunk == 0 || chunk % 4 != 0) {
            return Err(format!(
                "{}: chunk must be a positive multiple of 4, got {chunk}",
                self.name
            ));
        }
        if needs > region.size as u64 {
            return Err(format!(
                "{}: {lanes} lanes need {needs} bytes of buffer region {}, which has {}",
                self.name, p.region, region.size
            ));
        }
        Ok(())
    }
}

/// What a pump run returns.
#[derive(Debug, Clone)]
pub struct PumpRunReport {
    /// Every lane's final state.
    pub lanes: Vec<PumpLaneState>,
    /// Wall time of the dispatches.
    pub elapsed: Duration,
    /// Dispatches submitted.
    pub dispatches: u32,
}

impl PumpRunReport {
    /// Sum of the lanes' checksums (wrapping).
    pub fn sum(&self) -> u64 {
        self.lanes.iter().fold(0u64, |a, s| a.wrapping_add(s.sum))
    }
    /// Bytes the lanes checksummed.
    pub fn bytes(&self) -> u64 {
        self.lanes.iter().map(|s| s.bytes).sum()
    }
    /// Requests / chunks that failed.
    pub fn failed(&self) -> u64 {
        self.lanes.iter().map(|s| s.failed as u64).sum()
    }
}

/// Runs `program` on `lanes` lanes of `dev` against `pump`'s io_queue: imports the pump arena, passes it with
/// a run buffer holding `params` (its `lanes`, `iter_budget` and `dispatch` are set here) and the
/// [`PumpLayout`], and re-dispatches until every lane reports [`PUMP_LANE_FINISHED`] or `timeout` expires
/// ([`DeviceError::Timeout`]). The pump must be started for requests to complete (a program that only
/// publishes may run before it starts). [`PumpRunReport::elapsed`] counts the dispatches only (not the
/// import or the kernel load).
pub fn run_pump(
    dev: &dyn Device,
    pump: &Pump,
    lanes: u32,
    program: PumpProgram,
    params: PumpRunParams,
    timeout: Duration,
) -> Result<PumpRunReport, DeviceError> {
    let info = dev.info();
    let run_error = |message: String| DeviceError::Run {
        backend: info.backend,
        message,
    };
    if lanes == 0 || lanes > 65535 {
        return Err(run_error(format!("{lanes} lanes requested; 1..=65535")));
    }
    program.check(pump, lanes, &params).map_err(run_error)?;
    let mut params = params;
    params.lanes = lanes;
    params.iter_budget = dev.lane_iter_budget();
    params.dispatch = 0;
    let layout: PumpLayout = pump.layout();
    let arena = pump.arena_shared();
    let (base, len) = arena.raw();
    let owner: Arc<dyn Send + Sync> = arena;
    // SAFETY: the pump arena is one page-aligned, writable anonymous mapping of `len` bytes (a multiple of
    // the page size), kept mapped by `owner` (an Arc of the arena) for as long as the import and every
    // launch using it exist.
    let arena_buf = unsafe { dev.import_host(base, len, owner) }?;
    let head = std::mem::size_of::<PumpRunParams>();
    let each = std::mem::size_of::<PumpLaneState>();
    let run_buf = dev.alloc(Placement::HostVisible, head + lanes as usize * each)?;
    let klayout = KernelLayout {
        buffers: 2,
        value_bytes: std::mem::size_of::<PumpLayout>() as u32,
    };
    // SAFETY: the built-in programs are built by device-shaders/build.sh (checked in CI) for exactly this
    // argument scheme and stay inside the arena (offsets from the PumpLayout) and the run buffer (lane ids
    // below `lanes`); a caller's program carries the same promise (`PumpProgram::new`).
    let kernel =
        unsafe { dev.load_kernel(program.name, KernelCode::SpirV(program.spirv), klayout) }?;
    let store = |at: usize, words: &[u32]| {
        for (i, w) in words.iter().enumerate() {
            run_buf.store_u32(at / 4 + i, *w);
        }
    };
    store(0, &bytemuck::cast::<PumpRunParams, [u32; 16]>(params));
    store(head, &vec![0u32; lanes as usize * each / 4]);
    let grid = Grid::groups(lanes.div_ceil(info.subgroup_size.max(1)));
    let args = [
        KernelArg::Buffer(&arena_buf),
        KernelArg::Buffer(&run_buf),
        KernelArg::Bytes(bytemuck::bytes_of(&layout)),
    ];
    let mut dispatch = |i: u32, limit: Duration| -> Result<Vec<PumpLaneState>, DeviceError> {
        params.dispatch = i;
        store(0, &bytemuck::cast::<PumpRunParams, [u32; 16]>(params));
        // Over its limit: DeviceError::Timeout; the launch stays parked with the arena until it ends.
        dev.launch(&kernel, &args, grid, limit)?;
        Ok((0..lanes as usize)
            .map(|l| {
                let mut w = [0u32; 32];
                for (i, x) in w.iter_mut().enumerate() {
                    *x = run_buf.load_u32((head + l * each) / 4 + i).unwrap_or(0);
                }
                bytemuck::cast(w)
            })
            .collect())
    };
    let r = run_resumable(Resumable {
        backend: info.backend,
        timeout,
        per_dispatch: timeout,
        dispatch: &mut dispatch,
        between: &mut |_, _| Ok(()),
        finished: |s: &PumpLaneState| s.flags & PUMP_LANE_FINISHED != 0,
        progress: |s: &PumpLaneState| {
            s.seq as u64
                + s.done as u64
                + s.failed as u64
                + s.issued as u64
                + s.consumed as u64
                + s.phase as u64
                + s.hpos as u64
        },
    });
    if r.is_err() {
        log::warn!(
            "{}: pump run ended early; pump: {:?}",
            info.backend,
            pump.stats()
        );
    }
    let r = r?;
    Ok(PumpRunReport {
        lanes: r.states,
        elapsed: r.elapsed,
        dispatches: r.dispatches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn pump_run_structs_are_pinned() {
        assert_eq!(size_of::<PumpRunParams>(), 64);
        assert_eq!(offset_of!(PumpRunParams, total), 32);
        assert_eq!(offset_of!(PumpRunParams, arg0), 40);
        assert_eq!(size_of::<PumpLaneState>(), 128);
        assert_eq!(offset_of!(PumpLaneState, hash), 80);
        assert_eq!(offset_of!(PumpLaneState, last_tag), 104);
    }

    /// The GLSL include's io_queue constants equal the Rust ones (read from the include's source text).
    #[test]
    fn glsl_pump_constants_match_rust() {
        use crate::pump::queue::*;
        let src = include_str!("../../../../device-shaders/include/gpu_uring_pump.glsl");
        let mut consts = std::collections::HashMap::new();
        for stmt in src.split(';') {
            let Some(rest) = stmt
                .lines()
                .filter_map(|l| l.trim().strip_prefix("const uint "))
                .next_back()
            else {
                continue;
            };
            for item in rest.split(',') {
                let mut kv = item.split('=');
                let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
                    continue;
                };
                let v = v.trim().trim_end_matches('u');
                let v = match v.strip_prefix("0x") {
                    Some(h) => u32::from_str_radix(h, 16).unwrap(),
                    None => v.parse().unwrap(),
                };
                consts.insert(k.trim().to_owned(), v);
            }
        }
        let want: &[(&str, u32)] = &[
            ("GQ_SLOT_FREE", SLOT_FREE),
            ("GQ_SLOT_ALLOCATED", SLOT_ALLOCATED),
            ("GQ_SLOT_PUBLISHED", SLOT_PUBLISHED),
            ("GQ_SLOT_CLAIMED", SLOT_CLAIMED),
            ("GQ_SLOT_DONE", SLOT_DONE),
            ("GQ_SLOT_FAILED", SLOT_FAILED),
            ("GQ_OP_NOP", OP_NOP),
            ("GQ_OP_READ", OP_READ),
            ("GQ_OP_WRITE", OP_WRITE),
            ("GQ_OP_FENCE", OP_FENCE),
            ("GQ_ERR_NONE", ERR_NONE),
            ("GQ_ERR_BAD_OP", ERR_BAD_OP),
            ("GQ_ERR_RESERVED", ERR_RESERVED),
            ("GQ_ERR_BAD_FILE", ERR_BAD_FILE),
            ("GQ_ERR_BAD_BUFFER", ERR_BAD_BUFFER),
            ("GQ_ERR_BAD_LENGTH", ERR_BAD_LENGTH),
            ("GQ_ERR_READ_ONLY", ERR_READ_ONLY),
            ("GQ_ERR_BUFFER_RANGE", ERR_BUFFER_RANGE),
            ("GQ_ERR_FILE_RANGE", ERR_FILE_RANGE),
            ("GQ_ERR_IO", ERR_IO),
            ("GQ_ERR_SUBMIT", ERR_SUBMIT),
            ("GQ_ERR_STOPPED", ERR_STOPPED),
            ("GQ_PUMP_NOT_STARTED", PUMP_NOT_STARTED),
            ("GQ_PUMP_RUNNING", PUMP_RUNNING),
            ("GQ_PUMP_STOPPING", PUMP_STOPPING),
            ("GQ_PUMP_STOPPED", PUMP_STOPPED),
            ("GQ_PUMP_FAILED", PUMP_FAILED),
            ("GQ_QUEUE_MAGIC", QUEUE_MAGIC),
            ("GQ_QUEUE_VERSION", QUEUE_VERSION),
            ("GQ_OFF_STATE", slot_off::STATE),
            ("GQ_OFF_OP", slot_off::OP),
            ("GQ_OFF_FILE", slot_off::FILE),
            ("GQ_OFF_BUF", slot_off::BUF),
            ("GQ_OFF_FILE_OFFSET", slot_off::FILE_OFFSET),
            ("GQ_OFF_BUF_OFFSET", slot_off::BUF_OFFSET),
            ("GQ_OFF_LEN", slot_off::LEN),
            ("GQ_OFF_OWNER", slot_off::OWNER),
            ("GQ_OFF_TAG", slot_off::TAG),
            ("GQ_OFF_RESULT", slot_off::RESULT),
            ("GQ_OFF_ERROR", slot_off::ERROR),
            ("GQ_OFF_RESERVED0", slot_off::RESERVED0),
            ("GQ_OFF_RESERVED1", slot_off::RESERVED1),
            ("GQ_SLOT_BYTES", size_of::<IoSlot>() as u32),
            ("GQ_HEADER_PUMP_STATE", HEADER_PUMP_STATE),
            ("GQ_READY", status::READY),
            ("GQ_WOULD_BLOCK", status::WOULD_BLOCK),
            ("GQ_TIMED_OUT", status::TIMED_OUT),
            ("GQ_PUMP_STOPPED_ST", status::PUMP_STOPPED),
            ("GQ_NOT_PUBLISHED", status::NOT_PUBLISHED),
            ("GQ_LANE_FINISHED", PUMP_LANE_FINISHED),
            ("GQ_NO_SLOT", PUMP_NO_SLOT),
        ];
        for (k, v) in want {
            assert_eq!(consts.get(*k), Some(v), "{k} in gpu_uring_pump.glsl");
        }
    }
}
