//! The CPU reference device: OS threads as lanes, lanes grouped into subgroups of `subgroup_size` (lane `l` is
//! lane `l % subgroup_size` of subgroup `l / subgroup_size`). Each thread runs the Rust protocol implementation
//! ([`crate::protocol::Lane`]) exactly as PROTOCOL.md says, so this device runs everywhere and is the oracle
//! every GPU backend is compared with. Its kernels ([`crate::backend::KernelCode::Native`]) are Rust closures,
//! one call per invocation, each invocation a thread; the built-in programs are such kernels
//! ([`crate::backend::native`]), launched like any other. The programs that aggregate run one invocation per
//! subgroup, as a GPU runs a subgroup on one core: its lanes in lockstep ([`crate::protocol::Subgroup`]), or —
//! the read program (`read.rs`) — each lane a state machine, the subgroup's lanes stepped round-robin with one
//! idle wait for all of them when none progressed ([`step_subgroup`]); the others one invocation (a thread)
//! per lane.
//!
//! Besides the HAL, the CPU device's dispatch is public for host-side code that plays device lanes itself:
//! [`spawn_lanes`] (threads as lanes), [`run_lanes`] (lanes of a device ring), [`run_queue_lanes`] (lanes of a
//! pump's io_queue, one thread each) and [`run_queue_subgroups`] (io_queue lanes as state machines, one thread
//! per subgroup).

mod adapter;
mod device;
mod error;
mod kernel;
mod lanes;
mod memory;
pub(crate) mod read;
mod run;
mod stepped;
mod wait;

pub use adapter::CpuBackend;
pub use device::CpuDevice;
pub use lanes::{run_lanes, run_queue_lanes, run_queue_subgroups, spawn_lanes};
pub use stepped::{step_subgroup, Group, Step, SteppedLane, SubgroupStats};
pub use wait::{attach_ring_wait, RingWait};
