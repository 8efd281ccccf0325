//! The simple-operation path of the io_uring driver: a table of slots of its own.
//!
//! A [`SimpleOp`](super::SimpleOp) owns nothing, so its slot only has to remember the
//! caller's `user_data`, its kind (to map an error result) and, for a timer, the
//! timespec the kernel reads when the entry is submitted. These slots are a table of
//! their own: the cursor, the `user_data` values and the timespecs live in the
//! driver's poll-thread state, guarded by the poll mutex instead of the core mutex,
//! and one [`Cell`] (a state word) per slot lives in the driver ([`Cells`]). `poll` holds the poll mutex for its whole call, so it reaps these
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
//! and swap). A slot's key carries bit 62 ([`LITE`]), its 28-bit generation and kind.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use io_uring::opcode;
use io_uring::types::Timespec;

use io_uring::IoUring;

use crate::proactor::caps::Capability;
use crate::proactor::deliver::Sink;
use crate::proactor::op::{OpCode, OpId, Outcome};
use crate::proactor::operation::{SimpleKind, SimpleOp};
use crate::proactor::ops::{error_outcome, fsync, timer, Env};

/// Bit 63 of a key: the driver's own requests (wake read, cancel requests); slot
/// keys of either table never set it.
pub(crate) const OWN: u64 = 1 << 63;

/// Bit 62 of a key: a simple-operation slot (ordinary slot keys keep it clear; bit 63
/// marks the proactor's own requests).
pub(crate) const LITE: u64 = 1 << 62;
/// Generations of simple-operation slots: 28 bits (the state word packs 4 flag bits).
pub(crate) const GEN_MASK: u32 = 0x0fff_ffff;
pub(crate) const RUNNING: u32 = 1;
pub(crate) const CANCELLING: u32 = 2;
/// The kind, in bits 2..4 of the state word.
pub(crate) const NOP: u32 = 0;
pub(crate) const TIMER: u32 = 1 << 2;
pub(crate) const FSYNC: u32 = 2 << 2;
const KIND: u32 = 3 << 2;

