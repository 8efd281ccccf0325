//! [`LocalBlock`]: the host copy of a ring's device-local block (PROTOCOL.md §1, §2) — [`LocalControl`], the
//! completion slots and the lane words, every word lanes update with a read-modify-write. It is a separate,
//! page-aligned allocation, never part of the arena the kernel and the host share with the device.
//!
//! The CPU reference device runs its lanes on this copy directly. A GPU backend copies it into its own
//! device-local buffer before a run and back after it. During a run the host neither reads nor writes it; it
//! performs protocol read-modify-writes here (quiesce, host reaping, `finish_prints`) only after the run.
//!
//! [`LocalControl`]: crate::abi::LocalControl

use super::error::RingError;
use super::layout::{page_size, round_up};

/// The host copy of a ring's device-local block: page-aligned, zero-initialised, `len()` bytes (the layout's
/// [`local_size`](crate::abi::RingLayout::local_size) rounded up to whole pages).
pub struct LocalBlock {
    map: memmap2::MmapMut,
}

impl std::fmt::Debug for LocalBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBlock")
            .field("base", &self.map.as_ptr())
            .field("len", &self.map.len())
            .finish()
    }
}

impl LocalBlock {
    /// A zeroed block of at least `bytes` bytes (whole pages).
    pub(crate) fn new(bytes: u64) -> Result<LocalBlock, RingError> {
        let len = round_up(
            usize::try_from(bytes).unwrap_or(usize::MAX).max(1),
            page_size(),
        );
        let map = memmap2::MmapOptions::new()
            .len(len)
            .populate()
            .map_anon()
            .map_err(|source| RingError::Io {
                context: "mapping the device-local block's host copy",
                source,
            })?;
        Ok(LocalBlock { map })
    }

    /// The block's base address (page-aligned). Everything in it is accessed only atomically.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr() as *mut u8
    }

    /// The block's length in bytes (a multiple of the page size).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the block is empty (never: a ring's block holds at least its control block).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
