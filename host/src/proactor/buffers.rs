//! Registered (fixed) buffers: one allocation split into equal buffers, pinned with
//! the kernel on io_uring (`IORING_REGISTER_BUFFERS`) and used as plain memory by the
//! emulated path. A [`FixedBuf`] is an exclusive lease on one buffer: it moves into an
//! operation and comes back with the completion, so the kernel and the caller never
//! touch the same buffer at once.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

pub(crate) struct Registry {
    /// Backing memory. Never resized or moved after creation: the kernel holds its
    /// address from registration until the ring is closed.
    mem: Box<[UnsafeCell<u8>]>,
    buf_size: usize,
    leased: Box<[AtomicBool]>,
    /// Where `lease_any` starts looking (a hint: any value is correct).
    cursor: AtomicUsize,
}

// SAFETY: the memory is only reached through `FixedBuf`, and the `leased` flags make
// each buffer's lease exclusive; the registry itself holds no thread-affine state.
unsafe impl Sync for Registry {}
// SAFETY: as above; ownership of the allocation can move between threads.
unsafe impl Send for Registry {}

impl Registry {
    pub(crate) fn new(count: usize, buf_size: usize) -> Registry {
        let mem: Box<[UnsafeCell<u8>]> =
            (0..count * buf_size).map(|_| UnsafeCell::new(0)).collect();
        let leased = (0..count).map(|_| AtomicBool::new(false)).collect();
        Registry {
            mem,
            buf_size,
            leased,
            cursor: AtomicUsize::new(0),
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.leased.len()
    }

    pub(crate) fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// iovecs describing every buffer, for `IORING_REGISTER_BUFFERS`.
    pub(crate) fn iovecs(&self) -> Vec<libc::iovec> {
        (0..self.count())
            .map(|i| libc::iovec {
                iov_base: self.ptr(i).cast(),
                iov_len: self.buf_size,
            })
            .collect()
    }

    fn ptr(&self, index: usize) -> *mut u8 {
        UnsafeCell::raw_get(self.mem[index * self.buf_size..].as_ptr())
    }

    /// Leases any free buffer: looks at each at most once, starting after the last
    /// one leased this way.
    pub(crate) fn lease_any(self: &Arc<Self>) -> Option<FixedBuf> {
        let n = self.count();
        // Relaxed: the cursor only spreads the search; the lease flag synchronises.
        let start = self.cursor.load(Ordering::Relaxed);
        (0..n).find_map(|k| {
            let i = (start + k) % n;
            let b = self.lease(i)?;
            self.cursor.store(i + 1, Ordering::Relaxed);
            Some(b)
        })
    }

    /// Buffers not leased now (a snapshot).
    pub(crate) fn free_count(&self) -> usize {
        // Relaxed: a snapshot for the caller, ordering nothing.
        self.leased
            .iter()
            .filter(|l| !l.load(Ordering::Relaxed))
            .count()
    }

    /// Leases buffer `index` if it is free.
    pub(crate) fn lease(self: &Arc<Self>, index: usize) -> Option<FixedBuf> {
        let flag = self.leased.get(index)?;
        // Acquire pairs with the Release in `FixedBuf::drop`: the previous holder's
        // writes to the buffer are visible to the new holder.
        if flag
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            Some(FixedBuf {
                reg: self.clone(),
                index: index as u16,
            })
        } else {
            None
        }
    }
}

/// An exclusive lease on one registered buffer (see [`Proactor::register_buffers`](super::Proactor::register_buffers)).
///
/// Dereferences to the whole buffer. Moves into `read_fixed`/`write_fixed` operations and
/// comes back in the completion's [`Resources`](super::Resources); dropping it returns the
/// buffer to the pool.
pub struct FixedBuf {
    reg: Arc<Registry>,
    index: u16,
}

impl FixedBuf {
    /// Index of the buffer in the registration (the `buf_index` of `READ_FIXED`).
    pub fn index(&self) -> u16 {
        self.index
    }
    /// Size of the buffer in bytes.
    pub fn capacity(&self) -> usize {
        self.reg.buf_size
    }
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.reg.ptr(self.index as usize)
    }
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.reg.ptr(self.index as usize)
    }
}

impl std::ops::Deref for FixedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: this lease is the only one for buffer `index` (the `leased` flag), the
        // range lies inside `mem`, and while an operation uses the buffer the lease is
        // moved into that operation, so no `&[u8]` exists during kernel access.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.reg.buf_size) }
    }
}

impl std::ops::DerefMut for FixedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), self.reg.buf_size) }
    }
}

impl Drop for FixedBuf {
    fn drop(&mut self) {
        // Release: our writes happen-before the next lease's Acquire.
        self.reg.leased[self.index as usize].store(false, Ordering::Release);
    }
}

impl std::fmt::Debug for FixedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedBuf")
            .field("index", &self.index)
            .field("capacity", &self.capacity())
            .finish()
    }
}
