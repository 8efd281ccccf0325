//! The Vulkan backend: device lanes are compute-shader invocations running the GLSL side of the protocol
//! (`device-shaders/include/gpu_uring.glsl`) on the ring's arena, imported with `VK_EXT_external_memory_host`.
//!
//! How it works inside:
//! - The loader is opened at run time (`ash::Entry::load`), so the crate builds and runs where libvulkan is
//!   absent; no loader, no driver, or a device without what the protocol needs gives
//!   [`DeviceError::Unavailable`] with the reason.
//! - Device choice ([`VulkanDevice::open`]): by index or case-insensitive name substring (`--device
//!   vulkan:NAME`, or the `GPU_URING_VULKAN_DEVICE` environment variable when no name is given), otherwise the
//!   best usable device: discrete, then integrated, then virtual, then CPU (lavapipe). `--device auto` uses
//!   [`VulkanDevice::open_auto`], which takes only a real GPU: lavapipe is a software rasteriser with a loop cap,
//!   and the CPU reference device is both faster and unbounded, so auto falls back to it instead (the skip
//!   reason says so; `--device vulkan` still picks lavapipe explicitly).
//! - A run imports the whole arena into a HOST_COHERENT memory type (the arena outlives the import: the run
//!   holds an [`crate::ring::ArenaKeepAlive`]), creates a host-visible *run buffer* (parameters, text table,
//!   per-lane state, [`shared`]), and dispatches the program's SPIR-V with the [`crate::ring::RingLayout`] as
//!   push constants, in workgroups of exactly one subgroup (local_size_x is a specialization constant):
//!   device-scope atomics in loops inside larger workgroups made lavapipe end invocations early.
//! - **Resumable dispatch.** lavapipe ends every loop of an invocation after 65535 iterations in total, so no
//!   program may rely on finishing in one dispatch. Each lane counts its loop iterations, starts no new work
//!   past a soft budget, and keeps its progress in its [`shared::LaneState`]; the host re-dispatches until every
//!   lane reports finished or the run's timeout expires ([`DeviceError::Timeout`]). A would-block is never a
//!   failure, only a reason to come back. Each dispatch is waited for at most `dispatch_timeout`; one that
//!   exceeds it is reported as a timeout and its resources are parked until its fence signals.
//!   [`VulkanDevice::run_program_with`] calls the host back after every dispatch: how a ring without SQPOLL
//!   gets its one `io_uring_enter` per dispatch (PROTOCOL.md §9).
//! - Caller-supplied shaders ([`kernel`]): experiments run their own SPIR-V on their own buffers (device-local,
//!   host-visible, imported host memory) and/or the ring arena through the same run machinery.
//! - io_queue programs ([`pump`]): GLSL lanes of the megakernel pump on a [`crate::pump::Pump`]'s arena, imported
//!   through the kernel API and re-dispatched like the built-in programs ([`VulkanDevice::run_pump`]).

pub mod kernel;
pub mod pump;
mod raw;
pub mod shaders;
pub mod shared;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ash::vk;

use super::{Device, DeviceError, DeviceInfo, LaneReport, Program, RunReport};
use crate::protocol::DeviceRing;
use shared::*;

/// Environment variable naming the Vulkan device (index or name substring) when `--device vulkan` gives none.
pub const DEVICE_ENV: &str = "GPU_URING_VULKAN_DEVICE";

/// Default soft loop budget per lane and dispatch on CPU-type devices (lavapipe; see the module docs). GPUs
/// get [`DEFAULT_GPU_ITER_BUDGET`]: they have no loop cap, and longer dispatches mean fewer relaunches.
pub const DEFAULT_ITER_BUDGET: u32 = 3_000;
/// Default soft loop budget per lane and dispatch on GPUs.
pub const DEFAULT_GPU_ITER_BUDGET: u32 = 30_000;

/// The host callback of [`VulkanDevice::run_program_with`]: called with the index of the dispatch that has
/// just completed and every lane's state after it.
pub type BetweenDispatches<'a> = dyn FnMut(u32, &[LaneState]) -> Result<(), DeviceError> + 'a;

