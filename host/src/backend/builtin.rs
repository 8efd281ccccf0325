//! How every device runs the built-in [`Program`]s: through the HAL's kernel API, the same way on every backend.
//!
//! A run picks the program's kernel in a format the device loads ([`Device::kernel_formats`]): the committed
//! SPIR-V ([`super::spirv`]) or the native kernel ([`super::native`]). It imports the ring's arena
//! ([`Device::import_host`], the import holding an [`ArenaKeepAlive`](crate::ring::ArenaKeepAlive) so the arena
//! outlives any launch that outlives its limit), allocates a host-visible run buffer ([`super::run_buffer`]:
//! parameters, text table, one [`LaneState`] per lane), places the ring's device-local block (PROTOCOL.md §2:
//! a device whose lanes are host threads runs on the ring's host copy itself; any other gets a
//! [`Placement::DeviceLocal`] buffer, filled from the host copy before the first dispatch and copied back after
//! the last), and launches ([`Device::launch`]) with the arguments arena, arena (the GLSL's 32- and 64-bit
//! views), run buffer, local block, local block (likewise), [`RingLayout`] by value, re-dispatching
//! ([`super::redispatch`]) until every lane reports [`LANE_FINISHED`]. A device that runs the CUDA/HIP device
//! library ([`Device::library`]) runs the programs on the library's kernels instead ([`super::library`]).

use std::sync::Arc;
use std::time::Duration;

use super::error::DeviceError;
use super::hal::{
    BetweenDispatches, Device, FormatCase, Grid, Kernel, KernelArg, KernelCode, KernelFormat,
    KernelLayout, Placement,
};
use super::program::check_fixed_buffer;
use super::redispatch::{run_resumable, Resumable};
use super::run_buffer::*;
use super::{native, spirv, LaneReport, Program, RunReport};
use crate::protocol::shared::PRINT_LOG;
use crate::protocol::DeviceRing;
use crate::ring::RingLayout;

/// Which kernels of the built-in programs a device runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flavor {
    /// The SPIR-V shaders: resumable, bounded by the loop budget per dispatch.
    SpirV,
    /// The native kernels: each lane runs its program to the end in one dispatch.
    Native,
}

/// The kernel of a run: a built-in program's (loaded from the device's cache) or one loaded already.
pub(super) enum PlanKernel {
    /// A built-in program: its name and SPIR-V.
    Builtin(&'static str, &'static [u8]),
    /// A kernel the caller loaded ([`super::RingKernel`]).
    Loaded(Kernel),
}

/// What one run needs: the program's kernel, parameters and text table.
pub(super) struct Plan<'a> {
    pub(super) kernel: PlanKernel,
    pub(super) params: RunParams,
    pub(super) texts: &'a [&'a str],
}

fn run_error(backend: &'static str, message: impl std::fmt::Display) -> DeviceError {
    DeviceError::Run {
        backend,
        message: message.to_string(),
    }
}

fn flavor<D: Device + ?Sized>(dev: &D, what: &str) -> Result<Flavor, DeviceError> {
    dev.kernel_formats()
        .iter()
        .find_map(|f| match f {
            KernelFormat::SpirV => Some(Flavor::SpirV),
            KernelFormat::Native => Some(Flavor::Native),
            _ => None,
        })
        .ok_or_else(|| DeviceError::Unsupported {
            backend: dev.info().backend,
            what: format!(
                "{what}: the built-in programs exist as SPIR-V and native kernels; this device loads {:?}",
                dev.kernel_formats()
            ),
        })
}

/// The built-in programs, on every device: implemented once, for every [`Device`], by loading the
/// program's kernel in a format the device loads ([`Device::kernel_formats`]; once, where the device has a
/// [`Device::kernel_cache`]) and launching it through [`Device::launch`] with the ring's arena and a run buffer,
/// re-dispatched until every lane has finished.
pub trait Programs {
    /// Runs `program` on `lanes` lanes (≤ the ring's `lanes`) and waits, at most `timeout`.
    fn run(
        &self,
        ring: &DeviceRing,
        lanes: u32,
        program: &Program,
        timeout: Duration,
    ) -> Result<RunReport, DeviceError> {
        self.run_with(ring, lanes, program, timeout, &mut |_, _| Ok(()))
    }

