//! The error every backend returns.

use std::time::Duration;

/// A backend could not be opened.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
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
    /// More lanes were asked for than the ring was sized for.
    #[error("{backend}: {lanes} lanes asked for, but the ring was sized for {max}: raise RingConfig::lanes or run fewer lanes")]
    TooManyLanes {
        /// Backend name.
        backend: &'static str,
        /// Lanes asked for.
        lanes: u32,
        /// Lanes the ring has (`RingLayout::lanes`).
        max: u32,
    },
    /// A lane could not be started (on the CPU device: its thread could not be spawned, e.g. `EAGAIN` under a
    /// thread or memory limit). No lane ran.
    #[error("{backend}: could not start lane {lane} of {lanes}: {message}; no lane ran (raise the thread or memory limit, or run fewer lanes)")]
    LaneStart {
        /// Backend name.
        backend: &'static str,
        /// The lane that could not be started.
        lane: u32,
        /// Lanes asked for.
        lanes: u32,
        /// The operating system's error.
        message: String,
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

debug_as_display!(DeviceError);

/// A backend's "not available in this build" error: the backend exists but its cargo feature is off.
pub fn compiled_out(backend: &'static str, feature: &'static str) -> DeviceError {
    DeviceError::Unavailable {
        backend,
        reason: format!("not compiled in (build gpu-uring with the `{feature}` cargo feature)"),
    }
}
