//! The megakernel io_queue pump: a host thread services I/O requests that a persistent kernel publishes.
//!
//! A persistent kernel cannot relaunch to get its data, and unlike lanes on a device ring (`crate::protocol`)
//! it never holds file descriptors or host addresses. It publishes requests into an **io_queue** — slots in a
//! page-aligned, device-visible arena ([`queue::PumpArena`]) — naming files and buffers by handle. The
//! **pump** ([`host::Pump`]) claims each published request exactly once, validates it against the registered
//! files and buffer regions, and services READ/WRITE with `READ_FIXED`/`WRITE_FIXED` on its own io_uring into
//! and out of buffer regions of the same arena, registered as fixed buffers. The device reads the data in
//! place. Spec: `PROTOCOL.md` at the repository root, section "io_queue (megakernel pump)".
//!
//! How it works inside:
//! - [`queue`]: the `#[repr(C)]` `Pod` structs (`IoSlot`, `QueueHeader`, `RegionDesc`, the `PumpLayout`
//!   descriptor), state/op/error constants, the arena (queue pages, then each region between guard bytes) and
//!   [`queue::QueueView`], which turns offsets into atomics.
//! - One writer per host-shared word: a lane allocates a slot with a CAS on its word in the device-local block,
//!   fills the slot's request fields and stores the next sequence into `req_seq[slot]` (release); the pump,
//!   seeing a new sequence, loads it with acquire, serves the request and writes `result`, `error` and then
//!   `done_seq` (release); the lane waits for `done_seq` to equal its sequence and frees the slot (release
//!   store on the device-local word).
//! - [`host`]: the [`Pump`] handle (build, start, stop, counters); its configuration ([`PumpConfig`],
//!   [`PumpFile`], [`IdleConfig`]), errors and counters live in `config.rs`, the pure check of a request in
//!   `validate.rs` ([`validate`]), the pump thread in `engine.rs`.
//! - The pump thread scans the dense request-sequence array to find work (an idle pump reads `nslots / 16`
//!   cache lines and writes none),
//!   validates, pushes one SQE per READ/WRITE with the slot index and a pump-private generation as
//!   `user_data`, submits a batch with one `io_uring_enter`, reaps CQEs into slots, and completes FENCEs once
//!   everything published before them is done. It never has more requests in flight than its CQ holds. Idle,
//!   it spins briefly and then parks with a doubling timeout up to `IdleConfig::max_park`, the bound on cold
//!   latency; with nothing in flight it parks on a host-memory bell ([`wake`]) that lanes which are host
//!   threads ring, so their requests wake it at once. Stop drains (bounded), cancels, and leaves no slot
//!   CLAIMED; a failing ring fails the SQEs it never consumed and is never entered with work again. Arena
//!   words are untrusted: the pump keeps its own per-slot record of what it holds, never claims a slot whose
//!   I/O is in flight, applies a CQE only if slot and generation match, and counts protocol violations
//!   instead of panicking. After its final state it writes nothing, which is how a lane knows an uncompleted
//!   request is withdrawn.
//! - [`device`]: the lane side in Rust: allocate, publish, bounded wait, free. The CPU reference device runs
//!   it on its threads (`backend::cpu::run_queue_lanes`); the GLSL lane side is
//!   `device-shaders/include/gpu_uring_pump.glsl`, run on any device that loads its kernels by
//!   `backend::pump::run_pump`.

pub mod bus;
mod config;
pub mod device;
mod engine;
pub mod host;
pub mod queue;
mod validate;
pub mod wake;

pub use bus::QueueRegion;
#[cfg(feature = "testing")]
pub use config::SubmitFault;
pub use config::{IdleConfig, PumpConfig, PumpError, PumpFile, PumpStats};
pub use device::{QueueCompletion, QueueError, QueueLane, Request, SlotPoll};
pub use host::Pump;
pub use queue::{IoSlot, PumpArena, PumpLayout, QueueView, RegionDesc};
pub use validate::{validate, Valid, ValidIo};
pub use wake::LaneWake;
