//! Provided buffer rings: a group of equal buffers that multishot recvs pick from.
//! Native (`IORING_REGISTER_PBUF_RING`): the kernel takes buffers from a shared ring
//! and the proactor puts them back by advancing its tail. Emulated: a free list.
//! Either way a received buffer is leased to the caller as a [`RingBuf`] and goes
//! back to the group when that is dropped (from any thread).

use std::alloc::Layout;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use super::error::{Error, Result};
use super::sync::lock;

/// Page alignment of the ring and the buffers.
const ALIGN: usize = 4096;

/// A group of provided buffers, made with [`Proactor::buf_ring`](super::Proactor::buf_ring).
/// Cloning shares the group.
#[derive(Clone)]
pub struct BufRing {
    pub(crate) inner: Arc<RingInner>,
}

impl std::fmt::Debug for BufRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufRing")
            .field("group", &self.inner.group)
            .field("count", &self.inner.count)
            .field("size", &self.inner.size)
            .finish()
    }
}

impl BufRing {
    /// Buffers in the group not leased to the caller as [`RingBuf`]s.
    pub fn available(&self) -> usize {
        lock(&self.inner.prod).available
    }
    /// Number of buffers.
    pub fn count(&self) -> u16 {
        self.inner.count
    }
    /// Size of each buffer.
    pub fn buf_size(&self) -> usize {
        self.inner.size
    }
}

struct Producer {
    /// Native: the ring tail the proactor publishes.
    tail: u16,
    /// Emulated: the free buffer ids.
    free: Vec<u16>,
    available: usize,
}

pub(crate) struct RingInner {
    pub(crate) group: u16,
    count: u16,
    size: usize,
    /// Buffers are handed to the kernel through the ring (else: the free list).
    pub(crate) native: bool,
    bufs: *mut u8,
    /// `count` 16-byte `io_uring_buf` entries; the tail is the `u16` at byte 14.
    ring: *mut io_uring::types::BufRingEntry,
    prod: Mutex<Producer>,
}

// SAFETY: the raw memory is owned by this value; the ring and the free list are only
// changed under `prod`, and each buffer is written either by the kernel (while in the
// ring or lent to a running recv) or read by the one `RingBuf` that leases it.
unsafe impl Send for RingInner {}
// SAFETY: as above.
unsafe impl Sync for RingInner {}

impl RingInner {
    pub(crate) fn new(group: u16, count: u16, size: usize, native: bool) -> Result<RingInner> {
        if count == 0 || !count.is_power_of_two() || count > 32768 {
            return Err(Error::InvalidArgument(
                "buffer ring count must be a power of two, 1..=32768",
            ));
        }
        if size == 0 || size > u32::MAX as usize {
            return Err(Error::InvalidArgument("buffer size must be 1..=u32::MAX"));
        }
        let total = (count as usize)
            .checked_mul(size)
            .ok_or(Error::InvalidArgument("buffer ring too large"))?;
        let bl = Layout::from_size_align(total, ALIGN)
            .map_err(|_| Error::InvalidArgument("buffer ring too large"))?;
        let rl = Layout::from_size_align(count as usize * 16, ALIGN)
            .map_err(|_| Error::InvalidArgument("buffer ring too large"))?;
        // SAFETY: both layouts have a non-zero size.
        let bufs = unsafe { std::alloc::alloc_zeroed(bl) };
        // SAFETY: as above.
        let ring = unsafe { std::alloc::alloc_zeroed(rl) }.cast::<io_uring::types::BufRingEntry>();
        if bufs.is_null() || ring.is_null() {
            // SAFETY: freeing what was allocated above with the same layout.
            unsafe {
                if !bufs.is_null() {
                    std::alloc::dealloc(bufs, bl)
                }
                if !ring.is_null() {
                    std::alloc::dealloc(ring.cast(), rl)
                }
            }
            return Err(Error::Sys {
                what: "buffer ring allocation",
                errno: libc::ENOMEM,
            });
        }
        Ok(RingInner {
            group,
            count,
            size,
            native,
            bufs,
            ring,
            prod: Mutex::new(Producer {
                tail: 0,
                free: Vec::with_capacity(count as usize),
                available: 0,
            }),
        })
    }

