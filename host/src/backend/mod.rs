//! Devices that run the device protocol. Every backend looks the same from outside: it is opened from a
//! [`DeviceSelector`], says what it is ([`DeviceInfo`]), and runs the built-in [`Program`]s against a
//! [`DeviceRing`] so one test suite and one set of experiments cover every backend. The traits a backend
//! implements are in [`hal`]; each backend is a folder with the same file names.
//!
//! - [`cpu`]: the CPU reference device — threads as lanes, grouped into subgroups. Runs everywhere; the oracle.
//! - `vulkan` (cargo feature `vulkan`, on by default): compute shaders on any Vulkan 1.2 device with
//!   `VK_EXT_external_memory_host` (lavapipe in CI).
//! - `cuda` (cargo feature `cuda`): a skeleton that shows the HAL fits kernel-parameter launches; it opens no
//!   device yet.
//!
//! Backend-neutral pieces: [`redispatch`] (re-dispatch of resumable programs), [`pump`] (io_queue programs on
//! any device that loads their kernels), [`run_buffer`] (the run-buffer structures device programs share with
//! the host), [`spirv`] (the committed SPIR-V of the built-in programs).

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod hal;
#[path = "vulkan/pump.rs"]
pub mod pump;
pub mod redispatch;
#[path = "vulkan/shared.rs"]
pub mod run_buffer;
pub mod spirv;
#[cfg(feature = "vulkan")]
pub mod vulkan;

pub use hal::{
    AdapterInfo, Backend, BetweenDispatches, Capabilities, Device, DeviceBuffer, DeviceConfig,
    DeviceInfo, DeviceType, FormatCase, Grid, Kernel, KernelArg, KernelCode, KernelLayout,
    NativeArg, NativeKernel, Placement,
};

use std::fmt;
use std::time::Duration;

use crate::protocol::DeviceRing;
use run_buffer::LaneState;

/// Which device to use (`--device auto|cpu|vulkan[:NAME]|hip|cuda`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSelector {
    /// The best device present, falling back to the CPU reference device.
    Auto,
    /// The CPU reference device.
    Cpu,
    /// A Vulkan device, optionally chosen by index or name substring.
    Vulkan(Option<String>),
    /// A HIP (AMD) device.
    Hip,
    /// A CUDA (NVIDIA) device.
    Cuda,
}

impl std::str::FromStr for DeviceSelector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceSelector::Auto),
            "cpu" => Ok(DeviceSelector::Cpu),
            "vulkan" => Ok(DeviceSelector::Vulkan(None)),
            "hip" => Ok(DeviceSelector::Hip),
            "cuda" => Ok(DeviceSelector::Cuda),
            _ => match s.strip_prefix("vulkan:") {
                Some(name) if !name.is_empty() => Ok(DeviceSelector::Vulkan(Some(name.to_owned()))),
                _ => Err(format!(
                    "unknown device {s:?}: expected auto, cpu, vulkan, vulkan:NAME, hip or cuda"
                )),
            },
        }
    }
}

impl fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSelector::Auto => f.write_str("auto"),
            DeviceSelector::Cpu => f.write_str("cpu"),
            DeviceSelector::Vulkan(None) => f.write_str("vulkan"),
            DeviceSelector::Vulkan(Some(n)) => write!(f, "vulkan:{n}"),
            DeviceSelector::Hip => f.write_str("hip"),
            DeviceSelector::Cuda => f.write_str("cuda"),
        }
    }
}

/// A backend could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The backend is not usable here.
    #[error("{backend} unavailable: {reason}")]
    Unavailable {
        /// Backend name.
        backend: &'static str,
        /// Why.
        reason: String,
    },
    /// A program failed on the device.
    #[error("{backend}: {message}")]
    Run {
        /// Backend name.
        backend: &'static str,
        /// What happened.
        message: String,
    },
    /// The device cannot do what was asked (a kernel format it does not load, a placement it lacks, an
    /// operation its backend does not implement yet).
    #[error("{backend}: {what} is not supported")]
    Unsupported {
        /// Backend name.
        backend: &'static str,
        /// What was asked.
        what: String,
    },
    /// A dispatch exceeded its time limit.
    #[error("{backend}: dispatch exceeded {limit:?}")]
    Timeout {
        /// Backend name.
        backend: &'static str,
        /// The limit.
        limit: Duration,
    },
}

