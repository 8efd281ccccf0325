//! The CUDA backend's errors.

use crate::backend::DeviceError;

/// Why nothing runs yet.
pub(super) fn no_driver(what: &str) -> DeviceError {
    DeviceError::Unsupported {
        backend: "cuda",
        what: format!("{what} (the CUDA backend has no driver binding yet)"),
    }
}