    /// Address of the ring entries (for registration).
    pub(crate) fn ring_addr(&self) -> u64 {
        self.ring as u64
    }

    pub(crate) fn count(&self) -> u16 {
        self.count
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Hands every buffer to the group (once, after registration).
    pub(crate) fn fill(&self) {
        for bid in 0..self.count {
            self.give_back(bid);
        }
        lock(&self.prod).available = self.count as usize;
    }

    /// Start of buffer `bid` (caller keeps `bid < count`).
    pub(crate) fn buf_ptr(&self, bid: u16) -> *mut u8 {
        // SAFETY: `bid < count`, so the offset stays inside the allocation.
        unsafe { self.bufs.add(bid as usize * self.size) }
    }

    /// Emulated: takes a free buffer.
    pub(crate) fn take(&self) -> Option<u16> {
        let mut p = lock(&self.prod);
        p.free.pop()
    }

    /// Returns buffer `bid` to the group.
    pub(crate) fn give_back(&self, bid: u16) {
        if bid >= self.count {
            return;
        }
        let mut p = lock(&self.prod);
        if !self.native {
            p.free.push(bid);
            return;
        }
        let slot = (p.tail & (self.count - 1)) as usize;
        // SAFETY: `slot < count`; the entry at the tail is not read by the kernel until
        // the tail moves past it, below, and only this producer (under `prod`) writes.
        unsafe {
            let e = &mut *self.ring.add(slot);
            e.set_addr(self.buf_ptr(bid) as u64);
            e.set_len(self.size as u32);
            e.set_bid(bid);
        }
        p.tail = p.tail.wrapping_add(1);
        // SAFETY: the tail is the u16 at byte 14 of the first entry, 2-aligned, and
        // lives as long as `self`; the kernel only reads it.
        let tail = unsafe { &*(self.ring.cast::<u8>().add(14).cast::<AtomicU16>()) };
        // Release: the entry written above is visible before the kernel sees the tail.
        tail.store(p.tail, Ordering::Release);
    }
}

impl Drop for RingInner {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with these layouts (validated there); nothing can
        // use them any more: the proactor unregisters, or closes its ring, first.
        unsafe {
            std::alloc::dealloc(
                self.bufs,
                Layout::from_size_align_unchecked(self.count as usize * self.size, ALIGN),
            );
            std::alloc::dealloc(
                self.ring.cast(),
                Layout::from_size_align_unchecked(self.count as usize * 16, ALIGN),
            );
        }
    }
}

/// A received buffer leased from a [`BufRing`]: the received bytes; it returns to
/// the group when dropped.
pub struct RingBuf {
    ring: Arc<RingInner>,
    bid: u16,
    len: usize,
}

impl RingBuf {
    pub(crate) fn new(ring: Arc<RingInner>, bid: u16, len: usize) -> RingBuf {
        let len = len.min(ring.size);
        let mut p = lock(&ring.prod);
        p.available = p.available.saturating_sub(1);
        drop(p);
        RingBuf { ring, bid, len }
    }
    /// The buffer's id in its group.
    pub fn id(&self) -> u16 {
        self.bid
    }
}

impl std::ops::Deref for RingBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the buffer is out of the ring (leased to this value only), so the
        // kernel does not write it; `len <= size`.
        unsafe { std::slice::from_raw_parts(self.ring.buf_ptr(self.bid), self.len) }
    }
}

impl std::fmt::Debug for RingBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RingBuf(id {}, {} bytes)", self.bid, self.len)
    }
}

impl Drop for RingBuf {
    fn drop(&mut self) {
        self.ring.give_back(self.bid);
        lock(&self.ring.prod).available += 1;
    }
}
