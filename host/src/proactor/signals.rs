//! Process signals delivered as callbacks from `poll`, through one `signalfd(2)`.
//!
//! # Model
//! Signals belong to the process, so one proactor per process owns the
//! subscriptions: the first to call [`Proactor::subscribe_signal`] claims them;
//! others get [`Error::FailedPrecondition`] until the owner is dropped. The owner
//! watches a signalfd (an internal event source) and runs each subscriber of a
//! signal, in subscription order, from its `poll` on its poll thread. Several
//! deliveries of one signal between two polls may be coalesced into one callback
//! (the kernel keeps one pending standard signal).
//!
//! A signal reaches the signalfd only if no thread takes it first: block the
//! subscribed signals in **every** thread, by calling [`block_default`] (or
//! [`block`]) at the start of `main`, before any thread is spawned — threads inherit
//! the mask. A thread that leaves a signal unblocked gets the default action
//! (terminate) instead.
//!
//! # Threading, cancellation, ownership
//! Subscribe and unsubscribe from any thread. A [`SignalSubscription`] ends when
//! dropped or [`unsubscribe`](SignalSubscription::unsubscribe)d; after that its
//! callback never runs again (from another thread, a running callback is waited
//! for). The signalfd stays open for the owner's lifetime; signals stay blocked (the
//! mask is the caller's).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::error::{Error, Result};
use super::op::{OpId, Outcome};
use super::operation::Operation;
use super::ops::{poll_source::PollSource, OpKind};
use super::service::Route;
use super::sync::lock;
use super::{Proactor, WeakProactor};

/// A signal that can be subscribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `SIGINT`.
    Interrupt,
    /// `SIGTERM`.
    Terminate,
    /// `SIGHUP`.
    Hangup,
    /// `SIGQUIT` (subscribing suppresses its core dump).
    Quit,
    /// `SIGUSR1`.
    User1,
    /// `SIGUSR2`.
    User2,
}

impl Signal {
    /// Every subscribable signal.
    pub const ALL: [Signal; 6] = [
        Signal::Interrupt,
        Signal::Terminate,
        Signal::Hangup,
        Signal::Quit,
        Signal::User1,
        Signal::User2,
    ];

    /// The signal number.
    pub fn number(self) -> i32 {
        match self {
            Signal::Interrupt => libc::SIGINT,
            Signal::Terminate => libc::SIGTERM,
            Signal::Hangup => libc::SIGHUP,
            Signal::Quit => libc::SIGQUIT,
            Signal::User1 => libc::SIGUSR1,
            Signal::User2 => libc::SIGUSR2,
        }
    }

    /// The conventional name (`"SIGINT"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::Hangup => "SIGHUP",
            Signal::Quit => "SIGQUIT",
            Signal::User1 => "SIGUSR1",
            Signal::User2 => "SIGUSR2",
        }
    }

    fn from_number(n: i32) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.number() == n)
    }
}

/// A set of signals as the kernel takes it.
fn sigset(signals: impl IntoIterator<Item = Signal>) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use and
    // sigaddset only sets bits for valid signal numbers (ours are).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, s.number());
        }
        set
    }
}

fn mask(how: i32, signals: &[Signal]) -> Result<()> {
    let set = sigset(signals.iter().copied());
    // SAFETY: `set` is initialised; the old mask is not requested.
    let r = unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(Error::Sys {
            what: "pthread_sigmask",
            errno: r,
        });
    }
    Ok(())
}

/// Blocks `signals` in the calling thread and in every thread it spawns afterwards
/// (call it first thing in `main` so that every thread has them blocked).
pub fn block(signals: &[Signal]) -> Result<()> {
    mask(libc::SIG_BLOCK, signals)
}

/// Blocks all six subscribable signals (see [`block`]).
pub fn block_default() -> Result<()> {
    block(&Signal::ALL)
}

/// Unblocks `signals` in the calling thread.
pub fn unblock(signals: &[Signal]) -> Result<()> {
    mask(libc::SIG_UNBLOCK, signals)
}

