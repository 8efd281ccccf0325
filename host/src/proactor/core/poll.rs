//! The poll loop and delivery of completions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{thread_id, Core, Driver, PollScratch, Shared};
use crate::proactor::deliver::Sink;
use crate::proactor::error::{Error, Result};
use crate::proactor::op::{Completion, Resources};
use crate::proactor::sync::lock;
use crate::proactor::sys;

impl<D: Driver> Shared<D> {
    /// The poll loop; see `Proactor::poll` and `Proactor::poll_lent`.
    pub(crate) fn poll(&self, timeout: Option<Duration>, mut on: impl Sink) -> Result<usize> {
        let me = thread_id();
        let owner = self.owner.load(Ordering::Acquire);
        if owner != 0 && owner != me {
            return Err(Error::NotPollOwner);
        }
        let mut scratch = match self.poll.try_lock() {
            Ok(g) => g,
            // A poll from inside this thread's own poll (a completion callback).
            Err(std::sync::TryLockError::WouldBlock)
                if self.polling.load(Ordering::Relaxed) == me =>
            {
                return Err(Error::PollBusy)
            }
            // Held for a moment by `submit_simple` on another thread, or by another
            // thread's poll that got there first (it sets the owner at once): retry
            // until the mutex is free or the owner turns out to be someone else.
            Err(std::sync::TryLockError::WouldBlock) => loop {
                std::thread::yield_now();
                let owner = self.owner.load(Ordering::Acquire);
                if owner != 0 && owner != me {
                    return Err(Error::NotPollOwner);
                }
                match self.poll.try_lock() {
                    Ok(g) => break g,
                    Err(std::sync::TryLockError::WouldBlock) => continue,
                    Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                }
            },
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        };
        // Cleared when this guard drops (before the poll mutex is released).
        let _polling = PollingMark::set(&self.polling, me);
        // The owner is set once; after that a load decides (no read-modify-write per poll).
        if owner != me {
            match self
                .owner
                .compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {}
                Err(o) if o == me => {}
                Err(_) => return Err(Error::NotPollOwner),
            }
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let scratch = &mut *scratch;
        loop {
            // Phase 1: work only the poll thread may do, and completions produced
            // elsewhere (cancellations, signals).
            // (Cleared only when set: a hint raised after this load is seen by the
            // check before blocking, below.)
            if self.hint.load(Ordering::Relaxed) {
                self.hint.store(false, Ordering::SeqCst);
            }
            let next_timeout = {
                let mut core = lock(&self.core);
                // Emulated operation timeouts: cancel what is due, note the next one.
                let next = if core.timed > 0 {
                    core.expire_timeouts(self)
                } else {
                    None
                };
                self.driver.prepare(self, &mut core)?;
                take_parked(scratch, &mut core);
                next
            };
            let have = !scratch.done.is_empty() || !scratch.wakers.is_empty();
            let mut wait = if have {
                Some(Duration::ZERO)
            } else {
                deadline.map(|d| d.saturating_duration_since(Instant::now()))
            };
            if let Some(t) = next_timeout {
                let until = Duration::from_nanos(t.saturating_sub(sys::monotonic_ns()));
                wait = Some(wait.map_or(until, |w| w.min(until)));
            }
            // Phase 2: block in the kernel. `sleeping` is published before we look at
            // `hint` (and before the kernel reads the SQ tail), see `nudge`.
            self.sleeping.store(true, Ordering::SeqCst);
            let wait = if self.hint.load(Ordering::SeqCst) || self.user_wake.load(Ordering::SeqCst)
            {
                Some(Duration::ZERO)
            } else {
                wait
            };
            let r = self.driver.wait(wait, &mut scratch.drv);
            // A plain store: a submitter that still sees `true` only sends a spare wake.
            self.sleeping.store(false, Ordering::Release);
            r?;
            // Phase 3: reap. What the driver can deliver without the core lock (the
            // simple-operation path) goes to `on` right here; the rest is processed
            // under the core lock and delivered in phase 4.
            let (direct, need_core) = self.driver.reap_unlocked(self, &mut scratch.drv, &mut on);
            if need_core {
                let mut core = lock(&self.core);
                self.driver.reap(self, &mut core, &mut scratch.drv);
                take_parked(scratch, &mut core);
            }
            let woken = self.user_wake.load(Ordering::Relaxed)
                && self.user_wake.swap(false, Ordering::SeqCst);
            // Phase 4: deliver, with no lock held.
            let n = direct + scratch.done.len() + scratch.wakers.len();
            deliver(scratch, &mut on);
            if n > 0 || woken {
                return Ok(n);
            }
            if let Some(d) = deadline {
                if Instant::now() >= d {
                    return Ok(0);
                }
            }
        }
    }
}

