//! The built-in programs on the CUDA/HIP device library (`kernels/`): a device whose backend loads the
//! library's committed binaries (PTX or cubin on CUDA, the code object for its gfx target on HIP) returns a
//! [`LibraryDevice`] from [`Device::library`], and [`Programs`](super::Programs) runs the programs the
//! library implements on its kernels instead of the SPIR-V or native ones:
//!
//! - [`Program::Nop`] on `gu_nop` (waited on slot 0, or fire-and-forget) and [`Program::Print`] on `gu_print`
//!   (§7 line mode), each lane one thread, the whole program in one launch;
//! - [`Programs::format_probe`](super::Programs::format_probe) on `gu_format_probe`.
//!
//! Every other program is [`DeviceError::Unsupported`] until the library implements it (kernels/README.md).
//!
//! Arguments, as the kernels take them: the ring's arena (imported host memory), the device-local block,
//! the [`RingLayout`](crate::ring::RingLayout) by value, the program's values, and per-lane `status` (and `ready`) words in a
//! host-visible buffer. Where the device-local block lives is decided by the device's capabilities
//! (PROTOCOL.md §2): with coherent host-native atomics ([`Capabilities::host_native_atomics`](super::Capabilities))
//! the kernels run on the ring's host copy itself; otherwise it is a [`Placement::DeviceLocal`] buffer, filled
//! from the host copy before the launch and copied back after it ([`LibraryDevice::write_buffer`],
//! [`LibraryDevice::read_buffer`]), so no atomic read-modify-write ever crosses the bus.
//!
//! `gu_nop` reports how many NOPs each lane completed; `gu_print` only each lane's final status: a lane that
//! ends READY printed all its lines, one that does not is counted as failing all of them (its status is
//! logged), which overstates the failures of a lane that stopped half-way.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::error::DeviceError;
use super::hal::{
    BetweenDispatches, Device, DeviceBuffer, FormatCase, Grid, KernelArg, LibraryDevice,
};
use super::run_buffer::{LaneState, LANE_FINISHED};
use super::{LaneReport, Placement, Program, RunReport};
use crate::abi::STATUS_READY;
use crate::protocol::DeviceRing;

/// The parameter list of the device library's kernel `name` (kernels/src/gpu_uring_kernels.cu), for
/// backends loading it.
#[cfg(any(feature = "cuda", feature = "hip"))]
pub(crate) fn kernel_layout(
    backend: &'static str,
    name: &str,
) -> Result<super::KernelLayout, DeviceError> {
    let (buffers, value_bytes) = match name {
        // (arena, local, RingLayout, mode, count, budget, status, ready)
        "gu_nop" => (4, 128 + 12),
        // (arena, local, RingLayout, lines, budget, status)
        "gu_print" => (3, 128 + 8),
        // (records, count)
        "gu_format_probe" => (1, 4),
        _ => {
            return Err(DeviceError::Unsupported {
                backend,
                what: format!("device library kernel {name}"),
            })
        }
    };
    Ok(super::KernelLayout {
        buffers,
        value_bytes,
    })
}

/// A status word no kernel writes: the lane never ran.
const NOT_RUN: u32 = u32::MAX;

/// `gu_nop`'s completion modes (kernels/src/programs.h).
const NOP_WAITED: u32 = 0;
const NOP_FIRE_AND_FORGET: u32 = 1;

