//! The io_queue's shared memory (PROTOCOL.md, "io_queue (megakernel pump)"): the [`QueueHeader`] at arena
//! offset 0, the [`RegionDesc`] table, the [`IoSlot`]s, the [`PumpLayout`] descriptor handed to devices, and
//! the slot states, ops, error codes and pump states written into them.

use bytemuck::{Pod, Zeroable};

wire_enum! {
    /// The device-local state of an io_queue slot: the low two bits of the slot's word in the device-local
    /// block (PROTOCOL.md §Q2). Only lanes read or write that block; the pump never sees it.
    pub enum QueueSlotState: "io_queue slot state" {
        /// Nobody uses the slot; a lane may allocate it (CAS on its device-local word).
        Free = 0 => "free",
        /// A lane owns the slot and is filling it (or took it back from a stopped pump).
        Allocated = 1 => "allocated",
        /// The owning lane published the request whose sequence is in the word's upper 30 bits and waits for
        /// the pump's completion of that sequence.
        Published = 2 => "published",
    }
}

/// [`QueueSlotState::Free`] as the device-local word writes it.
pub const QUEUE_SLOT_FREE: u32 = QueueSlotState::Free as u32;
/// [`QueueSlotState::Allocated`] as the device-local word writes it.
pub const QUEUE_SLOT_ALLOCATED: u32 = QueueSlotState::Allocated as u32;
/// [`QueueSlotState::Published`] as the device-local word writes it.
pub const QUEUE_SLOT_PUBLISHED: u32 = QueueSlotState::Published as u32;
/// Mask of the state bits of a slot's device-local word.
pub const QUEUE_SLOT_STATE_MASK: u32 = 3;
/// Shift of the sequence in a slot's device-local word (`word = seq << 2 | state`; sequences are 30 bits and
/// compared for equality only, so they may wrap).
pub const QUEUE_SEQ_SHIFT: u32 = 2;
/// Mask of a request sequence (30 bits).
pub const QUEUE_SEQ_MASK: u32 = u32::MAX >> QUEUE_SEQ_SHIFT;

/// The sequence that follows `seq` (30 bits, wrapping; never compared by order).
#[inline]
pub const fn next_seq(seq: u32) -> u32 {
    seq.wrapping_add(1) & QUEUE_SEQ_MASK
}

wire_enum! {
    /// An io_queue operation (`IoSlot::op`, low 8 bits; the upper 24 bits must be zero).
    pub enum QueueOp: "io_queue op" {
        /// Completes DONE with result 0; touches nothing.
        Nop = 0 => "nop",
        /// Read `len` bytes of registered file `file` at `file_offset` into buffer region `buf` at
        /// `buf_offset` (`IORING_OP_READ_FIXED`).
        Read = 1 => "read",
        /// Write `len` bytes of buffer region `buf` at `buf_offset` to registered file `file` at `file_offset`
        /// (`IORING_OP_WRITE_FIXED`).
        Write = 2 => "write",
        /// Ordering point: completes DONE only after every request published before it has completed.
        Fence = 3 => "fence",
    }
}

/// [`QueueOp::Nop`] as the wire writes it.
pub const OP_NOP: u32 = QueueOp::Nop as u32;
/// [`QueueOp::Read`] as the wire writes it.
pub const OP_READ: u32 = QueueOp::Read as u32;
/// [`QueueOp::Write`] as the wire writes it.
pub const OP_WRITE: u32 = QueueOp::Write as u32;
/// [`QueueOp::Fence`] as the wire writes it.
pub const OP_FENCE: u32 = QueueOp::Fence as u32;

