//! The poll thread's table of simple-operation slots (io_uring backend).
//!
//! A [`SimpleOp`](super::SimpleOp) owns nothing, so its slot only has to remember the
//! caller's `user_data`, which kind it is (to map the CQE result) and, for a timer, the
//! timespec the kernel reads when the entry is submitted. Such slots live in their own
//! table inside `PollScratch`, guarded by the poll mutex instead of the core mutex:
//! `poll` holds that mutex for its whole call, so it reaps these completions and hands
//! them to the callback straight from the completion ring, with no lock taken per
//! batch, no intermediate list and no value built or dropped. `submit_simple` uses the
//! table when it can take the poll mutex (any thread, while no `poll` runs); otherwise
//! (inside a callback, or while `poll` blocks on another thread) the operations take
//! the ordinary slots, with the same semantics.
//!
//! Each slot's generation and state are one atomic word (`states`, in `Shared`), so
//! `cancel` can answer `Requested`/`NotFound` from any thread without the poll mutex:
//! `gen << 2 | CANCELLING | RUNNING`. Only the poll mutex holder moves a slot between
//! free and running; `cancel` only sets `CANCELLING` on a running slot (compare and
//! swap), which is what makes its answer exact.

use std::sync::atomic::{AtomicU32, Ordering};

use io_uring::types::Timespec;

use super::op::{OpCode, OpError, Outcome};

/// Bit 62 of a key: a simple-operation slot (ordinary slot keys keep it clear; bit 63
/// marks the proactor's own requests).
pub(crate) const LITE: u64 = 1 << 62;
/// Generations are 30 bits, so the key's high word never reaches bits 62 and 63.
pub(crate) const GEN_MASK: u32 = 0x3fff_ffff;
pub(crate) const RUNNING: u32 = 1;
pub(crate) const CANCELLING: u32 = 2;

pub(crate) struct LiteSlot {
    pub(crate) user_data: u64,
    pub(crate) code: OpCode,
    /// Read by the kernel when a timer's entry is submitted (it copies it then).
    pub(crate) ts: Timespec,
}

/// Slots and free list; guarded by the poll mutex.
pub(crate) struct LiteTable {
    pub(crate) slots: Box<[LiteSlot]>,
    pub(crate) free: Vec<u32>,
}

impl LiteTable {
    pub(crate) fn new(n: u32) -> LiteTable {
        LiteTable {
            slots: (0..n)
                .map(|_| LiteSlot {
                    user_data: 0,
                    code: OpCode::Nop,
                    ts: Timespec::new(),
                })
                .collect(),
            free: (0..n).rev().collect(),
        }
    }
}

/// The per-slot state words (see the module docs); readable from any thread.
pub(crate) fn new_states(n: u32) -> Box<[AtomicU32]> {
    (0..n).map(|_| AtomicU32::new(0)).collect()
}

/// The key of slot `idx` at generation `gen`.
#[inline(always)]
pub(crate) fn key(idx: u32, gen: u32) -> u64 {
    LITE | (gen as u64) << 32 | idx as u64
}

/// Marks a running slot as cancelling. `Some(true)`: this call should send the kernel
/// cancel request; `Some(false)`: one was already requested; `None`: the slot no
/// longer runs this operation (its completion is already determined).
pub(crate) fn mark_cancelling(state: &AtomicU32, gen: u32) -> Option<bool> {
    let mut v = state.load(Ordering::Acquire);
    loop {
        if v >> 2 != gen || v & RUNNING == 0 {
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

/// Maps a negative CQE result of a simple operation.
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
