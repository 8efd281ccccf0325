//! CUDA kernels: PTX (or a cubin of the device library) loaded with `cuModuleLoadDataEx`, one function each.
//! Their launches take the HAL's argument list as kernel parameters ([`crate::backend::gpu::params`]).

use std::any::Any;
use std::sync::Arc;

use super::error::run_error;
use super::raw::{Context, Function, Module};
use crate::backend::hal::{Kernel, KernelCode, KernelImpl, KernelLayout};
use crate::backend::DeviceError;

/// A loaded CUDA kernel.
pub(super) struct CudaKernel {
    pub name: String,
    pub function: Function,
}

impl KernelImpl for CudaKernel {
    fn name(&self) -> &str {
        &self.name
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// `kernel` as this backend's kernel.
pub(super) fn cuda_kernel(kernel: &Kernel) -> Result<Arc<CudaKernel>, DeviceError> {
    kernel
        .backend_object()
        .clone()
        .into_any()
        .downcast::<CudaKernel>()
        .map_err(|_| run_error("a kernel from another backend was passed to a CUDA launch"))
}

/// Loads kernel `name` of `code` (PTX).
///
/// # Safety
/// As [`crate::backend::Device::load_kernel`].
pub(super) unsafe fn load(
    ctx: &Arc<Context>,
    name: &str,
    code: KernelCode<'_>,
    layout: KernelLayout,
) -> Result<Kernel, DeviceError> {
    let KernelCode::Ptx(ptx) = code else {
        return Err(DeviceError::Unsupported {
            backend: "cuda",
            what: format!("a {} kernel (CUDA loads PTX)", code.format()),
        });
    };
    let mut image = ptx.as_bytes().to_vec();
    image.push(0);
    // SAFETY: the caller's contract; the PTX text is NUL-terminated above.
    let module = unsafe { Module::load(ctx, &image) }?;
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
        Arc::new(CudaKernel {
            name: name.to_owned(),
            function,
        }),
        layout,
    ))
}
