//! The io_queue as the device sees it: the pump arena ([`PumpArena`], host-shared) with its separate
//! device-local block, and [`QueueView`], the one place that turns their offsets into atomics. The `#[repr(C)]` `Pod` structs that live in the arena, the state, op and
//! error constants and the [`PumpLayout`] descriptor handed to devices are defined in [`crate::abi::queue`]
//! (sizes and offsets asserted at compile time there; device languages include the generated header) and
//! re-exported here.
//!
//! Spec: PROTOCOL.md, section "io_queue (megakernel pump)".
//!
//! Every word of the arena is device-written, so nothing here indexes, unwraps or panics on one: the pump reads
//! the region table from its own copy, and [`QueueView`]'s region copies check the table they read against
//! the arena's bounds.

#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::marker::PhantomData;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use crate::ring::layout::page_size;
use crate::ring::words::ArenaWords;

// The shared structs and constants (slot states, ops, error codes, pump states, `IoSlot`, `QueueHeader`,
// `RegionDesc`, `PumpLayout`) are defined once in `crate::abi::queue`, with compile-time layout asserts.
pub use crate::abi::queue::*;

/// Where everything lies in a pump arena: the queue pages, then each region between guard bytes.
#[derive(Debug, Clone)]
pub struct QueueArenaPlan {
    /// The offsets device code is given (queue, slots, region table).
    pub layout: PumpLayout,
    /// Each region's place in the arena, in handle order.
    pub regions: Vec<RegionDesc>,
    /// Bytes of the queue part (header, request sequences, region table, slots), page-rounded.
    pub queue_len: usize,
}

fn round_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

/// Why a pump arena cannot be planned.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// Slots out of range.
    #[error("the io_queue needs 1..={MAX_SLOTS} slots, got {0}")]
    Slots(u32),
    /// A region is empty or too large.
    #[error("buffer region {index} is {size} bytes: regions must be 1..={MAX_REGION} bytes (one registered buffer each)")]
    Region {
        /// The region's handle.
        index: usize,
        /// Its size.
        size: usize,
    },
    /// Too many regions.
    #[error("{0} buffer regions: at most 16384 (io_uring's registered-buffer limit)")]
    TooManyRegions(usize),
    /// The arena would not be addressable with 32-bit offsets.
    #[error(
        "the pump arena would be {0} bytes; device offsets are 32-bit, so keep it under 2 GiB"
    )]
    TooLarge(usize),
}

debug_as_display!(PlanError);

impl QueueArenaPlan {
    /// Plans an arena for `nslots` slots and the given region sizes. Every region starts on a page boundary
    /// and is followed by guard bytes up to the next page boundary plus one whole guard page; one guard page
    /// also separates the queue from the first region.
    pub fn new(
        nslots: u32,
        region_sizes: &[usize],
        nfiles: u32,
    ) -> Result<QueueArenaPlan, PlanError> {
        if nslots == 0 || nslots > MAX_SLOTS {
            return Err(PlanError::Slots(nslots));
        }
        if region_sizes.len() > 16384 {
            return Err(PlanError::TooManyRegions(region_sizes.len()));
        }
        for (index, &size) in region_sizes.iter().enumerate() {
            if size == 0 || size > MAX_REGION {
                return Err(PlanError::Region { index, size });
            }
        }
        let page = page_size();
        let header = 0usize;
        let req_seq = 64usize;
        let regions = round_up(req_seq + nslots as usize * 4, 64);
        let slots = round_up(regions + region_sizes.len() * 8, 64);
        let queue_len = round_up(slots + nslots as usize * 64, page);
        let mut off = queue_len + page; // guard page after the queue
        let mut descs = Vec::with_capacity(region_sizes.len());
        for &size in region_sizes {
            descs.push(RegionDesc {
                offset: off as u32,
                size: size as u32,
            });
            off = round_up(off + size, page) + page;
            if off > (u32::MAX / 2) as usize {
                return Err(PlanError::TooLarge(off));
            }
        }
        let layout = PumpLayout {
            arena_size: off as u64,
            header: header as u32,
            req_seq: req_seq as u32,
            local_size: nslots * 4,
            slots: slots as u32,
            nslots,
            regions: regions as u32,
            nregions: region_sizes.len() as u32,
            nfiles,
            version: QUEUE_VERSION,
            reserved: [0; 5],
        };
        Ok(QueueArenaPlan {
            layout,
            regions: descs,
            queue_len,
        })
    }
}

