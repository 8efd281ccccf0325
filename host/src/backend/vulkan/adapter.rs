//! Vulkan adapters: enumeration (every physical device, usable or not, with why) and choice — by index or
//! case-insensitive name substring, otherwise the best usable device: discrete, then integrated, then
//! virtual, then CPU (lavapipe). `--device auto` takes only a real GPU: lavapipe is a software rasteriser
//! with a loop cap, and the CPU reference device is both faster and unbounded, so auto falls back to it
//! instead (the skip reason says so; `--device vulkan` still picks lavapipe explicitly).

use std::sync::Arc;

use ash::vk;

use super::device::VulkanDevice;
use super::error::unavailable;
use super::raw;
use crate::backend::hal::{AdapterInfo, Backend, Capabilities, Device, DeviceConfig, DeviceType};
use crate::backend::DeviceError;

/// The Vulkan backend ([`crate::backend::backends`]).
#[derive(Debug, Clone, Copy)]
pub struct VulkanBackend;

impl Backend for VulkanBackend {
    fn name(&self) -> &'static str {
        "vulkan"
    }

    fn adapters(&self) -> Result<Vec<AdapterInfo>, DeviceError> {
        let (_inst, phys) = enumerate()?;
        Ok(phys.iter().enumerate().map(|(i, p)| info(i, p)).collect())
    }

    fn open(
        &self,
        name: Option<&str>,
        gpu_only: bool,
        config: &DeviceConfig,
    ) -> Result<Box<dyn Device>, DeviceError> {
        let (inst, phys) = enumerate()?;
        let list: Vec<_> = phys.iter().enumerate().map(|(i, p)| info(i, p)).collect();
        let name = name.or(config.adapter.as_deref().filter(|_| !gpu_only));
        let chosen = choose(&list, name, gpu_only)?;
        let (Some(p), Some(a)) = (phys.get(chosen), list.get(chosen)) else {
            return Err(unavailable(format!("no Vulkan device {chosen}")));
        };
        let ctx = Arc::new(raw::Context::new(inst, p).map_err(unavailable)?);
        Ok(Box::new(VulkanDevice::new(ctx, a.clone(), config)))
    }
}

fn device_type(t: vk::PhysicalDeviceType) -> DeviceType {
    match t {
        vk::PhysicalDeviceType::DISCRETE_GPU => DeviceType::DiscreteGpu,
        vk::PhysicalDeviceType::INTEGRATED_GPU => DeviceType::IntegratedGpu,
        vk::PhysicalDeviceType::VIRTUAL_GPU => DeviceType::VirtualGpu,
        vk::PhysicalDeviceType::CPU => DeviceType::Cpu,
        _ => DeviceType::Other,
    }
}

/// The loader's instance and every physical device it reports.
fn enumerate() -> Result<(Arc<raw::Instance>, Vec<raw::PhysInfo>), DeviceError> {
    let inst = Arc::new(raw::Instance::load().map_err(unavailable)?);
    let phys = inst.physical_devices().map_err(unavailable)?;
    if phys.is_empty() {
        return Err(unavailable("the Vulkan loader found no physical device"));
    }
    Ok((inst, phys))
}

/// What the HAL reports of a physical device.
fn info(i: usize, p: &raw::PhysInfo) -> AdapterInfo {
    let ty = device_type(p.device_type);
    AdapterInfo {
        backend: "vulkan",
        index: i,
        name: p.name.clone(),
        device_type: ty,
        api_version: format!(
            "{}.{}.{}",
            vk::api_version_major(p.api_version),
            vk::api_version_minor(p.api_version),
            vk::api_version_patch(p.api_version)
        ),
        driver: p.driver.clone(),
        caps: Capabilities {
            subgroup_size: p.subgroup_size,
            atomics_64: p.usable.is_ok(),
            host_import_alignment: (p.min_import_alignment > 0).then_some(p.min_import_alignment),
            device_local_memory: ty != DeviceType::Cpu,
            // Imported host memory is HOST_COHERENT; a CPU-type device's atomics are the host's own. A GPU's
            // atomics on host memory over PCIe are not promised by Vulkan.
            host_native_atomics: ty == DeviceType::Cpu,
            lanes_are_host_threads: false,
        },
        usable: p.usable.clone(),
    }
}

/// Chooses a physical device: `name` is an index or a case-insensitive name substring; `None` takes the best
/// usable one (`gpu_only`: refusing a CPU-type device).
fn choose(list: &[AdapterInfo], name: Option<&str>, gpu_only: bool) -> Result<usize, DeviceError> {
    match name {
        Some(n) => {
            let by_index = n.parse::<usize>().ok().filter(|&i| i < list.len());
            let lower = n.to_lowercase();
            let found = by_index.or_else(|| {
                list.iter()
                    .position(|d| d.name.to_lowercase().contains(&lower))
            });
            let i = found.ok_or_else(|| {
                unavailable(format!(
                    "no Vulkan device matches {n:?} (devices: {})",
                    list.iter()
                        .map(|d| format!("{}: {}", d.index, d.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            if let Some(Err(why)) = list.get(i).map(|d| &d.usable) {
                return Err(unavailable(format!("{}: {why}", list[i].name)));
            }
            Ok(i)
        }
        None => {
            let mut usable: Vec<_> = list.iter().filter(|d| d.usable.is_ok()).collect();
            usable.sort_by_key(|d| d.device_type.rank());
            let best = usable.first().ok_or_else(|| {
                unavailable(format!(
                    "no usable Vulkan device: {}",
                    list.iter()
                        .map(|d| format!(
                            "{}: {}",
                            d.name,
                            d.usable.as_ref().err().map_or("usable", |s| s.as_str())
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                ))
            })?;
            if gpu_only && best.device_type == DeviceType::Cpu {
                return Err(unavailable(format!(
                    "only a CPU-type Vulkan device is present ({}); auto prefers the CPU reference device \
                     (faster, no loop cap) — use --device vulkan to run on it",
                    best.name
                )));
            }
            Ok(best.index)
        }
    }
}
