//! The portability layer on the host C++ target: device-local RMWs and host-shared loads/stores with every
//! memory order, under contention from several threads (lanes), the subgroup of one lane and the emulated
//! n-lane subgroup (`Team`), backoff, and the ticket-aggregation and bounded-wait program bodies the GPU kernels
//! run.

use gpu_uring_kernels::{
    backoff_step, fence_device, fence_system, host_subgroup, host_subgroup_collectives,
    ticket_lane, wait_flag, LocalU32, LocalU64, Order, SharedU32, SharedU64, Team,
};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[test]
fn every_operation_with_every_order_on_one_lane() {
    for o in Order::ALL {
        let w = AtomicU32::new(0);
        let l = LocalU32(&w);
        l.store(5, o);
        assert_eq!(l.load(o), 5, "{o:?}");
        assert_eq!(l.fetch_add(3, o), 5);
        assert_eq!(l.fetch_add(u32::MAX, o), 8, "wraps");
        assert_eq!(l.fetch_or(0x30, o), 7);
        assert_eq!(l.fetch_and(0x3c, o), 0x37);
        assert_eq!(l.exchange(9, o), 0x34);
        assert_eq!(l.compare_exchange(9, 10, o), Ok(9));
        assert_eq!(
            l.compare_exchange(9, 11, o),
            Err(10),
            "a failed CAS reports the value found"
        );
        assert_eq!(l.fetch_add_i32(-12, o), 10);
        assert_eq!(w.load(Ordering::Relaxed) as i32, -2);

        let w = AtomicU64::new(u64::MAX - 1);
        let l = LocalU64(&w);
        assert_eq!(l.fetch_add(3, o), u64::MAX - 1);
        assert_eq!(l.load(o), 1, "wraps");
        l.store(1 << 40, o);
        assert_eq!(l.fetch_or(1, o), 1 << 40);
        assert_eq!(l.fetch_and(!(1 << 40), o), (1 << 40) | 1);
        assert_eq!(l.compare_exchange(1, 7 << 33, o), Ok(1));
        assert_eq!(l.compare_exchange(1, 2, o), Err(7 << 33));

        let s = AtomicU32::new(0);
        SharedU32(&s).store(0xdead_beef, o);
        assert_eq!(SharedU32(&s).load(o), 0xdead_beef);
        let s = AtomicU64::new(0);
        SharedU64(&s).store(u64::MAX - 3, o);
        assert_eq!(SharedU64(&s).load(o), u64::MAX - 3);
        fence_device(o);
        fence_system(o);
    }
}

#[test]
fn rmws_from_many_lanes_lose_nothing() {
    const LANES: u32 = 4;
    const OPS: u32 = 20_000;
    let add = AtomicU32::new(0);
    let cas = AtomicU64::new(0);
    let bits = AtomicU64::new(0);
    let mask = AtomicU32::new(u32::MAX);
    std::thread::scope(|s| {
        for lane in 0..LANES {
            let (add, cas, bits, mask) = (&add, &cas, &bits, &mask);
            s.spawn(move || {
                for i in 0..OPS {
                    LocalU32(add).fetch_add(1, Order::Relaxed);
                    // A CAS retry loop: each failure means another lane's CAS succeeded.
                    let c = LocalU64(cas);
                    let mut cur = c.load(Order::Relaxed);
                    while let Err(found) = c.compare_exchange(cur, cur + 1, Order::AcqRel) {
                        cur = found;
                    }
                    // 16 marks per lane, each its own bit.
                    if i % (OPS / 16) == 0 {
                        LocalU64(bits).fetch_or(1 << (lane * 16 + i / (OPS / 16)), Order::Release);
                    }
                }
                LocalU32(mask).fetch_and(!(1 << lane), Order::AcqRel);
            });
        }
    });
    assert_eq!(add.load(Ordering::Relaxed), LANES * OPS);
    assert_eq!(cas.load(Ordering::Relaxed), (LANES * OPS) as u64);
    assert_eq!(bits.load(Ordering::Relaxed), u64::MAX);
    assert_eq!(mask.load(Ordering::Relaxed), u32::MAX << LANES);
}

/// Message passing through a host-shared flag: the payload is written with relaxed stores, the flag with a
/// release store; the reader's acquire load of the flag makes the payload visible (the pattern of every SQE
/// and staging line).
#[test]
fn release_store_publishes_and_acquire_load_sees_the_payload() {
    for round in 0..200u32 {
        let payload: Vec<AtomicU32> = (0..16).map(|_| AtomicU32::new(0)).collect();
        let flag = AtomicU32::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                for (i, w) in payload.iter().enumerate() {
                    SharedU32(w).store(round * 100 + i as u32, Order::Relaxed);
                }
                SharedU32(&flag).store(1, Order::Release);
            });
            s.spawn(|| {
                let polls = AtomicU32::new(0);
                let budget = 1_000_000_000;
                assert!(wait_flag(&flag, budget, &polls) <= budget, "the flag came");
                for (i, w) in payload.iter().enumerate() {
                    assert_eq!(SharedU32(w).load(Order::Relaxed), round * 100 + i as u32);
                }
            });
        });
    }
}

