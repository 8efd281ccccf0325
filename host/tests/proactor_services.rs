//! Event sources, timeline semaphores, device fences, cross-proactor messages,
//! relays and teardown with each in flight: every scenario written once and run on
//! io_uring (native, no single issuer, every capability emulated) and on epoll (see
//! `conformance!` at the end). Every wait is bounded.
//!
//! Scenarios (one function each):
//! event sources: an eventfd fires the callback; it fires again for each set
//! (drained in the callback); `unregister` stops it; dropping the handle stops it;
//! unregistering from its own callback; a writable socket; a readable socket; an
//! invalid descriptor reports `EBADF` once; 32 sources at once; registered from
//! another thread while `poll` blocks; unregistered from another thread; counted by
//! `in_flight` until unregistered; a hang-up; two sources on one descriptor;
//! semaphores: signal and query; values only increase; a wait already satisfied; a
//! wait satisfied later; signalled from another thread while `poll` blocks; a wait
//! as a future; wait-all; wait-any with the index; wait-all with one failed; wait-any
//! with one failed and one reached; wait-any with all failed; failure delivered to
//! 1 000 waiting operations; failure delivered to futures; a wait after the failure;
//! a signal after the failure; cancelling a wait (no subscription left); dropping a
//! future (no subscription left); a thread-blocking wait; its timeout; its failure;
//! ten waits for increasing values complete in step; a wait in a linked sequence; an
//! empty wait list refused; concurrent signallers; cancelling a wait-any;
//! fences: import of an eventfd-like descriptor; import of one already readable;
//! import from another thread while `poll` blocks; export then signal; export of a
//! reached value; export then failure; export of one semaphore imported into
//! another; teardown with an import pending fails the semaphore; the capability
//! reported; 16 imports at once;
//! messages: posting to oneself; between two proactors (by `MSG_RING` where
//! native); 4 000 messages from two sending threads, none lost or duplicated; a
//! full target refuses then recovers; messages before a callback wait for it;
//! replacing the callback; a target that has never polled (ring still disabled);
//! ping-pong from callbacks; the capability reported; zero capacity refused; counts;
//! from an epoll proactor to this one;
//! relays: event to event once (kernel-linked where native); descriptor to event;
//! event to notification; notification to event; semaphore to event; event to
//! semaphore; a chain of three; a persistent relay firing three times; unregister
//! stops it; an invalid descriptor faults it; persistent semaphore to semaphore; a
//! failed sink semaphore faults it; native reported only where kernel-linked;
//! teardown: with an event source, a semaphore wait, a relay, and messages in flight.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod proactor_common;
use gpu_uring::proactor::*;
use proactor_common::svc::*;
use proactor_common::Config;

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

// ---------------------------------------------------------------------------------
// Event sources