wire_enum! {
    /// Why the pump failed a request (`IoSlot::error`, with [`QueueSlotState::Failed`]). The values index
    /// the pump's per-code counters.
    pub enum QueueErrorCode: "io_queue error code" {
        /// No error (DONE slots).
        None = 0 => "none",
        /// Unknown op, or non-zero bits 8–31 of `op`.
        BadOp = 1 => "bad_op",
        /// A reserved word is not zero.
        Reserved = 2 => "reserved",
        /// `file` is not a registered file handle.
        BadFile = 3 => "bad_file",
        /// `buf` is not a registered buffer region handle.
        BadBuffer = 4 => "bad_buffer",
        /// `len` is 0.
        BadLength = 5 => "bad_length",
        /// WRITE to a file registered read-only.
        ReadOnly = 6 => "read_only",
        /// `[buf_offset, buf_offset + len)` is not inside the buffer region.
        BufferRange = 7 => "buffer_range",
        /// `[file_offset, file_offset + len)` is not inside the file's registered extent.
        FileRange = 8 => "file_range",
        /// The kernel failed the operation: `result` is its `-errno`.
        Io = 9 => "io",
        /// The pump could not submit the operation to its ring (`result` is the `-errno` of
        /// `io_uring_enter`); the operation never ran.
        Submit = 10 => "submit",
        /// The pump stopped before the request ran, or cancelled it while stopping (`result` is `-ECANCELED`
        /// then).
        Stopped = 11 => "stopped",
    }
}

/// [`QueueErrorCode::None`] as the wire writes it.
pub const ERR_NONE: u32 = QueueErrorCode::None as u32;
/// [`QueueErrorCode::BadOp`] as the wire writes it.
pub const ERR_BAD_OP: u32 = QueueErrorCode::BadOp as u32;
/// [`QueueErrorCode::Reserved`] as the wire writes it.
pub const ERR_RESERVED: u32 = QueueErrorCode::Reserved as u32;
/// [`QueueErrorCode::BadFile`] as the wire writes it.
pub const ERR_BAD_FILE: u32 = QueueErrorCode::BadFile as u32;
/// [`QueueErrorCode::BadBuffer`] as the wire writes it.
pub const ERR_BAD_BUFFER: u32 = QueueErrorCode::BadBuffer as u32;
/// [`QueueErrorCode::BadLength`] as the wire writes it.
pub const ERR_BAD_LENGTH: u32 = QueueErrorCode::BadLength as u32;
/// [`QueueErrorCode::ReadOnly`] as the wire writes it.
pub const ERR_READ_ONLY: u32 = QueueErrorCode::ReadOnly as u32;
/// [`QueueErrorCode::BufferRange`] as the wire writes it.
pub const ERR_BUFFER_RANGE: u32 = QueueErrorCode::BufferRange as u32;
/// [`QueueErrorCode::FileRange`] as the wire writes it.
pub const ERR_FILE_RANGE: u32 = QueueErrorCode::FileRange as u32;
/// [`QueueErrorCode::Io`] as the wire writes it.
pub const ERR_IO: u32 = QueueErrorCode::Io as u32;
/// [`QueueErrorCode::Submit`] as the wire writes it.
pub const ERR_SUBMIT: u32 = QueueErrorCode::Submit as u32;
/// [`QueueErrorCode::Stopped`] as the wire writes it.
pub const ERR_STOPPED: u32 = QueueErrorCode::Stopped as u32;
/// Number of error codes (counters are indexed by code).
pub const ERR_COUNT: usize = QueueErrorCode::ALL.len();

/// A short name for an error code (`"unknown"` for a value no code has).
pub fn error_name(code: u32) -> &'static str {
    QueueErrorCode::try_from(code).map_or("unknown", QueueErrorCode::name)
}

wire_enum! {
    /// The pump's state (`QueueHeader::pump_state`), written by the pump with release.
    pub enum PumpState: "pump state" {
        /// The pump has not started yet; published requests wait for it.
        NotStarted = 0 => "not_started",
        /// The pump is serving.
        Running = 1 => "running",
        /// The pump is stopping: it claims no new work, fails unstarted requests `ERR_STOPPED`, drains
        /// in-flight I/O.
        Stopping = 2 => "stopping",
        /// The pump has stopped cleanly and writes no slot word any more: a request whose completion a lane
        /// has not seen by now is withdrawn (never served; the lane owns the slot again).
        Stopped = 3 => "stopped",
        /// The pump stopped on an error (its ring failed); as `Stopped` for lanes.
        Failed = 4 => "failed",
    }
}