/// A physical device as [`VulkanDevice::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VulkanPhysicalDevice {
    /// Index in the loader's enumeration (what `vulkan:INDEX` selects).
    pub index: usize,
    /// Device name.
    pub name: String,
    /// `discrete`, `integrated`, `virtual`, `cpu` or `other`.
    pub device_type: &'static str,
    /// Vulkan API version (major, minor, patch).
    pub api_version: (u32, u32, u32),
    /// Driver name and info.
    pub driver: String,
    /// Lanes per subgroup.
    pub subgroup_size: u32,
    /// `minImportedHostPointerAlignment` (0 without `VK_EXT_external_memory_host`).
    pub min_import_alignment: u64,
    /// `Ok` if the protocol can run on it, else why not.
    pub usable: Result<(), String>,
}

impl VulkanPhysicalDevice {
    fn rank(&self) -> u32 {
        match self.device_type {
            "discrete" => 0,
            "integrated" => 1,
            "virtual" => 2,
            "cpu" => 3,
            _ => 4,
        }
    }
}

fn type_name(t: vk::PhysicalDeviceType) -> &'static str {
    match t {
        vk::PhysicalDeviceType::DISCRETE_GPU => "discrete",
        vk::PhysicalDeviceType::INTEGRATED_GPU => "integrated",
        vk::PhysicalDeviceType::VIRTUAL_GPU => "virtual",
        vk::PhysicalDeviceType::CPU => "cpu",
        _ => "other",
    }
}

fn unavailable(reason: impl Into<String>) -> DeviceError {
    DeviceError::Unavailable {
        backend: "vulkan",
        reason: reason.into(),
    }
}

/// Pacing and deadline of a resumable run's re-dispatch loop, shared by the ring programs and the pump
/// programs: each dispatch gets the per-dispatch limit or what is left of the run's time, whichever is less,
/// and a dispatch in which no lane moved (its lanes only waited for the kernel, the SQPOLL thread or the
/// pump) is followed by a pause, 100 µs doubling to 1.6 ms while nothing moves, because on a CPU device
/// (lavapipe) the device's threads compete with those host threads for the same cores.
pub(crate) struct Redispatch {
    deadline: Instant,
    last_signature: u64,
    idle: u32,
}

impl Redispatch {
    pub(crate) fn new(deadline: Instant) -> Redispatch {
        Redispatch {
            deadline,
            last_signature: u64::MAX,
            idle: 0,
        }
    }

    /// The time limit of the next dispatch (at least 1 ms, so a run at its deadline still gets one try).
    pub(crate) fn next_limit(&self, per_dispatch: Duration) -> Duration {
        per_dispatch
            .min(self.deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(1))
    }

    /// After a dispatch that left some lane unfinished: `signature` sums the lanes' progress counters. Pauses
    /// when it did not change; returns true when the run's deadline has passed.
    pub(crate) fn after_unfinished_dispatch(&mut self, signature: u64) -> bool {
        if signature == self.last_signature {
            self.idle = (self.idle + 1).min(5);
            std::thread::sleep(Duration::from_micros(100 << (self.idle - 1)));
        } else {
            self.idle = 0;
            self.last_signature = signature;
        }
        Instant::now() >= self.deadline
    }
}

fn run_error(message: impl Into<String>) -> DeviceError {
    DeviceError::Run {
        backend: "vulkan",
        message: message.into(),
    }
}

fn enumerate() -> Result<(Arc<raw::Instance>, Vec<raw::PhysInfo>), DeviceError> {
    let inst = Arc::new(raw::Instance::load().map_err(unavailable)?);
    let phys = inst.physical_devices().map_err(unavailable)?;
    if phys.is_empty() {
        return Err(unavailable("the Vulkan loader found no physical device"));
    }
    Ok((inst, phys))
}

fn public(i: usize, p: &raw::PhysInfo) -> VulkanPhysicalDevice {
    VulkanPhysicalDevice {
        index: i,
        name: p.name.clone(),
        device_type: type_name(p.device_type),
        api_version: (
            vk::api_version_major(p.api_version),
            vk::api_version_minor(p.api_version),
            vk::api_version_patch(p.api_version),
        ),
        driver: p.driver.clone(),
        subgroup_size: p.subgroup_size,
        min_import_alignment: p.min_import_alignment,
        usable: p.usable.clone(),
    }
}