/// A built-in device program. Each backend implements every program the same way (the GLSL and HIP
/// versions live in `device-shaders/` and `kernels/`), so results are comparable across devices.
#[derive(Debug, Clone, PartialEq)]
pub enum Program {
    /// Each lane prints `lines` lines: [`expected_line`] formats them.
    Print {
        /// Lines per lane.
        lines: u32,
    },
    /// Each lane submits `ops` NOPs (fire-and-forget or waited).
    Nop {
        /// NOPs per lane.
        ops: u32,
        /// Fire-and-forget (true) or waited (false).
        fire_and_forget: bool,
    },
    /// Each lane submits `ops` fire-and-forget writes of the first `len` bytes of its first staging line to
    /// registered fixed file `file` (e.g. /dev/null in `RingConfig::fixed_files`) at the file position. A fixed
    /// file, not a raw fd: a confined ring refuses raw fds.
    Write {
        /// Fixed-file index.
        file: u32,
        /// Writes per lane.
        ops: u32,
        /// Bytes per write (≤ line_bytes).
        len: u32,
    },
    /// Lanes read `[0, total)` of fixed file `file` in `chunk`-byte pieces (lane `l` takes chunks
    /// `l, l + lanes, …`) with READ_FIXED into the fixed region, and checksum them ([`checksum`]).
    Read {
        /// Fixed file index.
        file: u32,
        /// Bytes per read (≤ fixed_size / lanes).
        chunk: u32,
        /// Total bytes.
        total: u64,
    },
    /// Many lanes on a tiny ring: each lane submits `ops` NOPs, alternating a waited NOP (even `seq`, its
    /// last completion slot) and a fire-and-forget one (odd `seq`). `done` counts completed ones.
    LaneStress {
        /// NOPs per lane.
        ops: u32,
    },
    /// Device code writing host-visible memory that the host reads while the program runs: lane `l` owns the
    /// two words at `fixed + 8 l` (`value`, `ack`); for step `k` in `0..steps` it stores `value = k + 1`
    /// (release) and waits until the host stores `ack >= k + 1` (acquire). Needs `fixed_buffer_bytes ≥ 8 lanes`
    /// and a host thread acknowledging ([`edit_buffer_host`]).
    EditBuffer {
        /// Handshakes per lane.
        steps: u32,
    },
    /// Layout agreement: lane `l` writes, at `fixed + 256 l`, the SQE that [`layout_sqe_expected`] describes
    /// (64 bytes, built by the device's own SQE code), then the `RingLayout` it was given (128 bytes), then
    /// (Vulkan) its run parameters (64 bytes). Needs `fixed_buffer_bytes ≥ 256 lanes`.
    Layout,
    /// Lane 0 publishes `count` SQE images the host wrote at `fixed + 64 i` exactly as given (no flags added,
    /// as [`crate::protocol::Lane::commit_exact`]), except `user_data`, which names its completion slot 0; it
    /// waits for each and stores the CQE's `res` (i32) at `fixed + 64 count + 4 i`. Other lanes do nothing.
    /// What device code that ignores the library could submit: the confined-ring tests use it. Needs
    /// `fixed_buffer_bytes ≥ 68 count`.
    Exact {
        /// SQE images.
        count: u32,
    },
    /// Lane 0 does what device code that corrupts its own ring could do ([`HostileCase`]), through the same
    /// library calls on every device, and reports in its [`LaneReport`]: `done` = 1, `checksum` = the status
    /// of the case's last library call (`protocol::shared::STATUS_*`), `bytes` = the CQE `res` the case
    /// waited for (as `u32`), or 0. Other lanes do nothing. The hostile-input table drives it on every
    /// backend; both must report the same status and the same counter deltas. Run it on a fresh, confined
    /// ring with at least one fixed file; the ring may be left corrupted (drop it afterwards).
    Hostile {
        /// What lane 0 does.
        case: HostileCase,
    },
}

