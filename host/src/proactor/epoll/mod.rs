//! epoll driver: the POSIX fallback with the same semantics as io_uring.
//!
//! Submission only queues a slot; the poll thread starts it by asking the operation
//! what to do ([`Step`]): finish now (file I/O runs as a plain positioned system call
//! here, since regular files are always "ready" for epoll; a slow device stalls the
//! poll thread for the call's duration), fire at a deadline (timers live in a heap
//! behind one absolute CLOCK_MONOTONIC `timerfd`), or wait for readiness. Readiness
//! waits register the descriptor with epoll (level-triggered, one registration per
//! descriptor with the union of its waiters' interests); when it reports ready, an
//! error or a hang-up, each waiter whose interest matches runs again and either
//! finishes or waits again (a spurious wake-up). A wake eventfd interrupts
//! `epoll_wait`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::Duration;

use rustix::event::epoll;

use super::caps::{BackendKind, Capability, CapabilitySet};
use super::core::slots::alloc_slot;
use super::core::{Core, Driver, OpSource, Shared, SlotExt, State, NONE};
use super::error::{Error, Result};
use super::op::{OpCode, OpError, OpId, Outcome, Resources};
use super::ops::{Env, EpollCx, Step};
use super::sys;

const WAKE_TAG: u64 = u64::MAX;
const TIMER_TAG: u64 = u64::MAX - 1;
/// Readiness that concerns every waiter of a descriptor.
const ALWAYS: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;

pub(crate) struct Epoll {
    epfd: OwnedFd,
    wakefd: OwnedFd,
    timerfd: OwnedFd,
}

/// The epoll part of a slot.
/// What every operation reads and resets comes first (`repr(C)`, see `Slot`).
#[repr(C)]
pub(crate) struct ESlot {
    /// Next waiter on the same descriptor (`NONE`: last).
    next_waiter: u32,
    /// The descriptor this slot waits on, and for what (0: not waiting).
    events: u32,
    fd: RawFd,
    /// iovec storage for readv/writev; capacity is kept across reuse.
    iov: Vec<libc::iovec>,
}

// SAFETY: the iovecs only describe buffers of the same slot's operation during one
// system call on the poll thread; the slot is only reached under the core mutex.
unsafe impl Send for ESlot {}

impl SlotExt for ESlot {
    fn new() -> ESlot {
        ESlot {
            iov: Vec::with_capacity(4),
            next_waiter: NONE,
            fd: -1,
            events: 0,
        }
    }
    #[inline(always)]
    fn reset(&mut self) {
        self.next_waiter = NONE;
        self.events = 0;
    }
    fn is_reset(&self) -> bool {
        self.next_waiter == NONE && self.events == 0
    }
}

/// The waiters of one descriptor and what epoll was told about it.
struct FdWaiters {
    head: u32,
    registered: u32,
}

pub(crate) struct EState {
    /// Slots (index, gen) to start on the poll thread.
    pending: Vec<(u32, u32)>,
    timers: BinaryHeap<Reverse<(u64, u32, u32)>>,
    armed: Option<u64>,
    fds: HashMap<RawFd, FdWaiters>,
}

pub(crate) struct EPoll {
    events: Vec<epoll::Event>,
}

// SAFETY: `epoll::Event` is plain data (flags and a u64); the list is only used
// under `Shared::poll`.
unsafe impl Send for EPoll {}

impl Epoll {
    pub(crate) fn create(allowed: CapabilitySet) -> Result<(Epoll, CapabilitySet)> {
        let epfd = sys::epoll_create().map_err(|e| Error::sys("epoll_create1", e))?;
        let wakefd = sys::eventfd().map_err(|e| Error::sys("eventfd", e))?;
        let timerfd = sys::timerfd().map_err(|e| Error::sys("timerfd_create", e))?;
        let add = |fd: &OwnedFd, tag| {
            sys::epoll_add(epfd.as_fd(), fd.as_fd(), libc::EPOLLIN as u32, tag)
                .map_err(|e| Error::sys("epoll_ctl", e))
        };
        add(&wakefd, WAKE_TAG)?;
        add(&timerfd, TIMER_TAG)?;
        let native = if allowed.contains(Capability::AbsoluteTimers) {
            CapabilitySet::NONE.with(Capability::AbsoluteTimers)
        } else {
            CapabilitySet::NONE
        };
        Ok((
            Epoll {
                epfd,
                wakefd,
                timerfd,
            },
            native,
        ))
    }