/// [`Programs::run_with`](super::Programs::run_with) on a library device (lanes already checked against the
/// ring).
pub(super) fn run<D: Device + ?Sized>(
    dev: &D,
    lib: &dyn LibraryDevice,
    ring: &DeviceRing,
    lanes: u32,
    program: &Program,
    timeout: Duration,
    between: &mut BetweenDispatches<'_>,
) -> Result<RunReport, DeviceError> {
    let backend = dev.info().backend;
    let budget = wait_budget(timeout);
    let (name, values, ops, with_ready) = match *program {
        Program::Print { lines } => ("gu_print", vec![lines, budget], lines, false),
        Program::Nop {
            ops,
            fire_and_forget,
        } => {
            let mode = if fire_and_forget {
                NOP_FIRE_AND_FORGET
            } else {
                NOP_WAITED
            };
            ("gu_nop", vec![mode, ops, budget], ops, true)
        }
        ref other => {
            return Err(DeviceError::Unsupported {
                backend,
                what: format!(
                    "{other:?} on the CUDA/HIP device library (its kernels implement Nop and Print so far)"
                ),
            })
        }
    };
    let kernel = lib.library_kernel(name)?;
    let keep = ring.arena_keepalive();
    let (base, len) = keep.arena();
    let owner: Arc<dyn Send + Sync> = Arc::new(keep);
    // SAFETY: a ring's arena is one page-aligned, writable mapping of `len` bytes (a multiple of the page
    // size), kept mapped by `owner` (its keep-alive) for as long as the import and every launch using it exist.
    let arena = unsafe { dev.import_host(base, len, owner) }?;
    let local = LocalBlock::new(dev, ring)?;
    let status = dev.alloc(Placement::HostVisible, lanes as usize * 4)?;
    let ready = match with_ready {
        true => Some(dev.alloc(Placement::HostVisible, lanes as usize * 4)?),
        false => None,
    };
    for i in 0..lanes as usize {
        status.store_u32(i, NOT_RUN);
        if let Some(r) = &ready {
            r.store_u32(i, 0);
        }
    }
    let l = ring.layout();
    let layout = bytemuck::bytes_of(&l);
    let value_bytes: Vec<[u8; 4]> = values.iter().map(|v| v.to_le_bytes()).collect();
    let mut args = vec![
        KernelArg::Buffer(&arena),
        KernelArg::Buffer(&local.buffer),
        KernelArg::Bytes(layout),
    ];
    args.extend(value_bytes.iter().map(|v| KernelArg::Bytes(v)));
    args.push(KernelArg::Buffer(&status));
    args.extend(ready.as_ref().map(KernelArg::Buffer));
    local.copy_in(lib, ring)?;
    let launched = dev.launch(&kernel, &args, exact_grid(lanes), timeout);
    // Copied back however the launch ended: the host's quiesce and counters read the host copy.
    let copied = local.copy_out(lib, ring);
    let elapsed = launched?;
    copied?;
    let mut reports = Vec::with_capacity(lanes as usize);
    let mut states = Vec::with_capacity(lanes as usize);
    for i in 0..lanes as usize {
        let st = status.load_u32(i).unwrap_or(NOT_RUN);
        let ok = match &ready {
            Some(r) => r.load_u32(i).unwrap_or(0).min(ops),
            None if st == STATUS_READY => ops,
            None => 0,
        };
        if st != STATUS_READY {
            log::warn!("{backend}: {name} lane {i} ended with status {st:#x}");
        }
        let rep = LaneReport {
            done: ok as u64,
            failed: (ops - ok) as u64,
            checksum: 0,
            bytes: 0,
        };
        states.push(LaneState {
            seq: ok,
            done: ok,
            failed: ops - ok,
            flags: LANE_FINISHED,
            dispatches: 1,
            ..LaneState::default()
        });
        reports.push(rep);
    }
    between(0, &states)?;
    Ok(RunReport {
        lanes: reports,
        elapsed,
        dispatches: 1,
        states,
    })
}

/// [`Programs::format_probe`](super::Programs::format_probe) on a library device: one thread per case over
/// 128-byte records (kind, precision, value; the formatted length at `+ 16`, its bytes at `+ 20`).
pub(super) fn format_probe<D: Device + ?Sized>(
    dev: &D,
    lib: &dyn LibraryDevice,
    cases: &[FormatCase],
) -> Result<Vec<Vec<u8>>, DeviceError> {
    const RECORD: usize = 128;
    let kernel = lib.library_kernel("gu_format_probe")?;
    let n = cases.len();
    let records = dev.alloc(Placement::HostVisible, n * RECORD)?;
    for (i, c) in cases.iter().enumerate() {
        let (kind, prec, val) = c.record();
        let words = [kind, prec, val as u32, (val >> 32) as u32, 0];
        for (k, w) in words.iter().enumerate() {
            records.store_u32(i * RECORD / 4 + k, *w);
        }
    }
    let count = (n as u32).to_le_bytes();
    dev.launch(
        &kernel,
        &[KernelArg::Buffer(&records), KernelArg::Bytes(&count)],
        exact_grid(n as u32),
        Duration::from_secs(60),
    )?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let len = records.load_u32(i * RECORD / 4 + 4).unwrap_or(0).min(108) as usize;
        let mut bytes = vec![0u8; len.div_ceil(4) * 4];
        lib.read_buffer(&records, i * RECORD + 20, &mut bytes)?;
        bytes.truncate(len);
        out.push(bytes);
    }
    Ok(out)
}

