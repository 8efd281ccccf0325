//! GPU memory as HAL buffers, over any [`Driver`]: [`Placement::DeviceLocal`] is device memory (the host
//! reaches it only by the driver's copies: [`write`], [`read`]), [`Placement::HostVisible`] pinned host memory
//! the driver allocates and maps, [`Placement::ImportedHost`] host memory registered and mapped — how the ring
//! arena reaches the device. A range registered once is shared by every import of the same range while any of
//! them lives ([`Registry`]).

use std::any::Any;
use std::sync::Arc;

use super::launch::{self, Registry};
use super::{DeviceMemory, Driver, HostMapping};
use crate::backend::hal::{BufferImpl, DeviceBuffer, Placement};
use crate::backend::DeviceError;

/// The memory behind a GPU buffer.
pub(crate) enum Mem<D: Driver> {
    Device(D::DevMem),
    Host(D::HostMem),
    Imported(Arc<D::Registered>),
}

/// A GPU buffer ([`BufferImpl`]).
pub(crate) struct GpuBuffer<D: Driver> {
    pub mem: Mem<D>,
}

impl<D: Driver> GpuBuffer<D> {
    /// Its address on the device (a kernel parameter).
    pub(crate) fn device_ptr(&self) -> u64 {
        match &self.mem {
            Mem::Device(m) => m.device_ptr(),
            Mem::Host(m) => m.device_ptr(),
            Mem::Imported(m) => m.device_ptr(),
        }
    }
}

impl<D: Driver> BufferImpl for GpuBuffer<D> {
    fn len(&self) -> usize {
        match &self.mem {
            Mem::Device(m) => m.len(),
            Mem::Host(m) => m.len(),
            Mem::Imported(m) => m.len(),
        }
    }
    fn host_ptr(&self) -> *mut u8 {
        match &self.mem {
            Mem::Device(_) => std::ptr::null_mut(),
            Mem::Host(m) => m.host_ptr(),
            Mem::Imported(m) => m.host_ptr(),
        }
    }
    fn memory_flags(&self) -> String {
        match &self.mem {
            Mem::Device(_) => D::MEMORY[0],
            Mem::Host(_) => D::MEMORY[1],
            Mem::Imported(_) => D::MEMORY[2],
        }
        .into()
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// The registration of `ptr..ptr + len` (the live one, shared, or a new one holding `owner`).
///
/// # Safety
/// `ptr` must be a live, writable mapping of `len` bytes that stays mapped while `owner` lives.
pub(crate) unsafe fn register<D: Driver>(
    drv: &Arc<D>,
    registry: &Registry<D::Registered>,
    ptr: *mut u8,
    len: usize,
    owner: Arc<dyn Send + Sync>,
) -> Result<Arc<D::Registered>, DeviceError> {
    registry.get_or_register(ptr, len, || {
        // SAFETY: the caller's contract.
        unsafe { drv.register(ptr, len, owner) }
    })
}

/// A buffer of `bytes` bytes in `placement`.
pub(crate) fn alloc<D: Driver>(
    drv: &Arc<D>,
    registry: &Registry<D::Registered>,
    placement: Placement,
    bytes: usize,
) -> Result<DeviceBuffer, DeviceError> {
    if bytes == 0 {
        return Err(DeviceError::Run {
            backend: D::BACKEND,
            message: "a buffer needs at least 4 bytes".into(),
        });
    }
    let mem = match placement {
        Placement::DeviceLocal => Mem::Device(drv.alloc_device(bytes)?),
        Placement::HostVisible => Mem::Host(drv.alloc_host(bytes)?),
        Placement::ImportedHost => {
            let (ptr, len, owner) = launch::anonymous(D::BACKEND, bytes)?;
            // SAFETY: `ptr` is the start of a fresh anonymous mapping of `len` writable bytes, kept mapped by
            // `owner`, which the registration holds.
            Mem::Imported(unsafe { register(drv, registry, ptr, len, owner) }?)
        }
    };
    Ok(DeviceBuffer::new(
        Arc::new(GpuBuffer::<D> { mem }),
        placement,
    ))
}

/// A buffer over host memory the caller owns.
///
/// # Safety
/// As [`crate::backend::Device::import_host`].
pub(crate) unsafe fn import<D: Driver>(
    drv: &Arc<D>,
    registry: &Registry<D::Registered>,
    ptr: *mut u8,
    len: usize,
    owner: Arc<dyn Send + Sync>,
) -> Result<DeviceBuffer, DeviceError> {
    launch::check_import(D::BACKEND, ptr, len)?;
    // SAFETY: the caller's contract.
    let r = unsafe { register(drv, registry, ptr, len, owner) }?;
    Ok(DeviceBuffer::new(
        Arc::new(GpuBuffer::<D> {
            mem: Mem::Imported(r),
        }),
        Placement::ImportedHost,
    ))
}

/// `buf` as this backend's buffer.
pub(crate) fn gpu_buffer<D: Driver>(buf: &DeviceBuffer) -> Result<Arc<GpuBuffer<D>>, DeviceError> {
    buf.backend_object()
        .clone()
        .into_any()
        .downcast::<GpuBuffer<D>>()
        .map_err(|_| DeviceError::Run {
            backend: D::BACKEND,
            message: format!("a buffer from another backend was passed to {}", D::BACKEND),
        })
}

/// Copies `src` into `buf` from byte `at`: by the driver into device memory, by the host elsewhere.
pub(crate) fn write<D: Driver>(
    buf: &DeviceBuffer,
    at: usize,
    src: &[u8],
) -> Result<(), DeviceError> {
    match &gpu_buffer::<D>(buf)?.mem {
        Mem::Device(m) => m.write(at, src),
        _ => launch::host_write(D::BACKEND, buf, at, src),
    }
}

/// Copies from byte `at` of `buf` into `dst`.
pub(crate) fn read<D: Driver>(
    buf: &DeviceBuffer,
    at: usize,
    dst: &mut [u8],
) -> Result<(), DeviceError> {
    match &gpu_buffer::<D>(buf)?.mem {
        Mem::Device(m) => m.read(at, dst),
        _ => launch::host_read(D::BACKEND, buf, at, dst),
    }
}
