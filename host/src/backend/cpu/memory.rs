//! Memory of the CPU reference device: every placement is host memory (the device is the host), allocated as
//! zeroed 32-bit words; imports wrap the caller's memory and keep its owner alive.

use std::any::Any;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use super::error::run_error;
use crate::backend::hal::{BufferImpl, DeviceBuffer, Placement};
use crate::backend::DeviceError;

/// A CPU buffer: its words, or the caller's memory.
pub(super) struct CpuBuffer {
    ptr: *mut u8,
    len: usize,
    _own: Option<Box<[AtomicU32]>>,
    _owner: Option<Arc<dyn Send + Sync>>,
}

// SAFETY: `ptr` points to memory this buffer keeps alive (its own words, or the owner's mapping); the host and
// the kernels reach it only through atomics (`DeviceBuffer::load_u32`/`store_u32`, `NativeArg::Words`).
unsafe impl Send for CpuBuffer {}
// SAFETY: as above.
unsafe impl Sync for CpuBuffer {}

impl CpuBuffer {
    /// The bytes as atomic words.
    pub(super) fn words(&self) -> &[AtomicU32] {
        // SAFETY: `ptr` is 4-byte aligned (own words, or an import whose alignment `import` checked) and
        // valid for `len` bytes while `self` lives; only atomics touch it.
        unsafe { std::slice::from_raw_parts(self.ptr as *const AtomicU32, self.len / 4) }
    }
}

impl BufferImpl for CpuBuffer {
    fn len(&self) -> usize {
        self.len
    }
    fn host_ptr(&self) -> *mut u8 {
        self.ptr
    }
    fn memory_flags(&self) -> String {
        "HOST".into()
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

pub(super) fn alloc(placement: Placement, bytes: usize) -> Result<DeviceBuffer, DeviceError> {
    let words: Box<[AtomicU32]> = (0..bytes.max(4).div_ceil(4))
        .map(|_| AtomicU32::new(0))
        .collect();
    let b = CpuBuffer {
        ptr: words.as_ptr() as *mut u8,
        len: words.len() * 4,
        _own: Some(words),
        _owner: None,
    };
    Ok(DeviceBuffer::new(Arc::new(b), placement))
}

/// # Safety
/// As [`crate::backend::Device::import_host`].
pub(super) unsafe fn import(
    ptr: *mut u8,
    len: usize,
    owner: Arc<dyn Send + Sync>,
) -> Result<DeviceBuffer, DeviceError> {
    if ptr.is_null() || ptr as usize % 4 != 0 || len % 4 != 0 {
        return Err(run_error(format!(
            "host memory at {ptr:p} ({len} bytes) is not 4-byte aligned"
        )));
    }
    let b = CpuBuffer {
        ptr,
        len,
        _own: None,
        _owner: Some(owner),
    };
    Ok(DeviceBuffer::new(Arc::new(b), Placement::ImportedHost))
}
