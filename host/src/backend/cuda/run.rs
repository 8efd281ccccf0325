//! Built-in programs on CUDA: the same run-buffer scheme as the other GPU backends
//! ([`crate::backend::run_buffer`]), each program a PTX kernel, re-dispatched by
//! [`crate::backend::redispatch`]. Not yet: no PTX of the programs is built.

use std::time::Duration;

use super::error::no_driver;
use crate::backend::hal::BetweenDispatches;
use crate::backend::{DeviceError, Program, RunReport};
use crate::protocol::DeviceRing;

pub(super) fn run_builtin(
    _ring: &DeviceRing,
    _lanes: u32,
    program: &Program,
    _timeout: Duration,
    _between: &mut BetweenDispatches<'_>,
) -> Result<RunReport, DeviceError> {
    Err(no_driver(&format!("running {program:?}")))
}
