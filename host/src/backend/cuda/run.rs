//! CUDA launches: the HAL's arguments resolved to device pointers and values ([`gpu::resolve`]; a
//! [`KernelArg::RingArena`] registers the ring's arena for the launch, or shares its live registration), then
//! `cuLaunchKernel` on a stream of the device's pool with an event recorded after it, and a bounded wait on
//! that event ([`gpu::finish`]). Past its limit a launch fails with [`DeviceError::Timeout`] and is parked with
//! its stream, kernel, buffers and registrations until the event reports it ended. An asynchronous launch
//! hands the same wait to a thread that ends its [`Submission`] ([`gpu::finish_async`]).

use std::ffi::c_void;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::kernel::{cuda_kernel, CudaKernel};
use super::memory::Registry;
use super::memory::{cuda_buffer, register};
use super::raw::{Context, Stream};
use crate::backend::gpu::{self, Completion, Parked, Pool, Started};
use crate::backend::hal::{FenceCounters, Grid, Kernel, KernelArg, Submission};
use crate::backend::DeviceError;

impl Completion for Stream {
    fn ended(&self) -> Result<bool, String> {
        self.query().map_err(|e| e.to_string())
    }
}

/// What a device's launches need: its context, its streams, its parked launches and its completion
/// descriptors' counters.
pub(super) struct Launcher {
    pub ctx: Arc<Context>,
    pub streams: Arc<Pool<Stream>>,
    pub parked: Arc<Parked<Stream>>,
    pub fences: Arc<FenceCounters>,
}

impl Launcher {
    pub(super) fn new(ctx: Arc<Context>) -> Launcher {
        Launcher {
            ctx,
            streams: Arc::default(),
            parked: Arc::new(Parked::new("cuda")),
            fences: Arc::default(),
        }
    }
}

/// Checks and starts a launch.
fn start(
    dev: &Launcher,
    registry: &Registry,
    kernel: &Kernel,
    args: &[KernelArg<'_>],
    grid: Grid,
) -> Result<Started<Stream>, DeviceError> {
    dev.parked.reclaim();
    let k: Arc<CudaKernel> = cuda_kernel(kernel)?;
    let p = &dev.ctx.props;
    let geom = gpu::geometry("cuda", grid, p.warp, p.max_threads_per_block)?;
    let gpu::Resolved {
        mut values,
        mut keep,
    } = gpu::resolve(
        "cuda",
        args,
        kernel.layout(),
        |b| {
            let held = cuda_buffer(b)?;
            Ok((held.device_ptr(), held))
        },
        |base, len, owner| {
            // SAFETY: `resolve` passes a ring arena: one page-aligned, writable mapping of `len` bytes kept
            // mapped by `owner`, which the registration holds.
            let reg = unsafe { register(&dev.ctx, registry, base, len, owner) }?;
            Ok((reg.dev, reg))
        },
    )?;
    keep.push(k.clone());
    let mut ptrs: Vec<*mut c_void> = values.iter_mut().map(|v| v.as_ptr()).collect();
    let stream = dev.streams.take(|| Stream::new(&dev.ctx))?;
    let at = Instant::now();
    // SAFETY: `ptrs` point at `values`, which live across the call, one per kernel parameter in order and of
    // the kernel's sizes (the kernel's layout, checked by `resolve`, is the loader's contract); every device
    // pointer among them belongs to a buffer or registration in `keep`, which the launch holds until it has
    // ended (returned, or parked on timeout).
    match unsafe { stream.launch(&k.function, geom, &mut ptrs) } {
        Ok(()) => Ok(Started { stream, keep, at }),
        Err(e) => {
            dev.streams.give(stream);
            Err(e.into())
        }
    }
}

/// Runs `grid` of `kernel` once with `args`, waiting at most `limit`.
pub(super) fn launch(
    dev: &Launcher,
    registry: &Registry,
    kernel: &Kernel,
    args: &[KernelArg<'_>],
    grid: Grid,
    limit: Duration,
) -> Result<Duration, DeviceError> {
    let s = start(dev, registry, kernel, args, grid)?;
    gpu::finish("cuda", &dev.streams, &dev.parked, s, limit)
}

/// Starts `grid` of `kernel` with `args` and returns its submission, ended by a waiter thread.
pub(super) fn launch_async(
    dev: &Launcher,
    registry: &Registry,
    kernel: &Kernel,
    args: &[KernelArg<'_>],
    grid: Grid,
    limit: Duration,
) -> Result<Submission, DeviceError> {
    let s = start(dev, registry, kernel, args, grid)?;
    gpu::finish_async(
        "cuda",
        kernel.name(),
        &dev.fences,
        &dev.streams,
        &dev.parked,
        s,
        limit,
    )
}
