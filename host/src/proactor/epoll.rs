//! epoll backend: the POSIX fallback with the same semantics as io_uring.
//!
//! Submission only queues a slot; the poll thread starts it. Timers live in a heap
//! behind one `timerfd` (absolute CLOCK_MONOTONIC); event waits register the eventfd
//! with epoll (level-triggered, all waiters on one descriptor share one registration);
//! file operations run as plain positioned syscalls on the poll thread inside `poll`
//! (regular files are always "ready" for epoll, so this is what a readiness backend
//! can do); a wake eventfd interrupts `epoll_wait`. Positioned I/O needs a seekable
//! descriptor here (pipes and sockets give `ESPIPE`; stream operations are not part of
//! this API yet), and a slow device stalls the poll thread for the syscall's duration.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::caps::{Capability, CapabilitySet};
use super::core::{Core, Shared, State, NONE};
use super::error::{Error, Result};
use super::op::{Deadline, OpCode, OpError, OpKind, Outcome, Target, TimerSpec};
use super::sys;

const WAKE_TAG: u64 = u64::MAX;
const TIMER_TAG: u64 = u64::MAX - 1;

pub(crate) struct Epoll {
    epfd: OwnedFd,
    wakefd: OwnedFd,
    timerfd: OwnedFd,
}

pub(crate) struct EState {
    /// Slots (index, gen) to start on the poll thread.
    pending: Vec<(u32, u32)>,
    timers: BinaryHeap<Reverse<(u64, u32, u32)>>,
    armed: Option<u64>,
    /// Descriptor → first waiting slot (linked through `Slot::next_waiter`).
    fds: HashMap<RawFd, u32>,
}

impl EState {
    pub(crate) fn new(cap: usize) -> EState {
        EState {
            pending: Vec::with_capacity(cap),
            timers: BinaryHeap::with_capacity(cap),
            armed: None,
            fds: HashMap::new(),
        }
    }
}

fn st(core: &mut Core) -> &mut EState {
    st_of(&mut core.be)
}

fn st_of(be: &mut super::core::BackendState) -> &mut EState {
    match be {
        super::core::BackendState::Epoll(e) => e,
        _ => unreachable!("epoll backend with epoll state"),
    }
}

fn io_outcome(op: OpCode, r: std::io::Result<usize>) -> Outcome {
    match r {
        Ok(n) => Outcome::Ok(n as u32),
        Err(e) => Outcome::Err(OpError {
            op,
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        }),
    }
}

impl Epoll {
    pub(crate) fn create(allowed: CapabilitySet) -> Result<(Epoll, CapabilitySet)> {
        let epfd = sys::epoll_create().map_err(|e| Error::sys("epoll_create1", e))?;
        let wakefd = sys::eventfd().map_err(|e| Error::sys("eventfd", e))?;
        let timerfd = sys::timerfd().map_err(|e| Error::sys("timerfd_create", e))?;
        sys::epoll_ctl(
            epfd.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            wakefd.as_raw_fd(),
            libc::EPOLLIN as u32,
            WAKE_TAG,
        )
        .map_err(|e| Error::sys("epoll_ctl", e))?;
        sys::epoll_ctl(
            epfd.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            timerfd.as_raw_fd(),
            libc::EPOLLIN as u32,
            TIMER_TAG,
        )
        .map_err(|e| Error::sys("epoll_ctl", e))?;
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

    pub(crate) fn wake(&self) {
        let _ = sys::eventfd_signal(self.wakefd.as_raw_fd());
    }

    pub(crate) fn start(&self, sh: &Shared, core: &mut Core, idx: u32) {
        let gen = core.slots[idx as usize].gen;
        st(core).pending.push((idx, gen));
        sh.hint.store(true, Ordering::Relaxed);
    }

    pub(crate) fn cancel(&self, sh: &Shared, core: &mut Core, idx: u32) {
        if let Some(OpKind::EventWait(ev)) = &core.slots[idx as usize].op {
            let fd = ev.as_raw_fd();
            self.unlink_waiter(core, fd, idx);
        }
        // Timers and not-yet-started slots leave stale heap/pending entries that are
        // skipped by their generation/state check.
        core.finish(sh, idx, Outcome::Cancelled);
    }

    fn unlink_waiter(&self, core: &mut Core, fd: RawFd, idx: u32) {
        let Some(&head) = st(core).fds.get(&fd) else {
            return;
        };
        let mut newhead = head;
        if head == idx {
            newhead = core.slots[idx as usize].next_waiter;
        } else {
            let mut i = head;
            while i != NONE {
                let n = core.slots[i as usize].next_waiter;
                if n == idx {
                    core.slots[i as usize].next_waiter = core.slots[idx as usize].next_waiter;
                    break;
                }
                i = n;
            }
        }
        core.slots[idx as usize].next_waiter = NONE;
        if newhead == NONE {
            st(core).fds.remove(&fd);
            let _ = sys::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, 0, 0);
        } else {
            st(core).fds.insert(fd, newhead);
        }
    }

