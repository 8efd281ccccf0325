//! Model checks (loom) of the lane protocol's coordination words: PROTOCOL.md §3 (reserve with credit return,
//! fill, publish), §4 (credits), §5 (reap: claim, dispatch into a completion slot, release) and the combining
//! doorbell that stores the kernel's `sq.tail` / `cq.head`.
//!
//! The model is a small re-statement of the spec over loom atomics, step by step and with the memory orderings
//! the spec names (one strengthening, of the ticket load and CAS, is explained at [`SPEC`]); it does not call the library (the library's words live in an mmap'd arena that
//! loom cannot see). Device-local words (`sq_reserve`, `cq_credits`, `sq_pub`, `cq_pub`, `cq_claim`, the bells,
//! completion slots) are loom atomics; host-shared memory the protocol reads without an atomic (SQE bytes, CQEs,
//! a slot's result) and the holder-only `*_stored` words are loom `UnsafeCell`s, so loom reports any access to
//! them that the spec's release/acquire chain does not order (a read of an SQE the kernel is not guaranteed to
//! see filled, two bell holders at once). Every counter starts at `u32::MAX - 1` and the generation at the
//! top of its 24 bits, so wrap-around runs through every model.
//!
//! Checked: every published SQE is read by the "kernel" exactly once and filled with its ticket; the kernel's
//! tail and head never go backwards and are stored only by the bell holder; no credit leaks; no position ever
//! falls outside its window; each CQE is claimed once, each armed slot completed once with its CQE's result,
//! stale generations counted foreign; after the run (and the host finishing a left-over bell duty, and storing
//! the CQ head a lagging bell left behind) the kernel words cover everything published. One reap model stores
//! the CQ head with a lag of 2 (§5 step 5); the others store it at once.
//!
//! Each model runs with a preemption bound (`LOOM_MAX_PREEMPTIONS` overrides it) so that the file stays fast
//! in a debug build (about 40 s of CPU for the whole file), and asserts that its executions reached the paths it
//! is meant to cover (left-over bell duty, credit return, SQE/CQE reuse, foreign CQEs, …). The `weakened_*`
//! tests run a model with one ordering made weaker and expect loom to find the failure, which shows the model
//! is sensitive to that ordering; `weaken_experiment` (ignored) does the same for any ordering by name.

use loom::cell::UnsafeCell;
use loom::model::Builder;
use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering, Ordering::*};
use loom::sync::Arc;
use loom::thread;

/// Where every wrapping counter starts (tickets, claims, the kernel's ring indices).
const START: u32 = u32::MAX - 1;
/// Bell word bits (`GU_BELL_LOCK`, `GU_BELL_DIRTY`).
const LOCK: u32 = 1;
const DIRTY: u32 = 2;
/// Bounded CAS attempts before `WOULD_BLOCK` (the spec's `RESERVE_TRIES`, smaller to keep the model small).
const TRIES: u32 = 3;
/// Completion slot states (`state = generation << 8 | s`).
const PENDING: u32 = 1;
const DONE: u32 = 2;
const REAPING: u32 = 3;
const GEN_MASK: u32 = 0x00ff_ffff;
/// The newest generation (wraps to 1 on the next arming), and the one before it.
const GEN: u32 = GEN_MASK;
const STALE_GEN: u32 = GEN_MASK - 1;

fn slot_word(generation: u32, s: u32) -> u32 {
    (generation & GEN_MASK) << 8 | s
}

/// `a` strictly before `b` in wrapping order.
fn before(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) > 0
}

/// The orderings the spec names at the steps a weakening test varies.
#[derive(Clone, Copy)]
struct Orders {
    /// §3.3 / §5.5 publication CAS on `sq_pub` / `cq_pub`: AcqRel.
    publish: Ordering,
    /// Doorbell step (a), the holder clearing DIRTY: Acquire.
    bell_clear: Ordering,
    /// §5.4 the reaper's store of `DONE` into a slot: Release.
    slot_done: Ordering,
    /// Doorbell step 1, a lane setting LOCK|DIRTY: AcqRel.
    bell_set: Ordering,
    /// Doorbell step (b), the holder's load of `sq_pub` / `cq_pub`: Acquire.
    bell_load: Ordering,
    /// Doorbell step (d), the holder's release of LOCK: Release.
    bell_release: Ordering,
    /// §3.1 / §5.1 the load of `sq_reserve` / `cq_claim` before the window check: Acquire (see below).
    ticket_load: Ordering,
    /// §3.5 / §5.3 the reserve / claim CAS on success: Release (see below).
    ticket_cas: Ordering,
}

