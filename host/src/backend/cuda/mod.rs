//! The CUDA backend (cargo feature `cuda`): NVIDIA GPUs through the CUDA driver API, loaded at run time
//! (cudarc with dynamic loading), so the feature builds without CUDA and a binary with it starts anywhere; a
//! machine without the driver gets [`DeviceError::Unavailable`](crate::backend::DeviceError::Unavailable) with
//! the reason (`libcuda.so not found`, a driver too old, no device), never a panic.
//!
//! How it works inside (what has and has not run on hardware: `README.md` beside this file):
//! - `raw.rs` holds every driver call: the library and symbol probe, `cuInit`, device properties, the primary
//!   context, memory, modules, streams and events.
//! - Adapters (`adapter.rs`): every device, with the capabilities that decide placement —
//!   `CU_DEVICE_ATTRIBUTE_HOST_NATIVE_ATOMIC_SUPPORTED` (confirmed by `cuDeviceGetHostAtomicCapabilities`
//!   where the driver has it) and `CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM`; usable from compute capability
//!   7.5 (the device library's PTX target) with mappable host memory.
//! - Memory (`memory.rs`): device-local `cuMemAlloc`, host-visible `cuMemHostAlloc` (DEVICEMAP), imported host
//!   memory and the ring arena with `cuMemHostRegister` (DEVICEMAP) and `cuMemHostGetDevicePointer`.
//! - Kernels (`kernel.rs`): PTX with `cuModuleLoadDataEx` (the JIT's error log in the error); the HAL's
//!   argument `i` is kernel parameter `i`, a buffer as its device pointer, bytes by value; a group size of 0
//!   is one warp.
//! - Launches (`run.rs`): `cuLaunchKernel` on a pooled stream, an event after it, and a bounded wait that
//!   polls the event; past its limit, [`DeviceError::Timeout`](crate::backend::DeviceError::Timeout) and the
//!   launch is parked with what it uses until the event fires. `launch_async` hands the wait to a thread
//!   (an emulated completion descriptor).
//! - The built-in programs run on the device library's kernels (`kernels/bin`, loaded once per device: the
//!   `sm_90` cubin on compute capability 9.0, the `compute_75` PTX elsewhere) through
//!   [`crate::backend::library`]: Nop and Print so far.

mod adapter;
mod device;
mod error;
mod kernel;
mod memory;
mod raw;
mod run;

pub use adapter::CudaBackend;
