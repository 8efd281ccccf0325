//! Proactor conformance suite: every test is written once and run against io_uring
//! under several capability masks and against epoll (see `conformance!` at the end).
//! A configuration is skipped, with the reason printed, only when its backend cannot be
//! created in this environment.
//!
//! Timing bounds are deliberately generous (these machines are noisy); every wait has
//! a timeout so a bug fails a test instead of hanging the suite.

use std::ffi::CString;
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

mod proactor_common;
use gpu_uring::proactor::*;
use proactor_common::Config;

// ---------------------------------------------------------------------------------
// Configurations and helpers

struct Ctx {
    cfg: Config,
    opts: Options,
}

impl Ctx {
    fn proactor(&self) -> Proactor {
        Proactor::new(self.opts.clone()).expect("backend was available when the test started")
    }
    fn proactor_with(&self, f: impl FnOnce(&mut Options)) -> Proactor {
        let mut o = self.opts.clone();
        f(&mut o);
        Proactor::new(o).expect("create proactor")
    }
}

fn run(cfg: Config, name: &str, test: fn(&Ctx)) {
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

const LONG: Duration = Duration::from_secs(10);
const LIMIT: Duration = Duration::from_secs(10);

/// Polls until `n` raw completions arrived; panics after `LIMIT`.
fn collect(p: &Proactor, n: usize) -> Vec<Completion> {
    let mut out = Vec::new();
    let end = Instant::now() + LIMIT;
    while out.len() < n {
        assert!(
            Instant::now() < end,
            "timed out waiting for {n} completions, got {}: {out:?}",
            out.len()
        );
        p.poll(Some(Duration::from_millis(100)), |c| out.push(c))
            .expect("poll");
    }
    out
}

/// Polls for a while and asserts nothing more is delivered.
fn assert_quiet(p: &Proactor, d: Duration) {
    let mut extra = Vec::new();
    let end = Instant::now() + d;
    while Instant::now() < end {
        p.poll(Some(Duration::from_millis(10)), |c| extra.push(c))
            .unwrap();
    }
    assert!(extra.is_empty(), "unexpected extra completions: {extra:?}");
}

fn one(p: &Proactor, op: Operation) -> Completion {
    let id = p.submit(op).expect("submit");
    let mut v = collect(p, 1);
    let c = v.pop().unwrap();
    assert_eq!(c.id, id);
    c
}

struct FlagWaker(AtomicBool, Proactor);
impl Wake for FlagWaker {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
        self.1.wake();
    }
}

/// A minimal executor: polls `fut`, driving the proactor between polls.
fn block_on<F: Future>(p: &Proactor, fut: F) -> F::Output {
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
        p.poll(Some(Duration::from_millis(50)), |c| {
            panic!("unexpected raw completion {c:?}")
        })
        .unwrap();
    }
}

fn tmpfile(content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf, std::fs::File) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    std::fs::write(&path, content).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    (dir, path, f)
}

fn errno_of(o: &Outcome) -> Option<i32> {
    match o {
        Outcome::Err(e) => Some(e.errno),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------
// Core operations

fn nop_completes(t: &Ctx) {
    let p = t.proactor();
    let c = one(&p, Operation::nop().user_data(42));
    assert_eq!(c.outcome, Outcome::Ok(0));
    assert_eq!(c.user_data, 42);
    assert_eq!(p.in_flight(), 0);
}

fn batch_submit(t: &Ctx) {
    let p = t.proactor();
    let mut ops: Vec<Operation> = (0..64).map(|i| Operation::nop().user_data(i)).collect();
    let mut ids = Vec::new();
    p.submit_batch(&mut ops, &mut ids).unwrap();
    assert!(ops.is_empty());
    assert_eq!(ids.len(), 64);
    let cs = collect(&p, 64);
    let mut seen: Vec<u64> = cs.iter().map(|c| c.user_data).collect();
    seen.sort();
    assert_eq!(seen, (0..64).collect::<Vec<_>>());
    assert!(cs.iter().all(|c| c.outcome == Outcome::Ok(0)));
    assert_quiet(&p, Duration::from_millis(20));
}

fn future_nop(t: &Ctx) {
    let p = t.proactor();
    let f = p.submit_future(Operation::nop().user_data(7)).unwrap();
    let c = block_on(&p, f);
    assert_eq!(c.outcome, Outcome::Ok(0));
    assert_eq!(c.user_data, 7);
    assert_eq!(p.in_flight(), 0);
}

struct Unpark(std::thread::Thread);
impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A second executor model: this thread parks until woken; a dedicated I/O thread owns
/// `poll` and wakes futures from there.
fn park_block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let end = Instant::now() + LIMIT;
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(Instant::now() < end, "park_block_on timed out");
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

fn futures_on_another_thread(t: &Ctx) {
    let p = t.proactor();
    let stop = Arc::new(AtomicBool::new(false));
    let io = {
        let (p, stop) = (p.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                p.poll(Some(Duration::from_millis(50)), |c| panic!("raw {c:?}"))
                    .unwrap();
            }
        })
    };
    let ev = Event::new().unwrap();
    let f1 = p
        .submit_future(Operation::timer(Duration::from_millis(20)))
        .unwrap();
    let f2 = p.submit_future(Operation::event_wait(&ev)).unwrap();
    let f3 = p.submit_future(Operation::nop().user_data(3)).unwrap();
    assert_eq!(park_block_on(f3).user_data, 3);
    assert_eq!(park_block_on(f1).outcome, Outcome::Ok(0));
    ev.set().unwrap();
    assert!(park_block_on(f2).outcome.ok().is_some());
    let f4 = p.submit_future(Operation::timer(LONG)).unwrap();
    assert_eq!(f4.cancel(), CancelStatus::Requested);
    assert!(park_block_on(f4).outcome.is_cancelled());
    stop.store(true, Ordering::SeqCst);
    p.wake();
    io.join().unwrap();
}

fn timer_relative(t: &Ctx) {
    let p = t.proactor();
    let start = Instant::now();
    let c = one(&p, Operation::timer(Duration::from_millis(30)));
    let el = start.elapsed();
    assert_eq!(c.outcome, Outcome::Ok(0));
    assert!(el >= Duration::from_millis(29), "fired early: {el:?}");
    assert!(el < Duration::from_secs(3), "fired far too late: {el:?}");
}

fn timer_absolute(t: &Ctx) {
    let p = t.proactor();
    let start = Deadline::now();
    let c = one(
        &p,
        Operation::timer_at(start.plus(Duration::from_millis(30))),
    );
    let el = Deadline::now().since(start);
    assert_eq!(c.outcome, Outcome::Ok(0));
    assert!(el >= Duration::from_millis(29), "fired early: {el:?}");
    assert!(el < Duration::from_secs(3), "fired far too late: {el:?}");
    // A deadline in the past fires at once.
    let s = Instant::now();
    let c = one(&p, Operation::timer_at(Deadline::now()));
    assert_eq!(c.outcome, Outcome::Ok(0));
    assert!(s.elapsed() < Duration::from_secs(2));
}

fn timer_ordering(t: &Ctx) {
    let p = t.proactor();
    let ms = [90u64, 30, 60, 10, 120];
    let mut ops: Vec<Operation> = ms
        .iter()
        .map(|m| Operation::timer(Duration::from_millis(*m * 2)).user_data(*m))
        .collect();
    let mut ids = Vec::new();
    p.submit_batch(&mut ops, &mut ids).unwrap();
    let order: Vec<u64> = collect(&p, ms.len()).iter().map(|c| c.user_data).collect();
    assert_eq!(order, vec![10, 30, 60, 90, 120]);
}

fn event_wait(t: &Ctx) {
    let p = t.proactor();
    let ev = Event::new().unwrap();
    assert!(!ev.is_set().unwrap());
    let id1 = p.submit(Operation::event_wait(&ev).user_data(1)).unwrap();
    let id2 = p.submit(Operation::event_wait(&ev).user_data(2)).unwrap();
    p.poll(Some(Duration::from_millis(20)), |c| panic!("early {c:?}"))
        .unwrap();
    let ev2 = ev.clone();
    let th = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        ev2.set().unwrap();
    });
    let cs = collect(&p, 2);
    th.join().unwrap();
    assert!(
        cs.iter()
            .all(|c| matches!(c.outcome, Outcome::Ok(m) if m & libc::POLLIN as u32 != 0)),
        "{cs:?}"
    );
    let mut ids: Vec<_> = cs.iter().map(|c| c.id).collect();
    ids.sort_by_key(|i| format!("{i:?}"));
    let mut want = vec![id1, id2];
    want.sort_by_key(|i| format!("{i:?}"));
    assert_eq!(ids, want);
    // Waits do not consume the event; an already-set event completes at once.
    assert!(ev.is_set().unwrap());
    let c = one(&p, Operation::event_wait(&ev));
    assert!(c.outcome.ok().is_some());
    assert!(ev.reset().unwrap());
    assert!(!ev.is_set().unwrap());
}

fn notification_wait(t: &Ctx) {
    let p = t.proactor();
    let n = Notification::new();
    let token = n.epoch();
    let id = p.submit(Operation::notification_wait(&n, token)).unwrap();
    p.poll(Some(Duration::from_millis(20)), |c| panic!("early {c:?}"))
        .unwrap();
    let n2 = n.clone();
    let th = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        n2.signal();
    });
    let c = collect(&p, 1).pop().unwrap();
    th.join().unwrap();
    assert_eq!(c.id, id);
    assert_eq!(c.outcome, Outcome::Ok(0));
    // A stale token completes at once.
    let c = one(&p, Operation::notification_wait(&n, token));
    assert_eq!(c.outcome, Outcome::Ok(0));
    // Thread-side wait, signalled by another thread.
    let token = n.epoch();
    let n3 = n.clone();
    let th = std::thread::spawn(move || n3.wait(token, Some(Duration::from_secs(5))));
    std::thread::sleep(Duration::from_millis(10));
    n.signal();
    assert!(th.join().unwrap());
    assert!(!n.wait(n.epoch(), Some(Duration::from_millis(5))));
}