impl Program {
    /// A built-in program by name with one size argument, for experiments that pick programs from the command
    /// line: `print` (lines per lane), `nop` (fire-and-forget NOPs per lane), `nop_wait` (waited NOPs),
    /// `lane_stress` (NOPs per lane), `edit_buffer` (steps), `layout` (ignored). `write`, `read`, `exact` and
    /// `hostile` need more arguments: build the [`Program`] itself.
    pub fn named(name: &str, count: u32) -> Result<Program, DeviceError> {
        Ok(match name {
            "print" => Program::Print { lines: count },
            "nop" => Program::Nop {
                ops: count,
                fire_and_forget: true,
            },
            "nop_wait" => Program::Nop {
                ops: count,
                fire_and_forget: false,
            },
            "lane_stress" => Program::LaneStress { ops: count },
            "edit_buffer" => Program::EditBuffer { steps: count },
            "layout" => Program::Layout,
            other => {
                return Err(DeviceError::Run {
                    backend: "any",
                    message: format!(
                        "no built-in program {other:?} with one argument (print, nop, nop_wait, \
                         lane_stress, edit_buffer, layout)"
                    ),
                })
            }
        })
    }
}

/// What [`Program::Hostile`]'s lane 0 does. Every case makes a fixed sequence of library calls, so the
/// status and counters it leaves are the same on every device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostileCase {
    /// Reserves a ticket, moves `sq_pub`'s base 1000 back (bitmap cleared), commits a fire-and-forget NOP:
    /// the publish finds its ticket outside the window (`STATUS_PROTOCOL_VIOLATION`, one violation).
    SqWindowAtPublish = 0,
    /// Moves `sq_pub`'s base 1000 back, then tries one reservation: refused (`STATUS_WOULD_BLOCK`, one
    /// violation).
    SqWindowAtReserve = 1,
    /// Submits a waited NOP on slot 0, waits (without reaping) until its CQE is posted, moves `cq_pub`'s base
    /// 1000 back, reaps once: nothing reaped (`STATUS_WOULD_BLOCK`, one violation).
    CqWindow = 2,
    /// Reserves and commits a NOP on completion slot `slots_per_lane` (one past the lane's last):
    /// `STATUS_BAD_SLOT`; the reservation is published as a NOP.
    SlotOutOfRange = 3,
    /// Builds a write of the arena bytes `[staging, staging + len)` where `len` makes the end wrap past
    /// 2³² to inside the staging region, to fixed file 0, waited on slot 0. The range check is 64-bit, so
    /// this is a plain WRITE (a confined ring refuses it: `res` = -EACCES), never a WRITE_FIXED.
    WriteRangeWrapsU32 = 4,
    /// Sets `cq_credits` to 0xdead_beef (more than the pool), tries one reservation (`STATUS_WOULD_BLOCK`,
    /// one violation).
    CqCreditsWild = 5,
    /// Sets `cq_credits` to 0, tries one reservation (`STATUS_WOULD_BLOCK`, no violation: an empty pool is
    /// a state the protocol has).
    CqCreditsZero = 6,
    /// Moves `cq_claim` 0x10000 ahead, reaps once (`STATUS_WOULD_BLOCK`, one violation).
    CqClaimWild = 7,
    /// Moves `sq_reserve` 0x10000 ahead, tries one reservation (`STATUS_WOULD_BLOCK`, one violation).
    SqReserveWild = 8,
    /// A waited NOP on slot 0 (generation G), then a NOP published with `commit_exact` carrying slot 0's tag
    /// and the stale generation G, then a waited NOP on slot 0 (generation G + 1): the forged CQE is counted
    /// foreign, the waited NOP reports 0 (`STATUS_READY`, `res` 0, one foreign CQE).
    StaleCompletion = 9,
    /// Commits a NOP with `IOSQE_IO_LINK` as `Completion::SkipSuccess`: `STATUS_BAD_FLAGS`.
    LinkedSkipSuccess = 10,
    /// Commits a NOP carrying `IOSQE_CQE_SKIP_SUCCESS` as fire-and-forget: `STATUS_BAD_FLAGS`.
    CallerSkipSuccess = 11,
}

impl HostileCase {
    /// Every case, in table order.
    pub const ALL: [HostileCase; 12] = [
        HostileCase::SqWindowAtPublish,
        HostileCase::SqWindowAtReserve,
        HostileCase::CqWindow,
        HostileCase::SlotOutOfRange,
        HostileCase::WriteRangeWrapsU32,
        HostileCase::CqCreditsWild,
        HostileCase::CqCreditsZero,
        HostileCase::CqClaimWild,
        HostileCase::SqReserveWild,
        HostileCase::StaleCompletion,
        HostileCase::LinkedSkipSuccess,
        HostileCase::CallerSkipSuccess,
    ];

