//! The Vulkan backend: device lanes are compute-shader invocations running the GLSL side of the protocol
//! (`device-shaders/include/gpu_uring.glsl`) on the ring's arena, imported with `VK_EXT_external_memory_host`.
//!
//! How it works inside:
//! - The loader is opened at run time (`ash::Entry::load`), so the crate builds and runs where libvulkan is
//!   absent; no loader, no driver, or a device without what the protocol needs gives
//!   [`DeviceError::Unavailable`](crate::backend::DeviceError::Unavailable) with the reason.
//! - Adapters and their choice: `adapter.rs`; the device: `device.rs`.
//! - Kernels: `kernel.rs` (SPIR-V, one pipeline each); launches: `run.rs`. The built-in programs run through
//!   them (`backend::builtin`): the arena imported into a HOST_COHERENT memory type (host-shared memory), a
//!   host-visible run buffer, the ring's device-local block in a `Placement::DeviceLocal` buffer (DEVICE_LOCAL,
//!   HOST_VISIBLE | HOST_COHERENT too where the device offers it, as lavapipe does, and then mapped) bound at
//!   bindings 3 and 4, filled from the ring's host copy before the first dispatch and copied back after the
//!   last, and the program's SPIR-V
//!   dispatched in workgroups of exactly one subgroup (local_size_x is a specialization constant): device-scope
//!   atomics in loops inside larger workgroups made lavapipe end invocations early.
//!   A launch that binds only buffers stays recorded, so re-dispatches only re-submit it.
//! - **Resumable dispatch.** lavapipe ends every loop of an invocation after 65535 iterations in total, so no
//!   program may rely on finishing in one dispatch. Each lane counts its loop iterations, starts no new work
//!   past a soft budget, and keeps its progress in its run-buffer state; the backend-neutral
//!   [`crate::backend::redispatch`] loop re-dispatches until every lane reports finished or the run's timeout
//!   expires ([`DeviceError::Timeout`](crate::backend::DeviceError::Timeout)). Each dispatch is waited for at most `dispatch_timeout`; one that
//!   exceeds it is reported as a timeout and its resources are parked until its fence signals.
//! - Caller-supplied kernels (`kernel.rs`, `memory.rs`): SPIR-V on the caller's buffers (device-local,
//!   host-visible, imported host memory) and/or the ring arena through the same launches.
//! - Every `unsafe` Vulkan call lives in `raw/`; its errors are typed (`error.rs`) and mapped into
//!   [`DeviceError`](crate::backend::DeviceError)s with their message.

mod adapter;
mod device;
mod error;
mod kernel;
mod memory;
mod raw;
mod run;

pub use adapter::VulkanBackend;
pub use device::{DEFAULT_GPU_ITER_BUDGET, DEFAULT_ITER_BUDGET};