fn es_fires_on_eventfd(t: &Ctx) {
    let p = t.proactor();
    let ev = Event::new().unwrap();
    let n = counter();
    let (n2, ev2) = (n.clone(), ev.clone());
    let src = p
        .register_event_source(&ev, Interest::READABLE, move |r| {
            assert!(r.unwrap() & libc::POLLIN as u32 != 0);
            ev2.reset().unwrap();
            n2.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    ev.set().unwrap();
    drive(&p, || n.load(Ordering::SeqCst) == 1);
    assert_eq!(src.fired(), 1);
}

fn es_fires_repeatedly(t: &Ctx) {
    let p = t.proactor();
    let ev = Event::new().unwrap();
    let n = counter();
    let (n2, ev2) = (n.clone(), ev.clone());
    let _src = p
        .register_event_source(&ev, Interest::READABLE, move |_| {
            ev2.reset().unwrap();
            n2.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    for i in 1..=3 {
        ev.set().unwrap();
        drive(&p, || n.load(Ordering::SeqCst) >= i);
    }
    poll_for(&p, Duration::from_millis(30));
    assert_eq!(n.load(Ordering::SeqCst), 3, "one callback per set");
}

fn es_unregister_stops(t: &Ctx) {
    let p = t.proactor();
    let ev = Event::new().unwrap();
    let n = counter();
    let n2 = n.clone();
    let src = p
        .register_event_source(&ev, Interest::READABLE, move |_| {
            n2.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    src.unregister();
    ev.set().unwrap();
    assert!(poll_for(&p, Duration::from_millis(50)).is_empty());
    assert_eq!(n.load(Ordering::SeqCst), 0);
    assert_eq!(p.in_flight(), 0);
}

fn es_drop_unregisters(t: &Ctx) {
    let p = t.proactor();
    let ev = Event::new().unwrap();
    let n = counter();
    let n2 = n.clone();
    drop(
        p.register_event_source(&ev, Interest::READABLE, move |_| {
            n2.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap(),
    );
    ev.set().unwrap();
    poll_for(&p, Duration::from_millis(50));
    assert_eq!(n.load(Ordering::SeqCst), 0);
    assert_eq!(p.in_flight(), 0);
}

fn es_unregister_from_callback(t: &Ctx) {
    let p = t.proactor();
    let ev = Event::new().unwrap();
    let n = counter();
    let slot: Arc<Mutex<Option<EventSource>>> = Arc::new(Mutex::new(None));
    let (n2, slot2) = (n.clone(), slot.clone());
    let src = p
        .register_event_source(&ev, Interest::READABLE, move |_| {
            n2.fetch_add(1, Ordering::SeqCst);
            if let Some(s) = slot2.lock().unwrap().as_ref() {
                s.unregister();
            }
        })
        .unwrap();
    *slot.lock().unwrap() = Some(src);
    ev.set().unwrap(); // never reset: a live source would fire again and again
    drive(&p, || n.load(Ordering::SeqCst) >= 1);
    poll_for(&p, Duration::from_millis(50));
    assert_eq!(n.load(Ordering::SeqCst), 1);
    assert_eq!(p.in_flight(), 0);
}

fn es_writable_socket(t: &Ctx) {
    let p = t.proactor();
    let (a, _b) = pair();
    let n = counter();
    let n2 = n.clone();
    let src = p
        .register_event_source(&a, Interest::WRITABLE, move |r| {
            assert!(r.unwrap() & libc::POLLOUT as u32 != 0);
            n2.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    drive(&p, || n.load(Ordering::SeqCst) >= 1);
    src.unregister();
}

fn es_readable_socket(t: &Ctx) {
    let p = t.proactor();
    let (a, mut b) = pair();
    let got = Arc::new(Mutex::new(Vec::new()));
    let got2 = got.clone();
    let mut reader = a.try_clone().unwrap();
    let _src = p
        .register_event_source(&a, Interest::READABLE, move |_| {
            let mut buf = [0u8; 64];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got2.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
        .unwrap();
    b.write_all(b"hello").unwrap();
    drive(&p, || got.lock().unwrap().len() == 5);
    b.write_all(b" world").unwrap();
    drive(&p, || got.lock().unwrap().len() == 11);
    assert_eq!(&got.lock().unwrap()[..], b"hello world");
}

fn es_bad_fd(t: &Ctx) {
    let p = t.proactor();
    let errs = Arc::new(Mutex::new(Vec::new()));
    let e2 = errs.clone();
    struct Bad;
    impl AsRawFd for Bad {
        fn as_raw_fd(&self) -> i32 {
            1_000_000
        }
    }
    let _src = p
        .register_event_source(&Bad, Interest::READABLE, move |r| {
            e2.lock().unwrap().push(r.err().map(|e| e.errno))
        })
        .unwrap();
    drive(&p, || !errs.lock().unwrap().is_empty());
    poll_for(&p, Duration::from_millis(30));
    assert_eq!(*errs.lock().unwrap(), vec![Some(libc::EBADF)]);
    assert_eq!(p.in_flight(), 0);
}

fn es_many_sources(t: &Ctx) {
    let p = t.proactor();
    let n = counter();
    let mut keep = Vec::new();
    let evs: Vec<Event> = (0..32).map(|_| Event::new().unwrap()).collect();
    for ev in &evs {
        let (n2, ev2) = (n.clone(), ev.clone());
        keep.push(
            p.register_event_source(ev, Interest::READABLE, move |_| {
                ev2.reset().unwrap();
                n2.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap(),
        );
    }
    for ev in &evs {
        ev.set().unwrap();
    }
    drive(&p, || n.load(Ordering::SeqCst) == 32);
    assert_eq!(p.in_flight(), 32);
    drop(keep);
    poll_for(&p, Duration::from_millis(30));
    assert_eq!(p.in_flight(), 0);
}

fn es_register_while_poll_blocks(t: &Ctx) {
    let p = t.proactor();
    p.poll(Some(Duration::ZERO), |_| {}).unwrap();
    let ev = Event::new().unwrap();
    let n = counter();
    let (p2, ev2, n2) = (p.clone(), ev.clone(), n.clone());
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        let ev3 = ev2.clone();
        let src = p2
            .register_event_source(&ev2, Interest::READABLE, move |_| {
                ev3.reset().unwrap();
                n2.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        ev2.set().unwrap();
        src
    });
    let end = Instant::now() + LIMIT;
    while n.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < end);
        p.poll(Some(Duration::from_secs(2)), |_| {}).unwrap();
    }
    let _src = h.join().unwrap();
}

fn es_unregister_other_thread(t: &Ctx) {
    let p = t.proactor();
    let ev = Event::new().unwrap();
    let n = counter();
    let n2 = n.clone();
    let src = p
        .register_event_source(&ev, Interest::READABLE, move |_| {
            n2.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    drive(&p, || {
        ev.set().unwrap(); // a new wake-up each time (native multishot is edge-like)
        n.load(Ordering::SeqCst) >= 2
    });
    std::thread::spawn(move || src.unregister()).join().unwrap();
    let before = n.load(Ordering::SeqCst);
    poll_for(&p, Duration::from_millis(50));
    assert_eq!(
        n.load(Ordering::SeqCst),
        before,
        "no callback after unregister"
    );
}

fn es_in_flight_counts(t: &Ctx) {
    let p = t.proactor();
    let ev = Event::new().unwrap();
    let src = p
        .register_event_source(&ev, Interest::READABLE, |_| {})
        .unwrap();
    assert_eq!(p.in_flight(), 1);
    src.unregister();
    drive(&p, || p.in_flight() == 0);
}

fn es_hangup(t: &Ctx) {
    let p = t.proactor();
    let (a, b) = pair();
    let masks = Arc::new(Mutex::new(Vec::new()));
    let m2 = masks.clone();
    let src = p
        .register_event_source(&a, Interest::READABLE, move |r| {
            if let Ok(m) = r {
                m2.lock().unwrap().push(m)
            }
        })
        .unwrap();
    drop(b);
    drive(&p, || !masks.lock().unwrap().is_empty());
    src.unregister();
}

fn es_two_sources_one_fd(t: &Ctx) {
    let p = t.proactor();
    let ev = Event::new().unwrap();
    let (x, y) = (counter(), counter());
    let (x2, y2) = (x.clone(), y.clone());
    let a = p
        .register_event_source(&ev, Interest::READABLE, move |_| {
            x2.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let b = p
        .register_event_source(&ev, Interest::READABLE, move |_| {
            y2.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    ev.set().unwrap();
    drive(&p, || {
        x.load(Ordering::SeqCst) >= 1 && y.load(Ordering::SeqCst) >= 1
    });
    a.unregister();
    b.unregister();
}

// ---------------------------------------------------------------------------------
// Semaphores

fn sem_signal_and_query(_t: &Ctx) {
    let s = Semaphore::new(3);
    assert_eq!(s.value(), 3);
    s.signal(7).unwrap();
    assert_eq!((s.value(), s.failure()), (7, None));
    s.signal(u64::MAX).unwrap();
    assert_eq!(s.value(), u64::MAX);
}

fn sem_values_only_increase(_t: &Ctx) {
    let s = Semaphore::new(5);
    assert!(matches!(s.signal(5), Err(Error::InvalidArgument(_))));
    assert!(matches!(s.signal(4), Err(Error::InvalidArgument(_))));
    assert_eq!(s.value(), 5);
}

fn sem_wait_already(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(10);
    p.submit(Operation::semaphore_wait(&s, 10).user_data(3))
        .unwrap();
    let c = collect(&p, 1).pop().unwrap();
    assert_eq!((c.user_data, c.outcome), (3, Outcome::Ok(0)));
    assert!(matches!(c.resources, Resources::Semaphore(_)));
    assert_eq!(s.waiter_count(), 0);
}

fn sem_wait_later(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(0);
    p.submit(Operation::semaphore_wait(&s, 2)).unwrap();
    assert!(poll_for(&p, Duration::from_millis(20)).is_empty());
    s.signal(1).unwrap();
    assert!(poll_for(&p, Duration::from_millis(20)).is_empty());
    s.signal(2).unwrap();
    assert_eq!(collect(&p, 1)[0].outcome, Outcome::Ok(0));
    assert_eq!(p.in_flight(), 0);
}

fn sem_signal_other_thread(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(0);
    p.poll(Some(Duration::ZERO), |_| {}).unwrap();
    p.submit(Operation::semaphore_wait(&s, 1)).unwrap();
    let s2 = s.clone();
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        s2.signal(1).unwrap();
    });
    let mut got = Vec::new();
    let end = Instant::now() + LIMIT;
    while got.is_empty() {
        assert!(Instant::now() < end);
        p.poll(Some(Duration::from_secs(5)), |c| got.push(c))
            .unwrap();
    }
    h.join().unwrap();
    assert_eq!(got[0].outcome, Outcome::Ok(0));
}

fn sem_wait_future(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(0);
    let f = p.submit_future(Operation::semaphore_wait(&s, 5)).unwrap();
    let s2 = s.clone();
    std::thread::spawn(move || s2.signal(5).unwrap())
        .join()
        .unwrap();
    assert_eq!(block_on(&p, f).outcome, Outcome::Ok(0));
}

fn sem_wait_all(t: &Ctx) {
    let p = t.proactor();
    let (a, b) = (Semaphore::new(0), Semaphore::new(0));
    p.submit(Operation::semaphore_wait_all(vec![
        (a.clone(), 1),
        (b.clone(), 2),
    ]))
    .unwrap();
    a.signal(1).unwrap();
    assert!(poll_for(&p, Duration::from_millis(20)).is_empty());
    b.signal(2).unwrap();
    let c = collect(&p, 1).pop().unwrap();
    assert_eq!(c.outcome, Outcome::Ok(0));
    assert!(matches!(c.resources, Resources::Semaphores(ref v) if v.len() == 2));
    assert_eq!(a.waiter_count() + b.waiter_count(), 0);
}

fn sem_wait_any(t: &Ctx) {
    let p = t.proactor();
    let (a, b) = (Semaphore::new(0), Semaphore::new(0));
    p.submit(Operation::semaphore_wait_any(vec![
        (a.clone(), 1),
        (b.clone(), 1),
    ]))
    .unwrap();
    b.signal(1).unwrap();
    assert_eq!(collect(&p, 1)[0].outcome, Outcome::Ok(1), "index of b");
    assert_eq!(a.waiter_count(), 0, "the other subscription dropped");
}

fn sem_wait_all_one_fails(t: &Ctx) {
    let p = t.proactor();
    let (a, b) = (Semaphore::new(0), Semaphore::new(0));
    p.submit(Operation::semaphore_wait_all(vec![
        (a.clone(), 1),
        (b.clone(), 1),
    ]))
    .unwrap();
    b.fail(libc::EPIPE);
    let c = collect(&p, 1).pop().unwrap();
    assert_eq!(errno_of(&c.outcome), Some(libc::EPIPE));
    assert_eq!(a.waiter_count(), 0);
}

fn sem_wait_any_one_fails(t: &Ctx) {
    let p = t.proactor();
    let (a, b) = (Semaphore::new(0), Semaphore::new(0));
    p.submit(Operation::semaphore_wait_any(vec![
        (a.clone(), 1),
        (b.clone(), 1),
    ]))
    .unwrap();
    a.fail(libc::EIO);
    assert!(
        poll_for(&p, Duration::from_millis(20)).is_empty(),
        "b may still come"
    );
    b.signal(1).unwrap();
    assert_eq!(collect(&p, 1)[0].outcome, Outcome::Ok(1));
}

fn sem_wait_any_all_fail(t: &Ctx) {
    let p = t.proactor();
    let (a, b) = (Semaphore::new(0), Semaphore::new(0));
    p.submit(Operation::semaphore_wait_any(vec![
        (a.clone(), 1),
        (b.clone(), 1),
    ]))
    .unwrap();
    a.fail(libc::EIO);
    b.fail(libc::ENODEV);
    assert_eq!(errno_of(&collect(&p, 1)[0].outcome), Some(libc::EIO));
}

fn sem_fail_1000_waiters(t: &Ctx) {
    let p = t.proactor_with(|o| o.max_in_flight = 1024);
    let s = Semaphore::new(0);
    for i in 0..1000u64 {
        p.submit(Operation::semaphore_wait(&s, 1 + i).user_data(i))
            .unwrap();
    }
    assert_eq!(s.waiter_count(), 1000);
    let s2 = s.clone();
    std::thread::spawn(move || assert!(s2.fail(libc::ECONNABORTED)))
        .join()
        .unwrap();
    let got = collect(&p, 1000);
    let mut seen: Vec<u64> = got
        .iter()
        .map(|c| {
            assert_eq!(errno_of(&c.outcome), Some(libc::ECONNABORTED), "{c:?}");
            c.user_data
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..1000).collect::<Vec<_>>(),
        "each waiter exactly once"
    );
    assert_eq!((p.in_flight(), s.waiter_count()), (0, 0));
}

fn sem_fail_futures(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(0);
    let futs: Vec<OpFuture> = (0..8)
        .map(|i| {
            p.submit_future(Operation::semaphore_wait(&s, i + 1))
                .unwrap()
        })
        .collect();
    s.fail(libc::ETIMEDOUT);
    for f in futs {
        assert_eq!(errno_of(&block_on(&p, f).outcome), Some(libc::ETIMEDOUT));
    }
}

fn sem_wait_after_failure(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(0);
    assert!(s.fail(0));
    assert!(!s.fail(libc::EPIPE), "the first failure wins");
    assert_eq!(s.failure(), Some(libc::EIO));
    p.submit(Operation::semaphore_wait(&s, 1)).unwrap();
    assert_eq!(errno_of(&collect(&p, 1)[0].outcome), Some(libc::EIO));
}

fn sem_signal_after_failure(_t: &Ctx) {
    let s = Semaphore::new(0);
    s.fail(libc::EPIPE);
    match s.signal(1) {
        Err(e) => assert_eq!(e.errno(), Some(libc::EPIPE)),
        Ok(()) => panic!("signal after failure accepted"),
    }
    assert_eq!(s.value(), 0);
}

fn sem_cancel_wait(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(0);
    let id = p.submit(Operation::semaphore_wait(&s, 1)).unwrap();
    assert_eq!(s.waiter_count(), 1);
    assert_eq!(p.cancel(id), CancelStatus::Requested);
    assert!(collect(&p, 1)[0].outcome.is_cancelled());
    assert_eq!(s.waiter_count(), 0);
    s.signal(1).unwrap();
    assert!(poll_for(&p, Duration::from_millis(20)).is_empty());
}

fn sem_drop_future(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(0);
    let f = p.submit_future(Operation::semaphore_wait(&s, 1)).unwrap();
    drop(f);
    poll_for(&p, Duration::from_millis(20));
    assert_eq!((s.waiter_count(), p.in_flight()), (0, 0));
}

fn sem_thread_wait(_t: &Ctx) {
    let s = Semaphore::new(0);
    let s2 = s.clone();
    let h = std::thread::spawn(move || s2.wait(3, Some(LIMIT)));
    std::thread::sleep(Duration::from_millis(10));
    s.signal(2).unwrap();
    s.signal(3).unwrap();
    assert!(h.join().unwrap().unwrap());
}

fn sem_thread_wait_timeout(_t: &Ctx) {
    let s = Semaphore::new(0);
    let t0 = Instant::now();
    assert!(!s.wait(1, Some(Duration::from_millis(30))).unwrap());
    assert!(t0.elapsed() >= Duration::from_millis(25));
}

fn sem_thread_wait_failure(_t: &Ctx) {
    let s = Semaphore::new(0);
    let s2 = s.clone();
    let h = std::thread::spawn(move || s2.wait(1, Some(LIMIT)));
    std::thread::sleep(Duration::from_millis(10));
    s.fail(libc::ENOLINK);
    assert_eq!(h.join().unwrap().unwrap_err().errno(), Some(libc::ENOLINK));
}

fn sem_waits_in_step(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(0);
    for v in 1..=10u64 {
        p.submit(Operation::semaphore_wait(&s, v).user_data(v))
            .unwrap();
    }
    for v in 1..=10u64 {
        s.signal(v).unwrap();
        let c = collect(&p, 1).pop().unwrap();
        assert_eq!(c.user_data, v, "waits complete in value order");
    }
}

fn sem_wait_linked(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(0);
    let mut ops = vec![
        Operation::semaphore_wait(&s, 1).user_data(1),
        Operation::nop().user_data(2),
    ];
    let mut ids = Vec::new();
    p.submit_linked(&mut ops, &mut ids).unwrap();
    assert!(poll_for(&p, Duration::from_millis(20)).is_empty());
    s.signal(1).unwrap();
    let got = collect(&p, 2);
    assert_eq!(
        got.iter().map(|c| c.user_data).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

fn sem_empty_list_refused(t: &Ctx) {
    let p = t.proactor();
    let e = p
        .submit(Operation::semaphore_wait_all(Vec::new()))
        .unwrap_err();
    assert!(matches!(e.error, Error::InvalidArgument(_)));
}

fn sem_concurrent_signallers(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(0);
    p.submit(Operation::semaphore_wait(&s, 400)).unwrap();
    let hs: Vec<_> = (0..4)
        .map(|k| {
            let s = s.clone();
            std::thread::spawn(move || {
                for v in 0..100u64 {
                    // Values below the current one are refused; the maximum wins.
                    let _ = s.signal(v * 4 + k + 1);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(s.value(), 400);
    assert_eq!(collect(&p, 1)[0].outcome, Outcome::Ok(0));
}

fn sem_cancel_wait_any(t: &Ctx) {
    let p = t.proactor();
    let (a, b) = (Semaphore::new(0), Semaphore::new(0));
    let id = p
        .submit(Operation::semaphore_wait_any(vec![
            (a.clone(), 1),
            (b.clone(), 1),
        ]))
        .unwrap();
    p.cancel(id);
    assert!(collect(&p, 1)[0].outcome.is_cancelled());
    assert_eq!(a.waiter_count() + b.waiter_count(), 0);
}

// ---------------------------------------------------------------------------------
// Fences

fn readable_fd() -> (OwnedFd, UnixStream) {
    let (a, b) = pair();
    (OwnedFd::from(a), b)
}

fn fence_import(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(0);
    let (fd, mut w) = readable_fd();
    p.import_fence(fd, &s, 5).unwrap();
    assert!(poll_for(&p, Duration::from_millis(20)).is_empty());
    assert_eq!(s.value(), 0);
    w.write_all(b"x").unwrap();
    drive(&p, || s.value() == 5);
    drive(&p, || p.in_flight() == 0);
}

fn fence_import_ready(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(0);
    let e = s.export_fd(0).unwrap(); // already readable
    p.import_fence(e, &s, 1).unwrap();
    drive(&p, || s.value() == 1);
}

fn fence_import_other_thread(t: &Ctx) {
    let p = t.proactor();
    p.poll(Some(Duration::ZERO), |_| {}).unwrap();
    let s = Semaphore::new(0);
    let (p2, s2) = (p.clone(), s.clone());
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        let (fd, mut w) = readable_fd();
        p2.import_fence(fd, &s2, 9).unwrap();
        w.write_all(b"x").unwrap();
        w
    });
    let end = Instant::now() + LIMIT;
    while s.value() != 9 {
        assert!(Instant::now() < end);
        p.poll(Some(Duration::from_secs(2)), |_| {}).unwrap();
    }
    drop(h.join().unwrap());
}

fn is_readable(fd: &OwnedFd) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    unsafe { libc::poll(&mut p, 1, 0) == 1 }
}

fn fence_export(_t: &Ctx) {
    let s = Semaphore::new(0);
    let fd = s.export_fd(3).unwrap();
    assert!(!is_readable(&fd));
    s.signal(2).unwrap();
    assert!(!is_readable(&fd));
    s.signal(3).unwrap();
    assert!(is_readable(&fd));
    assert_eq!(s.waiter_count(), 0);
}

fn fence_export_reached(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(4);
    let fd = p.export_fence(&s, 4).unwrap();
    assert!(is_readable(&fd));
}

fn fence_export_failure(_t: &Ctx) {
    let s = Semaphore::new(0);
    let fd = s.export_fd(1).unwrap();
    s.fail(libc::EIO);
    assert!(is_readable(&fd));
    assert_eq!(s.failure(), Some(libc::EIO));
}

fn fence_roundtrip(t: &Ctx) {
    let p = t.proactor();
    let (a, b) = (Semaphore::new(0), Semaphore::new(0));
    p.import_fence(a.export_fd(2).unwrap(), &b, 7).unwrap();
    a.signal(1).unwrap();
    assert!(poll_for(&p, Duration::from_millis(20)).is_empty());
    assert_eq!(b.value(), 0);
    a.signal(2).unwrap();
    drive(&p, || b.value() == 7);
}

fn fence_teardown_fails_semaphore(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(0);
    let (fd, _w) = readable_fd();
    p.import_fence(fd, &s, 1).unwrap();
    p.poll(Some(Duration::ZERO), |_| {}).unwrap();
    drop(p);
    assert_eq!(s.failure(), Some(libc::ECANCELED), "a waiter never hangs");
}

fn fence_capability(t: &Ctx) {
    let p = t.proactor();
    assert_eq!(
        p.capabilities().get(Capability::DeviceFence),
        Support::Emulated
    );
}

fn fence_import_many(t: &Ctx) {
    let p = t.proactor();
    let sems: Vec<Semaphore> = (0..16).map(|_| Semaphore::new(0)).collect();
    let mut writers = Vec::new();
    for s in &sems {
        let (fd, w) = readable_fd();
        p.import_fence(fd, s, 1).unwrap();
        writers.push(w);
    }
    for w in &mut writers {
        w.write_all(b"x").unwrap();
    }
    drive(&p, || sems.iter().all(|s| s.value() == 1));
}

// ---------------------------------------------------------------------------------
// Messages

fn recorder(p: &Proactor) -> Arc<Mutex<Vec<u64>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g2 = got.clone();
    p.set_message_callback(move |m| g2.lock().unwrap().push(m))
        .unwrap();
    got
}

fn msg_post_self(t: &Ctx) {
    let p = t.proactor();
    let got = recorder(&p);
    for m in [1u64, u64::MAX, 0x1234_5678_9abc_def0] {
        p.post_message(m).unwrap();
    }
    drive(&p, || got.lock().unwrap().len() == 3);
    assert_eq!(
        *got.lock().unwrap(),
        vec![1, u64::MAX, 0x1234_5678_9abc_def0]
    );
}

fn msg_between_two(t: &Ctx) {
    let (a, b) = (t.proactor(), t.proactor());
    let got = recorder(&b);
    b.poll(Some(Duration::ZERO), |_| {}).unwrap(); // enables the ring
    a.poll(Some(Duration::ZERO), |_| {}).unwrap();
    let vals = [
        0u64,
        1,
        0xffff_ffff,
        0x1_0000_0000,
        u64::MAX,
        0xdead_beef_0bad_cafe,
    ];
    for v in vals {
        a.send_message(&b, v).unwrap();
    }
    let end = Instant::now() + LIMIT;
    while got.lock().unwrap().len() < vals.len() {
        assert!(Instant::now() < end);
        a.poll(Some(Duration::from_millis(5)), |_| {}).unwrap();
        b.poll(Some(Duration::from_millis(5)), |_| {}).unwrap();
    }
    let mut g = got.lock().unwrap().clone();
    g.sort_unstable();
    let mut want = vals.to_vec();
    want.sort_unstable();
    assert_eq!(g, want);
    let st = b.message_stats();
    if t.native() && a.capabilities().is_native(Capability::Messaging) {
        assert_eq!(st.via_ring, vals.len() as u64, "{st:?}");
    } else {
        assert_eq!(st.via_queue, vals.len() as u64, "{st:?}");
    }
}

fn msg_none_lost_or_duplicated(t: &Ctx) {
    let target = t.proactor_with(|o| o.message_capacity = 64);
    let got = recorder(&target);
    let stop = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..2u64)
        .map(|k| {
            let (opts, target, stop) = (t.opts.clone(), target.clone(), stop.clone());
            std::thread::spawn(move || {
                let me = Proactor::new(opts).unwrap();
                let mut i = 0u64;
                let end = Instant::now() + LIMIT;
                while i < 2000 {
                    assert!(Instant::now() < end, "sender {k} stuck at {i}");
                    match me.send_message(&target, (k << 32) | i) {
                        Ok(()) => i += 1,
                        Err(e) => assert!(e.is_retryable(), "{e}"),
                    }
                    me.poll(Some(Duration::ZERO), |_| {}).unwrap();
                }
                // Flush what is still being sent.
                while me.in_flight() > 0 {
                    assert!(Instant::now() < end);
                    me.poll(Some(Duration::from_millis(5)), |_| {}).unwrap();
                }
                stop.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let end = Instant::now() + LIMIT;
    while got.lock().unwrap().len() < 4000 {
        assert!(Instant::now() < end, "got {}", got.lock().unwrap().len());
        target.poll(Some(Duration::from_millis(5)), |_| {}).unwrap();
    }
    for h in senders {
        h.join().unwrap();
    }
    poll_for(&target, Duration::from_millis(20));
    let mut g = got.lock().unwrap().clone();
    assert_eq!(g.len(), 4000, "no duplicate");
    g.sort_unstable();
    g.dedup();
    assert_eq!(g.len(), 4000, "each exactly once");
    assert_eq!(target.message_stats().waiting, 0);
}

fn msg_target_full(t: &Ctx) {
    let a = t.proactor();
    let b = t.proactor_with(|o| o.message_capacity = 4);
    let got = recorder(&b);
    a.poll(Some(Duration::ZERO), |_| {}).unwrap();
    for i in 0..4 {
        a.send_message(&b, i).unwrap();
    }
    match a.send_message(&b, 99) {
        Err(Error::SubmissionQueueFull {
            queue: QueueKind::Messages,
            capacity: 4,
        }) => {}
        r => panic!("expected target full, got {r:?}"),
    }
    assert!(matches!(
        b.post_message(99),
        Err(Error::SubmissionQueueFull { .. })
    ));
    let end = Instant::now() + LIMIT;
    while got.lock().unwrap().len() < 4 {
        assert!(Instant::now() < end);
        a.poll(Some(Duration::from_millis(5)), |_| {}).unwrap();
        b.poll(Some(Duration::from_millis(5)), |_| {}).unwrap();
    }
    a.send_message(&b, 4).unwrap();
    while got.lock().unwrap().len() < 5 {
        assert!(Instant::now() < end);
        a.poll(Some(Duration::from_millis(5)), |_| {}).unwrap();
        b.poll(Some(Duration::from_millis(5)), |_| {}).unwrap();
    }
    let mut g = got.lock().unwrap().clone();
    g.sort_unstable();
    assert_eq!(g, vec![0, 1, 2, 3, 4]);
}

fn msg_before_callback(t: &Ctx) {
    let p = t.proactor();
    p.post_message(7).unwrap();
    p.post_message(8).unwrap();
    assert!(poll_for(&p, Duration::from_millis(20)).is_empty());
    assert_eq!(p.message_stats().waiting, 2);
    let got = recorder(&p);
    drive(&p, || got.lock().unwrap().len() == 2);
    assert_eq!(*got.lock().unwrap(), vec![7, 8]);
}

fn msg_replace_callback(t: &Ctx) {
    let p = t.proactor();
    let first = recorder(&p);
    p.post_message(1).unwrap();
    drive(&p, || first.lock().unwrap().len() == 1);
    let second = recorder(&p);
    p.post_message(2).unwrap();
    drive(&p, || second.lock().unwrap().len() == 1);
    assert_eq!(*first.lock().unwrap(), vec![1]);
    assert_eq!(*second.lock().unwrap(), vec![2]);
}

fn msg_target_never_polled(t: &Ctx) {
    let (a, b) = (t.proactor(), t.proactor());
    a.poll(Some(Duration::ZERO), |_| {}).unwrap();
    let got = recorder(&b);
    a.send_message(&b, 42).unwrap();
    // The sender runs its send first (a disabled target ring refuses MSG_RING).
    poll_for(&a, Duration::from_millis(20));
    let end = Instant::now() + LIMIT;
    while got.lock().unwrap().is_empty() {
        assert!(Instant::now() < end);
        a.poll(Some(Duration::from_millis(5)), |_| {}).unwrap();
        b.poll(Some(Duration::from_millis(5)), |_| {}).unwrap();
    }
    assert_eq!(*got.lock().unwrap(), vec![42]);
    assert_eq!(b.message_stats().delivered, 1);
}

fn msg_ping_pong(t: &Ctx) {
    let (a, b) = (t.proactor(), t.proactor());
    let count = Arc::new(AtomicU64::new(0));
    let (b_of_a, a_of_b) = (b.clone(), a.clone());
    let (a2, b2) = (a.clone(), b.clone());
    let c2 = count.clone();
    a.set_message_callback(move |m| {
        c2.fetch_add(1, Ordering::SeqCst);
        if m < 100 {
            a2.send_message(&b_of_a, m + 1).unwrap();
        }
    })
    .unwrap();
    let c3 = count.clone();
    b.set_message_callback(move |m| {
        c3.fetch_add(1, Ordering::SeqCst);
        b2.send_message(&a_of_b, m + 1).unwrap();
    })
    .unwrap();
    a.poll(Some(Duration::ZERO), |_| {}).unwrap();
    b.poll(Some(Duration::ZERO), |_| {}).unwrap();
    a.send_message(&b, 0).unwrap();
    let end = Instant::now() + LIMIT;
    while count.load(Ordering::SeqCst) < 101 {
        assert!(Instant::now() < end, "{}", count.load(Ordering::SeqCst));
        a.poll(Some(Duration::from_millis(2)), |_| {}).unwrap();
        b.poll(Some(Duration::from_millis(2)), |_| {}).unwrap();
    }
    // Break the reference cycle through the callbacks.
    a.set_message_callback(|_| {}).unwrap();
    b.set_message_callback(|_| {}).unwrap();
}

fn msg_capability(t: &Ctx) {
    let p = t.proactor();
    let want = match t.cfg {
        Config::UringEmulated | Config::Epoll => Support::Emulated,
        _ => p.capabilities().get(Capability::Messaging),
    };
    assert_eq!(p.capabilities().get(Capability::Messaging), want);
    assert_ne!(want, Support::Absent);
}

fn msg_zero_capacity(t: &Ctx) {
    let mut o = t.opts.clone();
    o.message_capacity = 0;
    assert!(matches!(Proactor::new(o), Err(Error::InvalidArgument(_))));
}

fn msg_stats(t: &Ctx) {
    let p = t.proactor();
    assert_eq!(p.message_stats(), MessageStats::default());
    let got = recorder(&p);
    p.post_message(5).unwrap();
    drive(&p, || got.lock().unwrap().len() == 1);
    let st = p.message_stats();
    assert_eq!((st.delivered, st.via_queue, st.waiting), (1, 1, 0));
}

fn msg_from_epoll(t: &Ctx) {
    let b = t.proactor();
    let a = Proactor::new(Options {
        backend: BackendChoice::Epoll,
        ..Options::default()
    })
    .unwrap();
    let got = recorder(&b);
    a.send_message(&b, 11).unwrap();
    drive(&b, || got.lock().unwrap().len() == 1);
    assert_eq!(b.message_stats().via_queue, 1);
}

// ---------------------------------------------------------------------------------
// Relays

fn relay_event_to_event(t: &Ctx) {
    let p = t.proactor();
    let (src, dst) = (Event::new().unwrap(), Event::new().unwrap());
    let r = p
        .relay(
            RelaySource::Event(src.clone()),
            RelaySink::Event(dst.clone()),
            false,
        )
        .unwrap();
    src.set().unwrap();
    drive(&p, || dst.is_set().unwrap() && p.in_flight() == 0);
    assert_eq!(r.fired(), 1);
    assert_eq!(r.error(), None);
}

fn relay_fd_to_event(t: &Ctx) {
    let p = t.proactor();
    let (a, mut b) = pair();
    let dst = Event::new().unwrap();
    let _r = p
        .relay(
            RelaySource::Fd(a.as_raw_fd()),
            RelaySink::Event(dst.clone()),
            false,
        )
        .unwrap();
    assert!(poll_for(&p, Duration::from_millis(20)).is_empty());
    assert!(!dst.is_set().unwrap());
    b.write_all(b"x").unwrap();
    drive(&p, || dst.is_set().unwrap());
}

fn relay_event_to_notification(t: &Ctx) {
    let p = t.proactor();
    let src = Event::new().unwrap();
    let n = Notification::new();
    let token = n.epoch();
    let _r = p
        .relay(
            RelaySource::Event(src.clone()),
            RelaySink::Notification(n.clone()),
            false,
        )
        .unwrap();
    src.set().unwrap();
    drive(&p, || n.epoch() != token);
}

fn relay_notification_to_event(t: &Ctx) {
    let p = t.proactor();
    let n = Notification::new();
    let dst = Event::new().unwrap();
    let _r = p
        .relay(
            RelaySource::Notification(n.clone()),
            RelaySink::Event(dst.clone()),
            false,
        )
        .unwrap();
    assert!(poll_for(&p, Duration::from_millis(20)).is_empty());
    n.signal();
    drive(&p, || dst.is_set().unwrap());
}

fn relay_semaphore_to_event(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(0);
    let dst = Event::new().unwrap();
    let _r = p
        .relay(
            RelaySource::Semaphore(s.clone(), 3),
            RelaySink::Event(dst.clone()),
            false,
        )
        .unwrap();
    s.signal(2).unwrap();
    poll_for(&p, Duration::from_millis(20));
    assert!(!dst.is_set().unwrap());
    s.signal(3).unwrap();
    drive(&p, || dst.is_set().unwrap());
}

fn relay_event_to_semaphore(t: &Ctx) {
    let p = t.proactor();
    let src = Event::new().unwrap();
    let s = Semaphore::new(0);
    let _r = p
        .relay(
            RelaySource::Event(src.clone()),
            RelaySink::Semaphore(s.clone(), 10),
            false,
        )
        .unwrap();
    src.set().unwrap();
    drive(&p, || s.value() == 10);
}

fn relay_chain(t: &Ctx) {
    let p = t.proactor();
    let evs: Vec<Event> = (0..3).map(|_| Event::new().unwrap()).collect();
    let s = Semaphore::new(0);
    let _r1 = p
        .relay(
            RelaySource::Event(evs[0].clone()),
            RelaySink::Event(evs[1].clone()),
            false,
        )
        .unwrap();
    let _r2 = p
        .relay(
            RelaySource::Event(evs[1].clone()),
            RelaySink::Event(evs[2].clone()),
            false,
        )
        .unwrap();
    let _r3 = p
        .relay(
            RelaySource::Event(evs[2].clone()),
            RelaySink::Semaphore(s.clone(), 1),
            false,
        )
        .unwrap();
    evs[0].set().unwrap();
    drive(&p, || s.value() == 1);
}

fn relay_persistent(t: &Ctx) {
    let p = t.proactor();
    let src = Event::new().unwrap();
    let s = Semaphore::new(0);
    let r = p
        .relay(
            RelaySource::Event(src.clone()),
            RelaySink::Semaphore(s.clone(), 1),
            true,
        )
        .unwrap();
    for i in 1..=3u64 {
        src.set().unwrap();
        drive(&p, || s.value() == i);
    }
    assert_eq!(r.fired(), 3);
    assert_eq!(p.in_flight(), 1, "still armed");
    r.unregister();
    drive(&p, || p.in_flight() == 0);
}

fn relay_unregister(t: &Ctx) {
    let p = t.proactor();
    let (src, dst) = (Event::new().unwrap(), Event::new().unwrap());
    let r = p
        .relay(
            RelaySource::Event(src.clone()),
            RelaySink::Event(dst.clone()),
            true,
        )
        .unwrap();
    r.unregister();
    src.set().unwrap();
    poll_for(&p, Duration::from_millis(40));
    assert!(!dst.is_set().unwrap());
    assert_eq!(p.in_flight(), 0);
}

fn relay_bad_fd(t: &Ctx) {
    let p = t.proactor();
    let dst = Event::new().unwrap();
    let r = p
        .relay(
            RelaySource::Fd(1_000_000),
            RelaySink::Event(dst.clone()),
            true,
        )
        .unwrap();
    drive(&p, || r.error().is_some());
    assert_eq!(r.error(), Some(libc::EBADF));
    assert!(!dst.is_set().unwrap());
    assert!(matches!(
        p.relay(RelaySource::Fd(-1), RelaySink::Event(dst), false),
        Err(Error::InvalidArgument(_))
    ));
}

fn relay_semaphore_persistent(t: &Ctx) {
    let p = t.proactor();
    let (a, b) = (Semaphore::new(0), Semaphore::new(100));
    let r = p
        .relay(
            RelaySource::Semaphore(a.clone(), 1),
            RelaySink::Semaphore(b.clone(), 101),
            true,
        )
        .unwrap();
    a.signal(1).unwrap();
    drive(&p, || b.value() == 101);
    a.signal(2).unwrap();
    drive(&p, || b.value() == 102);
    assert_eq!(r.fired(), 2);
}

fn relay_failed_sink(t: &Ctx) {
    let p = t.proactor();
    let src = Event::new().unwrap();
    let s = Semaphore::new(0);
    s.fail(libc::EIO);
    let r = p
        .relay(
            RelaySource::Event(src.clone()),
            RelaySink::Semaphore(s, 1),
            true,
        )
        .unwrap();
    src.set().unwrap();
    drive(&p, || r.error().is_some());
    assert_eq!(r.error(), Some(libc::EIO));
}

fn relay_native_flag(t: &Ctx) {
    let p = t.proactor();
    let (src, dst) = (Event::new().unwrap(), Event::new().unwrap());
    let linked = p.capabilities().is_native(Capability::LinkedOperations);
    let once = p
        .relay(
            RelaySource::Event(src.clone()),
            RelaySink::Event(dst.clone()),
            false,
        )
        .unwrap();
    assert_eq!(once.is_native(), linked);
    if t.cfg == Config::Epoll || t.cfg == Config::UringEmulated {
        assert!(!once.is_native());
    }
    let n = Notification::new();
    let emu = p
        .relay(RelaySource::Event(src), RelaySink::Notification(n), false)
        .unwrap();
    assert!(!emu.is_native());
}

// ---------------------------------------------------------------------------------
// Teardown with each kind in flight

fn teardown_event_source(t: &Ctx) {
    let p = t.proactor();
    let ev = Event::new().unwrap();
    let n = counter();
    let n2 = n.clone();
    let src = p
        .register_event_source(&ev, Interest::READABLE, move |_| {
            n2.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    p.poll(Some(Duration::ZERO), |_| {}).unwrap();
    drop(p);
    ev.set().unwrap();
    src.unregister(); // after the proactor: a no-op
    assert_eq!(n.load(Ordering::SeqCst), 0);
    assert_eq!(src.fired(), 0);
}

fn teardown_semaphore_wait(t: &Ctx) {
    let p = t.proactor();
    let s = Semaphore::new(0);
    p.submit(Operation::semaphore_wait(&s, 1)).unwrap();
    let f = p.submit_future(Operation::semaphore_wait(&s, 2)).unwrap();
    p.poll(Some(Duration::ZERO), |_| {}).unwrap();
    drop(p);
    // The future keeps the engine alive; the signal completes it.
    s.signal(2).unwrap();
    drop(f);
    assert_eq!(s.waiter_count(), 0);
}

fn teardown_relay(t: &Ctx) {
    let p = t.proactor();
    let (src, dst) = (Event::new().unwrap(), Event::new().unwrap());
    let r = p
        .relay(
            RelaySource::Event(src.clone()),
            RelaySink::Event(dst.clone()),
            true,
        )
        .unwrap();
    p.poll(Some(Duration::ZERO), |_| {}).unwrap();
    drop(p);
    src.set().unwrap();
    assert_eq!(r.fired(), 0);
    drop(r);
}

fn teardown_messages(t: &Ctx) {
    let (a, b) = (t.proactor(), t.proactor());
    let _got = recorder(&b);
    b.poll(Some(Duration::ZERO), |_| {}).unwrap();
    for i in 0..16 {
        a.send_message(&b, i).unwrap();
    }
    a.poll(Some(Duration::ZERO), |_| {}).unwrap();
    drop(b); // messages posted into a ring nobody reads any more
    poll_for(&a, Duration::from_millis(20));
    drop(a);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod io_uring {
            $( #[test] fn $name() { super::run(super::Config::Uring, stringify!($name), super::$name) } )*
        }
        mod io_uring_no_single_issuer {
            $( #[test] fn $name() { super::run(super::Config::UringNoSingleIssuer, stringify!($name), super::$name) } )*
        }
        mod io_uring_emulated {
            $( #[test] fn $name() { super::run(super::Config::UringEmulated, stringify!($name), super::$name) } )*
        }
        mod epoll {
            $( #[test] fn $name() { super::run(super::Config::Epoll, stringify!($name), super::$name) } )*
        }
    };
}

conformance!(
    es_fires_on_eventfd,
    es_fires_repeatedly,
    es_unregister_stops,
    es_drop_unregisters,
    es_unregister_from_callback,
    es_writable_socket,
    es_readable_socket,
    es_bad_fd,
    es_many_sources,
    es_register_while_poll_blocks,
    es_unregister_other_thread,
    es_in_flight_counts,
    es_hangup,
    es_two_sources_one_fd,
    sem_signal_and_query,
    sem_values_only_increase,
    sem_wait_already,
    sem_wait_later,
    sem_signal_other_thread,
    sem_wait_future,
    sem_wait_all,
    sem_wait_any,
    sem_wait_all_one_fails,
    sem_wait_any_one_fails,
    sem_wait_any_all_fail,
    sem_fail_1000_waiters,
    sem_fail_futures,
    sem_wait_after_failure,
    sem_signal_after_failure,
    sem_cancel_wait,
    sem_drop_future,
    sem_thread_wait,
    sem_thread_wait_timeout,
    sem_thread_wait_failure,
    sem_waits_in_step,
    sem_wait_linked,
    sem_empty_list_refused,
    sem_concurrent_signallers,
    sem_cancel_wait_any,
    fence_import,
    fence_import_ready,
    fence_import_other_thread,
    fence_export,
    fence_export_reached,
    fence_export_failure,
    fence_roundtrip,
    fence_teardown_fails_semaphore,
    fence_capability,
    fence_import_many,
    msg_post_self,
    msg_between_two,
    msg_none_lost_or_duplicated,
    msg_target_full,
    msg_before_callback,
    msg_replace_callback,
    msg_target_never_polled,
    msg_ping_pong,
    msg_capability,
    msg_zero_capacity,
    msg_stats,
    msg_from_epoll,
    relay_event_to_event,
    relay_fd_to_event,
    relay_event_to_notification,
    relay_notification_to_event,
    relay_semaphore_to_event,
    relay_event_to_semaphore,
    relay_chain,
    relay_persistent,
    relay_unregister,
    relay_bad_fd,
    relay_semaphore_persistent,
    relay_failed_sink,
    relay_native_flag,
    teardown_event_source,
    teardown_semaphore_wait,
    teardown_relay,
    teardown_messages,
);
