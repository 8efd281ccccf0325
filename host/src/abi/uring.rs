//! The kernel's io_uring ABI as device code uses it: the 64-byte SQE and 16-byte CQE layouts, and the opcodes
//! and SQE flags the device libraries write. The values come from the `io-uring` crate (the kernel's
//! `io_uring.h`), so the C header carries them without anyone retyping them.

use bytemuck::{Pod, Zeroable};
use io_uring::{opcode, squeue::Flags};

abi_struct! {
    /// A 64-byte submission queue entry (`struct io_uring_sqe`), as device code writes it.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
    pub struct Sqe {
        /// `IORING_OP_*`.
        pub opcode: u8,
        /// `IOSQE_*`.
        pub flags: u8,
        /// Request priority.
        pub ioprio: u16,
        /// File descriptor, or fixed-file index with `IOSQE_FIXED_FILE`.
        pub fd: i32,
        /// `off` / `addr2`.
        pub off: u64,
        /// `addr` / `splice_off_in`.
        pub addr: u64,
        /// Length.
        pub len: u32,
        /// `rw_flags` and the other op-specific flag unions.
        pub op_flags: u32,
        /// Returned in the CQE.
        pub user_data: u64,
        /// `buf_index` / `buf_group`.
        pub buf_index: u16,
        /// Credentials id.
        pub personality: u16,
        /// `splice_fd_in` / `file_index`.
        pub file_index: i32,
        /// `addr3`.
        pub addr3: u64,
        /// Padding.
        pub _pad2: u64,
    }
}

pin_layout!(Sqe, size = 64, align = 8 {
    opcode = 0, flags = 1, ioprio = 2, fd = 4, off = 8, addr = 16, len = 24, op_flags = 28, user_data = 32,
    buf_index = 40, personality = 42, file_index = 44, addr3 = 48, _pad2 = 56,
});

abi_struct! {
    /// A 16-byte completion queue entry (`struct io_uring_cqe`).
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
    pub struct Cqe {
        /// The SQE's `user_data`.
        pub user_data: u64,
        /// Result: bytes moved, or `-errno`.
        pub res: i32,
        /// `IORING_CQE_F_*`.
        pub flags: u32,
    }
}

pin_layout!(Cqe, size = 16, align = 8 { user_data = 0, res = 8, flags = 12 });

impl Sqe {
    /// Converts an SQE built with the `io-uring` crate's opcode builders into this layout. The crate has no
    /// public accessor for an entry's bytes, so this copies them; a test checks the result field by field at
    /// the kernel's offsets for every opcode the crate's lanes build.
    pub fn from_entry(entry: &io_uring::squeue::Entry) -> Sqe {
        const _: () = assert!(std::mem::size_of::<io_uring::squeue::Entry>() == 64);
        // SAFETY: `squeue::Entry` is `#[repr(C)]` around the kernel's 64-byte `io_uring_sqe`, which is plain
        // data (every bit pattern valid); `Sqe` is the same 64 bytes, `Pod`. The size is asserted above.
        let bytes: [u8; 64] = unsafe { std::mem::transmute_copy(entry) };
        bytemuck::cast(bytes)
    }
}

/// `IORING_OP_NOP`.
pub const IORING_OP_NOP: u32 = opcode::Nop::CODE as u32;
/// `IORING_OP_READ_FIXED`.
pub const IORING_OP_READ_FIXED: u32 = opcode::ReadFixed::CODE as u32;
/// `IORING_OP_WRITE_FIXED`.
pub const IORING_OP_WRITE_FIXED: u32 = opcode::WriteFixed::CODE as u32;
/// `IORING_OP_READ`.
pub const IORING_OP_READ: u32 = opcode::Read::CODE as u32;
/// `IORING_OP_WRITE`.
pub const IORING_OP_WRITE: u32 = opcode::Write::CODE as u32;

/// `IOSQE_FIXED_FILE`.
pub const IOSQE_FIXED_FILE: u32 = Flags::FIXED_FILE.bits() as u32;
/// `IOSQE_IO_LINK`.
pub const IOSQE_IO_LINK: u32 = Flags::IO_LINK.bits() as u32;
/// `IOSQE_IO_HARDLINK`.
pub const IOSQE_IO_HARDLINK: u32 = Flags::IO_HARDLINK.bits() as u32;
/// `IOSQE_CQE_SKIP_SUCCESS`.
pub const IOSQE_CQE_SKIP_SUCCESS: u32 = Flags::SKIP_SUCCESS.bits() as u32;

#[cfg(test)]
mod tests {
    use super::*;

