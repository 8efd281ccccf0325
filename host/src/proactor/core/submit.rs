//! Submission, cancellation and registration entry points of the core.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{take_wakers, Chain, Driver, OpSource, Shared, NONE};
use crate::proactor::buffers::Registry;
use crate::proactor::caps::Capability;
use crate::proactor::error::{Error, QueueKind, Result};
use crate::proactor::op::{CancelStatus, OpId};
use crate::proactor::operation::{Operation, SimpleKind, SimpleOp};
use crate::proactor::ops::Admit;
use crate::proactor::sync::lock;
use crate::proactor::sys;

impl<D: Driver> Shared<D> {
    /// Submits `ops` (all or nothing). `linked` makes them one sequence. Each id is
    /// passed to `on_id` in submission order.
    pub(crate) fn submit_many<S: OpSource>(
        &self,
        ops: &mut S,
        mut on_id: impl FnMut(OpId),
        linked: bool,
        future: bool,
    ) -> Result<()> {
        let n = ops.ops().len();
        if n == 0 {
            return Ok(());
        }
        {
            let mut core = lock(&self.core);
            // One pass: validate, and note whether every op is started by the driver
            // (a notification wait may run as a user-space subscription instead).
            let mut batchable = true;
            let mut any_timed = false;
            {
                let env = core.env(self.caps);
                for op in ops.ops() {
                    // One dispatch on the kind per operation.
                    let Admit { multishot, timed } = op.kind.admit(&env)?;
                    if multishot && (future || (linked && n > 1)) {
                        return Err(Error::InvalidArgument(
                            "a multishot operation is delivered raw, alone: not as a future or in a linked sequence",
                        ));
                    }
                    if timed && linked && n > 1 {
                        return Err(Error::InvalidArgument(
                            "an operation with a timeout cannot be part of a linked sequence",
                        ));
                    }
                    // Started one by one: a native timeout is a second entry.
                    batchable &= !timed;
                    any_timed |= timed;
                    batchable &= !op.kind.soft(self.caps);
                }
            }
            if core.free_slots() < n {
                return Err(Error::SubmissionQueueFull {
                    queue: QueueKind::OperationSlots,
                    capacity: self.max_in_flight,
                });
            }
            let kernel_chain = linked
                && n > 1
                && self.caps.is_native(Capability::LinkedOperations)
                // A futex wait that finds the epoch already moved fails with EAGAIN, which
                // would break a kernel link although it is a success here.
                && ops.ops().iter().all(|o| o.kind.kernel_linkable(self.caps));
            self.driver
                .reserve(self, &core, if linked && !kernel_chain { 1 } else { n })?;
            let core = &mut *core;
            let chain = if !linked || n == 1 {
                Chain::None
            } else if kernel_chain {
                Chain::Kernel
            } else {
                Chain::Emulated
            };
            let batched = chain == Chain::None
                && batchable
                && self.driver.start_batch(self, core, ops, &mut on_id, future);
            if !batched {
                let mut prev = NONE;
                let mut head = NONE;
                ops.take_each(|op| {
                    let idx = core.alloc(op, future);
                    on_id(OpId(core.slots[idx as usize].key(idx)));
                    if chain == Chain::None {
                        core.start_as(self, idx, any_timed);
                        return;
                    }
                    let s = &mut core.slots[idx as usize];
                    s.chain = chain;
                    s.prev = prev;
                    if prev == NONE {
                        head = idx;
                    } else {
                        core.slots[prev as usize].next = idx;
                    }
                    prev = idx;
                });
                match chain {
                    Chain::None => {}
                    Chain::Emulated => core.start(self, head),
                    Chain::Kernel => {
                        let mut i = head;
                        while i != NONE {
                            let next = core.slots[i as usize].next;
                            core.start(self, i);
                            i = next;
                        }
                    }
                }
            }
        }
        if !self.is_poll_thread() {
            self.nudge();
        }
        Ok(())
    }

    /// Submits resource-free operations (all or nothing): into the driver's own table
    /// when it has one and no poll runs, into ordinary slots otherwise. `ids` is empty
    /// (ids not wanted) or at least `ops.len()` long.
    pub(crate) fn submit_simple(&self, ops: &[SimpleOp], ids: &mut [OpId]) -> Result<()> {
        let n = ops.len();
        if !ids.is_empty() && ids.len() < n {
            return Err(Error::InvalidArgument(
                "submit_simple: ids must be empty or at least as long as ops",
            ));
        }
        if n == 0 {
            return Ok(());
        }
        let scratch = if D::SIMPLE_TABLE {
            match self.poll.try_lock() {
                Ok(g) => Some(g),
                // A callback panicked inside an earlier poll; the table is consistent.
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        } else {
            None
        };
        {
            let mut core = lock(&self.core);
            {
                let env = core.env(self.caps);
                for op in ops {
                    if let SimpleKind::Fsync { fd, .. } = op.kind {
                        env.check(fd)?;
                    }
                }
            }
            match scratch {
                Some(mut scratch) => {
                    self.driver
                        .submit_simple(self, &core, &mut scratch.drv, ops, ids)?
                }
                None => {
                    if core.free_slots() < n {
                        return Err(Error::SubmissionQueueFull {
                            queue: QueueKind::OperationSlots,
                            capacity: self.max_in_flight,
                        });
                    }
                    self.driver.reserve(self, &core, n)?;
                    for (i, op) in ops.iter().enumerate() {
                        let idx = core.alloc(Operation::from(*op), false);
                        if let Some(id) = ids.get_mut(i) {
                            *id = OpId(core.slots[idx as usize].key(idx));
                        }
                        core.start(self, idx);
                    }
                }
            }
        }
        if !self.is_poll_thread() {
            self.nudge();
        }
        Ok(())
    }

    pub(crate) fn cancel(&self, id: OpId) -> CancelStatus {
        if let Some(st) = self.driver.cancel_simple(self, id) {
            return st;
        }
        let (st, wakers) = {
            let mut core = lock(&self.core);
            let st = core.cancel(self, id);
            let w = take_wakers(&mut core);
            if !core.done.is_empty() {
                self.hint.store(true, Ordering::Relaxed);
            }
            (st, w)
        };
        for w in wakers {
            w.wake();
        }
        if st == CancelStatus::Requested {
            self.nudge();
        }
        st
    }

    /// Operations submitted and not yet delivered (futures count until taken).
    pub(crate) fn in_flight(&self) -> usize {
        lock(&self.core).live + self.driver.simple_live()
    }

    /// Registers `reg` with the driver and keeps it.
    pub(crate) fn register_buffers(&self, reg: Arc<Registry>) -> Result<()> {
        if self.buffers.get().is_some() {
            return Err(Error::InvalidArgument("buffers are already registered"));
        }
        self.driver.register_buffers(self, &reg)?;
        self.buffers
            .set(reg)
            .map_err(|_| Error::InvalidArgument("buffers are already registered"))
    }

    pub(crate) fn register_files(&self, fds: &[BorrowedFd<'_>]) -> Result<()> {
        let mut core = lock(&self.core);
        let raw: Vec<i32> = fds.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
        if !self.driver.register_files(self, &mut core, &raw)? {
            let mut dups = Vec::with_capacity(fds.len());
            for f in fds {
                dups.push(sys::dup(f.as_fd()).map_err(|e| Error::sys("dup", e))?);
            }
            core.files = dups;
        }
        Ok(())
    }
}
