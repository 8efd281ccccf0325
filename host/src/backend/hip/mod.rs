//! The HIP backend (cargo feature `hip`): AMD GPUs through the HIP runtime (`hip-sys`), linked against
//! `libamdhip64` at build time — a binary with this feature does not start where that library is absent, so
//! builds meant for NVIDIA machines leave it out. A machine without an AMD GPU gets
//! [`DeviceError::Unavailable`](crate::backend::DeviceError::Unavailable) with the runtime's reason.
//!
//! How it works inside (what has and has not run on hardware: `../cuda/README.md`, which covers both GPU
//! backends). What CUDA and HIP share is written once in [`crate::backend::gpu`] over its `Driver` trait; this
//! folder keeps the runtime-specific part:
//! - `raw.rs` holds every runtime call: device properties (`gcnArchName` for the ISA), memory (`hipMalloc`,
//!   `hipHostMalloc` mapped and coherent, `hipHostRegister` mapped with `hipHostGetDevicePointer`), modules
//!   (`hipModuleLoadData`), streams, launches (`hipModuleLaunchKernel`) and events; each call is made with the
//!   device current (`hipSetDevice`).
//! - Adapters (`adapter.rs`): every device, with `hipDeviceAttributeHostNativeAtomicSupported` deciding
//!   placement; usable where the device library has a code object for the ISA and host memory can be mapped.
//! - The runtime (`device.rs`): `raw.rs` behind the `Driver` trait, caller kernels as AMD code objects, and the
//!   device library's code object for the device's ISA (`kernels/bin`), on which every built-in program runs
//!   ([`crate::backend::library`]).

mod adapter;
mod device;
mod error;
mod raw;

pub use adapter::HipBackend;