/// The spec's orderings, with one strengthening the model found necessary: the window checks compare a
/// ticket (`r`, `c`) with `head`/`T` (`tail`/`H`) read after it and count a violation when the ticket is
/// ahead. With a relaxed ticket load and CAS, a lane can read a ticket taken by another lane and then an
/// older `head`/`T` than that lane saw (no happens-before between them), and an honest ring counts a
/// violation (`weakened_ticket_relaxed`). Acquire on the ticket load and release on its CAS make the other
/// lane's reads happen-before ours, so ours are at least as new.
const SPEC: Orders = Orders {
    publish: AcqRel,
    bell_clear: Acquire,
    slot_done: Release,
    bell_set: AcqRel,
    bell_load: Acquire,
    bell_release: Release,
    ticket_load: Acquire,
    ticket_cas: Release,
};

// ---- coverage: which paths the explored executions reached -------------------------------------------------

/// Paths a model is meant to exercise; each test asserts that some execution reached them (loom runs every
/// thread of a model on the test's own OS thread, so a thread-local collects them across executions).
const ROUNDS_OUT: u32 = 1 << 0;
const LANE_TOOK_DUTY: u32 = 1 << 1;
const HOST_TOOK_DUTY: u32 = 1 << 2;
const NO_CREDIT: u32 = 1 << 3;
const CREDIT_RETURNED: u32 = 1 << 4;
const KERNEL_READ: u32 = 1 << 5;
const SQE_REUSED: u32 = 1 << 6;
const FOREIGN: u32 = 1 << 7;
const CQ_WINDOW_FULL: u32 = 1 << 8;
const OUT_OF_ORDER: u32 = 1 << 9;
const CQE_REUSED: u32 = 1 << 10;
const CQ_HEAD_LAGGED: u32 = 1 << 11;
const HOST_SETTLED: u32 = 1 << 12;

std::thread_local! {
    static REACHED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn reached(path: u32) {
    REACHED.with(|r| r.set(r.get() | path));
}

/// Runs `model` under `builder(preemptions)` and asserts that the executions reached every path in `paths`.
fn check(preemptions: usize, paths: u32, model: impl Fn() + Sync + Send + 'static) {
    REACHED.with(|r| r.set(0));
    builder(preemptions).check(model);
    let got = REACHED.with(|r| r.get());
    assert_eq!(got & paths, paths, "paths not reached: {:#x}", paths & !got);
}

/// Preemption bounds of the five models (2 where the model is small enough, 1 for the larger ones).
const PB_A: usize = 2;
const PB_B: usize = 1;
const PB_C: usize = 1;
const PB_D: usize = 2;
const PB_E: usize = 1;

fn builder(preemptions: usize) -> Builder {
    let mut b = Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(preemptions);
    }
    b
}

// ---- publication window (§3 publish, §5.5 release) -------------------------------------------------------

/// Marks `pos` in a (low: base, high: ready bitmap) word and advances the base over the prefix of set bits,
/// in one CAS. Returns the new base if this CAS moved it.
fn mark_and_advance(word: &AtomicU64, pos: u32, window: u32, o: Orders) -> Option<u32> {
    let mut old = word.load(Relaxed);
    loop {
        let base = old as u32;
        let k = pos.wrapping_sub(base);
        assert!(
            k < window,
            "position {pos} outside the window at base {base}"
        );
        let bits = (old >> 32) as u32 | 1 << k;
        let m = bits.trailing_ones();
        let nbase = base.wrapping_add(m);
        let nbits = if m == 32 { 0 } else { bits >> m };
        let new = nbase as u64 | (nbits as u64) << 32;
        // AcqRel (spec): release publishes this lane's stores (SQE fill, CQE read); acquire takes in those of
        // the lanes whose bits this CAS consumes.
        match word.compare_exchange(old, new, o.publish, Relaxed) {
            Ok(_) => {
                if m == 0 {
                    reached(OUT_OF_ORDER);
                }
                return (m > 0).then_some(nbase);
            }
            Err(cur) => old = cur,
        }
    }
}

// ---- combining doorbell -----------------------------------------------------------------------------------

/// One combining doorbell: the device-local bell word, the holder-only copy of what was last stored into
/// the kernel word, and how far ahead the prefix must be before the holder stores it (1: at once; the CQ
/// head's lag, §5 step 5, otherwise).
struct Bell {
    word: AtomicU32,
    stored: UnsafeCell<u32>,
    lag: u32,
}

impl Bell {
    fn new(lag: u32) -> Bell {
        Bell {
            word: AtomicU32::new(0),
            stored: UnsafeCell::new(START),
            lag,
        }
    }