    pub(crate) fn prepare(&self, sh: &Shared, core: &mut Core) -> Result<()> {
        let mut list = Vec::new();
        // Starting a slot can start another (an emulated sequence's next step).
        while !st(core).pending.is_empty() {
            std::mem::swap(&mut list, &mut st(core).pending);
            for &(idx, gen) in &list {
                let s = &core.slots[idx as usize];
                if s.gen == gen && s.state == State::Running && s.op.is_some() {
                    self.execute(sh, core, idx);
                }
            }
            list.clear();
            if st(core).pending.is_empty() {
                // Keep the larger allocation in the queue.
                std::mem::swap(&mut list, &mut st(core).pending);
            }
        }
        self.rearm(core)
    }

    fn execute(&self, sh: &Shared, core: &mut Core, idx: u32) {
        let abs_native = sh.caps.is_native(Capability::AbsoluteTimers);
        let files = &core.files;
        let s = &mut core.slots[idx as usize];
        let gen = s.gen;
        let name = s.op.as_ref().map_or(OpCode::Nop, OpKind::code);
        let fdof = |t: Target| match t {
            Target::Fd(f) => f,
            // Validated at submission; -1 (EBADF) if the table was replaced since.
            Target::Fixed(i) => files.get(i as usize).map_or(-1, |f| f.as_raw_fd()),
        };
        let iov = &mut s.iov;
        let outcome = match s.op.as_mut().expect("running slot has an op") {
            OpKind::Nop => Outcome::Ok(0),
            OpKind::Timer(spec) => {
                let at = match *spec {
                    TimerSpec::After(d) => Deadline::after(d),
                    TimerSpec::At(dl) if abs_native => dl,
                    // Emulated absolute timer: converted to relative at start.
                    TimerSpec::At(dl) => Deadline::after(dl.since(Deadline::now())),
                };
                self.push_timer(core, at.as_nanos(), idx, gen);
                return;
            }
            OpKind::EventWait(ev) => {
                let fd = ev.as_raw_fd();
                let head = st(core).fds.get(&fd).copied();
                match head {
                    Some(h) => {
                        core.slots[idx as usize].next_waiter = h;
                        st(core).fds.insert(fd, idx);
                        return;
                    }
                    None => {
                        match sys::epoll_ctl(
                            self.epfd.as_raw_fd(),
                            libc::EPOLL_CTL_ADD,
                            fd,
                            libc::EPOLLIN as u32,
                            fd as u64,
                        ) {
                            Ok(()) => {
                                core.slots[idx as usize].next_waiter = NONE;
                                st(core).fds.insert(fd, idx);
                                return;
                            }
                            Err(e) => io_outcome(OpCode::EventWait, Err(e)),
                        }
                    }
                }
            }
            OpKind::NotificationWait(..) => {
                // Always run as a user-space subscription by the core.
                debug_assert!(false, "notification wait reached the epoll backend");
                Outcome::Err(OpError {
                    op: OpCode::NotificationWait,
                    errno: libc::EINVAL,
                })
            }
            OpKind::Open {
                dir,
                path,
                flags,
                mode,
            } => match sys::openat(*dir, path, *flags, *mode) {
                Ok(fd) => Outcome::Ok(fd as u32),
                Err(e) => io_outcome(name, Err(e)),
            },
            OpKind::Read { fd, buf, offset } => {
                io_outcome(name, sys::pread(fdof(*fd), buf, *offset))
            }
            OpKind::Write { fd, buf, offset } => {
                io_outcome(name, sys::pwrite(fdof(*fd), buf, *offset))
            }
            OpKind::Readv { fd, bufs, offset } => {
                iov.clear();
                iov.extend(bufs.iter_mut().map(|b| libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                }));
                io_outcome(name, sys::preadv(fdof(*fd), iov, *offset))
            }
            OpKind::Writev { fd, bufs, offset } => {
                iov.clear();
                iov.extend(bufs.iter().map(|b| libc::iovec {
                    iov_base: b.as_ptr() as *mut _,
                    iov_len: b.len(),
                }));
                io_outcome(name, sys::pwritev(fdof(*fd), iov, *offset))
            }
            OpKind::ReadFixed {
                fd,
                buf,
                offset,
                len,
            } => io_outcome(
                name,
                sys::pread(fdof(*fd), &mut buf[..*len as usize], *offset),
            ),
            OpKind::WriteFixed {
                fd,
                buf,
                offset,
                len,
            } => io_outcome(name, sys::pwrite(fdof(*fd), &buf[..*len as usize], *offset)),
            OpKind::Fsync { fd, datasync } => {
                io_outcome(name, sys::fsync(fdof(*fd), *datasync).map(|_| 0))
            }
            OpKind::Close { fd } => {
                let raw = fd.take().expect("close owns its fd").into_raw_fd();
                io_outcome(name, sys::close(raw).map(|_| 0))
            }
        };
        core.finish(sh, idx, outcome);
    }

    fn push_timer(&self, core: &mut Core, at: u64, idx: u32, gen: u32) {
        let limit = 2 * core.slots.len();
        if st(core).timers.len() >= limit {
            // Cancelled timers stay in the heap until they surface; drop them in bulk
            // before the heap outgrows its preallocated capacity.
            let slots = &core.slots;
            let valid = |&Reverse((_, i, g)): &Reverse<(u64, u32, u32)>| {
                let s = &slots[i as usize];
                s.gen == g && s.state == State::Running
            };
            let mut heap = std::mem::take(&mut st_of(&mut core.be).timers);
            heap.retain(valid);
            st_of(&mut core.be).timers = heap;
        }
        st(core).timers.push(Reverse((at, idx, gen)));
    }

    fn rearm(&self, core: &mut Core) -> Result<()> {
        let e = st(core);
        let want = e.timers.peek().map(|Reverse((d, _, _))| *d);
        if want != e.armed {
            e.armed = want;
            sys::timerfd_set_abs(self.timerfd.as_raw_fd(), want)
                .map_err(|e| Error::sys("timerfd_settime", e))?;
        }
        Ok(())
    }

    pub(crate) fn wait(
        &self,
        timeout: Option<Duration>,
        events: &mut Vec<libc::epoll_event>,
    ) -> Result<()> {
        let ms = match timeout {
            None => -1,
            Some(t) => t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
        };
        events.clear();
        events.resize(256, libc::epoll_event { events: 0, u64: 0 });
        let n = sys::epoll_wait(self.epfd.as_raw_fd(), events, ms)
            .map_err(|e| Error::sys("epoll_wait", e))?;
        events.truncate(n);
        Ok(())
    }

    pub(crate) fn reap(&self, sh: &Shared, core: &mut Core, events: &[libc::epoll_event]) -> bool {
        let mut woken = false;
        for ev in events {
            match ev.u64 {
                WAKE_TAG => {
                    let _ = sys::eventfd_drain(self.wakefd.as_raw_fd());
                    woken = true;
                }
                TIMER_TAG => {
                    let _ = sys::eventfd_drain(self.timerfd.as_raw_fd());
                }
                fd => {
                    let fd = fd as RawFd;
                    if let Some(mut i) = st(core).fds.remove(&fd) {
                        let _ =
                            sys::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, 0, 0);
                        while i != NONE {
                            let next = core.slots[i as usize].next_waiter;
                            core.slots[i as usize].next_waiter = NONE;
                            core.finish(sh, i, Outcome::Ok(libc::POLLIN as u32));
                            i = next;
                        }
                    }
                }
            }
        }
        let now = sys::monotonic_ns();
        loop {
            let e = st(core);
            match e.timers.peek() {
                Some(Reverse((d, _, _))) if *d <= now => {
                    let Reverse((_, idx, gen)) = e.timers.pop().unwrap();
                    let s = &core.slots[idx as usize];
                    if s.gen == gen
                        && s.state == State::Running
                        && matches!(s.op, Some(OpKind::Timer(_)))
                    {
                        core.finish(sh, idx, Outcome::Ok(0));
                    }
                }
                _ => break,
            }
        }
        // Drop stale (cancelled) entries at the top so the timerfd is armed for a live one.
        loop {
            let top = st(core)
                .timers
                .peek()
                .map(|Reverse((_, idx, gen))| (*idx, *gen));
            let stale = match top {
                Some((idx, gen)) => {
                    let s = &core.slots[idx as usize];
                    !(s.gen == gen && s.state == State::Running)
                }
                None => false,
            };
            if !stale {
                break;
            }
            st(core).timers.pop();
        }
        let _ = self.rearm(core);
        woken
    }
}
