//! The device-visible state of the protocol (PROTOCOL.md §2): the control block, completion slots, and the
//! constants every implementation shares. `#[repr(C)]` + `Pod`; sizes and offsets are pinned by tests and by
//! the GLSL/HIP mirrors.

use bytemuck::{Pod, Zeroable};

/// The control block all lanes share (PROTOCOL.md §2). 128 bytes, 8-byte aligned.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct DeviceControl {
    /// Low 32: published SQ tail; high 32: ready bitmap.
    pub sq_pub: u64,
    /// Low 32: released CQ head; high 32: done bitmap.
    pub cq_pub: u64,
    /// Next file offset for offset-mode prints.
    pub print_offset: u64,
    /// `user_data` of the last failed fire-and-forget operation.
    pub ff_last_user_data: u64,
    /// Next SQ ticket.
    pub sq_reserve: u32,
    /// CQ credits left.
    pub cq_credits: u32,
    /// Next CQE to claim.
    pub cq_claim: u32,
    /// Failed fire-and-forget and skip-success operations.
    pub ff_errors: u32,
    /// Last failure's `-errno`.
    pub ff_last_error: i32,
    /// Failure CQEs of skip-success operations reaped (they use the CQ headroom, §4).
    pub skip_failures: u32,
    /// Bumped after each tail advance.
    pub doorbell: u32,
    /// Print target (fixed-file index or raw fd).
    pub print_fd: i32,
    /// `PRINT_*` flags.
    pub print_flags: u32,
    /// Lines submitted by prints.
    pub lines_printed: u32,
    /// Failed or short print writes.
    pub print_errors: u32,
    /// CQEs whose `user_data` no lane recognised (counted and recorded, never dropped silently).
    pub foreign_cqes: u32,
    /// Device-written words found outside what the protocol allows (a window position out of range, a
    /// corrupted control word): counted by whoever detects it, host or lane, never acted on.
    pub protocol_violations: u32,
    /// Reserved, zero.
    pub _reserved: [u32; 11],
}

/// A per-request completion slot (PROTOCOL.md §2, §6).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct CompletionSlot {
    /// `generation << 8 | SLOT_FREE / SLOT_PENDING / SLOT_REAPING / SLOT_DONE` (§2, §6).
    pub state: u32,
    /// The CQE's `res`.
    pub result: i32,
    /// The CQE's `flags`.
    pub flags: u32,
    /// The owning lane.
    pub owner: u32,
}

/// Slot states: the low 8 bits of a slot's state word; the high 24 bits are the slot's generation.
pub const SLOT_FREE: u32 = 0;
pub const SLOT_PENDING: u32 = 1;
pub const SLOT_DONE: u32 = 2;
/// Transient: the reaper that claimed the CQE is copying it into the slot (§5).
pub const SLOT_REAPING: u32 = 3;
/// Mask of the state in a slot's state word.
pub const SLOT_STATE_MASK: u32 = 0xff;
/// Bits the generation is shifted by in a slot's state word.
pub const SLOT_GEN_SHIFT: u32 = 8;
/// Mask of a generation (24 bits).
pub const SLOT_GEN_MASK: u32 = 0x00ff_ffff;

/// The state in a slot's state word.
#[inline]
pub const fn slot_state(word: u32) -> u32 {
    word & SLOT_STATE_MASK
}

/// The generation in a slot's state word.
#[inline]
pub const fn slot_generation(word: u32) -> u32 {
    word >> SLOT_GEN_SHIFT
}

/// A slot state word.
#[inline]
pub const fn slot_word(generation: u32, state: u32) -> u32 {
    ((generation & SLOT_GEN_MASK) << SLOT_GEN_SHIFT) | (state & SLOT_STATE_MASK)
}

/// The generation an owner arms a slot with after `generation`: one more, skipping 0 (generation 0 never
/// names an armed slot, so `commit_exact` can use it to ask for one).
#[inline]
pub const fn next_generation(generation: u32) -> u32 {
    let g = generation.wrapping_add(1) & SLOT_GEN_MASK;
    if g == 0 {
        1
    } else {
        g
    }
}

/// `user_data` of a waited operation: `TAG_SLOT | generation << 32 | global slot` (§4).
#[inline]
pub const fn slot_user_data(slot: u32, generation: u32) -> u64 {
    TAG_SLOT | (((generation & SLOT_GEN_MASK) as u64) << 32) | slot as u64
}

/// `user_data` tags (bits 62–63).
pub const TAG_SHIFT: u32 = 62;
pub const TAG_SLOT: u64 = 1 << TAG_SHIFT;
pub const TAG_FF: u64 = 2 << TAG_SHIFT;
pub const TAG_SKIP: u64 = 3 << TAG_SHIFT;
pub const TAG_MASK: u64 = 3 << TAG_SHIFT;

/// `print_flags`.
pub const PRINT_FIXED_FILE: u32 = 1;
pub const PRINT_OFFSET_MODE: u32 = 2;
pub const PRINT_FIXED_BUF: u32 = 4;

/// Wait statuses (§6), as device code returns them.
pub const STATUS_READY: u32 = 0;
pub const STATUS_WOULD_BLOCK: u32 = 1;
pub const STATUS_TIMED_OUT: u32 = 2;
/// A poll of a slot with nothing in flight.
pub const STATUS_NOT_PENDING: u32 = 3;
/// A commit refused for its SQE flags (§4); nothing of the caller's SQE was submitted.
pub const STATUS_BAD_FLAGS: u32 = 4;
/// A commit naming a completion slot the lane does not have.
pub const STATUS_BAD_SLOT: u32 = 5;
/// A shared word was outside what the protocol allows; counted in `protocol_violations`.
pub const STATUS_PROTOCOL_VIOLATION: u32 = 6;

/// CAS attempts before a reservation reports would-block (§3).
pub const RESERVE_TRIES: u32 = 64;
/// Largest line a print writes (PIPE_BUF: atomic on pipes).
pub const MAX_LINE: u32 = 4096;

/// Size of the control block; completion slots follow it.
pub const CONTROL_BYTES: usize = std::mem::size_of::<DeviceControl>();

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn control_block_layout() {
        assert_eq!(size_of::<DeviceControl>(), 128);
        assert_eq!(offset_of!(DeviceControl, sq_pub), 0);
        assert_eq!(offset_of!(DeviceControl, cq_pub), 8);
        assert_eq!(offset_of!(DeviceControl, print_offset), 16);
        assert_eq!(offset_of!(DeviceControl, ff_last_user_data), 24);
        assert_eq!(offset_of!(DeviceControl, sq_reserve), 32);
        assert_eq!(offset_of!(DeviceControl, ff_errors), 44);
        assert_eq!(offset_of!(DeviceControl, print_fd), 60);
        assert_eq!(offset_of!(DeviceControl, foreign_cqes), 76);
        assert_eq!(offset_of!(DeviceControl, protocol_violations), 80);
        assert_eq!(size_of::<CompletionSlot>(), 16);
    }
}