    /// [`Programs::run`] with a host callback between dispatches: `between(i, states)` runs after dispatch `i`
    /// (0-based) has completed — every lane's `LaneState` passed in — and before dispatch `i + 1` starts; it
    /// also runs after the last dispatch. An error from it ends the run with that error. A device that runs a
    /// program in one dispatch calls it once.
    ///
    /// This is how a ring without SQPOLL is driven from the host: lanes publish SQEs during a dispatch, and
    /// the callback submits them with one `io_uring_enter`
    /// ([`Ring::submit_and_wait`](crate::ring::Ring::submit_and_wait)); lanes that need what only a later enter
    /// can give yield the dispatch early (PROTOCOL.md §9) and resume in the next one.
    fn run_with(
        &self,
        ring: &DeviceRing,
        lanes: u32,
        program: &Program,
        timeout: Duration,
        between: &mut BetweenDispatches<'_>,
    ) -> Result<RunReport, DeviceError>;

    /// Formats each case with the device's §7 formatter (one lane per case) and returns the bytes, to compare
    /// with [`crate::protocol::LineBuf`]. Needs a ring with at least `cases.len()` lanes and
    /// `128 × cases.len()` bytes of fixed buffer, which it may overwrite.
    fn format_probe(
        &self,
        ring: &DeviceRing,
        cases: &[FormatCase],
    ) -> Result<Vec<Vec<u8>>, DeviceError>;
}

impl<D: Device + ?Sized> Programs for D {
    fn run_with(
        &self,
        ring: &DeviceRing,
        lanes: u32,
        program: &Program,
        timeout: Duration,
        between: &mut BetweenDispatches<'_>,
    ) -> Result<RunReport, DeviceError> {
        run(self, ring, lanes, program, timeout, between)
    }

    fn format_probe(
        &self,
        ring: &DeviceRing,
        cases: &[FormatCase],
    ) -> Result<Vec<Vec<u8>>, DeviceError> {
        format_probe(self, ring, cases)
    }
}

/// [`Programs::run_with`] on any device.
fn run<D: Device + ?Sized>(
    dev: &D,
    ring: &DeviceRing,
    lanes: u32,
    program: &Program,
    timeout: Duration,
    between: &mut BetweenDispatches<'_>,
) -> Result<RunReport, DeviceError> {
    let backend = dev.info().backend;
    let l = ring.layout();
    if lanes == 0 || lanes > l.lanes || lanes > 65535 {
        return Err(run_error(
            backend,
            format!("{lanes} lanes requested; the ring has 1..={}", l.lanes),
        ));
    }
    if let Some(lib) = dev.library() {
        return super::library::run(dev, lib, ring, lanes, program, timeout, between);
    }
    let flavor = flavor(dev, &format!("running {program:?}"))?;
    let plan = plan(dev, flavor, ring, lanes, program)?;
    run_plan(dev, flavor, ring, lanes, plan, timeout, between)
}

/// [`Programs::format_probe`] on any device.
fn format_probe<D: Device + ?Sized>(
    dev: &D,
    ring: &DeviceRing,
    cases: &[FormatCase],
) -> Result<Vec<Vec<u8>>, DeviceError> {
    let backend = dev.info().backend;
    let l = ring.layout();
    let n = cases.len() as u32;
    if n == 0 || n > l.lanes || (l.fixed_size as u64) < 128 * n as u64 {
        return Err(run_error(
            backend,
            format!(
                "format_probe needs 1..={} cases and 128 bytes of fixed buffer per case",
                l.lanes
            ),
        ));
    }
    if let Some(lib) = dev.library() {
        return super::library::format_probe(dev, lib, cases);
    }
    let flavor = flavor(dev, "format_probe")?;
    let v = ring.view();
    for (i, c) in cases.iter().enumerate() {
        let (kind, prec, val) = c.record();
        let words = [kind, prec, val as u32, (val >> 32) as u32];
        v.write_bytes(l.fixed + 128 * i as u32, bytemuck::bytes_of(&words));
    }
    let plan = Plan {
        kernel: PlanKernel::Builtin("format", spirv::FORMAT),
        params: RunParams {
            program: PROGRAM_FORMAT,
            lanes: n,
            count: n,
            iter_budget: dev.lane_iter_budget(),
            ..Default::default()
        },
        texts: &[],
    };
    run_plan(
        dev,
        flavor,
        ring,
        n,
        plan,
        Duration::from_secs(60),
        &mut |_, _| Ok(()),
    )?;
    Ok((0..n)
        .map(|i| {
            let mut len = [0u8; 4];
            v.read_bytes(l.fixed + 128 * i + 16, &mut len);
            let len = u32::from_le_bytes(len).min(108) as usize;
            let mut out = vec![0u8; len];
            v.read_bytes(l.fixed + 128 * i + 20, &mut out);
            out
        })
        .collect())
}

