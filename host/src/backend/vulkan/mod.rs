//! The Vulkan backend: device lanes are compute-shader invocations running the GLSL side of the protocol
//! (`device-shaders/include/gpu_uring.glsl`) on the ring's arena, imported with `VK_EXT_external_memory_host`.
//!
//! How it works inside:
//! - The loader is opened at run time (`ash::Entry::load`), so the crate builds and runs where libvulkan is
//!   absent; no loader, no driver, or a device without what the protocol needs gives
//!   [`DeviceError::Unavailable`] with the reason.
//! - Adapters and their choice: [`adapter`].
//! - Built-in programs: [`run`]. A run imports the whole arena into a HOST_COHERENT memory type, creates a
//!   host-visible run buffer and dispatches the program's SPIR-V in workgroups of exactly one subgroup
//!   (local_size_x is a specialization constant): device-scope atomics in loops inside larger workgroups
//!   made lavapipe end invocations early.
//! - **Resumable dispatch.** lavapipe ends every loop of an invocation after 65535 iterations in total, so no
//!   program may rely on finishing in one dispatch. Each lane counts its loop iterations, starts no new work
//!   past a soft budget, and keeps its progress in its run-buffer state; the backend-neutral
//!   [`crate::backend::redispatch`] loop re-dispatches until every lane reports finished or the run's timeout
//!   expires ([`DeviceError::Timeout`]). Each dispatch is waited for at most `dispatch_timeout`; one that
//!   exceeds it is reported as a timeout and its resources are parked until its fence signals.
//! - Caller-supplied kernels ([`kernel`], [`memory`]): SPIR-V on the caller's buffers (device-local,
//!   host-visible, imported host memory) and/or the ring arena through the same run machinery.
//! - Every `unsafe` Vulkan call lives in `raw`.

mod adapter;
mod kernel;
mod memory;
mod raw;
mod run;

use std::sync::Arc;
use std::time::Duration;

use super::{
    AdapterInfo, Backend, BetweenDispatches, Device, DeviceBuffer, DeviceConfig, DeviceError,
    DeviceInfo, DeviceType, FormatCase, Grid, Kernel, KernelArg, KernelCode, KernelLayout,
    Placement, Program, RunReport,
};
use crate::protocol::DeviceRing;

/// Default soft loop budget per lane and dispatch on CPU-type devices (lavapipe; see the module docs). GPUs
/// get [`DEFAULT_GPU_ITER_BUDGET`]: they have no loop cap, and longer dispatches mean fewer relaunches.
pub const DEFAULT_ITER_BUDGET: u32 = 3_000;
/// Default soft loop budget per lane and dispatch on GPUs.
pub const DEFAULT_GPU_ITER_BUDGET: u32 = 30_000;

fn unavailable(reason: impl Into<String>) -> DeviceError {
    DeviceError::Unavailable {
        backend: "vulkan",
        reason: reason.into(),
    }
}

fn run_error(message: impl Into<String>) -> DeviceError {
    DeviceError::Run {
        backend: "vulkan",
        message: message.into(),
    }
}

/// The Vulkan backend ([`crate::backend::backends`]).
#[derive(Debug, Clone, Copy)]
pub struct VulkanBackend;

impl Backend for VulkanBackend {
    fn name(&self) -> &'static str {
        "vulkan"
    }

    fn adapters(&self) -> Result<Vec<AdapterInfo>, DeviceError> {
        let (_inst, phys) = adapter::enumerate()?;
        Ok(phys
            .iter()
            .enumerate()
            .map(|(i, p)| adapter::info(i, p))
            .collect())
    }

    fn open(
        &self,
        name: Option<&str>,
        gpu_only: bool,
        config: &DeviceConfig,
    ) -> Result<Box<dyn Device>, DeviceError> {
        let (inst, phys) = adapter::enumerate()?;
        let list: Vec<_> = phys
            .iter()
            .enumerate()
            .map(|(i, p)| adapter::info(i, p))
            .collect();
        let name = name.or(config.adapter.as_deref().filter(|_| !gpu_only));
        let chosen = adapter::choose(&list, name, gpu_only)?;
        let ctx = Arc::new(raw::Context::new(inst, &phys[chosen]).map_err(unavailable)?);
        let info = list[chosen].clone();
        let iter_budget = config
            .iter_budget
            .unwrap_or(if info.device_type == DeviceType::Cpu {
                DEFAULT_ITER_BUDGET
            } else {
                DEFAULT_GPU_ITER_BUDGET
            });
        Ok(Box::new(VulkanDevice {
            ctx,
            adapter: info,
            dispatch_timeout: config.dispatch_timeout,
            iter_budget,
        }))
    }
}

