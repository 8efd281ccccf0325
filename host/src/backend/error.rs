//! The error every backend returns.

use std::time::Duration;

/// A backend could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The backend is not usable here.
    #[error("{backend} unavailable: {reason}")]
    Unavailable {
        /// Backend name.
        backend: &'static str,
        /// Why.
        reason: String,
    },
    /// A program failed on the device.
    #[error("{backend}: {message}")]
    Run {
        /// Backend name.
        backend: &'static str,
        /// What happened.
        message: String,
    },
    /// The device cannot do what was asked (a kernel format it does not load, a placement it lacks, an
    /// operation its backend does not implement yet).
    #[error("{backend}: {what} is not supported")]
    Unsupported {
        /// Backend name.
        backend: &'static str,
        /// What was asked.
        what: String,
    },
    /// A dispatch exceeded its time limit.
    #[error("{backend}: dispatch exceeded {limit:?}")]
    Timeout {
        /// Backend name.
        backend: &'static str,
        /// The limit.
        limit: Duration,
    },
}

/// A backend's "not available in this build" error: the backend exists but its cargo feature is off.
pub fn compiled_out(backend: &'static str, feature: &'static str) -> DeviceError {
    DeviceError::Unavailable {
        backend,
        reason: format!("not compiled in (build gpu-uring with the `{feature}` cargo feature)"),
    }
}
