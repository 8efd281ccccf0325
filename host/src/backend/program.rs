//! The built-in device programs and what they must produce: every backend runs each [`Program`] the same way
//! and formats, checksums and lays out exactly what the functions here describe, so results are comparable
//! across devices.

use super::error::DeviceError;
use crate::protocol::DeviceRing;

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
    /// `l, l + lanes, …`) with READ_FIXED into the fixed region, and checksum them ([`checksum`]). Each lane
    /// keeps up to `depth` reads in flight: read `j` of the lane (0-based, in submission order) goes into its
    /// buffer `j % depth` at `fixed + (lane · depth + j % depth) · chunk`, completing in completion slot
    /// `min(slots_per_lane − depth, 1) + j % depth`; the lane checksums them in submission order (the native
    /// kernel and the SPIR-V shader alike).
    Read {
        /// Fixed file index.
        file: u32,
        /// Bytes per read (≤ fixed_size / (lanes · depth)).
        chunk: u32,
        /// Total bytes.
        total: u64,
        /// Reads in flight per lane (1..=32, ≤ the ring's `slots_per_lane`).
        depth: u32,
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
    /// library calls on every device, and reports in its [`LaneReport`](super::LaneReport): `done` = 1, `checksum` = the status
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

/// Refuses `program` on `lanes` lanes of a ring laid out as `l` when the ring's fixed buffer is smaller than
/// the program uses (`Read`: its lanes' chunk buffers, `EditBuffer`: 8 bytes per lane, `Layout`: 256 bytes per
/// lane, `Exact`: 68 bytes per value): the same check and message on every backend.
pub(crate) fn check_fixed_buffer(
    backend: &'static str,
    l: &crate::ring::RingLayout,
    lanes: u32,
    program: &Program,
) -> Result<(), DeviceError> {
    let (what, bytes) = match *program {
        Program::Read { chunk, depth, .. } => ("Read", lanes as u64 * depth as u64 * chunk as u64),
        Program::EditBuffer { .. } => ("EditBuffer", lanes as u64 * 8),
        Program::Layout => ("Layout", lanes as u64 * 256),
        Program::Exact { count } => ("Exact", count as u64 * 68),
        _ => return Ok(()),
    };
    if (l.fixed_size as u64) < bytes {
        return Err(DeviceError::Run {
            backend,
            message: format!(
                "{what} needs a fixed buffer of at least {bytes} bytes (RingConfig::fixed_buffer_bytes), the ring has {}",
                l.fixed_size
            ),
        });
    }
    Ok(())
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
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ offset;
    // Whole words through fixed-size arrays: a copy of a slice of unknown length per word compiled to a
    // `memcpy` call per 4 bytes, most of a reading lane's time.
    let words = bytes.chunks_exact(4);
    let tail = words.remainder();
    for w in words {
        h ^= u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as u64;
        h = h.wrapping_mul(PRIME);
    }
    if !tail.is_empty() {
        let mut b = [0u8; 4];
        b[..tail.len()].copy_from_slice(tail);
        h ^= u32::from_le_bytes(b) as u64;
        h = h.wrapping_mul(PRIME);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::checksum;

    /// The definition word by word: a last partial word is zero-padded.
    fn by_definition(offset: u64, bytes: &[u8]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ offset;
        for w in bytes.chunks(4) {
            let mut b = [0u8; 4];
            b[..w.len()].copy_from_slice(w);
            h ^= u32::from_le_bytes(b) as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }

    #[test]
    fn checksum_matches_its_definition_at_every_length_mod_4() {
        let data: Vec<u8> = (0..4099u32).map(|i| (i * 131 + 7) as u8).collect();
        for len in [0, 1, 2, 3, 4, 5, 6, 7, 8, 4093, 4096, 4097, 4099] {
            for offset in [0u64, 4096, u64::MAX] {
                assert_eq!(
                    checksum(offset, &data[..len]),
                    by_definition(offset, &data[..len]),
                    "len {len} offset {offset}"
                );
            }
        }
        // A known value, so that the definition itself cannot drift: the same on every backend.
        assert_eq!(checksum(0, &[]), 0xcbf2_9ce4_8422_2325);
    }
}
