//! The CUDA backend skeleton (cargo feature `cuda`): compiles, enumerates no adapter and opens no device —
//! every entry point returns a typed error — but its launch path shows how the HAL's argument list maps onto
//! kernel parameters (`cuLaunchKernel`): argument `i` is parameter `i`, a buffer as its device pointer, bytes by
//! value; the grid is `groups` blocks of `group_size` threads (0: one warp). Loading takes PTX
//! ([`crate::backend::KernelCode::Ptx`]). A driver binding (e.g. dynamic loading of `libcuda.so`) fills these files in.

mod adapter;
mod device;
mod error;
mod kernel;
mod memory;
mod run;

pub use adapter::CudaBackend;
