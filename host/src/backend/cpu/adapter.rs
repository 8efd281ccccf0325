//! The CPU reference device as an adapter: always present, always usable.

use super::CpuDevice;
use crate::backend::{Capabilities, DeviceInfo, DeviceType};

/// What the device is.
pub(super) fn info(dev: &CpuDevice) -> DeviceInfo {
    DeviceInfo {
        backend: "cpu",
        name: "CPU reference device".into(),
        driver: format!(
            "one thread per lane on {} cores",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ),
        subgroup_size: dev.subgroup_size,
        device_type: DeviceType::Cpu,
        caps: Capabilities {
            subgroup_size: dev.subgroup_size,
            atomics_64: true,
            host_import_alignment: Some(4),
            device_local_memory: false,
            host_native_atomics: true,
        },
    }
}
