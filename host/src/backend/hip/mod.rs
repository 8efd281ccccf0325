//! The HIP backend (cargo feature `hip`): AMD GPUs through the HIP runtime (`hip-sys`), linked against
//! `libamdhip64` at build time — a binary with this feature does not start where that library is absent, so
//! builds meant for NVIDIA machines leave it out. A machine without an AMD GPU gets
//! [`DeviceError::Unavailable`](crate::backend::DeviceError::Unavailable) with the runtime's reason.
//!
//! How it works inside (what has and has not run on hardware: `../cuda/README.md`, which covers both GPU
//! backends):
//! - `raw.rs` holds every runtime call: device properties (`gcnArchName` for the ISA), memory, modules,
//!   streams and events; each call is made with the device current (`hipSetDevice`).
//! - Adapters (`adapter.rs`): every device, with `hipDeviceAttributeHostNativeAtomicSupported` deciding
//!   placement; usable where the device library has a code object for the ISA and host memory can be mapped.
//! - Memory (`memory.rs`): device-local `hipMalloc`, host-visible `hipHostMalloc` (mapped, coherent), imported
//!   host memory and the ring arena with `hipHostRegister` (`hipHostRegisterMapped`) and
//!   `hipHostGetDevicePointer`.
//! - Kernels (`kernel.rs`): AMD code objects with `hipModuleLoadData`; argument `i` is kernel parameter `i`.
//! - Launches (`run.rs`): `hipModuleLaunchKernel` on a pooled stream, an event after it, a bounded wait
//!   polling the event, and parking past the limit — shared with CUDA (`backend/gpu.rs`).
//! - The built-in programs run on the device library's code object for the device's ISA (`kernels/bin`)
//!   through [`crate::backend::library`]: Nop and Print so far.

mod adapter;
mod device;
mod error;
mod kernel;
mod memory;
mod raw;
mod run;

pub use adapter::HipBackend;
