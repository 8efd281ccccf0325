//! Bus-traffic counting for the io_queue lane side, with the ring's counters ([`crate::ring::bus`]).
//!
//! The whole io_queue arena is host-shared memory: the pump's host thread reads and writes it during the run.
//! Every region class below is therefore host-shared, and the lane's read-modify-writes on it — the CAS that
//! allocates or withdraws a slot and the `fetch_or` that sets a pending bit — are RMWs on host-shared memory,
//! which the ring protocol's placement rule forbids (PROTOCOL.md §1). The io_queue hand-off has not been made
//! single-writer yet; until it is, these RMWs are counted like every other access, so reports show them.

use crate::ring::bus::RegionClass;

/// The io_queue arena's regions, as a lane reaches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueRegion {
    /// `QueueHeader` (the pump state a waiting lane reads).
    Header,
    /// The pending bitmap.
    Bitmap,
    /// `IoSlot`s (state word and request/result fields).
    Slot,
}

impl RegionClass for QueueRegion {
    const ALL: &'static [Self] = &[QueueRegion::Header, QueueRegion::Bitmap, QueueRegion::Slot];

    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            QueueRegion::Header => "header",
            QueueRegion::Bitmap => "bitmap",
            QueueRegion::Slot => "slot",
        }
    }

    fn host_shared(self) -> bool {
        true
    }
}