    /// Step 1 (after this lane's publication CAS moved the base, or to take a left-over duty): set
    /// LOCK|DIRTY; the lane that found LOCK clear holds the duty, any other returns at once.
    fn ring(&self, published: &AtomicU64, kernel: &AtomicU32, rounds: u32, o: Orders) {
        // AcqRel: release makes this lane's publication visible to the holder that clears our DIRTY;
        // acquire (when we become the holder) takes in the previous holder's `stored`.
        // Fast path of an idle bell (as the library does): LOCK alone, with the same ordering.
        if self
            .word
            .compare_exchange(0, LOCK, o.bell_set, Relaxed)
            .is_ok()
        {
            self.hold(published, kernel, rounds, o, self.lag);
            return;
        }
        let old = self.word.fetch_or(LOCK | DIRTY, o.bell_set);
        if old & LOCK == 0 {
            self.hold(published, kernel, rounds, o, self.lag);
        }
    }

    /// Step 2: the holder's bounded rounds; the kernel word is stored once the prefix is `lag` ahead of it.
    fn hold(&self, published: &AtomicU64, kernel: &AtomicU32, rounds: u32, o: Orders, lag: u32) {
        for _ in 0..rounds {
            // (a) Acquire: synchronises with the release RMW of every lane whose DIRTY this clears.
            self.word.fetch_and(!DIRTY, o.bell_clear);
            // (b) Acquire: the stores released by the publication CASes below the base happen-before (c).
            let t = published.load(o.bell_load) as u32;
            // (c) Only the holder touches `stored` (loom reports two holders at once as a race).
            self.stored.with_mut(|p| {
                // SAFETY: `stored` is accessed only between taking LOCK and releasing it; holders are
                // serialised through the bell word's release/acquire chain.
                let stored = unsafe { &mut *p };
                if t != *stored && t.wrapping_sub(*stored) < lag {
                    reached(CQ_HEAD_LAGGED);
                } else if t != *stored {
                    assert!(
                        before(*stored, t),
                        "kernel word would go back: {} -> {t}",
                        *stored
                    );
                    if lag == 1 && self.lag > 1 {
                        reached(HOST_SETTLED);
                    }
                    // The system-scope fence of a GPU; release, then a release store to host memory.
                    fence(Release);
                    kernel.store(t, Release);
                    *stored = t;
                }
            });
            // (d) Release: the next holder's acquire sees `stored`. Fails only when DIRTY was set meanwhile.
            if self
                .word
                .compare_exchange(LOCK, 0, o.bell_release, Relaxed)
                .is_ok()
            {
                return;
            }
        }
        // Out of rounds: drop LOCK, keep DIRTY; the next lane that touches the ring takes the duty.
        reached(ROUNDS_OUT);
        self.word.fetch_and(!LOCK, o.bell_release);
    }

    /// Every lane that touches the ring first looks at the bell once: DIRTY without LOCK is a left-over duty.
    fn pick_up(&self, published: &AtomicU64, kernel: &AtomicU32, rounds: u32, o: Orders) {
        if self.word.load(Relaxed) & (LOCK | DIRTY) == DIRTY {
            reached(LANE_TOOK_DUTY);
            self.ring(published, kernel, rounds, o);
        }
    }

    /// After the run (all lanes joined): the host completes a pending duty, then, for a bell with a lag, stores
    /// what the lag left behind (as `DeviceRing::quiesce` does for the CQ head).
    fn finish(&self, published: &AtomicU64, kernel: &AtomicU32, o: Orders) {
        let w = self.word.load(Relaxed);
        assert_eq!(w & LOCK, 0, "LOCK held after every lane finished");
        if w & DIRTY != 0 {
            reached(HOST_TOOK_DUTY);
            self.ring(published, kernel, 1, o);
        }
        if self.lag > 1
            && self
                .word
                .compare_exchange(0, LOCK, o.bell_set, Relaxed)
                .is_ok()
        {
            self.hold(published, kernel, 1, o, 1);
        }
        assert_eq!(
            self.word.load(Relaxed),
            0,
            "bell not idle after the host finished"
        );
    }
}

// ---- (a) submission: credits, reserve, fill, publish, SQ bell ---------------------------------------------

struct Sq {
    // Device-local.
    credits: AtomicU32,
    reserve: AtomicU32,
    sq_pub: AtomicU64,
    bell: Bell,
    // Host-shared: the kernel's ring words and the SQE array (one word per SQE: the ticket it was filled for).
    kernel_tail: AtomicU32,
    kernel_head: AtomicU32,
    sqes: Vec<UnsafeCell<u32>>,
    pool: u32,
    window: u32,
    rounds: u32,
    o: Orders,
}