/// Moves the completions and wakers parked in the core to the poll thread's lists,
/// after what is already there (left over by a callback that panicked).
fn take_parked<D: Driver>(scratch: &mut PollScratch<D>, core: &mut Core<D>) {
    if scratch.done.is_empty() {
        // Swap rather than copy; both keep their capacity.
        std::mem::swap(&mut scratch.done, &mut core.done);
    } else {
        scratch.done.append(&mut core.done);
    }
    if scratch.done_res.is_empty() {
        std::mem::swap(&mut scratch.done_res, &mut core.done_res);
    } else {
        scratch.done_res.append(&mut core.done_res);
    }
    scratch.wakers.append(&mut core.wakers);
}

/// Phase 4 of `poll`: delivers the parked completions, then wakes the futures. If a
/// callback (or a waker) panics, what was not handed over yet stays parked for the
/// next poll instead of being dropped ([`Delivered`]).
fn deliver<D: Driver>(scratch: &mut PollScratch<D>, on: &mut impl Sink) {
    let mut g = Delivered {
        scratch,
        done: 0,
        res: 0,
        wakers: 0,
    };
    while let Some(&d) = g.scratch.done.get(g.done) {
        g.done += 1;
        if d.owns {
            let resources = std::mem::replace(&mut g.scratch.done_res[g.res], Resources::None);
            g.res += 1;
            on.owning(Completion {
                id: d.id,
                user_data: d.user_data,
                outcome: d.outcome,
                resources,
                more: d.more,
            });
        } else if d.more {
            on.owning(Completion {
                id: d.id,
                user_data: d.user_data,
                outcome: d.outcome,
                resources: Resources::None,
                more: true,
            });
        } else {
            on.lean(d.id, d.user_data, d.outcome);
        }
    }
    while g.wakers < g.scratch.wakers.len() {
        g.wakers += 1;
        g.scratch.wakers[g.wakers - 1].wake_by_ref();
    }
}

/// What `deliver` has handed over; dropping it removes exactly that from the parked
/// lists (everything, unless a callback panicked).
struct Delivered<'a, D: Driver> {
    scratch: &'a mut PollScratch<D>,
    done: usize,
    res: usize,
    wakers: usize,
}

impl<D: Driver> Drop for Delivered<'_, D> {
    fn drop(&mut self) {
        let s = &mut *self.scratch;
        if self.done == s.done.len() && self.wakers == s.wakers.len() {
            s.done.clear();
            s.done_res.clear();
            s.wakers.clear();
        } else {
            s.done.drain(..self.done);
            s.done_res.drain(..self.res);
            s.wakers.drain(..self.wakers);
        }
    }
}

/// Marks the thread inside `poll` (`Shared::polling`) for as long as it lives.
struct PollingMark<'a>(&'a AtomicU64);

impl<'a> PollingMark<'a> {
    fn set(cell: &'a AtomicU64, me: u64) -> PollingMark<'a> {
        cell.store(me, Ordering::Relaxed);
        PollingMark(cell)
    }
}

impl Drop for PollingMark<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Relaxed);
    }
}
