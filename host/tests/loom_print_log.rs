//! Model check (loom) of the print log's group commit and its duty hand-off (PROTOCOL.md §7.1): reserve,
//! copy, complete, ring the duty word, the holder's rounds (wait for the write in flight, finish it, submit the
//! completed prefix, release or hand the duty on), a lane's flush, and the host finishing after the run.
//!
//! Like `loom_protocol.rs` the model re-states the spec over loom atomics with the orderings it names; it does
//! not call the library. Device-local RMW words (`log_reserve`, `log_pub`, `log_bell`, `log_wstate`) and the
//! words reservers read (`log_written`, `log_ends`) are loom atomics; the holder-only `log_sub`, the write's
//! result and the log bytes are loom `UnsafeCell`s, so loom reports two duty holders at once, a holder reading
//! a result the kernel has not released, the kernel reading bytes a lane has not published, and a lane
//! overwriting bytes the kernel may still be reading. The kernel is a thread that takes the one log write SQE
//! and performs it (its first write of two or more bytes is short by one, so the remainder path runs);
//! completing the write stands for the reaper's dispatch into the log's slot.
//!
//! A print reserves the bytes of one or more lines with one reservation and completes them as one range (one
//! ticket), as a subgroup's print (`Subgroup::print_with`: the lines of several lanes) and a GLSL print (up to
//! `GU_LOG_LANE_LINES` lines of one lane, all or none) do; each line is a separate record in the output. A
//! lane follows the Rust lane's steps (`print_log.rs`: the completer that becomes the holder loops in the duty,
//! its wait bounded by a poll budget) or `print_log.comp`'s (a subgroup's loop of passes: several prints per
//! pass, ONE holder round per pass, the duty held across passes while its write is in flight and handed on
//! when the loop ends). The log is 4 or 8 bytes with 2 tickets, lines are 2 bytes (so writes are cut at the
//! log's end, there and by the kernel's short write also inside a line), every position starts just below the
//! `u32` wrap and tickets below the `u16` wrap. A holder waits at most one poll for the write in flight (a
//! GLSL subgroup runs at most three passes) and submits at most one or two writes per duty, so the duty is
//! handed on with a write in flight — after a cut or a short write, with the cut's rest still unsubmitted —
//! in almost every execution.
//!
//! Checked: every line whose print returned `READY` is written exactly once, untorn, each lane's lines in
//! program order, nothing else is written; no two holders at once; no violation is counted; when every lane
//! has returned, no lane holds the duty and completed bytes that are unsubmitted or a write in flight are
//! covered by the DIRTY flag (nothing completed is stranded); a flush that returned `READY` (a GLSL lane that
//! finished) finds its lane's lines written; after the host's finish the log is fully completed and written.
//!
//! Each model runs with a preemption bound (`LOOM_MAX_PREEMPTIONS` overrides it) and asserts that its
//! executions reached the paths it is meant to cover; the file takes about 40 s of CPU in a debug build (loom
//! itself optimised, see the workspace `Cargo.toml`). The `weakened_*` tests run a model with one step broken
//! and expect the checks to catch it: a hand-off that clears LOCK without setting DIRTY, a short write whose
//! remainder is dropped, a range of several lines completed at its first line's end, a GLSL subgroup leaving
//! its loop without handing its duty on; `a_stale_reservation_check_counts_a_false_violation` runs the
//! reservation with its three loads checked once, as one snapshot, and expects a false violation.

use loom::cell::UnsafeCell;
use loom::model::Builder;
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// The most log bytes a model uses (cells allocated).
const MAX_SIZE: usize = 8;
const TICKETS: u32 = 2;
const LOCK: u32 = 1;
const DIRTY: u32 = 2;
const FREE: u32 = 0;
const PENDING: u32 = 1;
const DONE: u32 = 2;
/// Byte positions and tickets start just below their wrap.
const POS0: u32 = u32::MAX - 2;
const TICKET0: u16 = u16::MAX - 1;
/// Attempts of one print to reserve before it times out (nothing reserved).
const PRINT_TRIES: u32 = 3;
/// Polls a print's holder waits for the write in flight before handing the duty on (`LOG_PRINT_POLLS`,
/// reduced).
const PRINT_POLLS: u32 = 1;
/// Polls a flush's holder waits (its budget, and `LOG_DRAFT_POLLS` of its reap passes, reduced).
const FLUSH_POLLS: u32 = 1;
/// A flush's budget: rounds of "flushed? reap (takes a handed-on duty), flushed?" (reduced).
const FLUSH_ROUNDS: u32 = 0;
/// Prints per pass of a GLSL subgroup's loop, between its holder rounds (`PRINTS_PER_ROUND`, reduced).
const PRINTS_PER_ROUND: u32 = 2;
/// Passes of a GLSL subgroup's loop before its budget is spent (`gu_can_start`, reduced).
const PASSES: u32 = 3;
/// Passes without a line printed while waiting for room or the flush before the subgroup leaves
/// (`STALL_ROUNDS`).
const STALL_ROUNDS: u32 = 4;