impl Sq {
    fn new(entries: u32, pool: u32, rounds: u32, o: Orders) -> Sq {
        Sq {
            credits: AtomicU32::new(pool),
            reserve: AtomicU32::new(START),
            sq_pub: AtomicU64::new(START as u64),
            bell: Bell::new(1),
            kernel_tail: AtomicU32::new(START),
            kernel_head: AtomicU32::new(START),
            sqes: (0..entries).map(|_| UnsafeCell::new(u32::MAX)).collect(),
            pool,
            // W_SQ = min(32, sq_entries)
            window: entries.min(32),
            rounds,
            o,
        }
    }

    fn entries(&self) -> u32 {
        self.sqes.len() as u32
    }

    fn take_credit(&self) -> bool {
        for _ in 0..TRIES {
            let c = self.credits.load(Relaxed);
            if c == 0 {
                reached(NO_CREDIT);
                return false;
            }
            // Relaxed: a count; it orders nothing.
            if self
                .credits
                .compare_exchange(c, c - 1, Relaxed, Relaxed)
                .is_ok()
            {
                return true;
            }
        }
        false
    }

    fn take_ticket(&self) -> Option<u32> {
        for _ in 0..TRIES {
            let r = self.reserve.load(self.o.ticket_load);
            // Acquire: the kernel finished reading every SQE before `head`.
            let head = self.kernel_head.load(Acquire);
            let t = self.sq_pub.load(Acquire) as u32;
            // Signed: a stale `r` is behind, never ahead (the spec counts ahead as a violation).
            assert!(
                r.wrapping_sub(head) as i32 <= self.entries() as i32
                    && r.wrapping_sub(t) as i32 <= self.window as i32,
                "reservation {r} ahead of head {head} / published {t}"
            );
            let next = r.wrapping_add(1);
            if next.wrapping_sub(head) > self.entries() || next.wrapping_sub(t) > self.window {
                return None;
            }
            if self
                .reserve
                .compare_exchange(r, next, self.o.ticket_cas, Relaxed)
                .is_ok()
            {
                return Some(r);
            }
        }
        None
    }

    /// One operation of a lane: credit, ticket (or the credit back), fill, publish, bell. `None` is WOULD_BLOCK.
    fn submit(&self) -> Option<u32> {
        self.bell
            .pick_up(&self.sq_pub, &self.kernel_tail, self.rounds, self.o);
        if !self.take_credit() {
            return None;
        }
        let Some(ticket) = self.take_ticket() else {
            // The reservation failed: return the credit (relaxed add).
            reached(CREDIT_RETURNED);
            self.credits.fetch_add(1, Relaxed);
            return None;
        };
        let i = (ticket % self.entries()) as usize;
        if ticket.wrapping_sub(START) >= self.entries() {
            reached(SQE_REUSED);
        }
        // SAFETY: the ticket gives this lane the SQE until the kernel's head passes it.
        self.sqes[i].with_mut(|p| unsafe { *p = ticket });
        if mark_and_advance(&self.sq_pub, ticket, self.window, self.o).is_some() {
            self.bell
                .ring(&self.sq_pub, &self.kernel_tail, self.rounds, self.o);
        }
        Some(ticket)
    }
}

/// The kernel's SQ side: reads the tail with acquire, consumes every SQE below it, stores its head with
/// release.
struct SqKernel {
    head: u32,
    last_tail: u32,
    seen: Vec<u32>,
}

impl SqKernel {
    fn pass(&mut self, sq: &Sq) {
        let t = sq.kernel_tail.load(Acquire);
        assert!(
            !before(t, self.last_tail),
            "sq.tail went back: {} -> {t}",
            self.last_tail
        );
        assert!(
            t.wrapping_sub(self.head) <= sq.entries(),
            "sq.tail {t} past head {} + entries",
            self.head
        );
        self.last_tail = t;
        while self.head != t {
            let i = (self.head % sq.entries()) as usize;
            // SAFETY: loom checks that the fill of this SQE happens-before this read.
            let v = sq.sqes[i].with(|p| unsafe { *p });
            assert_eq!(v, self.head, "SQE {} read before it was filled", self.head);
            self.seen.push(v);
            self.head = self.head.wrapping_add(1);
        }
        sq.kernel_head.store(self.head, Release);
    }
}

