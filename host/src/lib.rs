//! gpu-uring: device code doing real I/O through Linux io_uring, without a host RPC server.
//!
//! The crate is organised the way the system works:
//! - [`abi`]: every structure and constant host and device code share through memory, defined once; the C
//!   header GLSL, HIP and CUDA include (`abi/gpu_uring_abi.h`) is generated from it.
//! - [`ring`]: io_uring instances whose rings, SQEs, device control block, staging lines and fixed buffers
//!   live in one page-aligned arena that a GPU API can import (`IORING_SETUP_NO_MMAP`), plus the SQPOLL waker.
//! - [`protocol`]: the rules by which many device lanes share one ring (spec: `PROTOCOL.md` at the repository root),
//!   implemented in Rust; the GLSL and HIP/CUDA implementations follow the same spec.
//! - [`backend`]: devices that run the protocol; the CPU reference device (threads as lanes) runs everywhere.
//! - [`pump`]: the megakernel io_queue pump.
//! - [`proactor`]: completion-based async I/O for the CPU side.

#![deny(missing_docs)]

/// Implements `Debug` for error types as their `Display` message, so that `fn main() -> Result<(), E>` and
/// `unwrap` show what went wrong and how to fix it rather than the variant's fields.
macro_rules! debug_as_display {
    ($t:ty) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(self, f)
            }
        }
    };
}

// The README's Rust example runs as a doctest (`cargo test --doc -p gpu-uring`).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

pub mod abi;
pub mod backend;
pub mod proactor;
pub mod protocol;
pub mod pump;
pub mod ring;
