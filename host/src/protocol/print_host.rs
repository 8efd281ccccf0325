//! The host's part of §7 group-commit prints, after a run (on the device-local block's host copy, PROTOCOL.md
//! §9): it waits for a log write still in flight, then writes every completed but unsubmitted range itself
//! (`write(2)`, or `pwrite(2)` at the range's device-assigned offset) — those a holder handed on or left when
//! its run ended, faulted or timed out — and reports the ranges that were reserved but never completed. Then the
//! log is empty again for the next run. Every word read here is device-written: checked, never trusted.
#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::os::fd::RawFd;
use std::sync::atomic::Ordering::*;
use std::time::{Duration, Instant};

use super::print_log::{finish_write, LogTarget};
use super::reap::reap_into;
use super::shared::*;
use crate::local_off;
use crate::ring::bus::{BusMeter, RingBus};
use crate::ring::RingView;

/// What the host found and did in the print log after runs (PROTOCOL.md §7), summed over
/// [`super::DeviceRing::finish_prints`] and quiesce calls.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PrintLogReport {
    /// Writes lanes submitted from the log (so lines / writes is the lines per write).
    pub device_writes: u64,
    /// Short writes whose remainder a holder resubmitted.
    pub short_writes: u64,
    /// Completed ranges the host wrote itself after a run (bytes): left by a handed-on duty, a timeout or a
    /// fault.
    pub host_bytes: u64,
    /// Of those, ranges that were complete after an incomplete one (written after the gap, in log order).
    pub ranges_after_gap: u64,
    /// Ranges reserved but never completed (their lane stopped between reservation and completion): not
    /// written; in offset mode their bytes stay a gap in the file.
    pub incomplete_ranges: u64,
    /// Bytes of those ranges.
    pub incomplete_bytes: u64,
    /// A log write was still in flight when the host gave up waiting: nothing after it was written.
    pub write_in_flight: bool,
    /// Host writes that failed (bytes dropped, counted).
    pub host_errors: u64,
    /// Log words outside what the protocol allows (counted as violations too).
    pub violations: u64,
}

impl PrintLogReport {
    pub(super) fn add(&mut self, o: &PrintLogReport) {
        self.device_writes += o.device_writes;
        self.short_writes += o.short_writes;
        self.host_bytes += o.host_bytes;
        self.ranges_after_gap += o.ranges_after_gap;
        self.incomplete_ranges += o.incomplete_ranges;
        self.incomplete_bytes += o.incomplete_bytes;
        self.write_in_flight |= o.write_in_flight;
        self.host_errors += o.host_errors;
        self.violations += o.violations;
    }
}

