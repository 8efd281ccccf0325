//! A CUDA device as a HAL [`Device`]: built-in programs ([`super::run`]), memory ([`super::memory`]) and PTX
//! kernels ([`super::kernel`]).

use std::sync::Arc;
use std::time::Duration;

use super::error::no_driver;
use super::{kernel, memory, run};
use crate::backend::hal::{
    AdapterInfo, BetweenDispatches, Device, DeviceBuffer, DeviceInfo, FormatCase, Grid, Kernel,
    KernelArg, KernelCode, KernelLayout, Placement,
};
use crate::backend::{DeviceError, Program, RunReport};
use crate::protocol::DeviceRing;

/// A CUDA device (never constructed until the driver binding exists).
pub(super) struct CudaDevice {
    pub(super) adapter: AdapterInfo,
    #[allow(dead_code)] // the run loop's per-dispatch limit, once launches exist
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

    fn run_with(
        &self,
        ring: &DeviceRing,
        lanes: u32,
        program: &Program,
        timeout: Duration,
        between: &mut BetweenDispatches<'_>,
    ) -> Result<RunReport, DeviceError> {
        run::run_builtin(ring, lanes, program, timeout, between)
    }

    fn format_probe(
        &self,
        _ring: &DeviceRing,
        _cases: &[FormatCase],
    ) -> Result<Vec<Vec<u8>>, DeviceError> {
        Err(no_driver("format_probe"))
    }

    fn lane_iter_budget(&self) -> u32 {
        30_000
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
        kernel::launch(self.adapter.caps.subgroup_size, kernel, args, grid, limit)
    }
}