/// Two lanes submit (`ops[l]` operations each) while the kernel makes `kernel_passes` passes; after the run
/// the host finishes the bell duty and the kernel a last pass.
fn submit_model(
    entries: u32,
    pool: u32,
    rounds: u32,
    ops: [u32; 2],
    kernel_passes: u32,
    o: Orders,
) {
    let sq = Arc::new(Sq::new(entries, pool, rounds, o));
    let lanes: Vec<_> = ops
        .iter()
        .map(|&n| {
            let sq = sq.clone();
            thread::spawn(move || (0..n).filter_map(|_| sq.submit()).collect::<Vec<u32>>())
        })
        .collect();
    let kernel = {
        let sq = sq.clone();
        thread::spawn(move || {
            let mut k = SqKernel {
                head: START,
                last_tail: START,
                seen: Vec::new(),
            };
            for _ in 0..kernel_passes {
                k.pass(&sq);
            }
            if !k.seen.is_empty() {
                reached(KERNEL_READ);
            }
            k
        })
    };
    let mut published: Vec<u32> = lanes
        .into_iter()
        .flat_map(|h| h.join().expect("lane"))
        .collect();
    let mut k = kernel.join().expect("kernel");

    sq.bell.finish(&sq.sq_pub, &sq.kernel_tail, o);
    let p = sq.sq_pub.load(Relaxed);
    let n = published.len() as u32;
    assert_eq!(p >> 32, 0, "a reserved ticket was never published");
    assert_eq!(p as u32, START.wrapping_add(n), "published tail");
    assert_eq!(
        sq.reserve.load(Relaxed),
        START.wrapping_add(n),
        "tickets reserved"
    );
    assert_eq!(
        sq.kernel_tail.load(Relaxed),
        p as u32,
        "a published SQE is not covered by sq.tail"
    );
    assert_eq!(sq.credits.load(Relaxed), sq.pool - n, "credit leak");
    k.pass(&sq);
    published.sort_unstable_by_key(|t| t.wrapping_sub(START));
    assert_eq!(
        k.seen, published,
        "the kernel must read each published SQE exactly once"
    );
}

/// Two lanes, one operation each; the kernel passes once. Tickets wrap (`u32::MAX - 1`, `u32::MAX`).
#[test]
fn submit_two_lanes() {
    check(PB_A, KERNEL_READ | OUT_OF_ORDER, move || {
        submit_model(2, 2, 16, [1, 1], 1, SPEC)
    });
}

/// One bell round: a holder that sees DIRTY again leaves the duty for the next lane (or the host).
#[test]
fn submit_left_over_duty() {
    check(
        PB_B,
        ROUNDS_OUT
            | LANE_TOOK_DUTY
            | HOST_TOOK_DUTY
            | CREDIT_RETURNED
            | KERNEL_READ
            | SQE_REUSED
            | OUT_OF_ORDER,
        move || submit_model(2, 3, 1, [2, 1], 1, SPEC),
    );
}

/// More operations than SQ entries and credits: the SQ fills (credit returned), the kernel frees entries,
/// tickets wrap past zero.
#[test]
fn submit_sq_full_and_reuse() {
    check(
        PB_C,
        NO_CREDIT | CREDIT_RETURNED | KERNEL_READ | SQE_REUSED,
        move || submit_model(1, 2, 16, [2, 1], 2, SPEC),
    );
}

// ---- (b) reaping: claim, dispatch into a slot, release, CQ bell ------------------------------------------

struct Slot {
    state: AtomicU32,
    result: UnsafeCell<i32>,
}

/// A CQE: (slot, generation, res).
type Cqe = (u32, u32, i32);

struct Cq {
    // Device-local.
    claim: AtomicU32,
    cq_pub: AtomicU64,
    bell: Bell,
    credits: AtomicU32,
    foreign: AtomicU32,
    slots: Vec<Slot>,
    // Host-shared: the kernel's ring words and the CQE array.
    kernel_tail: AtomicU32,
    kernel_head: AtomicU32,
    cqes: Vec<UnsafeCell<Cqe>>,
    window: u32,
    rounds: u32,
    o: Orders,
}

impl Cq {
    fn new(entries: u32, window: u32, nslots: u32, rounds: u32, lag: u32, o: Orders) -> Cq {
        Cq {
            claim: AtomicU32::new(START),
            cq_pub: AtomicU64::new(START as u64),
            bell: Bell::new(lag),
            credits: AtomicU32::new(0),
            foreign: AtomicU32::new(0),
            // Armed before the run: generation GEN, PENDING.
            slots: (0..nslots)
                .map(|_| Slot {
                    state: AtomicU32::new(slot_word(GEN, PENDING)),
                    result: UnsafeCell::new(0),
                })
                .collect(),
            kernel_tail: AtomicU32::new(START),
            kernel_head: AtomicU32::new(START),
            cqes: (0..entries).map(|_| UnsafeCell::new((0, 0, 0))).collect(),
            window,
            rounds,
            o,
        }
    }

    fn entries(&self) -> u32 {
        self.cqes.len() as u32
    }

