//! The CPU reference device as an adapter: always present, always usable.

use super::device::CpuDevice;
use crate::backend::hal::{AdapterInfo, Backend, Device, DeviceConfig};
use crate::backend::DeviceError;

/// The CPU reference device's backend: one adapter, the host ([`crate::backend::open`] with
/// `--device cpu`, and the fallback of `--device auto`).
#[derive(Debug, Clone, Copy)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn adapters(&self) -> Result<Vec<AdapterInfo>, DeviceError> {
        let info = CpuDevice::default().info();
        Ok(vec![AdapterInfo {
            backend: "cpu",
            index: 0,
            name: info.name,
            device_type: info.device_type,
            api_version: env!("CARGO_PKG_VERSION").into(),
            driver: info.driver,
            caps: info.caps,
            usable: Ok(()),
        }])
    }

    fn open(
        &self,
        _adapter: Option<&str>,
        _gpu_only: bool,
        config: &DeviceConfig,
    ) -> Result<Box<dyn Device>, DeviceError> {
        let mut dev = CpuDevice::default();
        if let Some(budget) = config.wait_budget {
            dev.budget = budget;
        }
        Ok(Box::new(dev))
    }
}
