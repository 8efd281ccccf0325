//! HIP kernels: AMD code objects (offload bundles from `hipcc --genco`) loaded with `hipModuleLoadData`, one
//! function each. Their launches take the HAL's argument list as kernel parameters
//! ([`crate::backend::gpu::params`]).

use std::any::Any;
use std::sync::Arc;

use super::error::run_error;
use super::raw::{Function, Gpu, Module};
use crate::backend::hal::{Kernel, KernelCode, KernelImpl, KernelLayout};
use crate::backend::DeviceError;

/// A loaded HIP kernel.
pub(super) struct HipKernel {
    pub name: String,
    pub function: Function,
}

impl KernelImpl for HipKernel {
    fn name(&self) -> &str {
        &self.name
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// `kernel` as this backend's kernel.
pub(super) fn hip_kernel(kernel: &Kernel) -> Result<Arc<HipKernel>, DeviceError> {
    kernel
        .backend_object()
        .clone()
        .into_any()
        .downcast::<HipKernel>()
        .map_err(|_| run_error("a kernel from another backend was passed to a HIP launch"))
}

/// Loads kernel `name` of `code` (an AMD code object for the device's ISA).
///
/// # Safety
/// As [`crate::backend::Device::load_kernel`].
pub(super) unsafe fn load(
    g: &Arc<Gpu>,
    name: &str,
    code: KernelCode<'_>,
    layout: KernelLayout,
) -> Result<Kernel, DeviceError> {
    let KernelCode::AmdCodeObject(image) = code else {
        return Err(DeviceError::Unsupported {
            backend: "hip",
            what: format!("a {} kernel (HIP loads AMD code objects)", code.format()),
        });
    };
    // SAFETY: the caller's contract.
    let module = unsafe { Module::load(g, image) }?;
    from_module(&module, name, layout)
}

/// Kernel `name` of a loaded module.
pub(super) fn from_module(
    module: &Arc<Module>,
    name: &str,
    layout: KernelLayout,
) -> Result<Kernel, DeviceError> {
    let function = module.function(name)?;
    Ok(Kernel::new(
        Arc::new(HipKernel {
            name: name.to_owned(),
            function,
        }),
        layout,
    ))
}
