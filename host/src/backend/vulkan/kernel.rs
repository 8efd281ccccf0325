//! Kernels on Vulkan (the built-in programs' and the caller's): a SPIR-V compute module (entry point `main`)
//! with its buffer arguments as storage buffers at set 0, bindings `0..buffers`, and its by-value arguments
//! concatenated into up to 128 bytes of push constants. Launches are in [`super::run`].

use std::any::Any;
use std::sync::Arc;

use super::error::run_error;
use super::raw;
use crate::backend::hal::{Kernel, KernelCode, KernelImpl, KernelLayout};
use crate::backend::DeviceError;

impl KernelImpl for raw::Kernel {
    fn name(&self) -> &str {
        &self.name
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// # Safety
/// As [`crate::backend::Device::load_kernel`].
pub(super) unsafe fn load(
    ctx: &Arc<raw::Context>,
    name: &str,
    code: KernelCode<'_>,
    layout: KernelLayout,
) -> Result<Kernel, DeviceError> {
    let KernelCode::SpirV(spirv) = code else {
        return Err(DeviceError::Unsupported {
            backend: "vulkan",
            what: format!("a {} kernel (Vulkan loads SPIR-V)", code.format()),
        });
    };
    if layout.value_bytes > raw::PUSH_CONSTANT_BYTES {
        return Err(run_error(format!(
            "kernel {name}: {} bytes of by-value arguments; at most {}",
            layout.value_bytes,
            raw::PUSH_CONSTANT_BYTES
        )));
    }
    // SAFETY: the caller's contract.
    let k = unsafe { raw::Kernel::new(ctx, name, spirv, layout.buffers) }.map_err(run_error)?;
    Ok(Kernel::new(Arc::new(k), layout))
}
