//! CUDA memory as HAL buffers: [`Placement::DeviceLocal`] is `cuMemAlloc` device memory (the host reaches it
//! only by copies: [`write`], [`read`]), [`Placement::HostVisible`] pinned host memory the driver allocates and
//! maps (`cuMemHostAlloc`, DEVICEMAP), [`Placement::ImportedHost`] host memory page-locked and mapped with
//! `cuMemHostRegister` (DEVICEMAP) — how the ring arena reaches the device. A range registered once is shared
//! by every import of the same range while any of them lives ([`Registry`]).

use std::any::Any;
use std::sync::Arc;

use super::error::run_error;
use super::raw::{Context, DevMem, HostMem, Registered};
use crate::backend::gpu;
use crate::backend::hal::{BufferImpl, DeviceBuffer, Placement};
use crate::backend::DeviceError;

/// The memory behind a CUDA buffer.
pub(super) enum Mem {
    Device(DevMem),
    Host(HostMem),
    Imported(Arc<Registered>),
}

/// A CUDA buffer ([`BufferImpl`]).
pub(super) struct CudaBuffer {
    pub mem: Mem,
}

impl CudaBuffer {
    /// Its address on the device (a kernel parameter).
    pub(super) fn device_ptr(&self) -> u64 {
        match &self.mem {
            Mem::Device(m) => m.ptr,
            Mem::Host(m) => m.dev,
            Mem::Imported(m) => m.dev,
        }
    }
}

impl BufferImpl for CudaBuffer {
    fn len(&self) -> usize {
        match &self.mem {
            Mem::Device(m) => m.len,
            Mem::Host(m) => m.len,
            Mem::Imported(m) => m.len,
        }
    }
    fn host_ptr(&self) -> *mut u8 {
        match &self.mem {
            Mem::Device(_) => std::ptr::null_mut(),
            Mem::Host(m) => m.host,
            Mem::Imported(m) => m.host,
        }
    }
    fn memory_flags(&self) -> String {
        match &self.mem {
            Mem::Device(_) => "device memory (cuMemAlloc)",
            Mem::Host(_) => "pinned host, mapped (cuMemHostAlloc DEVICEMAP)",
            Mem::Imported(_) => "registered host, mapped (cuMemHostRegister DEVICEMAP)",
        }
        .into()
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// Host ranges registered with the driver.
pub(super) type Registry = gpu::Registry<Registered>;

/// The registration of `ptr..ptr + len` (the live one, shared, or a new one holding `owner`).
///
/// # Safety
/// `ptr` must be a live, writable mapping of `len` bytes that stays mapped while `owner` lives.
pub(super) unsafe fn register(
    ctx: &Arc<Context>,
    registry: &Registry,
    ptr: *mut u8,
    len: usize,
    owner: Arc<dyn Send + Sync>,
) -> Result<Arc<Registered>, DeviceError> {
    registry.get_or_register(ptr, len, || {
        // SAFETY: the caller's contract.
        unsafe { Registered::new(ctx, ptr, len, owner) }.map_err(DeviceError::from)
    })
}

/// A buffer of `bytes` bytes in `placement`.
pub(super) fn alloc(
    ctx: &Arc<Context>,
    registry: &Registry,
    placement: Placement,
    bytes: usize,
) -> Result<DeviceBuffer, DeviceError> {
    if bytes == 0 {
        return Err(run_error("a buffer needs at least 4 bytes"));
    }
    let mem = match placement {
        Placement::DeviceLocal => Mem::Device(DevMem::new(ctx, bytes)?),
        Placement::HostVisible => Mem::Host(HostMem::new(ctx, bytes)?),
        Placement::ImportedHost => {
            let (ptr, len, owner) = gpu::anonymous("cuda", bytes)?;
            // SAFETY: `ptr` is the start of a fresh anonymous mapping of `len` writable bytes, kept mapped by
            // `owner`, which the registration holds.
            Mem::Imported(unsafe { register(ctx, registry, ptr, len, owner) }?)
        }
    };
    Ok(DeviceBuffer::new(Arc::new(CudaBuffer { mem }), placement))
}

/// A buffer over host memory the caller owns.
///
/// # Safety
/// As [`crate::backend::Device::import_host`].
pub(super) unsafe fn import(
    ctx: &Arc<Context>,
    registry: &Registry,
    ptr: *mut u8,
    len: usize,
    owner: Arc<dyn Send + Sync>,
) -> Result<DeviceBuffer, DeviceError> {
    gpu::check_import("cuda", ptr, len)?;
    // SAFETY: the caller's contract.
    let r = unsafe { register(ctx, registry, ptr, len, owner) }?;
    Ok(DeviceBuffer::new(
        Arc::new(CudaBuffer {
            mem: Mem::Imported(r),
        }),
        Placement::ImportedHost,
    ))
}

/// `buf` as this backend's buffer.
pub(super) fn cuda_buffer(buf: &DeviceBuffer) -> Result<Arc<CudaBuffer>, DeviceError> {
    buf.backend_object()
        .clone()
        .into_any()
        .downcast::<CudaBuffer>()
        .map_err(|_| run_error("a buffer from another backend was passed to CUDA"))
}

/// Copies `src` into `buf` from byte `at`: by the driver into device memory, by the host elsewhere.
pub(super) fn write(buf: &DeviceBuffer, at: usize, src: &[u8]) -> Result<(), DeviceError> {
    match &cuda_buffer(buf)?.mem {
        Mem::Device(m) => Ok(m.write(at, src)?),
        _ => gpu::host_write("cuda", buf, at, src),
    }
}

/// Copies from byte `at` of `buf` into `dst`.
pub(super) fn read(buf: &DeviceBuffer, at: usize, dst: &mut [u8]) -> Result<(), DeviceError> {
    match &cuda_buffer(buf)?.mem {
        Mem::Device(m) => Ok(m.read(at, dst)?),
        _ => gpu::host_read("cuda", buf, at, dst),
    }
}
