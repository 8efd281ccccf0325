//! The structs the Vulkan programs share with the host through the *run buffer* (binding 2): the run
//! parameters, the text table and one [`LaneState`] per lane. `#[repr(C)]` + `Pod`, mirrored field for field by
//! `device-shaders/include/gpu_uring.glsl` (`GuRunParams`, `GuLaneState`, `GuRunBuffer`). The tests below pin
//! the Rust side; the `layout` program (device suite) checks the GLSL side against it on a real device.

use bytemuck::{Pod, Zeroable};

/// Program ids (`RunParams::program`), for diagnostics: each program is its own SPIR-V module.
pub const PROGRAM_PRINT: u32 = 1;
pub const PROGRAM_NOP: u32 = 2;
pub const PROGRAM_READ: u32 = 3;
pub const PROGRAM_LANE_STRESS: u32 = 4;
pub const PROGRAM_EDIT_BUFFER: u32 = 5;
pub const PROGRAM_LAYOUT: u32 = 6;
pub const PROGRAM_EXACT: u32 = 7;
pub const PROGRAM_FORMAT: u32 = 8;
pub const PROGRAM_HOSTILE: u32 = 9;

/// `LaneState::flags`: the lane finished its program, flush included.
pub const LANE_FINISHED: u32 = 1;
/// `LaneState::flags`: prints had no target.
pub const LANE_NO_TARGET: u32 = 2;

/// What one run asks of every lane (64 bytes).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct RunParams {
    /// `PROGRAM_*`.
    pub program: u32,
    /// Lanes taking part (invocations with a larger id return at once).
    pub lanes: u32,
    /// Lines / operations / steps per lane.
    pub count: u32,
    /// Program argument (NOP/Write: mode; Read: fixed-file index; Hostile: the case).
    pub arg0: u32,
    /// Program argument (Write: fixed-file index; Read: chunk bytes).
    pub arg1: u32,
    /// Program argument (Write: bytes per write).
    pub arg2: u32,
    /// Loop iterations after which a lane starts no new work in this dispatch (soft budget, < 65535).
    pub iter_budget: u32,
    /// Dispatch number (diagnostics).
    pub dispatch: u32,
    /// Read: total bytes.
    pub total: u64,
    /// Zero.
    pub reserved: [u32; 6],
}

/// Text pieces a program can copy into its lines: GLSL has no strings, so the host uploads them.
pub const TEXT_ENTRIES: usize = 16;
/// Bytes of text in the table.
pub const TEXT_BYTES: usize = 512;

/// The run buffer's fixed part (768 bytes); `LaneState`s follow it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct RunHeader {
    /// The parameters.
    pub params: RunParams,
    /// Text `k`: byte offset `text_index[2k]` into `text_bytes`, length `text_index[2k + 1]`.
    pub text_index: [u32; 2 * TEXT_ENTRIES],
    /// Text bytes, little-endian in 32-bit words.
    pub text_bytes: [u32; TEXT_BYTES / 4],
    /// Zero.
    pub reserved: [u32; 16],
}

impl RunHeader {
    /// A header with `params` and the text table holding `texts` (in id order).
    pub fn new(params: RunParams, texts: &[&str]) -> RunHeader {
        assert!(texts.len() <= TEXT_ENTRIES, "too many text pieces");
        let mut h = RunHeader::zeroed();
        h.params = params;
        let mut bytes = [0u8; TEXT_BYTES];
        let mut at = 0usize;
        for (k, t) in texts.iter().enumerate() {
            let b = t.as_bytes();
            assert!(at + b.len() <= TEXT_BYTES, "text table full");
            bytes[at..at + b.len()].copy_from_slice(b);
            h.text_index[2 * k] = at as u32;
            h.text_index[2 * k + 1] = b.len() as u32;
            at += b.len();
        }
        for (i, w) in h.text_bytes.iter_mut().enumerate() {
            *w = u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
        }
        h
    }
}

