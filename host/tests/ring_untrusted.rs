//! The host treats every arena word the device can write as untrusted: device code that corrupts the control
//! block starves only its own ring's lanes. The host never panics, never spins, and still shuts down cleanly
//! (waker joined, ring fd closed, arena unmapped).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gpu_uring::local_off;
use gpu_uring::protocol::shared::TAG_FF;
use gpu_uring::protocol::Lane;
use gpu_uring::protocol::QuiesceError;
use gpu_uring::ring::{RingConfig, Sqe};

/// Threads of this process named like the ring's waker.
fn waker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "gpu-uring-waker")
        .count()
}

/// Device code that ignores the protocol — writes SQEs and the SQ tail itself, without credits — publishes
/// more NOPs than the CQ holds while nobody reaps: the kernel keeps the rest in its overflow list and raises
/// IORING_SQ_CQ_OVERFLOW. The waker's flushes move nothing while nobody reaps, so it must back off instead of
/// spinning on the flag.
#[test]
fn waker_backs_off_while_an_overflow_flush_moves_nothing() {
    let _serial = common::serial();
    let ring = common::ring(RingConfig {
        sq_entries: 8,
        lanes: 1,
        ..Default::default()
    });
    let v = ring.view();
    let l = ring.layout();
    let mut nop = Sqe::from_entry(&io_uring::opcode::Nop::new().build());
    nop.flags |= io_uring::squeue::Flags::FIXED_FILE.bits();
    nop.user_data = TAG_FF | 0xffff_0000;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (head, tail) = (v.u32_at(l.sq_head), v.u32_at(l.sq_tail));
    let mut published = 0u32;
    while published < 4 * l.cq_entries {
        assert!(
            Instant::now() < deadline,
            "the kernel stopped consuming SQEs"
        );
        if published.wrapping_sub(head.load(Ordering::Acquire)) < l.sq_entries {
            v.write_sqe(published, &nop);
            published += 1;
            tail.store(published, Ordering::Release);
        } else {
            std::thread::yield_now();
        }
    }
    // Wait until the kernel has overflowed.
    let flags = v.u32_at(l.sq_flags);
    while flags.load(Ordering::Acquire) & 2 == 0 {
        assert!(Instant::now() < deadline, "the CQ never overflowed");
        std::thread::sleep(Duration::from_millis(1));
    }
    let before = ring.waker_stats().overflow_flushes;
    std::thread::sleep(Duration::from_secs(1));
    let flushes = ring.waker_stats().overflow_flushes - before;
    assert!(
        flushes <= 30,
        "{flushes} overflow flushes in one second with nobody reaping: the waker does not back off"
    );
    // The host's quiesce sees more credits than the pool: a violation, reported at once.
    let t = Instant::now();
    assert!(matches!(
        ring.try_quiesce(Duration::from_secs(5)),
        Err(QuiesceError::Violation(_))
    ));
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(ring.violations().host_detected >= 1);
}

/// A device thread that keeps rewriting the control block with wild values while the host quiesces and drops
/// the ring: no panic, a bounded drop, no fd or thread left behind.
#[test]
fn corrupted_control_words_during_quiesce_and_drop_never_panic_or_leak() {
    let _serial = common::serial();
    let fds = common::fd_count();
    let threads = waker_threads();
    for word in [
        local_off!(cq_pub),
        local_off!(cq_claim),
        local_off!(sq_pub),
        local_off!(sq_reserve),
        local_off!(cq_credits),
    ] {
        let ring = common::ring(RingConfig {
            lanes: 2,
            ..Default::default()
        });
        let v = ring.view();
        let stop = AtomicBool::new(false);
        let t = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut x = 0x9e37_79b9_7f4a_7c15u64;
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    v.local32(word).store(x as u32, Ordering::Relaxed);
                    std::thread::yield_now();
                }
            });
            // Stops the rewriting thread however this closure ends (a panic would otherwise leave the scope
            // waiting for it forever).
            struct StopOnDrop<'a>(&'a AtomicBool);
            impl Drop for StopOnDrop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Relaxed);
                }
            }
            let _stop = StopOnDrop(&stop);
            // Some real traffic too, from a lane that keeps going whatever it gets back.
            let mut lane = Lane::new(v, 0);
            for _ in 0..200 {
                let _ = lane.nop(gpu_uring::protocol::CompletionMode::FireAndForget, 4);
                let _ = lane.reap(8);
            }
            let _ = ring.try_quiesce(Duration::from_millis(200));
        });
        drop(ring);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "word {word}: quiesce and drop are bounded ({:?})",
            t.elapsed()
        );
    }
    assert_eq!(common::fd_count(), fds, "every ring fd closed");
    assert_eq!(waker_threads(), threads, "every waker joined");
}

/// A ring dropped while its owner unwinds from a panic still stops its waker.
#[test]
fn a_ring_dropped_by_a_panic_still_joins_its_waker() {
    let _serial = common::serial();
    let threads = waker_threads();
    let fds = common::fd_count();
    let r = std::panic::catch_unwind(|| {
        let _ring = common::ring(RingConfig {
            lanes: 1,
            ..Default::default()
        });
        panic!("the owner panics while the ring is alive");
    });
    assert!(r.is_err());
    assert_eq!(waker_threads(), threads);
    assert_eq!(common::fd_count(), fds);
}
