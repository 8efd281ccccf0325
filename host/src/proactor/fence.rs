//! Device fences, the counted fallback ([`Capability::DeviceFence`](super::Capability::DeviceFence)
//! is emulated): a timeline [`Semaphore`] value stands for a fence.
//!
//! - **Import** ([`Proactor::import_fence`]): "the semaphore reaches `n` when this
//!   descriptor becomes readable" — a sync_file signals by becoming readable, and so
//!   does an eventfd (which stands in for one in the tests). The proactor owns the
//!   descriptor, watches it with the kernel (`POLL_ADD` / epoll) and closes it after;
//!   an error fails the semaphore with its errno, and a proactor dropped first fails
//!   it with `ECANCELED`, so no waiter hangs.
//! - **Export** ([`Semaphore::export_fd`]): a pollable eventfd that becomes readable
//!   once the semaphore reaches `n` (or fails), made readable by the signalling thread.
//!
//! A device backend joins in by signalling a semaphore when its work completes (or by
//! handing its sync_file to `import_fence` where the driver exports one).
//!
//! Threading: `import_fence` is a submission, callable from any thread (it touches no
//! poll-thread state); the semaphore is signalled on the poll thread.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::Result;
use super::op::Outcome;
use super::operation::Operation;
use super::ops::{poll_source::PollSource, OpKind};
use super::semaphore::Semaphore;
use super::service::Route;
use super::Proactor;

/// One imported fence: settles its semaphore exactly once.
pub(crate) struct FenceImport {
    sem: Semaphore,
    value: u64,
    settled: AtomicBool,
}

impl FenceImport {
    pub(crate) fn settle(&self, outcome: Outcome) {
        if self.settled.swap(true, Ordering::SeqCst) {
            return;
        }
        match outcome {
            // Already at or past the value: nothing to raise.
            Outcome::Ok(_) => {
                let _ = self.sem.signal(self.value);
            }
            Outcome::Err(e) => {
                self.sem.fail(e.errno);
            }
            Outcome::Cancelled => {
                self.sem.fail(libc::ECANCELED);
            }
        }
    }
}

impl Drop for FenceImport {
    fn drop(&mut self) {
        // Never delivered (the proactor was torn down first): fail, do not hang.
        self.settle(Outcome::Cancelled);
    }
}

impl Proactor {
    /// Raises `sem` to `value` once `fence` becomes readable (a sync_file, or any
    /// pollable descriptor), on the poll thread; fails `sem` with the errno if
    /// watching fails. Takes ownership of `fence` (closed when done, or at once if
    /// the submission is refused). Thread-safe. See the [`fence` docs](self).
    pub fn import_fence(&self, fence: OwnedFd, sem: &Semaphore, value: u64) -> Result<()> {
        let route = Route::Fence(std::sync::Arc::new(FenceImport {
            sem: sem.clone(),
            value,
            settled: AtomicBool::new(false),
        }));
        let mut op = PollSource::new(fence.as_raw_fd(), libc::POLLIN as u32, false, route);
        op.owned = Some(fence);
        self.submit(Operation::internal(OpKind::PollSource(op)))
            .map(|_| ())
            .map_err(|e| e.error)
    }

    /// A pollable descriptor that becomes readable once `sem` reaches `value` (the
    /// fence export; same as [`Semaphore::export_fd`]).
    pub fn export_fence(&self, sem: &Semaphore, value: u64) -> Result<OwnedFd> {
        sem.export_fd(value)
    }
}
