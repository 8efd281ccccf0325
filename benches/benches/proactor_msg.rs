//! Messages per second between two proactors, `MSG_RING` vs the fallback (bounded
//! queue + wake eventfd), measured in the same run.
//!
//! A sender thread owns one proactor and calls `send_message` to the target as fast
//! as credits allow (polling its own proactor, which submits the `MSG_RING`
//! entries); the target's thread polls and counts in its message callback. Three
//! configurations: io_uring with `Messaging` native (`MSG_RING`), io_uring with it
//! masked (fallback), epoll (fallback). `MSGS` (default 200 000) sets the count per
//! round; each configuration runs `ROUNDS` (3) rounds, alternating, and the best is
//! printed.
//!
//! Run: `cargo bench -p gpu-uring-benches --bench proactor_msg`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gpu_uring::proactor::{BackendChoice, Capability, CapabilitySet, Options, Proactor};

const ROUNDS: usize = 3;

fn options(name: &str) -> Options {
    let mut o = Options {
        message_capacity: 1024,
        ..Options::default()
    };
    match name {
        "msg_ring" => o.backend = BackendChoice::IoUring,
        "uring_fallback" => {
            o.backend = BackendChoice::IoUring;
            o.allowed_capabilities = CapabilitySet::ALL.without(Capability::Messaging);
        }
        _ => o.backend = BackendChoice::Epoll,
    }
    o
}

/// Sends `n` messages from a fresh sender to a fresh target; messages per second.
fn round(name: &str, n: u64) -> Option<f64> {
    let target = Proactor::new(options(name)).ok()?;
    let sender = Proactor::new(options(name)).ok()?;
    if name == "msg_ring" && !sender.capabilities().is_native(Capability::Messaging) {
        return None;
    }
    let got = Arc::new(AtomicU64::new(0));
    let g2 = got.clone();
    target
        .set_message_callback(move |_| {
            g2.fetch_add(1, Ordering::Relaxed);
        })
        .ok()?;
    // The target becomes its poll owner on its own thread, and its ring is enabled
    // before the first MSG_RING.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let t2 = target.clone();
    let g3 = got.clone();
    let recv = std::thread::spawn(move || {
        t2.poll(Some(Duration::ZERO), |_| {}).expect("poll");
        ready_tx.send(()).expect("ready");
        while g3.load(Ordering::Relaxed) < n {
            t2.poll(Some(Duration::from_millis(1)), |_| {})
                .expect("poll");
        }
    });
    ready_rx.recv().ok()?;
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < n {
        match sender.send_message(&target, sent) {
            Ok(()) => sent += 1,
            Err(e) if e.is_retryable() => {
                sender.poll(Some(Duration::ZERO), |_| {}).expect("poll");
            }
            Err(e) => panic!("{name}: {e}"),
        }
        if sent & 63 == 0 {
            sender.poll(Some(Duration::ZERO), |_| {}).expect("poll");
        }
    }
    while sender.in_flight() > 0 {
        sender
            .poll(Some(Duration::from_millis(1)), |_| {})
            .expect("poll");
    }
    recv.join().ok()?;
    let dt = start.elapsed().as_secs_f64();
    assert_eq!(got.load(Ordering::Relaxed), n, "{name}: every message once");
    Some(n as f64 / dt)
}

fn main() {
    let n: u64 = std::env::var("MSGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let names = ["msg_ring", "uring_fallback", "epoll_fallback"];
    let mut best = [0f64; 3];
    for _ in 0..ROUNDS {
        for (i, name) in names.iter().enumerate() {
            if let Some(r) = round(name, n) {
                best[i] = best[i].max(r);
            }
        }
    }
    println!("proactor_msg: {n} messages per round, best of {ROUNDS}");
    for (name, r) in names.iter().zip(best) {
        if r > 0.0 {
            println!("  {name:<15} {:>12.0} msg/s", r);
        } else {
            println!("  {name:<15} unavailable here");
        }
    }
    if best[0] > 0.0 && best[1] > 0.0 {
        println!(
            "  MSG_RING / fallback (io_uring): {:.2}x",
            best[0] / best[1]
        );
    }
}
