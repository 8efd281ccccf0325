//! Model checks (loom) of the io_queue hand-off (PROTOCOL.md §Q3, §Q4, §Q6, §Q7): slot ownership in
//! device-local memory, the request published with its sequence by the lane, the completion and its sequence
//! written by the pump, FENCE's before set, and withdrawal after the pump stopped — with no RMW on a
//! host-shared word.
//!
//! The model re-states the spec over loom atomics, with the orderings the spec names; it does not call the
//! library (its words live in an mmap'd arena loom cannot see). The device-local ownership word and the
//! host-shared sequence words (`req_seq`, `done_seq`, `pump_state`) are loom atomics; the request fields and
//! the completion fields are loom `UnsafeCell`s, so loom reports any read of them that the release/acquire
//! chain does not order after its write (the pump reading a request before it is filled, a lane reading a
//! result before the pump wrote it, a new owner filling a slot the pump still reads). Host-shared words are
//! only loaded and stored; the one RMW is the allocation CAS on the device-local word. Sequences start at the
//! top of their 30 bits, so every model wraps.
//!
//! Checked: every publication is either served once with its own fields (the lane reads back its own value)
//! or withdrawn and never served, never both; the pump never writes a slot word after its stop; a FENCE's
//! before set holds every request published before it. The `weakened_*` tests make one ordering weaker and
//! expect loom to find the failure.

use loom::cell::UnsafeCell;
use loom::model::Builder;
use loom::sync::atomic::{AtomicU32, Ordering, Ordering::*};
use loom::sync::Arc;
use loom::thread;

const SEQ_SHIFT: u32 = 2;
const SEQ_MASK: u32 = u32::MAX >> SEQ_SHIFT;
const FREE: u32 = 0;
const ALLOCATED: u32 = 1;
const PUBLISHED: u32 = 2;
const STATE: u32 = 3;
const RUNNING: u32 = 1;
const STOPPED: u32 = 3;

fn next_seq(s: u32) -> u32 {
    s.wrapping_add(1) & SEQ_MASK
}

/// The orderings a weakening test varies.
#[derive(Clone, Copy)]
struct Orders {
    /// §Q3.2: the lane's store of the request sequence: Release.
    publish: Ordering,
    /// §Q4.3: the pump's load of a changed sequence before it reads the fields: Acquire.
    claim: Ordering,
    /// §Q4.1: the pump's store of the completion sequence: Release.
    complete: Ordering,
    /// §Q7: the pump's last store of its state: Release.
    stop: Ordering,
}

const SPEC: Orders = Orders {
    publish: Release,
    claim: Acquire,
    complete: Release,
    stop: Release,
};

/// One slot: device-local ownership word, host-shared inbox (fields, `req_seq`) and outbox (`result`,
/// `done_seq`), and the pump state. `served[l]` counts the pump's completions of lane `l`'s requests (model
/// bookkeeping, not protocol).
struct Slot {
    own: AtomicU32,
    req_seq: AtomicU32,
    field: UnsafeCell<u32>,
    result: UnsafeCell<u32>,
    done_seq: AtomicU32,
    pump_state: AtomicU32,
    served: [AtomicU32; 2],
}

