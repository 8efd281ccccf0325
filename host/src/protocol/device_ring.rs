//! [`DeviceRing`]: a [`Ring`] as the protocol uses it — the print target (PROTOCOL.md §7), quiescing with the
//! host's own lane (§9), and the violation counters (§10). It dereferences to the [`Ring`], so
//! `layout()`, `view()`, `fd()` and the rest are the ring's. Every control word read here is device-written:
//! it is checked and counted, never trusted (the lints below keep panics out).
//!
//! During a run the host reads only host-shared words ([`DeviceRing::mirrors`], the kernel's ring words);
//! everything that reads or updates the device-local block (`quiesce`, `finish_prints`, `violations`) is for
//! after the run, on the host copy (PROTOCOL.md §9).
#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::ops::Deref;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::lane::Lane;
use super::print_host::{host_finish, PrintLogReport};
use super::shared::{PRINT_FIXED_BUF, PRINT_FIXED_FILE, PRINT_LOG, PRINT_OFFSET_MODE};
use crate::abi::SharedControl;
use crate::ring::{Ring, RingConfig, RingError};
use crate::{local_off, shared_off};

/// Where device prints go.
#[derive(Debug, Clone, Copy)]
pub enum PrintTarget {
    /// A file descriptor. The ring registers it in its reserved print slot (fixed file `fixed_files.len()`,
    /// `IORING_REGISTER_FILES_UPDATE`), so it works on confined rings; the ring holds its own reference.
    Fd(RawFd),
    /// A registered fixed file, by index.
    Fixed(u32),
}

/// How device prints reach their target (PROTOCOL.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrintMode {
    /// Group commit through the ring's print log: many lines per write (the default where the ring has a log,
    /// `RingConfig::print_log_bytes > 0`).
    #[default]
    GroupCommit,
    /// One write per line from the lane's staging line (for comparison, and for device code without the log).
    LinePerWrite,
}

/// Why [`DeviceRing::try_quiesce`] did not reach a quiescent ring.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuiesceError {
    /// Requests were still in flight when the timeout passed.
    #[error("ring not quiescent after {waited:?}: SQ head {sq_head}, tail {sq_tail}, reserved {sq_reserved}; {credits} of {credit_pool} CQ credits back")]
    TimedOut {
        /// How long it waited.
        waited: Duration,
        /// The kernel's SQ head.
        sq_head: u32,
        /// The SQ tail.
        sq_tail: u32,
        /// The device's next SQ ticket.
        sq_reserved: u32,
        /// CQ credits back in the pool.
        credits: u32,
        /// The credit pool's size.
        credit_pool: u32,
    },
    /// Device-written words are in a state the protocol cannot reach (counted in
    /// [`DeviceRing::violations`]); waiting longer cannot help.
    #[error("protocol violation in device-written words: {0}")]
    Violation(&'static str),
}

debug_as_display!(QuiesceError);

/// Protocol violations seen on a ring (PROTOCOL.md §10).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Violations {
    /// Found by the host (quiesce, drop) in device-written words; kept in host memory.
    pub host_detected: u64,
    /// Counted by lanes in the device-local `protocol_violations` word (device-written, so only a report).
    pub device_reported: u32,
    /// CQEs no lane recognised or whose generation was stale (`foreign_cqes`, device-written).
    pub foreign_cqes: u32,
}

/// A device ring as the protocol uses it.
pub struct DeviceRing {
    ring: Ring,
    /// A duplicate of the descriptor behind the print target (the same open file), for `lseek` and the host's
    /// print-log writes after a run; owned, so it stays valid when the caller closes theirs.
    print_fd: Mutex<Option<OwnedFd>>,
    /// The print mode `set_print_target` applies.
    print_mode: Mutex<PrintMode>,
    /// What the host found and did in the print log after runs.
    log_report: Mutex<PrintLogReport>,
}

impl Deref for DeviceRing {
    type Target = Ring;

    fn deref(&self) -> &Ring {
        &self.ring
    }
}

impl DeviceRing {
    /// Creates the ring ([`Ring::new`]).
    pub fn new(cfg: RingConfig) -> Result<DeviceRing, RingError> {
        Ok(DeviceRing {
            ring: Ring::new(cfg)?,
            print_fd: Mutex::new(None),
            print_mode: Mutex::new(PrintMode::default()),
            log_report: Mutex::new(PrintLogReport::default()),
        })
    }

