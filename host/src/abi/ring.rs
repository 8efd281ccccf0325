//! The ring protocol's memory (PROTOCOL.md §1–§7): the [`RingLayout`] descriptor every device receives, the two
//! control blocks — [`LocalControl`] (device-local: every word lanes update with a read-modify-write) and
//! [`SharedControl`] (host-shared, in the arena: host-written settings and single-writer mirrors) — the
//! per-request [`CompletionSlot`]s (device-local), the doorbell bits, and the states, tags, flags and statuses
//! written into them.

use bytemuck::{Pod, Zeroable};

abi_struct! {
    /// The layout descriptor, handed to every device as push constants or a kernel argument. Offsets are in bytes
    /// from the arena base (host-shared memory), except `slots` and `lane_words`, which are byte offsets inside
    /// the device-local block (PROTOCOL.md §2; its size is [`RingLayout::local_size`]). Every field a device
    /// reads is a `u32` except the two `u64`s at the start.
    /// Exactly 128 bytes: Vulkan guarantees at least 128 bytes of push constants. (The GLSL push-constant block
    /// names `fixed` `fixed_off`, `fixed` being reserved in GLSL.)
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
    pub struct RingLayout {
        /// Host virtual address of the arena base: SQE `addr` fields are `arena_host_base + offset`.
        pub arena_host_base: u64,
        /// Arena size in bytes (a multiple of the page size).
        pub arena_size: u64,
        /// Kernel SQ head (written by the kernel).
        pub sq_head: u32,
        /// Kernel SQ tail (written by the SQ-bell holder, §3).
        pub sq_tail: u32,
        /// Kernel SQ flags (`IORING_SQ_NEED_WAKEUP`, `IORING_SQ_CQ_OVERFLOW`).
        pub sq_flags: u32,
        /// `sq_entries - 1`.
        pub sq_mask: u32,
        /// SQ entries (power of two).
        pub sq_entries: u32,
        /// Offset of the SQ index array, or 0 with `IORING_SETUP_NO_SQARRAY`.
        pub sq_array: u32,
        /// Kernel CQ head (written by the CQ-bell holder, §5).
        pub cq_head: u32,
        /// Kernel CQ tail (written by the kernel).
        pub cq_tail: u32,
        /// `cq_entries - 1`.
        pub cq_mask: u32,
        /// CQ entries (power of two).
        pub cq_entries: u32,
        /// Offset of the CQE array.
        pub cqes: u32,
        /// Offset of the SQE array.
        pub sqes: u32,
        /// Arena offset of the [`SharedControl`] block (host-shared).
        pub control: u32,
        /// Device-local offset of the completion-slot array (`lanes * slots_per_lane` slots of 16 bytes); the
        /// device-local block starts with [`LocalControl`] at offset 0.
        pub slots: u32,
        /// Completion slots owned by each lane (lane `l` owns `l*slots_per_lane ..`); slot 0 of each is its print
        /// slot.
        pub slots_per_lane: u32,
        /// Lanes this arena was sized for.
        pub lanes: u32,
        /// Offset of the staging region (print lines), registered as fixed buffer `staging_buf_index`.
        pub staging: u32,
        /// Staging lines per lane.
        pub staging_lines: u32,
        /// Bytes per staging line (at most 4096 = PIPE_BUF).
        pub line_bytes: u32,
        /// Fixed-buffer index of the staging region.
        pub staging_buf_index: u32,
        /// Offset of the user fixed buffer region (0 if none).
        pub fixed: u32,
        /// Size of the user fixed buffer region in bytes.
        pub fixed_size: u32,
        /// Fixed-buffer index of the user region.
        pub fixed_buf_index: u32,
        /// Publication window `W_SQ` (§2).
        pub w_sq: u32,
        /// Release window `W_CQ` (§2).
        pub w_cq: u32,
        /// CQ credits in the pool (§4).
        pub credit_pool: u32,
        /// `RING_FLAG_*` bits.
        pub ring_flags: u32,
        /// Device-local offset of the per-lane words: lane `l` has `staging_lines` line-state words (0 = free,
        /// else the line's write is in flight) followed by one count of its fire-and-forget operations in
        /// flight. They end the device-local block.
        pub lane_words: u32,
    }
}