// Paths the executions reached, per model (loom runs a model's threads on the test's thread).
const HANDED_ON_IN_FLIGHT: u32 = 1;
const TAKEN_OVER: u32 = 2;
const SHORT_WRITE: u32 = 4;
const HOST_WROTE: u32 = 8;
const NO_ROOM: u32 = 16;
/// A write cut at the log's end (the rest of the range stays unsubmitted).
const CUT: u32 = 32;
/// A holder's wait ran out after it had submitted a write in the same duty (mid-duty).
const EXPIRED_MID_DUTY: u32 = 64;
/// A holder's wait ran out with completed bytes left unsubmitted beside the write in flight (a cut's rest).
const EXPIRED_WITH_REST: u32 = 128;
/// A holder that took in a short write handed the duty on later in the same duty.
const HANDED_ON_AFTER_SHORT: u32 = 256;
/// A write whose range holds two or more lines.
const MULTI_LINE_WRITE: u32 = 512;
/// A flush returned `READY` (its lane's lines written).
const FLUSHED: u32 = 1024;
/// A line cut inside by a write (at the log's end, or by a short write).
const LINE_SPLIT: u32 = 2048;
/// A GLSL holder's own print advanced the prefix while it held the duty (no ring: its next round sees it).
const PRINTED_WHILE_HOLDING: u32 = 4096;
/// A GLSL subgroup left its loop holding the duty with its write in flight (or no SQ room) and handed it on.
const LEFT_IN_FLIGHT: u32 = 8192;
/// A GLSL holder round ended with the write in flight and the subgroup's next pass came back to it, holding
/// the duty meanwhile.
const HELD_ACROSS_PASSES: u32 = 16384;

std::thread_local! {
    static REACHED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn reached(path: u32) {
    REACHED.with(|r| r.set(r.get() | path));
}

#[derive(Clone, Copy, PartialEq)]
enum Check {
    /// The spec: `(R, N)` first (acquire), then `written` and `C`; a violation only if `(R, N)` is unchanged on
    /// a second load; release CAS.
    Bracketed,
    /// The old order: `written`, `C`, then `(R, N)` (relaxed), one check, relaxed CAS.
    Single,
}

/// A step deliberately broken, which the checks must catch.
#[derive(Clone, Copy, PartialEq)]
enum Weak {
    None,
    /// The hand-off clears LOCK without setting DIRTY: the duty (a write in flight, a cut's rest) is dropped.
    HandOffWithoutDirty,
    /// A short write is taken in as if complete: its remainder is never resubmitted.
    ShortWriteDropped,
    /// A print of several lines completes its ticket with the end of its first line, not of the range.
    FirstLineEnd,
    /// A GLSL subgroup leaves its loop without handing a held duty on (LOCK stays set).
    LeaveKeepsDuty,
}

/// Whose steps a lane follows.
#[derive(Clone, Copy, PartialEq)]
enum Style {
    /// The Rust lane (`Lane::print_log_with`, `hold`, `Lane::flush`): a print's completer that becomes the
    /// holder loops in the duty, waiting at most its poll budget for the write in flight.
    Rust,
    /// `print_log.comp` (`gpu_uring_log.glsl`): the subgroup's loop of passes, each: take a handed-on duty, up
    /// to [`PRINTS_PER_ROUND`] prints (a holding subgroup's completions do not ring), ring if a print advanced
    /// the prefix, ONE holder round (a write in flight: the pass ends, the duty stays held), the flush check;
    /// leaving the loop (budget spent, stalled, or finished) hands a held duty on.
    Glsl,
}

/// One model: two lanes, each printing its prints in order (each print the line lengths of one reservation),
/// then flushing if its `flush` is set.
#[derive(Clone, Copy)]
struct Cfg {
    size: u32,
    prints: [&'static [&'static [u32]]; 2],
    duty_writes: u32,
    flush: [bool; 2],
    check: Check,
    weak: Weak,
    style: Style,
}

impl Cfg {
    /// Lane `lane`'s line `seq`: its tag, every byte of the line.
    fn tag(lane: usize, seq: usize) -> u8 {
        1 + ((lane as u8) << 4 | seq as u8)
    }

    /// The length of the line tagged `tag` (None: no line has that tag).
    fn len_of(&self, tag: u8) -> Option<u32> {
        let (lane, seq) = (((tag - 1) >> 4) as usize, ((tag - 1) & 15) as usize);
        self.prints
            .get(lane)?
            .iter()
            .flat_map(|p| p.iter())
            .nth(seq)
            .copied()
    }

