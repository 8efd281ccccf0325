//! Everything device code needs to find its way around an arena: the [`RingLayout`] descriptor handed to every
//! device as push constants or a kernel argument, and the kernel's SQE/CQE layouts as `Pod` structs.

use bytemuck::{Pod, Zeroable};

/// The layout descriptor. Every offset is in bytes from the arena base; every field a device reads is a `u32`
/// except the two `u64`s at the start. Exactly 128 bytes: Vulkan guarantees at least 128 bytes of push
/// constants. The GLSL (`GuRingLayout` in `device-shaders/include/gpu_uring.glsl`; its `fixed` is named
/// `fixed_off`, `fixed` being reserved in GLSL) and HIP/CUDA (`kernels/`) mirrors must match it field for field;
/// the tests below and the device suite's `layout_agreement` (the device echoes what it received) pin it.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct RingLayout {
    /// Host virtual address of the arena base: SQE `addr` fields are `arena_host_base + offset`.
    pub arena_host_base: u64,
    /// Arena size in bytes (a multiple of the page size).
    pub arena_size: u64,
    /// Kernel SQ head (written by the kernel).
    pub sq_head: u32,
    /// Kernel SQ tail (written by lanes, §3).
    pub sq_tail: u32,
    /// Kernel SQ flags (`IORING_SQ_NEED_WAKEUP`, `IORING_SQ_CQ_OVERFLOW`).
    pub sq_flags: u32,
    /// `sq_entries - 1`.
    pub sq_mask: u32,
    /// SQ entries (power of two).
    pub sq_entries: u32,
    /// Offset of the SQ index array, or 0 with `IORING_SETUP_NO_SQARRAY`.
    pub sq_array: u32,
    /// Kernel CQ head (written by lanes, §5).
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
    /// Offset of the `DeviceControl` block.
    pub control: u32,
    /// Offset of the completion-slot array (`lanes * slots_per_lane` slots of 16 bytes).
    pub slots: u32,
    /// Completion slots owned by each lane (lane `l` owns `l*slots_per_lane ..`); slot 0 of each is its print slot.
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
    /// Offset of the per-lane words: lane `l` has `staging_lines` line-state words (0 = free, else the
    /// line's write is in flight) followed by one count of its fire-and-forget operations in flight.
    pub lane_words: u32,
}

/// The ring was created with `IORING_SETUP_NO_SQARRAY`.
pub const RING_FLAG_NO_SQARRAY: u32 = 1;
/// The ring is confined: only registered files and buffers, only allowed opcodes.
pub const RING_FLAG_CONFINED: u32 = 2;
/// The ring has an SQPOLL thread (device rings always do; the no-poll experiment does not).
pub const RING_FLAG_SQPOLL: u32 = 4;

impl RingLayout {
    /// Total completion slots.
    pub fn nslots(&self) -> u32 {
        self.lanes * self.slots_per_lane
    }

    /// Offset of line-state word `line` of `lane` (`line == staging_lines` is the lane's in-flight count).
    pub fn lane_word(&self, lane: u32, line: u32) -> u32 {
        self.lane_words + (lane * (self.staging_lines + 1) + line) * 4
    }
}

/// A 64-byte submission queue entry (`struct io_uring_sqe`), as device code writes it.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct Sqe {
    pub opcode: u8,
    pub flags: u8,
    pub ioprio: u16,
    pub fd: i32,
    /// `off` / `addr2`.
    pub off: u64,
    /// `addr` / `splice_off_in`.
    pub addr: u64,
    pub len: u32,
    /// `rw_flags` and the other op-specific flag unions.
    pub op_flags: u32,
    pub user_data: u64,
    /// `buf_index` / `buf_group`.
    pub buf_index: u16,
    pub personality: u16,
    /// `splice_fd_in` / `file_index`.
    pub file_index: i32,
    pub addr3: u64,
    pub _pad2: u64,
}

/// A 16-byte completion queue entry (`struct io_uring_cqe`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct Cqe {
    pub user_data: u64,
    pub res: i32,
    pub flags: u32,
}

