//! The raw Vulkan layer: every `unsafe` Vulkan call of the backend lives in this module, each with the
//! invariant it relies on. Above it (`adapter`, `device`, `memory`, `kernel`, `run`) everything is safe:
//! device choice, programs, the re-dispatch loop. Errors are [`VkError`]s.
//!
//! Object lifetimes: [`Instance`] (`instance.rs`) owns the loader and the `VkInstance`; a [`Context`]
//! (`context.rs`) owns a `VkDevice` created from it (and keeps the `Instance` alive through an `Arc`); a
//! [`Run`] (`dispatch.rs`) owns everything one recorded launch creates (`objects.rs`: the imported arena, if
//! it binds the ring's, descriptor and command pools, the fence). A `Run` is destroyed only after its fence has
//! signalled; a run whose dispatch outlived its time limit is parked in the context's orphan list, with the
//! ring arena kept alive ([`crate::ring::ArenaKeepAlive`]), until the fence signals. Buffers and memory
//! types are in `memory.rs`, caller-supplied kernels in `kernel.rs`.
//!
//! [`VkError`]: crate::backend::vulkan::error::VkError

mod context;
mod dispatch;
mod instance;
mod kernel;
mod memory;
mod objects;

pub(crate) use context::{Context, PUSH_CONSTANT_BYTES};
pub(crate) use dispatch::{Run, Waited};
pub(crate) use instance::{Instance, PhysInfo};
pub(crate) use kernel::Kernel;
pub(crate) use memory::{Buffer, BufferKind};
