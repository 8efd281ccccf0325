//! A HIP device as a HAL [`Device`]: memory ([`super::memory`]), code-object kernels ([`super::kernel`]) and
//! their launches ([`super::run`]); and, as a [`LibraryDevice`], the device library's kernels for the built-in
//! programs from the committed code object for the device's ISA ([`CODE_OBJECTS`]).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::raw::{Gpu, Module};
use super::run::Launcher;
use super::{kernel, memory, run};
use crate::backend::hal::{
    AdapterInfo, Device, DeviceBuffer, DeviceConfig, DeviceInfo, FenceStats, Grid, Kernel,
    KernelArg, KernelCode, KernelFormat, KernelLayout, LibraryDevice, Placement, Submission,
};
use crate::backend::library;
use crate::backend::DeviceError;

macro_rules! code_objects {
    ($($gfx:literal),* $(,)?) => {
        /// The device library's code objects (`hipcc --genco`, kernels/bin), by ISA.
        pub(super) const CODE_OBJECTS: &[(&str, &[u8])] = &[$(
            ($gfx, include_bytes!(concat!("../../../../kernels/bin/gpu_uring_kernels.", $gfx, ".co"))),
        )*];
    };
}
code_objects!(
    "gfx90a", "gfx90c", "gfx940", "gfx1030", "gfx1031", "gfx1032", "gfx1033", "gfx1034", "gfx1035",
    "gfx1036",
);

/// The device library's code object for ISA `gfx`, if it is built for it.
pub(super) fn code_object(gfx: &str) -> Option<&'static [u8]> {
    CODE_OBJECTS.iter().find(|c| c.0 == gfx).map(|c| c.1)
}

/// Default soft loop budget per lane and dispatch (the device library's programs run to the end in one
/// launch; this is what caller-supplied resumable kernels are told).
const ITER_BUDGET: u32 = 30_000;

/// A HIP device.
pub(super) struct HipDevice {
    gpu: Arc<Gpu>,
    adapter: AdapterInfo,
    dispatch_timeout: Duration,
    iter_budget: u32,
    registry: memory::Registry,
    launcher: Launcher,
    /// The device library's module, loaded on first use (or why it could not be).
    library: OnceLock<Result<Arc<Module>, DeviceError>>,
}

impl HipDevice {
    pub(super) fn new(gpu: Arc<Gpu>, adapter: AdapterInfo, config: &DeviceConfig) -> HipDevice {
        HipDevice {
            launcher: Launcher::new(gpu.clone()),
            gpu,
            adapter,
            dispatch_timeout: config.dispatch_timeout,
            iter_budget: config.iter_budget.unwrap_or(ITER_BUDGET).max(64),
            registry: memory::Registry::default(),
            library: OnceLock::new(),
        }
    }

    fn library_module(&self) -> Result<Arc<Module>, DeviceError> {
        self.library
            .get_or_init(|| {
                let gfx = &self.gpu.props.gfx;
                let image = code_object(gfx).ok_or_else(|| DeviceError::Unsupported {
                    backend: "hip",
                    what: format!(
                        "the device library on {gfx} (kernels/bin has no code object for it)"
                    ),
                })?;
                // SAFETY: the code object is kernels/build.sh's output for this library and ISA (checked in CI).
                unsafe { Module::load(&self.gpu, image) }.map_err(DeviceError::from)
            })
            .clone()
    }
}

impl Device for HipDevice {
    fn info(&self) -> DeviceInfo {
        let a = &self.adapter;
        DeviceInfo {
            backend: "hip",
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
        &[KernelFormat::AmdCodeObject]
    }

    fn dispatch_limit(&self) -> Duration {
        self.dispatch_timeout
    }

    fn alloc(&self, placement: Placement, bytes: usize) -> Result<DeviceBuffer, DeviceError> {
        memory::alloc(&self.gpu, &self.registry, placement, bytes)
    }

    unsafe fn import_host(
        &self,
        ptr: *mut u8,
        len: usize,
        owner: Arc<dyn Send + Sync>,
    ) -> Result<DeviceBuffer, DeviceError> {
        // SAFETY: the caller's contract (the trait's).
        unsafe { memory::import(&self.gpu, &self.registry, ptr, len, owner) }
    }

    unsafe fn load_kernel(
        &self,
        name: &str,
        code: KernelCode<'_>,
        layout: KernelLayout,
    ) -> Result<Kernel, DeviceError> {
        // SAFETY: the caller's contract (the trait's).
        unsafe { kernel::load(&self.gpu, name, code, layout) }
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

impl LibraryDevice for HipDevice {
    fn library_kernel(&self, name: &'static str) -> Result<Kernel, DeviceError> {
        let layout = library::kernel_layout("hip", name)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed code object is embedded, and each is an offload bundle.
    #[test]
    fn every_committed_code_object_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../kernels/bin");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let n = e.ok()?.file_name().into_string().ok()?;
                let gfx = n.strip_prefix("gpu_uring_kernels.")?.strip_suffix(".co")?;
                Some(gfx.to_owned())
            })
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = CODE_OBJECTS.iter().map(|c| c.0.to_owned()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
        for (gfx, bytes) in CODE_OBJECTS {
            assert!(bytes.starts_with(b"__CLANG_OFFLOAD_BUNDLE__"), "{gfx}");
        }
        assert!(code_object("gfx90a").is_some());
        assert!(code_object("gfx1100").is_none());
    }
}
