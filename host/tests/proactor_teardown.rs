//! Resource release after teardown, for every backend configuration: no descriptor
//! and no operation resource outlives a dropped proactor, even with operations in
//! flight. Descriptor counts are process-wide, so this binary holds a single test
//! that runs the configurations one after another (nothing else opens fds meanwhile).

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

mod proactor_common;
use gpu_uring::proactor::*;
use proactor_common::configs;

const LONG: Duration = Duration::from_secs(10);

fn drain_one(p: &Proactor) {
    let end = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    while n == 0 {
        assert!(Instant::now() < end);
        p.poll(Some(Duration::from_millis(50)), |_| n += 1).unwrap();
    }
}

fn teardown_round(name: &str, opts: &Options, file: &std::fs::File, round: usize) {
    let ev = Event::new().unwrap();
    let n = Notification::new();
    let p = Proactor::new(opts.clone()).unwrap();
    p.register_buffers(2, 4096).unwrap();
    p.register_files(&[file.as_fd()]).unwrap();
    let mut ops = vec![
        Operation::timer(LONG),
        Operation::timer_at(Deadline::after(LONG)),
        Operation::event_wait(&ev),
        Operation::event_wait(&ev),
        Operation::notification_wait(&n, n.epoch()),
        Operation::read_fixed(Target::Fixed(0), p.fixed_buffer(0).unwrap(), 0, 4096),
        Operation::nop(),
    ];
    let mut ids = Vec::new();
    p.submit_batch(&mut ops, &mut ids).unwrap();
    let mut linked = vec![
        Operation::timer(LONG),
        Operation::event_wait(&ev),
        Operation::nop(),
    ];
    p.submit_linked(&mut linked, &mut ids).unwrap();
    let fut = p.submit_future(Operation::timer(LONG)).unwrap();
    if round % 2 == 1 {
        // Let the kernel start everything before teardown.
        drain_one(&p);
        p.poll(Some(Duration::from_millis(5)), |_| {}).unwrap();
    }
    let fut2 = p.submit_future(Operation::event_wait(&ev)).unwrap();
    drop(fut2);
    assert!(ev.handle_count() >= 2);
    drop(p);
    drop(fut);
    assert_eq!(
        ev.handle_count(),
        1,
        "{name} round {round}: in-flight event waits released"
    );
    assert_eq!(
        n.handle_count(),
        1,
        "{name} round {round}: notification waits released"
    );
}

/// Simple operations (long timers, an fsync, nops) in flight at drop: submitted on
/// this thread before or after it polled (simple slots on io_uring), from inside a
/// callback (ordinary slots), and from another thread, either while nobody polls or
/// while this thread blocks in poll (ordinary slots on io_uring).
fn simple_teardown_round(opts: &Options, file: &std::fs::File, round: usize) {
    let p = Proactor::new(opts.clone()).unwrap();
    let long = [
        SimpleOp::timer(LONG),
        SimpleOp::timer_at(Deadline::after(LONG)),
        SimpleOp::timer(LONG),
    ];
    if round % 2 == 1 {
        p.poll(Some(Duration::ZERO), |_| {}).unwrap();
    }
    p.submit_simple(&long, &mut []).unwrap();
    p.submit_simple(&[SimpleOp::fsync(file, false), SimpleOp::nop()], &mut [])
        .unwrap();
    // From a callback.
    p.submit_simple(&[SimpleOp::nop()], &mut []).unwrap();
    let mut n = 0;
    let end = Instant::now() + Duration::from_secs(10);
    while n == 0 {
        assert!(Instant::now() < end);
        p.poll(Some(Duration::from_millis(50)), |_| {
            if n == 0 {
                p.submit_simple(&long, &mut []).unwrap();
            }
            n += 1;
        })
        .unwrap();
    }
    // From another thread, nobody polling.
    let p2 = p.clone();
    std::thread::spawn(move || p2.submit_simple(&long, &mut []).unwrap())
        .join()
        .unwrap();
    // From another thread while this one blocks in poll (the submission wakes it).
    let p2 = p.clone();
    let th = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        // One call: a second one could race this thread's next poll for the poll
        // mutex (see simple_concurrent_submitters in proactor_conformance.rs).
        let mut ops = long.to_vec();
        ops.push(SimpleOp::nop());
        p2.submit_simple(&ops, &mut []).unwrap();
    });
    let mut woke = false;
    let end = Instant::now() + Duration::from_secs(10);
    while !woke {
        assert!(Instant::now() < end, "the submission did not wake poll");
        p.poll(Some(Duration::from_secs(5)), |_| woke = true)
            .unwrap();
    }
    th.join().unwrap();
    assert!(
        p.in_flight() >= 12,
        "long timers in flight: {}",
        p.in_flight()
    );
    if round % 2 == 0 {
        drop(p);
    } else {
        // The last handle dropped on another thread.
        std::thread::spawn(move || drop(p)).join().unwrap();
    }
}

#[test]
fn teardown_releases_fds_and_resources() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    std::fs::write(&path, vec![7u8; 8192]).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    for (name, opts) in configs() {
        match Proactor::new(opts.clone()) {
            Ok(p) => drop(p),
            Err(e @ Error::Unavailable { .. }) => {
                eprintln!("SKIP teardown [{name}]: {e}");
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
        }
        let before = open_fd_count();
        for round in 0..4 {
            teardown_round(name, &opts, &file, round);
        }
        for round in 0..4 {
            simple_teardown_round(&opts, &file, round);
        }
        for _ in 0..20 {
            let p = Proactor::new(opts.clone()).unwrap();
            p.submit(Operation::nop()).unwrap();
            drain_one(&p);
            p.submit(Operation::timer(LONG)).unwrap();
            p.poll(Some(Duration::ZERO), |_| {}).unwrap();
        }
        assert_eq!(
            open_fd_count(),
            before,
            "{name}: descriptor leak after teardown"
        );
        eprintln!(
            "{name}: {before} descriptors before and after 28 proactors with operations in flight"
        );
    }
}
