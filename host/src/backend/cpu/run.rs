//! Launches on the CPU reference device: `groups × group_size` invocations of a native kernel, one thread each
//! ([`super::lanes::spawn_lanes`]), with the launch's arguments and its deadline. A launch ends when every
//! invocation has returned; one that took longer than its limit is reported as [`DeviceError::Timeout`] (its
//! kernel is expected to give up at the deadline it was given).

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::run_error;
use super::kernel::CpuKernel;
use super::lanes::spawn_lanes;
use super::memory::CpuBuffer;
use crate::backend::hal::{Grid, Kernel, KernelArg, NativeArg};
use crate::backend::DeviceError;

/// Runs `grid` of `kernel` (a group size of 0 is one subgroup of `subgroup_size`).
pub(super) fn launch(
    subgroup_size: u32,
    kernel: &Kernel,
    args: &[KernelArg<'_>],
    grid: Grid,
    limit: Duration,
) -> Result<Duration, DeviceError> {
    let k = kernel
        .backend_object()
        .clone()
        .into_any()
        .downcast::<CpuKernel>()
        .map_err(|_| run_error("a kernel from another backend was passed to a CPU launch"))?;
    let mut bufs: Vec<Option<Arc<CpuBuffer>>> = Vec::with_capacity(args.len());
    for a in args {
        bufs.push(match a {
            KernelArg::Buffer(b) => Some(
                b.backend_object()
                    .clone()
                    .into_any()
                    .downcast::<CpuBuffer>()
                    .map_err(|_| {
                        run_error("a buffer from another backend was passed to a CPU launch")
                    })?,
            ),
            _ => None,
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
    let native: Vec<NativeArg<'_>> = args
        .iter()
        .zip(&bufs)
        .map(|(a, b)| match (a, b) {
            (KernelArg::Bytes(v), _) => NativeArg::Bytes(v),
            (KernelArg::RingArena(r), _) => {
                let (base, len) = r.arena_keepalive().arena();
                // SAFETY: the ring's arena is a page-aligned mapping of `len` bytes that lives as long as the
                // ring, which the caller's borrow keeps alive for the whole launch; only atomics touch it.
                NativeArg::Words(unsafe {
                    std::slice::from_raw_parts(base as *const AtomicU32, len / 4)
                })
            }
            (_, Some(b)) => NativeArg::Words(b.words()),
            (_, None) => NativeArg::Bytes(&[]),
        })
        .collect();
    let size = if grid.group_size == 0 {
        subgroup_size
    } else {
        grid.group_size
    };
    let n = grid.groups.saturating_mul(size);
    let start = Instant::now();
    let deadline = start + limit.max(Duration::from_millis(1));
    spawn_lanes(n, &k.name, |id| (k.f)(id, &native, deadline));
    let t = start.elapsed();
    if t > limit.max(Duration::from_millis(1)) {
        return Err(DeviceError::Timeout {
            backend: "cpu",
            limit,
        });
    }
    Ok(t)
}
