//! The lane's operations (NOP, writes, reads through the fixed region), §6 waiting on completion slots and §7
//! prints.
#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::sync::atomic::Ordering::*;

use io_uring::{opcode, types};

use super::doorbell::{take_pending, Bell};
use super::format::LineBuf;
use super::idle;
use super::lane::{CompletionMode, FileRef, Lane, LaneError, Poll};
use super::shared::*;
use crate::ring::layout::Sqe;
use crate::{local_off, shared_off};

impl Lane<'_> {
    // ---- operations ---------------------------------------------------------------------------------

    /// A NOP.
    pub fn nop(&mut self, c: CompletionMode, budget: u32) -> Result<u32, LaneError> {
        self.submit(Sqe::from_entry(&opcode::Nop::new().build()), c, budget)
    }

    /// Builds a write SQE from arena bytes `[arena_off, arena_off + len)`: WRITE_FIXED when they lie in the
    /// staging or fixed region, plain WRITE otherwise. `file_off` −1 means "at the file position".
    pub fn write_sqe(&self, file: FileRef, arena_off: u32, len: u32, file_off: i64) -> Sqe {
        let addr = self.view.host_addr(arena_off) as *const u8;
        let buf = self.buf_index(arena_off, len);
        let e = match (file, buf) {
            (FileRef::Raw(fd), Some(b)) => opcode::WriteFixed::new(types::Fd(fd), addr, len, b)
                .offset(file_off as u64)
                .build(),
            (FileRef::Fixed(i), Some(b)) => opcode::WriteFixed::new(types::Fixed(i), addr, len, b)
                .offset(file_off as u64)
                .build(),
            (FileRef::Raw(fd), None) => opcode::Write::new(types::Fd(fd), addr, len)
                .offset(file_off as u64)
                .build(),
            (FileRef::Fixed(i), None) => opcode::Write::new(types::Fixed(i), addr, len)
                .offset(file_off as u64)
                .build(),
        };
        Sqe::from_entry(&e)
    }

    /// Builds a READ_FIXED SQE into the fixed region at `fixed_off`.
    pub fn read_fixed_sqe(&self, file: FileRef, fixed_off: u32, len: u32, file_off: u64) -> Sqe {
        let l = self.view.layout();
        let addr = self.view.host_addr(l.fixed + fixed_off) as *mut u8;
        let idx = l.fixed_buf_index as u16;
        let e = match file {
            FileRef::Raw(fd) => opcode::ReadFixed::new(types::Fd(fd), addr, len, idx),
            FileRef::Fixed(i) => opcode::ReadFixed::new(types::Fixed(i), addr, len, idx),
        }
        .offset(file_off)
        .build();
        Sqe::from_entry(&e)
    }

    fn buf_index(&self, off: u32, len: u32) -> Option<u16> {
        let l = self.view.layout();
        let end = off as u64 + len as u64;
        let staging_end = l.staging as u64 + (l.lanes * l.staging_lines * l.line_bytes) as u64;
        if off >= l.staging && end <= staging_end {
            Some(l.staging_buf_index as u16)
        } else if l.fixed_size > 0 && off >= l.fixed && end <= l.fixed as u64 + l.fixed_size as u64
        {
            Some(l.fixed_buf_index as u16)
        } else {
            None
        }
    }

    /// Writes arena bytes to a file.
    pub fn write(
        &mut self,
        file: FileRef,
        arena_off: u32,
        len: u32,
        file_off: i64,
        c: CompletionMode,
        budget: u32,
    ) -> Result<u32, LaneError> {
        let sqe = self.write_sqe(file, arena_off, len, file_off);
        self.submit(sqe, c, budget)
    }

    /// Reads a file range into the fixed region at `fixed_off` (waited op on slot `k`).
    pub fn read_fixed(
        &mut self,
        file: FileRef,
        fixed_off: u32,
        len: u32,
        file_off: u64,
        k: u32,
        budget: u32,
    ) -> Result<u32, LaneError> {
        let sqe = self.read_fixed_sqe(file, fixed_off, len, file_off);
        self.submit(sqe, CompletionMode::Slot(k), budget)
    }

    /// Fire-and-forget operations of this lane still in flight.
    pub fn in_flight(&self) -> u32 {
        let l = self.view.layout();
        if self.id >= l.lanes {
            return 0;
        }
        // Acquire: pairs with the reapers' release decrements.
        self.bus()
            .lane_word(self.id, l.staging_lines)
            .load_waited(Acquire)
    }

    fn wait_until(
        &mut self,
        budget: u32,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<(), LaneError> {
        let mut i = 0;
        loop {
            // Before the checks: a completion reaped after them changes the epoch, so the pause does not sleep
            // through it.
            let e = idle::epoch();
            if done(self) {
                return Ok(());
            }
            self.reap_notify();
            if done(self) {
                return Ok(());
            }
            if i >= budget {
                return Err(LaneError::TimedOut);
            }
            idle::pause(i, e);
            i += 1;
        }
    }

    // ---- §6 waiting ---------------------------------------------------------------------------------

    /// One reap pass, telling the device's idle wait ([`idle::notify`]) when it moved completions.
    fn reap_notify(&mut self) {
        let n = self.reap(16);
        if n > 0 {
            idle::notify(n);
        }
    }

    /// One reap pass, then checks slot `k`. A `Ready` slot is freed.
    pub fn poll(&mut self, k: u32) -> Result<Poll, LaneError> {
        self.global_slot(k)?;
        self.reap_notify();
        self.check(k)
    }

    /// Checks slot `k` without a reap pass: a subgroup's lane after its elected lane's reap pass
    /// ([`super::Subgroup::reap`], §6 "one reap pass of the subgroup"). A `Ready` slot is freed.
    pub fn check(&mut self, k: u32) -> Result<Poll, LaneError> {
        let g = self.global_slot(k)?;
        let bus = self.bus();
        let (state, result, _, _) = bus.slot(g);
        // Acquire: pairs with the reaper's release of DONE (result and flags are written).
        let word = state.load_waited(Acquire);
        // A state no value names (device code rewrote the word) reads as still in flight, like PENDING.
        match RingSlotState::try_from(slot_state(word)) {
            Ok(RingSlotState::Done) => {
                let r = result.load(Relaxed);
                state.store(slot_word(slot_generation(word), RING_SLOT_FREE), Relaxed);
                Ok(Poll::Ready(r))
            }
            Ok(RingSlotState::Free) => Err(LaneError::NotPending(k)),
            Ok(RingSlotState::Pending | RingSlotState::Reaping) | Err(_) => Ok(Poll::WouldBlock),
        }
    }

    /// Polls slot `k` up to `budget` times, pausing between polls with the device's idle wait
    /// ([`idle::pause`]: [`super::backoff`] unless the device installed one).
    pub fn wait(&mut self, k: u32, budget: u32) -> Result<i32, LaneError> {
        for i in 0..budget.max(1) {
            let e = idle::epoch();
            if let Poll::Ready(r) = self.poll(k)? {
                return Ok(r);
            }
            idle::pause(i, e);
        }
        Err(LaneError::TimedOut)
    }

    /// Whether slot `k` has an operation in flight.
    pub fn slot_pending(&self, k: u32) -> Result<bool, LaneError> {
        let g = self.global_slot(k)?;
        let st = RingSlotState::try_from(slot_state(self.bus().slot(g).0.load(Acquire)));
        Ok(matches!(
            st,
            Ok(RingSlotState::Pending | RingSlotState::Reaping)
        ))
    }

    // ---- §7 prints -----------------------------------------------------------------------------------

    /// The print target (flags, fd) from the shared control block, read once per lane: the host sets it
    /// before a run (host-written, PROTOCOL.md §7).
    fn print_target(&mut self) -> (u32, i32) {
        if let Some(t) = self.print_target {
            return t;
        }
        let bus = self.bus();
        // Acquire: pairs with the host's release store of the flags after the target and the offset.
        let flags = bus.mirror(shared_off!(print_flags)).load(Acquire);
        let fd = bus.mirror_i32(shared_off!(print_fd)).load(Relaxed);
        if flags != 0 {
            self.print_target = Some((flags, fd));
        }
        (flags, fd)
    }

    /// Formats one line with `f` and writes it with one write (a `\n` is appended if missing). Returns
    /// `TimedOut` (the line is not printed) if it could not be submitted within `budget`, and `LineTooLong`
    /// (nothing printed) if the line with its newline is longer than the ring's `line_bytes`.
    pub fn print_with(
        &mut self,
        budget: u32,
        f: impl FnOnce(&mut LineBuf),
    ) -> Result<(), LaneError> {
        if self.id < self.view.layout().lanes {
            if let Some(t) = self.log_target() {
                return self.print_log_with(t, budget, f);
            }
        }
        let (j, len, (pflags, fd)) = self.stage_line(budget, f)?;
        let line_off = self.view.line_off(self.id, j);
        let file = if pflags & PRINT_FIXED_FILE != 0 {
            FileRef::Fixed(fd as u32)
        } else {
            FileRef::Raw(fd)
        };
        let r = self.reserve(budget)?;
        // Reservation held: straight-line code until commit.
        if pflags & PRINT_OFFSET_MODE != 0 {
            // Relaxed: the offset only divides the file; the SQE carrying it is published by `sq_pub`.
            let off = self
                .bus()
                .local64(local_off!(print_offset))
                .fetch_add(len as u64, Relaxed);
            let sqe = self.write_sqe(file, line_off, len, off as i64);
            self.commit_line(r, sqe, CompletionMode::FireAndForget, Some(j))?;
        } else {
            let sqe = self.write_sqe(file, line_off, len, -1);
            self.commit(r, sqe, CompletionMode::Slot(0))?;
            self.stream_pending = Some(len);
        }
        self.next_line = self.next_line.wrapping_add(1);
        self.stats.lines += 1;
        self.bus()
            .local(local_off!(lines_printed))
            .fetch_add(1, Relaxed);
        Ok(())
    }

    /// The first half of a print (§7): the target, the staging line made reusable (no lane-to-lane wait: only
    /// the kernel and drains are waited on), the line formatted and written into it. Returns (line, length,
    /// (print flags, print fd)).
    pub(super) fn stage_line(
        &mut self,
        budget: u32,
        f: impl FnOnce(&mut LineBuf),
    ) -> Result<(u32, u32, (u32, i32)), LaneError> {
        let l = *self.view.layout();
        let target = self.print_target();
        if target.0 == 0 || self.id >= l.lanes {
            return Err(LaneError::NoPrintTarget);
        }
        let j = self.next_line % l.staging_lines;
        if target.0 & PRINT_OFFSET_MODE != 0 {
            let id = self.id;
            // Acquire: pairs with the reaper's release once the kernel is done reading the line.
            self.wait_until(budget, |s| {
                s.bus().lane_word(id, j).load_waited(Acquire) == 0
            })?;
        } else {
            self.finish_stream_print(budget)?;
        }
        self.format_line(f)?;
        let line_off = self.view.line_off(self.id, j);
        self.bus().write_staging(line_off, self.line.as_bytes());
        Ok((j, self.line.as_bytes().len() as u32, target))
    }

    /// Formats a line into the lane's line buffer with `f` (a `\n` is appended if missing). `LineTooLong` if it
    /// does not fit the ring's lines: nothing of it may be printed.
    pub(super) fn format_line(&mut self, f: impl FnOnce(&mut LineBuf)) -> Result<u32, LaneError> {
        self.line.clear();
        f(&mut self.line);
        self.line.finish();
        if self.line.truncated() {
            return Err(LaneError::LineTooLong {
                len: u32::try_from(self.line.wanted_len()).unwrap_or(u32::MAX),
                max: u32::try_from(self.line.capacity()).unwrap_or(u32::MAX),
            });
        }
        Ok(self.line.as_bytes().len() as u32)
    }

    fn finish_stream_print(&mut self, budget: u32) -> Result<(), LaneError> {
        if let Some(len) = self.stream_pending {
            let res = self.wait(0, budget)?;
            self.stream_pending = None;
            if res != len as i32 {
                // A failed or short line write: counted where host and device read it (mirrored by the CQ-bell
                // holder).
                let bus = self.bus();
                bus.local(local_off!(print_errors)).fetch_add(1, Relaxed);
                if res < 0 {
                    bus.local_i32(local_off!(ff_last_error)).store(res, Relaxed);
                }
            }
        }
        Ok(())
    }

    /// Waits until every fire-and-forget operation of this lane has completed and its last stream print is
    /// done (§7 flush). The host lane (after a run) waits until every credit is back, completing any doorbell
    /// duty left pending.
    pub fn flush(&mut self, budget: u32) -> Result<(), LaneError> {
        let l = *self.view.layout();
        if self.id < l.lanes {
            self.finish_stream_print(budget)?;
            // Print-log lines (§7): wait until the kernel has written this lane's last line; the reap in each
            // round takes any handed-on duty.
            self.take_log_duty(budget);
            self.wait_until(budget, |s| s.log_flushed())?;
            self.wait_until(budget, |s| s.in_flight() == 0)
        } else {
            self.wait_until(budget, |s| {
                let bus = s.bus();
                take_pending(&bus, Bell::Sq);
                bus.local(local_off!(cq_credits)).load_waited(Acquire) == l.credit_pool
            })
        }
    }
}