/// One lane's progress, kept across dispatches so every program is resumable (64 bytes).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct LaneState {
    /// Next line / operation / step.
    pub seq: u32,
    /// Program-specific phase (e.g. a formatted line not yet submitted, a waited op in flight).
    pub phase: u32,
    /// Operations completed.
    pub done: u32,
    /// Operations that failed.
    pub failed: u32,
    /// `LANE_*` flags.
    pub flags: u32,
    /// Staging-line rotation counter.
    pub next_line: u32,
    /// Length of the stream print (or waited op) in flight, 0 if none.
    pub pending_len: u32,
    /// Length of the formatted line waiting for a reservation.
    pub line_len: u32,
    /// Read checksum (sum of chunk checksums, wrapping).
    pub checksum: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// Dispatches this lane ran in.
    pub dispatches: u32,
    /// Dispatches that ended with the lane still waiting (budget spent; resumed by the next dispatch).
    pub waits: u32,
    /// Loop iterations counted in the last dispatch.
    pub iters: u32,
    /// Status of the last dispatch (`STATUS_READY` = finished, else `STATUS_TIMED_OUT`).
    pub last_status: u32,
}

/// The bytes of the text pieces of [`crate::backend::Program::Print`] (ids 0–5), in the order
/// [`crate::backend::format_print_line`] uses them.
pub const PRINT_TEXT: [&str; 6] = ["lane=", " seq=", " d=", " x=", " v=", " gpu-uring"];

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn run_buffer_layout_matches_the_glsl() {
        assert_eq!(size_of::<RunParams>(), 64);
        assert_eq!(offset_of!(RunParams, iter_budget), 24);
        assert_eq!(offset_of!(RunParams, total), 32);
        assert_eq!(size_of::<RunHeader>(), 768);
        assert_eq!(offset_of!(RunHeader, text_index), 64);
        assert_eq!(offset_of!(RunHeader, text_bytes), 192);
        assert_eq!(offset_of!(RunHeader, reserved), 704);
        assert_eq!(size_of::<LaneState>(), 64);
        assert_eq!(offset_of!(LaneState, line_len), 28);
        assert_eq!(offset_of!(LaneState, checksum), 32);
        assert_eq!(offset_of!(LaneState, bytes), 40);
        assert_eq!(offset_of!(LaneState, dispatches), 48);
        assert_eq!(offset_of!(LaneState, last_status), 60);
    }

    #[test]
    fn text_table_round_trips() {
        let h = RunHeader::new(RunParams::default(), &PRINT_TEXT);
        let bytes: &[u8] = bytemuck::cast_slice(&h.text_bytes);
        for (k, t) in PRINT_TEXT.iter().enumerate() {
            let (o, n) = (
                h.text_index[2 * k] as usize,
                h.text_index[2 * k + 1] as usize,
            );
            assert_eq!(&bytes[o..o + n], t.as_bytes());
        }
        let mut l = crate::protocol::LineBuf::with_capacity(256);
        crate::backend::format_print_line(&mut l, 3, 7);
        let line = String::from_utf8(l.as_bytes().to_vec()).unwrap();
        for t in PRINT_TEXT {
            assert!(line.contains(t), "{t:?} is a piece of {line:?}");
        }
    }

    /// The GLSL include's constants equal the Rust ones they mirror (control-block offsets, tags, flags,
    /// statuses, opcodes), read from the include's source text.
    #[test]
    fn glsl_constants_match_rust() {
        use crate::ctl_off;
        use crate::protocol::shared::*;
        use io_uring::{opcode, squeue::Flags};
        let src = include_str!("../../../../device-shaders/include/gpu_uring.glsl");
        let mut consts = std::collections::HashMap::new();
        for stmt in src.split(';') {
            // The statement's last line that starts a constant declaration (comments may precede it).
            let Some(rest) = stmt
                .lines()
                .filter_map(|l| l.trim().strip_prefix("const uint "))
                .next_back()
            else {
                continue;
            };
            for item in rest.split(',') {
                let mut kv = item.split('=');
                let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
                    continue;
                };
                let v = v.trim().trim_end_matches('u').trim_end_matches('U');
                let v = match v.strip_prefix("0x") {
                    Some(h) => u32::from_str_radix(h, 16).unwrap(),
                    None => v.parse().unwrap(),
                };
                consts.insert(k.trim().to_owned(), v);
            }
        }
        let want: &[(&str, u32)] = &[
            ("GU_CTL_SQ_PUB", ctl_off!(sq_pub)),
            ("GU_CTL_CQ_PUB", ctl_off!(cq_pub)),
            ("GU_CTL_PRINT_OFFSET", ctl_off!(print_offset)),
            ("GU_CTL_FF_LAST_UD", ctl_off!(ff_last_user_data)),
            ("GU_CTL_SQ_RESERVE", ctl_off!(sq_reserve)),
            ("GU_CTL_CQ_CREDITS", ctl_off!(cq_credits)),
            ("GU_CTL_CQ_CLAIM", ctl_off!(cq_claim)),
            ("GU_CTL_FF_ERRORS", ctl_off!(ff_errors)),
            ("GU_CTL_FF_LAST_ERROR", ctl_off!(ff_last_error)),
            ("GU_CTL_SKIP_FAILURES", ctl_off!(skip_failures)),
            ("GU_CTL_DOORBELL", ctl_off!(doorbell)),
            ("GU_CTL_PRINT_FD", ctl_off!(print_fd)),
            ("GU_CTL_PRINT_FLAGS", ctl_off!(print_flags)),
            ("GU_CTL_LINES_PRINTED", ctl_off!(lines_printed)),
            ("GU_CTL_PRINT_ERRORS", ctl_off!(print_errors)),
            ("GU_CTL_FOREIGN_CQES", ctl_off!(foreign_cqes)),
            ("GU_CTL_PROTOCOL_VIOLATIONS", ctl_off!(protocol_violations)),
            ("GU_SLOT_FREE", SLOT_FREE),
            ("GU_SLOT_PENDING", SLOT_PENDING),
            ("GU_SLOT_DONE", SLOT_DONE),
            ("GU_TAG_SLOT_HI", (TAG_SLOT >> 32) as u32),
            ("GU_TAG_FF_HI", (TAG_FF >> 32) as u32),
            ("GU_TAG_SKIP_HI", (TAG_SKIP >> 32) as u32),
            ("GU_PRINT_FIXED_FILE", PRINT_FIXED_FILE),
            ("GU_PRINT_OFFSET_MODE", PRINT_OFFSET_MODE),
            ("GU_READY", STATUS_READY),
            ("GU_WOULD_BLOCK", STATUS_WOULD_BLOCK),
            ("GU_TIMED_OUT", STATUS_TIMED_OUT),
            ("GU_NOT_PENDING", STATUS_NOT_PENDING),
            ("GU_BAD_FLAGS", STATUS_BAD_FLAGS),
            ("GU_BAD_SLOT", STATUS_BAD_SLOT),
            ("GU_PROTOCOL_VIOLATION", STATUS_PROTOCOL_VIOLATION),
            ("GU_SLOT_REAPING", SLOT_REAPING),
            ("GU_SLOT_STATE_MASK", SLOT_STATE_MASK),
            ("GU_SLOT_GEN_SHIFT", SLOT_GEN_SHIFT),
            ("GU_SLOT_GEN_MASK", SLOT_GEN_MASK),
            ("GU_SQE_IO_LINK", Flags::IO_LINK.bits() as u32),
            ("GU_SQE_IO_HARDLINK", Flags::IO_HARDLINK.bits() as u32),
            ("GU_RESERVE_TRIES", RESERVE_TRIES),
            (
                "GU_RING_FLAG_CONFINED",
                crate::ring::layout::RING_FLAG_CONFINED,
            ),
            ("GU_RING_FLAG_SQPOLL", crate::ring::layout::RING_FLAG_SQPOLL),
            ("GU_OP_NOP", opcode::Nop::CODE as u32),
            ("GU_OP_READ_FIXED", opcode::ReadFixed::CODE as u32),
            ("GU_OP_WRITE_FIXED", opcode::WriteFixed::CODE as u32),
            ("GU_OP_READ", opcode::Read::CODE as u32),
            ("GU_OP_WRITE", opcode::Write::CODE as u32),
            ("GU_SQE_FIXED_FILE", Flags::FIXED_FILE.bits() as u32),
            ("GU_SQE_CQE_SKIP_SUCCESS", Flags::SKIP_SUCCESS.bits() as u32),
            ("GU_LANE_FINISHED", LANE_FINISHED),
            ("GU_LANE_NO_TARGET", LANE_NO_TARGET),
        ];
        for (name, v) in want {
            assert_eq!(consts.get(*name), Some(v), "{name} in gpu_uring.glsl");
        }
        assert_eq!(
            consts.get("GU_MAX_LINE_WORDS").copied(),
            Some(64),
            "STATUS.md promises 256-byte lines"
        );
    }
}