    /// Parses the output into each lane's lines: every record is a known tag repeated for its line's length
    /// (while lanes run, `partial`: the last may be cut short by a write still to come; it is not counted).
    fn parse(&self, out: &[u8], partial: bool) -> [Vec<u8>; 2] {
        let mut got: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let mut i = 0;
        while let Some(&tag) = out.get(i) {
            let len = match tag {
                0 => None,
                t => self.len_of(t),
            };
            let Some(len) = len else {
                panic!("a torn line: byte {tag} at {i} starts no line: {out:?}");
            };
            let line = out.get(i..i + len as usize);
            if partial && line.is_none() && out[i..].iter().all(|b| *b == tag) {
                break;
            }
            assert!(
                line.is_some_and(|l| l.iter().all(|b| *b == tag)),
                "a torn line at {i}: {out:?}"
            );
            got[((tag - 1) >> 4) as usize].push(tag);
            i += len as usize;
        }
        got
    }
}

struct Log {
    cfg: Cfg,
    reserve: AtomicU64,
    pubw: AtomicU64,
    ends: [AtomicU32; TICKETS as usize],
    written: AtomicU32,
    bell: AtomicU32,
    wstate: AtomicU32,
    wres: UnsafeCell<u32>,
    /// Holder-only (`log_sub`).
    sub: UnsafeCell<u32>,
    /// Holder-only (`log_writes` in the real words; the kernel's short first write keys on it).
    gen: UnsafeCell<u32>,
    bytes: [UnsafeCell<u8>; MAX_SIZE],
    /// The one log write SQE: 0 none, else `1 << 63 | gen << 40 | len << 32 | pos`.
    sq: AtomicU64,
    out: Mutex<Vec<u8>>,
    holders: AtomicU32,
    violations: AtomicU32,
    stop: AtomicU32,
}

/// Reads a model cell; loom panics if another thread's access to it is not ordered with this one.
fn get<T: Copy>(c: &UnsafeCell<T>) -> T {
    // SAFETY: loom's `UnsafeCell` checks the access against every other (an unordered one fails the model);
    // no reference outlives the closure.
    c.with(|p| unsafe { *p })
}

/// Writes a model cell; loom panics if another thread's access to it is not ordered with this one.
fn set<T>(c: &UnsafeCell<T>, v: T) {
    // SAFETY: as in `get`: loom checks the access; no reference outlives the closure.
    c.with_mut(|p| unsafe { *p = v })
}

fn pub_parts(w: u64) -> (u32, u16, u16) {
    (w as u32, (w >> 32) as u16, (w >> 48) as u16)
}

fn pub_word(d: u32, c: u16, bits: u16) -> u64 {
    d as u64 | (c as u64) << 32 | (bits as u64) << 48
}

fn tix(t: u16) -> usize {
    (t as u32 % TICKETS) as usize
}

/// How a holder's rounds ended.
#[derive(Default)]
struct Duty {
    writes: u32,
    /// The last write this duty submitted was cut at the log's end.
    cut: bool,
    /// This duty took in a short write.
    short: bool,
}

impl Log {
    fn new(cfg: Cfg) -> Log {
        Log {
            cfg,
            reserve: AtomicU64::new(POS0 as u64 | (TICKET0 as u64) << 32),
            pubw: AtomicU64::new(pub_word(POS0, TICKET0, 0)),
            ends: [AtomicU32::new(0), AtomicU32::new(0)],
            written: AtomicU32::new(POS0),
            bell: AtomicU32::new(0),
            wstate: AtomicU32::new(FREE),
            wres: UnsafeCell::new(0),
            sub: UnsafeCell::new(POS0),
            gen: UnsafeCell::new(0),
            bytes: std::array::from_fn(|_| UnsafeCell::new(0)),
            sq: AtomicU64::new(0),
            out: Mutex::new(Vec::new()),
            holders: AtomicU32::new(0),
            violations: AtomicU32::new(0),
            stop: AtomicU32::new(0),
        }
    }

    fn byte(&self, pos: u32) -> &UnsafeCell<u8> {
        &self.bytes[(pos % self.cfg.size) as usize]
    }

    /// Step 1 (`reserve_bytes`): `Some(Ok((ticket, start)))`, `Some(Err(()))` no room, `None` a violation
    /// (counted).
    fn reserve(&self, len: u32) -> Option<Result<(u16, u32), ()>> {
        let size = self.cfg.size;
        for _ in 0..2 {
            let (cur, written, c) = match self.cfg.check {
                Check::Bracketed => {
                    let cur = self.reserve.load(Acquire);
                    let written = self.written.load(Acquire);
                    let c = pub_parts(self.pubw.load(Acquire)).1;
                    (cur, written, c)
                }
                Check::Single => {
                    let written = self.written.load(Acquire);
                    let c = pub_parts(self.pubw.load(Acquire)).1;
                    (self.reserve.load(Relaxed), written, c)
                }
            };
            let (r, n) = (cur as u32, (cur >> 32) as u16);
            let used = r.wrapping_sub(written);
            let outstanding = n.wrapping_sub(c) as u32;
            if used > size || outstanding > TICKETS {
                if self.cfg.check == Check::Bracketed && self.reserve.load(Relaxed) != cur {
                    continue;
                }
                self.violations.fetch_add(1, Relaxed);
                return None;
            }
            if outstanding == TICKETS || size - used < len {
                reached(NO_ROOM);
                return Some(Err(()));
            }
            let new = r.wrapping_add(len) as u64 | (n.wrapping_add(1) as u64) << 32;
            let ok = match self.cfg.check {
                Check::Bracketed => self.reserve.compare_exchange(cur, new, Release, Relaxed),
                Check::Single => self.reserve.compare_exchange(cur, new, Relaxed, Relaxed),
            };
            if ok.is_ok() {
                self.ends[tix(n)].store(r.wrapping_add(len), Release);
                return Some(Ok((n, r)));
            }
        }
        Some(Err(()))
    }