    /// Runs (or re-runs, when `ready`) the operation of a running slot.
    fn run(&self, sh: &Shared<Self>, core: &mut Core<Self>, idx: u32, ready: bool) {
        let mut ready = ready;
        // Multishot results: delivered while the operation goes on (bounded per
        // readiness; what is left is picked up on the next round).
        let mut rounds = 0;
        // Dropped by `discard` only (checked in place: moving it out to drop it
        // would copy it through memory at every run).
        let mut more = ManuallyDrop::new(Resources::None);
        let (step, gen) = loop {
            let Core {
                slots,
                files,
                native_files,
                ..
            } = &mut *core;
            let s = &mut slots[idx as usize];
            let gen = s.gen;
            let Some(op) = s.op.as_mut() else {
                discard(&mut more);
                return;
            };
            let mut cx = EpollCx {
                env: Env {
                    caps: sh.caps,
                    files,
                    native_files: *native_files,
                },
                iov: &mut s.ext.iov,
                more: &mut more,
            };
            let step = op.epoll(&mut cx, ready);
            let Step::More(v) = step else {
                break (step, gen);
            };
            let res = std::mem::replace(&mut *more, Resources::None);
            core.emit(idx, Outcome::Ok(v as u32), res);
            rounds += 1;
            if rounds == 64 {
                core.be.pending.push((idx, gen));
                sh.hint.store(true, Ordering::Relaxed);
                discard(&mut more);
                return;
            }
            ready = true;
        };
        // Only a `Step::More` hands resources over.
        discard(&mut more);
        let code = |core: &Core<Self>| {
            core.slots[idx as usize]
                .op
                .as_ref()
                .map_or(OpCode::Nop, |o| o.code())
        };
        match step {
            Step::More(..) => {}
            Step::Done(res) => {
                let outcome = Step::outcome(res, || code(core));
                core.finish(sh, idx, outcome);
            }
            Step::Timer(at) => self.push_timer(core, at, idx, gen),
            Step::Wait(w) => {
                let (fd, events) = Step::waiting(w);
                if let Err(errno) = self.add_waiter(core, idx, fd, events) {
                    // Only sockets (and the proactor's own eventfds) are waited on:
                    // a descriptor epoll refuses (a regular file or directory) is not
                    // a socket, which is what io_uring reports for it.
                    let errno = if errno == libc::EPERM {
                        libc::ENOTSOCK
                    } else {
                        errno
                    };
                    let op = code(core);
                    core.finish(sh, idx, Outcome::Err(OpError { op, errno }));
                }
            }
        }
    }

    /// Adds slot `idx` to the waiters of `fd`, registering or widening the epoll
    /// interest as needed. Returns the errno when epoll refuses the descriptor.
    fn add_waiter(
        &self,
        core: &mut Core<Self>,
        idx: u32,
        fd: RawFd,
        events: u32,
    ) -> std::result::Result<(), i32> {
        let bfd = sys::borrow(fd).map_err(|_| libc::EBADF)?;
        let entry = core.be.fds.entry(fd).or_insert(FdWaiters {
            head: NONE,
            registered: 0,
        });
        let want = entry.registered | events;
        if want != entry.registered {
            let r = if entry.registered == 0 {
                sys::epoll_add(self.epfd.as_fd(), bfd, want, fd as u64)
            } else {
                sys::epoll_mod(self.epfd.as_fd(), bfd, want, fd as u64)
            };
            if let Err(e) = r {
                if entry.head == NONE && entry.registered == 0 {
                    core.be.fds.remove(&fd);
                }
                return Err(e.raw_os_error().unwrap_or(libc::EIO));
            }
            entry.registered = want;
        }
        let s = &mut core.slots[idx as usize];
        s.ext.next_waiter = entry.head;
        s.ext.fd = fd;
        s.ext.events = events;
        entry.head = idx;
        Ok(())
    }

    /// Narrows (or drops) the registration of `fd` to what its waiters still want.
    fn update_registration(&self, core: &mut Core<Self>, fd: RawFd) {
        let Some(entry) = core.be.fds.get_mut(&fd) else {
            return;
        };
        let mut want = 0;
        let mut i = entry.head;
        while i != NONE {
            let s = &core.slots[i as usize];
            want |= s.ext.events;
            i = s.ext.next_waiter;
        }
        if want == entry.registered {
            return;
        }
        let Ok(bfd) = sys::borrow(fd) else { return };
        if want == 0 {
            core.be.fds.remove(&fd);
            let _ = sys::epoll_del(self.epfd.as_fd(), bfd);
        } else {
            entry.registered = want;
            let _ = sys::epoll_mod(self.epfd.as_fd(), bfd, want, fd as u64);
        }
    }