/// [`PumpState::NotStarted`] as the wire writes it.
pub const PUMP_NOT_STARTED: u32 = PumpState::NotStarted as u32;
/// [`PumpState::Running`] as the wire writes it.
pub const PUMP_RUNNING: u32 = PumpState::Running as u32;
/// [`PumpState::Stopping`] as the wire writes it.
pub const PUMP_STOPPING: u32 = PumpState::Stopping as u32;
/// [`PumpState::Stopped`] as the wire writes it.
pub const PUMP_STOPPED: u32 = PumpState::Stopped as u32;
/// [`PumpState::Failed`] as the wire writes it.
pub const PUMP_FAILED: u32 = PumpState::Failed as u32;

/// `QueueHeader::magic`: "GUIQ".
pub const QUEUE_MAGIC: u32 = u32::from_le_bytes(*b"GUIQ");
/// Version of the io_queue layout.
pub const QUEUE_VERSION: u32 = 2;
/// Byte written into every guard byte of the arena (around the buffer regions).
pub const GUARD_BYTE: u8 = 0xA5;
/// Most slots a queue may have.
pub const MAX_SLOTS: u32 = 1 << 16;
/// Largest buffer region (the kernel's limit for one registered buffer).
pub const MAX_REGION: usize = 1 << 30;

abi_struct! {
    /// One io_queue slot in host-shared memory: one request (the inbox, written only by the lane that owns the
    /// slot) and its completion (the outbox: `done_seq`, `result`, `error`, written only by the pump). 64 bytes
    /// (one cache line, so lanes filling adjacent slots do not false-share), 8-byte aligned. The request's
    /// sequence number is not here but in the dense request-sequence array (`PumpLayout::req_seq`), so an idle
    /// pump scans few cache lines. PROTOCOL.md §Q2.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
    pub struct IoSlot {
        /// Written by the pump (release, after `result` and `error`): the sequence of the latest request it
        /// completed in this slot.
        pub done_seq: u32,
        /// A [`QueueOp`] in bits 0–7; bits 8–31 must be zero.
        pub op: u32,
        /// Registered file handle (READ: the source; WRITE: the destination).
        pub file: u32,
        /// Registered buffer region handle (READ: the destination; WRITE: the source).
        pub buf: u32,
        /// Byte offset in the file.
        pub file_offset: u64,
        /// Byte offset in the buffer region.
        pub buf_offset: u64,
        /// Bytes to move (≥ 1).
        pub len: u32,
        /// The owning lane, for diagnostics; the pump ignores it.
        pub owner: u32,
        /// The device's cookie; the pump never reads or writes it.
        pub tag: u64,
        /// Written by the pump: bytes moved, or `-errno`.
        pub result: i32,
        /// Written by the pump: a [`QueueErrorCode`]; `ERR_NONE` means DONE, anything else FAILED.
        pub error: u32,
        /// Must be zero (`ERR_RESERVED` otherwise).
        pub reserved: [u32; 2],
    }
}

pin_layout!(IoSlot, size = 64, align = 8 {
    done_seq = 0, op = 4, file = 8, buf = 12, file_offset = 16, buf_offset = 24, len = 32, owner = 36, tag = 40,
    result = 48, error = 52, reserved = 56,
});

/// Byte offsets of [`IoSlot`] fields (for device code and for views that reach the fields as atomics).
pub mod slot_off {
    use super::IoSlot;
    use std::mem::offset_of;

    /// `IoSlot::done_seq`.
    pub const DONE_SEQ: u32 = offset_of!(IoSlot, done_seq) as u32;
    /// `IoSlot::op`.
    pub const OP: u32 = offset_of!(IoSlot, op) as u32;
    /// `IoSlot::file`.
    pub const FILE: u32 = offset_of!(IoSlot, file) as u32;
    /// `IoSlot::buf`.
    pub const BUF: u32 = offset_of!(IoSlot, buf) as u32;
    /// `IoSlot::file_offset`.
    pub const FILE_OFFSET: u32 = offset_of!(IoSlot, file_offset) as u32;
    /// `IoSlot::buf_offset`.
    pub const BUF_OFFSET: u32 = offset_of!(IoSlot, buf_offset) as u32;
    /// `IoSlot::len`.
    pub const LEN: u32 = offset_of!(IoSlot, len) as u32;
    /// `IoSlot::owner`.
    pub const OWNER: u32 = offset_of!(IoSlot, owner) as u32;
    /// `IoSlot::tag`.
    pub const TAG: u32 = offset_of!(IoSlot, tag) as u32;
    /// `IoSlot::result`.
    pub const RESULT: u32 = offset_of!(IoSlot, result) as u32;
    /// `IoSlot::error`.
    pub const ERROR: u32 = offset_of!(IoSlot, error) as u32;
    /// `IoSlot::reserved[0]`.
    pub const RESERVED0: u32 = offset_of!(IoSlot, reserved) as u32;
    /// `IoSlot::reserved[1]`.
    pub const RESERVED1: u32 = RESERVED0 + 4;
}

