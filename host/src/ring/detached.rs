//! [`DetachedRing`]: a copy of a ring's memory that no kernel serves. The caller completes the published SQEs
//! itself ([`DetachedRing::complete`]) where the kernel would, so a lane's own work on a round trip can be run
//! and measured on one thread: no SQ thread, no waker, no cache line crossing cores (`lane_work` in the
//! experiments). Not a ring: nothing submitted to it reaches the kernel, and completing does no I/O.

use std::mem::offset_of;
use std::sync::atomic::Ordering::*;

use super::error::RingError;
use super::layout::{Cqe, RingLayout, Sqe};
use super::local::LocalBlock;
use super::view::RingView;
use super::Ring;

/// `IOSQE_CQE_SKIP_SUCCESS`.
const SKIP_SUCCESS: u8 = 1 << 6;

/// A ring's arena and device-local block, copied at one moment into memory of this process that no kernel
/// reads. The layout is the ring's, with `arena_host_base` moved to the copy.
pub struct DetachedRing {
    arena: memmap2::MmapMut,
    local: LocalBlock,
    layout: RingLayout,
}

impl std::fmt::Debug for DetachedRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetachedRing")
            .field("arena", &self.arena.as_ptr())
            .field("arena_len", &self.arena.len())
            .field("local", &self.local)
            .finish()
    }
}

impl DetachedRing {
    /// Copies `ring`'s arena and device-local block as they are now. Copy a ring no lane is using (for
    /// instance one just built): words a lane or the kernel changes during the copy may be copied half-way.
    pub fn copy_of(ring: &Ring) -> Result<DetachedRing, RingError> {
        let from = ring.view();
        let mut layout = *from.layout();
        let arena = memmap2::MmapOptions::new()
            .len(layout.arena_size as usize)
            .map_anon()
            .map_err(|source| RingError::Io {
                context: "mapping a detached copy of a ring's arena",
                source,
            })?;
        let local = LocalBlock::new(ring.local_block().len() as u64)?;
        layout.arena_host_base = arena.as_ptr() as u64;
        let copy = DetachedRing {
            arena,
            local,
            layout,
        };
        let to = copy.view();
        // Word by word, atomically on both sides: both arenas are only ever accessed through atomics.
        for off in (0..layout.arena_size as u32).step_by(8) {
            to.u64_at(off)
                .store(from.u64_at(off).load(Relaxed), Relaxed);
        }
        for off in (0..copy.local.len() as u32).step_by(8) {
            to.local64(off)
                .store(from.local64(off).load(Relaxed), Relaxed);
        }
        // The kernel's flags (an SQ thread asleep) mean nothing here.
        to.u32_at(layout.sq_flags).store(0, Release);
        Ok(copy)
    }

    /// The view device code and lanes use.
    pub fn view(&self) -> RingView<'_> {
        RingView::of_mappings(&self.arena, &self.local, &self.layout)
    }

    /// Does what the kernel does with the SQEs published since the last call, without their I/O: consumes them
    /// up to the SQ tail and posts a CQE for each with its `user_data` and result `res` (none for an
    /// `IOSQE_CQE_SKIP_SUCCESS` SQE when `res ≥ 0`). Stops at a full CQ, leaving the rest published. Returns
    /// how many SQEs it consumed.
    pub fn complete(&self, res: i32) -> u32 {
        let v = self.view();
        let l = self.layout;
        // Acquire: the SQEs below the tail are written (the lane's release store of the tail).
        let tail = v.u32_at(l.sq_tail).load(Acquire);
        // The kernel's own indices: relaxed.
        let mut head = v.u32_at(l.sq_head).load(Relaxed);
        let mut cq_tail = v.u32_at(l.cq_tail).load(Relaxed);
        // Acquire: the CQEs before the head have been read.
        let cq_head = v.u32_at(l.cq_head).load(Acquire);
        let mut n = 0;
        while head != tail && tail.wrapping_sub(head) <= l.sq_entries {
            let index = if l.sq_array != 0 {
                v.u32_at(l.sq_array + (head & l.sq_mask) * 4).load(Relaxed)
            } else {
                head
            };
            let sqe = l.sqes + (index & l.sq_mask) * 64;
            // The flags byte, from the aligned word that holds it (little-endian, as on every target).
            let word = v
                .u64_at(sqe + (offset_of!(Sqe, flags) as u32 & !7))
                .load(Relaxed);
            let flags = (word >> ((offset_of!(Sqe, flags) % 8) * 8)) as u8;
            let user_data = v
                .u64_at(sqe + offset_of!(Sqe, user_data) as u32)
                .load(Relaxed);
            let posts = !(flags & SKIP_SUCCESS != 0 && res >= 0);
            if posts {
                if cq_tail.wrapping_sub(cq_head) >= l.cq_entries {
                    break;
                }
                let cqe = l.cqes + (cq_tail & l.cq_mask) * 16;
                v.u64_at(cqe + offset_of!(Cqe, user_data) as u32)
                    .store(user_data, Relaxed);
                v.i32_at(cqe + offset_of!(Cqe, res) as u32)
                    .store(res, Relaxed);
                v.u32_at(cqe + offset_of!(Cqe, flags) as u32)
                    .store(0, Relaxed);
                cq_tail = cq_tail.wrapping_add(1);
            }
            head = head.wrapping_add(1);
            n += 1;
        }
        // Release: the lane that acquires the head may reuse the SQEs before it; the one that acquires the tail
        // reads the CQEs before it.
        v.u32_at(l.sq_head).store(head, Release);
        v.u32_at(l.cq_tail).store(cq_tail, Release);
        n
    }
}
