//! [`RingView`]: what a device sees of a ring — the arena (host-shared), the device-local block and the
//! [`RingLayout`]. The reference device and the host's own lane reach ring memory only through this module, as
//! atomics; it is the one place that turns layout offsets into references. Host-shared words (`u32_at`,
//! `shared32`, SQEs, CQEs, staging) and device-local words (`local32`, slots, lane words) have separate
//! methods, so a caller always names the memory class it touches (PROTOCOL.md §1).

use std::marker::PhantomData;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};

use super::layout::{Cqe, RingLayout, Sqe};
use super::words::ArenaWords;
use crate::abi::{LocalControl, SharedControl};

/// A borrowed view of a ring's arena, as device code sees it. `Copy`, `Send` and `Sync`: lanes on many threads
/// hold copies.
#[derive(Clone, Copy)]
pub struct RingView<'a> {
    words: ArenaWords<'a>,
    local: ArenaWords<'a>,
    /// Borrowed, not copied: the view is copied into every [`super::bus::RingBus`] a lane makes, and kept small
    /// that copy is a few register moves instead of a `memcpy` call of the 128-byte layout (measured on the
    /// lane's submission and completion paths, `ring_latency`).
    layout: &'a RingLayout,
    _arena: PhantomData<&'a ()>,
}

// SAFETY: the view only hands out atomics (`&AtomicU32`/`&AtomicU64`, which are Sync) into memory that lives
// for 'a, plus SQE writes and CQE/line accesses whose exclusivity the protocol guarantees (see each method).
unsafe impl Send for RingView<'_> {}
// SAFETY: as above.
unsafe impl Sync for RingView<'_> {}

/// Offset of a field of [`LocalControl`] in the device-local block.
#[macro_export]
#[doc(hidden)]
macro_rules! local_off {
    ($field:ident) => {
        ::std::mem::offset_of!($crate::abi::LocalControl, $field) as u32
    };
}

/// Offset of a field of [`SharedControl`] from `RingLayout::control`.
#[macro_export]
#[doc(hidden)]
macro_rules! shared_off {
    ($field:ident) => {
        ::std::mem::offset_of!($crate::abi::SharedControl, $field) as u32
    };
}