/// The pump arena: one page-aligned anonymous mapping holding the io_queue and the buffer regions, with guard
/// bytes around every region (host-shared memory). Importable into a GPU API like the device ring's arena
/// (page-aligned base and size, no host pointers inside). Beside it, in a separate page-aligned allocation, the
/// host copy of the device-local block (one word per slot, used by lanes only; a GPU backend copies it into a
/// device-local buffer for a run and back after it).
pub struct PumpArena {
    map: memmap2::MmapMut,
    local: memmap2::MmapMut,
    plan: QueueArenaPlan,
}

impl PumpArena {
    /// Maps and initialises an arena: header, region table, guard bytes; every sequence 0, every slot FREE.
    pub fn new(plan: QueueArenaPlan) -> std::io::Result<PumpArena> {
        let mut map = memmap2::MmapOptions::new()
            .len(plan.layout.arena_size as usize)
            .populate()
            .map_anon()?;
        // Registered (pinned) pages must not become copy-on-write in a forked child.
        let _ = map.advise(memmap2::Advice::DontFork);
        // The device-local block: zero (every slot FREE, sequence 0), never registered with the kernel.
        let local = memmap2::MmapOptions::new()
            .len(round_up(
                (plan.layout.local_size as usize).max(1),
                page_size(),
            ))
            .map_anon()?;
        let l = plan.layout;
        let short = || std::io::Error::other("the pump arena plan does not fit its mapping");
        // Nothing else can see the mapping yet: plain writes.
        let hdr = QueueHeader {
            magic: QUEUE_MAGIC,
            version: QUEUE_VERSION,
            nslots: l.nslots,
            pump_state: PUMP_NOT_STARTED,
            nregions: l.nregions,
            nfiles: l.nfiles,
            reserved: [0; 10],
        };
        map.get_mut(..64)
            .ok_or_else(short)?
            .copy_from_slice(bytemuck::bytes_of(&hdr));
        let t = l.regions as usize;
        map.get_mut(t..t + plan.regions.len() * 8)
            .ok_or_else(short)?
            .copy_from_slice(bytemuck::cast_slice(&plan.regions));
        map.get_mut(plan.queue_len..)
            .ok_or_else(short)?
            .fill(GUARD_BYTE);
        for r in &plan.regions {
            map.get_mut(r.offset as usize..(r.offset as usize + r.size as usize))
                .ok_or_else(short)?
                .fill(0);
        }
        Ok(PumpArena { map, local, plan })
    }

    /// The layout descriptor.
    pub fn layout(&self) -> PumpLayout {
        self.plan.layout
    }

    /// The buffer regions (handle = index).
    pub fn regions(&self) -> &[RegionDesc] {
        &self.plan.regions
    }

    /// Base address and length (for importing into a GPU API, and for registering the regions).
    pub fn raw(&self) -> (*mut u8, usize) {
        (self.map.as_ptr() as *mut u8, self.map.len())
    }

    /// Base address and length of the device-local block's host copy (page-aligned).
    pub fn local_raw(&self) -> (*mut u8, usize) {
        (self.local.as_ptr() as *mut u8, self.local.len())
    }