abi_struct! {
    /// The queue header at arena offset 0. 64 bytes.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
    pub struct QueueHeader {
        /// [`QUEUE_MAGIC`].
        pub magic: u32,
        /// [`QUEUE_VERSION`].
        pub version: u32,
        /// Slots in the queue.
        pub nslots: u32,
        /// A [`PumpState`], written by the pump with release; lanes read it with acquire.
        pub pump_state: u32,
        /// Registered buffer regions.
        pub nregions: u32,
        /// Registered files.
        pub nfiles: u32,
        /// Reserved, zero.
        pub reserved: [u32; 10],
    }
}

pin_layout!(QueueHeader, size = 64, align = 4 {
    magic = 0, version = 4, nslots = 8, pump_state = 12, nregions = 16, nfiles = 20, reserved = 24,
});

/// Offset of `QueueHeader::pump_state`.
pub const HEADER_PUMP_STATE: u32 = std::mem::offset_of!(QueueHeader, pump_state) as u32;

abi_struct! {
    /// One registered buffer region: where it lies in the arena. Its handle is its index in the table; it is
    /// registered with the pump's ring as fixed buffer `handle`.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
    pub struct RegionDesc {
        /// Arena offset (page-aligned).
        pub offset: u32,
        /// Size in bytes.
        pub size: u32,
    }
}

pin_layout!(RegionDesc, size = 8, align = 4 { offset = 0, size = 4 });

abi_struct! {
    /// The io_queue layout descriptor handed to a device (push constants / kernel argument), 64 bytes. It
    /// holds no host address and no file descriptor: devices name files and buffers by handle.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
    pub struct PumpLayout {
        /// Arena size in bytes (a multiple of the page size).
        pub arena_size: u64,
        /// Offset of the [`QueueHeader`] (0).
        pub header: u32,
        /// Offset of the request-sequence array: `nslots` u32 words, word `i` written only by the lane that
        /// owns slot `i` (release, after the request fields): the sequence of its latest publication.
        pub req_seq: u32,
        /// Bytes of the device-local block (one u32 per slot: `seq << 2 | QueueSlotState`), which lives outside
        /// the arena (device memory on a GPU).
        pub local_size: u32,
        /// Offset of the slot array (64-byte aligned).
        pub slots: u32,
        /// Slots.
        pub nslots: u32,
        /// Offset of the [`RegionDesc`] table.
        pub regions: u32,
        /// Registered buffer regions.
        pub nregions: u32,
        /// Registered files (handles `0..nfiles`).
        pub nfiles: u32,
        /// [`QUEUE_VERSION`].
        pub version: u32,
        /// Reserved, zero.
        pub reserved: [u32; 5],
    }
}

pin_layout!(PumpLayout, size = 64, align = 8 {
    arena_size = 0, header = 8, req_seq = 12, local_size = 16, slots = 20, nslots = 24, regions = 28,
    nregions = 32, nfiles = 36, version = 40, reserved = 44,
});

impl PumpLayout {
    /// Arena offset of slot `i`'s request sequence.
    #[inline]
    pub fn req_seq_at(&self, i: u32) -> u32 {
        self.req_seq + i * 4
    }

    /// Arena offset of slot `i`.
    #[inline]
    pub fn slot(&self, i: u32) -> u32 {
        self.slots + i * std::mem::size_of::<IoSlot>() as u32
    }
}
