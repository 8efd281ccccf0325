//! A CUDA device as a HAL [`Device`]: memory ([`super::memory`]), PTX kernels ([`super::kernel`]) and their
//! launches ([`super::run`]).

use std::sync::Arc;
use std::time::Duration;

use super::{kernel, memory, run};
use crate::backend::builtin;
use crate::backend::hal::{
    AdapterInfo, BetweenDispatches, Device, DeviceBuffer, DeviceInfo, FormatCase, Grid, Kernel,
    KernelArg, KernelCode, KernelFormat, KernelLayout, Placement,
};
use crate::backend::{DeviceError, Program, RunReport};
use crate::protocol::DeviceRing;

/// A CUDA device (never constructed until the driver binding exists).
pub(super) struct CudaDevice {
    pub(super) adapter: AdapterInfo,
    pub(super) dispatch_timeout: Duration,
}

impl Device for CudaDevice {
    fn info(&self) -> DeviceInfo {
        let a = &self.adapter;
        DeviceInfo {
            backend: "cuda",
            name: a.name.clone(),
            driver: format!("{}; CUDA {}", a.driver, a.api_version),
            subgroup_size: a.caps.subgroup_size,
            device_type: a.device_type,
            caps: a.caps,
        }
    }

    fn lane_iter_budget(&self) -> u32 {
        30_000
    }

    fn kernel_formats(&self) -> &'static [KernelFormat] {
        &[KernelFormat::Ptx]
    }

    fn dispatch_limit(&self) -> Duration {
        self.dispatch_timeout
    }

    fn alloc(&self, placement: Placement, bytes: usize) -> Result<DeviceBuffer, DeviceError> {
        memory::alloc(placement, bytes)
    }

    unsafe fn import_host(
        &self,
        ptr: *mut u8,
        len: usize,
        owner: Arc<dyn Send + Sync>,
    ) -> Result<DeviceBuffer, DeviceError> {
        memory::import(ptr, len, owner)
    }

    unsafe fn load_kernel(
        &self,
        name: &str,
        code: KernelCode<'_>,
        layout: KernelLayout,
    ) -> Result<Kernel, DeviceError> {
        kernel::load(name, code, layout)
    }

    fn launch(
        &self,
        kernel: &Kernel,
        args: &[KernelArg<'_>],
        grid: Grid,
        limit: Duration,
    ) -> Result<Duration, DeviceError> {
        run::launch(self.adapter.caps.subgroup_size, kernel, args, grid, limit)
    }
}
