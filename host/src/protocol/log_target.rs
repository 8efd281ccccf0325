//! The print log's target and the duty holder's caches (PROTOCOL.md §7.1), apart from the print path so the
//! lane can hold them without a module loop.
#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::sync::atomic::Ordering::*;

use super::shared::*;
use crate::ring::bus::RingBus;
use crate::{local_off, shared_off};

/// Where the print log lives and what it writes to, read from `SharedControl` (host-written before a run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogTarget {
    /// Arena offset of the log bytes.
    pub base: u32,
    /// Log size (a power of two).
    pub size: u32,
    /// `PRINT_*` flags.
    pub flags: u32,
    /// The print target (fixed-file index or raw fd).
    pub fd: i32,
}

impl LogTarget {
    /// The log target, if prints go through the log (`PRINT_LOG`) and the log's words are sane (host-shared
    /// words device code could rewrite: a log outside the arena is counted as a violation and not used).
    pub(crate) fn read(bus: &RingBus<'_, '_>) -> Option<LogTarget> {
        // Acquire: pairs with the host's release store of the flags after the target and the log's place.
        let flags = bus.mirror(shared_off!(print_flags)).load(Acquire);
        if flags & PRINT_LOG == 0 {
            return None;
        }
        let fd = bus.mirror_i32(shared_off!(print_fd)).load(Relaxed);
        let base = bus.mirror(shared_off!(print_log)).load(Relaxed);
        let size = bus.mirror(shared_off!(print_log_bytes)).load(Relaxed);
        let l = bus.view().layout();
        if !size.is_power_of_two()
            || size < 4096
            || base < l.staging
            || base as u64 + size as u64 > l.arena_size
        {
            // Relaxed: a statistic.
            bus.local(local_off!(protocol_violations))
                .fetch_add(1, Relaxed);
            return None;
        }
        Some(LogTarget {
            base,
            size,
            flags,
            fd,
        })
    }
}

/// The holder's cached kernel indices (its own or the lane's).
pub(crate) struct Caches<'c> {
    pub cq_tail: &'c mut u32,
    pub sq_head: &'c mut u32,
    /// The §5 reap pass the holder runs while it waits (passed in: the reap pass itself takes duties).
    pub reap: fn(&RingBus<'_, '_>, u32, &mut u32) -> u32,
}
