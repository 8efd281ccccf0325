//! The run buffers of resumable device programs: what one run asks of every lane, and each lane's progress,
//! kept across dispatches. Ring programs (`gpu_uring.glsl`: binding 2) use [`RunHeader`] + [`LaneState`]s;
//! io_queue programs (`gpu_uring_pump.glsl`: binding 1) use [`PumpRunParams`] + [`PumpLaneState`]s.

use bytemuck::{Pod, Zeroable};

/// Program id (`RunParams::program`, diagnostics; each program is its own kernel): formatted prints.
pub const PROGRAM_PRINT: u32 = 1;
/// Program id: NOPs / writes.
pub const PROGRAM_NOP: u32 = 2;
/// Program id: READ_FIXED + checksum.
pub const PROGRAM_READ: u32 = 3;
/// Program id: waited and fire-and-forget NOPs on a tiny ring.
pub const PROGRAM_LANE_STRESS: u32 = 4;
/// Program id: values the host sees while the dispatch runs.
pub const PROGRAM_EDIT_BUFFER: u32 = 5;
/// Program id: layout echo.
pub const PROGRAM_LAYOUT: u32 = 6;
/// Program id: SQE images published as given.
pub const PROGRAM_EXACT: u32 = 7;
/// Program id: the §7 formatter, case by case.
pub const PROGRAM_FORMAT: u32 = 8;
/// Program id: hostile-input cases.
pub const PROGRAM_HOSTILE: u32 = 9;

/// `LaneState::flags`: the lane finished its program, flush included.
pub const LANE_FINISHED: u32 = 1;
/// `LaneState::flags`: prints had no target.
pub const LANE_NO_TARGET: u32 = 2;

abi_struct! {
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
        /// Program argument (Write: bytes per write; Read: reads in flight per lane).
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
}

pin_layout!(RunParams, size = 64, align = 8 {
    program = 0, lanes = 4, count = 8, arg0 = 12, arg1 = 16, arg2 = 20, iter_budget = 24, dispatch = 28,
    total = 32, reserved = 40,
});

/// Text pieces a program can copy into its lines: GLSL has no strings, so the host uploads them.
pub const TEXT_ENTRIES: usize = 16;
/// Bytes of text in the table.
pub const TEXT_BYTES: usize = 512;

abi_struct! {
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
}

pin_layout!(RunHeader, size = 768, align = 8 {
    params = 0, text_index = 64, text_bytes = 192, reserved = 704,
});

/// Why a text table cannot be built.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextTableError {
    /// More pieces than [`TEXT_ENTRIES`].
    #[error("{0} text pieces: the run buffer's text table holds at most {TEXT_ENTRIES}")]
    TooManyPieces(usize),
    /// More bytes than [`TEXT_BYTES`].
    #[error("{0} bytes of text: the run buffer's text table holds at most {TEXT_BYTES}")]
    TooManyBytes(usize),
}

debug_as_display!(TextTableError);

impl RunHeader {
    /// A header with `params` and the text table holding `texts` (in id order).
    pub fn with_texts(params: RunParams, texts: &[&str]) -> Result<RunHeader, TextTableError> {
        if texts.len() > TEXT_ENTRIES {
            return Err(TextTableError::TooManyPieces(texts.len()));
        }
        let total: usize = texts.iter().map(|t| t.len()).sum();
        if total > TEXT_BYTES {
            return Err(TextTableError::TooManyBytes(total));
        }
        let mut h = RunHeader::zeroed();
        h.params = params;
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut h.text_bytes);
        let mut at = 0usize;
        for (t, entry) in texts.iter().zip(h.text_index.chunks_exact_mut(2)) {
            let b = t.as_bytes();
            if let Some(dst) = bytes.get_mut(at..at + b.len()) {
                dst.copy_from_slice(b);
            }
            if let [off, len] = entry {
                *off = at as u32;
                *len = b.len() as u32;
            }
            at += b.len();
        }
        // The table is read as little-endian words.
        for w in h.text_bytes.iter_mut() {
            *w = u32::from_le_bytes(w.to_ne_bytes());
        }
        Ok(h)
    }

    /// A header with `params` and the text table holding `texts` (in id order).
    ///
    /// # Panics
    /// If the texts do not fit the table (more than [`TEXT_ENTRIES`] pieces or [`TEXT_BYTES`] bytes): the
    /// texts are the caller's constants.
    #[allow(clippy::panic)]
    pub fn new(params: RunParams, texts: &[&str]) -> RunHeader {
        Self::with_texts(params, texts).unwrap_or_else(|e| panic!("{e}"))
    }
}

abi_struct! {
    /// One lane's progress, kept across dispatches so every program is resumable (72 bytes).
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
        /// Print-log byte position just past the lane's last line (PROTOCOL.md §7.1): what its flush waits for
        /// `log_written` to pass.
        pub log_end: u32,
        /// Zero.
        pub reserved: u32,
    }
}

pin_layout!(LaneState, size = 72, align = 8 {
    seq = 0, phase = 4, done = 8, failed = 12, flags = 16, next_line = 20, pending_len = 24, line_len = 28,
    checksum = 32, bytes = 40, dispatches = 48, waits = 52, iters = 56, last_status = 60, log_end = 64,
    reserved = 68,
});

