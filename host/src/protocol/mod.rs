//! The device protocol: how many lanes share one ring without locks and without any lane waiting on another.
//! The specification is `PROTOCOL.md` at the repository root; this module is its Rust implementation and the oracle
//! the GLSL (`device-shaders/`) and HIP/CUDA (`kernels/`) implementations are tested against.

mod device_ring;
mod doorbell;
pub mod format;
pub mod idle;
pub mod lane;
mod log_target;
mod ops;
mod print_host;
mod print_log;
mod publish;
mod reap;
mod reserve;
pub mod shared;
pub mod subgroup;
mod window;

pub use device_ring::{DeviceRing, PrintMode, PrintTarget, QuiesceError, Violations};
pub use format::LineBuf;
pub use lane::{
    backoff, CompletionMode, FileRef, Lane, LaneError, LaneStats, Poll, DEFAULT_BUDGET,
};
pub use print_host::PrintLogReport;
pub use publish::check_flags;
pub use reserve::Reservation;
pub use subgroup::{Subgroup, Submission};
