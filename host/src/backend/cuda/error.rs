//! The CUDA backend's errors: [`CudaError`] from the driver layer (`raw.rs`), and the [`DeviceError`]s the
//! layers above map them into (with the variant's message).

use cudarc::driver::sys::CUresult;
use cudarc::driver::DriverError;

use crate::backend::DeviceError;

/// What went wrong in the driver layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum CudaError {
    /// No `libcuda` could be loaded.
    #[error("libcuda.so not found (no NVIDIA driver installed; searched {0})")]
    NoLibrary(String),
    /// `libcuda` lacks a function the backend calls (a driver older than the CUDA 12 API).
    #[error("libcuda.so has no {0} (the NVIDIA driver is older than the CUDA 12 driver API this backend uses)")]
    MissingSymbol(&'static str),
    /// `cuInit` failed: no device, or a driver that is installed but not working.
    #[error("cuInit failed: {0}")]
    Init(String),
    /// The driver works and reports no device.
    #[error("the NVIDIA driver reports no CUDA device")]
    NoDevice,
    /// A driver call failed.
    #[error("{call} failed: {error}")]
    Call {
        /// The call, e.g. `cuMemHostRegister`.
        call: &'static str,
        /// The driver's error name and description.
        error: String,
    },
    /// Something the backend checks before calling the driver.
    #[error("{0}")]
    Invalid(String),
}

/// The driver's name and description of `r`, e.g. `CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)`.
pub(super) fn describe(r: CUresult) -> String {
    let e = DriverError(r);
    match (e.error_name(), e.error_string()) {
        (Ok(n), Ok(s)) => format!("{} ({})", n.to_string_lossy(), s.to_string_lossy()),
        _ => format!("{r:?}"),
    }
}

/// The error of driver call `call` returning `r`.
pub(super) fn call(call: &'static str) -> impl Fn(DriverError) -> CudaError {
    move |e| CudaError::Call {
        call,
        error: describe(e.0),
    }
}

/// The backend is not usable here (no driver, no device, an unusable device).
pub(super) fn unavailable(reason: impl std::fmt::Display) -> DeviceError {
    DeviceError::Unavailable {
        backend: "cuda",
        reason: reason.to_string(),
    }
}

/// A run, launch or allocation failed.
pub(super) fn run_error(message: impl std::fmt::Display) -> DeviceError {
    DeviceError::Run {
        backend: "cuda",
        message: message.to_string(),
    }
}

/// A driver-layer error as the HAL reports it: setup problems make the backend unavailable, failed calls
/// fail the run.
impl From<CudaError> for DeviceError {
    fn from(e: CudaError) -> DeviceError {
        match e {
            CudaError::NoLibrary(_)
            | CudaError::MissingSymbol(_)
            | CudaError::Init(_)
            | CudaError::NoDevice => unavailable(e),
            CudaError::Call { .. } | CudaError::Invalid(_) => run_error(e),
        }
    }
}
