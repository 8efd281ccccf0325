//! Launches on Vulkan: a launch binds each buffer argument (a [`DeviceBuffer`](crate::backend::DeviceBuffer),
//! or the arena of a [`DeviceRing`], imported for the launch), records one dispatch, submits it and waits at
//! most its limit: past it, [`DeviceError::Timeout`], and the dispatch's objects — with the kernel, the
//! buffers and the arena it uses — are parked until its fence signals.
//!
//! An asynchronous launch ([`launch_async`]) records its own dispatch, submits it and hands it to a waiter
//! thread; its completion descriptor is the dispatch's `sync_file` where the device exports one, else an
//! eventfd the waiter thread makes readable.
//!
//! A launch that binds only buffers is kept recorded afterwards ([`Recorder`]), so the next launch of the same
//! kernel with the same buffers, push constants and grid — the re-dispatches of a resumable program — only
//! submits it again. The kept recording holds its kernel and buffers weakly: it keeps nothing alive, and one
//! whose kernel or buffers are gone is destroyed, never submitted.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::error::run_error;
use super::memory::raw_buffer;
use super::raw;
use crate::backend::hal::{FenceCounters, Grid, Kernel, KernelArg, Submission};
use crate::backend::DeviceError;
use crate::protocol::DeviceRing;

/// Recorded launches kept per device.
const KEPT: usize = 4;

/// Added to the limit of a kernel's first dispatch. A driver may compile the pipeline then rather than at
/// `vkCreateComputePipelines`: llvmpipe (lavapipe) JIT-compiles it at the first dispatch, which takes tens of
/// seconds for the largest built-in programs on a cold shader cache (about 30 s for `hostile` on a 2-core VM),
/// and that time says nothing about whether the device's lanes are stuck.
pub(super) const FIRST_DISPATCH_COMPILE_ALLOWANCE: Duration = Duration::from_secs(180);

/// A launch kept recorded, and what it was recorded with.
struct Recorded {
    kernel: Weak<raw::Kernel>,
    buffers: Vec<Weak<raw::Buffer>>,
    push: [u8; raw::PUSH_CONSTANT_BYTES as usize],
    groups: u32,
    /// Not pending (its fence was waited for), holding nothing alive (`Run::set_keep`).
    run: raw::Run,
}

impl Recorded {
    fn alive(&self) -> bool {
        self.kernel.strong_count() > 0 && self.buffers.iter().all(|b| b.strong_count() > 0)
    }
}

/// The device's recorded launches, most recent last.
#[derive(Default)]
pub(super) struct Recorder {
    runs: Mutex<Vec<Recorded>>,
}

impl Recorder {
    /// The recorded launch of `kernel` with `buffers`, `push` and `groups`, taken out (one launch at a time
    /// submits it). Drops recordings whose kernel or buffers are gone.
    fn take(
        &self,
        kernel: &Arc<raw::Kernel>,
        buffers: &[Arc<raw::Buffer>],
        push: &[u8; raw::PUSH_CONSTANT_BYTES as usize],
        groups: u32,
    ) -> Option<raw::Run> {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.retain(Recorded::alive);
        // A live weak reference pins its allocation, so equal pointers name the very objects the caller holds.
        let at = runs.iter().position(|r| {
            Weak::as_ptr(&r.kernel) == Arc::as_ptr(kernel)
                && r.groups == groups
                && r.push == *push
                && r.buffers.len() == buffers.len()
                && r.buffers
                    .iter()
                    .zip(buffers)
                    .all(|(w, b)| Weak::as_ptr(w) == Arc::as_ptr(b))
        })?;
        Some(runs.remove(at).run)
    }

    fn keep(&self, r: Recorded) {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.push(r);
        if runs.len() > KEPT {
            runs.remove(0);
        }
    }
}

/// A checked launch: the kernel, its bindings (`None`: the ring arena), its push constants.
struct Prepared<'a> {
    kernel: Arc<raw::Kernel>,
    ring: Option<&'a DeviceRing>,
    binds: Vec<Option<Arc<raw::Buffer>>>,
    push: [u8; raw::PUSH_CONSTANT_BYTES as usize],
}

impl<'a> Prepared<'a> {
    fn new(
        ctx: &Arc<raw::Context>,
        kernel: &Kernel,
        args: &[KernelArg<'a>],
        grid: Grid,
    ) -> Result<Prepared<'a>, DeviceError> {
        let k = kernel
            .backend_object()
            .clone()
            .into_any()
            .downcast::<raw::Kernel>()
            .map_err(|_| {
                run_error("a kernel from another backend was passed to a Vulkan launch")
            })?;
        if grid.group_size != 0 && grid.group_size != ctx.subgroup_size {
            return Err(DeviceError::Unsupported {
                backend: "vulkan",
                what: format!(
                    "a group size of {} (Vulkan kernels run one subgroup of {} per group)",
                    grid.group_size, ctx.subgroup_size
                ),
            });
        }
        let mut push = [0u8; raw::PUSH_CONSTANT_BYTES as usize];
        let mut pushed = 0usize;
        let mut ring: Option<&DeviceRing> = None;
        let mut binds = Vec::with_capacity(args.len());
        for a in args {
            match *a {
                KernelArg::RingArena(r) => {
                    if ring.is_some_and(|x| !std::ptr::eq(x, r)) {
                        return Err(run_error(
                            "every RingArena argument of a launch must name the same ring",
                        ));
                    }
                    ring = Some(r);
                    binds.push(None);
                }
                KernelArg::Buffer(b) => binds.push(Some(raw_buffer(b)?)),
                KernelArg::Bytes(v) => {
                    let end = pushed + v.len();
                    let Some(dst) = push.get_mut(pushed..end) else {
                        return Err(run_error(format!(
                            "{end} bytes of by-value arguments; at most {}",
                            raw::PUSH_CONSTANT_BYTES
                        )));
                    };
                    dst.copy_from_slice(v);
                    pushed = end;
                }
            }
        }
        Ok(Prepared {
            kernel: k,
            ring,
            binds,
            push,
        })
    }