    /// Step 3 (`complete_range`): true if this CAS advanced the completed prefix.
    fn complete(&self, ticket: u16, end: u32) -> bool {
        let mut old = self.pubw.load(Acquire);
        loop {
            let (d, c, bits) = pub_parts(old);
            let o = ticket.wrapping_sub(c) as u32;
            assert!(o < TICKETS, "a completed ticket outside the window");
            let b = bits | 1 << o;
            let m = b.trailing_ones();
            let new = if m == 0 {
                pub_word(d, c, b)
            } else {
                let last = c.wrapping_add(m as u16 - 1);
                let nd = if last == ticket {
                    end
                } else {
                    self.ends[tix(last)].load(Acquire)
                };
                pub_word(nd, c.wrapping_add(m as u16), b >> m)
            };
            match self.pubw.compare_exchange(old, new, AcqRel, Acquire) {
                Ok(_) => return m > 0,
                Err(cur) => old = cur,
            }
        }
    }

    /// Step 4 (`ring_log`, D1 of §3 on `log_bell`).
    fn ring(&self, polls: u32) {
        if self.bell.compare_exchange(0, LOCK, AcqRel, Relaxed).is_ok()
            || self.bell.fetch_or(LOCK | DIRTY, AcqRel) & LOCK == 0
        {
            self.hold(polls);
        }
    }

    /// A handed-on duty (`take_pending_log`): DIRTY without LOCK.
    fn take_pending(&self, polls: u32) {
        let w = self.bell.load(Relaxed);
        if w & DIRTY != 0 && w & LOCK == 0 {
            reached(TAKEN_OVER);
            self.ring(polls);
        }
    }

    fn enter(&self) {
        assert_eq!(self.holders.fetch_add(1, SeqCst), 0, "two duty holders");
    }

    fn leave(&self) {
        self.holders.fetch_sub(1, SeqCst);
    }

    /// `hand_off`: DIRTY for the next lane that touches the ring, then LOCK cleared (release).
    fn hand_off(&self, duty: &Duty) {
        if duty.short {
            reached(HANDED_ON_AFTER_SHORT);
        }
        self.leave();
        if self.cfg.weak != Weak::HandOffWithoutDirty {
            self.bell.fetch_or(DIRTY, Relaxed);
        }
        self.bell.fetch_and(!LOCK, Release);
    }

    /// (b) on DONE (`finish_write`): advance `written` by what the kernel wrote; a short write's remainder
    /// goes first next.
    fn finish_write(&self, duty: &mut Duty) {
        let res = get(&self.wres);
        let written = self.written.load(Relaxed);
        let sub = get(&self.sub);
        let len = sub.wrapping_sub(written).min(self.cfg.size);
        if res < len {
            reached(SHORT_WRITE);
            duty.short = true;
        }
        let n = if self.cfg.weak == Weak::ShortWriteDropped {
            len
        } else {
            res.min(len)
        };
        let now = written.wrapping_add(n);
        set(&self.sub, now);
        self.written.store(now, Release);
        self.wstate.store(FREE, Relaxed);
    }

    /// Step 2: the lines' bytes from `start` (plain stores, split at the log's end); the range's end.
    fn copy(&self, lines: &[(u8, u32)], start: u32) -> u32 {
        let mut at = start;
        for &(tag, len) in lines {
            for i in 0..len {
                set(self.byte(at.wrapping_add(i)), tag);
            }
            at = at.wrapping_add(len);
        }
        at
    }

    /// The end a print completes its ticket with: the range's (`at`).
    fn batch_end(&self, lines: &[(u8, u32)], start: u32, at: u32) -> u32 {
        match (self.cfg.weak, lines.first()) {
            (Weak::FirstLineEnd, Some(l)) => start.wrapping_add(l.1),
            _ => at,
        }
    }