/// The program's kernel, from the device's cache where it has one.
fn kernel<D: Device + ?Sized>(
    dev: &D,
    flavor: Flavor,
    name: &'static str,
    spirv: &'static [u8],
) -> Result<Kernel, DeviceError> {
    let layout = KernelLayout {
        buffers: 5,
        value_bytes: std::mem::size_of::<RingLayout>() as u32,
    };
    let load = || {
        let code = match flavor {
            Flavor::SpirV => KernelCode::SpirV(spirv),
            Flavor::Native => KernelCode::Native(native::kernel()),
        };
        // SAFETY: the SPIR-V is built by device-shaders/build.sh (checked in CI) for exactly this argument
        // scheme (five storage buffers, the RingLayout as push constants) and the native kernel reads the same
        // arguments; both stay inside the arena (offsets from the layout) and the run buffer (lane ids below
        // the run parameters' `lanes`, which `run_plan` sizes the run buffer for).
        unsafe { dev.load_kernel(name, code, layout) }
    };
    match dev.kernel_cache() {
        Some(cache) => cache.get_or_load(name, load),
        None => load(),
    }
}

/// Runs `plan` on `lanes` lanes (checked by the caller: 1..=the ring's lanes, ≤ 65535).
pub(super) fn run_plan<D: Device + ?Sized>(
    dev: &D,
    flavor: Flavor,
    ring: &DeviceRing,
    lanes: u32,
    plan: Plan<'_>,
    timeout: Duration,
    between: &mut BetweenDispatches<'_>,
) -> Result<RunReport, DeviceError> {
    let info = dev.info();
    let backend = info.backend;
    let l = ring.layout();
    let Plan {
        kernel,
        params,
        texts,
    } = plan;
    let kernel = match kernel {
        PlanKernel::Builtin(name, spirv) => self::kernel(dev, flavor, name, spirv)?,
        PlanKernel::Loaded(k) => k,
    };
    let name = kernel.name().to_owned();
    let keep = ring.arena_keepalive();
    let (base, len) = keep.arena();
    let owner: Arc<dyn Send + Sync> = Arc::new(keep);
    // SAFETY: a ring's arena is one page-aligned, writable mapping of `len` bytes (a multiple of the page
    // size), kept mapped by `owner` (its keep-alive) for as long as the import and every launch using it exist.
    let arena = unsafe { dev.import_host(base, len, owner) }?;
    let local = LocalPlacement::new(dev, ring)?;
    // Native kernels run on the CPU reference device, whose lanes then block on the ring's completions between
    // polls instead of sleeping (`backend::cpu::attach_ring_wait`); GPU lanes are unaffected.
    let _idle = (flavor == Flavor::Native).then(|| super::cpu::attach_ring_wait(ring));
    let head = std::mem::size_of::<RunHeader>();
    let each = std::mem::size_of::<LaneState>();
    let run_buf = dev.alloc(Placement::HostVisible, head + lanes as usize * each)?;
    let header = RunHeader::with_texts(params, texts).map_err(|e| run_error(backend, e))?;
    let header_words: &[u32] = bytemuck::cast_slice(std::slice::from_ref(&header));
    for (i, w) in header_words.iter().enumerate() {
        run_buf.store_u32(i, *w);
    }
    for i in head / 4..(head + lanes as usize * each) / 4 {
        run_buf.store_u32(i, 0);
    }
    let dispatch_word = std::mem::offset_of!(RunParams, dispatch) / 4;
    let push: [u8; 128] = bytemuck::cast(l);
    // Native kernels of the aggregated programs run one invocation (a thread) per subgroup, its lanes in
    // lockstep ([`crate::protocol::Subgroup`]); they get the subgroup size as one more argument.
    let sg = info.subgroup_size.clamp(1, 32);
    let per_subgroup = flavor == Flavor::Native && native::aggregated(params.program, params.arg0);
    let sg_bytes = if per_subgroup { sg } else { 0 }.to_le_bytes();
    let mut args = vec![
        KernelArg::Buffer(&arena),
        KernelArg::Buffer(&arena),
        KernelArg::Buffer(&run_buf),
        KernelArg::Buffer(&local.buffer),
        KernelArg::Buffer(&local.buffer),
        KernelArg::Bytes(&push),
    ];
    if flavor == Flavor::Native {
        args.push(KernelArg::Bytes(&sg_bytes));
    }
    let grid = match flavor {
        Flavor::SpirV => Grid::groups(lanes.div_ceil(info.subgroup_size.max(1))),
        // One invocation per lane, or per subgroup: the native lanes are threads.
        Flavor::Native => Grid {
            groups: 1,
            group_size: if per_subgroup {
                lanes.div_ceil(sg)
            } else {
                lanes
            },
        },
    };
    let mut dispatch = |i: u32, limit: Duration| -> Result<Vec<LaneState>, DeviceError> {
        run_buf.store_u32(dispatch_word, i);
        // Over its limit: DeviceError::Timeout; the launch keeps the arena alive until it ends.
        dev.launch(&kernel, &args, grid, limit)?;
        let words: Vec<u32> = (head / 4..(head + lanes as usize * each) / 4)
            .map(|w| run_buf.load_u32(w).unwrap_or(0))
            .collect();
        let states: Vec<LaneState> = bytemuck::cast_slice::<u32, u8>(&words)
            .chunks_exact(each)
            .map(bytemuck::pod_read_unaligned)
            .collect();
        if log::log_enabled!(log::Level::Trace) {
            let fin = states
                .iter()
                .filter(|s| s.flags & LANE_FINISHED != 0)
                .count();
            let done: u64 = states.iter().map(|s| s.done as u64).sum();
            log::trace!(
                "{backend}: {name} dispatch {i}: {fin} lanes finished, {done} ops done; lane 0 {:?}; mirrors {:?}",
                states.first(),
                ring.mirrors()
            );
        }
        Ok(states)
    };
    local.copy_in(ring);
    let r = run_resumable(Resumable {
        backend,
        timeout,
        per_dispatch: dev.dispatch_limit(),
        dispatch: &mut dispatch,
        between,
        finished: |s: &LaneState| s.flags & LANE_FINISHED != 0,
        progress: |s: &LaneState| s.seq as u64 + s.done as u64 + s.phase as u64 + s.flags as u64,
    });
    local.copy_out(ring);
    if r.is_err() {
        log::warn!(
            "{backend}: run of {name} ended early; control: {:?}",
            ring.view().local_snapshot()
        );
    }
    let r = r?;
    Ok(RunReport {
        lanes: r
            .states
            .iter()
            .map(|s| LaneReport {
                done: s.done as u64,
                failed: s.failed as u64,
                checksum: s.checksum,
                bytes: s.bytes,
            })
            .collect(),
        elapsed: r.elapsed,
        dispatches: r.dispatches,
        states: r.states,
    })
}

