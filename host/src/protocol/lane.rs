//! The device side of the protocol in Rust: what one lane does to reserve, fill, publish, reap, wait and
//! print (PROTOCOL.md §3–§7). The CPU reference device runs this code on its threads; the GLSL and HIP/CUDA
//! implementations mirror it step by step. Comments name the spec section and the ordering of each access.
//!
//! The lane's steps live in one file each: [`super::reserve`] (§3 tickets, §4 credits), [`super::publish`]
//! (§3 fill and publish, the flag rule), [`super::doorbell`] (the combining doorbell of §3 and §5),
//! [`super::reap`] (§5) and [`super::ops`] (operations, §6 waiting, §7 prints). Every access to ring memory
//! goes through the counted accessors of [`crate::ring::bus`]: host-shared words have no read-modify-write
//! methods, so the lane cannot make one there (PROTOCOL.md §1).
//!
//! The host runs this code too (`Lane::host`: `DeviceRing::quiesce` reaps with it after a run), on words device
//! code can write: nothing here may panic or index out of range on such a value. A word outside what the
//! protocol allows is counted in `protocol_violations` and not acted on.
#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::sync::atomic::Ordering::*;

use io_uring::squeue::Flags;

use super::format::LineBuf;
use super::shared::*;
use crate::local_off;
use crate::ring::bus::{BusCounters, BusMeter, RingBus, RingRegion};
use crate::ring::layout::RING_FLAG_CONFINED;
use crate::ring::RingView;

/// Why a device operation did not happen. Nothing was submitted when one of these is returned.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LaneError {
    /// No room right now (SQ full, publication window full, or no CQ credit); try again.
    #[error("would block: no SQ slot or CQ credit free right now")]
    WouldBlock,
    /// The spin budget ran out.
    #[error("timed out: the spin budget ran out")]
    TimedOut,
    /// Prints need a target (`DeviceRing::set_print_target`).
    #[error("no print target set")]
    NoPrintTarget,
    /// The lane-relative completion slot does not exist.
    #[error("completion slot {0} out of range")]
    BadSlot(u32),
    /// Polled a completion slot with nothing in flight.
    #[error("completion slot {0} has no operation in flight")]
    NotPending(u32),
    /// The SQE's flags would leak CQ credits (PROTOCOL.md §4). A refused `commit` publishes its reservation as
    /// a NOP (which returns the credit); nothing of the caller's SQE is submitted.
    #[error("SQE flags {flags:#04x} refused: {why}")]
    BadFlags {
        /// The caller's SQE flags.
        flags: u8,
        /// Which combination, and why it is refused.
        why: &'static str,
    },
    /// A shared word was outside what the protocol allows (device code corrupted it). Counted in
    /// `protocol_violations`; the operation did not happen.
    #[error("protocol violation: a shared ring word is outside what the protocol allows (counted in protocol_violations)")]
    ProtocolViolation,
    /// A print's line is longer than the ring's lines: nothing was printed. Shorten the line or raise
    /// `RingConfig::line_bytes` (at most 4096).
    #[error("line of {len} bytes (with its newline) does not fit the ring's {max}-byte lines; nothing was printed (raise RingConfig::line_bytes or shorten the line)")]
    LineTooLong {
        /// The line's length with its newline.
        len: u32,
        /// The longest line the ring prints (`line_bytes`, newline included).
        max: u32,
    },
}

debug_as_display!(LaneError);

impl LaneError {
    /// The status code device code returns for this error (`STATUS_*`, what the GLSL library returns).
    pub fn status(&self) -> u32 {
        match self {
            LaneError::WouldBlock => STATUS_WOULD_BLOCK,
            LaneError::TimedOut => STATUS_TIMED_OUT,
            LaneError::NoPrintTarget => STATUS_WOULD_BLOCK,
            LaneError::BadSlot(_) => STATUS_BAD_SLOT,
            LaneError::NotPending(_) => STATUS_NOT_PENDING,
            LaneError::BadFlags { .. } => STATUS_BAD_FLAGS,
            LaneError::ProtocolViolation => STATUS_PROTOCOL_VIOLATION,
            LaneError::LineTooLong { .. } => STATUS_LINE_TOO_LONG,
        }
    }
}

/// How an operation completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionMode {
    /// The lane does not wait: whichever lane reaps the CQE returns the credit and counts a failure in
    /// `ff_errors` (§4).
    FireAndForget,
    /// `IOSQE_CQE_SKIP_SUCCESS`: no CQE on success, so nobody learns when it finished; only for memory the
    /// device never reuses. Failures are counted in `ff_errors` and use the CQ headroom (§4).
    SkipSuccess,
    /// A waited operation: its CQE is reaped into the lane's completion slot `k` (lane-relative).
    Slot(u32),
}

/// Result of polling a completion slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// The CQE's `res`.
    Ready(i32),
    /// Not complete yet.
    WouldBlock,
}

/// A file an SQE acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRef {
    /// A raw file descriptor.
    Raw(i32),
    /// A registered fixed file.
    Fixed(u32),
}

/// Per-lane counters (lane-local; no shared state).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LaneStats {
    /// Reservations refused because the SQ was full.
    pub sq_full: u64,
    /// Reservations refused because no CQ credit was left.
    pub no_credit: u64,
    /// Reservations refused because the publication window was full.
    pub window_full: u64,
    /// CQEs this lane reaped.
    pub reaped: u64,
    /// Drain markers this lane issued.
    pub drains: u64,
    /// Lines printed.
    pub lines: u64,
    /// Operations submitted (SQEs published through `commit`, `commit_exact` or a subgroup).
    pub ops: u64,
    /// This lane's accesses to ring memory, per region class (PROTOCOL.md §1).
    pub bus: BusCounters<RingRegion>,
}