    /// `from_entry` checked against the kernel's `struct io_uring_sqe` (uapi offsets, read from the converted
    /// bytes without going through `Sqe`'s fields) and the `io-uring` crate's own accessors, for every opcode
    /// and file kind the crate's lanes build.
    #[test]
    #[allow(clippy::indexing_slicing, clippy::type_complexity)]
    fn from_entry_matches_the_uapi_layout_for_every_opcode_used() {
        use io_uring::{opcode, squeue, types};
        let (addr, len, off, ud) = (
            0x7f12_3456_7890u64,
            4095u32,
            0x1_0000_0042u64,
            0xfeed_0000_beefu64,
        );
        let fixed = |e: squeue::Entry| (e, true);
        let raw = |e: squeue::Entry| (e, false);
        // (entry, opcode, uses a fixed file, writes off/addr/len, buf_index)
        let cases: Vec<((squeue::Entry, bool), u32, bool, Option<u16>)> = vec![
            (raw(opcode::Nop::new().build()), IORING_OP_NOP, false, None),
            (
                raw(opcode::Write::new(types::Fd(7), addr as *const u8, len)
                    .offset(off)
                    .build()),
                IORING_OP_WRITE,
                true,
                None,
            ),
            (
                fixed(
                    opcode::Write::new(types::Fixed(7), addr as *const u8, len)
                        .offset(off)
                        .build(),
                ),
                IORING_OP_WRITE,
                true,
                None,
            ),
            (
                raw(
                    opcode::WriteFixed::new(types::Fd(7), addr as *const u8, len, 3)
                        .offset(off)
                        .build(),
                ),
                IORING_OP_WRITE_FIXED,
                true,
                Some(3),
            ),
            (
                fixed(
                    opcode::WriteFixed::new(types::Fixed(7), addr as *const u8, len, 3)
                        .offset(off)
                        .build(),
                ),
                IORING_OP_WRITE_FIXED,
                true,
                Some(3),
            ),
            (
                raw(
                    opcode::ReadFixed::new(types::Fd(7), addr as *mut u8, len, 2)
                        .offset(off)
                        .build(),
                ),
                IORING_OP_READ_FIXED,
                true,
                Some(2),
            ),
            (
                fixed(
                    opcode::ReadFixed::new(types::Fixed(7), addr as *mut u8, len, 2)
                        .offset(off)
                        .build(),
                ),
                IORING_OP_READ_FIXED,
                true,
                Some(2),
            ),
        ];
        for ((e, is_fixed), op, rw, buf) in cases {
            let e = e.user_data(ud).flags(squeue::Flags::IO_LINK);
            assert_eq!(e.get_opcode(), op);
            let s = Sqe::from_entry(&e);
            let b: [u8; 64] = bytemuck::cast(s);
            let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
            let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
            let u64_at = |o: usize| u32_at(o) as u64 | (u32_at(o + 4) as u64) << 32;
            assert_eq!(b[0] as u32, op, "opcode at 0");
            let want_flags = IOSQE_IO_LINK | if is_fixed { IOSQE_FIXED_FILE } else { 0 };
            assert_eq!(b[1] as u32, want_flags, "op {op}: flags at 1");
            assert_eq!(u64_at(32), ud, "op {op}: user_data at 32");
            assert_eq!(u64_at(32), e.get_user_data());
            if rw {
                assert_eq!(u32_at(4), 7, "op {op}: fd at 4");
                assert_eq!(u64_at(8), off, "op {op}: off at 8");
                assert_eq!(u64_at(16), addr, "op {op}: addr at 16");
                assert_eq!(u32_at(24), len, "op {op}: len at 24");
            } else {
                assert_eq!(u32_at(4) as i32, -1, "nop: fd -1");
            }
            assert_eq!(u16_at(40), buf.unwrap_or(0), "op {op}: buf_index at 40");
            assert!(
                b[48..].iter().all(|&x| x == 0),
                "op {op}: addr3 and padding zero"
            );
        }
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
        assert_eq!(u32::from(s.opcode), IORING_OP_WRITE_FIXED);
        assert_eq!(
            u32::from(s.flags),
            IOSQE_FIXED_FILE | IOSQE_CQE_SKIP_SUCCESS
        );
        assert_eq!(s.fd, 3);
        assert_eq!(s.addr, 0x1234_5678_9abc);
        assert_eq!(s.len, 77);
        assert_eq!(s.off, 0x55);
        assert_eq!(s.buf_index, 5);
        assert_eq!(s.user_data, 0xdead_beef_0000_0001);
    }
}