/// Where a run's device-local block lives (PROTOCOL.md §2).
struct LocalPlacement {
    buffer: super::hal::DeviceBuffer,
    /// Whether `buffer` is a copy (filled before the run, copied back after it) rather than the host copy.
    copied: bool,
    words: usize,
}

impl LocalPlacement {
    fn new<D: Device + ?Sized>(dev: &D, ring: &DeviceRing) -> Result<LocalPlacement, DeviceError> {
        let words = (ring.layout().local_size() as usize).div_ceil(4);
        if !dev.info().caps.lanes_are_host_threads {
            let buffer = dev.alloc(Placement::DeviceLocal, words * 4)?;
            if buffer.host_accessible() {
                return Ok(LocalPlacement {
                    buffer,
                    copied: true,
                    words,
                });
            }
            // A device-local buffer the host cannot map needs a transfer command to fill; until the backend
            // offers one, the device works on the imported host copy (host memory, as on the CPU device).
            log::debug!(
                "{}: device-local block not host-mappable; importing the host copy instead",
                dev.info().backend
            );
        }
        let keep = ring.arena_keepalive();
        let block = keep.local_block();
        let (ptr, len) = (block.as_ptr(), block.len());
        let owner: Arc<dyn Send + Sync> = Arc::new(keep);
        // SAFETY: the ring's device-local host copy is one page-aligned, writable mapping of `len` bytes, kept
        // mapped by `owner` (the ring's keep-alive) for as long as the import and every launch using it exist;
        // lanes touch it only atomically.
        let buffer = unsafe { dev.import_host(ptr, len, owner) }?;
        Ok(LocalPlacement {
            buffer,
            copied: false,
            words,
        })
    }
    /// Before the first dispatch: the host copy into the device's buffer.
    fn copy_in(&self, ring: &DeviceRing) {
        if self.copied {
            let v = ring.view();
            for i in 0..self.words {
                let w = v
                    .local32(i as u32 * 4)
                    .load(std::sync::atomic::Ordering::Acquire);
                self.buffer.store_u32(i, w);
            }
        }
    }

