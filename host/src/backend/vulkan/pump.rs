//! io_queue programs on Vulkan: a compute shader whose lanes run the GLSL lane side of the megakernel pump
//! (`device-shaders/include/gpu_uring_pump.glsl`, PROTOCOL.md §Q3/§Q8) against a [`Pump`]'s arena.
//!
//! Built on the backend's caller-supplied kernel API ([`super::kernel`]): the pump arena (a separate
//! page-aligned mapping, [`crate::pump::PumpArena`]) is imported with [`VulkanDevice::import_host_memory`]
//! (`VK_EXT_external_memory_host`, HOST_COHERENT, like a ring arena), the import holding an `Arc` of it, so a
//! dispatch that outlives its time limit can never see it unmapped. Binding 0 is the arena, binding 1 a
//! host-visible run buffer holding [`PumpRunParams`] and one [`PumpLaneState`] per lane; the push constants are
//! the [`PumpLayout`]. Programs are resumable like the ring programs (module docs of `vulkan`): each lane keeps
//! its progress in its [`PumpLaneState`], spends at most the soft loop budget per dispatch, and the host
//! re-dispatches until every lane sets [`PUMP_LANE_FINISHED`] or the run's timeout expires.
//!
//! [`VulkanDevice::run_pump`] runs any caller-supplied SPIR-V that follows this binding scheme;
//! [`PumpProgram::STREAM`] (the `megakernel_stream` kernel) and [`PumpProgram::PROBE`] (layout echo,
//! exactly-once and validation tests) are built in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::kernel::{Binding, Placement};
use super::{run_error, shaders, Redispatch, VulkanDevice};
use crate::backend::DeviceError;
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
        spirv: shaders::PUMP_STREAM,
        builtin: true,
    };
    /// `pump_probe.comp`: layout echo (arg0 = 0), exactly-once READs (1), validation errors (2), withdrawal
    /// from a stopped pump (3), WRITE then FENCE (4).
    pub const PROBE: PumpProgram = PumpProgram {
        name: "pump_probe",
        spirv: shaders::PUMP_PROBE,
        builtin: true,
    };

    /// A caller's pump program.
    ///
    /// # Safety
    /// `spirv` must be a valid SPIR-V compute module for Vulkan 1.2 (entry point `main`) using only the
    /// binding scheme of this module — storage buffers at set 0 bindings 0 (the arena) and 1 (the run buffer),
    /// push constants within 64 bytes — and must not access either buffer out of bounds (as
    /// [`VulkanDevice::kernel`] requires).
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

impl VulkanDevice {
    /// Runs `program` on `lanes` lanes against `pump`'s io_queue: imports the pump arena, binds it with a run
    /// buffer holding `params` (its `lanes`, `iter_budget` and `dispatch` are set here), pushes the
    /// [`PumpLayout`], and re-dispatches until every lane reports [`PUMP_LANE_FINISHED`] or `timeout` expires
    /// ([`DeviceError::Timeout`]). The pump must be started for requests to complete (a program that only
    /// publishes may run before it starts). [`PumpRunReport::elapsed`] counts the dispatches only (not the
    /// import or the pipeline build).
    pub fn run_pump(
        &self,
        pump: &Pump,
        lanes: u32,
        program: PumpProgram,
        params: PumpRunParams,
        timeout: Duration,
    ) -> Result<PumpRunReport, DeviceError> {
        let sg = self.ctx.subgroup_size.max(1);
        if lanes == 0 || lanes > 65535 {
            return Err(run_error(format!("{lanes} lanes requested; 1..=65535")));
        }
        program.check(pump, lanes, &params).map_err(run_error)?;
        let mut params = params;
        params.lanes = lanes;
        params.iter_budget = self.lane_iter_budget();
        params.dispatch = 0;
        let layout: PumpLayout = pump.layout();
        let arena = pump.arena_shared();
        let (base, len) = arena.raw();
        let owner: Arc<dyn Send + Sync> = arena;
        // SAFETY: the pump arena is one page-aligned, writable anonymous mapping of `len` bytes (a multiple of
        // the page size), kept mapped by `owner` (an Arc of the arena) for as long as the import and every
        // dispatch using it exist.
        let arena_buf = unsafe { self.import_host_memory(base, len, owner) }?;
        let head = std::mem::size_of::<PumpRunParams>();
        let each = std::mem::size_of::<PumpLaneState>();
        let run_buf = self.buffer(Placement::HostVisible, head + lanes as usize * each)?;
        // SAFETY: the built-in programs are built by device-shaders/build.sh (checked in CI) for exactly this
        // binding scheme and stay inside the arena (offsets from the PumpLayout) and the run buffer (lane ids
        // below `lanes`); a caller's program carries the same promise (`PumpProgram::new`).
        let kernel = unsafe { self.kernel(program.name, program.spirv, 2) }?;
        let store = |at: usize, words: &[u32]| {
            for (i, w) in words.iter().enumerate() {
                run_buf.store_u32(at / 4 + i, *w);
            }
        };
        store(0, &bytemuck::cast::<PumpRunParams, [u32; 16]>(params));
        store(head, &vec![0u32; lanes as usize * each / 4]);
        let groups = lanes.div_ceil(sg);
        let bindings = [Binding::Buffer(&arena_buf), Binding::Buffer(&run_buf)];
        let push = bytemuck::bytes_of(&layout);
        let start = Instant::now();
        let mut pacer = Redispatch::new(start + timeout);
        let mut dispatches = 0u32;
        let states = loop {
            params.dispatch = dispatches;
            store(0, &bytemuck::cast::<PumpRunParams, [u32; 16]>(params));
            let limit = pacer.next_limit(self.dispatch_timeout);
            dispatches += 1;
            // Over its limit: DeviceError::Timeout; the dispatch stays parked with the arena until it ends.
            self.dispatch(&kernel, &bindings, push, groups, limit)?;
            let states: Vec<PumpLaneState> = (0..lanes as usize)
                .map(|l| {
                    let mut w = [0u32; 32];
                    for (i, x) in w.iter_mut().enumerate() {
                        *x = run_buf.load_u32((head + l * each) / 4 + i).unwrap_or(0);
                    }
                    bytemuck::cast(w)
                })
                .collect();
            if states.iter().all(|s| s.flags & PUMP_LANE_FINISHED != 0) {
                break states;
            }
            let signature: u64 = states
                .iter()
                .map(|s| {
                    s.seq as u64
                        + s.done as u64
                        + s.failed as u64
                        + s.issued as u64
                        + s.consumed as u64
                        + s.phase as u64
                        + s.hpos as u64
                })
                .sum();
            if pacer.after_unfinished_dispatch(signature) {
                let unfinished: Vec<_> = states
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.flags & PUMP_LANE_FINISHED == 0)
                    .collect();
                eprintln!(
                    "vulkan: pump run timed out after {dispatches} dispatches with {} lanes unfinished; first: {:?}; pump: {:?}",
                    unfinished.len(),
                    unfinished.first(),
                    pump.stats()
                );
                return Err(DeviceError::Timeout {
                    backend: "vulkan",
                    limit: timeout,
                });
            }
        };
        let elapsed = start.elapsed();
        Ok(PumpRunReport {
            lanes: states,
            elapsed,
            dispatches,
        })
    }
}