fn notification_many_waiters(t: &Ctx) {
    let p = t.proactor();
    let n = Notification::new();
    let token = n.epoch();
    let mut ops: Vec<Operation> = (0..16)
        .map(|i| Operation::notification_wait(&n, token).user_data(i))
        .collect();
    let mut ids = Vec::new();
    p.submit_batch(&mut ops, &mut ids).unwrap();
    p.poll(Some(Duration::from_millis(10)), |c| panic!("early {c:?}"))
        .unwrap();
    n.signal();
    let cs = collect(&p, 16);
    assert!(cs.iter().all(|c| c.outcome == Outcome::Ok(0)));
    drop(cs);
    assert_eq!(
        n.handle_count(),
        1,
        "completed waits released the notification"
    );
}

// ---------------------------------------------------------------------------------
// Files

fn file_ops(t: &Ctx) {
    let p = t.proactor();
    let dir = tempfile::tempdir().unwrap();
    let path = CString::new(dir.path().join("f").to_str().unwrap()).unwrap();
    let c = one(
        &p,
        Operation::open_at(libc::AT_FDCWD, path, libc::O_RDWR | libc::O_CREAT, 0o600),
    );
    let fd = c.outcome.ok().expect("open") as i32;
    // SAFETY: the open just returned this descriptor to us.
    let file = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw = file.as_raw_fd();

    let c = one(&p, Operation::write_at(raw, b"hello world".to_vec(), 0));
    assert_eq!(c.outcome, Outcome::Ok(11));
    assert_eq!(c.resources.into_buf().unwrap(), b"hello world");

    let c = one(
        &p,
        Operation::writev_at(raw, vec![b"abc".to_vec(), b"defg".to_vec()], 11),
    );
    assert_eq!(c.outcome, Outcome::Ok(7));

    let c = one(&p, Operation::fsync(raw, false));
    assert_eq!(c.outcome, Outcome::Ok(0));
    let c = one(&p, Operation::fsync(raw, true));
    assert_eq!(c.outcome, Outcome::Ok(0));

    let c = one(&p, Operation::read_at(raw, vec![0; 5], 6));
    assert_eq!(c.outcome, Outcome::Ok(5));
    assert_eq!(c.resources.into_buf().unwrap(), b"world");

    let c = one(
        &p,
        Operation::readv_at(raw, vec![vec![0; 2], vec![0; 5]], 9),
    );
    assert_eq!(c.outcome, Outcome::Ok(7));
    let bufs = c.resources.into_bufs().unwrap();
    assert_eq!(bufs[0], b"ld");
    assert_eq!(bufs[1], b"abcde");

    // Reading past the end is a short read, not an error.
    let c = one(&p, Operation::read_at(raw, vec![0; 100], 10));
    assert_eq!(c.outcome, Outcome::Ok(8));

    // (Descriptor counts are checked in proactor_teardown.rs: other tests of this
    // binary open descriptors concurrently.)
    let c = one(&p, Operation::close(file));
    assert_eq!(c.outcome, Outcome::Ok(0));
    assert_eq!(
        std::fs::read(dir.path().join("f")).unwrap(),
        b"hello worldabcdefg"
    );
}

fn file_errors(t: &Ctx) {
    let p = t.proactor();
    let c = one(
        &p,
        Operation::open_at(
            libc::AT_FDCWD,
            CString::new("/nonexistent/x/y").unwrap(),
            libc::O_RDONLY,
            0,
        ),
    );
    assert_eq!(errno_of(&c.outcome), Some(libc::ENOENT), "{c:?}");
    if let Outcome::Err(e) = &c.outcome {
        assert!(
            e.to_string().contains("open"),
            "error names the operation: {e}"
        );
    }
    let c = one(&p, Operation::read_at(-1, vec![0; 8], 0));
    assert_eq!(errno_of(&c.outcome), Some(libc::EBADF), "{c:?}");
    let (_d, path, _f) = tmpfile(b"x");
    let ro = std::fs::File::open(&path).unwrap();
    let c = one(&p, Operation::write_at(&ro, b"no".to_vec(), 0));
    assert_eq!(errno_of(&c.outcome), Some(libc::EBADF), "{c:?}");
    let c = one(&p, Operation::fsync(-1, false));
    assert_eq!(errno_of(&c.outcome), Some(libc::EBADF), "{c:?}");
    // Fixed index that was never registered: refused at submission, op handed back.
    let e = p
        .submit(Operation::read_at(Target::Fixed(3), vec![0; 8], 0))
        .unwrap_err();
    assert!(matches!(e.error, Error::InvalidArgument(_)));
    assert_eq!(e.op.name(), "read");
}

fn registered_buffers(t: &Ctx) {
    let p = t.proactor();
    p.register_buffers(4, 4096).unwrap();
    assert!(p.register_buffers(4, 4096).is_err());
    let content: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
    let (_d, path, f) = tmpfile(&content);
    let buf = p.fixed_buffer(1).unwrap();
    assert!(p.fixed_buffer(1).is_none(), "a lease is exclusive");
    let c = one(&p, Operation::read_fixed(&f, buf, 4096, 4096));
    assert_eq!(c.outcome, Outcome::Ok(4096));
    let mut buf = c.resources.into_fixed().unwrap();
    assert_eq!(&buf[..], &content[4096..]);
    buf[..4].copy_from_slice(b"WXYZ");
    let c = one(&p, Operation::write_fixed(&f, buf, 10, 4));
    assert_eq!(c.outcome, Outcome::Ok(4));
    drop(c);
    assert!(
        p.fixed_buffer(1).is_some(),
        "dropping the lease returns the buffer"
    );
    assert_eq!(&std::fs::read(&path).unwrap()[10..14], b"WXYZ");
    let b = p.fixed_buffer(0).unwrap();
    let e = p.submit(Operation::read_fixed(&f, b, 0, 8192)).unwrap_err();
    assert!(
        matches!(e.error, Error::InvalidArgument(_)),
        "length beyond the buffer is refused"
    );
}

fn fixed_files(t: &Ctx) {
    let p = t.proactor();
    let (_d, _path, f) = tmpfile(b"0123456789");
    p.register_files(&[f.as_fd()]).unwrap();
    drop(f); // the proactor holds its own reference
    let c = one(&p, Operation::read_at(Target::Fixed(0), vec![0; 4], 3));
    assert_eq!(c.outcome, Outcome::Ok(4));
    assert_eq!(c.resources.into_buf().unwrap(), b"3456");
    let c = one(&p, Operation::write_at(Target::Fixed(0), b"ab".to_vec(), 0));
    assert_eq!(c.outcome, Outcome::Ok(2));
}

// ---------------------------------------------------------------------------------
// Linked sequences

fn linked_success(t: &Ctx) {
    let p = t.proactor();
    let (_d, _path, f) = tmpfile(b"");
    let raw = f.as_raw_fd();
    let mut ops = vec![
        Operation::write_at(raw, b"linked!".to_vec(), 0).user_data(0),
        Operation::fsync(raw, true).user_data(1),
        Operation::timer(Duration::from_millis(5)).user_data(2),
        Operation::read_at(raw, vec![0; 7], 0).user_data(3),
    ];
    let mut ids = Vec::new();
    p.submit_linked(&mut ops, &mut ids).unwrap();
    let cs = collect(&p, 4);
    let order: Vec<u64> = cs.iter().map(|c| c.user_data).collect();
    assert_eq!(order, vec![0, 1, 2, 3], "steps complete in order");
    assert!(cs.iter().all(|c| c.outcome.ok().is_some()), "{cs:?}");
    let last = cs.into_iter().last().unwrap();
    assert_eq!(last.resources.into_buf().unwrap(), b"linked!");
}

fn linked_failure_cancels_rest(t: &Ctx) {
    let p = t.proactor();
    let (_d, _path, f) = tmpfile(b"abc");
    let mut ops = vec![
        Operation::nop().user_data(0),
        Operation::read_at(-1, vec![0; 4], 0).user_data(1),
        Operation::write_at(&f, b"MUST NOT HAPPEN".to_vec(), 0).user_data(2),
        Operation::timer(Duration::from_millis(1)).user_data(3),
    ];
    let mut ids = Vec::new();
    p.submit_linked(&mut ops, &mut ids).unwrap();
    let mut cs = collect(&p, 4);
    cs.sort_by_key(|c| c.user_data);
    assert_eq!(cs[0].outcome, Outcome::Ok(0));
    assert_eq!(errno_of(&cs[1].outcome), Some(libc::EBADF));
    assert!(cs[2].outcome.is_cancelled(), "{:?}", cs[2]);
    assert!(cs[3].outcome.is_cancelled(), "{:?}", cs[3]);
    assert_eq!(
        std::fs::read(&_path).unwrap(),
        b"abc",
        "cancelled write did not run"
    );
    assert_quiet(&p, Duration::from_millis(20));
}

fn linked_short_read_breaks(t: &Ctx) {
    let p = t.proactor();
    let (_d, _path, f) = tmpfile(b"0123456789");
    let mut ops = vec![
        Operation::read_at(&f, vec![0; 4096], 0).user_data(0),
        Operation::nop().user_data(1),
    ];
    let mut ids = Vec::new();
    p.submit_linked(&mut ops, &mut ids).unwrap();
    let mut cs = collect(&p, 2);
    cs.sort_by_key(|c| c.user_data);
    assert_eq!(cs[0].outcome, Outcome::Ok(10));
    assert!(
        cs[1].outcome.is_cancelled(),
        "a short read breaks the sequence: {:?}",
        cs[1]
    );
}

fn linked_cancel_middle(t: &Ctx) {
    let p = t.proactor();
    let mut ops = vec![
        Operation::nop().user_data(0),
        Operation::timer(LONG).user_data(1),
        Operation::nop().user_data(2),
    ];
    let mut ids = Vec::new();
    p.submit_linked(&mut ops, &mut ids).unwrap();
    let first = collect(&p, 1);
    assert_eq!(first[0].user_data, 0);
    p.poll(Some(Duration::from_millis(10)), |c| panic!("early {c:?}"))
        .unwrap();
    assert_eq!(
        p.cancel(ids[2]),
        CancelStatus::Requested,
        "cancelling a later step cancels the sequence"
    );
    let mut cs = collect(&p, 2);
    cs.sort_by_key(|c| c.user_data);
    assert!(
        cs[0].outcome.is_cancelled() && cs[1].outcome.is_cancelled(),
        "{cs:?}"
    );
    assert_eq!(p.cancel(ids[0]), CancelStatus::NotFound);
    assert_quiet(&p, Duration::from_millis(20));
}

