//! io_uring backend.
//!
//! Any thread may push SQEs (under the core lock); only the poll thread enters the
//! kernel (`io_uring_enter`, registration after the first poll). That is what
//! `IORING_SETUP_SINGLE_ISSUER` requires, and the ring is created disabled
//! (`IORING_SETUP_R_DISABLED`) and enabled by the first poll so that the poll thread,
//! not the creating thread, becomes the issuer. Other threads that submit or cancel
//! wake the poll thread through an eventfd that has a read armed on the ring.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

use super::caps::{Capability, CapabilitySet};
use super::core::{
    alloc_slot, thread_id, BackendState, Chain, Core, PollScratch, Shared, Sink, State, NONE,
};
use super::error::{Error, QueueKind, Result};
use super::op::{OpId, OpKind, Outcome, SimpleKind, SimpleOp, Target, TimerSpec};
use super::simple::{self, SimpleTable};
use super::sys;

/// user_data of the wake-eventfd read.
const WAKE: u64 = u64::MAX;
/// Bit set in the user_data of a cancel request (slot keys never use bit 63).
const CANCEL: u64 = 1 << 63;
/// `IORING_ENTER_GETEVENTS`.
const ENTER_GETEVENTS: u32 = 1;
/// futex2 flags: 32-bit futex, process-private (matches `FUTEX_WAKE_PRIVATE`).
const FUTEX2_SIZE_U32: u32 = 0x02;
const FUTEX2_PRIVATE: u32 = 128;
/// `FUTEX_BITSET_MATCH_ANY`.
const FUTEX_MATCH_ANY: u64 = 0xffff_ffff;

pub(crate) struct Uring {
    ring: IoUring,
    wakefd: OwnedFd,
    single_issuer: bool,
    r_disabled: bool,
    enabled: AtomicBool,
    sq_cap: u32,
    pub(crate) flags_used: &'static str,
}

/// Where every ring's wake read puts the eventfd counter. Only the kernel writes it
/// and nothing reads it (the value carries no information), so one never-freed static
/// serves all rings: a ring torn down off its poll thread, whose read may still be
/// armed, cannot leave the kernel a dangling target.
static WAKE_SINK: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
pub(crate) struct UState {
    wake_armed: bool,
}

pub(crate) struct Created {
    pub(crate) uring: Uring,
    pub(crate) native: CapabilitySet,
}

fn unavailable(errno: i32) -> Error {
    let hint = match errno {
        libc::ENOSYS => "kernel built without io_uring (needs 5.1+)",
        libc::EPERM | libc::EACCES => {
            "blocked by seccomp or sysctl kernel.io_uring_disabled (set it to 0, or add the user to kernel.io_uring_group)"
        }
        libc::ENOMEM => "ring memory could not be allocated (raise RLIMIT_MEMLOCK on kernels before 5.12)",
        _ => "io_uring_setup refused the ring",
    };
    Error::Unavailable {
        backend: "io_uring",
        errno,
        hint,
    }
}

impl Uring {
    pub(crate) fn create(entries: u32, cq_entries: u32, allowed: CapabilitySet) -> Result<Created> {
        if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
            if v.trim() == "2" {
                return Err(unavailable(libc::EPERM));
            }
        }
        // Most capable first; retry with fewer flags when the kernel says EINVAL.
        let mut attempts: Vec<(bool, bool, bool, &'static str)> = Vec::new();
        let si = allowed.contains(Capability::SingleIssuer);
        let dt = allowed.contains(Capability::DeferTaskrun);
        if si && dt {
            attempts.push((true, true, true, "SINGLE_ISSUER|DEFER_TASKRUN|R_DISABLED"));
        }
        if si {
            attempts.push((true, false, true, "SINGLE_ISSUER|R_DISABLED"));
        }
        attempts.push((false, false, true, "R_DISABLED"));
        attempts.push((false, false, false, "none"));
        let mut last = libc::EINVAL;
        for (single, defer, disabled, name) in attempts {
            let mut b = IoUring::builder();
            b.setup_cqsize(cq_entries).setup_clamp();
            if single {
                b.setup_single_issuer();
            }
            if defer {
                b.setup_defer_taskrun();
            }
            if disabled {
                b.setup_r_disabled();
            }
            match b.build(entries) {
                Ok(ring) => {
                    return Self::finish_create(ring, single, defer, disabled, name, allowed)
                }
                Err(e) => {
                    last = e.raw_os_error().unwrap_or(libc::EIO);
                    if last != libc::EINVAL {
                        break;
                    }
                }
            }
        }
        match last {
            libc::EPERM | libc::EACCES | libc::ENOSYS | libc::ENOMEM | libc::EINVAL => {
                Err(unavailable(last))
            }
            e => Err(Error::Sys {
                what: "io_uring_setup",
                errno: e,
            }),
        }
    }