    /// Takes slot `idx` out of its descriptor's waiters.
    fn unlink_waiter(&self, core: &mut Core<Self>, idx: u32) {
        let s = &core.slots[idx as usize];
        if s.ext.events == 0 {
            return;
        }
        let fd = s.ext.fd;
        let Some(entry) = core.be.fds.get_mut(&fd) else {
            return;
        };
        let next = s.ext.next_waiter;
        if entry.head == idx {
            entry.head = next;
        } else {
            let mut i = entry.head;
            while i != NONE {
                let n = core.slots[i as usize].ext.next_waiter;
                if n == idx {
                    core.slots[i as usize].ext.next_waiter = next;
                    break;
                }
                i = n;
            }
        }
        let s = &mut core.slots[idx as usize];
        s.ext.next_waiter = NONE;
        s.ext.events = 0;
        self.update_registration(core, fd);
    }

    /// Readiness of `fd`: every waiter whose interest matches runs again.
    fn ready(&self, sh: &Shared<Self>, core: &mut Core<Self>, fd: RawFd, revents: u32) {
        let Some(entry) = core.be.fds.get_mut(&fd) else {
            return;
        };
        let mut i = std::mem::replace(&mut entry.head, NONE);
        // Waiters that do not match go back first (in order), then the matching ones
        // run; a run that must wait again re-adds itself.
        let mut run_head = NONE;
        let mut keep_tail = NONE;
        while i != NONE {
            let s = &mut core.slots[i as usize];
            let next = s.ext.next_waiter;
            if s.ext.events & revents != 0 || revents & ALWAYS != 0 {
                s.ext.events = 0;
                s.ext.next_waiter = run_head;
                run_head = i;
            } else {
                s.ext.next_waiter = NONE;
                if keep_tail == NONE {
                    if let Some(e) = core.be.fds.get_mut(&fd) {
                        e.head = i;
                    }
                } else {
                    core.slots[keep_tail as usize].ext.next_waiter = i;
                }
                keep_tail = i;
            }
            i = next;
        }
        while run_head != NONE {
            let next = core.slots[run_head as usize].ext.next_waiter;
            core.slots[run_head as usize].ext.next_waiter = NONE;
            let s = &core.slots[run_head as usize];
            if s.state == State::Running {
                self.run(sh, core, run_head, true);
            }
            run_head = next;
        }
        self.update_registration(core, fd);
    }

    fn push_timer(&self, core: &mut Core<Self>, at: u64, idx: u32, gen: u32) {
        let limit = 2 * core.slots.len();
        if core.be.timers.len() >= limit {
            // Cancelled timers stay in the heap until they surface; drop them in bulk
            // before the heap outgrows its preallocated capacity.
            let slots = &core.slots;
            core.be.timers.retain(|&Reverse((_, i, g))| {
                let s = &slots[i as usize];
                s.gen == g && s.state == State::Running
            });
        }
        core.be.timers.push(Reverse((at, idx, gen)));
    }

    fn rearm(&self, core: &mut Core<Self>) -> Result<()> {
        let e = &mut core.be;
        let want = e.timers.peek().map(|Reverse((d, _, _))| *d);
        if want != e.armed {
            e.armed = want;
            sys::timerfd_set_abs(self.timerfd.as_fd(), want)
                .map_err(|e| Error::sys("timerfd_settime", e))?;
        }
        Ok(())
    }
}

/// Drops what normally is `Resources::None`, looking at it in place (no drop glue,
/// an out-of-line call, in that case).
#[inline(always)]
fn discard(r: &mut ManuallyDrop<Resources>) {
    if !matches!(**r, Resources::None) {
        debug_assert!(false, "resources handed over without Step::More");
        drop_cold(std::mem::replace(&mut **r, Resources::None));
    }
}

#[cold]
#[inline(never)]
fn drop_cold(r: Resources) {
    drop(r);
}

impl Driver for Epoll {
    type Slot = ESlot;
    type State = EState;
    type PollState = EPoll;

    const KIND: BackendKind = BackendKind::Epoll;