pin_layout!(RingLayout, size = 128, align = 8 {
    arena_host_base = 0, arena_size = 8, sq_head = 16, sq_tail = 20, sq_flags = 24, sq_mask = 28,
    sq_entries = 32, sq_array = 36, cq_head = 40, cq_tail = 44, cq_mask = 48, cq_entries = 52, cqes = 56,
    sqes = 60, control = 64, slots = 68, slots_per_lane = 72, lanes = 76, staging = 80, staging_lines = 84,
    line_bytes = 88, staging_buf_index = 92, fixed = 96, fixed_size = 100, fixed_buf_index = 104, w_sq = 108,
    w_cq = 112, credit_pool = 116, ring_flags = 120, lane_words = 124,
});

impl RingLayout {
    /// Total completion slots.
    pub fn nslots(&self) -> u32 {
        self.lanes * self.slots_per_lane
    }

    /// Device-local offset of line-state word `line` of `lane` (`line == staging_lines` is the lane's in-flight
    /// count).
    pub fn lane_word(&self, lane: u32, line: u32) -> u32 {
        self.lane_words + (lane * (self.staging_lines + 1) + line) * 4
    }

    /// Device-local offset of completion slot `i`.
    pub fn slot_off(&self, i: u32) -> u32 {
        self.slots + i * std::mem::size_of::<CompletionSlot>() as u32
    }

    /// Size in bytes of the device-local block: [`LocalControl`], the completion slots, the lane words
    /// (`lane_words + lanes * (staging_lines + 1) * 4`). Devices allocate at least this much.
    pub fn local_size(&self) -> u64 {
        self.lane_words as u64 + self.lanes as u64 * (self.staging_lines as u64 + 1) * 4
    }
}

/// `RingLayout::ring_flags`: the ring was created with `IORING_SETUP_NO_SQARRAY`.
pub const RING_FLAG_NO_SQARRAY: u32 = 1;
/// `RingLayout::ring_flags`: the ring is confined: only registered files and buffers, only allowed opcodes.
pub const RING_FLAG_CONFINED: u32 = 2;
/// `RingLayout::ring_flags`: the ring has an SQPOLL thread (device rings always do; the no-poll experiment
/// does not).
pub const RING_FLAG_SQPOLL: u32 = 4;

abi_struct! {
    /// The device-local control block (PROTOCOL.md §1, §2): every word more than one lane updates with a
    /// read-modify-write. Offset 0 of the device-local block; 384 bytes, 8-byte aligned. The host reads and
    /// writes it only outside a run, on its host copy.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
    pub struct LocalControl {
        /// Low 32: published SQ tail; high 32: ready bitmap (§3).
        pub sq_pub: u64,
        /// Low 32: released CQ head; high 32: done bitmap (§5).
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
        /// The SQ doorbell's lock word: [`BELL_LOCK`] | [`BELL_DIRTY`] (§3).
        pub sq_bell: u32,
        /// The CQ doorbell's lock word (§5).
        pub cq_bell: u32,
        /// The SQ tail the SQ-bell holder last stored into the kernel's `sq.tail` (holder-only).
        pub sq_tail_stored: u32,
        /// The CQ head the CQ-bell holder last stored into the kernel's `cq.head` (holder-only).
        pub cq_head_stored: u32,
        /// Failed fire-and-forget and skip-success operations.
        pub ff_errors: u32,
        /// Last failure's `-errno`.
        pub ff_last_error: i32,
        /// Failure CQEs of skip-success operations reaped (they use the CQ headroom, §4).
        pub skip_failures: u32,
        /// Lines submitted by prints.
        pub lines_printed: u32,
        /// Failed or short print writes.
        pub print_errors: u32,
        /// CQEs whose `user_data` no lane recognised (counted and recorded, never dropped silently).
        pub foreign_cqes: u32,
        /// Device-written words found outside what the protocol allows (a window position out of range, a
        /// corrupted control word): counted by whoever detects it, host or lane, never acted on.
        pub protocol_violations: u32,
        /// CQ-bell holder only: the sum of the counters (`ff_errors`, `skip_failures`, `lines_printed`,
        /// `print_errors`, `foreign_cqes`, `protocol_violations`) when it last copied them into the
        /// [`SharedControl`] mirrors; the counters only grow, so a changed sum means a mirror is stale.
        pub mirror_sum: u32,
        /// The print log's duty word: [`BELL_LOCK`] (a lane holds the write duty) | [`BELL_DIRTY`] (the
        /// completed prefix moved, or a holder handed the duty on) (§7).
        pub log_bell: u32,
        /// The print log's completion word (§7): low 32 bits the completed byte position `D`, bits 32–47 the
        /// completed ticket prefix `C` (16-bit, wrapping), bits 48–63 the done bitmap of tickets `C … C+15`.
        pub log_pub: u64,
        /// The print log's reservation word (§7): low 32 bits the next byte position `R`, bits 32–47 the next
        /// ticket `N` (16-bit, wrapping).
        pub log_reserve: u64,
        /// Duty holder only: the end of the bytes submitted so far (a write in flight ends here).
        pub log_sub: u32,
        /// Written by the duty holder, read by reservers: the end of the bytes the kernel has written; log space
        /// before it may be reused (release store).
        pub log_written: u32,
        /// The log write's completion slot: `generation << 8 | RingSlotState` (§7).
        pub log_wstate: u32,
        /// The log write's result (`res` of its CQE).
        pub log_wres: i32,
        /// Log writes submitted (statistic).
        pub log_writes: u32,
        /// Short log writes whose remainder was resubmitted (statistic).
        pub log_short_writes: u32,
        /// Start byte position of log ticket `t` at index `t % LOG_TICKETS` (its owner's store).
        pub log_starts: [u32; 16],
        /// End byte position of log ticket `t` at index `t % LOG_TICKETS` (its owner's store).
        pub log_ends: [u32; 16],
        /// Reserved, zero.
        pub _reserved: [u32; 30],
    }
}