fn linked_futures(t: &Ctx) {
    let p = t.proactor();
    let n = Notification::new();
    let mut ops = vec![
        Operation::notification_wait(&n, n.epoch()),
        Operation::nop(),
    ];
    let futs = p.submit_linked_futures(&mut ops).unwrap();
    let n2 = n.clone();
    let th = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        n2.signal();
    });
    let mut outs = Vec::new();
    for f in futs {
        outs.push(block_on(&p, f).outcome);
    }
    th.join().unwrap();
    assert_eq!(outs, vec![Outcome::Ok(0), Outcome::Ok(0)]);
}

// ---------------------------------------------------------------------------------
// Cancellation matrix

/// Operations that stay pending until cancelled, with whatever keeps them alive.
fn pending_ops() -> (Vec<Operation>, Event, Notification) {
    let ev = Event::new().unwrap();
    let n = Notification::new();
    let ops = vec![
        Operation::timer(LONG).user_data(0),
        Operation::timer_at(Deadline::after(LONG)).user_data(1),
        Operation::event_wait(&ev).user_data(2),
        Operation::notification_wait(&n, n.epoch()).user_data(3),
    ];
    (ops, ev, n)
}

fn cancel_before_start(t: &Ctx) {
    let p = t.proactor();
    let (ops, _ev, _n) = pending_ops();
    for op in ops {
        let ud = op.get_user_data();
        let id = p.submit(op).unwrap();
        assert_eq!(p.cancel(id), CancelStatus::Requested, "op {ud}");
        let c = collect(&p, 1).pop().unwrap();
        assert_eq!(c.id, id);
        assert!(c.outcome.is_cancelled(), "op {ud}: {c:?}");
        assert_eq!(p.cancel(id), CancelStatus::NotFound);
    }
    // Immediate operations cancelled before the first poll: delivered exactly once,
    // cancelled or (if the backend already ran them) with their normal result.
    let (_d, _path, f) = tmpfile(b"abcdef");
    let victim: OwnedFd = std::fs::File::open(&_path).unwrap().into();
    let ops = vec![
        Operation::nop(),
        Operation::read_at(&f, vec![0; 3], 0),
        Operation::write_at(&f, b"xy".to_vec(), 0),
        Operation::readv_at(&f, vec![vec![0; 2], vec![0; 2]], 0),
        Operation::writev_at(&f, vec![b"a".to_vec(), b"b".to_vec()], 0),
        Operation::fsync(&f, false),
        Operation::open_at(
            libc::AT_FDCWD,
            CString::new("/").unwrap(),
            libc::O_RDONLY,
            0,
        ),
        Operation::close(victim),
    ];
    for op in ops {
        let name = op.name();
        let id = p.submit(op).unwrap();
        let st = p.cancel(id);
        let c = collect(&p, 1).pop().unwrap();
        assert_eq!(c.id, id);
        match c.outcome {
            Outcome::Cancelled => {
                assert_eq!(st, CancelStatus::Requested);
                if name == "close" {
                    assert!(
                        matches!(c.resources, Resources::Fd(_)),
                        "a close that never ran returns the fd"
                    );
                }
            }
            Outcome::Ok(v) => {
                if name == "open" {
                    // SAFETY: the open returned a descriptor we now own.
                    drop(unsafe { OwnedFd::from_raw_fd(v as i32) });
                }
            }
            o => panic!("{name}: {o:?}"),
        }
        assert_quiet(&p, Duration::from_millis(5));
    }
}

fn cancel_in_flight(t: &Ctx) {
    let p = t.proactor();
    let (mut ops, ev, n) = pending_ops();
    let mut ids = Vec::new();
    p.submit_batch(&mut ops, &mut ids).unwrap();
    p.poll(Some(Duration::from_millis(20)), |c| panic!("early {c:?}"))
        .unwrap();
    for id in &ids {
        assert_eq!(p.cancel(*id), CancelStatus::Requested);
    }
    let cs = collect(&p, ids.len());
    assert!(cs.iter().all(|c| c.outcome.is_cancelled()), "{cs:?}");
    drop(cs);
    assert_eq!(
        ev.handle_count(),
        1,
        "cancelled event wait released the event"
    );
    assert_eq!(
        n.handle_count(),
        1,
        "cancelled notification wait released it"
    );
    assert_quiet(&p, Duration::from_millis(20));
    // The objects still work after cancelled waits.
    ev.set().unwrap();
    assert!(one(&p, Operation::event_wait(&ev)).outcome.ok().is_some());
}

fn cancel_after_completion_and_twice(t: &Ctx) {
    let p = t.proactor();
    let c = one(&p, Operation::nop());
    assert_eq!(p.cancel(c.id), CancelStatus::NotFound);
    let id = p.submit(Operation::timer(LONG)).unwrap();
    p.poll(Some(Duration::ZERO), |_| panic!()).unwrap();
    assert_eq!(p.cancel(id), CancelStatus::Requested);
    // Harmless: still Requested while pending, NotFound where the backend already
    // determined the (cancelled) completion; either way exactly one completion follows.
    let again = p.cancel(id);
    assert!(matches!(
        again,
        CancelStatus::Requested | CancelStatus::NotFound
    ));
    let cs = collect(&p, 1);
    assert!(cs[0].outcome.is_cancelled());
    assert_eq!(p.cancel(id), CancelStatus::NotFound);
    assert_quiet(&p, Duration::from_millis(30));
    // A stale id (slot reused) is not found.
    let id2 = p.submit(Operation::timer(LONG)).unwrap();
    assert_ne!(id, id2);
    assert_eq!(p.cancel(id), CancelStatus::NotFound);
    assert_eq!(p.cancel(id2), CancelStatus::Requested);
    collect(&p, 1);
}

fn many_cancelled_timers(t: &Ctx) {
    // Cancelled timers must not pile up anywhere (the epoll timer heap cleans itself).
    let p = t.proactor_with(|o| o.max_in_flight = 16);
    let mut ids = Vec::new();
    for round in 0..100 {
        let mut ops: Vec<Operation> = (0..8).map(|_| Operation::timer(LONG)).collect();
        ids.clear();
        p.submit_batch(&mut ops, &mut ids).unwrap();
        p.poll(Some(Duration::ZERO), |_| panic!("round {round}"))
            .unwrap();
        for id in &ids {
            p.cancel(*id);
        }
        let cs = collect(&p, 8);
        assert!(cs.iter().all(|c| c.outcome.is_cancelled()));
    }
    // A short timer still fires on time after all that.
    let start = Instant::now();
    assert_eq!(
        one(&p, Operation::timer(Duration::from_millis(5))).outcome,
        Outcome::Ok(0)
    );
    assert!(start.elapsed() < Duration::from_secs(3));
}

fn cancel_racing_completion(t: &Ctx) {
    let p = t.proactor();
    let n = 200;
    let mut ops: Vec<Operation> = (0..n)
        .map(|i| Operation::timer(Duration::from_micros((i % 7) * 300)).user_data(i))
        .collect();
    let mut ids = Vec::new();
    p.submit_batch(&mut ops, &mut ids).unwrap();
    let p2 = p.clone();
    let ids2 = ids.clone();
    let canceller =
        std::thread::spawn(move || ids2.iter().map(|id| p2.cancel(*id)).collect::<Vec<_>>());
    let cs = collect(&p, n as usize);
    let statuses = canceller.join().unwrap();
    let mut seen = std::collections::HashSet::new();
    for c in &cs {
        assert!(seen.insert(c.id), "delivered twice: {c:?}");
        assert!(
            matches!(c.outcome, Outcome::Ok(0) | Outcome::Cancelled),
            "{c:?}"
        );
    }
    for (id, st) in ids.iter().zip(statuses) {
        let c = cs.iter().find(|c| c.id == *id).unwrap();
        if st == CancelStatus::NotFound {
            assert_eq!(
                c.outcome,
                Outcome::Ok(0),
                "not-found cancel means it had completed"
            );
        }
    }
    assert_quiet(&p, Duration::from_millis(30));
    assert_eq!(p.in_flight(), 0);
}

