//! CUDA adapters: `cuDeviceGet*` enumeration once a driver binding exists; today none.

use super::device::CudaDevice;
use super::error::no_driver;
use crate::backend::hal::{AdapterInfo, Backend, Device, DeviceConfig};
use crate::backend::DeviceError;

/// The CUDA backend ([`crate::backend::backends`]).
#[derive(Debug, Clone, Copy)]
pub struct CudaBackend;

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn adapters(&self) -> Result<Vec<AdapterInfo>, DeviceError> {
        enumerate()
    }

    fn open(
        &self,
        name: Option<&str>,
        _gpu_only: bool,
        config: &DeviceConfig,
    ) -> Result<Box<dyn Device>, DeviceError> {
        let list = enumerate()?;
        let want = name.or(config.adapter.as_deref());
        let info = choose(&list, want)?;
        Ok(Box::new(CudaDevice {
            adapter: info,
            dispatch_timeout: config.dispatch_timeout,
        }))
    }
}

fn enumerate() -> Result<Vec<AdapterInfo>, DeviceError> {
    Err(no_driver("enumerating CUDA devices"))
}

fn choose(list: &[AdapterInfo], name: Option<&str>) -> Result<AdapterInfo, DeviceError> {
    let pick = match name {
        Some(n) => list.iter().find(|a| {
            a.index.to_string() == n || a.name.to_lowercase().contains(&n.to_lowercase())
        }),
        None => list.iter().find(|a| a.usable.is_ok()),
    };
    pick.cloned()
        .ok_or_else(|| no_driver("choosing a CUDA device"))
}
