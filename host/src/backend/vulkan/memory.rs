//! Vulkan memory for caller-supplied kernels: storage buffers in a chosen [`Placement`] (device-local,
//! driver-allocated host-visible, or host memory imported with `VK_EXT_external_memory_host`, as the ring
//! arena is), and imports of host memory the caller owns. A buffer holds the device's context alive; a
//! launch holds what it uses alive.

use std::any::Any;
use std::sync::Arc;

use super::error::run_error;
use super::raw;
use crate::backend::hal::{BufferImpl, DeviceBuffer, Placement};
use crate::backend::DeviceError;

impl BufferImpl for raw::Buffer {
    fn len(&self) -> usize {
        self.len
    }
    fn host_ptr(&self) -> *mut u8 {
        self.host
    }
    fn memory_flags(&self) -> String {
        format!("{:?}", self.flags)
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// A buffer of `bytes` bytes in `placement`.
pub(super) fn alloc(
    ctx: &Arc<raw::Context>,
    placement: Placement,
    bytes: usize,
) -> Result<DeviceBuffer, DeviceError> {
    let kind = match placement {
        Placement::DeviceLocal => raw::BufferKind::DeviceLocal,
        Placement::HostVisible => raw::BufferKind::HostVisible,
        Placement::ImportedHost => raw::BufferKind::Imported,
    };
    let b = raw::Buffer::new(ctx, kind, bytes)
        .map_err(|e| run_error(format!("{} buffer: {e}", placement.name())))?;
    Ok(DeviceBuffer::new(Arc::new(b), placement))
}

/// # Safety
/// As [`crate::backend::Device::import_host`].
pub(super) unsafe fn import(
    ctx: &Arc<raw::Context>,
    ptr: *mut u8,
    len: usize,
    owner: Arc<dyn Send + Sync>,
) -> Result<DeviceBuffer, DeviceError> {
    // SAFETY: the caller's contract.
    let b = unsafe { raw::Buffer::import(ctx, ptr, len, owner) }
        .map_err(|e| run_error(format!("importing host memory: {e}")))?;
    Ok(DeviceBuffer::new(Arc::new(b), Placement::ImportedHost))
}

/// The Vulkan buffer behind a [`DeviceBuffer`] this backend made.
pub(super) fn raw_buffer(b: &DeviceBuffer) -> Result<Arc<raw::Buffer>, DeviceError> {
    b.backend_object()
        .clone()
        .into_any()
        .downcast::<raw::Buffer>()
        .map_err(|_| run_error("a buffer from another backend was passed to a Vulkan launch"))
}
