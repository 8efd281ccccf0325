//! The CUDA backend skeleton (cargo feature `cuda`): compiles, enumerates no adapter and opens no device —
//! every entry point returns a typed error — but its launch path shows how the HAL's argument list maps onto
//! kernel parameters (`cuLaunchKernel`): argument `i` is parameter `i`, a buffer as its device pointer, bytes by
//! value; the grid is `groups` blocks of `group_size` threads (0: one warp). Loading takes PTX
//! ([`KernelCode::Ptx`]). A driver binding (e.g. dynamic loading of `libcuda.so`) fills these files in.

mod adapter;
mod kernel;
mod memory;
mod run;

use std::sync::Arc;
use std::time::Duration;

use super::{
    AdapterInfo, Backend, BetweenDispatches, Device, DeviceBuffer, DeviceConfig, DeviceError,
    DeviceInfo, FormatCase, Grid, Kernel, KernelArg, KernelCode, KernelLayout, Placement, Program,
    RunReport,
};
use crate::protocol::DeviceRing;

/// Why nothing runs yet.
fn no_driver(what: &str) -> DeviceError {
    DeviceError::Unsupported {
        backend: "cuda",
        what: format!("{what} (the CUDA backend has no driver binding yet)"),
    }
}

/// The CUDA backend ([`crate::backend::backends`]).
#[derive(Debug, Clone, Copy)]
pub struct CudaBackend;

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn adapters(&self) -> Result<Vec<AdapterInfo>, DeviceError> {
        adapter::enumerate()
    }

    fn open(
        &self,
        name: Option<&str>,
        _gpu_only: bool,
        config: &DeviceConfig,
    ) -> Result<Box<dyn Device>, DeviceError> {
        let list = adapter::enumerate()?;
        let want = name.or(config.adapter.as_deref());
        let info = adapter::choose(&list, want)?;
        Ok(Box::new(CudaDevice {
            adapter: info,
            dispatch_timeout: config.dispatch_timeout,
        }))
    }
}

/// A CUDA device (never constructed until the driver binding exists).
struct CudaDevice {
    adapter: AdapterInfo,
    #[allow(dead_code)]
    dispatch_timeout: Duration,
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
        run::run_builtin(self, ring, lanes, program, timeout, between)
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
        kernel::launch(self, kernel, args, grid, limit)
    }
}
