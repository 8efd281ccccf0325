//! The poll thread's table of simple-operation slots (io_uring backend).
//!
//! A [`SimpleOp`](super::SimpleOp) owns nothing, so its slot only has to remember the
//! caller's `user_data`, its kind (to map an error result) and, for a timer, the
//! timespec the kernel reads when the entry is submitted. These slots are a table of
//! their own: the free list and the timespecs live in `PollScratch`, guarded by the
//! poll mutex instead of the core mutex, and one [`SimpleCell`] per slot lives in
//! `Shared`. `poll` holds the poll mutex for its whole call, so it reaps these
//! completions and hands them to the callback straight from the completion ring, with
//! no lock taken, no intermediate list and no value built or dropped. `submit_simple`
//! uses this table when it can take the poll mutex (any thread, while no `poll` runs);
//! otherwise (inside a callback, or while `poll` blocks on another thread) the
//! operations take ordinary slots, with the same semantics.
//!
//! A cell's state word (`gen << 4 | kind | CANCELLING | RUNNING`) is atomic, so
//! `cancel` answers `Requested`/`NotFound` exactly from any thread without the poll
//! mutex: only the poll-mutex holder moves a slot between free and running, and
//! `cancel` only adds `CANCELLING` to a running slot of the right generation (compare
//! and swap). A slot's key carries bit 62 ([`SIMPLE`]), its 28-bit generation and kind.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use io_uring::types::Timespec;

use super::op::{OpCode, OpError, Outcome};

/// Bit 62 of a key: a simple-operation slot (ordinary slot keys keep it clear; bit 63
/// marks the proactor's own requests).
pub(crate) const SIMPLE: u64 = 1 << 62;
/// Generations of ordinary slots are 30 bits, so their keys never reach bits 62 and 63.
pub(crate) const SLOT_GEN_MASK: u32 = 0x3fff_ffff;
/// Generations of simple-operation slots: 28 bits (the state word packs 4 flag bits).
pub(crate) const GEN_MASK: u32 = 0x0fff_ffff;
pub(crate) const RUNNING: u32 = 1;
pub(crate) const CANCELLING: u32 = 2;
/// The kind, in bits 2..4 of the state word.
pub(crate) const NOP: u32 = 0;
pub(crate) const TIMER: u32 = 1 << 2;
pub(crate) const FSYNC: u32 = 2 << 2;
const KIND: u32 = 3 << 2;

/// One simple-operation slot as every thread sees it (in `Shared`).
pub(crate) struct SimpleCell {
    /// `gen << 4 | kind | CANCELLING | RUNNING`. Only the poll-mutex holder moves a
    /// slot between free and running; `cancel` only adds `CANCELLING`.
    pub(crate) state: AtomicU32,
    /// The caller's value. Written and read only by the poll-mutex holder (atomic only
    /// so that the cell can be shared; Relaxed accesses are plain moves).
    pub(crate) user_data: AtomicU64,
}

/// The state word of a running slot.
#[inline(always)]
pub(crate) fn running(gen: u32, kind: u32) -> u32 {
    gen << 4 | kind | RUNNING
}

/// The generation in a state word.
#[inline(always)]
pub(crate) fn gen_of(state: u32) -> u32 {
    state >> 4
}

/// What only the poll-mutex holder touches: where the next free slot is looked for,
/// how many are in use, and the timespecs the kernel reads when a timer's entry is
/// submitted (it copies them then).
///
/// Slots are taken in ring order: the next one after the last taken that is not
/// running. Freeing a slot is then nothing more than the state store its completion
/// does anyway (no free list to maintain per operation). A slot still running (a long
/// timer) is stepped over; with `k` of `n` slots held that costs `k / (n - k)` extra
/// looks per operation on average, which only grows when the table is nearly full.
pub(crate) struct SimpleTable {
    pub(crate) ts: Box<[Timespec]>,
    /// Operations in flight at most (`Options::max_in_flight`).
    cap: usize,
    /// Slots in use.
    live: usize,
    next: usize,
    mask: usize,
}

impl SimpleTable {
    /// A table for `cap` operations; `slots` (a power of two, at least `cap`) cells.
    pub(crate) fn new(cap: u32, slots: u32) -> SimpleTable {
        debug_assert!(slots.is_power_of_two() || slots == 0);
        debug_assert!(slots >= cap);
        SimpleTable {
            ts: (0..slots).map(|_| Timespec::new()).collect(),
            cap: cap as usize,
            live: 0,
            next: 0,
            mask: (slots as usize).wrapping_sub(1),
        }
    }

