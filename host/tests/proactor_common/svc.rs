//! Helpers of the service suites (event sources, semaphores, fences, messages,
//! relays, signals): a context per configuration, bounded polling until a condition
//! holds, and a minimal executor.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::Config;
use gpu_uring::proactor::*;

pub struct Ctx {
    pub cfg: Config,
    pub opts: Options,
}

impl Ctx {
    pub fn proactor(&self) -> Proactor {
        Proactor::new(self.opts.clone()).expect("backend was available when the test started")
    }
    pub fn proactor_with(&self, f: impl FnOnce(&mut Options)) -> Proactor {
        let mut o = self.opts.clone();
        f(&mut o);
        Proactor::new(o).expect("create proactor")
    }
    /// Whether this configuration uses io_uring with its native capabilities.
    pub fn native(&self) -> bool {
        matches!(self.cfg, Config::Uring | Config::UringNoSingleIssuer)
    }
}

pub fn run(cfg: Config, name: &str, test: fn(&Ctx)) {
    let opts = cfg.options();
    match Proactor::new(opts.clone()) {
        Ok(_) => {}
        Err(e @ Error::Unavailable { .. }) => {
            eprintln!("SKIP {name} [{cfg:?}]: backend unavailable: {e}");
            return;
        }
        Err(e) => panic!("{cfg:?}: creating the proactor failed: {e}"),
    }
    test(&Ctx { cfg, opts });
}

pub const LIMIT: Duration = Duration::from_secs(10);

/// Polls `p` (raw completions go to `on`) until `done()` holds; panics after `LIMIT`.
pub fn drive_with(p: &Proactor, mut on: impl FnMut(Completion), mut done: impl FnMut() -> bool) {
    let end = Instant::now() + LIMIT;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for a condition");
        p.poll(Some(Duration::from_millis(20)), &mut on)
            .expect("poll");
    }
}

/// Polls `p` until `done()` holds; a raw completion is a failure.
pub fn drive(p: &Proactor, done: impl FnMut() -> bool) {
    drive_with(p, |c| panic!("unexpected completion {c:?}"), done)
}

/// Polls for `d`, collecting raw completions.
pub fn poll_for(p: &Proactor, d: Duration) -> Vec<Completion> {
    let mut out = Vec::new();
    let end = Instant::now() + d;
    while Instant::now() < end {
        p.poll(Some(Duration::from_millis(5)), |c| out.push(c))
            .unwrap();
    }
    out
}

/// Polls until `n` raw completions arrived.
pub fn collect(p: &Proactor, n: usize) -> Vec<Completion> {
    let mut out = Vec::new();
    let end = Instant::now() + LIMIT;
    while out.len() < n {
        assert!(Instant::now() < end, "timed out: {} of {n}", out.len());
        p.poll(Some(Duration::from_millis(20)), |c| out.push(c))
            .unwrap();
    }
    out
}

pub fn errno_of(o: &Outcome) -> Option<i32> {
    match o {
        Outcome::Err(e) => Some(e.errno),
        _ => None,
    }
}

struct FlagWaker(AtomicBool, Proactor);
impl Wake for FlagWaker {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
        self.1.wake();
    }
}

/// Runs `fut` to completion, polling the proactor in between.
pub fn block_on<F: Future>(p: &Proactor, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let flag = Arc::new(FlagWaker(AtomicBool::new(true), p.clone()));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let end = Instant::now() + LIMIT;
    loop {
        if flag.0.swap(false, Ordering::SeqCst) {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
        }
        assert!(Instant::now() < end, "block_on timed out");
        p.poll(Some(Duration::from_millis(20)), |c| {
            panic!("unexpected raw completion {c:?}")
        })
        .unwrap();
    }
}
