//! The backend registry and device selection: which backends this build has, and `--device` choices.

use std::fmt;

use super::error::{compiled_out, DeviceError};
use super::hal::{Backend, Device, DeviceConfig};

/// Which device to use (`--device auto|cpu|vulkan[:NAME]|hip|cuda`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSelector {
    /// The best device present, falling back to the CPU reference device.
    Auto,
    /// The CPU reference device.
    Cpu,
    /// A Vulkan device, optionally chosen by index or name substring.
    Vulkan(Option<String>),
    /// A HIP (AMD) device.
    Hip,
    /// A CUDA (NVIDIA) device.
    Cuda,
}

impl std::str::FromStr for DeviceSelector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceSelector::Auto),
            "cpu" => Ok(DeviceSelector::Cpu),
            "vulkan" => Ok(DeviceSelector::Vulkan(None)),
            "hip" => Ok(DeviceSelector::Hip),
            "cuda" => Ok(DeviceSelector::Cuda),
            _ => match s.strip_prefix("vulkan:") {
                Some(name) if !name.is_empty() => Ok(DeviceSelector::Vulkan(Some(name.to_owned()))),
                _ => Err(format!(
                    "unknown device {s:?}: expected auto, cpu, vulkan, vulkan:NAME, hip or cuda"
                )),
            },
        }
    }
}

impl fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSelector::Auto => f.write_str("auto"),
            DeviceSelector::Cpu => f.write_str("cpu"),
            DeviceSelector::Vulkan(None) => f.write_str("vulkan"),
            DeviceSelector::Vulkan(Some(n)) => write!(f, "vulkan:{n}"),
            DeviceSelector::Hip => f.write_str("hip"),
            DeviceSelector::Cuda => f.write_str("cuda"),
        }
    }
}

/// A backend of this crate, compiled in or not.
#[derive(Clone, Copy)]
pub struct BackendEntry {
    /// Backend name (what `--device NAME` selects).
    pub name: &'static str,
    /// The cargo feature that compiles it in (`None`: no implementation exists yet).
    pub feature: Option<&'static str>,
    /// The backend, when compiled in.
    pub backend: Option<&'static dyn Backend>,
}

impl BackendEntry {
    /// The backend, or why it is not in this build.
    pub fn get(&self) -> Result<&'static dyn Backend, DeviceError> {
        match (self.backend, self.feature) {
            (Some(b), _) => Ok(b),
            (None, Some(f)) => Err(compiled_out(self.name, f)),
            (None, None) => Err(DeviceError::Unavailable {
                backend: self.name,
                reason: "gpu-uring has no backend for it yet".into(),
            }),
        }
    }
}

/// Every GPU backend, in the order `--device auto` tries them.
pub fn backends() -> [BackendEntry; 3] {
    [
        BackendEntry {
            name: "cuda",
            feature: Some("cuda"),
            #[cfg(feature = "cuda")]
            backend: Some(&super::cuda::CudaBackend),
            #[cfg(not(feature = "cuda"))]
            backend: None,
        },
        BackendEntry {
            name: "hip",
            feature: Some("hip"),
            #[cfg(feature = "hip")]
            backend: Some(&super::hip::HipBackend),
            #[cfg(not(feature = "hip"))]
            backend: None,
        },
        BackendEntry {
            name: "vulkan",
            feature: Some("vulkan"),
            #[cfg(feature = "vulkan")]
            backend: Some(&super::vulkan::VulkanBackend),
            #[cfg(not(feature = "vulkan"))]
            backend: None,
        },
    ]
}

/// The backend named `name` (`vulkan`, `cuda`, `hip`), or why it is not in this build.
pub fn backend(name: &str) -> Result<&'static dyn Backend, DeviceError> {
    match backends().into_iter().find(|b| b.name == name) {
        Some(b) => b.get(),
        None => Err(DeviceError::Unavailable {
            backend: "unknown",
            reason: format!("no backend named {name:?}"),
        }),
    }
}

/// Opens a device with the default [`DeviceConfig`]: [`open_with`].
pub fn open(sel: &DeviceSelector) -> Result<(Box<dyn Device>, Vec<DeviceError>), DeviceError> {
    open_with(sel, &DeviceConfig::default())
}

/// Opens a device. `Auto` tries GPU backends first, in [`backends`] order (CUDA, HIP, Vulkan), and falls back
/// to the CPU reference device; the second value lists why each better device was skipped. Only a device that
/// runs every built-in program is taken: a CUDA/HIP device whose device library does not load (a driver whose
/// JIT refuses the PTX, say) is skipped with the reason. Only a real GPU is taken automatically: a CPU-type
/// device (lavapipe) is slower than the CPU reference device and loop-capped, so auto prefers the reference
/// device over it (`--device vulkan` selects it explicitly). What CUDA/HIP cannot run — caller SPIR-V
/// kernels, the pump probe, rings without SQPOLL — needs `--device vulkan` (backend::library).
pub fn open_with(
    sel: &DeviceSelector,
    config: &DeviceConfig,
) -> Result<(Box<dyn Device>, Vec<DeviceError>), DeviceError> {
    let mut skipped = Vec::new();
    let by_name = |name: &str, adapter: Option<&str>| {
        backend(name).and_then(|b| b.open(adapter, false, config))
    };
    match sel {
        DeviceSelector::Cpu => super::cpu::CpuBackend
            .open(None, false, config)
            .map(|d| (d, skipped)),
        DeviceSelector::Auto => {
            for entry in backends() {
                match entry
                    .get()
                    .and_then(|b| b.open(None, true, config))
                    .and_then(runs_the_builtin_programs)
                {
                    Ok(d) => return Ok((d, skipped)),
                    Err(e) => skipped.push(e),
                }
            }
            super::cpu::CpuBackend
                .open(None, false, config)
                .map(|d| (d, skipped))
        }
        DeviceSelector::Vulkan(name) => by_name("vulkan", name.as_deref()).map(|d| (d, skipped)),
        DeviceSelector::Hip => by_name("hip", None).map(|d| (d, skipped)),
        DeviceSelector::Cuda => by_name("cuda", None).map(|d| (d, skipped)),
    }
}

/// `dev`, if it runs the built-in programs: a device on the CUDA/HIP device library must load it (once; the
/// device keeps it).
fn runs_the_builtin_programs(dev: Box<dyn Device>) -> Result<Box<dyn Device>, DeviceError> {
    if let Some(lib) = dev.library() {
        if let Err(e) = lib.library_kernel("gu_nop") {
            return Err(DeviceError::Unavailable {
                backend: dev.info().backend,
                reason: format!(
                    "{}: the device library does not load, so the built-in programs cannot run ({e})",
                    dev.info().name
                ),
            });
        }
    }
    Ok(dev)
}