/// One simple-operation slot as every thread sees it.
pub(crate) struct Cell {
    /// `gen << 4 | kind | CANCELLING | RUNNING`. Only the poll-mutex holder moves a
    /// slot between free and running; `cancel` only adds `CANCELLING`. Four bytes
    /// per slot: a batch's state words share few cache lines (the caller's
    /// `user_data` lives in the poll thread's [`Table`]).
    pub(crate) state: AtomicU32,
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
/// how many are in use, the callers' `user_data` values, and the timespecs the
/// kernel reads when a timer's entry is submitted (it copies them then).
///
/// Slots are taken in ring order: the next one after the last taken that is not
/// running. Freeing a slot is then nothing more than the state store its completion
/// does anyway (no free list to maintain per operation). A slot still running (a long
/// timer) is stepped over; with `k` of `n` slots held that costs `k / (n - k)` extra
/// looks per operation on average, which only grows when the table is nearly full.
pub(crate) struct Table {
    pub(crate) ts: Box<[Timespec]>,
    /// The caller's value of each slot.
    pub(crate) user_data: Box<[u64]>,
    /// Operations in flight at most (`Options::max_in_flight`).
    cap: usize,
    /// Slots in use.
    live: usize,
    next: usize,
    mask: usize,
}

impl Table {
    /// A table for `cap` operations; `slots` (a power of two, at least `cap`) cells.
    pub(crate) fn new(cap: u32, slots: u32) -> Table {
        debug_assert!(slots.is_power_of_two() || slots == 0);
        debug_assert!(slots >= cap);
        Table {
            ts: (0..slots).map(|_| Timespec::new()).collect(),
            user_data: vec![0; slots as usize].into_boxed_slice(),
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
    pub(crate) fn take(&mut self, cells: &[Cell]) -> (u32, u32) {
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

/// The part of the table every thread may touch: the cells, and a copy of the
/// table's count of slots in use for `in_flight` (stored by the poll-mutex holder,
/// a plain store, no read-modify-write, since only that thread changes it).
pub(crate) struct Cells {
    cells: Box<[Cell]>,
    live: AtomicUsize,
}

impl Cells {
    /// The cells of `n` slots.
    pub(crate) fn new(n: u32) -> Cells {
        Cells {
            cells: (0..n)
                .map(|_| Cell {
                    state: AtomicU32::new(0),
                })
                .collect(),
            live: AtomicUsize::new(0),
        }
    }

    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub(crate) fn set_live(&self, n: usize) {
        self.live.store(n, Ordering::Relaxed);
    }

    /// `cancel` of a simple operation (see [`mark_cancelling`]).
    pub(crate) fn mark_cancelling(&self, id: OpId) -> Option<bool> {
        let cell = self.cells.get(id.index() as usize)?;
        mark_cancelling(&cell.state, id.0)
    }
}

/// Whether a key (user_data) belongs to a simple operation (not the driver's own
/// requests, which set bit 63).
#[inline(always)]
pub(crate) fn is_simple(key: u64) -> bool {
    key & (OWN | LITE) == LITE
}

/// The key of slot `idx` whose running state word is `state`: the high word is the
/// state's `gen << 2 | kind` part (so the reaper compares one word) plus [`LITE`].
#[inline(always)]
pub(crate) fn key(idx: u32, state: u32) -> u64 {
    LITE | ((state >> 2) as u64) << 32 | idx as u64
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

/// Pushes the entries of simple operations into slots of the table, through one view
/// of the submission ring.
///
/// # Safety
/// The caller holds the lock that guards every `SubmissionQueue` of `ring` (the core
/// lock) and the poll mutex (which guards `table`), has checked the free slots and
/// reserved SQ room for all of `ops`, and closes `ring` before `table` is freed.
pub(crate) unsafe fn start<const IDS: bool>(
    ring: &IoUring,
    cells: &Cells,
    env: &Env<'_>,
    table: &mut Table,
    ops: &[SimpleOp],
    ids: &mut [OpId],
) {
    {
        // SAFETY: the caller holds the lock that guards every SubmissionQueue of this
        // ring, so this is the only one until it is dropped at the end.
        let mut sq = unsafe { ring.submission_shared() };
        let cells = &cells.cells[..];
        let mut taker = table.taker(ops.len());
        for (i, op) in ops.iter().enumerate() {
            // Only the poll-mutex holder moves a slot between free and running. The
            // state word is written Relaxed: it carries no data (the user_data and
            // timespec are read only by the poll-mutex holder, ordered by that mutex).
            let (idx, v) = taker.take(cells);
            let cell = &cells[idx as usize];
            let gen = gen_of(v).wrapping_add(1) & GEN_MASK;
            table.user_data[idx as usize] = op.user_data;
            let tag = match op.kind {
                SimpleKind::Nop => NOP,
                SimpleKind::Timer(_) => TIMER,
                SimpleKind::Fsync { .. } => FSYNC,
            };
            let state = running(gen, tag);
            cell.state.store(state, Ordering::Relaxed);
            let key = key(idx, state);
            if IDS {
                ids[i] = OpId(key);
            }
            // A nop's entry is a constant plus its key, built and pushed from its own
            // branch rather than merged with the others through one exit.
            let pushed = match op.kind {
                SimpleKind::Nop => {
                    let e = opcode::Nop::new().build().user_data(key);
                    // SAFETY: a nop entry carries no pointers.
                    unsafe { sq.push(&e) }.is_ok()
                }
                SimpleKind::Timer(spec) => {
                    let ts = &mut table.ts[idx as usize];
                    let abs = env.caps.is_native(Capability::AbsoluteTimers);
                    let e = timer::entry(spec, abs, ts);
                    // SAFETY: the entry points at the slot's `ts`, which is not reused
                    // before this entry's completion is reaped (the kernel copies it
                    // when the entry is submitted), and the table outlives the ring
                    // (this function's contract).
                    unsafe { sq.push(&e.user_data(key)) }.is_ok()
                }
                SimpleKind::Fsync { fd, datasync } => {
                    let e = fsync::entry(env, fd, datasync);
                    // SAFETY: an fsync entry carries no pointers.
                    unsafe { sq.push(&e.user_data(key)) }.is_ok()
                }
            };
            assert!(pushed, "caller reserved SQ room for every simple operation");
        }
        table.taken(taker);
        // Dropping `sq` publishes the new tail (Release), which is what the kernel reads.
        drop(sq);
    }
}

/// Reaps the completion ring: simple operations are delivered to `on` at once,
/// everything else is copied to `heavy` for the locked reap. Runs on the poll thread
/// with no lock but the poll mutex held, so `on` may submit and cancel. Returns how
/// many completions were delivered.
///
/// # Safety
/// The caller is the only one touching `ring`'s completion queue (the poll thread,
/// holding the poll mutex, which also guards `table`).
pub(crate) unsafe fn reap(
    ring: &IoUring,
    cells: &Cells,
    table: &mut Table,
    heavy: &mut Vec<(u64, i32, u32)>,
    on: &mut impl Sink,
) -> usize {
    {
        let cap = heavy.capacity();
        // Counts the slots freed here back into the table when this function ends,
        // also if `on` panics (no slot stays counted as in use).
        let mut freed = Freed { table, cells, n: 0 };
        let cells = &cells.cells[..];
        // SAFETY: forwarded from this function's contract.
        let mut cq = unsafe { ring.completion_shared() };
        'ring: loop {
            cq.sync();
            if cq.is_empty() {
                break;
            }
            for cqe in &mut cq {
                let ud = cqe.user_data();
                let res = cqe.result();
                if !is_simple(ud) {
                    heavy.push((ud, res, cqe.flags()));
                    // Bounded by `heavy`'s capacity so that it never reallocates; what
                    // is left stays in the ring for the next poll iteration.
                    if heavy.len() == cap {
                        break 'ring;
                    }
                    continue;
                }
                let idx = ud as u32;
                let Some(cell) = cells.get(idx as usize) else {
                    continue;
                };
                // Relaxed: the word carries no data (see `start_simple`).
                let v = cell.state.load(Ordering::Relaxed);
                // A stale key (generation moved on) finds a different word.
                if v & !CANCELLING != running_state_of(ud) {
                    continue;
                }
                // Free: keep the generation, clear kind and flags.
                cell.state.store(v & !0xf, Ordering::Relaxed);
                let user_data = freed.table.user_data[idx as usize];
                let outcome = if res >= 0 {
                    Outcome::Ok(res as u32)
                } else {
                    error_outcome_of(v, res)
                };
                freed.n += 1;
                on.lean(OpId(ud), user_data, outcome);
            }
        }
        // Advance the CQ head before anything else can run.
        drop(cq);
        freed.n
    }
}

/// Counts the simple slots `reap_simple` freed back into the table when it ends (also
/// when a completion callback panics), and mirrors the count for `in_flight`.
struct Freed<'a> {
    table: &'a mut Table,
    cells: &'a Cells,
    n: usize,
}

impl Drop for Freed<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.table.released(self.n);
            self.cells.set_live(self.table.live());
        }
    }
}
