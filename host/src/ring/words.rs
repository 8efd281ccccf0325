//! [`ArenaWords`]: the one place that turns byte offsets in a shared, device-visible arena into atomics. Both
//! arenas the device shares with the host — a ring's ([`super::view::RingView`]) and the pump's io_queue
//! ([`crate::pump::QueueView`]) — reach their shared words through it.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};

/// A borrowed arena of `size` bytes at `base`, alive for `'a`. `Copy`; views embed it.
#[derive(Clone, Copy)]
pub(crate) struct ArenaWords<'a> {
    base: *mut u8,
    size: u64,
    _arena: PhantomData<&'a ()>,
}

impl<'a> ArenaWords<'a> {
    /// # Safety
    /// `base` must point to `size` bytes, aligned to at least 8, that stay mapped (readable and writable) for
    /// `'a`, and whose shared words are only ever accessed atomically.
    pub(crate) unsafe fn new(base: *mut u8, size: u64) -> ArenaWords<'a> {
        ArenaWords {
            base,
            size,
            _arena: PhantomData,
        }
    }

    /// The arena base, for the views' non-atomic accesses (each states its own exclusivity).
    #[inline]
    pub(crate) fn base(&self) -> *mut u8 {
        self.base
    }

    /// Panics unless `[off, off + size)` lies inside the arena and `off` is a multiple of `size`.
    #[inline]
    pub(crate) fn check(&self, off: u32, size: u32) {
        assert!(
            off as u64 + size as u64 <= self.size && off % size == 0,
            "arena offset {off} (size {size}) outside the arena or misaligned"
        );
    }

    /// The 32-bit word at `off`.
    #[inline]
    pub(crate) fn u32_at(&self, off: u32) -> &'a AtomicU32 {
        self.check(off, 4);
        // SAFETY: in bounds and 4-aligned (checked; the base is at least 8-aligned); the arena lives for 'a and
        // its shared words are accessed only atomically (`new`'s contract).
        unsafe { AtomicU32::from_ptr(self.base.add(off as usize).cast()) }
    }

    /// The signed 32-bit word at `off`.
    #[inline]
    pub(crate) fn i32_at(&self, off: u32) -> &'a AtomicI32 {
        self.check(off, 4);
        // SAFETY: as for `u32_at`.
        unsafe { AtomicI32::from_ptr(self.base.add(off as usize).cast()) }
    }

    /// The 64-bit word at `off`.
    #[inline]
    pub(crate) fn u64_at(&self, off: u32) -> &'a AtomicU64 {
        self.check(off, 8);
        // SAFETY: as for `u32_at`, with 8-byte alignment checked.
        unsafe { AtomicU64::from_ptr(self.base.add(off as usize).cast()) }
    }
}
