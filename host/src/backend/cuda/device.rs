//! The CUDA driver under the shared GPU device ([`crate::backend::gpu`]): the calls of `raw.rs` behind the
//! [`Driver`] trait, implemented on the device's primary context ([`Context`]), and which binary of the device
//! library a device loads — the committed `sm_90` cubin on compute capability 9.0 (no JIT; the PTX if it does
//! not load), the committed `compute_75` PTX elsewhere (JIT by the driver). Caller kernels are PTX.

use std::ffi::c_void;
use std::sync::Arc;

use super::raw::{Context, DevMem, Function, HostMem, Module, Registered, Stream};
use crate::backend::gpu::{Completion, DeviceMemory, Driver, GpuDevice, HostMapping};
use crate::backend::hal::{KernelCode, KernelFormat};
use crate::backend::DeviceError;

/// The device library as NVRTC compiled it for Turing and newer (JIT by the driver).
pub(super) const LIBRARY_PTX: &str =
    include_str!("../../../../kernels/bin/gpu_uring_kernels.compute_75.ptx");
/// The device library as Hopper machine code.
pub(super) const LIBRARY_SM90: &[u8] =
    include_bytes!("../../../../kernels/bin/gpu_uring_kernels.sm_90.cubin");

/// A CUDA device.
pub(super) type CudaDevice = GpuDevice<Context>;

impl DeviceMemory for DevMem {
    fn device_ptr(&self) -> u64 {
        self.ptr
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
        self.dev
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
        self.dev
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

/// PTX text with the NUL the driver needs.
fn ptx_image(ptx: &str) -> Vec<u8> {
    let mut image = ptx.as_bytes().to_vec();
    image.push(0);
    image
}

impl Driver for Context {
    const BACKEND: &'static str = "cuda";
    const FORMATS: &'static [KernelFormat] = &[KernelFormat::Ptx];
    const MEMORY: [&'static str; 3] = [
        "device memory (cuMemAlloc)",
        "pinned host, mapped (cuMemHostAlloc DEVICEMAP)",
        "registered host, mapped (cuMemHostRegister DEVICEMAP)",
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
        let KernelCode::Ptx(ptx) = code else {
            return Err(DeviceError::Unsupported {
                backend: "cuda",
                what: format!("a {} kernel (CUDA loads PTX)", code.format()),
            });
        };
        // SAFETY: the caller's contract; the PTX text is NUL-terminated.
        Ok(unsafe { Module::load(self, &ptx_image(ptx)) }?)
    }

    fn load_library(self: &Arc<Self>) -> Result<Arc<Module>, DeviceError> {
        let ptx = ptx_image(LIBRARY_PTX);
        // SAFETY: both images are kernels/build.sh's output for this library (checked in CI); the PTX is
        // NUL-terminated.
        let load_ptx = || unsafe { Module::load(self, &ptx) };
        let r = if self.props.compute == (9, 0) {
            // SAFETY: as above.
            unsafe { Module::load(self, LIBRARY_SM90) }.or_else(|cubin| {
                log::warn!("cuda: the sm_90 cubin did not load ({cubin}); using the PTX");
                load_ptx()
            })
        } else {
            load_ptx()
        };
        Ok(r?)
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