/// A Vulkan device running the built-in programs. Cheap to share: clone the `Arc` it lives in.
pub struct VulkanDevice {
    ctx: Arc<raw::Context>,
    phys: VulkanPhysicalDevice,
    /// Longest a single dispatch may run before the run fails with [`DeviceError::Timeout`].
    pub dispatch_timeout: Duration,
    /// Soft loop budget per lane and dispatch (below lavapipe's 65535; see the module docs).
    pub iter_budget: u32,
}

impl std::fmt::Debug for VulkanDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VulkanDevice")
            .field("phys", &self.phys)
            .finish()
    }
}

impl VulkanDevice {
    /// Every physical device the loader reports, with its properties and whether (and why not) it is usable.
    pub fn list() -> Result<Vec<VulkanPhysicalDevice>, DeviceError> {
        let (_inst, phys) = enumerate()?;
        Ok(phys.iter().enumerate().map(|(i, p)| public(i, p)).collect())
    }

    /// Opens a device: `name` is an index or a case-insensitive name substring; `None` uses
    /// [`DEVICE_ENV`] if set, else the best usable device of any type (lavapipe included).
    pub fn open(name: Option<&str>) -> Result<VulkanDevice, DeviceError> {
        let env = std::env::var(DEVICE_ENV).ok().filter(|s| !s.is_empty());
        let name = name.map(str::to_owned).or(env);
        Self::open_filtered(name.as_deref(), false)
    }

    /// The device `--device auto` uses: the best usable *GPU* (discrete, integrated or virtual). A CPU-type
    /// device such as lavapipe is refused with a reason: the CPU reference device is faster and has no loop
    /// cap, so auto prefers it.
    pub fn open_auto() -> Result<VulkanDevice, DeviceError> {
        Self::open_filtered(None, true)
    }