fn cancel_from_other_thread_while_poll_blocks(t: &Ctx) {
    let p = t.proactor();
    let (mut ops, _ev, _n) = pending_ops();
    let mut ids = Vec::new();
    p.submit_batch(&mut ops, &mut ids).unwrap();
    p.poll(Some(Duration::ZERO), |_| panic!()).unwrap();
    let p2 = p.clone();
    let ids2 = ids.clone();
    let th = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        ids2.iter().map(|id| p2.cancel(*id)).collect::<Vec<_>>()
    });
    let start = Instant::now();
    let mut cs = Vec::new();
    while cs.len() < ids.len() {
        // Blocks far longer than the test allows: only the cancellations can end it.
        p.poll(Some(LIMIT), |c| cs.push(c)).unwrap();
        assert!(start.elapsed() < LIMIT);
    }
    assert!(th
        .join()
        .unwrap()
        .iter()
        .all(|s| *s == CancelStatus::Requested));
    assert!(cs.iter().all(|c| c.outcome.is_cancelled()), "{cs:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

fn drop_future_cancels(t: &Ctx) {
    let p = t.proactor();
    let ev = Event::new().unwrap();
    let n = Notification::new();
    let f1 = p.submit_future(Operation::timer(LONG)).unwrap();
    let f2 = p.submit_future(Operation::event_wait(&ev)).unwrap();
    let f3 = p
        .submit_future(Operation::notification_wait(&n, n.epoch()))
        .unwrap();
    let f4 = p
        .submit_future(Operation::read_at(-1, vec![0; 64], 0))
        .unwrap();
    p.poll(Some(Duration::from_millis(10)), |_| panic!())
        .unwrap();
    assert_eq!(p.in_flight(), 4);
    drop((f1, f2, f3, f4));
    let end = Instant::now() + LIMIT;
    while p.in_flight() > 0 {
        assert!(
            Instant::now() < end,
            "dropped futures never released their slots"
        );
        p.poll(Some(Duration::from_millis(20)), |c| {
            panic!("detached op delivered {c:?}")
        })
        .unwrap();
    }
    assert_eq!(ev.handle_count(), 1);
    assert_eq!(n.handle_count(), 1);
    // A future cancelled explicitly resolves to Cancelled.
    let f = p.submit_future(Operation::timer(LONG)).unwrap();
    p.poll(Some(Duration::ZERO), |_| panic!()).unwrap();
    assert_eq!(f.cancel(), CancelStatus::Requested);
    assert!(block_on(&p, f).outcome.is_cancelled());
}

// ---------------------------------------------------------------------------------
// Threads, wake, queue limits

fn cross_thread_submit_during_poll(t: &Ctx) {
    let p = t.proactor();
    let per = 150usize;
    let threads = 3usize;
    let barrier = Arc::new(Barrier::new(threads + 1));
    let mut hs = Vec::new();
    for th in 0..threads {
        let p = p.clone();
        let b = barrier.clone();
        hs.push(std::thread::spawn(move || {
            b.wait();
            for i in 0..per {
                let op = if i % 3 == 0 {
                    Operation::timer(Duration::from_micros(200))
                } else {
                    Operation::nop()
                };
                let mut op = op.user_data((th * per + i) as u64);
                loop {
                    match p.submit(op) {
                        Ok(_) => break,
                        Err(e) if e.error.is_retryable() => {
                            op = e.op;
                            std::thread::yield_now();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    barrier.wait();
    let mut got = Vec::new();
    let end = Instant::now() + LIMIT;
    while got.len() < per * threads {
        assert!(
            Instant::now() < end,
            "only {} of {} delivered",
            got.len(),
            per * threads
        );
        // Long timeout: the submitters must wake us.
        p.poll(Some(Duration::from_secs(2)), |c| got.push(c.user_data))
            .unwrap();
    }
    for h in hs {
        h.join().unwrap();
    }
    got.sort();
    got.dedup();
    assert_eq!(got.len(), per * threads);
}

fn submit_wakes_blocked_poll(t: &Ctx) {
    let p = t.proactor();
    p.poll(Some(Duration::ZERO), |_| {}).unwrap();
    for (delay, op) in [
        (30, Operation::nop()),
        (30, Operation::timer(Duration::from_millis(1))),
    ] {
        let p2 = p.clone();
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(delay));
            p2.submit(op.user_data(9)).unwrap();
        });
        let start = Instant::now();
        let mut got = Vec::new();
        while got.is_empty() && start.elapsed() < LIMIT {
            // A poll that is not woken by the submission would sleep for the whole LIMIT.
            p.poll(Some(LIMIT), |c| got.push(c)).unwrap();
        }
        th.join().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].user_data, 9);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "submission did not wake poll: {:?}",
            start.elapsed()
        );
    }
}

fn wake_interrupts_poll(t: &Ctx) {
    let p = t.proactor();
    p.poll(Some(Duration::ZERO), |_| {}).unwrap();
    let p2 = p.clone();
    let th = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        p2.wake();
    });
    let start = Instant::now();
    let n = p.poll(Some(LIMIT), |_| {}).unwrap();
    th.join().unwrap();
    assert_eq!(n, 0);
    assert!(start.elapsed() < Duration::from_secs(5));
    // Wakes coalesce and a wake before poll makes the next poll return.
    p.wake();
    p.wake();
    assert_eq!(p.poll(Some(Duration::from_secs(5)), |_| {}).unwrap(), 0);
}

fn poll_ownership(t: &Ctx) {
    let p = t.proactor();
    p.poll(Some(Duration::ZERO), |_| {}).unwrap();
    let p2 = p.clone();
    let r = std::thread::spawn(move || p2.poll(Some(Duration::ZERO), |_| {}))
        .join()
        .unwrap();
    assert_eq!(r, Err(Error::NotPollOwner));
    p.submit(Operation::nop()).unwrap();
    let inner = Mutex::new(None);
    collect_with(&p, 1, |_c| {
        *inner.lock().unwrap() = Some(p.poll(Some(Duration::ZERO), |_| {}));
    });
    assert_eq!(inner.lock().unwrap().take(), Some(Err(Error::PollBusy)));
}

/// Threads racing to poll a fresh proactor: one becomes the owner; every other gets
/// `NotPollOwner` at once — not `PollBusy`, and without waiting for the owner's poll.
fn racing_first_pollers(t: &Ctx) {
    let p = t.proactor();
    let n = 4;
    let barrier = Arc::new(Barrier::new(n));
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let (p, barrier) = (p.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let r = p.poll(Some(Duration::from_secs(5)), |_| {});
                (r, start.elapsed())
            })
        })
        .collect();
    // The losers return by themselves; then the owner's poll is woken.
    let end = Instant::now() + LIMIT;
    while hs.iter().filter(|h| h.is_finished()).count() < n - 1 {
        assert!(Instant::now() < end, "a losing poller did not return");
        std::thread::sleep(Duration::from_millis(5));
    }
    p.wake();
    let results: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    let owners = results.iter().filter(|(r, _)| r.is_ok()).count();
    assert_eq!(owners, 1, "{results:?}");
    for (r, took) in &results {
        if let Err(e) = r {
            assert_eq!(*e, Error::NotPollOwner, "{results:?}");
            assert!(*took < Duration::from_secs(2), "a loser waited {took:?}");
        }
    }
}

fn collect_with(p: &Proactor, n: usize, mut f: impl FnMut(Completion)) {
    let mut got = 0;
    let end = Instant::now() + LIMIT;
    while got < n {
        assert!(Instant::now() < end);
        p.poll(Some(Duration::from_millis(100)), |c| {
            got += 1;
            f(c)
        })
        .unwrap();
    }
}

fn queue_full_and_retry(t: &Ctx) {
    let p = t.proactor_with(|o| {
        o.max_in_flight = 8;
        o.ring_entries = 4;
    });
    // Before any poll nothing may enter the kernel, so the ring (4 entries on io_uring)
    // or the slots (8) fill up.
    let mut ids = Vec::new();
    let err = loop {
        match p.submit(Operation::timer(LONG).user_data(ids.len() as u64)) {
            Ok(id) => ids.push(id),
            Err(e) => break e,
        }
        assert!(ids.len() <= 8);
    };
    assert!(err.error.is_retryable(), "{}", err.error);
    assert!(matches!(err.error, Error::SubmissionQueueFull { .. }));
    assert_eq!(err.op.name(), "timer", "the rejected op is handed back");
    let mut op = err.op;
    // The poll thread flushes the ring; retry until the slots are full.
    p.poll(Some(Duration::ZERO), |_| {}).unwrap();
    loop {
        match p.submit(op) {
            Ok(id) => {
                ids.push(id);
                op = Operation::timer(LONG);
            }
            Err(e) => {
                assert!(e.error.is_retryable());
                assert!(matches!(
                    e.error,
                    Error::SubmissionQueueFull {
                        queue: QueueKind::OperationSlots,
                        ..
                    }
                ));
                op = e.op;
                break;
            }
        }
    }
    assert_eq!(ids.len(), 8);
    // A batch that does not fit is refused as a whole.
    let mut batch = vec![Operation::nop(), Operation::nop()];
    let mut bids = Vec::new();
    assert!(p
        .submit_batch(&mut batch, &mut bids)
        .unwrap_err()
        .is_retryable());
    assert_eq!(batch.len(), 2);
    assert!(bids.is_empty());
    // Free one slot, retry succeeds.
    p.cancel(ids[0]);
    let c = collect(&p, 1);
    assert!(c[0].outcome.is_cancelled());
    let id = p.submit(op).expect("retry after draining");
    for id in ids.iter().skip(1).chain(std::iter::once(&id)) {
        p.cancel(*id);
    }
    collect(&p, 8);
}

// ---------------------------------------------------------------------------------
// Resources, capabilities

fn capabilities_reported(t: &Ctx) {
    let p = t.proactor();
    let caps = p.capabilities();
    eprintln!(
        "{:?} {:?} flags={:?}: {caps:?}",
        t.cfg,
        p.backend(),
        p.ring_flags()
    );
    match t.cfg {
        Config::Epoll => {
            assert_eq!(p.backend(), BackendKind::Epoll);
            assert_eq!(caps.get(Capability::LinkedOperations), Support::Emulated);
            assert_eq!(caps.get(Capability::RegisteredBuffers), Support::Emulated);
            assert_eq!(caps.get(Capability::FixedFiles), Support::Emulated);
            assert_eq!(caps.get(Capability::SingleIssuer), Support::Absent);
        }
        Config::UringEmulated => {
            assert_eq!(p.backend(), BackendKind::IoUring);
            for c in [
                Capability::LinkedOperations,
                Capability::RegisteredBuffers,
                Capability::FixedFiles,
                Capability::AbsoluteTimers,
                Capability::KernelNotificationWait,
            ] {
                assert_eq!(caps.get(c), Support::Emulated, "{c:?}");
            }
            assert_eq!(caps.get(Capability::SingleIssuer), Support::Absent);
        }
        Config::Uring | Config::UringNoSingleIssuer => {
            assert_eq!(p.backend(), BackendKind::IoUring);
            assert_eq!(caps.get(Capability::RegisteredBuffers), Support::Native);
            assert_eq!(caps.get(Capability::FixedFiles), Support::Native);
            if t.cfg == Config::UringNoSingleIssuer {
                assert_eq!(caps.get(Capability::SingleIssuer), Support::Absent);
                assert_eq!(caps.get(Capability::DeferTaskrun), Support::Absent);
            }
        }
    }
    for c in Capability::ALL {
        let _ = caps.get(c);
    }
}

