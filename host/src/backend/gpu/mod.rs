//! What the kernel-parameter backends (CUDA, HIP) share, written once over a small [`Driver`] trait: each
//! backend implements the driver calls (memory, modules, streams, launches — `cuda/raw.rs`, `hip/raw.rs`) and
//! which committed binary of the device library its device loads; everything else is here.
//!
//! - [`device`]: [`GpuDevice`], the HAL [`Device`](crate::backend::Device) and
//!   [`LibraryDevice`](crate::backend::LibraryDevice) over any driver — placements, imports, kernels, launches
//!   and the device library loaded once;
//! - [`memory`]: its buffers (device memory, pinned host memory, registered host ranges shared by every
//!   import of them);
//! - [`launch`]: kernel parameters and geometry, the stream pool, bounded waits, and the parking of launches
//!   past their limit with everything they use.

pub(crate) mod device;
pub(crate) mod launch;
pub(crate) mod memory;

use std::ffi::c_void;
use std::sync::Arc;

use super::error::DeviceError;
use super::hal::{KernelCode, KernelFormat};

pub(crate) use device::GpuDevice;
pub(crate) use launch::Completion;

/// Device memory the host reaches only through the driver's copies (`cuMemAlloc`, `hipMalloc`).
pub(crate) trait DeviceMemory: Send + Sync + 'static {
    /// Its device address.
    fn device_ptr(&self) -> u64;
    /// Its length in bytes.
    fn len(&self) -> usize;
    /// Copies `src` to byte `at`, complete when this returns.
    fn write(&self, at: usize, src: &[u8]) -> Result<(), DeviceError>;
    /// Copies from byte `at` into `dst`, complete when this returns.
    fn read(&self, at: usize, dst: &mut [u8]) -> Result<(), DeviceError>;
}

/// Host memory mapped for the device (pinned by the driver, or the caller's range registered).
pub(crate) trait HostMapping: Send + Sync + 'static {
    /// Its host address.
    fn host_ptr(&self) -> *mut u8;
    /// Its device address.
    fn device_ptr(&self) -> u64;
    /// Its length in bytes.
    fn len(&self) -> usize;
}

/// One GPU driver as the shared code needs it: implemented on the backend's device handle (a CUDA primary
/// context, a HIP device), which every object it makes keeps alive.
pub(crate) trait Driver: Send + Sync + Sized + 'static {
    /// The backend's name (`cuda`, `hip`).
    const BACKEND: &'static str;
    /// The kernel formats [`Driver::load_module`] accepts.
    const FORMATS: &'static [KernelFormat];
    /// How each memory kind is described (`BufferImpl::memory_flags`): device, pinned host, registered host.
    const MEMORY: [&'static str; 3];

    /// Device memory.
    type DevMem: DeviceMemory;
    /// Pinned host memory the driver allocates and maps.
    type HostMem: HostMapping;
    /// A registered host range (unregistered when dropped, its owner dropped after).
    type Registered: HostMapping;
    /// A loaded module.
    type Module: Send + Sync + 'static;
    /// A kernel of a module (keeps the module loaded).
    type Function: Send + Sync + 'static;
    /// A stream with an event recorded after each launch; its completion is that event.
    type Stream: Completion;

    /// Threads per subgroup (warp, wavefront) and the most threads per block.
    fn limits(&self) -> (u32, u32);
    /// `len` bytes of device memory.
    fn alloc_device(self: &Arc<Self>, len: usize) -> Result<Self::DevMem, DeviceError>;
    /// `len` bytes of pinned host memory mapped for the device, zeroed.
    fn alloc_host(self: &Arc<Self>, len: usize) -> Result<Self::HostMem, DeviceError>;
    /// Registers `ptr..ptr + len` and maps it for the device; the registration holds `owner`.
    ///
    /// # Safety
    /// `ptr` must be a live, writable mapping of `len` bytes that stays mapped while `owner` lives.
    unsafe fn register(
        self: &Arc<Self>,
        ptr: *mut u8,
        len: usize,
        owner: Arc<dyn Send + Sync>,
    ) -> Result<Self::Registered, DeviceError>;
    /// Loads a caller's kernel binary (one of [`Driver::FORMATS`]; another format is
    /// [`DeviceError::Unsupported`]).
    ///
    /// # Safety
    /// As [`crate::backend::Device::load_kernel`].
    unsafe fn load_module(
        self: &Arc<Self>,
        code: KernelCode<'_>,
    ) -> Result<Arc<Self::Module>, DeviceError>;
    /// Loads the device library's committed binary for this device.
    fn load_library(self: &Arc<Self>) -> Result<Arc<Self::Module>, DeviceError>;
    /// Kernel `name` of a loaded module.
    fn function(module: &Arc<Self::Module>, name: &str) -> Result<Self::Function, DeviceError>;
    /// A new stream.
    fn stream(self: &Arc<Self>) -> Result<Self::Stream, DeviceError>;
    /// Launches `f` on `stream` as `blocks` blocks of `threads` threads with `params` (one pointer to each
    /// parameter's value, in order) and records the stream's event after it.
    ///
    /// # Safety
    /// `params` must match the kernel's parameter list in number, order and size; every device pointer
    /// among them must stay valid until the stream's completion reports the launch ended.
    unsafe fn launch(
        stream: &Self::Stream,
        f: &Self::Function,
        blocks: u32,
        threads: u32,
        params: &mut [*mut c_void],
    ) -> Result<(), DeviceError>;
}
