//! What a run of a built-in program reports.

use std::time::Duration;

use super::run_buffer::LaneState;

/// Per-lane result of a program.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LaneReport {
    /// Operations completed (lines printed, NOPs, writes, chunks read).
    pub done: u64,
    /// Operations that failed or could not be submitted within their budget.
    pub failed: u64,
    /// Checksum (Read) or 0.
    pub checksum: u64,
    /// Bytes moved.
    pub bytes: u64,
}

/// Result of running a program.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// One entry per lane.
    pub lanes: Vec<LaneReport>,
    /// Wall time of the dispatch.
    pub elapsed: Duration,
    /// Dispatches it took (1 on devices that run a program in one go; resumable devices re-dispatch).
    pub dispatches: u32,
    /// Every lane's final state in the run buffer (dispatch counts, loop iterations, phases), for tests and
    /// experiments that look inside; a device without a run buffer fills what it knows (counters, finished).
    pub states: Vec<LaneState>,
}

impl RunReport {
    /// Sum over lanes.
    pub fn total(&self) -> LaneReport {
        let mut t = LaneReport::default();
        for l in &self.lanes {
            t.done += l.done;
            t.failed += l.failed;
            t.checksum = t.checksum.wrapping_add(l.checksum);
            t.bytes += l.bytes;
        }
        t
    }
}