fn many_in_flight_mixed(t: &Ctx) {
    // A larger mixed workload through futures and raw completions at once.
    let p = t.proactor();
    // Become the poll thread first: it may flush a full ring itself, so a batch larger
    // than the ring is accepted (other threads would get the retryable queue-full error).
    p.poll(Some(Duration::ZERO), |_| {}).unwrap();
    let (_d, _path, f) = tmpfile(&vec![3u8; 64 * 1024]);
    let raw = f.as_raw_fd();
    let done = Arc::new(AtomicUsize::new(0));
    let mut ops: Vec<Operation> = (0..256u64)
        .map(|i| Operation::read_at(raw, vec![0; 256], i * 256).user_data(i))
        .collect();
    let mut ids = Vec::new();
    p.submit_batch(&mut ops, &mut ids).unwrap();
    let futs: Vec<_> = (0..32)
        .map(|_| p.submit_future(Operation::nop()).unwrap())
        .collect();
    let cs = collect(&p, 256);
    assert!(cs.iter().all(|c| c.outcome == Outcome::Ok(256)));
    for fut in futs {
        assert_eq!(block_on(&p, fut).outcome, Outcome::Ok(0));
        done.fetch_add(1, Ordering::Relaxed);
    }
    assert_eq!(done.load(Ordering::Relaxed), 32);
    assert_eq!(p.in_flight(), 0);
}

// ---------------------------------------------------------------------------------
// Simple operations (SimpleOp, submit_simple, poll_lent)

/// A placeholder for `ids` slices: the id of a nop that already completed (a stale
/// id, never handed out again).
fn stale_id(p: &Proactor) -> OpId {
    one(p, Operation::nop()).id
}

/// Like `collect`, through `poll_lent`: takes each completion's resources out of the
/// lent value.
fn collect_lent(p: &Proactor, n: usize) -> Vec<Completion> {
    let mut out = Vec::new();
    let end = Instant::now() + LIMIT;
    while out.len() < n {
        assert!(
            Instant::now() < end,
            "timed out waiting for {n} lent completions, got {}: {out:?}",
            out.len()
        );
        p.poll_lent(Some(Duration::from_millis(100)), |c| {
            out.push(Completion {
                id: c.id,
                user_data: c.user_data,
                outcome: c.outcome,
                resources: std::mem::replace(&mut c.resources, Resources::None),
                more: c.more,
            })
        })
        .expect("poll_lent");
    }
    out
}

/// Checks that `cs` holds exactly one completion per id, each with the user_data of
/// the op submitted at the same position, `Ok(0)` and no resources.
fn assert_simple_done(cs: &[Completion], ops: &[SimpleOp], ids: &[OpId]) {
    assert_eq!(cs.len(), ops.len(), "{cs:?}");
    let mut seen = std::collections::HashSet::new();
    for c in cs {
        assert!(seen.insert(c.id), "delivered twice: {c:?}");
        let i = ids
            .iter()
            .position(|id| *id == c.id)
            .unwrap_or_else(|| panic!("unknown id: {c:?}"));
        assert_eq!(c.user_data, ops[i].get_user_data(), "{c:?}");
        assert_eq!(c.outcome, Outcome::Ok(0), "{c:?}");
        assert!(matches!(c.resources, Resources::None), "{c:?}");
    }
}

fn simple_ops_complete(t: &Ctx) {
    let p = t.proactor();
    let (_d, _path, f) = tmpfile(b"sync me");
    let dummy = stale_id(&p);
    let ops = [
        SimpleOp::nop().user_data(10),
        SimpleOp::timer(Duration::from_millis(5)).user_data(11),
        SimpleOp::timer_at(Deadline::after(Duration::from_millis(5))).user_data(12),
        SimpleOp::timer_at(Deadline::now()).user_data(13),
        SimpleOp::timer(Duration::ZERO).user_data(14),
        SimpleOp::fsync(&f, false).user_data(15),
        SimpleOp::fsync(f.as_raw_fd(), true).user_data(16),
        SimpleOp::nop().user_data(u64::MAX),
    ];
    assert_eq!(ops[0].name(), "nop");
    assert_eq!(ops[1].name(), "timer");
    assert_eq!(ops[5].name(), "fsync");
    for (round, lent) in [(0, true), (1, false), (2, true), (3, false)] {
        let mut ids = [dummy; 8];
        p.submit_simple(&ops, &mut ids).unwrap();
        assert!(ids.iter().all(|id| *id != dummy), "round {round}: {ids:?}");
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "round {round}: ids are distinct");
        assert_eq!(p.in_flight(), ops.len(), "round {round}");
        let cs = if lent {
            collect_lent(&p, ops.len())
        } else {
            collect(&p, ops.len())
        };
        assert_simple_done(&cs, &ops, &ids);
        assert_eq!(p.in_flight(), 0, "round {round}");
        for id in ids {
            assert_eq!(p.cancel(id), CancelStatus::NotFound, "round {round}");
        }
        assert_quiet(&p, Duration::from_millis(20));
    }
    // Empty submissions are accepted and do nothing.
    p.submit_simple(&[], &mut []).unwrap();
    p.submit_simple(&[], &mut [dummy; 2]).unwrap();
    assert_eq!(p.in_flight(), 0);
    // A SimpleOp converts into an Operation with the same meaning.
    let op: Operation = SimpleOp::timer(Duration::from_millis(1))
        .user_data(77)
        .into();
    assert_eq!(op.name(), "timer");
    assert_eq!(op.get_user_data(), 77);
    let c = one(&p, op);
    assert_eq!((c.user_data, c.outcome), (77, Outcome::Ok(0)));
    let c = one(&p, SimpleOp::fsync(&f, true).into());
    assert_eq!(c.outcome, Outcome::Ok(0));
    assert_quiet(&p, Duration::from_millis(20));
}

fn simple_ids_argument(t: &Ctx) {
    let p = t.proactor();
    let dummy = stale_id(&p);
    let ops = [SimpleOp::timer(LONG); 4];
    for short in 1..4 {
        let mut ids = vec![dummy; short];
        let e = p.submit_simple(&ops, &mut ids).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        assert!(!e.is_retryable());
        assert!(ids.iter().all(|id| *id == dummy), "ids untouched");
        assert_eq!(p.in_flight(), 0, "nothing submitted");
    }
    assert_quiet(&p, Duration::from_millis(30));
    // A longer slice is fine; entries past ops.len() are left alone.
    let nops: Vec<SimpleOp> = (0..3).map(|i| SimpleOp::nop().user_data(i)).collect();
    let mut ids = [dummy; 6];
    p.submit_simple(&nops, &mut ids).unwrap();
    assert!(ids[..3].iter().all(|id| *id != dummy));
    assert!(ids[3..].iter().all(|id| *id == dummy));
    let cs = collect(&p, 3);
    assert_simple_done(&cs, &nops, &ids[..3]);
    // An empty slice: ids not wanted.
    p.submit_simple(&nops, &mut []).unwrap();
    let mut ud: Vec<u64> = collect_lent(&p, 3).iter().map(|c| c.user_data).collect();
    ud.sort();
    assert_eq!(ud, vec![0, 1, 2]);
    assert_eq!(p.in_flight(), 0);
    assert_quiet(&p, Duration::from_millis(20));
}

fn simple_errors(t: &Ctx) {
    let p = t.proactor();
    let dummy = stale_id(&p);
    // Descriptor numbers no process has open.
    let ops = [
        SimpleOp::fsync(1_000_000, false).user_data(1),
        SimpleOp::fsync(-1, true).user_data(2),
        SimpleOp::nop().user_data(3),
    ];
    let mut ids = [dummy; 3];
    p.submit_simple(&ops, &mut ids).unwrap();
    let mut cs = collect_lent(&p, 3);
    cs.sort_by_key(|c| c.user_data);
    for (i, c) in cs.iter().enumerate() {
        assert_eq!(c.id, ids[i]);
        assert!(matches!(c.resources, Resources::None));
    }
    for c in &cs[..2] {
        match c.outcome {
            Outcome::Err(e) => {
                assert_eq!(e.op, OpCode::Fsync, "{c:?}");
                assert_eq!(e.errno, libc::EBADF, "{c:?}");
                assert!(e.to_string().contains("fsync"), "{e}");
            }
            o => panic!("fsync on a bad descriptor: {o:?}"),
        }
    }
    assert_eq!(cs[2].outcome, Outcome::Ok(0));
    // Same through poll (by value).
    p.submit_simple(&ops[..1], &mut []).unwrap();
    let c = collect(&p, 1).pop().unwrap();
    assert_eq!(errno_of(&c.outcome), Some(libc::EBADF), "{c:?}");
    // A fixed index that was never registered: refused at submission, and the whole
    // batch with it (the valid ops before and after are not submitted either).
    let bad = [
        SimpleOp::nop().user_data(10),
        SimpleOp::timer(Duration::from_millis(1)).user_data(11),
        SimpleOp::fsync(Target::Fixed(3), false).user_data(12),
        SimpleOp::nop().user_data(13),
    ];
    let mut ids = [dummy; 4];
    let e = p.submit_simple(&bad, &mut ids).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert!(ids.iter().all(|id| *id == dummy));
    let e = p.submit_simple(&bad[2..3], &mut []).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert_eq!(p.in_flight(), 0);
    assert_quiet(&p, Duration::from_millis(30));
    // Registered, the index works.
    let (_d, _path, f) = tmpfile(b"abc");
    p.register_files(&[f.as_fd()]).unwrap();
    let good = [
        SimpleOp::fsync(Target::Fixed(0), false).user_data(20),
        SimpleOp::fsync(Target::Fixed(0), true).user_data(21),
    ];
    let mut ids = [dummy; 2];
    p.submit_simple(&good, &mut ids).unwrap();
    assert_simple_done(&collect_lent(&p, 2), &good, &ids);
    let e = p
        .submit_simple(&[SimpleOp::fsync(Target::Fixed(1), false)], &mut [])
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert_quiet(&p, Duration::from_millis(20));
}