    /// (c) (`submit_write`): one write of the completed, unsubmitted `[sub, d)`, cut at the log's end.
    fn submit(&self, sub: u32, d: u32, duty: &mut Duty) {
        let off = sub % self.cfg.size;
        let len = d.wrapping_sub(sub).min(self.cfg.size - off);
        duty.cut = len < d.wrapping_sub(sub);
        if duty.cut {
            reached(CUT);
        }
        let gen = get(&self.gen) + 1;
        set(&self.gen, gen);
        self.wstate.store(PENDING, Relaxed);
        set(&self.sub, sub.wrapping_add(len));
        let prev = self.sq.swap(
            1 << 63 | (gen as u64) << 40 | (len as u64) << 32 | sub as u64,
            Release,
        );
        assert_eq!(prev, 0, "a second log write in flight");
        duty.writes += 1;
    }

    /// The holder's rounds (`hold`), waiting at most `polls` polls for a write in flight.
    fn hold(&self, polls_max: u32) {
        self.enter();
        let mut duty = Duty::default();
        let mut polls = 0;
        loop {
            // (a)
            self.bell.fetch_and(!DIRTY, Acquire);
            // (b)
            let mut sw = self.wstate.load(Acquire);
            while sw == PENDING {
                if polls >= polls_max {
                    reached(HANDED_ON_IN_FLIGHT);
                    if duty.writes > 0 {
                        reached(EXPIRED_MID_DUTY);
                    }
                    // The write in flight was cut at the log's end: its rest is still unsubmitted.
                    if duty.cut {
                        reached(EXPIRED_WITH_REST);
                    }
                    self.hand_off(&duty);
                    return;
                }
                thread::yield_now();
                polls += 1;
                sw = self.wstate.load(Acquire);
            }
            if sw == DONE {
                self.finish_write(&mut duty);
            }
            // (c)
            let d = pub_parts(self.pubw.load(Acquire)).0;
            let sub = get(&self.sub);
            if d != sub {
                assert!(
                    d.wrapping_sub(sub) <= self.cfg.size,
                    "completed prefix outside the log"
                );
                self.submit(sub, d, &mut duty);
                polls = 0;
                if duty.writes >= self.cfg.duty_writes {
                    self.hand_off(&duty);
                    return;
                }
                continue;
            }
            // (d)
            self.leave();
            if self
                .bell
                .compare_exchange(LOCK, 0, Release, Relaxed)
                .is_ok()
            {
                return;
            }
            self.enter();
        }
    }

    /// A print (`print_log_with`) of the lines `lines` (tag, length) with one reservation: the end of its
    /// range if it returned READY.
    fn print(&self, lines: &[(u8, u32)]) -> Option<u32> {
        let total = lines.iter().map(|l| l.1).sum();
        for _ in 0..PRINT_TRIES {
            self.take_pending(PRINT_POLLS);
            match self.reserve(total) {
                None => return None,
                Some(Err(())) => thread::yield_now(),
                Some(Ok((ticket, start))) => {
                    let at = self.copy(lines, start);
                    if self.complete(ticket, self.batch_end(lines, start, at)) {
                        self.ring(PRINT_POLLS);
                    }
                    return Some(at);
                }
            }
        }
        None
    }

    /// A lane's flush (`Lane::flush`): takes a handed-on duty, then waits (bounded) until `log_written` has
    /// passed `end`, each of its `rounds + 1` rounds a reap pass that takes a handed-on duty. True: READY.
    fn flush(&self, end: u32, rounds: u32) -> bool {
        let flushed = || self.written.load(Acquire).wrapping_sub(end) as i32 >= 0;
        self.take_pending(FLUSH_POLLS);
        let mut i = 0;
        loop {
            if flushed() {
                return true;
            }
            self.take_pending(FLUSH_POLLS);
            if flushed() {
                return true;
            }
            if i >= rounds {
                return false;
            }
            thread::yield_now();
            i += 1;
        }
    }

    /// `gu_log_ring`: true if this subgroup is now the holder (no round yet).
    fn ring_glsl(&self) -> bool {
        let h = self.bell.compare_exchange(0, LOCK, AcqRel, Relaxed).is_ok()
            || self.bell.fetch_or(LOCK | DIRTY, AcqRel) & LOCK == 0;
        if h {
            self.enter();
        }
        h
    }

    /// `gu_log_round`: one holder round. `Some(true)` still holding with a write in flight (WAIT),
    /// `Some(false)` still holding (HOLD), `None` released or handed on.
    fn round_glsl(&self, duty: &mut Duty) -> Option<bool> {
        // (a)
        self.bell.fetch_and(!DIRTY, Acquire);
        // (b) One poll: a write in flight ends the round (the next pass reaps first).
        let sw = self.wstate.load(Acquire);
        if sw == PENDING {
            return Some(true);
        }
        if sw == DONE {
            self.finish_write(duty);
        }
        // (c)
        let d = pub_parts(self.pubw.load(Acquire)).0;
        let sub = get(&self.sub);
        if d != sub {
            assert!(
                d.wrapping_sub(sub) <= self.cfg.size,
                "completed prefix outside the log"
            );
            self.submit(sub, d, duty);
            if duty.writes >= self.cfg.duty_writes {
                self.hand_off(duty);
                return None;
            }
            return Some(true);
        }
        // (d)
        self.leave();
        if self
            .bell
            .compare_exchange(LOCK, 0, Release, Relaxed)
            .is_ok()
        {
            return None;
        }
        self.enter();
        Some(false)
    }