#[test]
fn a_bounded_wait_gives_up_after_its_budget() {
    let flag = AtomicU32::new(0);
    let polls = AtomicU32::new(0);
    assert_eq!(wait_flag(&flag, 20, &polls), 21, "budget + 1: gave up");
    assert_eq!(polls.load(Ordering::Relaxed), 21);
    flag.store(1, Ordering::Release);
    assert_eq!(wait_flag(&flag, 20, &polls), 1, "seen on the first poll");
}

#[test]
fn a_host_subgroup_is_one_lane() {
    // size, mask, leader, elect, rank, ballot(true), ballot(false), broadcast_first(v)
    assert_eq!(host_subgroup(42), [1, 1, 0, 1, 0, 1, 0, 42]);
}

/// A team of 5 threads is one subgroup of 5 lanes: size, mask, the lowest lane elected, ranks, ballots,
/// broadcasts and prefix sums as a GPU subgroup gives them.
#[test]
fn a_host_team_is_one_subgroup() {
    let team = Team::new(5);
    let out: Vec<([u32; 8], [u32; 5])> = std::thread::scope(|s| {
        let team = &team;
        let hs: Vec<_> = (0..5u32)
            .map(|lane| {
                s.spawn(move || {
                    let r = team.run_as(lane, || {
                        (
                            host_subgroup(100 + lane),
                            host_subgroup_collectives(lane + 1),
                        )
                    });
                    // A subgroup of one again after `run_as`.
                    assert_eq!(host_subgroup(7), [1, 1, 0, 1, 0, 1, 0, 7]);
                    r
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("a team thread"))
            .collect()
    });
    for (lane, (basic, coll)) in out.iter().enumerate() {
        let lane = lane as u32;
        // size, mask, leader, elect, rank, ballot(true), ballot(false), broadcast_first(v)
        assert_eq!(
            *basic,
            [5, 0x1f, 0, u32::from(lane == 0), lane, 0x1f, 0, 100],
            "lane {lane}"
        );
        // ballot(odd), exclusive_sum(lane + 1), total, broadcast_first(lane + 1), synced
        let below: u32 = (1..=lane).sum();
        assert_eq!(*coll, [0b01010, below, 15, 1, 1], "lane {lane}");
    }
}

/// The ticket probe in emulated subgroups of 8: the elected lane takes its subgroup's tickets with one RMW.
#[test]
fn ticket_aggregation_in_subgroups_of_eight() {
    const N: u32 = 32;
    let local = [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)];
    let shared: Vec<AtomicU32> = (0..=N).map(|_| AtomicU32::new(0)).collect();
    let teams: Vec<Team> = (0..N / 8).map(|_| Team::new(8)).collect();
    std::thread::scope(|s| {
        for lane in 0..N {
            let (local, shared, teams) = (&local, &shared, &teams);
            s.spawn(move || {
                teams[(lane / 8) as usize].run_as(lane % 8, || ticket_lane(local, shared, lane))
            });
        }
    });
    assert_eq!(shared[N as usize].load(Ordering::Acquire), 1);
    let mut seen: Vec<u32> = shared[..N as usize]
        .iter()
        .map(|w| w.load(Ordering::Relaxed))
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=N).collect::<Vec<_>>(),
        "each lane holds one ticket"
    );
    // Each subgroup's tickets are contiguous and in rank order: lane 8t + i holds ticket 8b + i.
    for t in 0..N / 8 {
        let base = (0..N)
            .find(|&k| shared[k as usize].load(Ordering::Relaxed) == 8 * t + 1)
            .expect("the team's first lane has a ticket");
        assert_eq!(base % 8, 0);
        for i in 0..8 {
            assert_eq!(
                shared[(base + i) as usize].load(Ordering::Relaxed),
                8 * t + i + 1
            );
        }
    }
}

#[test]
fn backoff_grows_to_its_cap() {
    assert_eq!(backoff_step(0), 0);
    assert_eq!(backoff_step(3), 3);
    assert_eq!(backoff_step(100), 7);
}

/// The ticket probe kernel's lane body on CPU threads: every ticket is handed out once, every lane's
/// ticket word holds its id, the bitmap has every lane, and `done` is published after all of them.
#[test]
fn ticket_aggregation_hands_out_each_ticket_once() {
    const N: u32 = 64;
    let local = [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)];
    let shared: Vec<AtomicU32> = (0..=N).map(|_| AtomicU32::new(0)).collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (local, shared) = (&local, &shared);
            s.spawn(move || {
                for lane in (t..N).step_by(4) {
                    ticket_lane(local, shared, lane);
                }
            });
        }
    });
    assert_eq!(
        shared[N as usize].load(Ordering::Acquire),
        1,
        "done published"
    );
    let mut seen: Vec<u32> = shared[..N as usize]
        .iter()
        .map(|w| w.load(Ordering::Relaxed))
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=N).collect::<Vec<_>>(),
        "each lane holds one ticket"
    );
    assert_eq!(local[0].load(Ordering::Relaxed), N);
    assert_eq!(local[1].load(Ordering::Relaxed), N);
    assert_eq!(local[2].load(Ordering::Relaxed), u32::MAX);
}