fn simple_cancel(t: &Ctx) {
    let p = t.proactor();
    let dummy = stale_id(&p);
    let ops = [
        SimpleOp::timer(LONG).user_data(1),
        SimpleOp::timer_at(Deadline::after(LONG)).user_data(2),
    ];
    let mut ids = [dummy; 2];
    p.submit_simple(&ops, &mut ids).unwrap();
    p.poll(Some(Duration::from_millis(10)), |c| panic!("early {c:?}"))
        .unwrap();
    assert_eq!(p.in_flight(), 2);
    assert_eq!(p.cancel(ids[0]), CancelStatus::Requested);
    // Twice before delivery: harmless. Exactly Requested on io_uring's simple slots
    // (pending until reaped); epoll runs them in ordinary slots, where a second cancel
    // may already find the completion determined.
    let again = p.cancel(ids[0]);
    if t.cfg == Config::Epoll {
        assert!(matches!(
            again,
            CancelStatus::Requested | CancelStatus::NotFound
        ));
    } else {
        assert_eq!(again, CancelStatus::Requested);
    }
    let c = collect_lent(&p, 1).pop().unwrap();
    assert_eq!(
        (c.id, c.user_data, c.outcome),
        (ids[0], 1, Outcome::Cancelled)
    );
    assert!(matches!(c.resources, Resources::None));
    assert_eq!(p.cancel(ids[0]), CancelStatus::NotFound);
    assert_eq!(p.in_flight(), 1, "the other timer still runs");
    p.poll(Some(Duration::from_millis(10)), |c| panic!("early {c:?}"))
        .unwrap();
    assert_eq!(p.cancel(ids[1]), CancelStatus::Requested);
    let c = collect(&p, 1).pop().unwrap();
    assert_eq!(
        (c.id, c.user_data, c.outcome),
        (ids[1], 2, Outcome::Cancelled)
    );
    assert_eq!(p.cancel(ids[1]), CancelStatus::NotFound);
    assert_eq!(p.cancel(ids[1]), CancelStatus::NotFound);
    assert_quiet(&p, Duration::from_millis(30));
    assert_eq!(p.in_flight(), 0);

    // Cancelled before any poll saw it.
    let mut id = [dummy];
    p.submit_simple(&[SimpleOp::timer(LONG).user_data(3)], &mut id)
        .unwrap();
    assert_eq!(p.cancel(id[0]), CancelStatus::Requested);
    let c = collect(&p, 1).pop().unwrap();
    assert_eq!((c.id, c.outcome), (id[0], Outcome::Cancelled));
    // A stale id (slot reused) is not found.
    let old = id[0];
    p.submit_simple(&[SimpleOp::timer(LONG)], &mut id).unwrap();
    assert_ne!(old, id[0]);
    assert_eq!(p.cancel(old), CancelStatus::NotFound);
    assert_eq!(p.cancel(id[0]), CancelStatus::Requested);
    assert!(collect(&p, 1)[0].outcome.is_cancelled());
    assert_quiet(&p, Duration::from_millis(20));

    // A timer that already expired but was not delivered: exactly one completion,
    // Ok (finished first) or Cancelled.
    p.submit_simple(&[SimpleOp::timer(Duration::from_millis(1))], &mut id)
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let st = p.cancel(id[0]);
    let c = collect(&p, 1).pop().unwrap();
    assert_eq!(c.id, id[0]);
    match c.outcome {
        Outcome::Ok(0) => {}
        Outcome::Cancelled => assert_eq!(st, CancelStatus::Requested),
        o => panic!("{o:?}"),
    }
    assert_quiet(&p, Duration::from_millis(20));

    // Cancelled from another thread while this one blocks in poll.
    let ops = [
        SimpleOp::timer(LONG).user_data(5),
        SimpleOp::timer_at(Deadline::after(LONG)).user_data(6),
    ];
    let mut ids = [dummy; 2];
    p.submit_simple(&ops, &mut ids).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let th = {
        let (p, b) = (p.clone(), barrier.clone());
        std::thread::spawn(move || {
            b.wait();
            std::thread::sleep(Duration::from_millis(50));
            ids.map(|id| p.cancel(id))
        })
    };
    barrier.wait();
    let start = Instant::now();
    let mut cs = Vec::new();
    while cs.len() < 2 {
        // Blocks far longer than the test allows: only the cancellations can end it.
        p.poll_lent(Some(LIMIT), |c| cs.push((c.id, c.outcome)))
            .unwrap();
        assert!(start.elapsed() < LIMIT);
    }
    assert_eq!(
        th.join().unwrap(),
        [CancelStatus::Requested, CancelStatus::Requested]
    );
    cs.sort_by_key(|(id, _)| ids.iter().position(|i| i == id));
    assert_eq!(
        cs,
        vec![(ids[0], Outcome::Cancelled), (ids[1], Outcome::Cancelled)]
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "cancel did not wake poll: {:?}",
        start.elapsed()
    );
    for id in ids {
        assert_eq!(p.cancel(id), CancelStatus::NotFound);
    }
    assert_quiet(&p, Duration::from_millis(30));
    assert_eq!(p.in_flight(), 0);
}

fn simple_queue_full(t: &Ctx) {
    let p = t.proactor_with(|o| o.max_in_flight = 8);
    let dummy = stale_id(&p);
    let is_slots_full = |e: &Error| {
        e.is_retryable()
            && matches!(
                e,
                Error::SubmissionQueueFull {
                    queue: QueueKind::OperationSlots,
                    ..
                }
            )
    };
    let long = [SimpleOp::timer(LONG); 9];
    let mut ids = [dummy; 9];
    let e = p.submit_simple(&long, &mut ids).unwrap_err();
    assert!(is_slots_full(&e), "{e}");
    assert!(ids.iter().all(|id| *id == dummy));
    assert_eq!(p.in_flight(), 0, "nothing submitted");
    assert_quiet(&p, Duration::from_millis(20));

    p.submit_simple(&long[..8], &mut ids[..8]).unwrap();
    assert_eq!(p.in_flight(), 8);
    let e = p.submit_simple(&[SimpleOp::nop()], &mut []).unwrap_err();
    assert!(is_slots_full(&e), "{e}");
    p.poll(Some(Duration::from_millis(10)), |c| panic!("early {c:?}"))
        .unwrap();
    let e = p.submit_simple(&[SimpleOp::nop()], &mut []).unwrap_err();
    assert!(is_slots_full(&e), "still full after a poll: {e}");
    assert_eq!(p.in_flight(), 8);
    // io_uring keeps simple slots apart from the ordinary ones; epoll shares them.
    match p.submit(Operation::nop().user_data(99)) {
        Ok(id) => {
            assert_ne!(t.cfg, Config::Epoll, "epoll had a free slot beyond 8");
            let c = collect(&p, 1).pop().unwrap();
            assert_eq!((c.id, c.user_data), (id, 99));
        }
        Err(e) => {
            assert_eq!(t.cfg, Config::Epoll, "ordinary slots are separate: {e}");
            assert!(is_slots_full(&e.error), "{e}");
        }
    }
    // Free one slot: the retry succeeds.
    assert_eq!(p.cancel(ids[0]), CancelStatus::Requested);
    let c = collect(&p, 1).pop().unwrap();
    assert_eq!((c.id, c.outcome), (ids[0], Outcome::Cancelled));
    let mut nid = [dummy];
    p.submit_simple(&[SimpleOp::nop().user_data(7)], &mut nid)
        .expect("retry after a slot was freed");
    let c = collect_lent(&p, 1).pop().unwrap();
    assert_eq!((c.id, c.user_data, c.outcome), (nid[0], 7, Outcome::Ok(0)));
    for id in &ids[1..8] {
        assert_eq!(p.cancel(*id), CancelStatus::Requested);
    }
    let cs = collect(&p, 7);
    assert!(cs.iter().all(|c| c.outcome.is_cancelled()), "{cs:?}");
    assert_eq!(p.in_flight(), 0);
    // Every slot is usable again, many times over.
    for round in 0..20u64 {
        let nops: Vec<SimpleOp> = (0..8)
            .map(|i| SimpleOp::nop().user_data(round * 8 + i))
            .collect();
        let mut ids = [dummy; 8];
        p.submit_simple(&nops, &mut ids).unwrap();
        assert_simple_done(&collect_lent(&p, 8), &nops, &ids);
    }
    assert_quiet(&p, Duration::from_millis(20));
}

fn simple_from_callback_and_other_thread(t: &Ctx) {
    let p = t.proactor();
    let dummy = stale_id(&p);
    // From inside a poll_lent callback.
    p.submit_simple(&[SimpleOp::nop().user_data(1)], &mut [])
        .unwrap();
    let inner = [
        SimpleOp::nop().user_data(100),
        SimpleOp::timer(Duration::from_millis(5)).user_data(101),
        SimpleOp::timer(LONG).user_data(102),
    ];
    let mut inner_ids = [dummy; 3];
    let mut got: Vec<(OpId, u64, Outcome)> = Vec::new();
    let mut submitted = false;
    let end = Instant::now() + LIMIT;
    while got.len() < 4 {
        assert!(Instant::now() < end, "got {got:?}");
        p.poll_lent(Some(Duration::from_millis(100)), |c| {
            assert!(matches!(c.resources, Resources::None));
            got.push((c.id, c.user_data, c.outcome));
            if c.user_data == 1 && !submitted {
                p.submit_simple(&inner, &mut inner_ids)
                    .expect("submit_simple from a callback");
                // Cancel from the callback as well.
                assert_eq!(p.cancel(inner_ids[2]), CancelStatus::Requested);
                submitted = true;
            }
        })
        .unwrap();
    }
    assert_eq!(got[0].1, 1);
    got.sort_by_key(|g| g.1);
    assert_eq!(
        got[1..],
        [
            (inner_ids[0], 100, Outcome::Ok(0)),
            (inner_ids[1], 101, Outcome::Ok(0)),
            (inner_ids[2], 102, Outcome::Cancelled),
        ]
    );
    assert_quiet(&p, Duration::from_millis(20));
    assert_eq!(p.in_flight(), 0);

    // From inside a poll (by value) callback.
    p.submit_simple(&[SimpleOp::nop().user_data(2)], &mut [])
        .unwrap();
    let mut got = Vec::new();
    let mut id = [dummy];
    let end = Instant::now() + LIMIT;
    while got.len() < 2 {
        assert!(Instant::now() < end, "got {got:?}");
        p.poll(Some(Duration::from_millis(100)), |c| {
            if c.user_data == 2 {
                p.submit_simple(
                    &[SimpleOp::timer(Duration::from_millis(1)).user_data(200)],
                    &mut id,
                )
                .unwrap();
            }
            got.push(c);
        })
        .unwrap();
    }
    assert_eq!(got[1].id, id[0]);
    assert_eq!((got[1].user_data, got[1].outcome), (200, Outcome::Ok(0)));
    assert_quiet(&p, Duration::from_millis(20));

    // From another thread while this one blocks in poll: the submission wakes it.
    for lent in [true, false] {
        let barrier = Arc::new(Barrier::new(2));
        let th = {
            let (p, b) = (p.clone(), barrier.clone());
            std::thread::spawn(move || {
                let ops = [
                    SimpleOp::nop().user_data(300),
                    SimpleOp::timer(Duration::from_millis(1)).user_data(301),
                ];
                let mut ids = [dummy; 2];
                b.wait();
                std::thread::sleep(Duration::from_millis(50));
                p.submit_simple(&ops, &mut ids).unwrap();
                ids
            })
        };
        barrier.wait();
        let start = Instant::now();
        let mut got = Vec::new();
        while got.len() < 2 {
            assert!(start.elapsed() < LIMIT, "got {got:?}");
            // Not woken by the submission, this would sleep for the whole LIMIT.
            if lent {
                p.poll_lent(Some(LIMIT), |c| got.push((c.id, c.user_data, c.outcome)))
                    .unwrap();
            } else {
                p.poll(Some(LIMIT), |c| got.push((c.id, c.user_data, c.outcome)))
                    .unwrap();
            }
        }
        let ids = th.join().unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "submission did not wake poll: {:?}",
            start.elapsed()
        );
        got.sort_by_key(|g| g.1);
        assert_eq!(
            got,
            vec![(ids[0], 300, Outcome::Ok(0)), (ids[1], 301, Outcome::Ok(0))]
        );
        assert_quiet(&p, Duration::from_millis(20));
    }
    assert_eq!(p.in_flight(), 0);
}

