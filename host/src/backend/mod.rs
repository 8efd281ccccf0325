//! Devices that run the device protocol. Every backend looks the same from outside: it is opened from a
//! [`DeviceSelector`], says what it is ([`DeviceInfo`]), and runs the built-in [`Program`]s against a
//! [`DeviceRing`](crate::protocol::DeviceRing) so one test suite and one set of experiments cover every
//! backend. The traits a backend implements are in [`hal`]; each backend is a folder with the same file names
//! (`mod.rs`, `adapter.rs`, `device.rs`, `error.rs`, `memory.rs`, `kernel.rs`, `run.rs`); CUDA and HIP write
//! the device, memory, kernels and launches once in `gpu/` over a `Driver` trait and keep only their driver
//! calls (`raw.rs`).
//!
//! - [`cpu`]: the CPU reference device — threads as lanes, grouped into subgroups. Runs everywhere; the oracle.
//! - `vulkan` (cargo feature `vulkan`, on by default): compute shaders on any Vulkan 1.2 device with
//!   `VK_EXT_external_memory_host` (lavapipe in CI).
//! - `cuda` (cargo feature `cuda`): NVIDIA GPUs through the CUDA driver API, loaded at run time.
//! - `hip` (cargo feature `hip`): AMD GPUs through the HIP runtime (linked at build time).
//!
//! Your own kernels run the same way: [`RingKernel`] loads one (GLSL written with
//! `device-shaders/include/gpu_uring_print.glsl`, compiled by [`glsl::compile`]) and runs it on a ring with the
//! library's run buffer and re-dispatch ([`RunConfig`]).
//!
//! Backend-neutral pieces: the registry and `--device` selection ([`open`], [`backends`]), the built-in
//! programs and their expected output ([`Program`], [`expected_line`], [`checksum`]), how they run on any
//! device (`builtin`: load, launch, re-dispatch; [`native`]: their Rust kernels; [`library`]: the CUDA/HIP
//! device library's kernels), run reports
//! ([`RunReport`]), [`redispatch`] (re-dispatch of resumable programs), [`pump`] (io_queue programs on any
//! device that loads their kernels), [`run_buffer`] (the run-buffer structures device programs share with the
//! host), [`spirv`] (the committed SPIR-V of the built-in programs).

mod builtin;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod error;
pub mod glsl;
#[cfg(any(feature = "cuda", feature = "hip"))]
pub(crate) mod gpu;
pub mod hal;
#[cfg(feature = "hip")]
pub mod hip;
pub mod library;
pub mod native;
mod program;
pub mod pump;
pub mod redispatch;
mod report;
mod ring_kernel;
pub mod run_buffer;
mod select;
pub mod spirv;
#[cfg(feature = "vulkan")]
pub mod vulkan;

pub use builtin::Programs;
pub use error::{compiled_out, DeviceError};
pub use hal::{
    AdapterInfo, Backend, BetweenDispatches, Capabilities, Completer, Device, DeviceBuffer,
    DeviceConfig, DeviceInfo, DeviceType, FenceCounters, FenceKind, FenceStats, FormatCase, Grid,
    Kernel, KernelArg, KernelCache, KernelCode, KernelFormat, KernelLayout, LibraryDevice,
    NativeArg, NativeKernel, Placement, Submission,
};
pub use program::{
    checksum, edit_buffer_host, expected_line, format_print_line, layout_sqe_expected, HostileCase,
    Program,
};
pub use report::{LaneReport, RunReport};
pub use ring_kernel::{RingKernel, RunConfig};
pub use select::{backend, backends, open, open_with, BackendEntry, DeviceSelector};
