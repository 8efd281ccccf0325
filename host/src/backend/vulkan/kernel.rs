//! Caller-supplied kernels on Vulkan: a SPIR-V compute module (entry point `main`) with its buffer arguments
//! as storage buffers at set 0, bindings `0..buffers`, and its by-value arguments concatenated into up to 128
//! bytes of push constants. A launch binds each buffer argument (a [`DeviceBuffer`], or the arena of a
//! [`DeviceRing`], imported for the launch), records and submits one dispatch and waits at most its limit:
//! past it, [`DeviceError::Timeout`], and the dispatch's objects — with the kernel, the buffers and the arena
//! it uses — are parked until its fence signals, exactly as a built-in program's late dispatch is.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::run_error;
use super::memory::raw_buffer;
use super::raw;
use crate::backend::hal::{Grid, Kernel, KernelArg, KernelCode, KernelImpl, KernelLayout};
use crate::backend::DeviceError;
use crate::protocol::DeviceRing;

impl KernelImpl for raw::Kernel {
    fn name(&self) -> &str {
        &self.name
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// # Safety
/// As [`crate::backend::Device::load_kernel`].
pub(super) unsafe fn load(
    ctx: &Arc<raw::Context>,
    name: &str,
    code: KernelCode<'_>,
    layout: KernelLayout,
) -> Result<Kernel, DeviceError> {
    let KernelCode::SpirV(spirv) = code else {
        return Err(DeviceError::Unsupported {
            backend: "vulkan",
            what: format!("a {} kernel (Vulkan loads SPIR-V)", code.format()),
        });
    };
    if layout.value_bytes > raw::PUSH_CONSTANT_BYTES {
        return Err(run_error(format!(
            "kernel {name}: {} bytes of by-value arguments; at most {}",
            layout.value_bytes,
            raw::PUSH_CONSTANT_BYTES
        )));
    }
    // SAFETY: the caller's contract.
    let k = unsafe { raw::Kernel::new(ctx, name, spirv, layout.buffers) }.map_err(run_error)?;
    Ok(Kernel::new(Arc::new(k), layout))
}

/// Runs `grid` of `kernel` once with `args`, waiting at most `limit`.
pub(super) fn launch(
    ctx: &raw::Context,
    kernel: &Kernel,
    args: &[KernelArg<'_>],
    grid: Grid,
    limit: Duration,
) -> Result<Duration, DeviceError> {
    let k = kernel
        .backend_object()
        .clone()
        .into_any()
        .downcast::<raw::Kernel>()
        .map_err(|_| run_error("a kernel from another backend was passed to a Vulkan launch"))?;
    if grid.group_size != 0 && grid.group_size != ctx.subgroup_size {
        return Err(DeviceError::Unsupported {
            backend: "vulkan",
            what: format!(
                "a group size of {} (Vulkan kernels run one subgroup of {} per group)",
                grid.group_size, ctx.subgroup_size
            ),
        });
    }
    let mut push_bytes = [0u8; raw::PUSH_CONSTANT_BYTES as usize];
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
                let Some(dst) = push_bytes.get_mut(pushed..end) else {
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
    ctx.reclaim_orphans();
    let mut run = raw::Run::kernel(
        ctx,
        &k,
        ring.map(|r| r.arena_keepalive()),
        &binds,
        &push_bytes,
        grid.groups,
    )
    .map_err(run_error)?;
    let t = Instant::now();
    match run
        .dispatch(limit.max(Duration::from_millis(1)))
        .map_err(run_error)?
    {
        raw::Waited::Done => Ok(t.elapsed()),
        // Dropping `run` parks it (with the kernel, the buffers and the arena) until its fence signals.
        raw::Waited::TimedOut => Err(DeviceError::Timeout {
            backend: "vulkan",
            limit,
        }),
    }
}
