//! The CUDA backend (cargo feature `cuda`): NVIDIA GPUs through the CUDA driver API, loaded at run time
//! (cudarc with dynamic loading), so the feature builds without CUDA and a binary with it starts anywhere; a
//! machine without the driver gets [`DeviceError::Unavailable`](crate::backend::DeviceError::Unavailable) with
//! the reason (`libcuda.so not found`, a driver too old, no device), never a panic.
//!
//! How it works inside (what has and has not run on hardware: `README.md` beside this file). What CUDA and HIP
//! share — buffers, registrations, kernels, launches, bounded waits, parking, the device library — is written
//! once in [`crate::backend::gpu`] over its `Driver` trait; this folder keeps the driver-specific part:
//! - `raw.rs` holds every driver call: the library and symbol probe, `cuInit`, device properties, the primary
//!   context, memory (`cuMemAlloc`, `cuMemHostAlloc` DEVICEMAP, `cuMemHostRegister` DEVICEMAP with
//!   `cuMemHostGetDevicePointer`), modules (`cuModuleLoadDataEx`, the JIT's error log in the error), streams,
//!   launches (`cuLaunchKernel`) and events.
//! - Adapters (`adapter.rs`): every device, with the capabilities that decide placement —
//!   `CU_DEVICE_ATTRIBUTE_HOST_NATIVE_ATOMIC_SUPPORTED` (confirmed by `cuDeviceGetHostAtomicCapabilities`
//!   where the driver has it) and `CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM`; usable from compute capability
//!   7.5 (the device library's PTX target) with mappable host memory.
//! - The driver (`device.rs`): `raw.rs` behind the `Driver` trait, caller kernels as PTX, and the device
//!   library's binary (`kernels/bin`, loaded once per device: the `sm_90` cubin on compute capability 9.0, the
//!   `compute_75` PTX elsewhere), on which every built-in program runs ([`crate::backend::library`]).

mod adapter;
mod device;
mod error;
mod raw;

pub use adapter::CudaBackend;