    /// After the last dispatch (or a failed one): the device's buffer back into the host copy.
    fn copy_out(&self, ring: &DeviceRing) {
        if self.copied {
            let v = ring.view();
            for i in 0..self.words {
                if let Some(w) = self.buffer.load_u32(i) {
                    v.local32(i as u32 * 4)
                        .store(w, std::sync::atomic::Ordering::Release);
                }
            }
        }
    }
}

/// Which kernel, parameters and text a program needs; refuses what the kernels cannot do.
fn plan<D: Device + ?Sized>(
    dev: &D,
    flavor: Flavor,
    ring: &DeviceRing,
    lanes: u32,
    program: &Program,
) -> Result<Plan<'static>, DeviceError> {
    let backend = dev.info().backend;
    let l = &ring.layout();
    let mut p = RunParams {
        lanes,
        iter_budget: dev.lane_iter_budget(),
        ..Default::default()
    };
    let r = match *program {
        Program::Print { lines } => {
            p.program = PROGRAM_PRINT;
            p.count = lines;
            // The print target's mode (PROTOCOL.md §7), set by `set_print_target` before the run: group commit
            // through the print log, or one write per line (a separate shader, so each stays small to compile).
            // The native kernels follow the flags themselves.
            if ring.mirrors().print_flags & PRINT_LOG != 0 {
                ("print_log", spirv::PRINT_LOG, &PRINT_TEXT[..])
            } else {
                ("print", spirv::PRINT, &PRINT_TEXT[..])
            }
        }
        Program::Nop {
            ops,
            fire_and_forget,
        } => {
            p.program = PROGRAM_NOP;
            p.count = ops;
            p.arg0 = if fire_and_forget { 0 } else { 1 };
            ("nop", spirv::NOP, &[][..])
        }
        Program::Write { file, ops, len } => {
            p.program = PROGRAM_NOP;
            p.count = ops;
            p.arg0 = 2;
            p.arg1 = file;
            p.arg2 = len.min(l.line_bytes);
            ("nop", spirv::NOP, &[][..])
        }
        Program::Read {
            file,
            chunk,
            total,
            depth,
        } => {
            // A SPIR-V chunk's checksum (chunk / 4 loop iterations) runs inside one dispatch's loop budget.
            let max_chunk = match flavor {
                Flavor::SpirV => (4 * p.iter_budget).min(16384) & !3,
                Flavor::Native => !3,
            };
            if chunk == 0 || chunk % 4 != 0 || chunk > max_chunk {
                return Err(run_error(
                    backend,
                    format!(
                        "Read chunk must be a multiple of 4 in 4..={max_chunk} on this device (a chunk's \
                         checksum runs within one dispatch's loop budget), got {chunk}"
                    ),
                ));
            }
            if depth == 0 || depth > 32 || depth > l.slots_per_lane {
                return Err(run_error(
                    backend,
                    format!(
                        "Read depth must be in 1..=32 and at most the ring's slots_per_lane ({}), got {depth}",
                        l.slots_per_lane
                    ),
                ));
            }
            p.program = PROGRAM_READ;
            p.arg0 = file;
            p.arg1 = chunk;
            p.arg2 = depth;
            p.total = total;
            ("read", spirv::READ, &[][..])
        }
        Program::LaneStress { ops } => {
            p.program = PROGRAM_LANE_STRESS;
            p.count = ops;
            ("lane_stress", spirv::LANE_STRESS, &[][..])
        }
        Program::EditBuffer { steps } => {
            p.program = PROGRAM_EDIT_BUFFER;
            p.count = steps;
            ("edit_buffer", spirv::EDIT_BUFFER, &[][..])
        }
        Program::Exact { count } => {
            p.program = PROGRAM_EXACT;
            p.count = count;
            ("exact", spirv::EXACT, &[][..])
        }
        Program::Hostile { case } => {
            p.program = PROGRAM_HOSTILE;
            p.count = 1;
            p.arg0 = case.code();
            ("hostile", spirv::HOSTILE, &[][..])
        }
        Program::Layout => {
            p.program = PROGRAM_LAYOUT;
            p.count = 1;
            ("layout", spirv::LAYOUT, &[][..])
        }
    };
    check_fixed_buffer(backend, l, lanes, program)?;
    Ok(Plan {
        kernel: PlanKernel::Builtin(r.0, r.1),
        params: p,
        texts: r.2,
    })
}