pin_layout!(LocalControl, size = 384, align = 8 {
    sq_pub = 0, cq_pub = 8, print_offset = 16, ff_last_user_data = 24, sq_reserve = 32, cq_credits = 36,
    cq_claim = 40, sq_bell = 44, cq_bell = 48, sq_tail_stored = 52, cq_head_stored = 56, ff_errors = 60,
    ff_last_error = 64, skip_failures = 68, lines_printed = 72, print_errors = 76, foreign_cqes = 80,
    protocol_violations = 84, mirror_sum = 88, log_bell = 92, log_pub = 96, log_reserve = 104,
    log_sub = 112, log_written = 116, log_wstate = 120, log_wres = 124, log_writes = 128,
    log_short_writes = 132, log_starts = 136, log_ends = 200, _reserved = 264,
});

/// Size of [`LocalControl`]; the completion slots follow it in the device-local block.
pub const LOCAL_CONTROL_BYTES: usize = std::mem::size_of::<LocalControl>();

abi_struct! {
    /// The host-shared control block, in the arena at `RingLayout::control` (PROTOCOL.md §1, §2, §9). Only plain
    /// loads and stores, and every word has one writer at a time: the host writes the print settings before a
    /// run; the CQ-bell holder writes the mirrors (copies of [`LocalControl`] words) each time it releases
    /// CQEs, so the host can watch a run without touching device-local memory. 128 bytes, 8-byte aligned.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
    pub struct SharedControl {
        /// Mirror of [`LocalControl::ff_last_user_data`] (CQ-bell holder).
        pub ff_last_user_data: u64,
        /// Print target (fixed-file index or raw fd); host-written before a run.
        pub print_fd: i32,
        /// `PRINT_*` flags; host-written before a run.
        pub print_flags: u32,
        /// Mirror of [`LocalControl::ff_errors`] (CQ-bell holder).
        pub ff_errors: u32,
        /// Mirror of [`LocalControl::ff_last_error`] (CQ-bell holder).
        pub ff_last_error: i32,
        /// Mirror of [`LocalControl::skip_failures`] (CQ-bell holder).
        pub skip_failures: u32,
        /// Mirror of [`LocalControl::lines_printed`] (CQ-bell holder).
        pub lines_printed: u32,
        /// Mirror of [`LocalControl::print_errors`] (CQ-bell holder).
        pub print_errors: u32,
        /// Mirror of [`LocalControl::foreign_cqes`] (CQ-bell holder).
        pub foreign_cqes: u32,
        /// Mirror of [`LocalControl::protocol_violations`] (CQ-bell holder).
        pub protocol_violations: u32,
        /// Mirror of [`LocalControl::cq_credits`] (CQ-bell holder): credits free at its last release.
        pub credits_free: u32,
        /// Mirror of [`LocalControl::cq_credits`] written by the **SQ-bell holder** when it stores a new tail:
        /// with `credits_free` it tells the waker whether credited operations may be in flight (§9).
        pub sq_credits_free: u32,
        /// Arena offset of the print log (host-shared bytes, inside the staging buffer's registration); written
        /// by the host when it creates the ring (§7).
        pub print_log: u32,
        /// Size of the print log in bytes: a power of two, or 0 for none (host-written at creation).
        pub print_log_bytes: u32,
        /// Mirror of `cq_pub`'s released head (CQ-bell holder), written at each release; the kernel's `cq.head`
        /// lags it by less than the CQ-head lag (§5.5), so the waker counts unreleased CQEs from this word.
        pub cq_released: u32,
        /// Reserved, zero.
        pub _reserved: [u32; 16],
    }
}

