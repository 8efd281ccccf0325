//! A CUDA device as a HAL [`Device`]: memory ([`super::memory`]), PTX kernels ([`super::kernel`]) and their
//! launches ([`super::run`]), all in the device's primary context ([`raw::Context`]); and, as a
//! [`LibraryDevice`], the device library's kernels for the built-in programs: the committed `sm_90` cubin on
//! a compute capability 9.0 device (no JIT), the committed `compute_75` PTX elsewhere (JIT by the driver).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::raw::{Context, Module};
use super::run::Launcher;
use super::{kernel, memory, run};
use crate::backend::hal::{
    AdapterInfo, Device, DeviceBuffer, DeviceConfig, DeviceInfo, FenceStats, Grid, Kernel,
    KernelArg, KernelCode, KernelFormat, KernelLayout, LibraryDevice, Placement, Submission,
};
use crate::backend::library;
use crate::backend::DeviceError;

/// The device library as NVRTC compiled it for Turing and newer (JIT by the driver).
pub(super) const LIBRARY_PTX: &str =
    include_str!("../../../../kernels/bin/gpu_uring_kernels.compute_75.ptx");
/// The device library as Hopper machine code.
pub(super) const LIBRARY_SM90: &[u8] =
    include_bytes!("../../../../kernels/bin/gpu_uring_kernels.sm_90.cubin");

/// Default soft loop budget per lane and dispatch (the programs of the device library run to the end in one
/// launch; this is what caller-supplied resumable kernels are told).
const ITER_BUDGET: u32 = 30_000;

/// A CUDA device.
pub(super) struct CudaDevice {
    ctx: Arc<Context>,
    adapter: AdapterInfo,
    dispatch_timeout: Duration,
    iter_budget: u32,
    registry: memory::Registry,
    launcher: Launcher,
    /// The device library's module, loaded on first use (or why it could not be).
    library: OnceLock<Result<Arc<Module>, DeviceError>>,
}

impl CudaDevice {
    pub(super) fn new(
        ctx: Arc<Context>,
        adapter: AdapterInfo,
        config: &DeviceConfig,
    ) -> CudaDevice {
        CudaDevice {
            launcher: Launcher::new(ctx.clone()),
            ctx,
            adapter,
            dispatch_timeout: config.dispatch_timeout,
            iter_budget: config.iter_budget.unwrap_or(ITER_BUDGET).max(64),
            registry: memory::Registry::default(),
            library: OnceLock::new(),
        }
    }

    /// The device library's module: the sm_90 cubin on compute capability 9.0, else (or if the cubin does not
    /// load) the PTX.
    fn library_module(&self) -> Result<Arc<Module>, DeviceError> {
        self.library
            .get_or_init(|| {
                let mut ptx = LIBRARY_PTX.as_bytes().to_vec();
                ptx.push(0);
                // SAFETY: both images are kernels/build.sh's output for this library (checked in CI); the PTX
                // is NUL-terminated above.
                let load_ptx = || unsafe { Module::load(&self.ctx, &ptx) };
                let r = if self.ctx.props.compute == (9, 0) {
                    // SAFETY: as above.
                    unsafe { Module::load(&self.ctx, LIBRARY_SM90) }.or_else(|cubin| {
                        log::warn!("cuda: the sm_90 cubin did not load ({cubin}); using the PTX");
                        load_ptx()
                    })
                } else {
                    load_ptx()
                };
                r.map_err(DeviceError::from)
            })
            .clone()
    }
}

impl Device for CudaDevice {
    fn info(&self) -> DeviceInfo {
        let a = &self.adapter;
        DeviceInfo {
            backend: "cuda",
            name: a.name.clone(),
            driver: format!("{}; {}", a.driver, a.api_version),
            subgroup_size: a.caps.subgroup_size,
            device_type: a.device_type,
            caps: a.caps,
        }
    }

    fn lane_iter_budget(&self) -> u32 {
        self.iter_budget
    }

    fn kernel_formats(&self) -> &'static [KernelFormat] {
        &[KernelFormat::Ptx]
    }

    fn dispatch_limit(&self) -> Duration {
        self.dispatch_timeout
    }

    fn alloc(&self, placement: Placement, bytes: usize) -> Result<DeviceBuffer, DeviceError> {
        memory::alloc(&self.ctx, &self.registry, placement, bytes)
    }

    unsafe fn import_host(
        &self,
        ptr: *mut u8,
        len: usize,
        owner: Arc<dyn Send + Sync>,
    ) -> Result<DeviceBuffer, DeviceError> {
        // SAFETY: the caller's contract (the trait's).
        unsafe { memory::import(&self.ctx, &self.registry, ptr, len, owner) }
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
        run::launch(&self.launcher, &self.registry, kernel, args, grid, limit)
    }

    fn launch_async(
        &self,
        kernel: &Kernel,
        args: &[KernelArg<'_>],
        grid: Grid,
        limit: Duration,
    ) -> Result<Submission, DeviceError> {
        run::launch_async(&self.launcher, &self.registry, kernel, args, grid, limit)
    }

    fn fence_stats(&self) -> FenceStats {
        self.launcher.fences.stats()
    }

    fn library(&self) -> Option<&dyn LibraryDevice> {
        Some(self)
    }
}

impl LibraryDevice for CudaDevice {
    fn library_kernel(&self, name: &'static str) -> Result<Kernel, DeviceError> {
        let layout = library::kernel_layout("cuda", name)?;
        kernel::from_module(&self.library_module()?, name, layout)
    }

    fn write_buffer(&self, buf: &DeviceBuffer, at: usize, src: &[u8]) -> Result<(), DeviceError> {
        memory::write(buf, at, src)
    }

    fn read_buffer(
        &self,
        buf: &DeviceBuffer,
        at: usize,
        dst: &mut [u8],
    ) -> Result<(), DeviceError> {
        memory::read(buf, at, dst)
    }
}