    fn finish_create(
        ring: IoUring,
        single: bool,
        defer: bool,
        disabled: bool,
        name: &'static str,
        allowed: CapabilitySet,
    ) -> Result<Created> {
        let wakefd = sys::eventfd().map_err(|e| Error::sys("eventfd", e))?;
        let mut probe = io_uring::Probe::new();
        let futex = ring.submitter().register_probe(&mut probe).is_ok()
            && probe.is_supported(opcode::FutexWait::CODE)
            && probe.is_supported(opcode::FutexWake::CODE);
        let p = ring.params();
        let mut native = CapabilitySet::NONE
            .with(Capability::RegisteredBuffers)
            .with(Capability::FixedFiles)
            .with(Capability::AbsoluteTimers);
        // ETIME_SUCCESS (5.16) keeps an expired timer from breaking a link; the
        // skip-cqe feature (5.17) is the closest feature bit that proves it exists.
        if p.is_feature_skip_cqe_on_success() {
            native = native.with(Capability::LinkedOperations);
        }
        if futex {
            native = native.with(Capability::KernelNotificationWait);
        }
        if single {
            native = native.with(Capability::SingleIssuer);
        }
        if defer {
            native = native.with(Capability::DeferTaskrun);
        }
        let mut masked = CapabilitySet::NONE;
        for c in Capability::ALL {
            if native.contains(c) && allowed.contains(c) {
                masked = masked.with(c);
            }
        }
        let sq_cap = ring.params().sq_entries();
        Ok(Created {
            uring: Uring {
                ring,
                wakefd,
                single_issuer: single,
                r_disabled: disabled,
                enabled: AtomicBool::new(!disabled),
                sq_cap,
                flags_used: name,
            },
            native: masked,
        })
    }

    pub(crate) fn wake(&self) {
        // A failed write leaves the counter set (EAGAIN is swallowed); nothing to do.
        let _ = sys::eventfd_signal(self.wakefd.as_raw_fd());
    }

    fn is_poll_thread(&self, sh: &Shared) -> bool {
        sh.owner.load(Ordering::Relaxed) == thread_id()
    }

    /// Whether this thread may register resources now.
    pub(crate) fn may_register(&self, sh: &Shared) -> bool {
        !(self.single_issuer && self.enabled.load(Ordering::Acquire) && !self.is_poll_thread(sh))
    }