/// Finishes the print log after a run (see the module docs). `fd` is the print target's descriptor.
pub(super) fn host_finish(view: RingView<'_>, fd: RawFd, deadline: Instant) -> PrintLogReport {
    let meter = BusMeter::default();
    let bus = RingBus::new(view, &meter);
    let mut rep = PrintLogReport::default();
    let Some(t) = LogTarget::read(&bus) else {
        return rep;
    };
    let bell = bus.local(local_off!(log_bell));
    let wstate = bus.local(local_off!(log_wstate));
    // The run is over: nobody holds the duty, even if a lane stopped holding it (fault, timeout).
    bell.store(BELL_LOCK, Relaxed);
    let mut tail = 0u32;
    loop {
        let sw = wstate.load(Acquire);
        match slot_state(sw) {
            RING_SLOT_PENDING | RING_SLOT_REAPING => {
                reap_into(&bus, 64, &mut tail);
                if Instant::now() > deadline {
                    // The kernel may still read those bytes: leave everything for a later call.
                    rep.write_in_flight = true;
                    bell.store(BELL_DIRTY, Release);
                    return rep;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            RING_SLOT_DONE => finish_write(&bus, &t, sw),
            _ => break,
        }
    }
    let log_pub = bus.local64(local_off!(log_pub)).load(Acquire);
    let (d, c, bits) = (
        log_pub as u32,
        (log_pub >> 32) as u16,
        (log_pub >> 48) as u16,
    );
    let res = bus.local64(local_off!(log_reserve)).load(Acquire);
    let (r, n) = (res as u32, (res >> 32) as u16);
    let written = bus.local(local_off!(log_written)).load(Relaxed);
    let outstanding = n.wrapping_sub(c) as u32;
    if d.wrapping_sub(written) > t.size || r.wrapping_sub(d) > t.size || outstanding > LOG_TICKETS {
        rep.violations += 1;
        bus.local(local_off!(protocol_violations))
            .fetch_add(1, Relaxed);
        bell.store(0, Release);
        return rep;
    }
    let offset_mode = t.flags & PRINT_OFFSET_MODE != 0;
    let file_base = bus.local64(local_off!(print_offset)).load(Relaxed);
    // In offset mode log byte `p` goes to file offset `file_base + (p - written)` (reserved bytes map to the
    // file one to one, gaps included).
    let file_at = |p: u32| file_base.wrapping_add(p.wrapping_sub(written) as u64);
    // The completed prefix nobody submitted.
    host_write(
        &view,
        &t,
        fd,
        written,
        d,
        offset_mode.then(|| file_at(written)),
        &mut rep,
        deadline,
    );
    // Tickets after the prefix: complete ones after a gap are written in log order; the others are reported.
    let mut pos = d;
    for k in 0..outstanding {
        let tk = c.wrapping_add(k as u16);
        let i = (tk as u32 % LOG_TICKETS) * 4;
        let start = bus.local(local_off!(log_starts) + i).load(Acquire);
        let end = bus.local(local_off!(log_ends) + i).load(Acquire);
        if start.wrapping_sub(pos) > t.size || end.wrapping_sub(start) > t.size {
            rep.violations += 1;
            break;
        }
        if bits & (1 << k) != 0 {
            rep.ranges_after_gap += 1;
            host_write(
                &view,
                &t,
                fd,
                start,
                end,
                offset_mode.then(|| file_at(start)),
                &mut rep,
                deadline,
            );
        } else {
            rep.incomplete_ranges += 1;
            rep.incomplete_bytes += end.wrapping_sub(start) as u64;
        }
        pos = end;
    }
    // The log is empty again: everything reserved is accounted for.
    if offset_mode {
        bus.local64(local_off!(print_offset))
            .store(file_at(r), Relaxed);
    }
    bus.local64(local_off!(log_pub))
        .store(r as u64 | (n as u64) << 32, Relaxed);
    bus.local(local_off!(log_sub)).store(r, Relaxed);
    bus.local(local_off!(log_written)).store(r, Release);
    for (word, into) in [
        (local_off!(log_writes), &mut rep.device_writes),
        (local_off!(log_short_writes), &mut rep.short_writes),
    ] {
        let w = bus.local(word);
        *into = w.load(Relaxed) as u64;
        w.store(0, Relaxed);
    }
    bell.store(0, Release);
    rep
}

/// Writes log bytes `[from, to)` to `fd` (at `file_off` onwards in offset mode), split at the log's end;
/// retries short writes and EINTR/EAGAIN until `deadline`; a failure drops the rest of the range (counted).
#[allow(clippy::too_many_arguments)]
fn host_write(
    view: &RingView<'_>,
    t: &LogTarget,
    fd: RawFd,
    from: u32,
    to: u32,
    mut file_off: Option<u64>,
    rep: &mut PrintLogReport,
    deadline: Instant,
) {
    let mut p = from;
    while p != to {
        let off = p & (t.size - 1);
        let len = to.wrapping_sub(p).min(t.size - off);
        let addr = view.host_addr(t.base + off) as *const libc::c_void;
        // SAFETY: `[t.base + off, + len)` lies inside the arena (`LogTarget::read` checked the log's place),
        // which stays mapped while `view` lives; the kernel only reads it.
        let w = unsafe {
            match file_off {
                Some(o) => libc::pwrite(fd, addr, len as usize, o as libc::off_t),
                None => libc::write(fd, addr, len as usize),
            }
        };
        if w > 0 {
            let w = (w as u32).min(len);
            p = p.wrapping_add(w);
            rep.host_bytes += w as u64;
            file_off = file_off.map(|o| o + w as u64);
            continue;
        }
        let err = std::io::Error::last_os_error().raw_os_error();
        if w < 0
            && matches!(err, Some(libc::EINTR) | Some(libc::EAGAIN))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_micros(50));
            continue;
        }
        rep.host_errors += 1;
        return;
    }
}