pin_layout!(SharedControl, size = 128, align = 8 {
    ff_last_user_data = 0, print_fd = 8, print_flags = 12, ff_errors = 16, ff_last_error = 20,
    skip_failures = 24, lines_printed = 28, print_errors = 32, foreign_cqes = 36, protocol_violations = 40,
    credits_free = 44, sq_credits_free = 48, print_log = 52, print_log_bytes = 56, cq_released = 60,
    _reserved = 64,
});

/// Size of [`SharedControl`].
pub const SHARED_CONTROL_BYTES: usize = std::mem::size_of::<SharedControl>();

/// Doorbell word bit: a lane holds the duty of storing the kernel index (§3).
pub const BELL_LOCK: u32 = 1;
/// Doorbell word bit: the published prefix moved since the holder last looked (§3).
pub const BELL_DIRTY: u32 = 2;
/// Rounds a doorbell holder makes before it leaves a pending duty in the DIRTY bit for the next lane (§3).
pub const BELL_ROUNDS: u32 = 16;
/// The CQ-bell holder stores the released head into the kernel's `cq.head` only once it is at least
/// `max(1, w_cq / CQ_HEAD_LAG_DIVISOR)` ahead of the value last stored (§5.5): fewer stores to the cache line
/// the SQ thread polls (on x86 the holder's releasing CAS waits for each one), and fewer bus writes on a GPU.
pub const CQ_HEAD_LAG_DIVISOR: u32 = 2;

/// The CQ-head lag of a ring whose CQ window is `w_cq` (§5.5): the kernel's `cq.head` is stored once the
/// released head is this far ahead of it.
pub const fn cq_head_lag(w_cq: u32) -> u32 {
    let l = w_cq / CQ_HEAD_LAG_DIVISOR;
    if l == 0 {
        1
    } else {
        l
    }
}

abi_struct! {
    /// A per-request completion slot (PROTOCOL.md §2, §6).
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
    pub struct CompletionSlot {
        /// `generation << 8 | RingSlotState` (§2, §6).
        pub state: u32,
        /// The CQE's `res`.
        pub result: i32,
        /// The CQE's `flags`.
        pub flags: u32,
        /// The owning lane.
        pub owner: u32,
    }
}

pin_layout!(CompletionSlot, size = 16, align = 4 { state = 0, result = 4, flags = 8, owner = 12 });

wire_enum! {
    /// The state of a ring completion slot: the low 8 bits of its state word; the high 24 bits are the slot's
    /// generation (§2, §6).
    pub enum RingSlotState: "ring completion slot state" {
        /// Nothing in flight.
        Free = 0 => "free",
        /// Armed: a waited operation is in flight.
        Pending = 1 => "pending",
        /// The CQE has been copied in; the owner may read it.
        Done = 2 => "done",
        /// Transient: the reaper that claimed the CQE is copying it into the slot (§5).
        Reaping = 3 => "reaping",
    }
}

/// [`RingSlotState::Free`] as the wire writes it.
pub const RING_SLOT_FREE: u32 = RingSlotState::Free as u32;
/// [`RingSlotState::Pending`] as the wire writes it.
pub const RING_SLOT_PENDING: u32 = RingSlotState::Pending as u32;
/// [`RingSlotState::Done`] as the wire writes it.
pub const RING_SLOT_DONE: u32 = RingSlotState::Done as u32;
/// [`RingSlotState::Reaping`] as the wire writes it.
pub const RING_SLOT_REAPING: u32 = RingSlotState::Reaping as u32;
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

wire_enum! {
    /// The tag in bits 62–63 of an SQE's `user_data`: how its CQE is dispatched (§4, §5).
    pub enum UserDataTag: "user_data tag" {
        /// A waited operation: `TAG_SLOT | generation << 32 | global slot`.
        Slot = 1 => "slot",
        /// Fire-and-forget: `TAG_FF | lane << 16 | staging line + 1` (0 = none).
        FireAndForget = 2 => "ff",
        /// `IOSQE_CQE_SKIP_SUCCESS`: only failures post (`TAG_SKIP | lane << 16`).
        SkipSuccess = 3 => "skip",
    }
}

