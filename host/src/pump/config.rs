//! How to build a pump ([`PumpConfig`], [`PumpFile`], [`IdleConfig`]), what can go wrong ([`PumpError`]) and
//! what it counts ([`PumpStats`]).

#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use super::queue::{PlanError, ERR_COUNT};

/// A file the pump may read or write, registered with its ring. Its handle is its index in
/// [`PumpConfig::files`]. Requests are validated against `extent`, never against the live file size, so
/// validation costs no system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PumpFile {
    /// The descriptor to register (the pump's ring holds its own reference; the caller may close it after
    /// [`Pump::new`](crate::pump::Pump::new)).
    pub fd: RawFd,
    /// Whether WRITE is allowed (READ always is).
    pub writable: bool,
    /// Requests must lie inside `[0, extent)`.
    pub extent: u64,
}

impl PumpFile {
    /// Read-only, with the file's current size as its extent (`fstat`).
    pub fn reader(f: &impl AsRawFd) -> io::Result<PumpFile> {
        let fd = f.as_raw_fd();
        // SAFETY: an all-zero `stat` is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid out-parameter; `fd` is only a number to the kernel.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PumpFile {
            fd,
            writable: false,
            extent: st.st_size.max(0) as u64,
        })
    }

    /// Read-only with an explicit extent (pipes, devices, files that will grow).
    pub fn reader_with_extent(f: &impl AsRawFd, extent: u64) -> PumpFile {
        PumpFile {
            fd: f.as_raw_fd(),
            writable: false,
            extent,
        }
    }

    /// Readable and writable inside `[0, extent)` (writes may grow the file up to `extent`).
    pub fn writer(f: &impl AsRawFd, extent: u64) -> PumpFile {
        PumpFile {
            fd: f.as_raw_fd(),
            writable: true,
            extent,
        }
    }
}

/// Idle backoff: spin while work is likely, then park with a doubling timeout up to `max_park`. A request
/// published while the pump parks waits at most about `max_park` (plus scheduling) for it to look again, or
/// less when the bell rings ([`LaneWake`](crate::pump::LaneWake): CPU-device lanes, `Pump::kick`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleConfig {
    /// Keep polling without sleeping for this long after the last activity.
    pub spin: Duration,
    /// First park timeout.
    pub min_park: Duration,
    /// Longest park timeout: the bound on cold-request latency added by the pump.
    pub max_park: Duration,
}

impl Default for IdleConfig {
    fn default() -> Self {
        IdleConfig {
            spin: Duration::from_micros(50),
            min_park: Duration::from_micros(50),
            max_park: Duration::from_millis(1),
        }
    }
}

/// Test hook: make one `io_uring_enter` of the pump fail after the kernel consumed `consume` SQEs of the
/// batch (that part is a real, partial `io_uring_enter`; the error is then reported as `errno`). Fires on the
/// first submit, counting from the `after`-th, that carries at least `min_sqes` SQEs; fires `times` times.
#[cfg(feature = "testing")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitFault {
    /// Submits to let pass before the first that may fail.
    pub after: u64,
    /// Only a submit carrying at least this many SQEs fails.
    pub min_sqes: u32,
    /// SQEs the kernel really consumes before the failure is reported.
    pub consume: u32,
    /// The errno reported.
    pub errno: i32,
    /// How many submits fail.
    pub times: u32,
}

/// How to build a [`Pump`](crate::pump::Pump).
#[derive(Debug, Clone)]
pub struct PumpConfig {
    /// io_queue slots (1..=65536).
    pub slots: u32,
    /// Sizes of the buffer regions; region `i` is handle `i` and registered buffer `i`.
    pub regions: Vec<usize>,
    /// Registered files; file `i` is handle `i`.
    pub files: Vec<PumpFile>,
    /// The pump ring's SQ entries (power of two): the most SQEs one `io_uring_enter` carries.
    pub sq_entries: u32,
    /// CQ entries (default `2 * sq_entries`): the cap on requests in flight in the kernel.
    pub cq_entries: Option<u32>,
    /// Most requests claimed per loop iteration (0: `sq_entries`).
    pub max_batch: u32,
    /// Idle backoff.
    pub idle: IdleConfig,
    /// How long [`Pump::stop`](crate::pump::Pump::stop) lets in-flight I/O finish before cancelling it.
    pub stop_timeout: Duration,
    /// Test hook: a failure injected into the pump's `io_uring_enter` (the `testing` feature).
    #[cfg(feature = "testing")]
    pub fault: Option<SubmitFault>,
}

