//! CUDA memory: `cuMemAlloc` (device-local), `cuMemHostAlloc` (host-visible) and `cuMemHostRegister`
//! (imported host memory, the ring arena) once a driver binding exists.

use std::sync::Arc;

use super::error::no_driver;
use crate::backend::hal::{DeviceBuffer, Placement};
use crate::backend::DeviceError;

pub(super) fn alloc(placement: Placement, _bytes: usize) -> Result<DeviceBuffer, DeviceError> {
    Err(no_driver(&format!("a {} buffer", placement.name())))
}

pub(super) fn import(
    _ptr: *mut u8,
    _len: usize,
    _owner: Arc<dyn Send + Sync>,
) -> Result<DeviceBuffer, DeviceError> {
    Err(no_driver("importing host memory"))
}