    /// §5.4 for a slot CQE: deliver it if the slot is PENDING in its generation, else count it foreign; one
    /// credit back either way. Returns whether it was delivered.
    fn dispatch(&self, (slot, generation, res): Cqe) -> bool {
        let mut delivered = false;
        if let Some(s) = self.slots.get(slot as usize) {
            // Relaxed: the arming reached us through the kernel.
            if s.state
                .compare_exchange(
                    slot_word(generation, PENDING),
                    slot_word(generation, REAPING),
                    Relaxed,
                    Relaxed,
                )
                .is_ok()
            {
                // SAFETY: REAPING gives this lane the result until it stores DONE.
                s.result.with_mut(|p| unsafe { *p = res });
                // Release (spec): the owner's acquire of DONE sees the result.
                s.state.store(slot_word(generation, DONE), self.o.slot_done);
                delivered = true;
            }
        }
        if !delivered {
            reached(FOREIGN);
            self.foreign.fetch_add(1, Relaxed);
        }
        self.credits.fetch_add(1, Relaxed);
        delivered
    }

    /// One reap pass of at most `max` CQEs. Returns the positions this lane claimed.
    fn reap(&self, max: u32) -> Vec<u32> {
        self.bell
            .pick_up(&self.cq_pub, &self.kernel_head, self.rounds, self.o);
        let mut claimed = Vec::new();
        let mut tries = 0;
        while (claimed.len() as u32) < max && tries < max.saturating_add(TRIES) {
            tries += 1;
            let c = self.claim.load(self.o.ticket_load);
            // Acquire: every CQE before the tail is written.
            let tail = self.kernel_tail.load(Acquire);
            if c == tail {
                break;
            }
            let h = self.cq_pub.load(Relaxed) as u32;
            // Signed: a stale `c` is behind, never ahead (the spec counts ahead as a violation).
            assert!(
                !before(tail, c) && c.wrapping_sub(h) as i32 <= self.window as i32,
                "claim {c} ahead of tail {tail} / released {h}"
            );
            if c.wrapping_sub(h) >= self.window {
                reached(CQ_WINDOW_FULL);
                break;
            }
            if self
                .claim
                .compare_exchange(c, c.wrapping_add(1), self.o.ticket_cas, Relaxed)
                .is_err()
            {
                continue;
            }
            let i = (c % self.entries()) as usize;
            // SAFETY: the claim gives this lane CQE `c` until it releases it on `cq_pub`.
            let cqe = self.cqes[i].with(|p| unsafe { *p });
            self.dispatch(cqe);
            claimed.push(c);
            if mark_and_advance(&self.cq_pub, c, self.window, self.o).is_some() {
                self.bell
                    .ring(&self.cq_pub, &self.kernel_head, self.rounds, self.o);
            }
        }
        claimed
    }

    /// The slot owner's poll: the result if the slot is DONE.
    fn poll(&self, slot: usize) -> Option<i32> {
        let s = &self.slots[slot];
        // Acquire: pairs with the reaper's release of DONE.
        if s.state.load(Acquire) == slot_word(GEN, DONE) {
            // SAFETY: DONE: the reaper no longer writes the result.
            Some(s.result.with(|p| unsafe { *p }))
        } else {
            None
        }
    }
}

/// The kernel's CQ side: posts the script's CQEs while there is room (head read with acquire, CQE written,
/// tail stored with release) and checks that the head never goes back.
struct CqKernel {
    script: Vec<Cqe>,
    posted: usize,
    tail: u32,
    last_head: u32,
}

impl CqKernel {
    fn pass(&mut self, cq: &Cq) {
        let head = cq.kernel_head.load(Acquire);
        assert!(
            !before(head, self.last_head),
            "cq.head went back: {} -> {head}",
            self.last_head
        );
        assert!(
            !before(self.tail, head),
            "cq.head {head} past tail {}",
            self.tail
        );
        self.last_head = head;
        let mut wrote = false;
        while self.posted < self.script.len() && self.tail.wrapping_sub(head) < cq.entries() {
            let i = (self.tail % cq.entries()) as usize;
            if self.tail.wrapping_sub(START) >= cq.entries() {
                reached(CQE_REUSED);
            }
            let cqe = self.script[self.posted];
            // SAFETY: loom checks that the lane's read of the CQE previously here happens-before this write.
            cq.cqes[i].with_mut(|p| unsafe { *p = cqe });
            self.tail = self.tail.wrapping_add(1);
            self.posted += 1;
            wrote = true;
        }
        if wrote {
            cq.kernel_tail.store(self.tail, Release);
        }
    }
}

/// The kernel posts `script` (slot CQEs; slot `l` is owned by lane `l`) while two lanes each make `passes`
/// reap passes of at most `max` and then poll their slot; after the run the host finishes the bell duty and
/// reaps what is left (the kernel posting the rest).
fn reap_model(
    entries: u32,
    window: u32,
    rounds: u32,
    script: &[Cqe],
    [kernel_passes, passes, max]: [u32; 3],
    o: Orders,
) {
    reap_model_lag(
        entries,
        window,
        rounds,
        script,
        [kernel_passes, passes, max],
        1,
        o,
    );
}