/// `PumpLaneState::flags`: the lane has finished its program.
pub const PUMP_LANE_FINISHED: u32 = 1;
/// `PumpLaneState::slot0/slot1`: no slot.
pub const PUMP_NO_SLOT: u32 = u32::MAX;

wire_enum! {
    /// What the device-side io_queue functions return (`gq_poll`, `gq_wait`), recorded in
    /// `PumpLaneState::last_status`.
    pub enum QueueStatus: "io_queue lane status" {
        /// Complete (DONE or FAILED): the result was read.
        Ready = 0 => "ready",
        /// Not complete yet (a poll), or no free slot (an allocation).
        WouldBlock = 1 => "would_block",
        /// A bounded wait ran out of budget; the request is still the pump's.
        TimedOut = 2 => "timed_out",
        /// The pump stopped and never claimed the request: the lane withdrew it.
        PumpStopped = 3 => "pump_stopped",
        /// The slot holds no published request.
        NotPublished = 4 => "not_published",
    }
}

abi_struct! {
    /// What one pump run asks of every lane (64 bytes).
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
    pub struct PumpRunParams {
        /// Program-specific id (diagnostics).
        pub program: u32,
        /// Lanes taking part (set by the runner).
        pub lanes: u32,
        /// Soft loop budget per lane and dispatch (set by the runner).
        pub iter_budget: u32,
        /// Dispatch number (set by the runner).
        pub dispatch: u32,
        /// Pump file handle.
        pub file: u32,
        /// Pump buffer region handle.
        pub region: u32,
        /// Bytes per READ.
        pub chunk: u32,
        /// Requests per lane (probe).
        pub count: u32,
        /// Bytes to stream (stream).
        pub total: u64,
        /// Program arguments (stream: arg0 = 1 corrupts chunk 0's checksum; probe: arg0 = mode, arg1/arg2
        /// echo inputs).
        pub arg0: u32,
        /// Program argument.
        pub arg1: u32,
        /// Program argument.
        pub arg2: u32,
        /// Program argument.
        pub arg3: u32,
        /// Zero.
        pub reserved: [u32; 2],
    }
}

pin_layout!(PumpRunParams, size = 64, align = 8 {
    program = 0, lanes = 4, iter_budget = 8, dispatch = 12, file = 16, region = 20, chunk = 24, count = 28,
    total = 32, arg0 = 40, arg1 = 44, arg2 = 48, arg3 = 52, reserved = 56,
});

abi_struct! {
    /// One lane's progress in a pump program, kept across dispatches (128 bytes).
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
    pub struct PumpLaneState {
        /// `PUMP_LANE_FINISHED`.
        pub flags: u32,
        /// Program-specific phase.
        pub phase: u32,
        /// Requests finished (probe).
        pub seq: u32,
        /// Requests / chunks that completed and checked out.
        pub done: u32,
        /// Requests / chunks that failed.
        pub failed: u32,
        /// Chunks published (stream).
        pub issued: u32,
        /// Chunks consumed (stream).
        pub consumed: u32,
        /// Where the lane's next allocation scan starts.
        pub next_alloc: u32,
        /// Slot of the request in flight (stream: of buffer half 0), or `PUMP_NO_SLOT`.
        pub slot0: u32,
        /// Slot of buffer half 1's request (stream), or `PUMP_NO_SLOT`.
        pub slot1: u32,
        /// Bytes of the current chunk already checksummed.
        pub hpos: u32,
        /// The [`QueueStatus`] of the lane's last poll or wait that did not return WOULD_BLOCK/TIMED_OUT.
        pub last_status: u32,
        /// `ERR_*` of the last completion.
        pub last_error: u32,
        /// `result` of the last completion.
        pub last_result: i32,
        /// Dispatches this lane ran in.
        pub dispatches: u32,
        /// Dispatches that ended with the lane not finished (budget spent).
        pub waits: u32,
        /// Loop iterations counted in the last dispatch.
        pub iters: u32,
        /// Allocation scans that found no free slot (WOULD_BLOCK).
        pub would_block: u32,
        /// Zero (probe echo values).
        pub reserved0: u32,
        /// Zero (probe echo values).
        pub reserved1: u32,
        /// Partial checksum of the current chunk.
        pub hash: u64,
        /// Sum of the finished chunks' checksums (wrapping).
        pub sum: u64,
        /// Bytes checksummed.
        pub bytes: u64,
        /// Tag of the last completion.
        pub last_tag: u64,
        /// Zero (probe echo values).
        pub reserved2: [u32; 4],
    }
}

pin_layout!(PumpLaneState, size = 128, align = 8 {
    flags = 0, phase = 4, seq = 8, done = 12, failed = 16, issued = 20, consumed = 24, next_alloc = 28,
    slot0 = 32, slot1 = 36, hpos = 40, last_status = 44, last_error = 48, last_result = 52, dispatches = 56,
    waits = 60, iters = 64, would_block = 68, reserved0 = 72, reserved1 = 76, hash = 80, sum = 88, bytes = 96,
    last_tag = 104, reserved2 = 112,
});

impl super::describe::CType for RunParams {
    const C_TYPE: &'static str = "RunParams";
    const COUNT: usize = 0;
}
