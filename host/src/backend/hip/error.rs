//! The HIP backend's errors: [`HipError`] from the runtime layer (`raw.rs`), and the [`DeviceError`]s the
//! layers above map them into (with the variant's message).

use std::ffi::CStr;

use hip_sys::hiprt::{hipError_t, hipGetErrorName, hipGetErrorString};

use crate::backend::DeviceError;

/// What went wrong in the runtime layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum HipError {
    /// The runtime works and reports no device (no `/dev/kfd`, no AMD GPU, or none the runtime supports).
    #[error("no AMD GPU: the HIP runtime reports {0}")]
    NoDevice(String),
    /// A runtime call failed.
    #[error("{call} failed: {error}")]
    Call {
        /// The call, e.g. `hipHostRegister`.
        call: &'static str,
        /// The runtime's error name and description.
        error: String,
    },
    /// Something the backend checks before calling the runtime.
    #[error("{0}")]
    Invalid(String),
}

/// The runtime's name and description of `e`, e.g. `hipErrorNoDevice (no ROCm-capable device is detected)`.
pub(super) fn describe(e: hipError_t) -> String {
    // SAFETY: both functions take any error value and return static NUL-terminated strings (or null).
    let (name, text) = unsafe { (hipGetErrorName(e), hipGetErrorString(e)) };
    let s = |p: *const std::ffi::c_char| {
        if p.is_null() {
            None
        } else {
            // SAFETY: non-null results point at static NUL-terminated strings.
            Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        }
    };
    match (s(name), s(text)) {
        (Some(n), Some(t)) if n != t => format!("{n} ({t})"),
        (Some(n), _) => n,
        _ => format!("{e:?}"),
    }
}

/// `Ok` for `hipSuccess`, else the error of call `call`.
pub(super) fn check(call: &'static str, e: hipError_t) -> Result<(), HipError> {
    if e == hipError_t::hipSuccess {
        Ok(())
    } else {
        Err(HipError::Call {
            call,
            error: describe(e),
        })
    }
}

/// The backend is not usable here (no device, an unusable device).
pub(super) fn unavailable(reason: impl std::fmt::Display) -> DeviceError {
    DeviceError::Unavailable {
        backend: "hip",
        reason: reason.to_string(),
    }
}

/// A run, launch or allocation failed.
pub(super) fn run_error(message: impl std::fmt::Display) -> DeviceError {
    DeviceError::Run {
        backend: "hip",
        message: message.to_string(),
    }
}

/// A runtime-layer error as the HAL reports it.
impl From<HipError> for DeviceError {
    fn from(e: HipError) -> DeviceError {
        match e {
            HipError::NoDevice(_) => unavailable(e),
            HipError::Call { .. } | HipError::Invalid(_) => run_error(e),
        }
    }
}