/// Spin budget used when a caller does not give one: on the CPU reference device about 100 s of backing off (its
/// idle wait blocks for at most about 16 s of that budget's first polls, then backs off the same way).
pub const DEFAULT_BUDGET: u32 = 1 << 21;

/// One lane of a device.
pub struct Lane<'a> {
    pub(super) view: RingView<'a>,
    pub(super) id: u32,
    pub(super) base_flags: u8,
    pub(super) line: LineBuf,
    pub(super) next_line: u32,
    pub(super) stream_pending: Option<u32>,
    pub(super) stats: LaneStats,
    /// The kernel's SQ head as this lane last acquired it: it only moves forward, so a stale copy is a
    /// conservative bound on SQ room and is reloaded only when it does not show enough (§3).
    pub(super) sq_head_seen: u32,
    /// The kernel's CQ tail as this lane last acquired it (the CQEs before it are written), reloaded only
    /// when the lane's claim reaches it (§5).
    pub(super) cq_tail_seen: u32,
    /// The print target (`print_flags`, `print_fd`) once read from the shared control block (§7).
    pub(super) print_target: Option<(u32, i32)>,
    /// The print log (§7), once read; None while prints are one write per line.
    pub(super) log_target: Option<super::log_target::LogTarget>,
    /// End byte position of this lane's last line in the print log (what `flush` waits to see written).
    pub(super) log_end: Option<u32>,
    pub(super) meter: BusMeter<RingRegion>,
}

impl<'a> Lane<'a> {
    /// Lane `id` of a device (0 ≤ id < `layout.lanes`).
    pub fn new(view: RingView<'a>, id: u32) -> Lane<'a> {
        let l = *view.layout();
        assert!(
            id < l.lanes,
            "lane {id} but the arena has {} lanes",
            l.lanes
        );
        let mut lane = Lane::host(view);
        lane.id = id;
        lane.line = LineBuf::with_capacity(l.line_bytes as usize);
        lane
    }

    /// The host's own lane: it may reap, drain and flush, but owns no slots or staging lines. The host uses it
    /// only outside runs (its RMWs are on the device-local block's host copy, PROTOCOL.md §9).
    pub fn host(view: RingView<'a>) -> Lane<'a> {
        let confined = view.layout().ring_flags & RING_FLAG_CONFINED != 0;
        Lane {
            view,
            id: u32::MAX,
            base_flags: if confined {
                Flags::FIXED_FILE.bits()
            } else {
                0
            },
            line: LineBuf::with_capacity(0),
            next_line: 0,
            stream_pending: None,
            stats: LaneStats::default(),
            sq_head_seen: 0,
            cq_tail_seen: 0,
            print_target: None,
            log_target: None,
            log_end: None,
            meter: BusMeter::default(),
        }
    }

    /// This lane's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The ring view.
    pub fn view(&self) -> RingView<'a> {
        self.view
    }

    /// This lane's counters, its bus accesses included.
    pub fn stats(&self) -> LaneStats {
        LaneStats {
            bus: self.meter.snapshot(),
            ..self.stats
        }
    }

    /// This lane's counted access to ring memory.
    #[inline]
    pub(super) fn bus(&self) -> RingBus<'a, '_> {
        RingBus::new(self.view, &self.meter)
    }

    pub(super) fn global_slot(&self, k: u32) -> Result<u32, LaneError> {
        let l = self.view.layout();
        if self.id >= l.lanes || k >= l.slots_per_lane {
            return Err(LaneError::BadSlot(k));
        }
        Ok(self.id * l.slots_per_lane + k)
    }
}

impl Drop for Lane<'_> {
    /// A device lane adds its bus counters to the process totals ([`crate::ring::bus::ring_totals`]).
    fn drop(&mut self) {
        if self.id != u32::MAX {
            crate::ring::bus::add_to_ring_totals(&self.meter.snapshot());
        }
    }
}

/// Counts a device-written word found outside the protocol (relaxed: a statistic).
pub(super) fn violation(bus: &RingBus<'_, '_>) {
    bus.local(local_off!(protocol_violations))
        .fetch_add(1, Relaxed);
}

/// Backoff between polls where the device installed no idle wait ([`super::idle`]; the CPU reference device
/// installs one on the lanes of its launches and of `run_lanes`): spin briefly, then yield, then sleep with a growing
/// interval (up to 50 µs). A yield gives the core to any runnable thread — the SQPOLL thread a lane waits for
/// included — and returns at once when there is none, so a lane waiting for one operation (a microsecond or
/// two) sees its completion without a timer's delay; only a wait that has lasted a few hundred microseconds
/// turns into sleeps, which free the cores when lanes outnumber them many times over. (A GPU lane backs off
/// with `__nanosleep` / `s_sleep` instead; the budget still counts iterations.)
#[inline]
pub fn backoff(i: u32) {
    if i < SPIN_POLLS {
        std::hint::spin_loop();
    } else if i < YIELD_POLLS {
        std::thread::yield_now();
    } else {
        let us = 1u64 << ((i - YIELD_POLLS) / 4).min(6);
        std::thread::sleep(std::time::Duration::from_micros(us.min(50)));
    }
}

/// Polls [`backoff`] spins for.
const SPIN_POLLS: u32 = 32;
/// Polls after which [`backoff`] sleeps instead of yielding.
const YIELD_POLLS: u32 = 512;

#[cfg(test)]
#[path = "lane_tests.rs"]
mod tests;
