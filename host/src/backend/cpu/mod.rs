//! The CPU reference device: one OS thread per lane, lanes grouped into subgroups of `subgroup_size`
//! (lane `l` is lane `l % subgroup_size` of subgroup `l / subgroup_size`). Each thread runs the Rust protocol
//! implementation ([`crate::protocol::Lane`]) exactly as PROTOCOL.md says, so this device runs everywhere and
//! is the oracle every GPU backend is compared with. Its kernels ([`crate::backend::KernelCode::Native`]) are
//! Rust closures, one call per invocation, each invocation a thread; the built-in programs are such kernels
//! ([`crate::backend::native`]), launched like any other.
//!
//! Besides the HAL, the CPU device's dispatch is public for host-side code that plays device lanes itself:
//! [`spawn_lanes`] (threads as lanes), [`run_lanes`] (lanes of a device ring) and [`run_queue_lanes`] (lanes
//! of a pump's io_queue).

mod adapter;
mod device;
mod error;
mod kernel;
mod lanes;
mod memory;
mod run;
mod wait;

pub use adapter::CpuBackend;
pub use device::CpuDevice;
pub use lanes::{run_lanes, run_queue_lanes, spawn_lanes};
pub use wait::{attach_ring_wait, RingWait};