    /// The ring underneath.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Protocol violations seen so far (host-detected, and what lanes reported in the device-local block).
    /// Reads the device-local block's host copy: call it after a run (during one, [`DeviceRing::mirrors`]).
    pub fn violations(&self) -> Violations {
        let view = self.view();
        Violations {
            host_detected: self.ring.host_violations(),
            device_reported: view
                .local32(local_off!(protocol_violations))
                .load(Ordering::Relaxed),
            foreign_cqes: view
                .local32(local_off!(foreign_cqes))
                .load(Ordering::Relaxed),
        }
    }

    /// The host-shared control block: the print settings and the mirrors the doorbell holders keep — what the
    /// host may read while a run is in progress (stale by at most one CQ release, PROTOCOL.md §9).
    pub fn mirrors(&self) -> SharedControl {
        self.view().shared_snapshot()
    }

    /// Chooses how the next [`DeviceRing::set_print_target`] makes prints reach it (default: group commit
    /// where the ring has a print log).
    pub fn set_print_mode(&self, mode: PrintMode) {
        *self.print_mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    /// What the host found and did in the print log after runs (summed over quiesce and `finish_prints`).
    pub fn print_log_report(&self) -> PrintLogReport {
        *self.log_report.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After a run (on the device-local host copy): waits for a print-log write in flight, writes every
    /// completed range nobody submitted and counts the incomplete ones (PROTOCOL.md §7). Returns this call's
    /// findings (also added to [`DeviceRing::print_log_report`]).
    pub fn finish_print_log(&self, timeout: Duration) -> PrintLogReport {
        let guard = self.print_fd.lock().unwrap_or_else(|e| e.into_inner());
        let Some(fd) = guard.as_ref().map(|f| f.as_raw_fd()) else {
            return PrintLogReport::default();
        };
        let rep = host_finish(self.view(), fd, Instant::now() + timeout);
        drop(guard);
        if rep.violations > 0 {
            self.ring.record_violation();
        }
        self.log_report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(&rep);
        rep
    }

    /// Sets where device prints go. Call while no lane is printing. A regular file without `O_APPEND` uses
    /// offset mode from its current position; anything else uses stream mode (PROTOCOL.md §7). Prints always
    /// go through a registered file, so this works on confined rings too.
    pub fn set_print_target(&self, target: PrintTarget) -> Result<(), RingError> {
        let (fd, index) = match target {
            PrintTarget::Fd(fd) => (fd, self.ring.register_print_file(fd)?),
            PrintTarget::Fixed(i) => {
                let fd = *self.fixed_files().get(i as usize).ok_or_else(|| {
                    RingError::InvalidConfig(format!(
                        "fixed file {i} is not registered ({} registered)",
                        self.fixed_files().len()
                    ))
                })?;
                (fd, i)
            }
        };
        // SAFETY: an all-zero `stat` is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid out-parameter; `fd` is just a number to the kernel.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Err(RingError::Io {
                context: "fstat on the print target",
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: F_GETFL has no pointer arguments.
        let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        let mut flags = PRINT_FIXED_FILE | PRINT_FIXED_BUF;
        let mut offset = 0u64;
        if st.st_mode & libc::S_IFMT == libc::S_IFREG && fl >= 0 && fl & libc::O_APPEND == 0 {
            // SAFETY: lseek has no pointer arguments.
            let pos = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
            if pos >= 0 {
                flags |= PRINT_OFFSET_MODE;
                offset = pos as u64;
            }
        }
        let view = self.view();
        let mode = *self.print_mode.lock().unwrap_or_else(|e| e.into_inner());
        if mode == PrintMode::GroupCommit
            && view
                .shared32(shared_off!(print_log_bytes))
                .load(Ordering::Relaxed)
                > 0
        {
            flags |= PRINT_LOG;
        }
        // Anything a previous target's log still holds goes to that target first.
        self.finish_print_log(Duration::from_secs(5));
        // SAFETY: F_DUPFD_CLOEXEC has no pointer arguments; a new descriptor it returns is ours to own.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(RingError::Io {
                context: "duplicating the print target's descriptor",
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: `dup` is a fresh descriptor nobody else owns.
        *self.print_fd.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(unsafe { OwnedFd::from_raw_fd(dup) });
        // Outside a run: the device-local host copy.
        view.local64(local_off!(print_offset))
            .store(offset, Ordering::Relaxed);
        view.shared32(shared_off!(print_fd))
            .store(index, Ordering::Relaxed);
        // Release: a lane that acquires the flags sees the target and the offset.
        view.shared32(shared_off!(print_flags))
            .store(flags, Ordering::Release);
        Ok(())
    }

    /// After prints in offset mode (after the run: it reads the device-local host copy), moves the target's
    /// file position past the printed lines (so later writes through the fd append after them). Returns the
    /// final offset. The offset is device-written: one that
    /// does not fit a file offset is counted as a violation and leaves the position alone.
    pub fn finish_prints(&self) -> Option<u64> {
        let view = self.view();
        let flags = view
            .shared32(shared_off!(print_flags))
            .load(Ordering::Acquire);
        self.finish_print_log(Duration::from_secs(10));
        let guard = self.print_fd.lock().unwrap_or_else(|e| e.into_inner());
        let fd = guard.as_ref().map_or(-1, |f| f.as_raw_fd());
        if flags & PRINT_OFFSET_MODE == 0 || fd < 0 {
            return None;
        }
        let off = view
            .local64(local_off!(print_offset))
            .load(Ordering::Acquire);
        let Ok(pos) = i64::try_from(off) else {
            self.ring.record_violation();
            return None;
        };
        // SAFETY: lseek has no pointer arguments.
        unsafe { libc::lseek(fd, pos, libc::SEEK_SET) };
        Some(off)
    }

    /// Waits until the kernel has consumed every published SQE and every CQ credit is back (no credited request
    /// is in flight), reaping on the host's behalf and completing any doorbell duty a lane left pending. Call it
    /// after a run: it updates the device-local block's host copy (PROTOCOL.md §9). Returns false if `timeout` passed first or the device left
    /// its words in a state no wait can fix (see [`DeviceRing::try_quiesce`]).
    pub fn quiesce(&self, timeout: Duration) -> bool {
        self.try_quiesce(timeout).is_ok()
    }

    /// [`DeviceRing::quiesce`] with the reason it failed. Every word read here is device-written and checked:
    /// more credits than the pool, a reservation or tail beyond what the SQ can hold, or a window violation
    /// while reaping are counted in [`DeviceRing::violations`] and end the wait at once. Never panics.
    pub fn try_quiesce(&self, timeout: Duration) -> Result<(), QuiesceError> {
        let start = Instant::now();
        let view = self.view();
        let l = *view.layout();
        let mut host = Lane::host(view);
        let violations = view.local32(local_off!(protocol_violations));
        loop {
            let before = violations.load(Ordering::Relaxed);
            host.reap(64);
            if violations.load(Ordering::Relaxed) != before {
                return Err(
                    self.violation("a publication window word (sq_pub or cq_pub) is corrupted")
                );
            }
            let head = view.u32_at(l.sq_head).load(Ordering::Acquire);
            let tail = view.u32_at(l.sq_tail).load(Ordering::Acquire);
            let reserved = view.local32(local_off!(sq_reserve)).load(Ordering::Acquire);
            let credits = view.local32(local_off!(cq_credits)).load(Ordering::Acquire);
            if credits > l.credit_pool {
                return Err(self.violation("more CQ credits than the pool holds"));
            }
            if reserved.wrapping_sub(head) > l.sq_entries || tail.wrapping_sub(head) > l.sq_entries
            {
                return Err(self.violation("SQ tail or reservation beyond what the SQ holds"));
            }
            if head == tail && tail == reserved && credits == l.credit_pool {
                // Nothing in flight: what the print log still holds is the host's to write (§7), and the
                // kernel's CQ head catches up with the released head (§5.5).
                self.finish_print_log(timeout.saturating_sub(start.elapsed()));
                host.settle_cq_head();
                return Ok(());
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(QuiesceError::TimedOut {
                    waited,
                    sq_head: head,
                    sq_tail: tail,
                    sq_reserved: reserved,
                    credits,
                    credit_pool: l.credit_pool,
                });
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    fn violation(&self, what: &'static str) -> QuiesceError {
        self.ring.record_violation();
        QuiesceError::Violation(what)
    }
}

impl Drop for DeviceRing {
    fn drop(&mut self) {
        // Bounded and panic-free; the ring underneath then stops its waker and closes.
        let _ = self.try_quiesce(Duration::from_secs(2));
    }
}