    /// The case's number (`RunParams::arg0` of the `hostile` shader).
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// The SQE lane `lane` writes in [`Program::Layout`], built with the `io-uring` crate: a WRITE_FIXED of
/// `17 + lane` bytes from the lane's first staging line to fixed file `lane` at offset `0x1000 + lane`,
/// tagged fire-and-forget for staging line 0.
pub fn layout_sqe_expected(l: &crate::ring::RingLayout, lane: u32) -> crate::ring::Sqe {
    use io_uring::{opcode, types};
    let line_off = l.staging + lane * l.staging_lines * l.line_bytes;
    let e = opcode::WriteFixed::new(
        types::Fixed(lane),
        (l.arena_host_base + line_off as u64) as *const u8,
        17 + lane,
        l.staging_buf_index as u16,
    )
    .offset(0x1000 + lane as u64)
    .build()
    .user_data(crate::protocol::shared::TAG_FF | ((lane as u64 & 0xffff) << 16) | 1);
    crate::ring::Sqe::from_entry(&e)
}

/// The host's half of [`Program::EditBuffer`]: until `stop` is set, acknowledges every value a lane
/// published. Returns how many values it saw change (each one seen while the program ran).
pub fn edit_buffer_host(
    ring: &DeviceRing,
    lanes: u32,
    stop: &std::sync::atomic::AtomicBool,
) -> u64 {
    use std::sync::atomic::Ordering;
    let v = ring.view();
    let l = v.layout();
    let mut seen = vec![0u32; lanes as usize];
    let mut changes = 0;
    while !stop.load(Ordering::Acquire) {
        let mut any = false;
        for lane in 0..lanes {
            // Acquire: pairs with the lane's release store of its value.
            let val = v.u32_at(l.fixed + 8 * lane).load(Ordering::Acquire);
            if val != seen[lane as usize] {
                seen[lane as usize] = val;
                changes += 1;
                any = true;
                // Release: the lane's acquire of the ack sees everything the host did before.
                v.u32_at(l.fixed + 8 * lane + 4)
                    .store(val, Ordering::Release);
            }
        }
        if !any {
            // Poll hard: a lavapipe dispatch lasts about a millisecond, and the point is to answer inside one.
            std::thread::yield_now();
        }
    }
    changes
}

/// Per-lane result of a program.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LaneReport {
    /// Operations completed (lines printed, NOPs, writes, chunks read).
    pub done: u64,
    /// Operations that failed or could not be submitted within their budget.
    pub failed: u64,
    /// Checksum (Read) or 0.
    pub checksum: u64,
    /// Bytes moved.
    pub bytes: u64,
}

/// Result of running a program.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// One entry per lane.
    pub lanes: Vec<LaneReport>,
    /// Wall time of the dispatch.
    pub elapsed: Duration,
    /// Dispatches it took (1 on devices that run a program in one go; resumable devices re-dispatch).
    pub dispatches: u32,
    /// Every lane's final state in the run buffer (dispatch counts, loop iterations, phases), for tests and
    /// experiments that look inside; a device without a run buffer fills what it knows (counters, finished).
    pub states: Vec<LaneState>,
}

impl RunReport {
    /// Sum over lanes.
    pub fn total(&self) -> LaneReport {
        let mut t = LaneReport::default();
        for l in &self.lanes {
            t.done += l.done;
            t.failed += l.failed;
            t.checksum = t.checksum.wrapping_add(l.checksum);
            t.bytes += l.bytes;
        }
        t
    }
}

/// A backend of this crate, compiled in or not.
#[derive(Clone, Copy)]
pub struct BackendEntry {
    /// Backend name (what `--device NAME` selects).
    pub name: &'static str,
    /// The cargo feature that compiles it in (`None`: no implementation exists yet).
    pub feature: Option<&'static str>,
    /// The backend, when compiled in.
    pub backend: Option<&'static dyn Backend>,
}

impl BackendEntry {
    /// The backend, or why it is not in this build.
    pub fn get(&self) -> Result<&'static dyn Backend, DeviceError> {
        match (self.backend, self.feature) {
            (Some(b), _) => Ok(b),
            (None, Some(f)) => Err(hal::compiled_out(self.name, f)),
            (None, None) => Err(DeviceError::Unavailable {
                backend: self.name,
                reason: "gpu-uring has no backend for it yet".into(),
            }),
        }
    }
}

