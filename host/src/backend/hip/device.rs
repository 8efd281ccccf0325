//! The HIP runtime under the shared GPU device ([`crate::backend::gpu`]): the calls of `raw.rs` behind the
//! [`Driver`] trait, implemented on the device handle ([`Gpu`]), and the device library's committed code
//! object for the device's ISA ([`CODE_OBJECTS`]). Caller kernels are AMD code objects.

use std::ffi::c_void;
use std::sync::Arc;

use super::raw::{DevMem, Function, Gpu, HostMem, Module, Registered, Stream};
use crate::backend::gpu::{Completion, DeviceMemory, Driver, GpuDevice, HostMapping};
use crate::backend::hal::{KernelCode, KernelFormat};
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

/// A HIP device.
pub(super) type HipDevice = GpuDevice<Gpu>;

impl DeviceMemory for DevMem {
    fn device_ptr(&self) -> u64 {
        self.ptr as u64
    }
    fn len(&self) -> usize {
        self.len
    }
    fn write(&self, at: usize, src: &[u8]) -> Result<(), DeviceError> {
        Ok(DevMem::write(self, at, src)?)
    }
    fn read(&self, at: usize, dst: &mut [u8]) -> Result<(), DeviceError> {
        Ok(DevMem::read(self, at, dst)?)
    }
}

impl HostMapping for HostMem {
    fn host_ptr(&self) -> *mut u8 {
        self.host
    }
    fn device_ptr(&self) -> u64 {
        self.dev as u64
    }
    fn len(&self) -> usize {
        self.len
    }
}

impl HostMapping for Registered {
    fn host_ptr(&self) -> *mut u8 {
        self.host
    }
    fn device_ptr(&self) -> u64 {
        self.dev as u64
    }
    fn len(&self) -> usize {
        self.len
    }
}

impl Completion for Stream {
    fn ended(&self) -> Result<bool, String> {
        self.query().map_err(|e| e.to_string())
    }
}

impl Driver for Gpu {
    const BACKEND: &'static str = "hip";
    const FORMATS: &'static [KernelFormat] = &[KernelFormat::AmdCodeObject];
    const MEMORY: [&'static str; 3] = [
        "device memory (hipMalloc)",
        "pinned host, mapped, coherent (hipHostMalloc)",
        "registered host, mapped (hipHostRegister)",
    ];

    type DevMem = DevMem;
    type HostMem = HostMem;
    type Registered = Registered;
    type Module = Module;
    type Function = Function;
    type Stream = Stream;

    fn limits(&self) -> (u32, u32) {
        (self.props.warp, self.props.max_threads_per_block)
    }

    fn alloc_device(self: &Arc<Self>, len: usize) -> Result<DevMem, DeviceError> {
        Ok(DevMem::new(self, len)?)
    }

    fn alloc_host(self: &Arc<Self>, len: usize) -> Result<HostMem, DeviceError> {
        Ok(HostMem::new(self, len)?)
    }

    unsafe fn register(
        self: &Arc<Self>,
        ptr: *mut u8,
        len: usize,
        owner: Arc<dyn Send + Sync>,
    ) -> Result<Registered, DeviceError> {
        // SAFETY: the caller's contract (the trait's).
        Ok(unsafe { Registered::new(self, ptr, len, owner) }?)
    }

    unsafe fn load_module(
        self: &Arc<Self>,
        code: KernelCode<'_>,
    ) -> Result<Arc<Module>, DeviceError> {
        let KernelCode::AmdCodeObject(image) = code else {
            return Err(DeviceError::Unsupported {
                backend: "hip",
                what: format!("a {} kernel (HIP loads AMD code objects)", code.format()),
            });
        };
        // SAFETY: the caller's contract.
        Ok(unsafe { Module::load(self, image) }?)
    }

    fn load_library(self: &Arc<Self>) -> Result<Arc<Module>, DeviceError> {
        let gfx = &self.props.gfx;
        let image = code_object(gfx).ok_or_else(|| DeviceError::Unsupported {
            backend: "hip",
            what: format!("the device library on {gfx} (kernels/bin has no code object for it)"),
        })?;
        // SAFETY: the code object is kernels/build.sh's output for this library and ISA (checked in CI).
        Ok(unsafe { Module::load(self, image) }?)
    }

    fn function(module: &Arc<Module>, name: &str) -> Result<Function, DeviceError> {
        Ok(module.function(name)?)
    }

    fn stream(self: &Arc<Self>) -> Result<Stream, DeviceError> {
        Ok(Stream::new(self)?)
    }

    unsafe fn launch(
        stream: &Stream,
        f: &Function,
        blocks: u32,
        threads: u32,
        params: &mut [*mut c_void],
    ) -> Result<(), DeviceError> {
        // SAFETY: the caller's contract (the trait's).
        Ok(unsafe { stream.launch(f, (blocks, threads), params) }?)
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