fn simple_concurrent_submitters(t: &Ctx) {
    // Several threads submit simple ops while this one polls: each submission races
    // the poll mutex (simple slots when it is free, ordinary slots otherwise).
    let p = t.proactor();
    let dummy = stale_id(&p);
    let threads = 3u64;
    let per = 200u64;
    let barrier = Arc::new(Barrier::new(threads as usize + 1));
    let mut hs = Vec::new();
    for th in 0..threads {
        let (p, b) = (p.clone(), barrier.clone());
        hs.push(std::thread::spawn(move || {
            b.wait();
            let mut all = Vec::new();
            for i in (0..per).step_by(2) {
                let base = th * per + i;
                let ops = [
                    SimpleOp::nop().user_data(base),
                    SimpleOp::timer(Duration::from_micros(100 * (i % 5))).user_data(base + 1),
                ];
                let mut ids = [dummy; 2];
                loop {
                    match p.submit_simple(&ops, &mut ids) {
                        Ok(()) => break,
                        Err(e) if e.is_retryable() => std::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
                all.push((ids[0], base));
                all.push((ids[1], base + 1));
            }
            all
        }));
    }
    barrier.wait();
    let total = (threads * per) as usize;
    let mut got = std::collections::HashMap::new();
    let end = Instant::now() + LIMIT;
    let mut lent = false;
    while got.len() < total {
        assert!(
            Instant::now() < end,
            "only {} of {total} delivered",
            got.len()
        );
        let mut rec = |id: OpId, ud: u64, o: Outcome| {
            assert_eq!(o, Outcome::Ok(0), "{ud}");
            assert!(got.insert(id, ud).is_none(), "delivered twice: {ud}");
        };
        // Long timeouts: the submitters must wake us. Alternate both delivery paths.
        lent = !lent;
        let r = if lent {
            p.poll_lent(Some(Duration::from_secs(2)), |c| {
                rec(c.id, c.user_data, c.outcome)
            })
        } else {
            p.poll(Some(Duration::from_secs(2)), |c| {
                rec(c.id, c.user_data, c.outcome)
            })
        };
        // The owner's poll must never fail here: `submit_simple` on another thread
        // holds the poll mutex for a moment, which once made a poll starting in that
        // window return `PollBusy` (fixed: the owner waits; only a re-entrant poll
        // from inside a callback gets `PollBusy`).
        if let Err(e) = r {
            panic!(
                "poll on the owning thread failed with {e:?} while other threads called \
                 submit_simple ({} of {total} delivered)",
                got.len()
            );
        }
    }
    for h in hs {
        for (id, ud) in h.join().unwrap() {
            assert_eq!(
                got.get(&id),
                Some(&ud),
                "id {id:?} delivered with the wrong user_data"
            );
        }
    }
    assert_quiet(&p, Duration::from_millis(30));
    assert_eq!(p.in_flight(), 0);
}

fn simple_mixed_with_ordinary(t: &Ctx) {
    let p = t.proactor();
    let content: Vec<u8> = (0..4096u32).map(|i| (i % 253) as u8).collect();
    let (_d, path, f) = tmpfile(&content);
    let raw = f.as_raw_fd();
    let dummy = stale_id(&p);
    let mut want: std::collections::HashMap<OpId, u64> = std::collections::HashMap::new();
    let mut ids = Vec::new();
    for round in 0..6u64 {
        let mut ops: Vec<Operation> = (0..4u64)
            .map(|k| {
                Operation::read_at(raw, vec![0; 256], (round * 4 + k) * 128 % 3840)
                    .user_data(1000 + round * 10 + k)
            })
            .collect();
        ops.push(
            Operation::write_at(raw, vec![b'a' + round as u8; 16], 8192 + round * 16)
                .user_data(2000 + round),
        );
        ids.clear();
        p.submit_batch(&mut ops, &mut ids).unwrap();
        for (k, id) in ids.iter().enumerate() {
            let ud = if k < 4 {
                1000 + round * 10 + k as u64
            } else {
                2000 + round
            };
            want.insert(*id, ud);
        }
        let simple = [
            SimpleOp::nop().user_data(3000 + round),
            SimpleOp::timer(Duration::from_millis(1)).user_data(3100 + round),
            SimpleOp::timer_at(Deadline::now()).user_data(3200 + round),
            SimpleOp::fsync(raw, true).user_data(3300 + round),
        ];
        let mut sids = [dummy; 4];
        p.submit_simple(&simple, &mut sids).unwrap();
        for (op, id) in simple.iter().zip(sids) {
            want.insert(id, op.get_user_data());
        }
        let mut one_more = vec![
            Operation::readv_at(raw, vec![vec![0; 3], vec![0; 5]], round * 8)
                .user_data(4000 + round),
        ];
        ids.clear();
        p.submit_batch(&mut one_more, &mut ids).unwrap();
        want.insert(ids[0], 4000 + round);
        // Deliver some of them between rounds.
        if round % 2 == 1 {
            p.poll(Some(Duration::ZERO), |c| {
                assert_eq!(want.remove(&c.id), Some(c.user_data), "{c:?}");
                check_mixed(&content, c.user_data, c.outcome, c.resources);
            })
            .unwrap();
        }
    }
    let n = want.len();
    let cs = collect_lent(&p, n);
    for c in cs {
        assert_eq!(want.remove(&c.id), Some(c.user_data), "{c:?}");
        check_mixed(&content, c.user_data, c.outcome, c.resources);
    }
    assert!(want.is_empty());
    assert_quiet(&p, Duration::from_millis(30));
    assert_eq!(p.in_flight(), 0);
    let file = std::fs::read(&path).unwrap();
    for round in 0..6u64 {
        let off = 8192 + round as usize * 16;
        assert_eq!(file[off..off + 16], [b'a' + round as u8; 16]);
    }
}

fn check_mixed(content: &[u8], ud: u64, outcome: Outcome, res: Resources) {
    match ud {
        1000..=1999 => {
            let (round, k) = ((ud - 1000) / 10, (ud - 1000) % 10);
            let off = ((round * 4 + k) * 128 % 3840) as usize;
            assert_eq!(outcome, Outcome::Ok(256), "read {ud}");
            let buf = res.into_buf().expect("read buffer returned");
            assert_eq!(buf, &content[off..off + 256], "read {ud}");
        }
        2000..=2999 => {
            assert_eq!(outcome, Outcome::Ok(16), "write {ud}");
            let buf = res.into_buf().expect("write buffer returned");
            assert_eq!(buf, vec![b'a' + (ud - 2000) as u8; 16]);
        }
        3000..=3999 => {
            assert_eq!(outcome, Outcome::Ok(0), "simple {ud}");
            assert!(matches!(res, Resources::None), "simple {ud}: {res:?}");
        }
        4000..=4999 => {
            let off = ((ud - 4000) * 8) as usize;
            assert_eq!(outcome, Outcome::Ok(8), "readv {ud}");
            let bufs = res.into_bufs().expect("readv buffers returned");
            assert_eq!(bufs[0], &content[off..off + 3]);
            assert_eq!(bufs[1], &content[off + 3..off + 8]);
        }
        _ => panic!("unexpected user_data {ud}"),
    }
}

fn simple_timer_ordering(t: &Ctx) {
    let p = t.proactor();
    let start = Instant::now();
    let base = Deadline::now();
    let ops = [
        SimpleOp::timer(Duration::from_millis(30)).user_data(30),
        SimpleOp::timer(Duration::from_millis(10)).user_data(10),
        SimpleOp::timer_at(base.plus(Duration::from_millis(20))).user_data(20),
    ];
    p.submit_simple(&ops, &mut []).unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        assert!(start.elapsed() < LIMIT, "got {got:?}");
        p.poll_lent(Some(Duration::from_millis(100)), |c| {
            assert_eq!(c.outcome, Outcome::Ok(0), "{c:?}");
            got.push((c.user_data, start.elapsed()));
        })
        .unwrap();
    }
    let order: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(order, vec![10, 20, 30], "deadline order: {got:?}");
    for (ms, el) in &got {
        assert!(
            *el >= Duration::from_millis(*ms - 1),
            "timer {ms} ms fired early: {el:?}"
        );
        assert!(
            *el < Duration::from_secs(3),
            "timer {ms} ms far too late: {el:?}"
        );
    }
    // Same through poll, each submitted on its own.
    let start = Instant::now();
    for ms in [30u64, 10, 20] {
        p.submit_simple(
            &[SimpleOp::timer(Duration::from_millis(ms)).user_data(ms)],
            &mut [],
        )
        .unwrap();
    }
    let got: Vec<(u64, Duration)> = collect(&p, 3)
        .iter()
        .map(|c| (c.user_data, start.elapsed()))
        .collect();
    let order: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(order, vec![10, 20, 30], "deadline order: {got:?}");
    assert!(got[0].1 >= Duration::from_millis(9), "fired early: {got:?}");
}

fn poll_lent_takes_resources(t: &Ctx) {
    let p = t.proactor();
    let content: Vec<u8> = (0..1024u32).map(|i| (i * 7 % 256) as u8).collect();
    let (_d, _path, f) = tmpfile(&content);
    let id = p
        .submit(Operation::read_at(&f, vec![0; 100], 17).user_data(5))
        .unwrap();
    let mut taken = None;
    let end = Instant::now() + LIMIT;
    while taken.is_none() {
        assert!(Instant::now() < end);
        p.poll_lent(Some(Duration::from_millis(100)), |c| {
            assert_eq!((c.id, c.user_data, c.outcome), (id, 5, Outcome::Ok(100)));
            // The buffer is visible in place before it is taken.
            match &c.resources {
                Resources::Buf(b) => assert_eq!(b[..], content[17..117]),
                r => panic!("{r:?}"),
            }
            taken = Some(std::mem::replace(&mut c.resources, Resources::None));
        })
        .unwrap();
    }
    assert_eq!(taken.unwrap().into_buf().unwrap(), &content[17..117]);
    // readv buffers likewise.
    p.submit(Operation::readv_at(&f, vec![vec![0; 4], vec![0; 6]], 1000))
        .unwrap();
    let c = collect_lent(&p, 1).pop().unwrap();
    assert_eq!(c.outcome, Outcome::Ok(10));
    let bufs = c.resources.into_bufs().unwrap();
    assert_eq!(bufs.concat(), &content[1000..1010]);
    // What the closure leaves in place is dropped when it returns: a registered
    // buffer's lease goes back, an event wait's handle is released.
    p.register_buffers(1, 4096).unwrap();
    let buf = p.fixed_buffer(0).unwrap();
    assert!(p.fixed_buffer(0).is_none());
    p.submit(Operation::read_fixed(&f, buf, 0, 64)).unwrap();
    let ev = Event::new().unwrap();
    ev.set().unwrap();
    p.submit(Operation::event_wait(&ev)).unwrap();
    let mut n = 0;
    let end = Instant::now() + LIMIT;
    while n < 2 {
        assert!(Instant::now() < end);
        p.poll_lent(Some(Duration::from_millis(100)), |c| {
            match &c.resources {
                Resources::Fixed(b) => {
                    assert_eq!(c.outcome, Outcome::Ok(64));
                    assert_eq!(b[..64], content[..64]);
                }
                Resources::Event(_) => assert!(c.outcome.ok().is_some(), "{c:?}"),
                r => panic!("{r:?}"),
            }
            n += 1;
        })
        .unwrap();
    }
    assert!(
        p.fixed_buffer(0).is_some(),
        "a lease left in the lent completion is dropped"
    );
    assert_eq!(ev.handle_count(), 1, "an event left in place is released");
    // Taking part of a completion and leaving the rest is fine too; simple ops lend
    // Resources::None.
    p.submit_simple(&[SimpleOp::nop().user_data(9)], &mut [])
        .unwrap();
    let c = collect_lent(&p, 1).pop().unwrap();
    assert_eq!((c.user_data, c.outcome), (9, Outcome::Ok(0)));
    assert!(matches!(c.resources, Resources::None));
    assert_eq!(p.in_flight(), 0);
    assert_quiet(&p, Duration::from_millis(20));
}

// ---------------------------------------------------------------------------------
// Backend-independent checks (run once)

#[test]
fn backend_env_values_parse() {
    assert_eq!(
        BackendChoice::from_env_value("epoll"),
        Some(BackendChoice::Epoll)
    );
    assert_eq!(
        BackendChoice::from_env_value(" io_uring "),
        Some(BackendChoice::IoUring)
    );
    assert_eq!(
        BackendChoice::from_env_value("auto"),
        Some(BackendChoice::Auto)
    );
    assert_eq!(BackendChoice::from_env_value("kqueue"), None);
    assert_eq!(BACKEND_ENV, "GPU_URING_PROACTOR");
}

/// The backend `GPU_URING_PROACTOR` asks for (read here: the library reads no
/// environment variable).
fn env_choice() -> Option<BackendChoice> {
    let v = std::env::var(BACKEND_ENV).ok()?;
    Some(
        BackendChoice::from_env_value(&v)
            .expect("GPU_URING_PROACTOR must be io_uring, epoll or auto"),
    )
}

#[test]
fn auto_selects_a_backend() {
    let forced = env_choice();
    let p = Proactor::new(Options {
        backend: forced.unwrap_or_default(),
        ..Options::default()
    })
    .unwrap();
    match forced {
        Some(BackendChoice::Epoll) => assert_eq!(p.backend(), BackendKind::Epoll),
        Some(BackendChoice::IoUring) => assert_eq!(p.backend(), BackendKind::IoUring),
        _ => {
            let uring = Proactor::new(Options {
                backend: BackendChoice::IoUring,
                ..Options::default()
            });
            let want = if uring.is_ok() {
                BackendKind::IoUring
            } else {
                BackendKind::Epoll
            };
            assert_eq!(p.backend(), want);
        }
    }
}

#[test]
fn error_messages_carry_errno_and_hint() {
    let e = Error::Unavailable {
        backend: "io_uring",
        errno: libc::EPERM,
        hint: "set kernel.io_uring_disabled=0",
    };
    let s = e.to_string();
    assert!(
        s.contains("errno 1") && s.contains("io_uring_disabled"),
        "{s}"
    );
    assert_eq!(e.errno(), Some(libc::EPERM));
    assert!(!e.is_retryable());
    let q = Error::SubmissionQueueFull {
        queue: QueueKind::SubmissionRing,
        capacity: 4,
    };
    assert!(q.is_retryable());
    assert!(q.to_string().contains("retry"));
}

// ---------------------------------------------------------------------------------

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

/// A completion callback that panics loses nothing: the completion it was given
/// counts as delivered, every other one comes with a later poll, exactly once, on
/// both delivery paths and for simple and ordinary operations alike; no slot is left
/// in use.
fn callback_panic_loses_nothing(t: &Ctx) {
    let p = t.proactor_with(|o| o.max_in_flight = 16);
    for (round, panic_on_simple) in [(0u64, true), (1, false), (2, true), (3, false)] {
        let base = round * 1000;
        let simple: Vec<SimpleOp> = (0..6)
            .map(|i| SimpleOp::nop().user_data(base + i))
            .collect();
        p.submit_simple(&simple, &mut []).unwrap();
        let mut ops: Vec<Operation> = (0..4)
            .map(|i| Operation::nop().user_data(base + 100 + i))
            .collect();
        p.submit_batch(&mut ops, &mut Vec::new()).unwrap();
        let mut seen = Vec::new();
        // The first poll panics in the callback at the first completion of the chosen
        // kind (simple: user data below 100; ordinary: 100 and up).
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut on = |c: &Completion| {
                seen.push(c.user_data);
                if (c.user_data - base < 100) == panic_on_simple {
                    panic!("test: callback panics");
                }
            };
            let end = Instant::now() + LIMIT;
            while Instant::now() < end {
                if round % 2 == 0 {
                    p.poll_lent(Some(Duration::from_millis(100)), |c| on(c))
                        .unwrap();
                } else {
                    p.poll(Some(Duration::from_millis(100)), |c| on(&c))
                        .unwrap();
                }
            }
        }));
        assert!(panicked.is_err(), "the callback was meant to panic");
        let end = Instant::now() + LIMIT;
        while seen.len() < 10 {
            assert!(
                Instant::now() < end,
                "round {round}: only {seen:?} delivered"
            );
            p.poll_lent(Some(Duration::from_millis(100)), |c| seen.push(c.user_data))
                .unwrap();
        }
        seen.sort_unstable();
        let want: Vec<u64> = (0..6).chain(100..104).map(|i| base + i).collect();
        assert_eq!(seen, want, "round {round}: every completion exactly once");
        assert_quiet(&p, Duration::from_millis(20));
        assert_eq!(p.in_flight(), 0, "round {round}");
    }
    // Every slot is free again: a full table of simple operations goes in and comes out.
    let full: Vec<SimpleOp> = (0..16).map(|i| SimpleOp::nop().user_data(i)).collect();
    p.submit_simple(&full, &mut []).unwrap();
    assert_eq!(collect(&p, 16).len(), 16);
    assert_eq!(p.in_flight(), 0);
}

