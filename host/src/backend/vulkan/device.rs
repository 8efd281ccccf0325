//! A Vulkan device as a HAL [`Device`]: memory ([`super::memory`]), SPIR-V kernels ([`super::kernel`]) and
//! their launches ([`super::run`]), all on one [`raw::Context`]. The built-in programs run through them
//! (their SPIR-V kernels, kept loaded in the device's [`KernelCache`]).

use std::sync::Arc;
use std::time::Duration;

use super::run::Recorder;
use super::{kernel, memory, raw, run};
use crate::backend::hal::{
    AdapterInfo, Device, DeviceBuffer, DeviceConfig, DeviceInfo, DeviceType, FenceCounters,
    FenceKind, FenceStats, Grid, Kernel, KernelArg, KernelCache, KernelCode, KernelFormat,
    KernelLayout, Placement, Submission,
};
use crate::backend::DeviceError;

/// Default soft loop budget per lane and dispatch on CPU-type devices (lavapipe; see the module docs). GPUs
/// get [`DEFAULT_GPU_ITER_BUDGET`]: they have no loop cap, and longer dispatches mean fewer relaunches.
pub const DEFAULT_ITER_BUDGET: u32 = 3_000;
/// Default soft loop budget per lane and dispatch on GPUs.
pub const DEFAULT_GPU_ITER_BUDGET: u32 = 30_000;

/// A Vulkan device.
pub(super) struct VulkanDevice {
    ctx: Arc<raw::Context>,
    adapter: AdapterInfo,
    /// Longest a single dispatch may run before the run fails with [`DeviceError::Timeout`].
    dispatch_timeout: Duration,
    /// Soft loop budget per lane and dispatch (below lavapipe's 65535; see the module docs).
    iter_budget: u32,
    /// The built-in programs' kernels, loaded on first use.
    kernels: KernelCache,
    /// Launches kept recorded for re-submission.
    recorder: Recorder,
    /// Completion descriptors handed out by asynchronous launches.
    fences: Arc<FenceCounters>,
}

impl VulkanDevice {
    /// The device on `ctx`, the context of `adapter`, configured by `config`.
    pub(super) fn new(
        ctx: Arc<raw::Context>,
        adapter: AdapterInfo,
        config: &DeviceConfig,
    ) -> VulkanDevice {
        let iter_budget = config
            .iter_budget
            .unwrap_or(if adapter.device_type == DeviceType::Cpu {
                DEFAULT_ITER_BUDGET
            } else {
                DEFAULT_GPU_ITER_BUDGET
            });
        VulkanDevice {
            ctx,
            adapter,
            dispatch_timeout: config.dispatch_timeout,
            iter_budget,
            kernels: KernelCache::default(),
            recorder: Recorder::default(),
            fences: Arc::default(),
        }
    }

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

    fn lane_iter_budget(&self) -> u32 {
        self.lane_budget()
    }

    fn kernel_formats(&self) -> &'static [KernelFormat] {
        &[KernelFormat::SpirV]
    }

    fn kernel_cache(&self) -> Option<&KernelCache> {
        Some(&self.kernels)
    }

    fn dispatch_limit(&self) -> Duration {
        self.dispatch_timeout
    }

    fn alloc(&self, placement: Placement, bytes: usize) -> Result<DeviceBuffer, DeviceError> {
        memory::alloc(&self.ctx, placement, bytes)
    }

    unsafe fn import_host(
        &self,
        ptr: *mut u8,
        len: usize,
        owner: Arc<dyn Send + Sync>,
    ) -> Result<DeviceBuffer, DeviceError> {
        // SAFETY: the caller's contract (the trait's).
        unsafe { memory::import(&self.ctx, ptr, len, owner) }
    }

    unsafe fn load_kernel(
        &self,
        name: &str,
        code: KernelCode<'_>,
        layout: KernelLayout,
    ) -> Result<Kernel, DeviceError> {
        // SAFETY: the caller's contract (the trait's).
        unsafe { kernel::load(&self.ctx, name, code, layout) }
    }

    fn launch(
        &self,
        kernel: &Kernel,
        args: &[KernelArg<'_>],
        grid: Grid,
        limit: Duration,
    ) -> Result<Duration, DeviceError> {
        run::launch(&self.ctx, &self.recorder, kernel, args, grid, limit)
    }

    fn launch_async(
        &self,
        kernel: &Kernel,
        args: &[KernelArg<'_>],
        grid: Grid,
        limit: Duration,
    ) -> Result<Submission, DeviceError> {
        run::launch_async(&self.ctx, &self.fences, kernel, args, grid, limit)
    }

    fn fence_kind(&self) -> FenceKind {
        if self.ctx.sem_fd.is_some() {
            FenceKind::SyncFile
        } else {
            FenceKind::Emulated
        }
    }

    fn fence_stats(&self) -> FenceStats {
        self.fences.stats()
    }
}
