//! [`RingView`]: what a device sees of a ring — the arena base and the [`RingLayout`]. The reference device and
//! the host's own lane reach the shared words only through this module, as atomics; it is the one place that
//! turns layout offsets into references.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};

use super::layout::{Cqe, RingLayout, Sqe};
use super::words::ArenaWords;
use crate::abi::{CompletionSlot, DeviceControl};

/// A borrowed view of a ring's arena, as device code sees it. `Copy`, `Send` and `Sync`: lanes on many threads
/// hold copies.
#[derive(Clone, Copy)]
pub struct RingView<'a> {
    words: ArenaWords<'a>,
    layout: RingLayout,
    _arena: PhantomData<&'a ()>,
}

// SAFETY: the view only hands out atomics (`&AtomicU32`/`&AtomicU64`, which are Sync) into memory that lives
// for 'a, plus SQE writes and CQE/line accesses whose exclusivity the protocol guarantees (see each method).
unsafe impl Send for RingView<'_> {}
// SAFETY: as above.
unsafe impl Sync for RingView<'_> {}

/// Offset of a field of [`DeviceControl`].
#[macro_export]
#[doc(hidden)]
macro_rules! ctl_off {
    ($field:ident) => {
        ::std::mem::offset_of!($crate::abi::DeviceControl, $field) as u32
    };
}

impl<'a> RingView<'a> {
    /// Makes a view.
    ///
    /// # Safety
    /// `base` must point to an arena of `layout.arena_size` bytes, laid out as `layout` says, that stays mapped
    /// for `'a`, with the control block and slots initialised.
    pub unsafe fn new(base: *mut u8, layout: RingLayout) -> RingView<'a> {
        RingView {
            // SAFETY: `base` points to `layout.arena_size` bytes mapped for 'a (this function's contract), page-
            // aligned, whose shared words the protocol accesses only atomically.
            words: unsafe { ArenaWords::new(base, layout.arena_size) },
            layout,
            _arena: PhantomData,
        }
    }

    /// The layout descriptor.
    #[inline]
    pub fn layout(&self) -> &RingLayout {
        &self.layout
    }

    #[inline]
    fn check(&self, off: u32, size: u32) {
        self.words.check(off, size)
    }

    /// The 32-bit word at `off`, as an atomic.
    #[inline]
    pub fn u32_at(&self, off: u32) -> &'a AtomicU32 {
        self.words.u32_at(off)
    }

    /// The signed 32-bit word at `off`, as an atomic.
    #[inline]
    pub fn i32_at(&self, off: u32) -> &'a AtomicI32 {
        self.words.i32_at(off)
    }

    /// The 64-bit word at `off`, as an atomic.
    #[inline]
    pub fn u64_at(&self, off: u32) -> &'a AtomicU64 {
        self.words.u64_at(off)
    }

    /// A control-block word (`ctl_off!(field)`).
    #[inline]
    pub fn ctl32(&self, field_off: u32) -> &'a AtomicU32 {
        self.u32_at(self.layout.control + field_off)
    }

    /// A 64-bit control-block word.
    #[inline]
    pub fn ctl64(&self, field_off: u32) -> &'a AtomicU64 {
        self.u64_at(self.layout.control + field_off)
    }

    /// Completion slot `i`'s words: (state, result, flags, owner).
    #[inline]
    pub fn slot(&self, i: u32) -> (&'a AtomicU32, &'a AtomicI32, &'a AtomicU32, &'a AtomicU32) {
        assert!(i < self.layout.nslots(), "completion slot {i} out of range");
        let off = self.layout.slots + i * std::mem::size_of::<CompletionSlot>() as u32;
        (
            self.u32_at(off),
            self.i32_at(off + 4),
            self.u32_at(off + 8),
            self.u32_at(off + 12),
        )
    }

    /// Writes SQE `index` (`ticket & sq_mask`).
    ///
    /// The caller must own the ticket (reserved, not yet published: PROTOCOL.md §3); then no lane and not
    /// the kernel reads or writes this SQE concurrently.
    #[inline]
    pub fn write_sqe(&self, index: u32, sqe: &Sqe) {
        let index = index & self.layout.sq_mask;
        let off = self.layout.sqes + index * 64;
        self.check(off, 64);
        // SAFETY: in bounds and 64-aligned (checked). Exclusivity: by the protocol the reserving lane is the only
        // writer of this SQE until it publishes it, and the kernel finished reading the previous occupant
        // before the SQ head (acquired during reservation) passed it.
        unsafe { std::ptr::write_volatile(self.words.base().add(off as usize).cast::<Sqe>(), *sqe) }
    }

    /// Reads CQE `index` (`position & cq_mask`). Call only for a claimed CQE (PROTOCOL.md §5).
    #[inline]
    pub fn read_cqe(&self, index: u32) -> Cqe {
        let index = index & self.layout.cq_mask;
        let off = self.layout.cqes + index * 16;
        self.check(off, 16);
        // SAFETY: in bounds, 16-aligned. The kernel wrote this CQE before its release store of the CQ tail that
        // the claiming lane acquired, and will not rewrite it until the CQ head (advanced only after this read)
        // passes it.
        unsafe { std::ptr::read_volatile(self.words.base().add(off as usize).cast::<Cqe>()) }
    }

    /// Host address of arena offset `off` (what goes into an SQE's `addr`).
    #[inline]
    pub fn host_addr(&self, off: u32) -> u64 {
        self.layout.arena_host_base + off as u64
    }

    /// Offset of staging line `line` of `lane`.
    #[inline]
    pub fn line_off(&self, lane: u32, line: u32) -> u32 {
        let l = &self.layout;
        assert!(lane < l.lanes && line < l.staging_lines);
        l.staging + (lane * l.staging_lines + line) * l.line_bytes
    }

    /// Copies `bytes` into the arena at `off`.
    ///
    /// The caller must own those bytes by the protocol (a lane's staging line that no in-flight write covers,
    /// or a fixed-buffer range the device owns).
    #[inline]
    pub fn write_bytes(&self, off: u32, bytes: &[u8]) {
        assert!(off as u64 + bytes.len() as u64 <= self.layout.arena_size);
        // SAFETY: in bounds (checked); exclusivity is the caller's protocol obligation stated above, and `bytes`
        // cannot overlap the arena's target range unless the caller passes arena memory it owns.
        unsafe {
            std::ptr::copy(
                bytes.as_ptr(),
                self.words.base().add(off as usize),
                bytes.len(),
            );
        }
    }

    /// Copies bytes out of the arena at `off` (a range the caller owns by the protocol).
    #[inline]
    pub fn read_bytes(&self, off: u32, out: &mut [u8]) {
        assert!(off as u64 + out.len() as u64 <= self.layout.arena_size);
        // SAFETY: in bounds (checked); the range is quiescent by the caller's protocol obligation.
        unsafe {
            std::ptr::copy(
                self.words.base().add(off as usize),
                out.as_mut_ptr(),
                out.len(),
            );
        }
    }

    /// A snapshot of the control block (every field read atomically, relaxed).
    pub fn control_snapshot(&self) -> DeviceControl {
        let mut c = DeviceControl::default();
        let words: &mut [u32] = bytemuck::cast_slice_mut(std::slice::from_mut(&mut c));
        for (i, w) in words.iter_mut().enumerate() {
            *w = self
                .ctl32(i as u32 * 4)
                .load(std::sync::atomic::Ordering::Relaxed);
        }
        c
    }
}