/// Bits the tag is shifted by in `user_data`.
pub const TAG_SHIFT: u32 = 62;
/// `user_data` tag of a waited operation.
pub const TAG_SLOT: u64 = (UserDataTag::Slot as u64) << TAG_SHIFT;
/// `user_data` tag of a fire-and-forget operation.
pub const TAG_FF: u64 = (UserDataTag::FireAndForget as u64) << TAG_SHIFT;
/// `user_data` tag of a skip-success operation.
pub const TAG_SKIP: u64 = (UserDataTag::SkipSuccess as u64) << TAG_SHIFT;
/// Mask of the tag bits.
pub const TAG_MASK: u64 = 3 << TAG_SHIFT;

/// `user_data` of a waited operation: `TAG_SLOT | generation << 32 | global slot` (§4).
#[inline]
pub const fn slot_user_data(slot: u32, generation: u32) -> u64 {
    TAG_SLOT | (((generation & SLOT_GEN_MASK) as u64) << 32) | slot as u64
}

/// `SharedControl::print_flags`: `print_fd` is a fixed-file index.
pub const PRINT_FIXED_FILE: u32 = 1;
/// `SharedControl::print_flags`: prints write at `print_offset` (advanced per line) instead of the file
/// position.
pub const PRINT_OFFSET_MODE: u32 = 2;
/// `SharedControl::print_flags`: staging lines are a registered buffer (WRITE_FIXED).
pub const PRINT_FIXED_BUF: u32 = 4;
/// `SharedControl::print_flags`: prints go through the print log (group commit, §7): many lines per write.
/// Without it each line is one write from the lane's staging line.
pub const PRINT_LOG: u32 = 8;
/// Tickets in the print log's completion window (the bitmap of `LocalControl::log_pub`).
pub const LOG_TICKETS: u32 = 16;
/// Writes a print-log duty holder submits before it hands the duty on (§7).
pub const LOG_DUTY_WRITES: u32 = 8;
/// Polls a print's own print-log duty waits for its write before it hands the duty on (§7; `flush` and reap
/// passes wait longer).
pub const LOG_PRINT_POLLS: u32 = 4;
/// The completion-slot index in the `user_data` of a print-log write (`TAG_SLOT`): the log's own slot,
/// `LocalControl::log_wstate`, not one of the lanes' slots.
pub const LOG_SLOT: u32 = u32::MAX;

wire_enum! {
    /// What a device-side protocol call returns (§6), in the GLSL library and in lane states.
    pub enum WaitStatus: "wait status" {
        /// Complete.
        Ready = 0 => "ready",
        /// Nothing to do yet; try again.
        WouldBlock = 1 => "would_block",
        /// A bounded wait ran out of budget.
        TimedOut = 2 => "timed_out",
        /// A poll of a slot with nothing in flight.
        NotPending = 3 => "not_pending",
        /// A commit refused for its SQE flags (§4); nothing of the caller's SQE was submitted.
        BadFlags = 4 => "bad_flags",
        /// A commit naming a completion slot the lane does not have.
        BadSlot = 5 => "bad_slot",
        /// A shared word was outside what the protocol allows; counted in `protocol_violations`.
        ProtocolViolation = 6 => "protocol_violation",
        /// A print whose line (with its newline) is longer than the ring's `line_bytes`; nothing was printed.
        LineTooLong = 7 => "line_too_long",
    }
}

/// [`WaitStatus::Ready`] as device code returns it.
pub const STATUS_READY: u32 = WaitStatus::Ready as u32;
/// [`WaitStatus::WouldBlock`] as device code returns it.
pub const STATUS_WOULD_BLOCK: u32 = WaitStatus::WouldBlock as u32;
/// [`WaitStatus::TimedOut`] as device code returns it.
pub const STATUS_TIMED_OUT: u32 = WaitStatus::TimedOut as u32;
/// [`WaitStatus::NotPending`] as device code returns it.
pub const STATUS_NOT_PENDING: u32 = WaitStatus::NotPending as u32;
/// [`WaitStatus::BadFlags`] as device code returns it.
pub const STATUS_BAD_FLAGS: u32 = WaitStatus::BadFlags as u32;
/// [`WaitStatus::BadSlot`] as device code returns it.
pub const STATUS_BAD_SLOT: u32 = WaitStatus::BadSlot as u32;
/// [`WaitStatus::ProtocolViolation`] as device code returns it.
pub const STATUS_PROTOCOL_VIOLATION: u32 = WaitStatus::ProtocolViolation as u32;
/// [`WaitStatus::LineTooLong`] as device code returns it.
pub const STATUS_LINE_TOO_LONG: u32 = WaitStatus::LineTooLong as u32;

/// CAS attempts before a reservation reports would-block (§3).
pub const RESERVE_TRIES: u32 = 64;
/// Largest line a print writes (PIPE_BUF: atomic on pipes).
pub const MAX_LINE: u32 = 4096;