    /// A GLSL subgroup of one lane running `print_log.comp` over `prints` (each the lines of one
    /// reservation): the lines whose print returned READY, the end of the last, and whether the lane finished
    /// (its flush found its lines written).
    fn glsl_lane(&self, prints: &[Vec<(u8, u32)>]) -> (Vec<u8>, Option<u32>, bool) {
        let (mut ok, mut end) = (Vec::new(), None);
        let (mut holding, mut waiting, mut duty) = (false, false, Duty::default());
        let (mut next, mut finished, mut stalled) = (0, false, 0);
        for _ in 0..PASSES {
            if finished {
                break;
            }
            if holding && waiting {
                reached(HELD_ACROSS_PASSES);
            }
            // The reap: the model's kernel completes the log's slot itself.
            // gu_log_take_pending
            if !holding {
                let w = self.bell.load(Relaxed);
                if w & (LOCK | DIRTY) == DIRTY {
                    reached(TAKEN_OVER);
                    holding = self.ring_glsl();
                    (waiting, duty) = (false, Duty::default());
                }
            }
            let (mut advanced, mut printed, mut reap) = (false, 0, false);
            for _ in 0..PRINTS_PER_ROUND {
                let Some(lines) = prints.get(next) else {
                    break;
                };
                let total = lines.iter().map(|l| l.1).sum();
                match self.reserve(total) {
                    None => panic!("a violation counted"),
                    Some(Err(())) => {
                        reap = true;
                        break;
                    }
                    Some(Ok((ticket, start))) => {
                        let at = self.copy(lines, start);
                        let adv = self.complete(ticket, self.batch_end(lines, start, at));
                        if adv && holding {
                            reached(PRINTED_WHILE_HOLDING);
                        }
                        advanced |= adv;
                        ok.extend(lines.iter().map(|l| l.0));
                        end = Some(at);
                        printed += lines.len();
                        next += 1;
                    }
                }
            }
            // gu_log_ring_if
            if !holding && advanced {
                holding = self.ring_glsl();
                (waiting, duty) = (false, Duty::default());
            }
            // gu_log_hold
            if holding {
                match self.round_glsl(&mut duty) {
                    None => (holding, waiting, duty) = (false, false, Duty::default()),
                    Some(w) => waiting = w,
                }
            }
            // The flush check.
            if next >= prints.len() {
                let flushed = match end {
                    None => true,
                    Some(e) => self.written.load(Acquire).wrapping_sub(e) as i32 >= 0,
                };
                if flushed {
                    finished = true;
                } else {
                    reap = true;
                }
            }
            stalled = if printed != 0 || !reap {
                0
            } else {
                stalled + 1
            };
            if stalled >= STALL_ROUNDS {
                break;
            }
        }
        // gu_log_leave
        if holding && self.cfg.weak != Weak::LeaveKeepsDuty {
            if waiting {
                reached(LEFT_IN_FLIGHT);
            }
            self.hand_off(&duty);
        }
        (ok, end, finished)
    }

    /// The kernel: performs each log write SQE; the first write of two or more bytes is short by one.
    fn kernel(&self) {
        loop {
            let e = self.sq.swap(0, Acquire);
            if e == 0 {
                if self.stop.load(Acquire) != 0 {
                    return;
                }
                thread::yield_now();
                continue;
            }
            let (pos, len, gen) = (e as u32, (e >> 32) as u32 & 0xff, (e >> 40) as u32 & 0xff);
            let n = if gen == 1 && len >= 2 { len - 1 } else { len };
            let mut out = self.out.lock().unwrap();
            let first = out.len();
            for i in 0..n {
                out.push(get(self.byte(pos.wrapping_add(i))));
            }
            // Paths: a write holding two lines' starts, or a write ending inside a line.
            let tags = out[first..].windows(2).filter(|w| w[0] != w[1]).count();
            if tags > 0 {
                reached(MULTI_LINE_WRITE);
            }
            if let Some(&last) = out.last() {
                let run = out.iter().rev().take_while(|b| **b == last).count() as u32;
                if self.cfg.len_of(last).is_some_and(|l| run % l != 0) {
                    reached(LINE_SPLIT);
                }
            }
            drop(out);
            set(&self.wres, n);
            // Release: the holder's acquire of DONE sees the result (and the kernel is done with the bytes).
            self.wstate.store(DONE, Release);
        }
    }