    fn new_state(&self, max: u32) -> EState {
        EState {
            pending: Vec::with_capacity(max as usize),
            timers: BinaryHeap::with_capacity(max as usize),
            armed: None,
            fds: HashMap::new(),
        }
    }

    fn new_poll_state(&self, _max: u32) -> EPoll {
        EPoll {
            events: Vec::with_capacity(256),
        }
    }

    fn interrupt(&self) {
        let _ = sys::eventfd_signal(self.wakefd.as_fd());
    }

    fn start(&self, sh: &Shared<Self>, core: &mut Core<Self>, idx: u32) {
        let gen = core.slots[idx as usize].gen;
        core.be.pending.push((idx, gen));
        sh.hint.store(true, Ordering::Relaxed);
    }

    /// Allocates the slots and queues them for the poll thread in one pass: what
    /// `start` does for each, without the core's per-operation checks, none of which
    /// applies to a fresh, unlinked operation that runs in the driver and has no
    /// timeout (the caller's contract).
    fn start_batch<S: OpSource>(
        &self,
        sh: &Shared<Self>,
        core: &mut Core<Self>,
        ops: &mut S,
        on_id: &mut impl FnMut(OpId),
        future: bool,
    ) -> bool {
        let Core {
            slots,
            free,
            live,
            be,
            ..
        } = core;
        ops.take_each(|op| {
            let (idx, s, key) = alloc_slot(slots, free, live, op, future, State::Running);
            on_id(OpId(key));
            be.pending.push((idx, s.gen));
        });
        sh.hint.store(true, Ordering::Relaxed);
        true
    }

    fn cancel(&self, sh: &Shared<Self>, core: &mut Core<Self>, idx: u32) {
        self.unlink_waiter(core, idx);
        // Timers and not-yet-started slots leave stale heap/pending entries that are
        // skipped by their generation/state check.
        core.finish(sh, idx, Outcome::Cancelled);
    }

    fn prepare(&self, sh: &Shared<Self>, core: &mut Core<Self>) -> Result<()> {
        let mut list = Vec::new();
        // Starting a slot can start another (an emulated sequence's next step).
        while !core.be.pending.is_empty() {
            std::mem::swap(&mut list, &mut core.be.pending);
            for &(idx, gen) in &list {
                let s = &core.slots[idx as usize];
                if s.gen == gen && s.state == State::Running && s.op.is_some() && s.ext.events == 0
                {
                    self.run(sh, core, idx, false);
                }
            }
            list.clear();
            if core.be.pending.is_empty() {
                // Keep the larger allocation in the queue.
                std::mem::swap(&mut list, &mut core.be.pending);
            }
        }
        self.rearm(core)
    }

    fn wait(&self, timeout: Option<Duration>, ps: &mut EPoll) -> Result<()> {
        // Whole milliseconds, rounded up, like the timeout epoll_wait takes.
        let t = timeout.map(|t| Duration::from_millis(t.as_nanos().div_ceil(1_000_000) as u64));
        sys::epoll_wait(self.epfd.as_fd(), &mut ps.events, t)
            .map_err(|e| Error::sys("epoll_wait", e))
    }

    fn reap(&self, sh: &Shared<Self>, core: &mut Core<Self>, ps: &mut EPoll) {
        for ev in &ps.events {
            let (flags, data) = (ev.flags, ev.data);
            match data.u64() {
                WAKE_TAG => {
                    let _ = sys::eventfd_drain(self.wakefd.as_fd());
                }
                TIMER_TAG => {
                    let _ = sys::eventfd_drain(self.timerfd.as_fd());
                }
                fd => self.ready(sh, core, fd as RawFd, flags.bits()),
            }
        }
        let now = sys::monotonic_ns();
        while let Some(&Reverse((d, idx, gen))) = core.be.timers.peek() {
            if d > now {
                break;
            }
            core.be.timers.pop();
            let s = &core.slots[idx as usize];
            if s.gen == gen && s.state == State::Running && s.ext.events == 0 {
                core.finish(sh, idx, Outcome::Ok(0));
            }
        }
        // Drop stale (cancelled) entries at the top so the timerfd is armed for a live one.
        while let Some(&Reverse((_, idx, gen))) = core.be.timers.peek() {
            let s = &core.slots[idx as usize];
            if s.gen == gen && s.state == State::Running {
                break;
            }
            core.be.timers.pop();
        }
        let _ = self.rearm(core);
    }
}
