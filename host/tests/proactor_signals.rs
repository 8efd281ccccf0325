//! Signals through the proactor's signalfd, in a process of their own (this test
//! binary): the six subscribable signals are blocked before `main` runs (a
//! constructor in `.init_array`, so every thread the test harness spawns inherits
//! the mask), and each scenario takes one lock, since one proactor per process owns
//! the subscriptions. Run on io_uring (native, no single issuer, every capability
//! emulated) and on epoll (see `conformance!` at the end).
//!
//! Scenarios (one function each): a `SIGUSR1` reaches its callback; a signal sent
//! by another thread while `poll` blocks; every subscribable signal (`SIGINT`,
//! `SIGTERM`, `SIGHUP`, `SIGQUIT`, `SIGUSR1`, `SIGUSR2`); several subscribers called
//! in order; an unsubscribed signal reaches no callback; unsubscribing from the
//! callback; a second proactor refused while the owner lives; ownership passes on
//! when the owner is dropped; subscribing from another thread; repeated deliveries
//! counted (coalescing allowed); the blocking helpers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod proactor_common;
use gpu_uring::proactor::signals::{self, Signal};
use gpu_uring::proactor::*;
use proactor_common::svc::*;
use proactor_common::Config;

extern "C" fn block_before_main() {
    // Runs before the harness starts any thread; nothing to report on failure (the
    // scenarios check `is_blocked`).
    let _ = signals::block_default();
}

#[used]
#[link_section = ".init_array"]
static BLOCK_SIGNALS: extern "C" fn() = block_before_main;

/// One owner per process: scenarios run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn raise(sig: Signal) {
    // SAFETY: kill(2) of our own pid with a valid signal number.
    let r = unsafe { libc::kill(libc::getpid(), sig.number()) };
    assert_eq!(r, 0);
}

/// Takes any pending instance of `sig` so a scenario starts clean.
fn clear(sig: Signal) {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset; a zero timeout.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig.number());
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        while libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) > 0 {}
    }
}

fn recording(p: &Proactor, sig: Signal) -> (SignalSubscription, Arc<Mutex<Vec<Signal>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g2 = got.clone();
    let sub = p
        .subscribe_signal(sig, move |s| g2.lock().unwrap().push(s))
        .unwrap();
    (sub, got)
}

fn user1_delivered(t: &Ctx) {
    let _g = serial();
    clear(Signal::User1);
    assert!(signals::is_blocked(Signal::User1).unwrap());
    let p = t.proactor();
    let (_sub, got) = recording(&p, Signal::User1);
    raise(Signal::User1);
    drive(&p, || !got.lock().unwrap().is_empty());
    assert_eq!(*got.lock().unwrap(), vec![Signal::User1]);
    assert!(p.signals_received() >= 1);
}

fn delivered_while_poll_blocks(t: &Ctx) {
    let _g = serial();
    clear(Signal::User2);
    let p = t.proactor();
    let (_sub, got) = recording(&p, Signal::User2);
    p.poll(Some(Duration::ZERO), |_| {}).unwrap();
    let h = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(50));
        raise(Signal::User2);
    });
    let t0 = Instant::now();
    while got.lock().unwrap().is_empty() {
        assert!(t0.elapsed() < LIMIT);
        // Blocks (no timeout cut short by anything but the signal).
        p.poll(Some(Duration::from_secs(5)), |_| {}).unwrap();
    }
    h.join().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(4), "woken by the signal");
}

fn every_signal(t: &Ctx) {
    let _g = serial();
    let p = t.proactor();
    let mut subs = Vec::new();
    let got = Arc::new(Mutex::new(Vec::new()));
    for s in Signal::ALL {
        clear(s);
        let g2 = got.clone();
        subs.push(
            p.subscribe_signal(s, move |x| g2.lock().unwrap().push(x))
                .unwrap(),
        );
    }
    for s in Signal::ALL {
        raise(s);
        drive(&p, || got.lock().unwrap().contains(&s));
    }
    assert_eq!(got.lock().unwrap().len(), 6);
}

fn subscribers_in_order(t: &Ctx) {
    let _g = serial();
    clear(Signal::Hangup);
    let p = t.proactor();
    let order = Arc::new(Mutex::new(Vec::new()));
    let subs: Vec<SignalSubscription> = (0..3)
        .map(|i| {
            let o = order.clone();
            p.subscribe_signal(Signal::Hangup, move |_| o.lock().unwrap().push(i))
                .unwrap()
        })
        .collect();
    raise(Signal::Hangup);
    drive(&p, || order.lock().unwrap().len() == 3);
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
    drop(subs);
}