/// Every GPU backend, in the order `--device auto` tries them.
pub fn backends() -> [BackendEntry; 3] {
    [
        BackendEntry {
            name: "cuda",
            feature: Some("cuda"),
            #[cfg(feature = "cuda")]
            backend: Some(&cuda::CudaBackend),
            #[cfg(not(feature = "cuda"))]
            backend: None,
        },
        BackendEntry {
            name: "hip",
            feature: None,
            backend: None,
        },
        BackendEntry {
            name: "vulkan",
            feature: Some("vulkan"),
            #[cfg(feature = "vulkan")]
            backend: Some(&vulkan::VulkanBackend),
            #[cfg(not(feature = "vulkan"))]
            backend: None,
        },
    ]
}

/// The backend named `name` (`vulkan`, `cuda`, `hip`), or why it is not in this build.
pub fn backend(name: &str) -> Result<&'static dyn Backend, DeviceError> {
    match backends().into_iter().find(|b| b.name == name) {
        Some(b) => b.get(),
        None => Err(DeviceError::Unavailable {
            backend: "unknown",
            reason: format!("no backend named {name:?}"),
        }),
    }
}

/// Opens a device with the default [`DeviceConfig`]: [`open_with`].
pub fn open(sel: &DeviceSelector) -> Result<(Box<dyn Device>, Vec<DeviceError>), DeviceError> {
    open_with(sel, &DeviceConfig::default())
}

/// Opens a device. `Auto` tries GPU backends first and falls back to the CPU reference device; the second
/// value lists why each better device was skipped. Only a real GPU is taken automatically: a CPU-type
/// device (lavapipe) is slower than the CPU reference device and loop-capped, so auto prefers the reference
/// device over it (`--device vulkan` selects it explicitly).
pub fn open_with(
    sel: &DeviceSelector,
    config: &DeviceConfig,
) -> Result<(Box<dyn Device>, Vec<DeviceError>), DeviceError> {
    let mut skipped = Vec::new();
    let by_name = |name: &str, adapter: Option<&str>| {
        backend(name).and_then(|b| b.open(adapter, false, config))
    };
    match sel {
        DeviceSelector::Cpu => Ok((Box::new(cpu::CpuDevice::default()), skipped)),
        DeviceSelector::Auto => {
            for entry in backends() {
                match entry.get().and_then(|b| b.open(None, true, config)) {
                    Ok(d) => return Ok((d, skipped)),
                    Err(e) => skipped.push(e),
                }
            }
            Ok((Box::new(cpu::CpuDevice::default()), skipped))
        }
        DeviceSelector::Vulkan(name) => by_name("vulkan", name.as_deref()).map(|d| (d, skipped)),
        DeviceSelector::Hip => by_name("hip", None).map(|d| (d, skipped)),
        DeviceSelector::Cuda => by_name("cuda", None).map(|d| (d, skipped)),
    }
}

/// The line lane `lane` prints as its `seq`-th line in [`Program::Print`] (without the newline). Every
/// backend formats exactly this.
pub fn expected_line(lane: u32, seq: u32) -> String {
    let mut l = crate::protocol::LineBuf::with_capacity(256);
    format_print_line(&mut l, lane, seq);
    String::from_utf8_lossy(l.as_bytes()).into_owned()
}

/// Formats the [`Program::Print`] line.
pub fn format_print_line(l: &mut crate::protocol::LineBuf, lane: u32, seq: u32) {
    l.str("lane=")
        .u64(lane as u64)
        .str(" seq=")
        .u64(seq as u64)
        .str(" d=")
        .i64(seq as i64 - lane as i64)
        .str(" x=")
        .hex(((lane as u64) << 32) | seq as u64)
        .str(" v=")
        .f32(seq as f32 / 8.0 - lane as f32, 3)
        .str(" gpu-uring");
}

/// The checksum [`Program::Read`] computes over a chunk: FNV-1a-style over 32-bit little-endian words,
/// seeded by the chunk's file offset; lanes add their chunk sums (wrapping). The GLSL/HIP versions match it.
pub fn checksum(offset: u64, bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ offset;
    for w in bytes.chunks(4) {
        let mut b = [0u8; 4];
        b[..w.len()].copy_from_slice(w);
        h ^= u32::from_le_bytes(b) as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
