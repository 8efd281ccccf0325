//! io_queue programs on any device that loads their kernels: a kernel whose lanes run the device lane side
//! of the megakernel pump (`device-shaders/include/gpu_uring_pump.glsl`, PROTOCOL.md §Q3/§Q8) against a
//! [`Pump`]'s arena.
//!
//! Built on the HAL's kernel API ([`Device::import_host`], [`Device::alloc`], [`Device::load_kernel`],
//! [`Device::launch`]): the pump arena (a separate page-aligned mapping, [`crate::pump::PumpArena`]) is
//! imported, the import holding an `Arc` of it, so a launch that outlives its time limit can never see it
//! unmapped. Argument 0 is the arena (host-shared), argument 1 a host-visible run buffer holding
//! [`PumpRunParams`] and one [`PumpLaneState`] per lane, argument 2 the device-local block (the lanes' slot
//! ownership words, PROTOCOL.md §Q1: a [`Placement::DeviceLocal`] buffer filled from the arena's host copy
//! before the first dispatch and copied back after the last, or the imported host copy where the device has
//! no host-mappable device-local memory), argument 3 the [`PumpLayout`] by value. Programs are resumable like the ring
//! programs: each lane keeps its progress in its [`PumpLaneState`], spends at most the soft loop budget per
//! dispatch, and the backend-neutral re-dispatch loop ([`crate::backend::redispatch`]) launches again until
//! every lane sets [`PUMP_LANE_FINISHED`] or the run's timeout expires.
//!
//! [`run_pump`] runs any caller-supplied kernel that follows this argument scheme; [`PumpProgram::STREAM`]
//! (the `megakernel_stream` kernel) and [`PumpProgram::PROBE`] (layout echo, exactly-once and validation
//! tests) are built in; a device running the CUDA/HIP device library runs STREAM on its `gu_pump_stream`
//! kernel (one launch) and PROBE on its `gu_pump_probe` kernel (this module's arguments and re-dispatch loop)
//! ([`super::library`]), and refuses caller programs (SPIR-V) as unsupported.

use std::sync::Arc;
use std::time::Duration;

use super::error::DeviceError;
use super::hal::{Device, Grid, KernelArg, KernelCode, KernelLayout, Placement};
use super::redispatch::{run_resumable, Resumable};
use super::spirv;
use crate::pump::{Pump, PumpLayout};

pub use crate::abi::run::{PumpLaneState, PumpRunParams, PUMP_LANE_FINISHED, PUMP_NO_SLOT};

/// Lane-side statuses the GLSL io_queue functions return ([`crate::abi::QueueStatus`]), recorded in
/// `PumpLaneState::last_status`.
pub mod status {
    use crate::abi::QueueStatus;

    /// Complete (DONE or FAILED): the result was read.
    pub const READY: u32 = QueueStatus::Ready as u32;
    /// Not complete yet (a poll), or no free slot (an allocation).
    pub const WOULD_BLOCK: u32 = QueueStatus::WouldBlock as u32;
    /// A bounded wait ran out of budget; the request is still the pump's.
    pub const TIMED_OUT: u32 = QueueStatus::TimedOut as u32;
    /// The pump stopped and never claimed the request: the lane withdrew it.
    pub const PUMP_STOPPED: u32 = QueueStatus::PumpStopped as u32;
    /// The slot holds no published request.
    pub const NOT_PUBLISHED: u32 = QueueStatus::NotPublished as u32;
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
    /// from a stopped pump (3), WRITE then FENCE (4), and a hostile lane that publishes a slot the pump holds
    /// a second time (5).
    pub const PROBE: PumpProgram = PumpProgram {
        name: "pump_probe",
        spirv: spirv::PUMP_PROBE,
        builtin: true,
    };

    /// A caller's pump program.
    ///
    /// # Safety
    /// `spirv` must be a valid SPIR-V compute module for Vulkan 1.2 (entry point `main`) using only the
    /// argument scheme of this module — storage buffers at set 0 bindings 0 (the arena), 1 (the run buffer)
    /// and 2 (the device-local block), push constants within 64 bytes — and must not access either buffer out of bounds (as
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
            (_, 5) => chunk + 4,
            _ => 0,
        };
        let chunked = self.name == "pump_stream" || matches!(p.arg0, 1 | 4 | 5);
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
    let library_kernel = super::library::resumable_pump_kernel(program.name, program.builtin);
    if let (Some(lib), None) = (dev.library(), library_kernel) {
        let (lanes, elapsed) =
            super::library::run_pump(dev, lib, pump, lanes, program.name, params, timeout)?;
        return Ok(PumpRunReport {
            lanes,
            elapsed,
            dispatches: 1,
        });
    }
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
    let local = LocalBlock::new(dev, pump)?;
    let klayout = KernelLayout {
        buffers: 3,
        value_bytes: std::mem::size_of::<PumpLayout>() as u32,
    };
    let kernel = match (dev.library(), library_kernel) {
        // The device library's kernel for the program: the same argument scheme (kernels/README.md).
        (Some(lib), Some(name)) => lib.library_kernel(name)?,
        // SAFETY: the built-in programs are built by device-shaders/build.sh (checked in CI) for exactly this
        // argument scheme and stay inside the arena (offsets from the PumpLayout) and the run buffer (lane ids
        // below `lanes`); a caller's program carries the same promise (`PumpProgram::new`).
        _ => unsafe { dev.load_kernel(program.name, KernelCode::SpirV(program.spirv), klayout) }?,
    };
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
        KernelArg::Buffer(&local.buffer),
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
    local.copy_in(dev, pump)?;
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
    // Copied back however the run ended (the pump and the next run read the host copy).
    let copied = local.copy_out(dev, pump);
    if r.is_err() {
        log::warn!(
            "{}: pump run ended early; pump: {:?}",
            info.backend,
            pump.stats()
        );
    }
    let r = r?;
    copied?;
    Ok(PumpRunReport {
        lanes: r.states,
        elapsed: r.elapsed,
        dispatches: r.dispatches,
    })
}