    /// A view of the arena and the device-local block.
    pub fn view(&self) -> QueueView<'_> {
        let (local, _) = self.local_raw();
        // SAFETY: the mapping is `arena_size` bytes, laid out and initialised by `new` as `layout` says; the
        // local block is at least `local_size` bytes; both live as long as the returned borrow of `self`.
        unsafe { QueueView::new(self.map.as_ptr() as *mut u8, local, self.plan.layout) }
    }

    /// Whether every guard byte (between the queue and the first region, and after each region up to and
    /// including the following guard page) still holds [`GUARD_BYTE`]. Reads with relaxed atomic loads, so
    /// it may run while the pump serves.
    pub fn guards_intact(&self) -> bool {
        let v = self.view();
        let mut start = self.plan.queue_len;
        let check = |from: usize, to: usize| {
            let word = u32::from_ne_bytes([GUARD_BYTE; 4]);
            (from..to)
                .step_by(4)
                .all(|o| v.u32_at(o as u32).load(Ordering::Relaxed) == word)
        };
        for r in &self.plan.regions {
            // Region starts are page-aligned and ends are followed by guard bytes up to a 4-aligned boundary:
            // check the unaligned tail byte by byte.
            if !check(start, r.offset as usize) {
                return false;
            }
            let end = (r.offset + r.size) as usize;
            let aligned = round_up(end, 4);
            for o in end..aligned {
                if v.byte(o as u32) != GUARD_BYTE {
                    return false;
                }
            }
            start = aligned;
        }
        check(start, self.map.len())
    }
}

/// A view of a pump arena as device code sees it: base address, device-local block, and [`PumpLayout`].
/// `Copy`, `Send`, `Sync`. Every shared word is reached as an atomic; data bytes are copied in and out of
/// regions the caller owns by the protocol.
#[derive(Clone, Copy)]
pub struct QueueView<'a> {
    words: ArenaWords<'a>,
    local: ArenaWords<'a>,
    layout: PumpLayout,
    _arena: PhantomData<&'a ()>,
}

// SAFETY: the view hands out atomics into memory that lives for 'a, and byte copies whose exclusivity the
// io_queue protocol guarantees (see each method); a raw pointer alone does not make it thread-bound.
unsafe impl Send for QueueView<'_> {}
// SAFETY: as above.
unsafe impl Sync for QueueView<'_> {}