    pub(crate) fn submitter(&self) -> io_uring::Submitter<'_> {
        self.ring.submitter()
    }

    /// Flushes the SQ to the kernel when this thread is allowed to enter.
    fn try_flush(&self, sh: &Shared) -> bool {
        if self.enabled.load(Ordering::Acquire) && (self.is_poll_thread(sh) || !self.single_issuer)
        {
            self.ring.submitter().submit().is_ok()
        } else {
            false
        }
    }

    fn sq_free(&self) -> usize {
        // SAFETY: called with the core lock held; the core lock guards every
        // `SubmissionQueue` of this ring, so no other one exists.
        let sq = unsafe { self.ring.submission_shared() };
        sq.capacity() - sq.len()
    }

    /// Ensures `n` SQ entries are free (flushing if this thread may), or reports the
    /// retryable queue-full error. Caller holds the core lock.
    pub(crate) fn reserve(&self, sh: &Shared, _core: &Core, n: usize) -> Result<()> {
        if n > self.sq_cap as usize {
            return Err(Error::SubmissionQueueFull {
                queue: QueueKind::SubmissionRing,
                capacity: self.sq_cap,
            });
        }
        if self.sq_free() >= n {
            return Ok(());
        }
        if self.try_flush(sh) && self.sq_free() >= n {
            return Ok(());
        }
        Err(Error::SubmissionQueueFull {
            queue: QueueKind::SubmissionRing,
            capacity: self.sq_cap,
        })
    }

    /// Pushes one SQE. Caller holds the core lock.
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid (and, for buffers the kernel writes,
    /// unaliased) until the entry's completion has been reaped.
    unsafe fn push(&self, sh: &Shared, entry: &squeue::Entry) -> bool {
        for _ in 0..2 {
            {
                // SAFETY: the core lock (held by the caller) guards every SubmissionQueue.
                let mut sq = unsafe { self.ring.submission_shared() };
                // SAFETY: forwarded from this function's contract. Dropping `sq` publishes
                // the new tail (Release), which is what the kernel reads.
                if unsafe { sq.push(entry) }.is_ok() {
                    return true;
                }
            }
            if !self.try_flush(sh) {
                return false;
            }
        }
        false
    }

    /// Builds and pushes the SQE of slot `idx`.
    pub(crate) fn start(&self, sh: &Shared, core: &mut Core, idx: u32) {
        let s = &mut core.slots[idx as usize];
        let link = s.chain == Chain::Kernel && s.next != NONE;
        let key = s.key(idx);
        // SAFETY: the entry points into this slot's op (buffers, path, iovecs, event,
        // notification epoch) or its `ts`; the slot is not released and the op not
        // dropped until the completion is reaped (`Core::finish`), and teardown waits
        // for outstanding completions or leaks the memory.
        let pushed = Self::with_entry(sh, &core.files, s, key, link, |e| unsafe {
            self.push(sh, &e)
        });
        if pushed {
            Self::queued(&mut core.slots[idx as usize]);
        } else {
            // Ring full and this thread may not flush: the poll thread starts it.
            let s = &mut core.slots[idx as usize];
            s.state = State::Queued;
            let gen = s.gen;
            core.deferred.push((idx, gen));
            sh.hint.store(true, Ordering::Relaxed);
        }
    }

    /// Whether `op` can be started by `start_batch` (everything but a notification
    /// wait that runs emulated in user space).
    #[inline]
    pub(crate) fn batchable(sh: &Shared, op: &OpKind) -> bool {
        !matches!(op, OpKind::NotificationWait(..))
            || sh.caps.is_native(Capability::KernelNotificationWait)
    }

    /// Allocates a slot for each of `ops` (unlinked; every one `batchable`) and pushes
    /// their SQEs through one view of the submission ring, publishing the tail once.
    /// Caller holds the core lock and has reserved SQ room for all of them.
    pub(crate) fn start_batch<S: super::core::OpSource>(
        &self,
        sh: &Shared,
        core: &mut Core,
        ops: &mut S,
        mut on_id: impl FnMut(OpId),
        future: bool,
    ) {
        // SAFETY: the core lock (held by the caller) guards every SubmissionQueue of
        // this ring, so this is the only one until it is dropped at the end.
        let mut sq = unsafe { self.ring.submission_shared() };
        let Core {
            slots,
            free,
            live,
            files,
            deferred,
            ..
        } = core;
        for op in ops.take_all() {
            let (idx, s, key) = alloc_slot(slots, free, live, op, future, State::Running);
            on_id(OpId(key));
            // Unlinked by the caller's contract: no IO_LINK flag.
            // SAFETY: as in `start`: everything the entry points at lives in the slot
            // until its completion is reaped (or is leaked by teardown).
            let pushed = Self::with_entry(sh, files, &mut *s, key, false, |e| unsafe {
                sq.push(&e).is_ok()
            });
            if pushed {
                Self::queued(s);
            } else {
                // Not expected (the caller reserved room); the poll thread starts it.
                s.state = State::Queued;
                let gen = s.gen;
                deferred.push((idx, gen));
                sh.hint.store(true, Ordering::Relaxed);
            }
        }
        // Dropping `sq` publishes the new tail (Release), which is what the kernel reads.
        drop(sq);
    }

    /// Pushes the entries of simple operations into slots of the simple-slot table
    /// (see `simple`), through one view of the submission ring. Caller holds the core
    /// lock (which guards the ring) and the poll mutex (which guards `table`), and has
    /// checked the free slots and reserved SQ room for all of `ops`.
    pub(crate) fn start_simple<const IDS: bool>(
        &self,
        sh: &Shared,
        core: &Core,
        table: &mut SimpleTable,
        ops: &[SimpleOp],
        ids: &mut [OpId],
    ) {
        // SAFETY: the core lock (held by the caller) guards every SubmissionQueue of
        // this ring, so this is the only one until it is dropped at the end.
        let mut sq = unsafe { self.ring.submission_shared() };
        let cells = &sh.simple_cells[..];
        let mut taker = table.taker(ops.len());
        for (i, op) in ops.iter().enumerate() {
            // Only the poll-mutex holder moves a slot between free and running. The
            // state word is written Relaxed: it carries no data (the user_data and
            // timespec are read only by the poll-mutex holder, ordered by that mutex).
            let (idx, v) = taker.take(cells);
            let cell = &cells[idx as usize];
            let gen = simple::gen_of(v).wrapping_add(1) & simple::GEN_MASK;
            cell.user_data.store(op.user_data, Ordering::Relaxed);
            let tag = match op.kind {
                SimpleKind::Nop => simple::NOP,
                SimpleKind::Timer(_) => simple::TIMER,
                SimpleKind::Fsync { .. } => simple::FSYNC,
            };
            let state = simple::running(gen, tag);
            cell.state.store(state, Ordering::Relaxed);
            let key = simple::key(idx, state);
            if IDS {
                ids[i] = OpId(key);
            }
            // A nop's entry is a constant plus its key, built and pushed from its own
            // branch rather than merged with the others through one exit.
            let pushed = match op.kind {
                SimpleKind::Nop => {
                    let e = opcode::Nop::new().build().user_data(key);
                    // SAFETY: a nop entry carries no pointers.
                    unsafe { sq.push(&e) }.is_ok()
                }
                kind => {
                    let ts = &mut table.ts[idx as usize];
                    let e = Self::simple_entry(sh, &core.files, kind, ts);
                    // SAFETY: an fsync entry carries no pointers; a timer's points at
                    // the slot's `ts`, which is not reused before this entry's completion
                    // is reaped (the kernel copies it when the entry is submitted), and
                    // the table outlives the ring (`Shared` drops the backend first).
                    unsafe { sq.push(&e.user_data(key)) }.is_ok()
                }
            };
            assert!(pushed, "caller reserved SQ room for every simple operation");
        }
        table.taken(taker);
        // Dropping `sq` publishes the new tail (Release), which is what the kernel reads.
        drop(sq);
    }

    /// The entry of a simple operation (no user_data yet).
    #[inline(never)]
    fn simple_entry(
        sh: &Shared,
        files: &[OwnedFd],
        kind: SimpleKind,
        ts: &mut types::Timespec,
    ) -> squeue::Entry {
        match kind {
            SimpleKind::Nop => opcode::Nop::new().build(),
            SimpleKind::Timer(spec) => {
                let abs_native = sh.caps.is_native(Capability::AbsoluteTimers);
                let mut flags = types::TimeoutFlags::ETIME_SUCCESS;
                let ns = match spec {
                    TimerSpec::After(d) => d.as_nanos().min(u64::MAX as u128) as u64,
                    TimerSpec::At(dl) if abs_native => {
                        flags |= types::TimeoutFlags::ABS;
                        dl.as_nanos()
                    }
                    // Emulated absolute timer: converted to relative here.
                    TimerSpec::At(dl) => dl.since(super::op::Deadline::now()).as_nanos() as u64,
                };
                *ts = types::Timespec::new()
                    .sec(ns / 1_000_000_000)
                    .nsec((ns % 1_000_000_000) as u32);
                opcode::Timeout::new(ts as *const types::Timespec)
                    .flags(flags)
                    .build()
            }
            SimpleKind::Fsync { fd, datasync } => {
                let flags = if datasync {
                    types::FsyncFlags::DATASYNC
                } else {
                    types::FsyncFlags::empty()
                };
                match fd {
                    Target::Fixed(i) if sh.caps.is_native(Capability::FixedFiles) => {
                        opcode::Fsync::new(types::Fixed(i)).flags(flags).build()
                    }
                    // Validated at submission; -1 (EBADF) if the table was replaced since.
                    Target::Fixed(i) => {
                        let raw = files.get(i as usize).map_or(-1, |f| f.as_raw_fd());
                        opcode::Fsync::new(types::Fd(raw)).flags(flags).build()
                    }
                    Target::Fd(f) => opcode::Fsync::new(types::Fd(f)).flags(flags).build(),
                }
            }
        }
    }

    /// After a slot's SQE is queued: a queued close now owns its descriptor.
    #[inline]
    fn queued(s: &mut super::core::Slot) {
        if let Some(OpKind::Close { fd }) = &mut s.op {
            let _ = fd.take().map(IntoRawFd::into_raw_fd);
        }
    }

    /// Builds the SQE of slot `s` (index `idx`; `link` sets `IOSQE_IO_LINK`) and hands
    /// it to `emit`. Every operation kind calls `emit` from its own branch, so each
    /// entry is built and copied straight out rather than merged through one exit.
    #[inline(always)]
    fn with_entry<R>(
        sh: &Shared,
        files: &[OwnedFd],
        s: &mut super::core::Slot,
        key: u64,
        link: bool,
        emit: impl FnOnce(squeue::Entry) -> R,
    ) -> R {
        let files_native = sh.caps.is_native(Capability::FixedFiles);
        let bufs_native = sh.caps.is_native(Capability::RegisteredBuffers);
        let ts = &mut s.ts;
        let iov = &mut s.iov;
        let op = s.op.as_mut().expect("started slot has an op");

        macro_rules! emit {
            ($e:expr) => {{
                let e: squeue::Entry = $e;
                let e = if link {
                    e.flags(squeue::Flags::IO_LINK)
                } else {
                    e
                };
                return emit(e.user_data(key));
            }};
        }

        macro_rules! fd {
            ($t:expr, |$fd:ident| $body:expr) => {
                match $t {
                    Target::Fixed(i) if files_native => {
                        let $fd = types::Fixed(i);
                        emit!($body)
                    }
                    Target::Fixed(i) => {
                        // Validated at submission; -1 (EBADF) if the table was replaced since.
                        let $fd = types::Fd(files.get(i as usize).map_or(-1, |f| f.as_raw_fd()));
                        emit!($body)
                    }
                    Target::Fd(f) => {
                        let $fd = types::Fd(f);
                        emit!($body)
                    }
                }
            };
        }

        match op {
            OpKind::Nop => emit!(opcode::Nop::new().build()),
            OpKind::Timer(spec) => {
                emit!(Self::simple_entry(sh, files, SimpleKind::Timer(*spec), ts))
            }
            OpKind::EventWait(ev) => {
                emit!(opcode::PollAdd::new(types::Fd(ev.as_raw_fd()), libc::POLLIN as u32).build())
            }
            OpKind::NotificationWait(n, token) => emit!(opcode::FutexWait::new(
                n.0.epoch.as_ptr() as *const u32,
                *token as u64,
                FUTEX_MATCH_ANY,
                FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
            )
            .build()),
            OpKind::Open {
                dir,
                path,
                flags,
                mode,
            } => emit!(opcode::OpenAt::new(types::Fd(*dir), path.as_ptr())
                .flags(*flags)
                .mode(*mode)
                .build()),
            OpKind::Read { fd, buf, offset } => {
                fd!(*fd, |f| opcode::Read::new(
                    f,
                    buf.as_mut_ptr(),
                    buf.len() as u32
                )
                .offset(*offset)
                .build())
            }
            OpKind::Write { fd, buf, offset } => {
                fd!(*fd, |f| opcode::Write::new(
                    f,
                    buf.as_ptr(),
                    buf.len() as u32
                )
                .offset(*offset)
                .build())
            }
            OpKind::Readv { fd, bufs, offset } => {
                iov.clear();
                iov.extend(bufs.iter_mut().map(|b| libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                }));
                fd!(*fd, |f| opcode::Readv::new(
                    f,
                    iov.as_ptr(),
                    iov.len() as u32
                )
                .offset(*offset)
                .build())
            }
            OpKind::Writev { fd, bufs, offset } => {
                iov.clear();
                iov.extend(bufs.iter().map(|b| libc::iovec {
                    iov_base: b.as_ptr() as *mut _,
                    iov_len: b.len(),
                }));
                fd!(*fd, |f| opcode::Writev::new(
                    f,
                    iov.as_ptr(),
                    iov.len() as u32
                )
                .offset(*offset)
                .build())
            }
            OpKind::ReadFixed {
                fd,
                buf,
                offset,
                len,
            } => {
                let (ptr, index) = (buf.as_mut_ptr(), buf.index());
                if bufs_native {
                    fd!(*fd, |f| opcode::ReadFixed::new(f, ptr, *len, index)
                        .offset(*offset)
                        .build())
                } else {
                    fd!(*fd, |f| opcode::Read::new(f, ptr, *len)
                        .offset(*offset)
                        .build())
                }
            }
            OpKind::WriteFixed {
                fd,
                buf,
                offset,
                len,
            } => {
                let (ptr, index) = (buf.as_ptr(), buf.index());
                if bufs_native {
                    fd!(*fd, |f| opcode::WriteFixed::new(f, ptr, *len, index)
                        .offset(*offset)
                        .build())
                } else {
                    fd!(*fd, |f| opcode::Write::new(f, ptr, *len)
                        .offset(*offset)
                        .build())
                }
            }
            OpKind::Fsync { fd, datasync } => emit!(Self::simple_entry(
                sh,
                files,
                SimpleKind::Fsync {
                    fd: *fd,
                    datasync: *datasync
                },
                ts
            )),
            OpKind::Close { fd } => {
                // Ownership passes to the kernel only once the SQE is queued (below).
                let raw = fd.as_ref().expect("close owns its fd").as_raw_fd();
                emit!(opcode::Close::new(types::Fd(raw)).build())
            }
        }
    }

    /// Poll-thread work before waiting: enable the ring, arm the wake read, send
    /// cancel requests, start deferred steps.
    pub(crate) fn prepare(&self, sh: &Shared, core: &mut Core) -> Result<()> {
        if !self.enabled.load(Ordering::Acquire) {
            if self.r_disabled {
                self.ring
                    .submitter()
                    .register_enable_rings()
                    .map_err(|e| Error::sys("IORING_REGISTER_ENABLE_RINGS", e))?;
            }
            self.enabled.store(true, Ordering::Release);
        }
        let armed = match &core.be {
            BackendState::Uring(u) => u.wake_armed,
            _ => unreachable!(),
        };
        if !armed {
            let e = opcode::Read::new(
                types::Fd(self.wakefd.as_raw_fd()),
                WAKE_SINK.as_ptr().cast::<u8>(),
                8,
            )
            .build()
            .user_data(WAKE);
            // SAFETY: the target is a static, valid for the whole program; the kernel's
            // write is the only access to it.
            if unsafe { self.push(sh, &e) } {
                if let BackendState::Uring(u) = &mut core.be {
                    u.wake_armed = true;
                }
            }
        }
        let mut cancels = std::mem::take(&mut core.cancels);
        for &idx in &cancels {
            let s = &core.slots[idx as usize];
            if s.state != State::Running || !s.cancel_pending {
                continue;
            }
            let key = s.key(idx);
            let e = opcode::AsyncCancel::new(key)
                .build()
                .user_data(CANCEL | key);
            // SAFETY: a cancel SQE carries no pointers.
            if !unsafe { self.push(sh, &e) } {
                // Still full after flushing: retry on the next poll iteration.
                core.cancels.push(idx);
            }
        }
        cancels.clear();
        if core.cancels.is_empty() {
            core.cancels = cancels;
        }
        // Simple operations' cancel requests (one per slot and generation; a stale
        // one finds nothing: the key carries the generation).
        while let Some(&key) = core.simple_cancels.last() {
            let e = opcode::AsyncCancel::new(key)
                .build()
                .user_data(CANCEL | key);
            // SAFETY: a cancel SQE carries no pointers.
            if !unsafe { self.push(sh, &e) } {
                break; // still full after flushing: retry on the next poll iteration
            }
            core.simple_cancels.pop();
        }
        let mut deferred = std::mem::take(&mut core.deferred);
        for &(idx, gen) in &deferred {
            let s = &core.slots[idx as usize];
            if s.gen == gen && s.state == State::Queued {
                core.start(sh, idx);
            }
        }
        deferred.clear();
        if core.deferred.is_empty() {
            core.deferred = deferred;
        }
        Ok(())
    }

    /// Submits queued SQEs and waits for at least one completion, `timeout` (None:
    /// forever; zero: just submit and run completion work).
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> Result<()> {
        let sub = self.ring.submitter();
        let r = match timeout {
            Some(t) if t.is_zero() => {
                // SAFETY: no extended argument; `to_submit` is clamped by the kernel to the
                // number of queued SQEs.
                unsafe { sub.enter::<libc::sigset_t>(self.sq_cap, 0, ENTER_GETEVENTS, None) }
            }
            Some(t) => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                sub.submit_with_args(1, &args)
            }
            None => sub.submit_and_wait(1),
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {
                    Ok(())
                }
                _ => Err(Error::sys("io_uring_enter", e)),
            },
        }
    }

    /// Reaps the completion ring: simple operations (see `simple`) are delivered to
    /// `on` at once, everything else is copied to `scratch.heavy` for `reap_heavy`.
    /// Runs on the poll thread (poll mutex held: it guards the CQ and the simple-slot
    /// table) with no other lock held, so `on` may submit and cancel. Returns how many
    /// completions were delivered.
    pub(crate) fn reap_simple(
        &self,
        sh: &Shared,
        scratch: &mut PollScratch,
        on: &mut impl Sink,
    ) -> usize {
        let PollScratch { simple, heavy, .. } = scratch;
        let cells = &sh.simple_cells[..];
        let cap = heavy.capacity();
        // Counts the slots freed here back into the table when this function ends,
        // also if `on` panics (no slot stays counted as in use).
        let mut freed = Freed {
            table: simple,
            sh,
            n: 0,
        };
        // SAFETY: the CQ is only touched by the poll thread, which holds `Shared::poll`
        // for the whole poll call (and teardown has exclusive access).
        let mut cq = unsafe { self.ring.completion_shared() };
        'ring: loop {
            cq.sync();
            if cq.is_empty() {
                break;
            }
            for cqe in &mut cq {
                let ud = cqe.user_data();
                let res = cqe.result();
                if ud & (CANCEL | simple::SIMPLE) != simple::SIMPLE {
                    heavy.push((ud, res));
                    // Bounded by `heavy`'s capacity so that it never reallocates; what
                    // is left stays in the ring for the next poll iteration.
                    if heavy.len() == cap {
                        break 'ring;
                    }
                    continue;
                }
                let idx = ud as u32;
                let Some(cell) = cells.get(idx as usize) else {
                    continue;
                };
                // Relaxed: the word carries no data (see `start_simple`).
                let v = cell.state.load(Ordering::Relaxed);
                // A stale key (generation moved on) finds a different word.
                if v & !simple::CANCELLING != simple::running_state_of(ud) {
                    continue;
                }
                // Free: keep the generation, clear kind and flags.
                cell.state.store(v & !0xf, Ordering::Relaxed);
                let user_data = cell.user_data.load(Ordering::Relaxed);
                let outcome = if res >= 0 {
                    Outcome::Ok(res as u32)
                } else {
                    simple::error_outcome_of(v, res)
                };
                freed.n += 1;
                on.lean(OpId(ud), user_data, outcome);
            }
        }
        // Advance the CQ head before anything else can run.
        drop(cq);
        freed.n
    }

    /// Processes the CQEs `reap_simple` set aside (caller holds the core lock). Returns
    /// whether a wake was consumed.
    pub(crate) fn reap_heavy(
        &self,
        sh: &Shared,
        core: &mut Core,
        heavy: &mut Vec<(u64, i32)>,
    ) -> bool {
        let mut woken = false;
        for &(ud, res) in heavy.iter() {
            Self::reap_one(sh, core, ud, res, &mut woken);
        }
        heavy.clear();
        woken
    }

    /// Processes every available CQE of ordinary slots (caller holds the core lock).
    /// CQEs of simple operations are dropped: `poll` calls this only when none is in
    /// flight, and teardown delivers nothing any more. Returns whether a wake was
    /// consumed.
    pub(crate) fn reap(&self, sh: &Shared, core: &mut Core) -> bool {
        let mut woken = false;
        // SAFETY: as in `reap_simple`; teardown has exclusive access.
        let mut cq = unsafe { self.ring.completion_shared() };
        loop {
            cq.sync();
            if cq.is_empty() {
                break;
            }
            for cqe in &mut cq {
                let ud = cqe.user_data();
                if ud & (CANCEL | simple::SIMPLE) != simple::SIMPLE {
                    Self::reap_one(sh, core, ud, cqe.result(), &mut woken);
                }
            }
        }
        woken
    }

    #[inline(always)]
    fn reap_one(sh: &Shared, core: &mut Core, ud: u64, res: i32, woken: &mut bool) {
        // Slot keys never have bit 63 set; WAKE and cancel requests do.
        if ud & CANCEL != 0 {
            if ud == WAKE {
                *woken = true;
                if let BackendState::Uring(u) = &mut core.be {
                    u.wake_armed = false;
                }
            } else {
                Self::cancel_done(sh, core, OpId(ud & !CANCEL), res);
            }
            return;
        }
        let id = OpId(ud);
        let idx = id.index();
        let Some(s) = core.slots.get(idx as usize) else {
            return;
        };
        // A stale key (generation moved on) or a slot not running: nothing to do.
        if s.gen != id.gen() || s.state != State::Running {
            return;
        }
        let outcome = if res >= 0 {
            Outcome::Ok(res as u32)
        } else {
            outcome(
                s.op.as_ref().expect("running slot has an op"),
                s.cancel,
                res,
            )
        };
        core.finish(sh, idx, outcome);
    }

    fn cancel_done(sh: &Shared, core: &mut Core, id: OpId, res: i32) {
        if id.0 & simple::SIMPLE != 0 {
            // A simple operation's cancel request: nothing to retry (never linked).
            return;
        }
        let Some(idx) = core.find(id) else { return };
        let s = &mut core.slots[idx as usize];
        s.cancel_pending = false;
        let tries = s.cancel_tries;
        if res != -libc::ENOENT
            || s.state != State::Running
            || s.chain != Chain::Kernel
            || tries > 32
        {
            return;
        }
        // Not found but still pending: a later step of a kernel-linked sequence whose
        // predecessor finished as our request went in. Cancel the new front.
        let front = core.chain_front(idx);
        let f = &mut core.slots[front as usize];
        f.cancel_tries = f.cancel_tries.max(tries);
        core.cancel_slot(sh, front);
    }

    /// Cancels everything still in the kernel and waits (bounded) for it to finish,
    /// so the slots' memory can be freed; leaks that memory otherwise.
    pub(crate) fn teardown(&self, sh: &Shared, can_enter: bool) {
        let mut core = super::sync::lock(&sh.core);
        let core = &mut *core;
        // The wake read needs no waiting: its target is a static (`WAKE_SINK`).
        let running = |core: &Core| {
            core.slots
                .iter()
                .any(|s| s.state == State::Running && !s.soft)
        };
        for s in core.slots.iter_mut() {
            s.cancel = true;
        }
        if !self.enabled.load(Ordering::Acquire) {
            // Nothing ever reached the kernel; queued SQEs die with the ring.
            return;
        }
        let can_enter = can_enter || !self.single_issuer;
        if can_enter {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                for idx in 0..core.slots.len() as u32 {
                    let s = &core.slots[idx as usize];
                    if s.state == State::Running && !s.soft && !s.cancel_pending {
                        core.slots[idx as usize].cancel_pending = true;
                        core.cancels.push(idx);
                    }
                }
                let _ = self.prepare_cancels(sh, core);
                if !running(core) || Instant::now() >= deadline {
                    break;
                }
                let _ = self.wait(Some(Duration::from_millis(20)));
                self.reap(sh, core);
                if !running(core) {
                    break;
                }
            }
        }
        if running(core) {
            // The kernel may still use these operations' memory: never free it. Only
            // what an SQE points at is leaked (the op's buffers, path, event, epoch and
            // its iovec array); timeouts were copied by the kernel when submitted.
            for s in core.slots.iter_mut() {
                if s.state == State::Running && !s.soft {
                    std::mem::forget(s.op.take());
                    std::mem::forget(std::mem::take(&mut s.iov));
                }
            }
        }
    }

    fn prepare_cancels(&self, sh: &Shared, core: &mut Core) -> Result<()> {
        let cancels = std::mem::take(&mut core.cancels);
        for &idx in &cancels {
            let s = &core.slots[idx as usize];
            if s.state != State::Running {
                continue;
            }
            let key = s.key(idx);
            let e = opcode::AsyncCancel::new(key)
                .build()
                .user_data(CANCEL | key);
            // SAFETY: a cancel SQE carries no pointers.
            unsafe { self.push(sh, &e) };
        }
        Ok(())
    }
}

