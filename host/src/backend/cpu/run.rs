//! Launches on the CPU reference device: `groups × group_size` invocations of a native kernel, one thread each
//! ([`super::lanes::spawn_lanes`]), with the launch's arguments and its deadline. A launch ends when every
//! invocation has returned; one that took longer than its limit is reported as [`DeviceError::Timeout`] (its
//! kernel is expected to give up at the deadline it was given).
//!
//! An asynchronous launch ([`launch_async`]) takes what its arguments borrow (the buffers, the ring arena's
//! keep-alive, the bytes) and runs the same lanes from a thread of its own, which ends its [`Submission`] —
//! and makes its eventfd readable — when the last lane has returned (the emulated completion descriptor:
//! the CPU device has no driver to export a `sync_file`).

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::run_error;
use super::kernel::CpuKernel;
use super::lanes::spawn_lanes;
use super::memory::CpuBuffer;
use super::wait::{attached, RingWait};
use crate::backend::hal::{FenceCounters, Grid, Kernel, KernelArg, NativeArg, Submission};
use crate::backend::DeviceError;
use crate::protocol::idle::with_idle_wait;
use crate::ring::ArenaKeepAlive;

/// One argument, owned by the launch.
enum Owned {
    Words(Arc<CpuBuffer>),
    Arena(ArenaKeepAlive),
    Bytes(Vec<u8>),
}

/// A checked launch that owns what it uses.
struct Prepared {
    kernel: Arc<CpuKernel>,
    args: Vec<Owned>,
    invocations: u32,
    /// The lanes' idle wait on the launch's ring, if it has one ([`RingWait`]).
    wait: Option<Arc<RingWait>>,
}

impl Prepared {
    /// Checks `args` against `kernel` and takes what they borrow (a group size of 0 is one subgroup of
    /// `subgroup_size`).
    fn new(
        subgroup_size: u32,
        kernel: &Kernel,
        args: &[KernelArg<'_>],
        grid: Grid,
    ) -> Result<Prepared, DeviceError> {
        let k = kernel
            .backend_object()
            .clone()
            .into_any()
            .downcast::<CpuKernel>()
            .map_err(|_| run_error("a kernel from another backend was passed to a CPU launch"))?;
        let mut owned = Vec::with_capacity(args.len());
        let mut wait = None;
        for a in args {
            match (a, &wait) {
                (KernelArg::RingArena(r), None) => wait = RingWait::new(r),
                (KernelArg::Buffer(b), None) => {
                    if let Some(cb) = b
                        .backend_object()
                        .clone()
                        .into_any()
                        .downcast_ref::<CpuBuffer>()
                    {
                        wait = attached(cb.words().as_ptr() as usize);
                    }
                }
                _ => {}
            }
            owned.push(match a {
                KernelArg::Buffer(b) => Owned::Words(
                    b.backend_object()
                        .clone()
                        .into_any()
                        .downcast::<CpuBuffer>()
                        .map_err(|_| {
                            run_error("a buffer from another backend was passed to a CPU launch")
                        })?,
                ),
                KernelArg::RingArena(r) => Owned::Arena(r.arena_keepalive()),
                KernelArg::Bytes(v) => Owned::Bytes(v.to_vec()),
            });
        }
        let buffers = args
            .iter()
            .filter(|a| !matches!(a, KernelArg::Bytes(_)))
            .count();
        if buffers != kernel.layout().buffers as usize {
            return Err(run_error(format!(
                "kernel {} takes {} buffers, {buffers} given",
                kernel.name(),
                kernel.layout().buffers
            )));
        }
        let size = if grid.group_size == 0 {
            subgroup_size
        } else {
            grid.group_size
        };
        Ok(Prepared {
            kernel: k,
            args: owned,
            invocations: grid.groups.saturating_mul(size),
            wait,
        })
    }

    /// Runs every invocation on its own thread and waits for all of them.
    fn run(&self, limit: Duration) -> Result<Duration, DeviceError> {
        let native: Vec<NativeArg<'_>> = self
            .args
            .iter()
            .map(|a| match a {
                Owned::Bytes(v) => NativeArg::Bytes(v),
                Owned::Words(b) => NativeArg::Words(b.words()),
                Owned::Arena(keep) => {
                    let (base, len) = keep.arena();
                    // SAFETY: the ring's arena is a page-aligned mapping of `len` bytes that `keep` keeps
                    // mapped for the whole launch; only atomics touch it.
                    NativeArg::Words(unsafe {
                        std::slice::from_raw_parts(base as *const AtomicU32, len / 4)
                    })
                }
            })
            .collect();
        let k = &self.kernel;
        let start = Instant::now();
        let limit = limit.max(Duration::from_millis(1));
        let deadline = start + limit;
        spawn_lanes(self.invocations, &k.name, |id| match &self.wait {
            Some(w) => with_idle_wait(w.clone(), || (k.f)(id, &native, deadline)),
            None => (k.f)(id, &native, deadline),
        })?;
        let t = start.elapsed();
        if t > limit {
            return Err(DeviceError::Timeout {
                backend: "cpu",
                limit,
            });
        }
        Ok(t)
    }
}

/// Runs `grid` of `kernel` (a group size of 0 is one subgroup of `subgroup_size`).
pub(super) fn launch(
    subgroup_size: u32,
    kernel: &Kernel,
    args: &[KernelArg<'_>],
    grid: Grid,
    limit: Duration,
) -> Result<Duration, DeviceError> {
    Prepared::new(subgroup_size, kernel, args, grid)?.run(limit)
}

/// Starts `grid` of `kernel` on a thread of its own; its end makes the submission's eventfd readable.
pub(super) fn launch_async(
    subgroup_size: u32,
    counters: &Arc<FenceCounters>,
    kernel: &Kernel,
    args: &[KernelArg<'_>],
    grid: Grid,
    limit: Duration,
) -> Result<Submission, DeviceError> {
    let prepared = Prepared::new(subgroup_size, kernel, args, grid)?;
    let (submission, completer) = Submission::start("cpu", counters.clone(), None)?;
    std::thread::Builder::new()
        .name(format!("launch-{}", kernel.name()))
        // A panicking lane panics this thread; the completer, dropped while it unwinds, ends the
        // submission with an error.
        .spawn(move || completer.complete(prepared.run(limit)))
        .map_err(|e| run_error(format!("spawning the launch thread: {e}")))?;
    Ok(submission)
}