impl Default for PumpConfig {
    fn default() -> Self {
        PumpConfig {
            slots: 256,
            regions: Vec::new(),
            files: Vec::new(),
            sq_entries: 128,
            cq_entries: None,
            max_batch: 0,
            idle: IdleConfig::default(),
            stop_timeout: Duration::from_secs(5),
            #[cfg(feature = "testing")]
            fault: None,
        }
    }
}

/// An error building or running a pump. Each message says what to do.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PumpError {
    /// The arena cannot be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A configuration value is wrong.
    #[error("invalid pump configuration: {0}")]
    Config(String),
    /// Setting up the arena or the ring failed.
    #[error("{context} failed (errno {errno}): {fix}")]
    Setup {
        /// What was being done.
        context: &'static str,
        /// The errno.
        errno: i32,
        /// What to do about it.
        fix: String,
    },
    /// The pump's ring failed (`io_uring_enter` returned a non-transient error): unstarted requests were
    /// failed with `ERR_SUBMIT`, in-flight ones drained, and the pump stopped.
    #[error(
        "the pump's io_uring_enter failed with errno {errno} ({}); every claimed request was completed and the \
         pump stopped; build a new pump",
        io::Error::from_raw_os_error(*.errno)
    )]
    Submit {
        /// The errno.
        errno: i32,
    },
    /// The pump thread panicked (a bug); slots it owned may be left CLAIMED.
    #[error("the pump thread panicked: a bug in gpu-uring, please report it")]
    Panicked,
    /// [`Pump::start`](crate::pump::Pump::start) was called twice.
    #[error("the pump was already started")]
    AlreadyStarted,
}

debug_as_display!(PumpError);

/// The pump's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PumpStats {
    /// Requests claimed (each publication is claimed at most once).
    pub claimed: u64,
    /// Requests completed DONE.
    pub served: u64,
    /// Requests completed FAILED, by `ERR_*` code.
    pub failed: [u64; ERR_COUNT],
    /// `io_uring_enter` calls that carried SQEs.
    pub batches: u64,
    /// SQEs submitted.
    pub sqes: u64,
    /// Times the idle pump parked (futex or a timed CQ wait).
    pub idle_parks: u64,
    /// FENCEs completed.
    pub fences: u64,
    /// Bytes read into buffer regions.
    pub bytes_read: u64,
    /// Bytes written from buffer regions.
    pub bytes_written: u64,
    /// Bitmap bits whose slot was not PUBLISHED (withdrawn by its lane, or a device bug), or that name no
    /// slot; left untouched.
    pub stale_bits: u64,
    /// Device writes that broke the protocol and were refused (PROTOCOL.md §Q4): a slot published again while
    /// the pump still held it (its I/O in flight, or a FENCE waiting). The held request completes normally;
    /// the second publication is dropped.
    pub protocol_violations: u64,
    /// CQEs whose `user_data` matched no request in flight, or carried a stale generation; never applied
    /// (must stay 0).
    pub foreign_cqes: u64,
    /// Transient `io_uring_enter` errors that were retried.
    pub submit_errors: u64,
    /// In-flight requests cancelled while stopping.
    pub cancelled: u64,
    /// In-flight requests the kernel never completed, even after cancellation, when the pump stopped: their
    /// slots were failed `ERR_STOPPED` anyway (see PROTOCOL.md §Q7). Must stay 0 for regular files.
    pub abandoned: u64,
    /// Requests pushed to the pump's ring whose CQE has not been reaped yet (a gauge, not a counter; 0 once
    /// the pump stopped).
    pub in_flight: u64,
}

impl PumpStats {
    /// All FAILED completions.
    pub fn failed_total(&self) -> u64 {
        self.failed.iter().sum()
    }

    /// All completions.
    pub fn completed(&self) -> u64 {
        self.served + self.failed_total()
    }
}