/// A Vulkan device.
pub(crate) struct VulkanDevice {
    ctx: Arc<raw::Context>,
    adapter: AdapterInfo,
    /// Longest a single dispatch may run before the run fails with [`DeviceError::Timeout`].
    dispatch_timeout: Duration,
    /// Soft loop budget per lane and dispatch (below lavapipe's 65535; see the module docs).
    iter_budget: u32,
}

impl VulkanDevice {
    /// The loop iterations one lane may spend per dispatch. lavapipe counts loop iterations per SIMD batch of a
    /// subgroup, and divergent paths run one after the other, so the batch can spend up to `subgroup_size`
    /// lanes' worth of iterations: a lane's share of the 65535 cap (with a factor 2 of headroom for uncounted
    /// loops) is the most it may spend on a CPU-type device; GPUs get at most 30 000.
    fn lane_budget(&self) -> u32 {
        let cap = if self.adapter.device_type == DeviceType::Cpu {
            60_000 / (2 * self.adapter.caps.subgroup_size.max(1))
        } else {
            30_000
        };
        self.iter_budget.clamp(64, cap)
    }
}

impl Device for VulkanDevice {
    fn info(&self) -> DeviceInfo {
        let a = &self.adapter;
        DeviceInfo {
            backend: "vulkan",
            name: a.name.clone(),
            driver: format!("{}; Vulkan {}; {}", a.driver, a.api_version, a.device_type),
            subgroup_size: a.caps.subgroup_size,
            device_type: a.device_type,
            caps: a.caps,
        }
    }

    fn run_with(
        &self,
        ring: &DeviceRing,
        lanes: u32,
        program: &Program,
        timeout: Duration,
        between: &mut BetweenDispatches<'_>,
    ) -> Result<RunReport, DeviceError> {
        self.run_builtin(ring, lanes, program, timeout, between)
    }

    fn format_probe(
        &self,
        ring: &DeviceRing,
        cases: &[FormatCase],
    ) -> Result<Vec<Vec<u8>>, DeviceError> {
        self.format_cases(ring, cases)
    }

    fn lane_iter_budget(&self) -> u32 {
        self.lane_budget()
    }

    fn alloc(&self, placement: Placement, bytes: usize) -> Result<DeviceBuffer, DeviceError> {
        self.alloc_buffer(placement, bytes)
    }

    unsafe fn import_host(
        &self,
        ptr: *mut u8,
        len: usize,
        owner: Arc<dyn Send + Sync>,
    ) -> Result<DeviceBuffer, DeviceError> {
        // SAFETY: the caller's contract (the trait's).
        unsafe { self.import_buffer(ptr, len, owner) }
    }

    unsafe fn load_kernel(
        &self,
        name: &str,
        code: KernelCode<'_>,
        layout: KernelLayout,
    ) -> Result<Kernel, DeviceError> {
        // SAFETY: the caller's contract (the trait's).
        unsafe { self.load(name, code, layout) }
    }

    fn launch(
        &self,
        kernel: &Kernel,
        args: &[KernelArg<'_>],
        grid: Grid,
        limit: Duration,
    ) -> Result<Duration, DeviceError> {
        self.launch_kernel(kernel, args, grid, limit)
    }
}

/// Old path of the run-buffer structures.
pub use super::run_buffer as shared;