fn unsubscribed_not_called(t: &Ctx) {
    let _g = serial();
    clear(Signal::User1);
    clear(Signal::User2);
    let p = t.proactor();
    let (sub1, got1) = recording(&p, Signal::User1);
    let (_sub2, got2) = recording(&p, Signal::User2);
    sub1.unsubscribe();
    raise(Signal::User1);
    raise(Signal::User2);
    drive(&p, || !got2.lock().unwrap().is_empty());
    poll_for(&p, Duration::from_millis(30));
    assert!(got1.lock().unwrap().is_empty());
    clear(Signal::User1);
}

fn unsubscribe_from_callback(t: &Ctx) {
    let _g = serial();
    clear(Signal::User1);
    let p = t.proactor();
    let n = Arc::new(AtomicUsize::new(0));
    let slot: Arc<Mutex<Option<SignalSubscription>>> = Arc::new(Mutex::new(None));
    let (n2, slot2) = (n.clone(), slot.clone());
    let sub = p
        .subscribe_signal(Signal::User1, move |_| {
            n2.fetch_add(1, Ordering::SeqCst);
            drop(slot2.lock().unwrap().take());
        })
        .unwrap();
    *slot.lock().unwrap() = Some(sub);
    raise(Signal::User1);
    drive(&p, || n.load(Ordering::SeqCst) == 1);
    raise(Signal::User1);
    poll_for(&p, Duration::from_millis(30));
    assert_eq!(n.load(Ordering::SeqCst), 1);
    clear(Signal::User1);
}

fn second_proactor_refused(t: &Ctx) {
    let _g = serial();
    let (a, b) = (t.proactor(), t.proactor());
    let _sub = a.subscribe_signal(Signal::Quit, |_| {}).unwrap();
    assert!(matches!(
        b.subscribe_signal(Signal::Quit, |_| {}),
        Err(Error::FailedPrecondition(_))
    ));
    // The owner may subscribe again.
    let _again = a.subscribe_signal(Signal::Terminate, |_| {}).unwrap();
}

fn ownership_passes_on_drop(t: &Ctx) {
    let _g = serial();
    clear(Signal::User2);
    let a = t.proactor();
    let sub = a.subscribe_signal(Signal::User2, |_| {}).unwrap();
    drop(sub);
    drop(a);
    let b = t.proactor();
    let (_sub, got) = recording(&b, Signal::User2);
    raise(Signal::User2);
    drive(&b, || !got.lock().unwrap().is_empty());
}

fn subscribe_other_thread(t: &Ctx) {
    let _g = serial();
    clear(Signal::Hangup);
    let p = t.proactor();
    p.poll(Some(Duration::ZERO), |_| {}).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let (p2, g2) = (p.clone(), got.clone());
    let sub = std::thread::spawn(move || {
        let sub = p2
            .subscribe_signal(Signal::Hangup, move |s| g2.lock().unwrap().push(s))
            .unwrap();
        raise(Signal::Hangup);
        sub
    })
    .join()
    .unwrap();
    drive(&p, || !got.lock().unwrap().is_empty());
    drop(sub);
}

fn repeated_deliveries(t: &Ctx) {
    let _g = serial();
    clear(Signal::User1);
    let p = t.proactor();
    let (_sub, got) = recording(&p, Signal::User1);
    for i in 1..=5 {
        raise(Signal::User1);
        drive(&p, || got.lock().unwrap().len() >= i);
    }
    assert_eq!(
        got.lock().unwrap().len(),
        5,
        "one callback per delivery polled"
    );
}

fn blocking_helpers(_t: &Ctx) {
    let _g = serial();
    std::thread::spawn(|| {
        for s in Signal::ALL {
            assert!(signals::is_blocked(s).unwrap(), "{} inherited", s.name());
        }
        signals::unblock(&[Signal::User2]).unwrap();
        assert!(!signals::is_blocked(Signal::User2).unwrap());
        signals::block(&[Signal::User2]).unwrap();
        assert!(signals::is_blocked(Signal::User2).unwrap());
    })
    .join()
    .unwrap();
    signals::ignore_broken_pipe().unwrap();
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
    user1_delivered,
    delivered_while_poll_blocks,
    every_signal,
    subscribers_in_order,
    unsubscribed_not_called,
    unsubscribe_from_callback,
    second_proactor_refused,
    ownership_passes_on_drop,
    subscribe_other_thread,
    repeated_deliveries,
    blocking_helpers,
);