impl Sqe {
    /// Converts an SQE built with the `io-uring` crate's opcode builders into this layout.
    pub fn from_entry(entry: &io_uring::squeue::Entry) -> Sqe {
        const _: () = assert!(std::mem::size_of::<io_uring::squeue::Entry>() == 64);
        // SAFETY: `squeue::Entry` is `#[repr(C)]` around the kernel's 64-byte `io_uring_sqe`, which is plain
        // data (every bit pattern valid); `Sqe` is the same 64 bytes, `Pod`. The size is asserted above.
        let bytes: [u8; 64] = unsafe { std::mem::transmute_copy(entry) };
        bytemuck::cast(bytes)
    }
}

/// Where each region of the arena lives. All offsets page-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaPlan {
    /// Rings region (SQ/CQ headers + CQEs + optional SQ array).
    pub rings: usize,
    pub rings_len: usize,
    pub sqes: usize,
    pub sqes_len: usize,
    pub control: usize,
    pub control_len: usize,
    pub staging: usize,
    pub staging_len: usize,
    pub fixed: usize,
    pub fixed_len: usize,
    /// Total bytes.
    pub total: usize,
}

/// The page size (4096 on every machine this targets; read at run time).
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

pub(crate) fn round_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

/// Upper bound for the kernel's ring header before the CQE array (`struct io_rings` is under 200 bytes).
const RING_HEADER_BOUND: usize = 1024;

impl ArenaPlan {
    /// Plans an arena. `control_bytes` is the control block plus completion slots.
    pub fn new(
        sq_entries: u32,
        cq_entries: u32,
        control_bytes: usize,
        staging_bytes: usize,
        fixed_bytes: usize,
    ) -> ArenaPlan {
        let page = page_size();
        let rings_len = round_up(
            RING_HEADER_BOUND + cq_entries as usize * 16 + 64 + sq_entries as usize * 4,
            page,
        );
        let sqes_len = round_up(sq_entries as usize * 64, page);
        let control_len = round_up(control_bytes, page);
        let staging_len = round_up(staging_bytes.max(1), page);
        let fixed_len = round_up(fixed_bytes, page);
        let rings = 0;
        let sqes = rings + rings_len;
        let control = sqes + sqes_len;
        let staging = control + control_len;
        let fixed = staging + staging_len;
        ArenaPlan {
            rings,
            rings_len,
            sqes,
            sqes_len,
            control,
            control_len,
            staging,
            staging_len,
            fixed,
            fixed_len,
            total: fixed + fixed_len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layout_is_128_bytes() {
        assert_eq!(size_of::<RingLayout>(), 128);
        assert_eq!(offset_of!(RingLayout, sq_head), 16);
        assert_eq!(offset_of!(RingLayout, ring_flags), 120);
    }

    #[test]
    fn sqe_matches_the_io_uring_crate() {
        use io_uring::{opcode, squeue, types};
        let e = opcode::WriteFixed::new(types::Fixed(3), 0x1234_5678_9abc as *const u8, 77, 5)
            .offset(0x55)
            .build()
            .flags(squeue::Flags::FIXED_FILE | squeue::Flags::SKIP_SUCCESS)
            .user_data(0xdead_beef_0000_0001);
        let s = Sqe::from_entry(&e);
        assert_eq!(size_of::<Sqe>(), 64);
        assert_eq!(s.opcode, opcode::WriteFixed::CODE);
        assert_eq!(
            s.flags,
            (squeue::Flags::FIXED_FILE | squeue::Flags::SKIP_SUCCESS).bits()
        );
        assert_eq!(s.fd, 3);
        assert_eq!(s.addr, 0x1234_5678_9abc);
        assert_eq!(s.len, 77);
        assert_eq!(s.off, 0x55);
        assert_eq!(s.buf_index, 5);
        assert_eq!(s.user_data, 0xdead_beef_0000_0001);
        assert_eq!(offset_of!(Sqe, user_data), 32);
        assert_eq!(offset_of!(Sqe, buf_index), 40);
        assert_eq!(size_of::<Cqe>(), 16);
    }

    #[test]
    fn plan_is_page_aligned() {
        let p = ArenaPlan::new(256, 512, 5000, 64 * 4 * 256, 1 << 20);
        let page = page_size();
        for off in [p.rings, p.sqes, p.control, p.staging, p.fixed, p.total] {
            assert_eq!(off % page, 0);
        }
        assert!(p.rings_len >= 1024 + 512 * 16);
        assert_eq!(p.fixed_len, 1 << 20);
    }
}