impl<'a> RingView<'a> {
    /// Makes a view.
    ///
    /// # Safety
    /// `base` must point to an arena of `layout.arena_size` bytes, laid out as `layout` says, and `local` to a
    /// device-local block of `local_len ≥ layout.local_size()` bytes, both at least 8-byte aligned, both
    /// staying mapped for `'a`, with both control blocks initialised.
    pub unsafe fn new(
        base: *mut u8,
        local: *mut u8,
        local_len: u64,
        layout: &'a RingLayout,
    ) -> RingView<'a> {
        RingView {
            // SAFETY: `base` points to `layout.arena_size` bytes mapped for 'a (this function's contract), page-
            // aligned, whose shared words the protocol accesses only atomically.
            words: unsafe { ArenaWords::new(base, layout.arena_size) },
            // SAFETY: as above, for the device-local block.
            local: unsafe { ArenaWords::new(local, local_len) },
            layout,
            _arena: PhantomData,
        }
    }

    /// The view of a ring's arena mapping and its device-local block, laid out as `layout` says (a ring's own, or
    /// a detached copy's). Panics if either is shorter than `layout` needs.
    pub(crate) fn of_mappings(
        arena: &'a memmap2::MmapMut,
        local: &'a super::LocalBlock,
        layout: &'a RingLayout,
    ) -> RingView<'a> {
        assert!(
            arena.len() as u64 >= layout.arena_size && local.len() as u64 >= layout.local_size(),
            "the arena or the device-local block is shorter than the layout"
        );
        // SAFETY: both are mappings borrowed for 'a, page-aligned, at least as long as the layout needs (checked);
        // their control blocks are initialised by whoever built the layout (`Ring::new`, or the copy of a ring's),
        // and every access to either goes through the view's atomics and its exclusive SQE/CQE accesses.
        unsafe {
            RingView::new(
                arena.as_ptr() as *mut u8,
                local.as_ptr(),
                local.len() as u64,
                layout,
            )
        }
    }

    /// The layout descriptor.
    #[inline]
    pub fn layout(&self) -> &'a RingLayout {
        self.layout
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

    /// A [`SharedControl`] word (`shared_off!(field)`), host-shared.
    #[inline]
    pub fn shared32(&self, field_off: u32) -> &'a AtomicU32 {
        self.u32_at(self.layout.control + field_off)
    }

    /// A signed [`SharedControl`] word.
    #[inline]
    pub fn shared_i32(&self, field_off: u32) -> &'a AtomicI32 {
        self.i32_at(self.layout.control + field_off)
    }

    /// A 64-bit [`SharedControl`] word.
    #[inline]
    pub fn shared64(&self, field_off: u32) -> &'a AtomicU64 {
        self.u64_at(self.layout.control + field_off)
    }

    /// The device-local 32-bit word at `off` (a [`LocalControl`] field is `local_off!(field)`).
    #[inline]
    pub fn local32(&self, off: u32) -> &'a AtomicU32 {
        self.local.u32_at(off)
    }

    /// The device-local signed 32-bit word at `off`.
    #[inline]
    pub fn local_i32(&self, off: u32) -> &'a AtomicI32 {
        self.local.i32_at(off)
    }

    /// The device-local 64-bit word at `off`.
    #[inline]
    pub fn local64(&self, off: u32) -> &'a AtomicU64 {
        self.local.u64_at(off)
    }

    /// Completion slot `i`'s words (device-local): (state, result, flags, owner).
    #[inline]
    pub fn slot(&self, i: u32) -> (&'a AtomicU32, &'a AtomicI32, &'a AtomicU32, &'a AtomicU32) {
        assert!(i < self.layout.nslots(), "completion slot {i} out of range");
        let off = self.layout.slot_off(i);
        (
            self.local32(off),
            self.local_i32(off + 4),
            self.local32(off + 8),
            self.local32(off + 12),
        )
    }

    /// Lane word `line` of `lane` (device-local; `line == staging_lines` is its in-flight count).
    #[inline]
    pub fn lane_word(&self, lane: u32, line: u32) -> &'a AtomicU32 {
        let l = self.layout;
        assert!(lane < l.lanes && line <= l.staging_lines);
        self.local32(l.lane_word(lane, line))
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

    /// Hints that SQE `index` (`ticket & sq_mask`), filled, is read next by another core: on x86-64 its
    /// cache line is demoted (`cldemote`) from this core's caches to the shared cache, so the kernel's SQ thread,
    /// which reads the SQE right after it sees the new tail, takes the line from there instead of from this
    /// core. Touches no memory; elsewhere a no-op.
    ///
    /// When: a lane that publishes one SQE demotes it after the SQ doorbell, not between the fill and the
    /// publishing CAS, since a locked RMW waits until a demoted line has left the core (about 85 ns on the 2-vCPU
    /// VM, `lane_work`, experiments/README.md) and that wait would delay the tail store. A batch (a subgroup's
    /// SQEs, published with one CAS) is demoted line by line as it is filled, where each demotion overlaps the
    /// next fills: a burst of them after the doorbell cost the read paths throughput (below).
    ///
    /// Measured there: the demotion took the single-lane round trip's hot p50 ratio from 0.98–1.10 to 0.85–1.01
    /// (`ring_latency`). Moved after the doorbell, the device ring's p50 stayed the same (0.610 against 0.609 µs,
    /// median of about 900 rounds each) while the two vCPUs ran on separate cores, fell about 0.05 µs while they
    /// shared one, and a single-lane print's round trip fell from 1.01–1.36 to 0.80–0.85 µs (`print_latency`,
    /// one write per line). A batch demoted after the doorbell lowered `read_throughput`'s direct 1x8 ratio
    /// (medians 0.81 against 0.88, six alternated runs each); demoted as filled it is back (0.87 against 0.85).
    #[inline]
    pub fn demote_sqe(&self, index: u32) {
        let off = self.layout.sqes + (index & self.layout.sq_mask) * 64;
        self.check(off, 64);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `cldemote` is a hint: it reads and writes no memory and changes no architectural state, never
        // faults, and the address lies inside the arena (checked). Whoever owns the line now (the kernel reading
        // it, or a lane that reserved the ticket a ring later) loses nothing but a cache placement. Processors
        // without CLDEMOTE execute it as a NOP.
        unsafe {
            std::arch::asm!(
                "cldemote [{p}]",
                p = in(reg) self.words.base().add(off as usize),
                options(nostack, preserves_flags, readonly)
            );
        }
    }

    /// Hints that SQE `index` (`ticket & sq_mask`) is about to be written: on x86-64 a `prefetchw` of its cache
    /// line, so the line is owned by this core before the fill. The kernel read that SQE a ring's worth of
    /// tickets ago, so the fill's stores would otherwise wait for the line to be taken from the SQ thread's core,
    /// and the publishing CAS (a full fence on x86) waits for those stores: a cross-core round trip on every
    /// submission. Issued while the lane has nothing else to do (waiting for a completion), it costs nothing on
    /// the submission's path (measured: `ring_latency`). Touches no memory; elsewhere a no-op.
    #[inline]
    pub fn prefetch_sqe(&self, index: u32) {
        let off = self.layout.sqes + (index & self.layout.sq_mask) * 64;
        self.check(off, 64);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `prefetchw` is a hint: it reads and writes no memory, never faults, and the address lies inside
        // the arena (checked). Processors without PREFETCHW execute it as a NOP.
        unsafe {
            std::arch::asm!(
                "prefetchw [{p}]",
                p = in(reg) self.words.base().add(off as usize),
                options(nostack, preserves_flags, readonly)
            );
        }
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
        let l = self.layout;
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

    /// Lends the `len` arena bytes at `off` to `f` without copying them (a range the caller owns by the
    /// protocol, quiescent while `f` runs: a completed read's buffer that no new read targets yet).
    #[inline]
    pub fn with_bytes<R>(&self, off: u32, len: u32, f: impl FnOnce(&[u8]) -> R) -> R {
        assert!(off as u64 + len as u64 <= self.layout.arena_size);
        // SAFETY: in bounds (checked); by the caller's protocol obligation nothing writes the range while the
        // borrow lives (it ends with `f`, so it cannot outlive the caller's ownership of the range).
        let bytes = unsafe {
            std::slice::from_raw_parts(self.words.base().add(off as usize), len as usize)
        };
        f(bytes)
    }

    /// A snapshot of the device-local control block (every word read atomically, relaxed). Device-local
    /// memory: the host reads it only outside a run (PROTOCOL.md §9).
    pub fn local_snapshot(&self) -> LocalControl {
        let mut c = LocalControl::default();
        let words: &mut [u32] = bytemuck::cast_slice_mut(std::slice::from_mut(&mut c));
        for (i, w) in words.iter_mut().enumerate() {
            *w = self
                .local32(i as u32 * 4)
                .load(std::sync::atomic::Ordering::Relaxed);
        }
        c
    }

    /// A snapshot of the host-shared control block: the print settings and the mirrors the CQ-bell holder
    /// keeps (what the host may read during a run).
    pub fn shared_snapshot(&self) -> SharedControl {
        let mut c = SharedControl::default();
        let words: &mut [u32] = bytemuck::cast_slice_mut(std::slice::from_mut(&mut c));
        for (i, w) in words.iter_mut().enumerate() {
            *w = self
                .shared32(i as u32 * 4)
                .load(std::sync::atomic::Ordering::Acquire);
        }
        c
    }
}
