//! CUDA adapters: every device the driver reports (`cuDeviceGet*`), usable or not (with why), and the choice
//! of one — by index or case-insensitive name substring, otherwise the first usable device (the driver's
//! order; `CUDA_VISIBLE_DEVICES` narrows it). Without a driver, enumeration fails with the reason
//! (`libcuda.so not found`, a driver too old, no device).

use super::device::CudaDevice;
use super::error::unavailable;
use super::raw::{self, Context, Props};
use crate::backend::hal::{AdapterInfo, Backend, Capabilities, Device, DeviceConfig, DeviceType};
use crate::backend::DeviceError;
use crate::ring::layout::page_size;

/// The CUDA backend ([`crate::backend::backends`]).
#[derive(Debug, Clone, Copy)]
pub struct CudaBackend;

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
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
        let list = enumerate()?;
        let (adapter, props) = choose(list, name)?;
        let ctx = Context::new(props)?;
        Ok(Box::new(CudaDevice::new(ctx, adapter, config)))
    }
}

/// Every device with its properties.
fn enumerate() -> Result<Vec<(AdapterInfo, Props)>, DeviceError> {
    let version = raw::driver()?;
    let n = raw::device_count()?;
    if n == 0 {
        return Err(unavailable("the NVIDIA driver reports no CUDA device"));
    }
    (0..n)
        .map(|i| {
            let p = raw::props(i)?;
            Ok((info(&p, version), p))
        })
        .collect()
}

/// What the HAL reports of a device.
fn info(p: &Props, driver_version: i32) -> AdapterInfo {
    let host_import = p.can_map_host && p.unified_addressing;
    AdapterInfo {
        backend: "cuda",
        index: p.ordinal as usize,
        name: p.name.clone(),
        device_type: if p.integrated {
            DeviceType::IntegratedGpu
        } else {
            DeviceType::DiscreteGpu
        },
        api_version: format!(
            "CUDA {}.{}",
            driver_version / 1000,
            driver_version % 1000 / 10
        ),
        driver: format!(
            "NVIDIA driver; compute capability {}.{}; {} MiB; host-native atomics {}; host pointer for \
             registered memory {}{}",
            p.compute.0,
            p.compute.1,
            p.total_mem >> 20,
            p.host_native_atomics,
            p.host_pointer_for_registered,
            match p.host_atomic_caps {
                Some(c) => format!(" (host atomic capabilities: 32/64-bit add and CAS {c})"),
                None => String::new(),
            }
        ),
        caps: Capabilities {
            subgroup_size: p.warp,
            atomics_64: true,
            host_import_alignment: host_import.then_some(page_size() as u64),
            device_local_memory: !p.integrated,
            // The attribute, confirmed by cuDeviceGetHostAtomicCapabilities where the driver has it.
            host_native_atomics: p.host_native_atomics && p.host_atomic_caps != Some(false),
            lanes_are_host_threads: false,
        },
        usable: usable(p),
    }
}

/// Whether the protocol can run on the device: the device library's PTX targets compute capability 7.5, and
/// the ring arena must be mappable host memory.
fn usable(p: &Props) -> Result<(), String> {
    if p.compute < (7, 5) {
        return Err(format!(
            "compute capability {}.{}: the device library needs 7.5 or newer",
            p.compute.0, p.compute.1
        ));
    }
    if !(p.can_map_host && p.unified_addressing) {
        return Err(
            "cannot map host memory (CAN_MAP_HOST_MEMORY and UNIFIED_ADDRESSING are needed)".into(),
        );
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
            list.into_iter()
                .find(|(a, _)| a.index.to_string() == n || a.name.to_lowercase().contains(&lower))
        }
        None => list.into_iter().find(|(a, _)| a.usable.is_ok()),
    };
    match pick {
        Some((a, p)) => match &a.usable {
            Ok(()) => Ok((a, p)),
            Err(why) => Err(unavailable(format!("{}: {why}", a.name))),
        },
        None => Err(unavailable(match name {
            Some(n) => format!("no CUDA device matches {n:?} (devices: {all})"),
            None => format!("no usable CUDA device (devices: {all})"),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(compute: (i32, i32), map: bool) -> Props {
        Props {
            ordinal: 0,
            name: "Test GPU".into(),
            compute,
            warp: 32,
            total_mem: 1 << 30,
            max_threads_per_block: 1024,
            integrated: false,
            can_map_host: map,
            unified_addressing: map,
            host_native_atomics: false,
            host_pointer_for_registered: true,
            host_atomic_caps: None,
        }
    }

    #[test]
    fn devices_are_described_and_judged() {
        let a = info(&props((9, 0), true), 13000);
        assert_eq!(a.api_version, "CUDA 13.0");
        assert_eq!(a.device_type, DeviceType::DiscreteGpu);
        assert_eq!(a.caps.subgroup_size, 32);
        assert!(a.usable.is_ok());
        assert!(!a.caps.host_native_atomics);
        assert!(info(&props((7, 0), true), 12060).usable.is_err());
        assert!(info(&props((8, 0), false), 12060).usable.is_err());
        let mut coherent = props((9, 0), true);
        coherent.host_native_atomics = true;
        assert!(info(&coherent, 13000).caps.host_native_atomics);
        coherent.host_atomic_caps = Some(false);
        assert!(!info(&coherent, 13000).caps.host_native_atomics);
    }

    #[test]
    fn a_device_is_chosen_by_index_or_name() {
        let list = || {
            vec![(info(&props((7, 0), true), 12060), props((7, 0), true)), {
                let mut p = props((9, 0), true);
                p.ordinal = 1;
                p.name = "NVIDIA H200".into();
                (info(&p, 12060), p)
            }]
        };
        assert_eq!(choose(list(), None).unwrap().0.index, 1);
        assert_eq!(choose(list(), Some("h200")).unwrap().0.index, 1);
        assert!(choose(list(), Some("0")).is_err(), "index 0 is unusable");
        assert!(choose(list(), Some("a100")).is_err());
    }

    /// Without a driver the backend says why, and never panics (cudarc would, on a missing library).
    #[test]
    fn no_driver_is_a_typed_reason() {
        match CudaBackend.adapters() {
            Ok(list) => assert!(!list.is_empty()),
            Err(DeviceError::Unavailable { backend, reason }) => {
                assert_eq!(backend, "cuda");
                assert!(
                    reason.contains("libcuda")
                        || reason.contains("no CUDA device")
                        || reason.contains("cuInit"),
                    "{reason}"
                );
            }
            Err(e) => panic!("unexpected error {e}"),
        }
        if let Err(e) = CudaBackend.open(None, true, &DeviceConfig::default()) {
            assert!(matches!(e, DeviceError::Unavailable { .. }), "{e}");
        }
    }
}