/// [`reap_model`] with the CQ head stored once it is `lag` ahead (§5 step 5).
fn reap_model_lag(
    entries: u32,
    window: u32,
    rounds: u32,
    script: &[Cqe],
    [kernel_passes, passes, max]: [u32; 3],
    lag: u32,
    o: Orders,
) {
    let cq = Arc::new(Cq::new(entries, window, 2, rounds, lag, o));
    let kernel = {
        let cq = cq.clone();
        let script = script.to_vec();
        thread::spawn(move || {
            let mut k = CqKernel {
                script,
                posted: 0,
                tail: START,
                last_head: START,
            };
            for _ in 0..kernel_passes {
                k.pass(&cq);
            }
            k
        })
    };
    let lanes: Vec<_> = (0..2)
        .map(|l| {
            let cq = cq.clone();
            thread::spawn(move || {
                let claimed: Vec<u32> = (0..passes).flat_map(|_| cq.reap(max)).collect();
                (claimed, cq.poll(l))
            })
        })
        .collect();
    let mut k = kernel.join().expect("kernel");
    let mut claimed = Vec::new();
    let mut polled = Vec::new();
    for h in lanes {
        let (c, p) = h.join().expect("lane");
        claimed.extend(c);
        polled.push(p);
    }

    // After the run: the host finishes the duty, then reaps the rest as the kernel posts it (a CQE array entry
    // reused here is not checked against the run: only the kernel thread's posts are).
    let live_reuse = REACHED.with(|r| r.get()) & CQE_REUSED;
    cq.bell.finish(&cq.cq_pub, &cq.kernel_head, o);
    for _ in 0..script.len() + 1 {
        k.pass(&cq);
        claimed.extend(cq.reap(u32::MAX));
        cq.bell.finish(&cq.cq_pub, &cq.kernel_head, o);
    }
    k.pass(&cq);
    REACHED.with(|r| r.set(r.get() & !CQE_REUSED | live_reuse));
    assert_eq!(
        k.posted,
        script.len(),
        "the kernel could not post every CQE"
    );

    let n = script.len() as u32;
    claimed.sort_unstable_by_key(|c| c.wrapping_sub(START));
    let all: Vec<u32> = (0..n).map(|i| START.wrapping_add(i)).collect();
    assert_eq!(claimed, all, "each CQE must be claimed exactly once");
    let p = cq.cq_pub.load(Relaxed);
    assert_eq!(p, START.wrapping_add(n) as u64, "released head / bitmap");
    assert_eq!(
        cq.kernel_head.load(Relaxed),
        p as u32,
        "a released CQE is not covered by cq.head"
    );
    assert_eq!(cq.credits.load(Relaxed), n, "one credit back per slot CQE");
    let fresh = |s: u32| {
        script
            .iter()
            .filter(|c| c.0 == s && c.1 == GEN)
            .map(|c| c.2)
            .next()
    };
    let delivered = (0..2u32).filter(|&s| fresh(s).is_some()).count() as u32;
    assert_eq!(
        cq.foreign.load(Relaxed),
        n - delivered,
        "stale and duplicate CQEs are foreign"
    );
    for (s, p) in polled.into_iter().enumerate() {
        let want = fresh(s as u32);
        if let Some(r) = p {
            assert_eq!(
                Some(r),
                want,
                "slot {s} delivered a result that is not its CQE's"
            );
        }
        assert_eq!(cq.poll(s), want, "slot {s} after the run");
    }
}

/// Two slot CQEs of the current generation and a stale one (foreign) through a 2-entry CQ: CQE array reuse,
/// head and claim wrap past zero.
#[test]
fn reap_two_lanes() {
    let script = [(0, GEN, 10), (1, STALE_GEN, 12), (1, GEN, 11)];
    check(
        PB_D,
        FOREIGN | CQ_WINDOW_FULL | OUT_OF_ORDER | CQE_REUSED,
        move || reap_model(2, 2, 16, &script, [2, 1, 2], SPEC),
    );
}

/// A duplicate of a delivered CQE is foreign; one bell round leaves duty to the next lane or the host.
#[test]
fn reap_duplicate_left_over_duty() {
    let script = [(0, GEN, 10), (0, GEN, 10), (1, GEN, 11)];
    check(
        PB_E,
        ROUNDS_OUT | LANE_TOOK_DUTY | HOST_TOOK_DUTY | FOREIGN | OUT_OF_ORDER,
        move || reap_model(4, 4, 1, &script, [1, 2, 3], SPEC),
    );
}

