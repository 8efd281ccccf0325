//! Command-line parsing shared by the experiments: `--device` offers only the devices an experiment can run
//! on ([`Devices`]), so `--help` lists those and any other device is refused before the run.

use gpu_uring::backend::DeviceSelector;

/// Which devices an experiment can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Devices {
    /// Every device (`auto`, `cpu`, `vulkan[:NAME]`, `hip`, `cuda`).
    Any,
    /// The CPU reference device only: the experiment drives the ring from CPU threads by definition.
    CpuOnly,
    /// GPU-style devices only (device memory apart from the host's, shaders).
    GpuOnly,
}

/// Parses the command line of an experiment whose flags include [`crate::CommonArgs`], with `--device`
/// restricted to `devices`. Errors (an unknown flag, a device the experiment cannot use) exit with status 2,
/// as clap does.
pub fn parse<C: clap::Parser>(devices: Devices) -> C {
    let cmd = C::command();
    let name = cmd.get_name().to_owned();
    let cmd = cmd.mut_arg("device", |a| match devices {
        Devices::Any => a,
        Devices::CpuOnly => a
            .help(format!(
                "Device to run on: auto or cpu ({name} drives the ring from CPU threads, the CPU reference \
                 device's lanes)"
            ))
            .value_parser(move |s: &str| -> Result<DeviceSelector, String> {
                match s.parse()? {
                    sel @ (DeviceSelector::Auto | DeviceSelector::Cpu) => Ok(sel),
                    _ => Err(format!(
                        "{name} drives the ring from CPU threads only; use --device cpu (or auto)"
                    )),
                }
            }),
        Devices::GpuOnly => a
            .help(format!(
                "Device to run on: auto (a GPU-style device if one is usable, else skip), vulkan[:NAME], hip \
                 or cuda ({name} needs a GPU-style device)"
            ))
            .value_parser(move |s: &str| -> Result<DeviceSelector, String> {
                match s.parse()? {
                    DeviceSelector::Cpu => Err(format!(
                        "{name} needs a GPU-style device; the CPU reference device has none. Use --device \
                         vulkan (or auto to skip when no GPU-style device is present)"
                    )),
                    sel => Ok(sel),
                }
            }),
    });
    let m = cmd.get_matches();
    C::from_arg_matches(&m).unwrap_or_else(|e| e.exit())
}