    fn open_filtered(name: Option<&str>, gpu_only: bool) -> Result<VulkanDevice, DeviceError> {
        let (inst, phys) = enumerate()?;
        let list: Vec<_> = phys.iter().enumerate().map(|(i, p)| public(i, p)).collect();
        let chosen = match name {
            Some(n) => {
                let by_index = n.parse::<usize>().ok().filter(|&i| i < list.len());
                let lower = n.to_lowercase();
                let found = by_index.or_else(|| {
                    list.iter()
                        .position(|d| d.name.to_lowercase().contains(&lower))
                });
                let i = found.ok_or_else(|| {
                    unavailable(format!(
                        "no Vulkan device matches {n:?} (devices: {})",
                        list.iter()
                            .map(|d| format!("{}: {}", d.index, d.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
                if let Err(why) = &list[i].usable {
                    return Err(unavailable(format!("{}: {why}", list[i].name)));
                }
                i
            }
            None => {
                let mut usable: Vec<_> = list.iter().filter(|d| d.usable.is_ok()).collect();
                usable.sort_by_key(|d| d.rank());
                let best = usable.first().ok_or_else(|| {
                    unavailable(format!(
                        "no usable Vulkan device: {}",
                        list.iter()
                            .map(|d| format!("{}: {}", d.name, d.usable.clone().unwrap_err()))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ))
                })?;
                if gpu_only && best.device_type == "cpu" {
                    return Err(unavailable(format!(
                        "only a CPU-type Vulkan device is present ({}); auto prefers the CPU reference device \
                         (faster, no loop cap) — use --device vulkan to run on it",
                        best.name
                    )));
                }
                best.index
            }
        };
        let ctx = Arc::new(raw::Context::new(inst, &phys[chosen]).map_err(unavailable)?);
        Ok(VulkanDevice {
            ctx,
            phys: list[chosen].clone(),
            dispatch_timeout: Duration::from_secs(60),
            iter_budget: std::env::var("GPU_URING_VULKAN_ITER_BUDGET")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(if list[chosen].device_type == "cpu" {
                    DEFAULT_ITER_BUDGET
                } else {
                    DEFAULT_GPU_ITER_BUDGET
                }),
        })
    }

    /// The built-in programs' names, as [`VulkanDevice::run_named`] takes them (one SPIR-V module each).
    pub const PROGRAMS: [&'static str; 8] = [
        "print",
        "nop",
        "read",
        "lane_stress",
        "edit_buffer",
        "layout",
        "exact",
        "hostile",
    ];

    /// Runs a built-in program by name with one size argument, for experiments that pick programs from the
    /// command line: `print` (lines per lane), `nop` (fire-and-forget NOPs per lane), `nop_wait` (waited NOPs),
    /// `lane_stress` (NOPs per lane), `edit_buffer` (steps), `layout` (ignored). `write`, `read`, `exact` and
    /// `hostile` need more arguments: use [`VulkanDevice::run_program`] with a [`Program`].
    pub fn run_named(
        &self,
        ring: &DeviceRing,
        lanes: u32,
        name: &str,
        count: u32,
        timeout: Duration,
    ) -> Result<(RunReport, Vec<LaneState>), DeviceError> {
        let program = match name {
            "print" => Program::Print { lines: count },
            "nop" => Program::Nop {
                ops: count,
                fire_and_forget: true,
            },
            "nop_wait" => Program::Nop {
                ops: count,
                fire_and_forget: false,
            },
            "lane_stress" => Program::LaneStress { ops: count },
            "edit_buffer" => Program::EditBuffer { steps: count },
            "layout" => Program::Layout,
            other => {
                return Err(run_error(format!(
                    "no built-in program {other:?} with one argument (print, nop, nop_wait, lane_stress, \
                     edit_buffer, layout)"
                )))
            }
        };
        self.run_program(ring, lanes, &program, timeout)
    }

    /// Formats each case with the shader's §7 formatter (one lane per case) and returns the bytes, to compare
    /// with [`crate::protocol::LineBuf`]. Needs a ring with at least `cases.len()` lanes and
    /// `128 × cases.len()` bytes of fixed buffer, which it overwrites.
    pub fn format_probe(
        &self,
        ring: &DeviceRing,
        cases: &[FormatCase],
    ) -> Result<Vec<Vec<u8>>, DeviceError> {
        let l = ring.layout();
        let n = cases.len() as u32;
        if n == 0 || n > l.lanes || (l.fixed_size as u64) < 128 * n as u64 {
            return Err(run_error(format!(
                "format_probe needs 1..={} cases and 128 bytes of fixed buffer per case",
                l.lanes
            )));
        }
        let v = ring.view();
        for (i, c) in cases.iter().enumerate() {
            let (kind, prec, val) = match *c {
                FormatCase::U64(x) => (0u32, 0u32, x),
                FormatCase::I64(x) => (1, 0, x as u64),
                FormatCase::Hex(x) => (2, 0, x),
                FormatCase::F32(x, p) => (3, p, x.to_bits() as u64),
            };
            let words = [kind, prec, val as u32, (val >> 32) as u32];
            v.write_bytes(l.fixed + 128 * i as u32, bytemuck::bytes_of(&words));
        }
        let plan = Plan {
            name: "format",
            spirv: shaders::FORMAT,
            params: RunParams {
                program: PROGRAM_FORMAT,
                lanes: n,
                count: n,
                iter_budget: self.iter_budget.clamp(64, 30_000),
                ..Default::default()
            },
            texts: &[],
        };
        self.run_plan(ring, n, plan, Duration::from_secs(60), &mut |_, _| Ok(()))?;
        Ok((0..n)
            .map(|i| {
                let mut len = [0u8; 4];
                v.read_bytes(l.fixed + 128 * i + 16, &mut len);
                let len = u32::from_le_bytes(len).min(108) as usize;
                let mut out = vec![0u8; len];
                v.read_bytes(l.fixed + 128 * i + 20, &mut out);
                out
            })
            .collect())
    }

    /// The physical device this runs on.
    pub fn physical(&self) -> &VulkanPhysicalDevice {
        &self.phys
    }

    /// Runs a built-in program and also returns every lane's final [`LaneState`] (for tests and experiments
    /// that look inside: dispatch counts, loop iterations, phases).
    pub fn run_program(
        &self,
        ring: &DeviceRing,
        lanes: u32,
        program: &Program,
        timeout: Duration,
    ) -> Result<(RunReport, Vec<LaneState>), DeviceError> {
        self.run_program_with(ring, lanes, program, timeout, &mut |_, _| Ok(()))
    }

    /// [`VulkanDevice::run_program`] with a host callback between dispatches: `between(i, states)` runs after
    /// dispatch `i` (0-based) has completed — its fence signalled, every lane's [`LaneState`] written back and
    /// passed in — and before dispatch `i + 1` is submitted; it also runs after the last dispatch. An error
    /// from it ends the run with that error (nothing is in flight then).
    ///
    /// This is how a ring without SQPOLL (`RingConfig::sqpoll = false`, `RING_FLAG_SQPOLL` clear) is driven
    /// from the host: lanes publish SQEs during a dispatch, and the callback submits them with one
    /// `io_uring_enter` ([`DeviceRing::submit_and_wait`]); lanes that need a completion, a credit or an SQ slot
    /// only a later enter can give yield the dispatch early (PROTOCOL.md §9) and resume in the next one.
    pub fn run_program_with(
        &self,
        ring: &DeviceRing,
        lanes: u32,
        program: &Program,
        timeout: Duration,
        between: &mut BetweenDispatches<'_>,
    ) -> Result<(RunReport, Vec<LaneState>), DeviceError> {
        let l = ring.layout();
        if lanes == 0 || lanes > l.lanes || lanes > 65535 {
            return Err(run_error(format!(
                "{lanes} lanes requested; the ring has 1..={}",
                l.lanes
            )));
        }
        let plan = self.plan(&l, lanes, program)?;
        self.run_plan(ring, lanes, plan, timeout, between)
    }

    fn run_plan(
        &self,
        ring: &DeviceRing,
        lanes: u32,
        plan: Plan,
        timeout: Duration,
        between: &mut BetweenDispatches<'_>,
    ) -> Result<(RunReport, Vec<LaneState>), DeviceError> {
        let l = ring.layout();
        let Plan {
            name,
            spirv,
            params,
            texts,
        } = plan;
        self.ctx.reclaim_orphans();
        let pipeline = self.ctx.pipeline(name, spirv).map_err(run_error)?;
        let run_len =
            std::mem::size_of::<RunHeader>() + lanes as usize * std::mem::size_of::<LaneState>();
        let sg = self.ctx.subgroup_size.max(1);
        let groups = lanes.div_ceil(sg);
        let push: [u8; 128] = bytemuck::cast(l);
        let mut run = raw::Run::new(
            &self.ctx,
            ring.arena_keepalive(),
            run_len,
            pipeline,
            &push,
            groups,
        )
        .map_err(run_error)?;
        let header = RunHeader::new(params, texts);
        {
            let bytes = run.run_bytes();
            bytes.fill(0);
            bytes[..std::mem::size_of::<RunHeader>()].copy_from_slice(bytemuck::bytes_of(&header));
        }
        let start = Instant::now();
        let mut pacer = Redispatch::new(start + timeout);
        let mut dispatches = 0u32;
        let trace = std::env::var_os("GPU_URING_VULKAN_TRACE").is_some();
        let states = loop {
            {
                let bytes = run.run_bytes();
                let p: &mut RunHeader =
                    bytemuck::from_bytes_mut(&mut bytes[..std::mem::size_of::<RunHeader>()]);
                p.params.dispatch = dispatches;
            }
            let now = Instant::now();
            let limit = pacer.next_limit(self.dispatch_timeout);
            dispatches += 1;
            match run.dispatch(limit).map_err(run_error)? {
                raw::Waited::Done => {}
                raw::Waited::TimedOut => {
                    return Err(DeviceError::Timeout {
                        backend: "vulkan",
                        limit: limit.min(timeout),
                    });
                }
            }
            let bytes = run.run_bytes();
            let states: Vec<LaneState> = bytes[std::mem::size_of::<RunHeader>()..]
                .chunks_exact(std::mem::size_of::<LaneState>())
                .map(bytemuck::pod_read_unaligned)
                .collect();
            if trace {
                let fin = states
                    .iter()
                    .filter(|s| s.flags & LANE_FINISHED != 0)
                    .count();
                let done: u64 = states.iter().map(|s| s.done as u64).sum();
                eprintln!(
                    "vulkan trace: dispatch {dispatches} took {:?}: {fin} lanes finished, {done} ops done; lane 0 {:?}",
                    now.elapsed(),
                    states[0]
                );
                let v = ring.view();
                let ld = |o: u32| v.u32_at(o).load(std::sync::atomic::Ordering::Acquire);
                let c = v.control_snapshot();
                eprintln!(
                    "  sq head {} tail {} reserve {} pub {:#x}; cq head {} tail {} claim {} pub {:#x}; credits {}; sqflags {:#x}",
                    ld(l.sq_head), ld(l.sq_tail), c.sq_reserve, c.sq_pub, ld(l.cq_head), ld(l.cq_tail),
                    c.cq_claim, c.cq_pub, c.cq_credits, ld(l.sq_flags)
                );
            }
            between(dispatches - 1, &states)?;
            if states.iter().all(|s| s.flags & LANE_FINISHED != 0) {
                break states;
            }
            let signature: u64 = states
                .iter()
                .map(|s| s.seq as u64 + s.done as u64 + s.phase as u64 + s.flags as u64)
                .sum();
            if pacer.after_unfinished_dispatch(signature) {
                let unfinished: Vec<_> = states
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.flags & LANE_FINISHED == 0)
                    .collect();
                eprintln!(
                    "vulkan: run timed out after {dispatches} dispatches with {} lanes unfinished; first: {:?}; control: {:?}",
                    unfinished.len(),
                    unfinished.first(),
                    ring.view().control_snapshot()
                );
                return Err(DeviceError::Timeout {
                    backend: "vulkan",
                    limit: timeout,
                });
            }
        };
        let elapsed = start.elapsed();
        debug_assert!(!run.in_flight());
        drop(run);
        let lanes_v = states
            .iter()
            .map(|s| LaneReport {
                done: s.done as u64,
                failed: s.failed as u64,
                checksum: s.checksum,
                bytes: s.bytes,
            })
            .collect();
        Ok((
            RunReport {
                lanes: lanes_v,
                elapsed,
                dispatches,
            },
            states,
        ))
    }

    /// Which SPIR-V, parameters and text a program needs; refuses what the shaders cannot do.
    /// The loop iterations one lane may spend per dispatch. lavapipe counts loop iterations per SIMD batch of a
    /// subgroup, and divergent paths run one after the other, so the batch can spend up to `subgroup_size`
    /// lanes' worth of iterations: a lane's share of the 65535 cap (with a factor 2 of headroom for uncounted
    /// loops) is the most it may spend on a CPU-type device; GPUs get at most 30 000.
    pub(crate) fn lane_iter_budget(&self) -> u32 {
        let cap = if self.phys.device_type == "cpu" {
            60_000 / (2 * self.phys.subgroup_size.max(1))
        } else {
            30_000
        };
        self.iter_budget.clamp(64, cap)
    }

    fn plan(
        &self,
        l: &crate::ring::RingLayout,
        lanes: u32,
        program: &Program,
    ) -> Result<Plan, DeviceError> {
        let mut p = RunParams {
            lanes,
            iter_budget: self.lane_iter_budget(),
            ..Default::default()
        };
        let fixed_needs = |bytes: u64, what: &str| {
            if (l.fixed_size as u64) < bytes {
                Err(run_error(format!(
                    "{what} needs a fixed buffer of at least {bytes} bytes (RingConfig::fixed_buffer_bytes), the ring has {}",
                    l.fixed_size
                )))
            } else {
                Ok(())
            }
        };
        let r = match *program {
            Program::Print { lines } => {
                p.program = PROGRAM_PRINT;
                p.count = lines;
                ("print", shaders::PRINT, &PRINT_TEXT[..])
            }
            Program::Nop {
                ops,
                fire_and_forget,
            } => {
                p.program = PROGRAM_NOP;
                p.count = ops;
                p.arg0 = if fire_and_forget { 0 } else { 1 };
                ("nop", shaders::NOP, &[][..])
            }
            Program::Write { file, ops, len } => {
                p.program = PROGRAM_NOP;
                p.count = ops;
                p.arg0 = 2;
                p.arg1 = file;
                p.arg2 = len.min(l.line_bytes);
                ("nop", shaders::NOP, &[][..])
            }
            Program::Read { file, chunk, total } => {
                // A chunk's checksum (chunk / 4 loop iterations) runs inside one dispatch's loop budget.
                let max_chunk = (4 * p.iter_budget).min(16384) & !3;
                if chunk == 0 || chunk % 4 != 0 || chunk > max_chunk {
                    return Err(run_error(format!(
                        "Read chunk must be a multiple of 4 in 4..={max_chunk} on this Vulkan device (a chunk's \
                         checksum runs within one dispatch's loop budget), got {chunk}"
                    )));
                }
                fixed_needs(lanes as u64 * chunk as u64, "Read")?;
                p.program = PROGRAM_READ;
                p.arg0 = file;
                p.arg1 = chunk;
                p.total = total;
                ("read", shaders::READ, &[][..])
            }
            Program::LaneStress { ops } => {
                p.program = PROGRAM_LANE_STRESS;
                p.count = ops;
                ("lane_stress", shaders::LANE_STRESS, &[][..])
            }
            Program::EditBuffer { steps } => {
                fixed_needs(lanes as u64 * 8, "EditBuffer")?;
                p.program = PROGRAM_EDIT_BUFFER;
                p.count = steps;
                ("edit_buffer", shaders::EDIT_BUFFER, &[][..])
            }
            Program::Exact { count } => {
                fixed_needs(count as u64 * 68, "Exact")?;
                p.program = PROGRAM_EXACT;
                p.count = count;
                ("exact", shaders::EXACT, &[][..])
            }
            Program::Hostile { case } => {
                p.program = PROGRAM_HOSTILE;
                p.count = 1;
                p.arg0 = case.code();
                ("hostile", shaders::HOSTILE, &[][..])
            }
            Program::Layout => {
                fixed_needs(lanes as u64 * 256, "Layout")?;
                p.program = PROGRAM_LAYOUT;
                p.count = 1;
                ("layout", shaders::LAYOUT, &[][..])
            }
        };
        Ok(Plan {
            name: r.0,
            spirv: r.1,
            params: p,
            texts: r.2,
        })
    }
}

/// One value for [`VulkanDevice::format_probe`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FormatCase {
    /// Unsigned decimal ([`crate::protocol::LineBuf::u64`]).
    U64(u64),
    /// Signed decimal ([`crate::protocol::LineBuf::i64`]).
    I64(i64),
    /// Lowercase hex ([`crate::protocol::LineBuf::hex`]).
    Hex(u64),
    /// A float with a precision ([`crate::protocol::LineBuf::f32`]).
    F32(f32, u32),
}

/// What [`VulkanDevice::plan`] decides for a program.
struct Plan {
    name: &'static str,
    spirv: &'static [u8],
    params: RunParams,
    texts: &'static [&'static str],
}

impl Device for VulkanDevice {
    fn info(&self) -> DeviceInfo {
        let (ma, mi, pa) = self.phys.api_version;
        DeviceInfo {
            backend: "vulkan",
            name: self.phys.name.clone(),
            driver: format!(
                "{}; Vulkan {ma}.{mi}.{pa}; {}",
                self.phys.driver, self.phys.device_type
            ),
            subgroup_size: self.phys.subgroup_size,
        }
    }

    fn run(
        &self,
        ring: &DeviceRing,
        lanes: u32,
        program: &Program,
        timeout: Duration,
    ) -> Result<RunReport, DeviceError> {
        self.run_program(ring, lanes, program, timeout)
            .map(|(r, _)| r)
    }
}