impl<'a> QueueView<'a> {
    /// Makes a view.
    ///
    /// # Safety
    /// `base` must point to a pump arena of `layout.arena_size` bytes laid out as `layout` says (header,
    /// region table initialised), and `local` to a device-local block of at least `layout.local_size` bytes
    /// (8-aligned), both mapped for all of `'a`.
    pub unsafe fn new(base: *mut u8, local: *mut u8, layout: PumpLayout) -> QueueView<'a> {
        QueueView {
            // SAFETY: `base` points to `layout.arena_size` bytes mapped for 'a (this function's contract), page-
            // aligned, whose shared words the io_queue protocol accesses only atomically.
            words: unsafe { ArenaWords::new(base, layout.arena_size) },
            // SAFETY: as above, for the device-local block (this function's contract).
            local: unsafe { ArenaWords::new(local, u64::from(layout.local_size)) },
            layout,
            _arena: PhantomData,
        }
    }

    /// The layout descriptor.
    #[inline]
    pub fn layout(&self) -> &PumpLayout {
        &self.layout
    }

    /// The 32-bit word at `off`.
    #[inline]
    pub fn u32_at(&self, off: u32) -> &'a AtomicU32 {
        self.words.u32_at(off)
    }

    /// The signed 32-bit word at `off`.
    #[inline]
    pub fn i32_at(&self, off: u32) -> &'a AtomicI32 {
        self.words.i32_at(off)
    }

    /// The 64-bit word at `off`.
    #[inline]
    pub fn u64_at(&self, off: u32) -> &'a AtomicU64 {
        self.words.u64_at(off)
    }

    fn byte(&self, off: u32) -> u8 {
        let w = self.u32_at(off & !3).load(Ordering::Relaxed);
        let [b0, b1, b2, b3] = w.to_ne_bytes();
        match off & 3 {
            0 => b0,
            1 => b1,
            2 => b2,
            _ => b3,
        }
    }

    /// The pump's state word (`PUMP_*`).
    #[inline]
    pub fn pump_state(&self) -> &'a AtomicU32 {
        self.u32_at(self.layout.header + HEADER_PUMP_STATE)
    }

    /// Slot `i`'s request sequence (host-shared; written only by the lane that owns the slot).
    #[inline]
    pub fn req_seq(&self, i: u32) -> &'a AtomicU32 {
        assert!(i < self.layout.nslots, "slot {i} out of range");
        self.u32_at(self.layout.req_seq_at(i))
    }

    /// Slot `i`'s device-local word (`seq << QUEUE_SEQ_SHIFT | QueueSlotState`; lanes only).
    #[inline]
    pub fn own(&self, i: u32) -> &'a AtomicU32 {
        assert!(i < self.layout.nslots, "slot {i} out of range");
        self.local.u32_at(i * 4)
    }

    /// The device-local state of slot `i` (lanes' view; `None` for bits no state names — impossible, the
    /// field is two bits of which three values are named — kept total for the untrusted-word rule).
    pub fn slot_state(&self, i: u32) -> Option<QueueSlotState> {
        QueueSlotState::try_from(self.own(i).load(Ordering::Acquire) & QUEUE_SLOT_STATE_MASK).ok()
    }

    /// The 32-bit field at byte `field` (a [`slot_off`] constant) of slot `i`.
    #[inline]
    pub fn slot32(&self, i: u32, field: u32) -> &'a AtomicU32 {
        assert!(i < self.layout.nslots, "slot {i} out of range");
        self.u32_at(self.layout.slot(i) + field)
    }

    /// The 64-bit field at byte `field` of slot `i`.
    #[inline]
    pub fn slot64(&self, i: u32, field: u32) -> &'a AtomicU64 {
        assert!(i < self.layout.nslots, "slot {i} out of range");
        self.u64_at(self.layout.slot(i) + field)
    }

    /// Slot `i`'s completion sequence (host-shared; written only by the pump).
    #[inline]
    pub fn done_seq(&self, i: u32) -> &'a AtomicU32 {
        self.slot32(i, slot_off::DONE_SEQ)
    }

    /// Slot `i`'s `result` word.
    #[inline]
    pub fn result(&self, i: u32) -> &'a AtomicI32 {
        assert!(i < self.layout.nslots, "slot {i} out of range");
        self.i32_at(self.layout.slot(i) + slot_off::RESULT)
    }

    /// A snapshot of slot `i`, every field loaded with a relaxed atomic load.
    pub fn snapshot(&self, i: u32) -> IoSlot {
        use slot_off::*;
        let r = |f| self.slot32(i, f).load(Ordering::Relaxed);
        IoSlot {
            done_seq: r(DONE_SEQ),
            op: r(OP),
            file: r(FILE),
            buf: r(BUF),
            file_offset: self.slot64(i, FILE_OFFSET).load(Ordering::Relaxed),
            buf_offset: self.slot64(i, BUF_OFFSET).load(Ordering::Relaxed),
            len: r(LEN),
            owner: r(OWNER),
            tag: self.slot64(i, TAG).load(Ordering::Relaxed),
            result: r(RESULT) as i32,
            error: r(ERROR),
            reserved: [r(RESERVED0), r(RESERVED1)],
        }
    }

    /// Buffer region `handle` (`None` if there is no such region).
    #[inline]
    pub fn region(&self, handle: u32) -> Option<RegionDesc> {
        if handle >= self.layout.nregions {
            return None;
        }
        let off = self.layout.regions + handle * 8;
        Some(RegionDesc {
            offset: self.u32_at(off).load(Ordering::Relaxed),
            size: self.u32_at(off + 4).load(Ordering::Relaxed),
        })
    }

    /// The arena offset of `[off, off + len)` in buffer region `handle`, if the region exists and the range
    /// lies inside it — and inside the arena: the region table is arena memory a device can overwrite, so it
    /// is checked too.
    fn region_range(&self, handle: u32, off: u64, len: usize) -> Option<usize> {
        let r = self.region(handle)?;
        let end = off.checked_add(len as u64)?;
        let start = u64::from(r.offset).checked_add(off)?;
        (end <= u64::from(r.size) && start + len as u64 <= self.layout.arena_size)
            .then_some(start as usize)
    }

    /// [`region_range`](Self::region_range), or a panic naming the caller's bad argument (lane-side API: the
    /// pump never calls it).
    #[allow(clippy::panic)]
    fn region_range_or_panic(&self, handle: u32, off: u64, len: usize) -> usize {
        self.region_range(handle, off, len).unwrap_or_else(|| {
            panic!(
                "[{off}, +{len}) is outside buffer region {handle} (or there is no such region, or the \
                 region table in the arena was overwritten)"
            )
        })
    }

    /// Copies bytes out of buffer region `handle` at `off`.
    ///
    /// The caller must own those bytes by the protocol: no READ in flight writes them (it has seen the READ
    /// that filled them DONE, or never published one).
    ///
    /// # Panics
    /// If the range is not inside the region (the caller's bug).
    pub fn read_region(&self, handle: u32, off: u64, out: &mut [u8]) {
        let at = self.region_range_or_panic(handle, off, out.len());
        // SAFETY: in bounds of the region (checked), hence of the mapping; quiescent by the caller's protocol
        // obligation; `out` is a distinct Rust buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(self.words.base().add(at), out.as_mut_ptr(), out.len())
        }
    }

    /// Copies `bytes` into buffer region `handle` at `off`.
    ///
    /// The caller must own those bytes by the protocol: no READ or WRITE in flight uses them.
    ///
    /// # Panics
    /// If the range is not inside the region (the caller's bug).
    pub fn write_region(&self, handle: u32, off: u64, bytes: &[u8]) {
        let at = self.region_range_or_panic(handle, off, bytes.len());
        // SAFETY: in bounds (checked); exclusive by the caller's protocol obligation; `bytes` is a distinct
        // Rust buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.words.base().add(at), bytes.len())
        }
    }

    /// A borrowed slice of buffer region `handle` at `off` (for checksumming in place).
    ///
    /// # Safety
    /// Nothing may write those bytes while the slice lives: no READ into them in flight, no lane writing them.
    ///
    /// # Panics
    /// If the range is not inside the region (the caller's bug).
    pub unsafe fn region_slice(&self, handle: u32, off: u64, len: usize) -> &'a [u8] {
        let at = self.region_range_or_panic(handle, off, len);
        // SAFETY: in bounds (checked), mapped for 'a; immutability for the slice's life is the caller's
        // obligation.
        unsafe { std::slice::from_raw_parts(self.words.base().add(at), len) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_page_aligned_with_guards() {
        let p = QueueArenaPlan::new(100, &[5000, 4096, 1], 2).unwrap();
        let page = page_size();
        assert_eq!(p.layout.req_seq, 64);
        assert_eq!(p.layout.local_size, 400);
        assert_eq!(p.layout.slots % 64, 0);
        assert!(p.layout.slots as usize + 100 * 64 <= p.queue_len);
        let mut prev_end = p.queue_len;
        for r in &p.regions {
            assert_eq!(r.offset as usize % page, 0);
            assert!(
                r.offset as usize >= prev_end + page,
                "a guard page before every region"
            );
            prev_end = (r.offset + r.size) as usize;
        }
        assert!(p.layout.arena_size as usize >= prev_end + page);
        assert_eq!(p.layout.arena_size as usize % page, 0);
        assert!(QueueArenaPlan::new(0, &[], 0).is_err());
        assert!(QueueArenaPlan::new(8, &[0], 0).is_err());
    }

    #[test]
    fn fresh_arena_is_free_and_guarded() {
        let a = PumpArena::new(QueueArenaPlan::new(40, &[100, 8192], 1).unwrap()).unwrap();
        let v = a.view();
        assert!(a.guards_intact());
        for i in 0..40 {
            assert_eq!(v.snapshot(i), IoSlot::default());
        }
        for i in 0..40 {
            assert_eq!(v.req_seq(i).load(Ordering::Relaxed), 0);
            assert_eq!(v.slot_state(i), Some(QueueSlotState::Free));
        }
        assert_eq!(v.pump_state().load(Ordering::Relaxed), PUMP_NOT_STARTED);
        assert_eq!(v.region(1).unwrap().size, 8192);
        assert!(v.region(2).is_none());
        v.write_region(0, 99, &[7]);
        assert!(a.guards_intact());
        // Scribble one byte past region 0: the guard check must notice.
        let r0 = v.region(0).unwrap();
        let w = v.u32_at(r0.offset + 100);
        w.store(0, Ordering::Relaxed);
        assert!(!a.guards_intact());
    }
}