conformance!(
    callback_panic_loses_nothing,
    nop_completes,
    batch_submit,
    future_nop,
    futures_on_another_thread,
    timer_relative,
    timer_absolute,
    timer_ordering,
    event_wait,
    notification_wait,
    notification_many_waiters,
    file_ops,
    file_errors,
    registered_buffers,
    fixed_files,
    linked_success,
    linked_failure_cancels_rest,
    linked_short_read_breaks,
    linked_cancel_middle,
    linked_futures,
    cancel_before_start,
    cancel_in_flight,
    cancel_after_completion_and_twice,
    cancel_racing_completion,
    many_cancelled_timers,
    cancel_from_other_thread_while_poll_blocks,
    drop_future_cancels,
    cross_thread_submit_during_poll,
    submit_wakes_blocked_poll,
    wake_interrupts_poll,
    poll_ownership,
    racing_first_pollers,
    queue_full_and_retry,
    capabilities_reported,
    many_in_flight_mixed,
    simple_ops_complete,
    simple_ids_argument,
    simple_errors,
    simple_cancel,
    simple_queue_full,
    simple_from_callback_and_other_thread,
    simple_concurrent_submitters,
    simple_mixed_with_ordinary,
    simple_timer_ordering,
    poll_lent_takes_resources,
);