/// The CQ head stored with a lag of 2 (§5 step 5): a release of one CQE leaves `cq.head` behind, a later one
/// or the host after the run stores it; the kernel never sees the head go back or past the tail, and every CQE
/// is still claimed and delivered exactly once.
#[test]
fn reap_lagging_cq_head() {
    let script = [(0, GEN, 10), (1, GEN, 11), (0, STALE_GEN, 12)];
    check(PB_E, CQ_HEAD_LAGGED | HOST_SETTLED | FOREIGN, move || {
        reap_model_lag(4, 4, 16, &script, [2, 1, 2], 2, SPEC)
    });
}

// ---- weakened orderings: each must make a model fail -----------------------------------------------------

/// A relaxed publication CAS no longer releases the SQE fill: loom finds the kernel reading an SQE whose fill
/// does not happen-before its read (a lane whose CAS did not move the tail hands its SQE to another lane's
/// tail store).
#[test]
#[should_panic(expected = "Causality violation")]
fn weakened_publish_cas() {
    let o = Orders {
        publish: Relaxed,
        ..SPEC
    };
    builder(3).check(move || submit_model(2, 2, 16, [1, 1], 1, o));
}

/// A relaxed DIRTY clear (step a) lets the holder read a stale `sq_pub` after clearing the DIRTY of a lane
/// that advanced it: that advance is never stored into sq.tail (a lost doorbell).
#[test]
#[should_panic(expected = "a published SQE is not covered by sq.tail")]
fn weakened_bell_clear() {
    let o = Orders {
        bell_clear: Relaxed,
        ..SPEC
    };
    builder(3).check(move || submit_model(2, 2, 16, [1, 1], 1, o));
}

/// A relaxed DONE store: the owner reads the slot's result without it happening-before.
#[test]
#[should_panic(expected = "Causality violation")]
fn weakened_slot_done() {
    let o = Orders {
        slot_done: Relaxed,
        ..SPEC
    };
    let script = [(0, GEN, 10), (1, GEN, 11)];
    builder(2).check(move || reap_model(2, 2, 16, &script, [1, 1, 2], o));
}

/// A relaxed LOCK release (step d): the next holder's access to the holder-only `stored` word is not ordered
/// after the previous holder's (two holders at once, as far as memory is concerned).
#[test]
#[should_panic(expected = "Causality violation")]
fn weakened_bell_release() {
    let o = Orders {
        bell_release: Relaxed,
        ..SPEC
    };
    builder(1).check(move || submit_model(2, 3, 1, [2, 1], 1, o));
}

/// The ticket load and CAS as PROTOCOL.md §5 writes them (relaxed): a lane reads a claim taken by another
/// lane, then a `cq.tail` older than the one that lane claimed against, and counts a violation on an honest
/// ring.
#[test]
#[should_panic(expected = "ahead of tail")]
fn weakened_ticket_relaxed() {
    let o = Orders {
        ticket_load: Relaxed,
        ticket_cas: Relaxed,
        ..SPEC
    };
    let script = [(0, GEN, 10), (1, GEN, 11)];
    builder(2).check(move || reap_model(2, 2, 16, &script, [1, 1, 2], o));
}

/// Ad-hoc: `WEAKEN=field cargo test --test loom_protocol -- --ignored weaken_experiment --nocapture` runs the
/// left-over-duty submit model and a reap model with one ordering made relaxed.
#[test]
#[ignore]
fn weaken_experiment() {
    let mut o = SPEC;
    match std::env::var("WEAKEN").unwrap_or_default().as_str() {
        "publish" => o.publish = Relaxed,
        "bell_clear" => o.bell_clear = Relaxed,
        "slot_done" => o.slot_done = Relaxed,
        "bell_set" => o.bell_set = Relaxed,
        "bell_load" => o.bell_load = Relaxed,
        "bell_release" => o.bell_release = Relaxed,
        "ticket" => {
            o.ticket_load = Relaxed;
            o.ticket_cas = Relaxed;
        }
        other => panic!("WEAKEN={other:?}: no such ordering"),
    }
    if std::env::var("MODEL").as_deref() == Ok("two") {
        builder(1).check(move || submit_model(2, 2, 16, [1, 1], 1, o));
    } else if std::env::var("MODEL").as_deref() == Ok("reap") {
        let script = [(0, GEN, 10), (0, GEN, 10), (1, GEN, 11)];
        builder(1).check(move || reap_model(4, 4, 1, &script, [1, 2, 3], o));
    } else {
        builder(1).check(move || submit_model(2, 3, 1, [2, 1], 1, o));
    }
}