    /// When every lane has returned: no lane holds the duty, and completed bytes not yet submitted, or a write
    /// in flight or not yet taken in, are covered by DIRTY (the next lane, or the host, takes them).
    fn check_nothing_stranded(&self) {
        let bell = self.bell.load(Acquire);
        assert_eq!(bell & LOCK, 0, "a lane returned holding the duty");
        let d = pub_parts(self.pubw.load(Acquire)).0;
        let left = d != get(&self.sub) || self.wstate.load(Acquire) != FREE;
        assert!(
            !left || bell & DIRTY != 0,
            "completed bytes stranded: unsubmitted or in flight with no duty pending"
        );
    }

    /// The host after the run (every lane stopped): finish a write in flight, write what is completed.
    fn host_finish(&self) {
        self.bell.store(0, Relaxed);
        let mut duty = Duty::default();
        loop {
            match self.wstate.load(Acquire) {
                PENDING => thread::yield_now(),
                DONE => {
                    self.finish_write(&mut duty);
                    break;
                }
                _ => break,
            }
        }
        let (d, c, bits) = pub_parts(self.pubw.load(Acquire));
        let n = (self.reserve.load(Acquire) >> 32) as u16;
        assert_eq!((c, bits), (n, 0), "a ticket left incomplete");
        let mut sub = get(&self.sub);
        let mut out = self.out.lock().unwrap();
        while sub != d {
            reached(HOST_WROTE);
            out.push(get(self.byte(sub)));
            sub = sub.wrapping_add(1);
        }
    }
}

fn builder(preemptions: usize) -> Builder {
    let mut b = Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(preemptions);
    }
    b
}

/// Runs the model `cfg` (two lanes, the kernel thread, the host finishing) and asserts that its executions
/// reached every path in `paths`.
fn model(cfg: Cfg, preemptions: usize, paths: u32) {
    REACHED.with(|r| r.set(0));
    builder(preemptions).check(move || {
        let log = Arc::new(Log::new(cfg));
        let k = {
            let log = log.clone();
            thread::spawn(move || log.kernel())
        };
        let lanes: Vec<_> = (0..2)
            .map(|lane| {
                let log = log.clone();
                thread::spawn(move || {
                    let mut seq = 0;
                    let prints: Vec<Vec<(u8, u32)>> = cfg.prints[lane]
                        .iter()
                        .map(|p| {
                            let lines = p
                                .iter()
                                .enumerate()
                                .map(|(j, len)| (Cfg::tag(lane, seq + j), *len))
                                .collect();
                            seq += p.len();
                            lines
                        })
                        .collect();
                    let (ok, flushed) = match cfg.style {
                        Style::Rust => {
                            let (mut ok, mut end) = (Vec::new(), None);
                            for lines in &prints {
                                if let Some(e) = log.print(lines) {
                                    ok.extend(lines.iter().map(|l| l.0));
                                    end = Some(e);
                                }
                            }
                            let flushed = match end {
                                Some(end) if cfg.flush[lane] => log.flush(end, FLUSH_ROUNDS),
                                _ => false,
                            };
                            (ok, flushed)
                        }
                        Style::Glsl => {
                            let (ok, end, finished) = log.glsl_lane(&prints);
                            (ok, finished && end.is_some())
                        }
                    };
                    if flushed {
                        reached(FLUSHED);
                        let got = cfg.parse(&log.out.lock().unwrap(), true);
                        assert_eq!(got[lane], ok, "a flushed lane's lines not all written");
                    }
                    ok
                })
            })
            .collect();
        let ok: Vec<Vec<u8>> = lanes.into_iter().map(|h| h.join().unwrap()).collect();
        log.check_nothing_stranded();
        log.host_finish();
        log.stop.store(1, Release);
        k.join().unwrap();
        assert_eq!(log.violations.load(Relaxed), 0, "a violation counted");
        let out = log.out.lock().unwrap().clone();
        let got = cfg.parse(&out, false);
        assert_eq!(
            got[0], ok[0],
            "lane 0: every READY line once, in order: {out:?}"
        );
        assert_eq!(
            got[1], ok[1],
            "lane 1: every READY line once, in order: {out:?}"
        );
    });
    let got = REACHED.with(|r| r.get());
    assert_eq!(got & paths, paths, "paths not reached: {:#x}", paths & !got);
}

/// The spec's steps, one line of 2 bytes per print in a 4-byte log, one write per duty.
const ONE_LINE_EACH: Cfg = Cfg {
    size: 4,
    prints: [&[&[2]], &[&[2]]],
    duty_writes: 1,
    flush: [false; 2],
    check: Check::Bracketed,
    weak: Weak::None,
    style: Style::Rust,
};

/// Lane 0 prints two lines with one reservation (4 bytes, across the log's end), lane 1 one line, in an
/// 8-byte log; two writes per duty, so a holder waits for its own write mid-duty (after a cut or a short
/// write) and its wait runs out.
const TWO_LINES_ONE_RANGE: Cfg = Cfg {
    size: 8,
    prints: [&[&[2, 2]], &[&[2]]],
    duty_writes: 2,
    flush: [false; 2],
    check: Check::Bracketed,
    weak: Weak::None,
    style: Style::Rust,
};

