//! The waker: the one host thread a device ring needs. Devices cannot make system calls, so when the SQPOLL
//! thread has gone to sleep (`IORING_SQ_NEED_WAKEUP`) and lanes have published SQEs it calls
//! `io_uring_enter(IORING_ENTER_SQ_WAKEUP)`. It also flushes the kernel's CQ overflow list if the overflow
//! flag ever appears (the protocol's credits make that impossible for device code that follows the library;
//! the counter shows it), backing off while a flush moves nothing.
//!
//! It reads only host-shared words while lanes run (PROTOCOL.md §9): the kernel's ring words and the
//! `SharedControl` mirrors the doorbell holders keep, never the device-local block.
//!
//! Backoff: right after a wake-up it spins for `spin`; while the SQ thread is awake (it raises
//! `IORING_SQ_NEED_WAKEUP` before it sleeps) it checks every `max_sleep`; while the SQ thread sleeps and lanes
//! publish it checks every `min_sleep`; when the ring is idle the sleep doubles up to `max_sleep`. An idle waker therefore
//! wakes about `1 / max_sleep` times a second, and a request published after a long idle waits at most about
//! `max_sleep` for its wake-up.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::arena::Inner;
use super::sys;
use crate::shared_off;

/// Without progress (the SQ head not moving), a repeated wake-up call waits this long: the flag stays set until
/// the SQ thread actually runs, which on a loaded machine takes a while, and the kernel does not lose a wake-up.
const REWAKE_AFTER: Duration = Duration::from_millis(1);

/// The longest interval between wake-ups for stalled completions (see `run`).
const STALL_WAKE_MAX: Duration = Duration::from_millis(100);

/// Waker tuning.
#[derive(Debug, Clone)]
pub struct WakerConfig {
    /// Spin this long after a wake-up before sleeping again.
    pub spin: Duration,
    /// The sleep between checks while lanes are active.
    pub min_sleep: Duration,
    /// The longest sleep between checks when idle.
    pub max_sleep: Duration,
}

impl Default for WakerConfig {
    fn default() -> Self {
        WakerConfig {
            spin: Duration::from_micros(20),
            min_sleep: Duration::from_micros(20),
            max_sleep: Duration::from_millis(1),
        }
    }
}

/// Waker counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WakerStats {
    /// `IORING_ENTER_SQ_WAKEUP` calls made (counted as each call starts, so a completion a call caused is never
    /// seen before its count; a call that failed is counted here and in `errors`).
    pub wakeups: u64,
    /// CQ overflow flushes: 0 unless device code broke the credit rules (PROTOCOL.md §4). A flush that moved
    /// nothing backs off, so a CQ that nobody reaps costs a call every 100 ms at most, not a spinning core.
    pub overflow_flushes: u64,
    /// Times the waker went to sleep.
    pub sleeps: u64,
    /// Wake-up calls that failed (errno of the last in `last_error`).
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    wakeups: AtomicU64,
    overflow_flushes: AtomicU64,
    sleeps: AtomicU64,
    errors: AtomicU64,
}

pub(crate) struct Waker {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl Waker {
    pub(crate) fn start(inner: Arc<Inner>, cfg: WakerConfig) -> std::io::Result<Waker> {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let (s, c) = (stop.clone(), counters.clone());
        let thread = std::thread::Builder::new()
            .name("gpu-uring-waker".into())
            .spawn(move || run(inner, cfg, s, c))?;
        Ok(Waker {
            stop,
            counters,
            thread: Some(thread),
        })
    }

    pub(crate) fn stats(&self) -> WakerStats {
        let c = &self.counters;
        WakerStats {
            wakeups: c.wakeups.load(Ordering::Acquire),
            overflow_flushes: c.overflow_flushes.load(Ordering::Relaxed),
            sleeps: c.sleeps.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }

    /// Stops the thread and joins it (also what dropping the waker does).
    pub(crate) fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Waker {
    /// A waker always stops with its owner, even one unwinding from a panic: the thread holds the ring and the
    /// arena, and would otherwise keep both alive (and keep polling) forever.
    fn drop(&mut self) {
        self.halt();
    }
}

/// When the next overflow flush is due: at once after one that made progress, else after an interval that
/// doubles from REWAKE_AFTER up to STALL_WAKE_MAX.
struct Backoff {
    next: Instant,
    every: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: Instant::now(),
            every: REWAKE_AFTER,
        }
    }

