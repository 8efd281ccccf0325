//! The CPU reference device as a HAL [`Device`]: memory ([`super::memory`]), native kernels
//! ([`super::kernel`]) and their launches ([`super::run`]: one thread per invocation); the built-in programs
//! run through them as native kernels ([`crate::backend::native`]), those that aggregate (print, NOPs, lane
//! stress, reads) one invocation per subgroup of `subgroup_size` lanes, the others one per lane.

use std::sync::Arc;
use std::time::Duration;

use super::{kernel, memory, run};
use crate::backend::hal::{
    Capabilities, Device, DeviceBuffer, DeviceInfo, DeviceType, FenceCounters, FenceStats, Grid,
    Kernel, KernelArg, KernelCode, KernelFormat, KernelLayout, Placement, Submission,
};
use crate::backend::DeviceError;
use crate::protocol::DEFAULT_BUDGET;

/// The CPU reference device.
#[derive(Debug, Clone)]
pub struct CpuDevice {
    /// Lanes per subgroup (8, like lavapipe's SIMD width): the aggregating built-in programs run one thread
    /// per subgroup of this many lanes (1: one thread per lane).
    pub subgroup_size: u32,
    /// Spin budget for each device-side wait (the built-in programs' `iter_budget`).
    pub budget: u32,
    /// Completion descriptors handed out ([`Device::fence_stats`]); clones share them.
    pub fences: Arc<FenceCounters>,
}

impl Default for CpuDevice {
    fn default() -> Self {
        CpuDevice {
            subgroup_size: 8,
            budget: DEFAULT_BUDGET,
            fences: Arc::default(),
        }
    }
}

impl Device for CpuDevice {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            backend: "cpu",
            name: "CPU reference device".into(),
            driver: format!(
                "one thread per lane, per subgroup in the aggregating programs, on {} cores",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ),
            subgroup_size: self.subgroup_size,
            device_type: DeviceType::Cpu,
            caps: Capabilities {
                subgroup_size: self.subgroup_size,
                atomics_64: true,
                host_import_alignment: Some(4),
                device_local_memory: false,
                host_native_atomics: true,
                lanes_are_host_threads: true,
            },
        }
    }

    fn lane_iter_budget(&self) -> u32 {
        self.budget
    }

    fn kernel_formats(&self) -> &'static [KernelFormat] {
        &[KernelFormat::Native]
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
        // SAFETY: the caller's contract (the trait's).
        unsafe { memory::import(ptr, len, owner) }
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
        run::launch(self.subgroup_size, kernel, args, grid, limit)
    }

    fn launch_async(
        &self,
        kernel: &Kernel,
        args: &[KernelArg<'_>],
        grid: Grid,
        limit: Duration,
    ) -> Result<Submission, DeviceError> {
        run::launch_async(self.subgroup_size, &self.fences, kernel, args, grid, limit)
    }

    fn fence_stats(&self) -> FenceStats {
        self.fences.stats()
    }
}