/// Counts the simple slots `reap_simple` freed back into the table when it ends (also
/// when a completion callback panics), and mirrors the count for `in_flight`.
struct Freed<'a> {
    table: &'a mut SimpleTable,
    sh: &'a Shared,
    n: usize,
}

impl Drop for Freed<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.table.released(self.n);
            self.sh
                .simple_live
                .store(self.table.live(), Ordering::Relaxed);
        }
    }
}

/// Maps a CQE result to an outcome.
fn outcome(op: &OpKind, cancel_requested: bool, res: i32) -> Outcome {
    if res >= 0 {
        return Outcome::Ok(res as u32);
    }
    match (-res, op) {
        // The futex no longer held the token: the epoch already moved on.
        (libc::EAGAIN, OpKind::NotificationWait(..)) => Outcome::Ok(0),
        _ => simple::error_outcome(op.code(), cancel_requested, res),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_errors_map_to_unavailable_with_a_hint() {
        for errno in [libc::EPERM, libc::EACCES, libc::ENOSYS, libc::ENOMEM] {
            match unavailable(errno) {
                Error::Unavailable {
                    backend,
                    errno: e,
                    hint,
                } => {
                    assert_eq!(backend, "io_uring");
                    assert_eq!(e, errno);
                    assert!(!hint.is_empty());
                }
                other => panic!("{other:?}"),
            }
        }
        let s = unavailable(libc::EPERM).to_string();
        assert!(s.contains("io_uring_disabled"), "{s}");
    }

    #[test]
    fn cqe_results_map_to_outcomes() {
        let timer = OpKind::Timer(TimerSpec::After(Duration::ZERO));
        assert_eq!(outcome(&timer, false, -libc::ETIME), Outcome::Ok(0));
        assert_eq!(outcome(&timer, false, -libc::ECANCELED), Outcome::Cancelled);
        assert_eq!(
            outcome(&OpKind::Nop, true, -libc::EINTR),
            Outcome::Cancelled
        );
        assert_eq!(outcome(&OpKind::Nop, false, 5), Outcome::Ok(5));
        assert_eq!(
            outcome(&OpKind::Nop, false, -libc::EBADF),
            Outcome::Err(super::super::op::OpError {
                op: super::super::op::OpCode::Nop,
                errno: libc::EBADF
            })
        );
    }
}
