//! Validation of a claimed request (PROTOCOL.md §Q5): pure, no system call, nothing touched.

#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use super::config::PumpFile;
use super::queue::*;

/// A validated READ or WRITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidIo {
    /// `OP_READ` or `OP_WRITE`.
    pub op: u32,
    /// File handle (= registered file index).
    pub file: u32,
    /// Buffer handle (= registered buffer index).
    pub buf: u32,
    /// Arena offset of the first byte.
    pub arena_offset: u64,
    /// File offset.
    pub file_offset: u64,
    /// Bytes.
    pub len: u32,
}

/// What a claimed request asks for, once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Valid {
    /// NOP.
    Nop,
    /// FENCE.
    Fence,
    /// READ or WRITE.
    Io(ValidIo),
}

/// Validates a request (PROTOCOL.md §Q5). Checks run in this order and the first failure names the error:
/// op, reserved words, then for READ/WRITE: file handle, buffer handle, length, write permission, buffer range,
/// file range. Pure: no system call, nothing touched.
pub fn validate(s: &IoSlot, regions: &[RegionDesc], files: &[PumpFile]) -> Result<Valid, u32> {
    // An unknown op and non-zero op bits 8-31 are both ERR_BAD_OP (the match sees the whole word).
    if !matches!(s.op, OP_NOP | OP_READ | OP_WRITE | OP_FENCE) {
        return Err(ERR_BAD_OP);
    }
    if s.reserved != [0, 0] {
        return Err(ERR_RESERVED);
    }
    match s.op {
        OP_NOP => return Ok(Valid::Nop),
        OP_FENCE => return Ok(Valid::Fence),
        _ => {}
    }
    let file = files.get(s.file as usize).ok_or(ERR_BAD_FILE)?;
    let region = regions.get(s.buf as usize).ok_or(ERR_BAD_BUFFER)?;
    if s.len == 0 {
        return Err(ERR_BAD_LENGTH);
    }
    if s.op == OP_WRITE && !file.writable {
        return Err(ERR_READ_ONLY);
    }
    let len = s.len as u64;
    match s.buf_offset.checked_add(len) {
        Some(end) if end <= region.size as u64 => {}
        _ => return Err(ERR_BUFFER_RANGE),
    }
    match s.file_offset.checked_add(len) {
        // Offsets must also fit the kernel's signed loff_t.
        Some(end) if end <= file.extent && end <= i64::MAX as u64 => {}
        _ => return Err(ERR_FILE_RANGE),
    }
    Ok(Valid::Io(ValidIo {
        op: s.op,
        file: s.file,
        buf: s.buf,
        arena_offset: region.offset as u64 + s.buf_offset,
        file_offset: s.file_offset,
        len: s.len,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn slot(op: u32, file: u32, buf: u32, buf_offset: u64, file_offset: u64, len: u32) -> IoSlot {
        IoSlot {
            op,
            file,
            buf,
            buf_offset,
            file_offset,
            len,
            ..Default::default()
        }
    }

    #[test]
    fn validation_order_and_codes() {
        let regions = [RegionDesc {
            offset: 8192,
            size: 1000,
        }];
        let files = [
            PumpFile {
                fd: 0,
                writable: false,
                extent: 500,
            },
            PumpFile {
                fd: 0,
                writable: true,
                extent: 2000,
            },
        ];
        let v = |s: IoSlot| validate(&s, &regions, &files);
        assert_eq!(v(slot(OP_NOP, 99, 99, 0, 0, 0)), Ok(Valid::Nop));
        assert_eq!(v(slot(OP_FENCE, 99, 99, 0, 0, 0)), Ok(Valid::Fence));
        assert_eq!(v(slot(7, 0, 0, 0, 0, 1)), Err(ERR_BAD_OP));
        assert_eq!(v(slot(OP_READ | 0x100, 0, 0, 0, 0, 1)), Err(ERR_BAD_OP));
        let mut r = slot(OP_READ, 0, 0, 0, 0, 1);
        r.reserved[1] = 1;
        assert_eq!(v(r), Err(ERR_RESERVED));
        assert_eq!(v(slot(OP_READ, 2, 0, 0, 0, 1)), Err(ERR_BAD_FILE));
        assert_eq!(v(slot(OP_READ, 0, 1, 0, 0, 1)), Err(ERR_BAD_BUFFER));
        assert_eq!(v(slot(OP_READ, 0, 0, 0, 0, 0)), Err(ERR_BAD_LENGTH));
        assert_eq!(v(slot(OP_WRITE, 0, 0, 0, 0, 1)), Err(ERR_READ_ONLY));
        assert_eq!(v(slot(OP_READ, 0, 0, 999, 0, 2)), Err(ERR_BUFFER_RANGE));
        assert_eq!(
            v(slot(OP_READ, 0, 0, u64::MAX, 0, 2)),
            Err(ERR_BUFFER_RANGE)
        );
        assert_eq!(v(slot(OP_READ, 0, 0, 0, 499, 2)), Err(ERR_FILE_RANGE));
        assert_eq!(
            v(slot(OP_WRITE, 1, 0, 0, u64::MAX - 1, 2)),
            Err(ERR_FILE_RANGE)
        );
        assert_eq!(
            v(slot(OP_WRITE, 1, 0, 10, 1990, 10)),
            Ok(Valid::Io(ValidIo {
                op: OP_WRITE,
                file: 1,
                buf: 0,
                arena_offset: 8202,
                file_offset: 1990,
                len: 10
            }))
        );
    }
}