/// Each device wait's budget in polls: a poll backs off to at most 8 µs (kernels/include/gpu_uring/backoff.h),
/// and a lane makes a few waits in a row, so a quarter of the run's time in 8 µs polls, at least 1024.
fn wait_budget(timeout: Duration) -> u32 {
    let polls = timeout.as_micros() / 8 / 4;
    polls.clamp(1024, u32::MAX as u128) as u32
}

/// Exactly `lanes` threads: blocks of the largest size up to 256 that divides `lanes` (the kernels run
/// every thread below the ring's lane count, so a partial block would run lanes that were not asked for).
fn exact_grid(lanes: u32) -> Grid {
    let block = (1..=lanes.min(256))
        .rev()
        .find(|b| lanes % b == 0)
        .unwrap_or(1);
    Grid {
        groups: lanes / block,
        group_size: block,
    }
}

/// Where the run's device-local block lives (the module docs).
struct LocalBlock {
    buffer: DeviceBuffer,
    /// Whether `buffer` is a device copy (filled before the launch, copied back after it).
    copied: bool,
    words: usize,
}

impl LocalBlock {
    fn new<D: Device + ?Sized>(dev: &D, ring: &DeviceRing) -> Result<LocalBlock, DeviceError> {
        let words = (ring.layout().local_size() as usize).div_ceil(4);
        if !dev.info().caps.host_native_atomics {
            return Ok(LocalBlock {
                buffer: dev.alloc(Placement::DeviceLocal, words * 4)?,
                copied: true,
                words,
            });
        }
        let keep = ring.arena_keepalive();
        let block = keep.local_block();
        let (ptr, len) = (block.as_ptr(), block.len());
        let owner: Arc<dyn Send + Sync> = Arc::new(keep);
        // SAFETY: the ring's device-local host copy is one page-aligned, writable mapping of `len` bytes, kept
        // mapped by `owner` (the ring's keep-alive) for as long as the import and every launch using it exist;
        // the device's atomics on it are coherent with the host's (host-native atomics).
        let buffer = unsafe { dev.import_host(ptr, len, owner) }?;
        Ok(LocalBlock {
            buffer,
            copied: false,
            words,
        })
    }

    /// Before the launch: the host copy into the device's buffer.
    fn copy_in(&self, lib: &dyn LibraryDevice, ring: &DeviceRing) -> Result<(), DeviceError> {
        if !self.copied {
            return Ok(());
        }
        let v = ring.view();
        let bytes: Vec<u8> = (0..self.words)
            // Acquire: the host copy is quiet (no run in progress); pairs with its last writer's release.
            .flat_map(|i| {
                v.local32(i as u32 * 4)
                    .load(Ordering::Acquire)
                    .to_le_bytes()
            })
            .collect();
        lib.write_buffer(&self.buffer, 0, &bytes)
    }

    /// After the launch (however it ended): the device's buffer back into the host copy.
    fn copy_out(&self, lib: &dyn LibraryDevice, ring: &DeviceRing) -> Result<(), DeviceError> {
        if !self.copied {
            return Ok(());
        }
        let mut bytes = vec![0u8; self.words * 4];
        lib.read_buffer(&self.buffer, 0, &mut bytes)?;
        let v = ring.view();
        for (i, w) in bytes.chunks_exact(4).enumerate() {
            let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            // Release: whoever reads the host copy next (quiesce, counters) sees the device's final words.
            v.local32(i as u32 * 4).store(w, Ordering::Release);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_run_exactly_the_lanes_asked_for() {
        for lanes in [1u32, 7, 8, 32, 100, 256, 257, 1000, 4096, 65535] {
            let g = exact_grid(lanes);
            assert_eq!(g.groups * g.group_size, lanes, "{lanes}");
            assert!(g.group_size <= 256);
        }
        assert_eq!(exact_grid(64).groups, 1);
    }

    #[test]
    fn wait_budgets_scale_with_the_timeout() {
        assert_eq!(wait_budget(Duration::ZERO), 1024);
        assert_eq!(wait_budget(Duration::from_secs(20)), 625_000);
        assert_eq!(wait_budget(Duration::MAX), u32::MAX);
    }
}
