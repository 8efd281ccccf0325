//! Kernels of the CPU reference device: Rust closures ([`KernelCode::Native`]), launched by [`super::run`].

use std::any::Any;
use std::sync::Arc;

use crate::backend::hal::{Kernel, KernelCode, KernelImpl, KernelLayout, NativeKernel};
use crate::backend::DeviceError;

/// A loaded native kernel.
pub(super) struct CpuKernel {
    pub(super) name: String,
    pub(super) f: NativeKernel,
}

impl KernelImpl for CpuKernel {
    fn name(&self) -> &str {
        &self.name
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

pub(super) fn load(
    name: &str,
    code: KernelCode<'_>,
    layout: KernelLayout,
) -> Result<Kernel, DeviceError> {
    let KernelCode::Native(f) = code else {
        return Err(DeviceError::Unsupported {
            backend: "cpu",
            what: format!(
                "a {} kernel (the CPU reference device runs Rust closures)",
                code.format()
            ),
        });
    };
    let k = CpuKernel {
        name: name.to_owned(),
        f,
    };
    Ok(Kernel::new(Arc::new(k), layout))
}
