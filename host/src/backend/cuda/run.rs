//! CUDA launches: the HAL's argument list as kernel parameters ([`super::kernel::params`]), the grid as CUDA's
//! geometry, then `cuLaunchKernel` and a wait with the launch's limit. Built-in programs run through here
//! once PTX of them exists ([`crate::backend::Device::kernel_formats`] names PTX only, so until then they are
//! reported unsupported).

use std::time::Duration;

use super::error::no_driver;
use super::kernel::{geometry, params};
use crate::backend::hal::{Grid, Kernel, KernelArg};
use crate::backend::DeviceError;

/// Launches `kernel` (a group size of 0 is one warp of `warp` threads).
pub(super) fn launch(
    warp: u32,
    kernel: &Kernel,
    args: &[KernelArg<'_>],
    grid: Grid,
    _limit: Duration,
) -> Result<Duration, DeviceError> {
    let _params = params(args)?;
    let (_grid_x, _block_x) = geometry(grid, warp);
    Err(no_driver(&format!("launching {}", kernel.name())))
}
