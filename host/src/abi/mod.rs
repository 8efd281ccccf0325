//! The device ABI: every structure and constant that host and device code share through memory, defined once.
//!
//! Everything a GPU (or the CPU reference device) reads or writes in shared memory is here, as `#[repr(C)]`
//! [`bytemuck::Pod`] structs and `u32`/`u64` constants, with compile-time asserts of every size and offset
//! beside each type. Device languages do not retype any of it: [`header::render`] turns this module into one
//! C header (`abi/gpu_uring_abi.h` at the repository root) that GLSL (`GL_GOOGLE_include_directive`), HIP and
//! CUDA include. Regenerate it with
//!
//! ```text
//! cargo run -p gpu-uring --example gen-abi-header          # rewrites abi/gpu_uring_abi.h
//! cargo run -p gpu-uring --example gen-abi-header -- --check  # fails if the committed header is stale
//! ```
//!
//! | module | what | spec |
//! | --- | --- | --- |
//! | [`ring`] | [`RingLayout`] (push constants / kernel argument), [`LocalControl`], [`SharedControl`], [`CompletionSlot`], doorbell bits, ring slot states, `user_data` tags, print flags, wait statuses, ring flags | PROTOCOL.md §1–§7 |
//! | [`uring`] | the kernel's SQE/CQE layouts and the io_uring opcodes and SQE flags device code uses | `io_uring.h` |
//! | [`queue`] | the io_queue: [`QueueHeader`], [`IoSlot`], [`RegionDesc`], [`PumpLayout`], slot states, ops, error codes, pump states | PROTOCOL.md "io_queue" |
//! | [`run`] | the run buffers of resumable programs: [`RunParams`], [`RunHeader`], [`LaneState`], [`PumpRunParams`], [`PumpLaneState`] and their flags | — |
//!
//! States and codes are `#[repr(u32)]` enums with `TryFrom<u32>` (an unknown value is an [`UnknownValue`]
//! error, never a panic: these words are device-written); the raw `u32` constants the wire uses are derived
//! from the enums, so each value is written once.
//!
//! This is the lowest layer of the crate: it imports nothing from it.

#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

#[macro_use]
mod describe;
pub mod header;
pub mod queue;
pub mod ring;
pub mod run;
pub mod uring;

pub use describe::{AbiStruct, CType, Field, UnknownValue, WireEnum};
pub use queue::*;
pub use ring::*;
pub use run::*;
pub use uring::*;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn try_from_rejects_unknown_values() {
        assert_eq!(QueueSlotState::try_from(2), Ok(QueueSlotState::Published));
        assert_eq!(RingSlotState::try_from(2), Ok(RingSlotState::Done));
        let e = QueueSlotState::try_from(3).unwrap_err();
        assert_eq!(e.value, 3);
        assert!(e.to_string().contains("io_queue slot state"), "{e}");
        assert!(QueueErrorCode::try_from(ERR_COUNT as u32).is_err());
        for (i, c) in QueueErrorCode::ALL.iter().enumerate() {
            assert_eq!(c.raw() as usize, i, "error codes index counters");
        }
    }
}
