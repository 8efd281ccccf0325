//! The CPU reference device's errors.

use crate::backend::DeviceError;

/// A failed run or launch.
pub(super) fn run_error(message: impl Into<String>) -> DeviceError {
    DeviceError::Run {
        backend: "cpu",
        message: message.into(),
    }
}