impl Slot {
    fn new() -> Slot {
        // A slot used before: its sequence at the top of 30 bits, completed.
        Slot {
            own: AtomicU32::new(SEQ_MASK << SEQ_SHIFT),
            req_seq: AtomicU32::new(SEQ_MASK),
            field: UnsafeCell::new(0),
            result: UnsafeCell::new(0),
            done_seq: AtomicU32::new(SEQ_MASK),
            pump_state: AtomicU32::new(RUNNING),
            served: [AtomicU32::new(0), AtomicU32::new(0)],
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    NoSlot,
    Served(u32),
    Withdrawn,
}

/// A lane: allocate (device-local CAS), fill, publish, wait for its sequence or the pump's stop, free.
fn lane(s: &Slot, id: u32, o: Orders) -> Outcome {
    let w = s.own.load(Relaxed);
    if w & STATE != FREE
        || s.own
            .compare_exchange(w, w | ALLOCATED, Acquire, Relaxed)
            .is_err()
    {
        return Outcome::NoSlot;
    }
    let seq = next_seq(w >> SEQ_SHIFT);
    let value = 100 + id;
    // SAFETY: (model) the lane owns the slot; loom checks no pump read races with this write.
    s.field.with_mut(|f| unsafe { *f = value });
    s.req_seq.store(seq, o.publish);
    s.own.store(seq << SEQ_SHIFT | PUBLISHED, Relaxed);
    let out = loop {
        if s.done_seq.load(Acquire) == seq {
            // SAFETY: (model) ordered after the pump's write by the acquire above; loom checks it.
            break Outcome::Served(s.result.with(|r| unsafe { *r }));
        }
        if s.pump_state.load(Acquire) == STOPPED {
            if s.done_seq.load(Acquire) == seq {
                // SAFETY: (model) as above.
                break Outcome::Served(s.result.with(|r| unsafe { *r }));
            }
            s.own.store(seq << SEQ_SHIFT | ALLOCATED, Relaxed);
            break Outcome::Withdrawn;
        }
        thread::yield_now();
    };
    // Free: release, so this lane's reads come before the next owner's writes.
    s.own.store(seq << SEQ_SHIFT | FREE, Release);
    out
}

/// One pump scan of the slot: a changed sequence is a new request, served at once (the model's pump holds
/// nothing across scans).
fn pump_scan(s: &Slot, seen: &mut u32, o: Orders) {
    if s.req_seq.load(Relaxed) == *seen {
        return;
    }
    let v = s.req_seq.load(o.claim);
    if v == *seen {
        return;
    }
    *seen = v;
    // SAFETY: (model) ordered after the lane's write by the claim's acquire; loom checks it.
    let f = s.field.with(|f| unsafe { *f });
    // SAFETY: (model) only the pump writes the result; lanes read it after acquiring done_seq.
    s.result.with_mut(|r| unsafe { *r = f });
    if let Some(c) = s.served.get((f as usize).wrapping_sub(100)) {
        c.store(c.load(Relaxed) + 1, Relaxed);
    }
    s.done_seq.store(v, o.complete);
}

/// Two lanes take turns on one slot while the pump serves for a bounded number of scans, sweeps once more and
/// stops. Every publication is served once with its own value, or withdrawn and never served.
fn handoff(o: Orders, scans: u32) {
    let mut b = Builder::new();
    b.preemption_bound = Some(2);
    b.check(move || {
        let s = Arc::new(Slot::new());
        let lanes: Vec<_> = (0..2)
            .map(|id| {
                let s = s.clone();
                thread::spawn(move || {
                    let first = lane(&s, id, o);
                    // Lane 0 goes twice, so a freed slot is reused while the pump may still scan.
                    let second = if id == 0 {
                        lane(&s, id, o)
                    } else {
                        Outcome::NoSlot
                    };
                    (first, second)
                })
            })
            .collect();
        let p = {
            let s = s.clone();
            thread::spawn(move || {
                let mut seen = SEQ_MASK;
                for _ in 0..scans {
                    pump_scan(&s, &mut seen, o);
                    thread::yield_now();
                }
                // The last sweep, then the stop: nothing is written after it.
                pump_scan(&s, &mut seen, o);
                s.pump_state.store(STOPPED, o.stop);
            })
        };
        let outs: Vec<_> = lanes.into_iter().map(|t| t.join().unwrap()).collect();
        p.join().unwrap();
        for (id, (a, b)) in outs.iter().enumerate() {
            let served = [a, b]
                .iter()
                .filter(|x| matches!(x, Outcome::Served(_)))
                .count() as u32;
            for x in [a, b] {
                if let Outcome::Served(v) = x {
                    assert_eq!(*v, 100 + id as u32, "a lane got another request's result");
                }
            }
            assert_eq!(
                s.served[id].load(Relaxed),
                served,
                "lane {id}: {a:?} {b:?}: served by the pump ≠ seen served by the lane"
            );
        }
        assert_eq!(s.own.load(Relaxed) & STATE, FREE);
    });
}

#[test]
fn handoff_serves_once_or_withdraws() {
    handoff(SPEC, 2);
}

#[test]
#[should_panic]
fn weakened_publish_is_caught() {
    handoff(
        Orders {
            publish: Relaxed,
            ..SPEC
        },
        2,
    );
}

#[test]
#[should_panic]
fn weakened_stop_is_caught() {
    handoff(
        Orders {
            stop: Relaxed,
            ..SPEC
        },
        1,
    );
}

#[test]
#[should_panic]
fn weakened_complete_is_caught() {
    handoff(
        Orders {
            complete: Relaxed,
            ..SPEC
        },
        2,
    );
}

/// §Q6: a lane publishes a request in slot 0 and then a FENCE in slot 1; another lane publishes in slot 0's
/// place nothing. The pump scans slot 1 first; once it claims the FENCE (acquire), a fresh relaxed scan of
/// slot 0 must see the request published before it — the FENCE's before set is complete.
fn fence_before_set(claim: Ordering, publish: Ordering) {
    let mut b = Builder::new();
    b.preemption_bound = Some(3);
    b.check(move || {
        let req = Arc::new([AtomicU32::new(SEQ_MASK), AtomicU32::new(SEQ_MASK)]);
        let lane = {
            let req = req.clone();
            thread::spawn(move || {
                req[0].store(0, publish);
                req[1].store(0, publish);
            })
        };
        let mut fenced = false;
        for _ in 0..3 {
            if req[1].load(claim) == 0 {
                fenced = true;
                break;
            }
            thread::yield_now();
        }
        if fenced {
            assert_eq!(
                req[0].load(Relaxed),
                0,
                "the FENCE was claimed but a request published before it was not seen"
            );
        }
        lane.join().unwrap();
    });
}

#[test]
fn fence_sees_everything_published_before_it() {
    fence_before_set(Acquire, Release);
}

#[test]
#[should_panic]
fn weakened_fence_claim_is_caught() {
    fence_before_set(Relaxed, Release);
}
