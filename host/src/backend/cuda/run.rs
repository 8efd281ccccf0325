//! Built-in programs on CUDA: the same run-buffer scheme as the other GPU backends
//! ([`crate::backend::run_buffer`]), each program a PTX kernel, re-dispatched by
//! [`crate::backend::redispatch`]. Not yet: no PTX of the programs is built.

use std::time::Duration;

use super::{no_driver, CudaDevice};
use crate::backend::{BetweenDispatches, DeviceError, Program, RunReport};
use crate::protocol::DeviceRing;

pub(super) fn run_builtin(
    _dev: &CudaDevice,
    _ring: &DeviceRing,
    _lanes: u32,
    program: &Program,
    _timeout: Duration,
    _between: &mut BetweenDispatches<'_>,
) -> Result<RunReport, DeviceError> {
    Err(no_driver(&format!("running {program:?}")))
}