    /// Free slots.
    #[inline(always)]
    pub(crate) fn free_len(&self) -> usize {
        self.cap - self.live
    }

    /// Slots in use (operations submitted and not yet delivered).
    #[inline(always)]
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// A cursor for taking `n` slots (the caller checked `free_len`); they count as
    /// in use from now on. Hand the cursor back with `taken`.
    #[inline(always)]
    pub(crate) fn taker(&mut self, n: usize) -> Taker {
        self.live += n;
        Taker {
            next: self.next,
            mask: self.mask,
        }
    }

    /// Where the next search starts.
    #[inline(always)]
    pub(crate) fn taken(&mut self, t: Taker) {
        self.next = t.next;
    }

    /// Counts `n` slots free again (their state words were cleared by the reaper).
    /// When none is left in use the search restarts at the first slot, so that a
    /// steady stream of short operations keeps reusing the same, cache-warm cells.
    #[inline(always)]
    pub(crate) fn released(&mut self, n: usize) {
        self.live -= n;
        if self.live == 0 {
            self.next = 0;
        }
    }
}

/// Walks the cells in ring order (a copy of the table's cursor, kept in registers).
pub(crate) struct Taker {
    next: usize,
    mask: usize,
}

impl Taker {
    /// The next slot that is not running, with its state word (Relaxed: the word
    /// carries no data for anyone, and only the poll-mutex holder frees and takes).
    #[inline(always)]
    pub(crate) fn take(&mut self, cells: &[SimpleCell]) -> (u32, u32) {
        loop {
            let idx = self.next & self.mask;
            self.next = self.next.wrapping_add(1);
            let v = cells[idx].state.load(Ordering::Relaxed);
            if v & RUNNING == 0 {
                return (idx as u32, v);
            }
        }
    }
}

/// The number of cells for `cap` operations: a power of two (ring-order allocation).
pub(crate) fn slots_for(cap: u32) -> u32 {
    if cap == 0 {
        0
    } else {
        cap.next_power_of_two()
    }
}

/// The shared cells of `n` slots.
pub(crate) fn new_cells(n: u32) -> Box<[SimpleCell]> {
    (0..n)
        .map(|_| SimpleCell {
            state: AtomicU32::new(0),
            user_data: AtomicU64::new(0),
        })
        .collect()
}

/// The key of slot `idx` whose running state word is `state`: the high word is the
/// state's `gen << 2 | kind` part (so the reaper compares one word) plus [`SIMPLE`].
#[inline(always)]
pub(crate) fn key(idx: u32, state: u32) -> u64 {
    SIMPLE | ((state >> 2) as u64) << 32 | idx as u64
}

/// The running state word a key was issued for (ignoring `CANCELLING`).
#[inline(always)]
pub(crate) fn running_state_of(key: u64) -> u32 {
    ((key >> 32) as u32 & TAG_MASK) << 2 | RUNNING
}

/// `gen << 2 | kind`: 30 bits.
const TAG_MASK: u32 = 0x3fff_ffff;

/// Marks the slot running the operation of `key` as cancelling. `Some(true)`: this
/// call should send the kernel cancel request; `Some(false)`: one was already
/// requested; `None`: the slot no longer runs this operation (its completion is
/// already determined).
pub(crate) fn mark_cancelling(state: &AtomicU32, key: u64) -> Option<bool> {
    let expected = running_state_of(key);
    let mut v = state.load(Ordering::Acquire);
    loop {
        if v & !CANCELLING != expected {
            return None;
        }
        if v & CANCELLING != 0 {
            return Some(false);
        }
        match state.compare_exchange_weak(v, v | CANCELLING, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Some(true),
            Err(now) => v = now,
        }
    }
}

/// Maps a negative CQE result of a simple operation (`state`: its state word).
#[cold]
pub(crate) fn error_outcome_of(state: u32, res: i32) -> Outcome {
    let code = match state & KIND {
        TIMER => OpCode::Timer,
        FSYNC => OpCode::Fsync,
        _ => OpCode::Nop,
    };
    error_outcome(code, state & CANCELLING != 0, res)
}

/// Maps a negative CQE result.
#[cold]
pub(crate) fn error_outcome(code: OpCode, cancelling: bool, res: i32) -> Outcome {
    match (-res, code) {
        (libc::ECANCELED, _) => Outcome::Cancelled,
        (libc::EINTR, _) if cancelling => Outcome::Cancelled,
        // With ETIME_SUCCESS the CQE still carries -ETIME: the timer expired normally.
        (libc::ETIME, OpCode::Timer) => Outcome::Ok(0),
        (errno, op) => Outcome::Err(OpError { op, errno }),
    }
}