    /// A new recording of the launch.
    fn record(&self, ctx: &Arc<raw::Context>, groups: u32) -> Result<raw::Run, DeviceError> {
        raw::Run::kernel(
            ctx,
            &self.kernel,
            self.ring.map(|r| r.arena_keepalive()),
            &self.binds,
            &self.push,
            groups,
        )
        .map_err(run_error)
    }
}

/// Runs `grid` of `kernel` once with `args`, waiting at most `limit`.
pub(super) fn launch(
    ctx: &Arc<raw::Context>,
    recorder: &Recorder,
    kernel: &Kernel,
    args: &[KernelArg<'_>],
    grid: Grid,
    limit: Duration,
) -> Result<Duration, DeviceError> {
    let p = Prepared::new(ctx, kernel, args, grid)?;
    let k = &p.kernel;
    ctx.reclaim_orphans();
    // Only launches that bind no ring arena are kept: the run's own import of an arena would keep the ring's
    // arena mapped (and the ring open) for as long as the recording is kept.
    let buffers: Option<Vec<Arc<raw::Buffer>>> = p.binds.iter().cloned().collect();
    let kept = buffers
        .as_ref()
        .and_then(|b| recorder.take(k, b, &p.push, grid.groups));
    let mut run = match kept {
        Some(mut run) => {
            // Held again while the dispatch may be pending (a run parked after a timeout keeps them).
            let mut keep: Vec<Arc<dyn Send + Sync>> = vec![k.clone()];
            keep.extend(
                buffers
                    .iter()
                    .flatten()
                    .map(|b| b.clone() as Arc<dyn Send + Sync>),
            );
            run.set_keep(keep);
            run
        }
        None => p.record(ctx, grid.groups)?,
    };
    // Relaxed: a flag only this kernel's launches read; two first launches racing both get the allowance.
    let first = !k.dispatched.swap(true, Ordering::Relaxed);
    let wait = limit.max(Duration::from_millis(1))
        + if first {
            FIRST_DISPATCH_COMPILE_ALLOWANCE
        } else {
            Duration::ZERO
        };
    let t = Instant::now();
    match run.dispatch(wait).map_err(run_error)? {
        raw::Waited::Done => {
            let t = t.elapsed();
            if let (Some(buffers), false) = (buffers, run.holds_arena()) {
                run.set_keep(Vec::new());
                recorder.keep(Recorded {
                    kernel: Arc::downgrade(k),
                    buffers: buffers.iter().map(Arc::downgrade).collect(),
                    push: p.push,
                    groups: grid.groups,
                    run,
                });
            }
            Ok(t)
        }
        // Dropping `run` parks it (with the kernel, the buffers and the arena) until its fence signals.
        raw::Waited::TimedOut => Err(DeviceError::Timeout {
            backend: "vulkan",
            limit: wait,
        }),
    }
}

/// Starts `grid` of `kernel` with `args` (a recording of its own, never kept) and returns its submission:
/// its descriptor is the dispatch's exported `sync_file` where the device exports one, else the eventfd a
/// waiter thread makes readable once the fence signals or `limit` passes. Either way the waiter thread owns
/// the run and ends the submission (past the limit, the run is parked until its fence signals).
pub(super) fn launch_async(
    ctx: &Arc<raw::Context>,
    counters: &Arc<FenceCounters>,
    kernel: &Kernel,
    args: &[KernelArg<'_>],
    grid: Grid,
    limit: Duration,
) -> Result<Submission, DeviceError> {
    let p = Prepared::new(ctx, kernel, args, grid)?;
    ctx.reclaim_orphans();
    let mut run = p.record(ctx, grid.groups)?;
    let limit = limit.max(Duration::from_millis(1));
    let t = Instant::now();
    let sync_file = run.submit(true).map_err(run_error)?;
    // From here the dispatch is pending: every failure below still ends with `run` dropped, which parks it.
    let (submission, completer) = Submission::start("vulkan", counters.clone(), sync_file)?;
    std::thread::Builder::new()
        .name(format!("launch-{}", kernel.name()))
        .spawn(move || {
            let left = limit.saturating_sub(t.elapsed());
            let r = match run.wait(left) {
                Ok(raw::Waited::Done) => Ok(t.elapsed()),
                Ok(raw::Waited::TimedOut) => Err(DeviceError::Timeout {
                    backend: "vulkan",
                    limit,
                }),
                Err(e) => Err(run_error(e)),
            };
            // Freed (done) or parked (still running) before the submission ends, so that a caller that
            // drops the device once the launch has ended finds nothing of it in use.
            drop(run);
            completer.complete(r);
        })
        .map_err(|e| run_error(format!("spawning the launch's waiter thread: {e}")))?;
    Ok(submission)
}
