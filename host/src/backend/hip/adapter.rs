//! HIP adapters: every device the runtime reports, usable or not (with why), and the choice of one — by index
//! or case-insensitive name substring, otherwise the first usable device (the runtime's order;
//! `HIP_VISIBLE_DEVICES` narrows it). Without a device, enumeration fails with the runtime's reason.

use super::device::{code_object, HipDevice, CODE_OBJECTS};
use super::error::unavailable;
use super::raw::{self, Gpu, Props};
use crate::backend::hal::{AdapterInfo, Backend, Capabilities, Device, DeviceConfig, DeviceType};
use crate::backend::DeviceError;
use crate::ring::layout::page_size;

/// The HIP backend ([`crate::backend::backends`]).
#[derive(Debug, Clone, Copy)]
pub struct HipBackend;

impl Backend for HipBackend {
    fn name(&self) -> &'static str {
        "hip"
    }

    fn adapters(&self) -> Result<Vec<AdapterInfo>, DeviceError> {
        Ok(enumerate()?.into_iter().map(|(a, _)| a).collect())
    }

    fn open(
        &self,
        name: Option<&str>,
        _gpu_only: bool,
        config: &DeviceConfig,
    ) -> Result<Box<dyn Device>, DeviceError> {
        let (adapter, props) = choose(enumerate()?, name)?;
        let g = Gpu::new(props)?;
        Ok(Box::new(HipDevice::new(g, adapter, config)))
    }
}

/// Every device with its properties.
fn enumerate() -> Result<Vec<(AdapterInfo, Props)>, DeviceError> {
    let version = raw::runtime()?;
    (0..raw::device_count()?)
        .map(|i| {
            let p = raw::props(i)?;
            Ok((info(&p, version), p))
        })
        .collect()
}

/// What the HAL reports of a device.
fn info(p: &Props, runtime_version: i32) -> AdapterInfo {
    AdapterInfo {
        backend: "hip",
        index: p.ordinal as usize,
        name: p.name.clone(),
        device_type: if p.integrated {
            DeviceType::IntegratedGpu
        } else {
            DeviceType::DiscreteGpu
        },
        api_version: format!(
            "HIP {}.{}.{}",
            runtime_version / 10_000_000,
            runtime_version / 100_000 % 100,
            runtime_version % 100_000
        ),
        driver: format!(
            "AMD ROCm; {}; wave{}; {} MiB; host-native atomics {}; host pointer for registered memory {}",
            p.arch_name,
            p.warp,
            p.total_mem >> 20,
            p.host_native_atomics,
            p.host_pointer_for_registered
        ),
        caps: Capabilities {
            subgroup_size: p.warp,
            atomics_64: true,
            host_import_alignment: p.can_map_host.then_some(page_size() as u64),
            device_local_memory: !p.integrated,
            host_native_atomics: p.host_native_atomics,
            lanes_are_host_threads: false,
        },
        usable: usable(p),
    }
}

/// Whether the protocol can run on the device: the device library must be built for its ISA, and the ring
/// arena must be mappable host memory.
fn usable(p: &Props) -> Result<(), String> {
    if code_object(&p.gfx).is_none() {
        return Err(format!(
            "no device-library code object for {} (kernels/bin has {})",
            if p.gfx.is_empty() { "its ISA" } else { &p.gfx },
            CODE_OBJECTS
                .iter()
                .map(|c| c.0)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !p.can_map_host {
        return Err("cannot map host memory (hipDeviceAttributeCanMapHostMemory is 0)".into());
    }
    Ok(())
}

/// Chooses a device: `name` is an index or a case-insensitive name substring; `None` takes the first
/// usable one.
fn choose(
    list: Vec<(AdapterInfo, Props)>,
    name: Option<&str>,
) -> Result<(AdapterInfo, Props), DeviceError> {
    let all = list
        .iter()
        .map(|(a, _)| format!("{}: {}", a.index, a.name))
        .collect::<Vec<_>>()
        .join(", ");
    let pick = match name {
        Some(n) => {
            let lower = n.to_lowercase();
            list.into_iter().find(|(a, p)| {
                a.index.to_string() == n || a.name.to_lowercase().contains(&lower) || p.gfx == lower
            })
        }
        None => list.into_iter().find(|(a, _)| a.usable.is_ok()),
    };
    match pick {
        Some((a, p)) => match &a.usable {
            Ok(()) => Ok((a, p)),
            Err(why) => Err(unavailable(format!("{}: {why}", a.name))),
        },
        None => Err(unavailable(match name {
            Some(n) => format!("no HIP device matches {n:?} (devices: {all})"),
            None => format!("no usable HIP device (devices: {all})"),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(gfx: &str) -> Props {
        Props {
            ordinal: 0,
            name: "AMD Instinct MI210".into(),
            gfx: gfx.into(),
            arch_name: format!("{gfx}:sramecc+:xnack-"),
            warp: 64,
            total_mem: 64 << 30,
            max_threads_per_block: 1024,
            integrated: false,
            can_map_host: true,
            host_native_atomics: false,
            host_pointer_for_registered: true,
        }
    }

    #[test]
    fn devices_are_described_and_judged() {
        let a = info(&props("gfx90a"), 50_221_153);
        assert_eq!(a.api_version, "HIP 5.2.21153");
        assert_eq!(a.caps.subgroup_size, 64);
        assert!(a.usable.is_ok());
        let b = info(&props("gfx1100"), 50_221_153);
        assert!(b.usable.as_ref().unwrap_err().contains("gfx1100"));
        let list = vec![(b, props("gfx1100")), {
            let mut p = props("gfx90a");
            p.ordinal = 1;
            (info(&p, 1), p)
        }];
        assert_eq!(choose(list, None).unwrap().0.index, 1);
    }

    /// Without an AMD GPU the backend says why (the runtime's "no device"), and never panics.
    #[test]
    fn no_device_is_a_typed_reason() {
        match HipBackend.adapters() {
            Ok(list) => assert!(!list.is_empty()),
            Err(DeviceError::Unavailable { backend, reason }) => {
                assert_eq!(backend, "hip");
                assert!(reason.contains("no AMD GPU"), "{reason}");
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
}