/// Where a run's device-local block lives (PROTOCOL.md §Q1): a device-local buffer the host fills before the
/// run and reads back after it, or the arena's host copy imported as is. On a device running the device
/// library the rule is the library's ([`super::library`]): the host copy itself only with coherent host-native
/// atomics, else a device copy the driver fills and reads back (no atomic read-modify-write crosses the bus).
struct LocalBlock {
    buffer: super::hal::DeviceBuffer,
    /// Whether `buffer` is a copy of the host copy (filled before the run, copied back after it).
    copied: bool,
    words: u32,
}

impl LocalBlock {
    fn new(dev: &dyn Device, pump: &Pump) -> Result<LocalBlock, DeviceError> {
        let words = pump.layout().local_size.div_ceil(4);
        let info = dev.info();
        let device_copy = match dev.library() {
            Some(_) => !info.caps.host_native_atomics,
            None => !info.caps.lanes_are_host_threads,
        };
        if device_copy {
            let buffer = dev.alloc(Placement::DeviceLocal, words as usize * 4)?;
            if buffer.host_accessible() || dev.library().is_some() {
                return Ok(LocalBlock {
                    buffer,
                    copied: true,
                    words,
                });
            }
            log::debug!(
                "{}: device-local block not host-mappable; importing the host copy instead",
                info.backend
            );
        }
        let arena = pump.arena_shared();
        let (ptr, len) = arena.local_raw();
        let owner: Arc<dyn Send + Sync> = arena;
        // SAFETY: the device-local block's host copy is one page-aligned, writable anonymous mapping of `len`
        // bytes (a multiple of the page size), kept mapped by `owner` (an Arc of the arena that owns it) for as
        // long as the import and every launch using it exist; lanes touch it only atomically.
        let buffer = unsafe { dev.import_host(ptr, len, owner) }?;
        Ok(LocalBlock {
            buffer,
            copied: false,
            words,
        })
    }

    /// Before the first dispatch: the host copy into the device's buffer (no run is in progress: the host may
    /// read the device-local block) — by the device library's driver copy, or by mapped stores.
    fn copy_in(&self, dev: &dyn Device, pump: &Pump) -> Result<(), DeviceError> {
        if !self.copied {
            return Ok(());
        }
        let v = pump.view();
        // Acquire: pairs with the last writer's release of each ownership word.
        let words: Vec<u32> = (0..self.words.min(v.layout().nslots))
            .map(|i| v.own(i).load(std::sync::atomic::Ordering::Acquire))
            .collect();
        match dev.library() {
            Some(lib) => lib.write_buffer(&self.buffer, 0, bytemuck::cast_slice(&words)),
            None => {
                for (i, w) in words.iter().enumerate() {
                    self.buffer.store_u32(i, *w);
                }
                Ok(())
            }
        }
    }

    /// After the last dispatch (or a failed one): the device's buffer back into the host copy.
    fn copy_out(&self, dev: &dyn Device, pump: &Pump) -> Result<(), DeviceError> {
        if !self.copied {
            return Ok(());
        }
        let v = pump.view();
        let n = self.words.min(v.layout().nslots) as usize;
        let words: Vec<Option<u32>> = match dev.library() {
            Some(lib) => {
                let mut bytes = vec![0u8; n * 4];
                lib.read_buffer(&self.buffer, 0, &mut bytes)?;
                bytes
                    .chunks_exact(4)
                    .map(|w| Some(u32::from_le_bytes([w[0], w[1], w[2], w[3]])))
                    .collect()
            }
            None => (0..n).map(|i| self.buffer.load_u32(i)).collect(),
        };
        for (i, w) in words.into_iter().enumerate() {
            if let Some(w) = w {
                // Release: the pump and the next run see the device's final ownership words.
                v.own(i as u32)
                    .store(w, std::sync::atomic::Ordering::Release);
            }
        }
        Ok(())
    }
}
