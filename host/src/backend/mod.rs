//! Devices that run the device protocol. Every backend looks the same from outside: it is opened from a
//! [`DeviceSelector`], says what it is ([`DeviceInfo`]), and runs the built-in [`Program`]s against a
//! [`DeviceRing`] so one test suite and one set of experiments cover every backend.
//!
//! - [`cpu`]: the CPU reference device — threads as lanes, grouped into subgroups. Runs everywhere; the oracle.
//! - `vulkan`, `hip`, `cuda`: GPU backends (each in its own folder, same shape).

pub mod cpu;

use std::fmt;
use std::time::Duration;

use crate::ring::DeviceRing;

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

/// What a device is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Backend name: `cpu`, `vulkan`, `hip`, `cuda`.
    pub backend: &'static str,
    /// Human-readable device name.
    pub name: String,
    /// Driver / API details.
    pub driver: String,
    /// Lanes per subgroup.
    pub subgroup_size: u32,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}; {}; subgroup {})",
            self.name, self.backend, self.driver, self.subgroup_size
        )
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
    /// `fd` (e.g. /dev/null) at the file position.
    Write {
        /// Raw fd.
        fd: i32,
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

/// A device that runs programs against a ring.
pub trait Device: Send + Sync {
    /// What the device is.
    fn info(&self) -> DeviceInfo;
    /// Runs `program` on `lanes` lanes (≤ the ring's `lanes`) and waits, at most `timeout`.
    fn run(
        &self,
        ring: &DeviceRing,
        lanes: u32,
        program: &Program,
        timeout: Duration,
    ) -> Result<RunReport, DeviceError>;
}

/// Opens a device. `Auto` tries GPU backends first and falls back to the CPU reference device; the second
/// value lists why each better device was skipped.
pub fn open(sel: &DeviceSelector) -> Result<(Box<dyn Device>, Vec<DeviceError>), DeviceError> {
    let mut skipped = Vec::new();
    match sel {
        DeviceSelector::Cpu => Ok((Box::new(cpu::CpuDevice::default()), skipped)),
        DeviceSelector::Auto => {
            for gpu in [
                DeviceSelector::Cuda,
                DeviceSelector::Hip,
                DeviceSelector::Vulkan(None),
            ] {
                match open_gpu(&gpu) {
                    Ok(d) => return Ok((d, skipped)),
                    Err(e) => skipped.push(e),
                }
            }
            Ok((Box::new(cpu::CpuDevice::default()), skipped))
        }
        other => open_gpu(other).map(|d| (d, skipped)),
    }
}

fn open_gpu(sel: &DeviceSelector) -> Result<Box<dyn Device>, DeviceError> {
    let backend = match sel {
        DeviceSelector::Vulkan(_) => "vulkan",
        DeviceSelector::Hip => "hip",
        DeviceSelector::Cuda => "cuda",
        _ => "cpu",
    };
    Err(DeviceError::Unavailable {
        backend,
        reason: "this build has no such backend yet".into(),
    })
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