    fn due(&self) -> bool {
        Instant::now() >= self.next
    }

    fn after_flush(&mut self, progressed: bool) {
        if progressed {
            self.every = REWAKE_AFTER;
            self.next = Instant::now();
        } else {
            self.next = Instant::now() + self.every;
            self.every = (self.every * 2).min(STALL_WAKE_MAX);
        }
    }
}

/// One `IORING_ENTER_SQ_WAKEUP` call. It is counted before the system call: the SQ thread it wakes can
/// complete a request, and the lane see it, before this thread returns from the call, and an observer that
/// sees the completion must also see the call that caused it.
fn wake_call(fd: BorrowedFd<'_>, c: &Counters) {
    c.wakeups.fetch_add(1, Ordering::Release);
    if sys::enter(fd, 0, 0, sys::ENTER_SQ_WAKEUP).is_err() {
        c.errors.fetch_add(1, Ordering::Relaxed);
    }
}

fn run(inner: Arc<Inner>, cfg: WakerConfig, stop: Arc<AtomicBool>, c: Arc<Counters>) {
    let view = inner.view();
    let l = *view.layout();
    let fd = inner.fd.as_fd();
    let (flags_w, head_w, tail_w) = (
        view.u32_at(l.sq_flags),
        view.u32_at(l.sq_head),
        view.u32_at(l.sq_tail),
    );
    let mut last_tail = tail_w.load(Ordering::Relaxed);
    let mut last_wake = Instant::now()
        .checked_sub(cfg.spin)
        .unwrap_or_else(Instant::now);
    let mut sleep = cfg.min_sleep;
    let mut wake_head = head_w.load(Ordering::Relaxed).wrapping_sub(1);
    // The released CQ head from its mirror, not the kernel's `cq.head`, which lags it (PROTOCOL.md §5.5).
    let (cq_tail_w, cq_released_w) = (
        view.u32_at(l.cq_tail),
        view.shared32(shared_off!(cq_released)),
    );
    let credits = Credits::new(&view);
    let mut last_cq_tail = cq_tail_w.load(Ordering::Relaxed);
    let mut cq_moved = Instant::now();
    let mut stall_wake = Instant::now();
    let mut stall_every = REWAKE_AFTER;
    let mut overflow = Backoff::new();
    while !stop.load(Ordering::Acquire) {
        let flags = flags_w.load(Ordering::Acquire);
        let tail = tail_w.load(Ordering::Acquire);
        let head = head_w.load(Ordering::Acquire);
        credits.observe(tail, cq_released_w.load(Ordering::Acquire));
        let mut acted = false;
        if flags & sys::SQ_CQ_OVERFLOW != 0 && overflow.due() {
            let cq_before = cq_tail_w.load(Ordering::Acquire);
            let _ = sys::enter(fd, 0, 0, sys::ENTER_GETEVENTS);
            c.overflow_flushes.fetch_add(1, Ordering::Relaxed);
            // A flush moves CQEs from the kernel's overflow list into the CQ only while the CQ has room, i.e.
            // while lanes reap. One that moved nothing backs off (doubling up to STALL_WAKE_MAX) instead of
            // spinning on a flag that nobody is clearing.
            let progressed = cq_tail_w.load(Ordering::Acquire) != cq_before;
            overflow.after_flush(progressed);
            acted = progressed;
        }
        // Wake again only once the SQ thread has made progress since the last call, or REWAKE_AFTER passed.
        let rewake = head != wake_head || last_wake.elapsed() >= REWAKE_AFTER;
        if flags & sys::SQ_NEED_WAKEUP != 0 && tail != head && rewake {
            wake_call(fd, &c);
            wake_head = head;
            acted = true;
        }
        // Completions can need the SQ thread too: a request the kernel punted to an io-wq worker (e.g. a
        // buffered write to a regular file that would block) completes through task work that the SQPOLL
        // thread runs, and an SQ thread asleep with an empty SQ was seen (kernel 6.18, lavapipe lanes that
        // stopped publishing because every staging line was in flight) not to run it until the next wake-up.
        // So while more credited operations are in flight than CQEs wait to be claimed, the SQ thread sleeps
        // and the CQ tail has not moved, wake it now and then: after REWAKE_AFTER, doubling up to
        // STALL_WAKE_MAX while nothing completes. (An idle ring, or one whose CQEs are all posted and merely
        // unreaped, is never woken this way.)
        let cq_tail = cq_tail_w.load(Ordering::Acquire);
        if cq_tail != last_cq_tail {
            last_cq_tail = cq_tail;
            cq_moved = Instant::now();
            stall_every = REWAKE_AFTER;
        }
        if flags & sys::SQ_NEED_WAKEUP != 0
            && tail == head
            && cq_moved.elapsed() >= REWAKE_AFTER
            && stall_wake.elapsed() >= stall_every
        {
            let in_flight = l.credit_pool.wrapping_sub(credits.free());
            // CQEs posted and not yet released (claimed or not): none of them needs the SQ thread.
            let unclaimed = cq_tail.wrapping_sub(cq_released_w.load(Ordering::Acquire));
            if (in_flight as i32) > 0 && in_flight > unclaimed {
                wake_call(fd, &c);
                stall_wake = Instant::now();
                stall_every = (stall_every * 2).min(STALL_WAKE_MAX);
            }
        }
        if acted {
            last_wake = Instant::now();
            sleep = cfg.min_sleep;
            continue;
        }
        if last_wake.elapsed() < cfg.spin {
            // Just woke the SQ thread: the device is likely to publish again soon.
            std::hint::spin_loop();
            continue;
        }
        let moved = tail != last_tail;
        last_tail = tail;
        if flags & sys::SQ_NEED_WAKEUP == 0 {
            // The SQ thread is awake: it polls the tail itself and sleeps only after idling for its idle time,
            // raising the flag first. Nothing to do until then; checking often would only take CPU from it
            // and from the lanes.
            sleep = cfg.max_sleep;
        } else if moved || tail != head {
            // Asleep while lanes publish: the next check wakes it.
            sleep = cfg.min_sleep;
        } else {
            sleep = (sleep * 2).min(cfg.max_sleep);
        }
        c.sleeps.fetch_add(1, Ordering::Relaxed);
        std::thread::park_timeout(sleep);
    }
}

/// The free CQ credits as the host may see them during a run: from the two single-writer mirrors (PROTOCOL.md
/// §9) — `credits_free`, written by the CQ-bell holder at each release, and `sq_credits_free`, written by the
/// SQ-bell holder at each publication. Whichever holder moved its word last (the kernel's SQ tail; the released
/// CQ head's mirror `cq_released`) wrote the newer one (the CQ mirror when the waker cannot tell).
struct Credits<'a> {
    cq: &'a std::sync::atomic::AtomicU32,
    sq: &'a std::sync::atomic::AtomicU32,
    last_sq_tail: std::cell::Cell<u32>,
    last_cq_released: std::cell::Cell<u32>,
    sq_newer: std::cell::Cell<bool>,
}

impl<'a> Credits<'a> {
    fn new(view: &super::RingView<'a>) -> Credits<'a> {
        let l = view.layout();
        Credits {
            cq: view.shared32(shared_off!(credits_free)),
            sq: view.shared32(shared_off!(sq_credits_free)),
            last_sq_tail: view.u32_at(l.sq_tail).load(Ordering::Relaxed).into(),
            last_cq_released: view
                .shared32(shared_off!(cq_released))
                .load(Ordering::Relaxed)
                .into(),
            sq_newer: false.into(),
        }
    }

    /// Notes which kernel word moved since the last look (called every iteration).
    fn observe(&self, sq_tail: u32, cq_released: u32) {
        let (sq_moved, cq_moved) = (
            sq_tail != self.last_sq_tail.replace(sq_tail),
            cq_released != self.last_cq_released.replace(cq_released),
        );
        if sq_moved != cq_moved {
            self.sq_newer.set(sq_moved);
        }
    }

    fn free(&self) -> u32 {
        // Acquire: pairs with the holders' release stores.
        if self.sq_newer.get() {
            self.sq.load(Ordering::Acquire)
        } else {
            self.cq.load(Ordering::Acquire)
        }
    }
}