/// Whether `signal` is blocked in the calling thread.
pub fn is_blocked(signal: Signal) -> Result<bool> {
    // SAFETY: sigset_t is plain data, filled by pthread_sigmask before it is read.
    unsafe {
        let mut cur: libc::sigset_t = std::mem::zeroed();
        let r = libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur);
        if r != 0 {
            return Err(Error::Sys {
                what: "pthread_sigmask",
                errno: r,
            });
        }
        Ok(libc::sigismember(&cur, signal.number()) == 1)
    }
}

/// Ignores `SIGPIPE` process-wide (writes to a closed peer then fail with `EPIPE`).
pub fn ignore_broken_pipe() -> Result<()> {
    // SAFETY: installs the predefined SIG_IGN disposition; no handler code runs.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(Error::Sys {
            what: "signal(SIGPIPE)",
            errno: std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL),
        });
    }
    Ok(())
}

type Callback = Box<dyn FnMut(Signal) + Send>;

struct Sub {
    id: u64,
    signal: Signal,
    /// Taken out while it runs.
    callback: Option<Callback>,
}

pub(crate) struct SignalState {
    owner: WeakProactor,
    fd: OwnedFd,
    subs: Mutex<Vec<Sub>>,
    next: AtomicU64,
    /// The internal poll of the signalfd.
    id: Mutex<OpId>,
    /// Serialises callbacks with `unsubscribe` from other threads.
    running: Mutex<()>,
    dead: AtomicBool,
    received: AtomicU64,
}

/// The process's signal owner (see the module docs).
static OWNER: Mutex<Option<Arc<SignalState>>> = Mutex::new(None);

