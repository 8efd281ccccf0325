//! Bus-traffic counting for the io_queue lane side, with the ring's counters ([`crate::ring::bus`]).
//!
//! The io_queue arena is host-shared memory: the pump's host thread reads and writes it during the run. A lane
//! only loads and stores there, and every host-shared word has one writer: the request fields and the request
//! sequence are the owning lane's, the completion fields and the completion sequence the pump's (PROTOCOL.md
//! §Q2). The one word more than one lane updates with an RMW — a slot's ownership word, which allocation
//! CASes — lives in the device-local block. So a request costs host-shared loads and stores only; the
//! counters show it.

use crate::ring::bus::RegionClass;

/// The io_queue's regions, as a lane reaches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueRegion {
    /// `QueueHeader` (the pump state a waiting lane reads). Host-shared.
    Header,
    /// The request-sequence array (one word per slot, written by the slot's owner). Host-shared.
    ReqSeq,
    /// `IoSlot`s (request fields, completion fields and sequence). Host-shared.
    Slot,
    /// The device-local block (one ownership word per slot). Device-local.
    Local,
}

impl RegionClass for QueueRegion {
    const ALL: &'static [Self] = &[
        QueueRegion::Header,
        QueueRegion::ReqSeq,
        QueueRegion::Slot,
        QueueRegion::Local,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            QueueRegion::Header => "header",
            QueueRegion::ReqSeq => "req_seq",
            QueueRegion::Slot => "slot",
            QueueRegion::Local => "local",
        }
    }

    fn host_shared(self) -> bool {
        !matches!(self, QueueRegion::Local)
    }
}
