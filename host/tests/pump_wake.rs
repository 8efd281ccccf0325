//! The idle pump thread parks on its bell and a CPU-device lane that publishes wakes it: the pump parks when
//! idle, a lane's request is served long before the park's timeout, no wake-up is lost when publications race
//! the pump's parking, and `kick` and `stop` end a park at once. The parks here are minutes long, so a pump
//! that missed a ring shows up as a wait far past the (generous) 30 s bounds; no bound is a speed target.

mod pump_util;

use std::time::{Duration, Instant};

use gpu_uring::backend::cpu::run_queue_lanes;
use gpu_uring::pump::{IdleConfig, Pump, PumpConfig, QueueLane, Request};
use pump_util::*;

/// Parks of `park` from the first idle pass on (no spin, no doubling): only a ring ends one early.
fn parking(park: Duration) -> IdleConfig {
    IdleConfig {
        spin: Duration::ZERO,
        min_park: park,
        max_park: park,
    }
}

/// A pump whose every idle park lasts two minutes unless rung.
fn long_parking_pump() -> Pump {
    Pump::spawn(PumpConfig {
        slots: 16,
        idle: parking(Duration::from_secs(120)),
        ..Default::default()
    })
    .unwrap()
}

/// Waits (bounded) until the pump thread is parked on its bell.
fn until_parked(p: &Pump) {
    let wake = p.lane_wake();
    assert!(
        eventually(Duration::from_secs(30), || wake.pump_parked()),
        "an idle pump parks on its bell"
    );
    assert!(p.stats().idle_parks > 0);
}

#[test]
fn an_idle_pump_parks_and_a_lane_that_publishes_wakes_it() {
    let p = long_parking_pump();
    for round in 0..3 {
        until_parked(&p);
        let t = Instant::now();
        // A CPU-device lane: its idle wait rings the bell before it parks.
        let r = run_queue_lanes(&p, 1, |lane| {
            let slot = lane.alloc(1 << 16).unwrap();
            lane.publish(slot, &Request::nop().tag(round));
            let c = lane.wait_until(slot, deadline());
            lane.free(slot);
            c
        })
        .unwrap();
        let c = r[0].unwrap();
        assert!(c.done && c.tag == round, "{c:?}");
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "served after {:?}: the ring did not end the 120 s park",
            t.elapsed()
        );
    }
    let st = p.stop().unwrap();
    assert_eq!(st.served, 3);
}

#[test]
fn kick_wakes_a_parked_pump_for_a_lane_that_cannot_ring() {
    let p = long_parking_pump();
    until_parked(&p);
    // A lane without the CPU device's idle wait (as a GPU lane) never rings; the host kicks instead.
    let mut lane = QueueLane::new(p.view(), 0);
    let slot = lane.alloc(16).unwrap();
    lane.publish(slot, &Request::nop());
    let t = Instant::now();
    p.kick();
    let c = lane.wait_until(slot, deadline()).unwrap();
    assert!(c.done, "{c:?}");
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    lane.free(slot);
    p.stop().unwrap();
}

#[test]
fn stop_ends_a_park_at_once() {
    let p = long_parking_pump();
    until_parked(&p);
    let t = Instant::now();
    let st = p.stop().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "stop took {:?}",
        t.elapsed()
    );
    assert_eq!(st.served, 0);
}

/// Many round trips with a pump that parks the moment it finds nothing (no spin): each publication races the
/// pump's parking. The lane rings exactly once per request, right after publishing (what the CPU device's
/// idle wait does before a lane parks), and then only polls; a ring lost to the race would leave the request
/// unserved for the pump's whole two-minute park, far past the wait's deadline.
#[test]
fn no_wake_up_is_lost_when_publications_race_the_pumps_park() {
    let p = long_parking_pump();
    let wake = p.lane_wake();
    let mut lane = QueueLane::new(p.view(), 0);
    let t = Instant::now();
    for i in 0..10_000u64 {
        let slot = lane.alloc(1 << 16).unwrap();
        lane.publish(slot, &Request::nop().tag(i));
        wake.ring_if_parked();
        let c = lane
            .wait_until(slot, deadline())
            .unwrap_or_else(|e| panic!("round trip {i}: {e}"));
        assert!(c.done && c.tag == i, "{c:?}");
        lane.free(slot);
    }
    let el = t.elapsed();
    let st = p.stop().unwrap();
    assert_eq!(st.served, 10_000);
    eprintln!("10 000 round trips in {el:?}, {} idle parks", st.idle_parks);
}

/// The same races with several CPU-device lanes (their idle wait rings the bell), all served.
#[test]
fn lanes_racing_the_pumps_park_are_all_served() {
    let p = long_parking_pump();
    let r = run_queue_lanes(&p, 4, |lane| {
        let id = u64::from(lane.id());
        for k in 0..2_500u64 {
            let tag = id << 32 | k;
            let slot = lane.alloc(1 << 16).unwrap();
            lane.publish(slot, &Request::nop().tag(tag));
            let c = lane.wait_until(slot, deadline())?;
            lane.free(slot);
            assert!(c.done && c.tag == tag, "{c:?}");
        }
        Ok::<(), gpu_uring::pump::QueueError>(())
    })
    .unwrap();
    for (id, r) in r.iter().enumerate() {
        assert!(r.is_ok(), "lane {id}: {r:?}");
    }
    assert_eq!(p.stop().unwrap().served, 10_000);
}
