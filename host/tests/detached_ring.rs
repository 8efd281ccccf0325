//! A detached copy of a ring's memory, completed by the caller in the kernel's place: a lane's round trips work
//! on it exactly as on the ring, with the result the caller chose, and its bus counts per operation are the
//! protocol's own (nothing else touches the copy).

use gpu_uring::protocol::{CompletionMode, DeviceRing, Lane, Poll, DEFAULT_BUDGET};
use gpu_uring::ring::{DetachedRing, RingConfig};

fn ring() -> DeviceRing {
    DeviceRing::new(RingConfig {
        lanes: 2,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn a_lane_round_trips_on_a_detached_ring_with_the_result_given() {
    let ring = ring();
    let copy = DetachedRing::copy_of(ring.ring()).unwrap();
    let mut lane = Lane::new(copy.view(), 1);
    assert_eq!(copy.complete(0), 0, "nothing published yet");
    let before = lane.stats().bus;
    let n = 1000;
    for i in 0..n {
        lane.nop(CompletionMode::Slot(1), DEFAULT_BUDGET).unwrap();
        assert_eq!(lane.poll(1).unwrap(), Poll::WouldBlock, "not completed yet");
        assert_eq!(copy.complete(i), 1);
        assert_eq!(lane.wait(1, DEFAULT_BUDGET).unwrap(), i);
    }
    let mut d = lane.stats().bus;
    d.sub(&before);
    let per_op = d.per_op(n as u64);
    assert_eq!(per_op.host_rmw, 0.0, "no RMW on host-shared memory");
    assert!(per_op.local_rmw > 0.0, "{per_op}");
    // The real ring never saw any of it.
    assert_eq!(
        ring.view()
            .u32_at(ring.ring().layout().sq_tail)
            .load(std::sync::atomic::Ordering::Acquire),
        0
    );
}

#[test]
fn skip_success_posts_only_failures_and_fire_and_forget_failures_are_counted() {
    let ring = ring();
    let copy = DetachedRing::copy_of(ring.ring()).unwrap();
    let mut lane = Lane::new(copy.view(), 0);
    lane.nop(CompletionMode::SkipSuccess, DEFAULT_BUDGET)
        .unwrap();
    assert_eq!(copy.complete(0), 1);
    assert_eq!(
        lane.reap(16),
        0,
        "a successful skip-success op posts no CQE"
    );
    lane.nop(CompletionMode::SkipSuccess, DEFAULT_BUDGET)
        .unwrap();
    assert_eq!(copy.complete(-5), 1);
    assert_eq!(lane.reap(16), 1, "a failed one does");
    lane.nop(CompletionMode::FireAndForget, DEFAULT_BUDGET)
        .unwrap();
    assert_eq!(copy.complete(-9), 1);
    assert_eq!(lane.reap(16), 1);
    lane.flush(DEFAULT_BUDGET).unwrap();
    let c = copy.view().local_snapshot();
    assert_eq!((c.skip_failures, c.ff_errors, c.ff_last_error), (1, 2, -9));
}