impl SignalState {
    /// Points the signalfd at the signals subscribed now.
    fn update_mask(&self, subs: &[Sub]) -> Result<()> {
        let set = sigset(subs.iter().map(|s| s.signal));
        // SAFETY: `fd` is our open signalfd and `set` is initialised.
        let r = unsafe { libc::signalfd(self.fd.as_raw_fd(), &set, 0) };
        if r < 0 {
            return Err(Error::sys("signalfd", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    fn arm(self: &Arc<Self>, p: &Proactor) -> Result<()> {
        let op = PollSource::new(
            self.fd.as_raw_fd(),
            libc::POLLIN as u32,
            true,
            Route::Signals(self.clone()),
        );
        let id = p
            .submit(Operation::internal(OpKind::PollSource(op)))
            .map_err(|e| e.error)?;
        *lock(&self.id) = id;
        Ok(())
    }

    /// The signalfd is readable (poll thread): read every pending signal and run its
    /// subscribers.
    pub(crate) fn on_readable(self: &Arc<Self>, outcome: Outcome, more: bool) {
        if self.dead.load(Ordering::SeqCst) || !matches!(outcome, Outcome::Ok(_)) {
            return;
        }
        let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        // Bounded: at most one read per subscribable signal and a few spare.
        for _ in 0..16 {
            match rustix::io::read(self.fd.as_fd(), &mut info) {
                Ok(n) if n == info.len() => {}
                _ => break,
            }
            // ssi_signo is the first field (u32).
            let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32;
            self.received.fetch_add(1, Ordering::Relaxed);
            if let Some(sig) = Signal::from_number(signo) {
                self.dispatch(sig);
            }
        }
        if !more {
            if let Some(p) = self.owner.upgrade() {
                if let Err(e) = self.arm(&p) {
                    log::warn!("signal watch could not re-arm: {e}");
                }
            }
        }
    }

    fn dispatch(&self, sig: Signal) {
        let _running = lock(&self.running);
        // Signals are rare: a snapshot of the subscribers is fine.
        let ids: Vec<u64> = lock(&self.subs)
            .iter()
            .filter(|s| s.signal == sig)
            .map(|s| s.id)
            .collect();
        for id in ids {
            // Taken out and run with no list lock held (it may subscribe or
            // unsubscribe), then put back if still subscribed.
            let cb = lock(&self.subs)
                .iter_mut()
                .find(|s| s.id == id)
                .and_then(|s| s.callback.take());
            let Some(mut cb) = cb else { continue };
            cb(sig);
            if let Some(s) = lock(&self.subs).iter_mut().find(|s| s.id == id) {
                s.callback = Some(cb);
            }
        }
    }
}

/// A signal subscription; ends when dropped or unsubscribed.
pub struct SignalSubscription {
    state: Arc<SignalState>,
    id: u64,
    signal: Signal,
}

impl std::fmt::Debug for SignalSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalSubscription")
            .field("signal", &self.signal)
            .finish()
    }
}

impl SignalSubscription {
    /// Ends the subscription; its callback never runs after this returns.
    pub fn unsubscribe(self) {}

    fn end(&self) {
        let on_poll = self
            .state
            .owner
            .upgrade()
            .is_some_and(|p| p.on_poll_thread());
        // From another thread, wait out a dispatch in progress.
        let _running = (!on_poll).then(|| lock(&self.state.running));
        let mut subs = lock(&self.state.subs);
        subs.retain(|s| s.id != self.id);
        if !subs.iter().any(|s| s.signal == self.signal) {
            let _ = self.state.update_mask(&subs);
        }
    }
}

impl Drop for SignalSubscription {
    fn drop(&mut self) {
        self.end();
    }
}

impl Proactor {
    /// Runs `callback` from this proactor's `poll` whenever `signal` arrives. The
    /// first subscription of the process makes this proactor the signal owner
    /// ([`Error::FailedPrecondition`] from any other proactor while it lives). The
    /// signal must be blocked in every thread (see [`block_default`]). See the
    /// [`signals`](super::signals) module docs.
    pub fn subscribe_signal(
        &self,
        signal: Signal,
        callback: impl FnMut(Signal) + Send + 'static,
    ) -> Result<SignalSubscription> {
        let state = {
            let mut owner = lock(&OWNER);
            match &*owner {
                Some(st) if st.owner.is(self) => st.clone(),
                Some(st) if st.owner.upgrade().is_some() => {
                    return Err(Error::FailedPrecondition(
                        "another proactor of this process owns the signal subscriptions",
                    ))
                }
                _ => {
                    if let Some(old) = owner.take() {
                        old.dead.store(true, Ordering::SeqCst);
                    }
                    let set = sigset([]);
                    // SAFETY: -1 asks for a new signalfd; `set` is initialised.
                    let fd =
                        unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
                    if fd < 0 {
                        return Err(Error::sys("signalfd", std::io::Error::last_os_error()));
                    }
                    let st = Arc::new(SignalState {
                        owner: self.downgrade(),
                        // SAFETY: signalfd returned a new descriptor we now own.
                        fd: unsafe { OwnedFd::from_raw_fd(fd) },
                        subs: Mutex::new(Vec::new()),
                        next: AtomicU64::new(1),
                        id: Mutex::new(OpId::default()),
                        running: Mutex::new(()),
                        dead: AtomicBool::new(false),
                        received: AtomicU64::new(0),
                    });
                    st.arm(self)?;
                    *owner = Some(st.clone());
                    st
                }
            }
        };
        let id = state.next.fetch_add(1, Ordering::Relaxed);
        {
            let mut subs = lock(&state.subs);
            subs.push(Sub {
                id,
                signal,
                callback: Some(Box::new(callback)),
            });
            if let Err(e) = state.update_mask(&subs) {
                subs.pop();
                return Err(e);
            }
        }
        Ok(SignalSubscription { state, id, signal })
    }

    /// Signals received by this proactor's signalfd so far (0 if it does not own
    /// the process's signals).
    pub fn signals_received(&self) -> u64 {
        match &*lock(&OWNER) {
            Some(st) if st.owner.is(self) => st.received.load(Ordering::Relaxed),
            _ => 0,
        }
    }
}