#[test]
fn one_line_each_every_line_written_once() {
    model(
        ONE_LINE_EACH,
        2,
        HANDED_ON_IN_FLIGHT | TAKEN_OVER | SHORT_WRITE | HOST_WROTE | CUT | LINE_SPLIT,
    );
}

#[test]
fn two_lines_in_one_reservation_complete_as_one_range() {
    model(
        TWO_LINES_ONE_RANGE,
        1,
        HANDED_ON_IN_FLIGHT
            | TAKEN_OVER
            | SHORT_WRITE
            | HOST_WROTE
            | CUT
            | EXPIRED_MID_DUTY
            | EXPIRED_WITH_REST
            | HANDED_ON_AFTER_SHORT
            | MULTI_LINE_WRITE
            | LINE_SPLIT,
    );
}

#[test]
fn a_flush_finds_its_lines_written() {
    model(
        Cfg {
            flush: [true, false],
            ..TWO_LINES_ONE_RANGE
        },
        1,
        FLUSHED | TAKEN_OVER | MULTI_LINE_WRITE,
    );
}

#[test]
#[ignore = "about 65 s of CPU (and as much system time) in a debug build: cargo test -p gpu-uring --test loom_print_log -- --ignored"]
fn two_lines_and_one_reuse_the_log_space() {
    model(
        Cfg {
            prints: [&[&[2], &[2]], &[&[2]]],
            ..ONE_LINE_EACH
        },
        1,
        HANDED_ON_IN_FLIGHT | TAKEN_OVER | SHORT_WRITE | HOST_WROTE | NO_ROOM,
    );
}

#[test]
#[should_panic(expected = "a violation counted")]
fn a_stale_reservation_check_counts_a_false_violation() {
    model(
        Cfg {
            prints: [&[&[2]], &[&[2], &[2], &[2]]],
            check: Check::Single,
            ..ONE_LINE_EACH
        },
        1,
        0,
    );
}

#[test]
#[should_panic(expected = "completed bytes stranded")]
fn weakened_a_hand_off_without_dirty_strands_completed_bytes() {
    model(
        Cfg {
            weak: Weak::HandOffWithoutDirty,
            ..TWO_LINES_ONE_RANGE
        },
        1,
        0,
    );
}

#[test]
#[should_panic(expected = "a torn line")]
fn weakened_a_dropped_short_write_remainder_tears_a_line() {
    model(
        Cfg {
            weak: Weak::ShortWriteDropped,
            ..TWO_LINES_ONE_RANGE
        },
        1,
        0,
    );
}

#[test]
#[should_panic(expected = "every READY line once")]
fn weakened_a_range_completed_at_its_first_line_loses_the_others() {
    model(
        Cfg {
            weak: Weak::FirstLineEnd,
            ..TWO_LINES_ONE_RANGE
        },
        1,
        0,
    );
}

/// `print_log.comp`'s subgroups: lane 0 prints two lines with one reservation and then one more line (two
/// prints in one pass, before its holder round), lane 1 one line; each subgroup's loop runs at most
/// [`PASSES`] passes, so a holder leaves with its write in flight and hands the duty on.
const GLSL_PASSES: Cfg = Cfg {
    size: 8,
    prints: [&[&[2, 2], &[2]], &[&[2]]],
    duty_writes: 2,
    flush: [true; 2],
    check: Check::Bracketed,
    weak: Weak::None,
    style: Style::Glsl,
};

#[test]
fn glsl_passes_hold_the_duty_between_prints_and_hand_it_on_when_they_leave() {
    model(
        GLSL_PASSES,
        1,
        TAKEN_OVER
            | SHORT_WRITE
            | HOST_WROTE
            | CUT
            | MULTI_LINE_WRITE
            | LINE_SPLIT
            | FLUSHED
            | PRINTED_WHILE_HOLDING
            | LEFT_IN_FLIGHT
            | HELD_ACROSS_PASSES,
    );
}

#[test]
#[should_panic(expected = "a lane returned holding the duty")]
fn weakened_a_subgroup_leaving_with_the_duty_keeps_it() {
    model(
        Cfg {
            weak: Weak::LeaveKeepsDuty,
            ..GLSL_PASSES
        },
        1,
        0,
    );
}

/// A reservation of two lines that fills the 4-byte log waits for the log's room as a whole (all or none)
/// while the other lane's line is in it, and the other way round (one write per duty).
#[test]
fn a_range_of_two_lines_waits_for_room_all_or_none() {
    model(
        Cfg {
            size: 4,
            duty_writes: 1,
            ..TWO_LINES_ONE_RANGE
        },
        1,
        NO_ROOM | TAKEN_OVER | SHORT_WRITE | MULTI_LINE_WRITE,
    );
}
