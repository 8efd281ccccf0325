//! HIP memory as HAL buffers: [`Placement::DeviceLocal`] is `hipMalloc` device memory (the host reaches it only
//! by copies: [`write`], [`read`]), [`Placement::HostVisible`] pinned host memory the runtime allocates and
//! maps (`hipHostMalloc`, mapped and coherent), [`Placement::ImportedHost`] host memory page-locked and mapped
//! with `hipHostRegister` (`hipHostRegisterMapped`) — how the ring arena reaches the device. A range
//! registered once is shared by every import of the same range while any of them lives ([`Registry`]).

use std::any::Any;
use std::sync::Arc;

use super::error::run_error;
use super::raw::{DevMem, Gpu, HostMem, Registered};
use crate::backend::gpu;
use crate::backend::hal::{BufferImpl, DeviceBuffer, Placement};
use crate::backend::DeviceError;

/// The memory behind a HIP buffer.
pub(super) enum Mem {
    Device(DevMem),
    Host(HostMem),
    Imported(Arc<Registered>),
}

/// A HIP buffer ([`BufferImpl`]).
pub(super) struct HipBuffer {
    pub mem: Mem,
}

impl HipBuffer {
    /// Its address on the device (a kernel parameter).
    pub(super) fn device_ptr(&self) -> u64 {
        match &self.mem {
            Mem::Device(m) => m.ptr as u64,
            Mem::Host(m) => m.dev as u64,
            Mem::Imported(m) => m.dev as u64,
        }
    }
}

impl BufferImpl for HipBuffer {
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
            Mem::Device(_) => "device memory (hipMalloc)",
            Mem::Host(_) => "pinned host, mapped, coherent (hipHostMalloc)",
            Mem::Imported(_) => "registered host, mapped (hipHostRegister)",
        }
        .into()
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// Host ranges registered with the runtime.
pub(super) type Registry = gpu::Registry<Registered>;

/// The registration of `ptr..ptr + len` (the live one, shared, or a new one holding `owner`).
///
/// # Safety
/// `ptr` must be a live, writable mapping of `len` bytes that stays mapped while `owner` lives.
pub(super) unsafe fn register(
    g: &Arc<Gpu>,
    registry: &Registry,
    ptr: *mut u8,
    len: usize,
    owner: Arc<dyn Send + Sync>,
) -> Result<Arc<Registered>, DeviceError> {
    registry.get_or_register(ptr, len, || {
        // SAFETY: the caller's contract.
        unsafe { Registered::new(g, ptr, len, owner) }.map_err(DeviceError::from)
    })
}

/// A buffer of `bytes` bytes in `placement`.
pub(super) fn alloc(
    g: &Arc<Gpu>,
    registry: &Registry,
    placement: Placement,
    bytes: usize,
) -> Result<DeviceBuffer, DeviceError> {
    if bytes == 0 {
        return Err(run_error("a buffer needs at least 4 bytes"));
    }
    let mem = match placement {
        Placement::DeviceLocal => Mem::Device(DevMem::new(g, bytes)?),
        Placement::HostVisible => Mem::Host(HostMem::new(g, bytes)?),
        Placement::ImportedHost => {
            let (ptr, len, owner) = gpu::anonymous("hip", bytes)?;
            // SAFETY: `ptr` is the start of a fresh anonymous mapping of `len` writable bytes, kept mapped by
            // `owner`, which the registration holds.
            Mem::Imported(unsafe { register(g, registry, ptr, len, owner) }?)
        }
    };
    Ok(DeviceBuffer::new(Arc::new(HipBuffer { mem }), placement))
}

/// A buffer over host memory the caller owns.
///
/// # Safety
/// As [`crate::backend::Device::import_host`].
pub(super) unsafe fn import(
    g: &Arc<Gpu>,
    registry: &Registry,
    ptr: *mut u8,
    len: usize,
    owner: Arc<dyn Send + Sync>,
) -> Result<DeviceBuffer, DeviceError> {
    gpu::check_import("hip", ptr, len)?;
    // SAFETY: the caller's contract.
    let r = unsafe { register(g, registry, ptr, len, owner) }?;
    Ok(DeviceBuffer::new(
        Arc::new(HipBuffer {
            mem: Mem::Imported(r),
        }),
        Placement::ImportedHost,
    ))
}

/// `buf` as this backend's buffer.
pub(super) fn hip_buffer(buf: &DeviceBuffer) -> Result<Arc<HipBuffer>, DeviceError> {
    buf.backend_object()
        .clone()
        .into_any()
        .downcast::<HipBuffer>()
        .map_err(|_| run_error("a buffer from another backend was passed to HIP"))
}

/// Copies `src` into `buf` from byte `at`: by the runtime into device memory, by the host elsewhere.
pub(super) fn write(buf: &DeviceBuffer, at: usize, src: &[u8]) -> Result<(), DeviceError> {
    match &hip_buffer(buf)?.mem {
        Mem::Device(m) => Ok(m.write(at, src)?),
        _ => gpu::host_write("hip", buf, at, src),
    }
}

/// Copies from byte `at` of `buf` into `dst`.
pub(super) fn read(buf: &DeviceBuffer, at: usize, dst: &mut [u8]) -> Result<(), DeviceError> {
    match &hip_buffer(buf)?.mem {
        Mem::Device(m) => Ok(m.read(at, dst)?),
        _ => gpu::host_read("hip", buf, at, dst),
    }
}
