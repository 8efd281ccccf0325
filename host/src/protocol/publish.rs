//! §3 fill and publish: a filled ticket is marked in `sq_pub`'s bitmap and the published prefix advanced with
//! one device-local CAS ([`super::window`]); the lane that advanced it rings the SQ doorbell. Also the flag
//! rule of §4 and the commit paths of [`Lane`].
#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::sync::atomic::Ordering::*;

use io_uring::squeue::Flags;

use super::lane::{CompletionMode, Lane, LaneError};
use super::reserve::{hole_nop, return_credits, Reservation};
use super::shared::*;
use super::window::{ff_user_data, publish_sqe};
use crate::ring::layout::Sqe;

/// Why `IOSQE_CQE_SKIP_SUCCESS` may not come from the caller.
const WHY_CALLER_SKIP: &str = "IOSQE_CQE_SKIP_SUCCESS set by the caller: the completion mode sets it \
     (CompletionMode::SkipSuccess); in a credited mode the operation would post no CQE on success and its CQ credit \
     would never come back";
/// Why skip-success may not be linked.
const WHY_LINKED_SKIP: &str = "CompletionMode::SkipSuccess with IOSQE_IO_LINK or IOSQE_IO_HARDLINK: if it fails, the \
     kernel cancels the rest of the chain without posting their CQEs, so their CQ credits would never come back";

/// The flag rule of PROTOCOL.md §4: checked before reserving (`submit`) and again at `commit`.
pub fn check_flags(flags: u8, c: CompletionMode) -> Result<(), LaneError> {
    if flags & Flags::SKIP_SUCCESS.bits() != 0 {
        return Err(LaneError::BadFlags {
            flags,
            why: WHY_CALLER_SKIP,
        });
    }
    if c == CompletionMode::SkipSuccess
        && flags & (Flags::IO_LINK.bits() | Flags::IO_HARDLINK.bits()) != 0
    {
        return Err(LaneError::BadFlags {
            flags,
            why: WHY_LINKED_SKIP,
        });
    }
    Ok(())
}

impl<'a> Lane<'a> {
    /// Fills and publishes a reserved SQE (§3). Sets the completion mode's `user_data` and flags; returns the
    /// ticket. Refused (`BadFlags`, `BadSlot`): the reservation is published as a NOP that returns its credit,
    /// and nothing of `sqe` is submitted.
    pub fn commit(
        &mut self,
        r: Reservation<'a>,
        sqe: Sqe,
        c: CompletionMode,
    ) -> Result<u32, LaneError> {
        self.commit_line(r, sqe, c, None)
    }

    /// Publishes `sqe` exactly as given: no flags added, no flag rule applied, `user_data` kept (its tag decides
    /// how the reaper treats the CQE). This is what device code that does not follow the library could write;
    /// tests use it to show what a confined ring refuses. One convenience: a `user_data` of `TAG_SLOT | slot`
    /// with generation 0 naming one of *this lane's* slots arms that slot (as `commit` does) and is published
    /// with the armed generation, so the caller can `wait` on it. Any other `user_data` is published untouched
    /// and arms nothing (a completion it forges for another generation or lane is counted foreign, §5).
    pub fn commit_exact(&mut self, mut r: Reservation<'a>, mut sqe: Sqe) -> u32 {
        let ud = sqe.user_data;
        let l = *self.view.layout();
        let g = ud as u32;
        let own = self.id < l.lanes
            && g >= self.id * l.slots_per_lane
            && g - self.id * l.slots_per_lane < l.slots_per_lane;
        if ud & TAG_MASK == TAG_SLOT && (ud >> 32) as u32 & SLOT_GEN_MASK == 0 && own {
            sqe.user_data = self.arm(g);
        }
        r.live = false;
        self.stats.ops += 1;
        // A window violation is counted inside.
        let _ = publish_sqe(&self.bus(), r.ticket, &sqe);
        r.ticket
    }

    /// Arms global slot `g` (this lane's): bumps its generation, marks it PENDING, returns the `user_data`.
    pub(super) fn arm(&self, g: u32) -> u64 {
        let bus = self.bus();
        let (state, _, _, owner) = bus.slot(g);
        owner.store(self.id, Relaxed);
        // Relaxed: only the owner writes a FREE slot; the publication release orders the new word before the
        // kernel can complete the operation.
        let gen = next_generation(slot_generation(state.load(Relaxed)));
        state.store(slot_word(gen, RING_SLOT_PENDING), Relaxed);
        slot_user_data(g, gen)
    }

    /// The global index of this lane's completion slot `k` (for `TAG_SLOT | index` in `commit_exact`).
    pub fn slot_index(&self, k: u32) -> Result<u32, LaneError> {
        self.global_slot(k)
    }

    /// Publishes an abandoned reservation as the NOP that returns its credit (counted, unlike a dropped one).
    fn abandon(&mut self, mut r: Reservation<'a>) {
        r.live = false;
        let _ = publish_sqe(&self.bus(), r.ticket, &hole_nop(self.base_flags));
    }

    /// Sets `sqe`'s `user_data` and flags for completion mode `c` and does the mode's bookkeeping (§4).
    /// Refused: nothing was done.
    pub(super) fn prepare(
        &mut self,
        sqe: &mut Sqe,
        c: CompletionMode,
        line: Option<u32>,
    ) -> Result<(), LaneError> {
        check_flags(sqe.flags, c)?;
        let g = match c {
            CompletionMode::Slot(k) => Some(self.global_slot(k)?),
            _ => None,
        };
        sqe.flags |= self.base_flags;
        let bus = self.bus();
        let l = *self.view.layout();
        match c {
            CompletionMode::FireAndForget => {
                sqe.user_data = TAG_FF | ff_user_data(self.id, line);
                if self.id < l.lanes {
                    if let Some(j) = line {
                        // Relaxed: published by the SQ tail release before any CQE can clear it.
                        bus.lane_word(self.id, j).store(1, Relaxed);
                    }
                    bus.lane_word(self.id, l.staging_lines)
                        .fetch_add(1, Relaxed);
                }
            }
            CompletionMode::SkipSuccess => {
                sqe.flags |= Flags::SKIP_SUCCESS.bits();
                sqe.user_data = TAG_SKIP | ff_user_data(self.id, None);
                // No CQE on success: the credit goes back now; failures use the headroom (§4).
                return_credits(&bus, 1);
            }
            CompletionMode::Slot(_) => {
                if let Some(g) = g {
                    sqe.user_data = self.arm(g);
                }
            }
        }
        Ok(())
    }

    /// Undoes what `prepare` did for an SQE that was not published (counted), so this lane's flush and the
    /// host's quiesce do not wait for a CQE that cannot come.
    pub(super) fn unprepare(&mut self, c: CompletionMode, line: Option<u32>) {
        let bus = self.bus();
        let l = *self.view.layout();
        match c {
            CompletionMode::FireAndForget => {
                if self.id < l.lanes {
                    if let Some(j) = line {
                        bus.lane_word(self.id, j).store(0, Relaxed);
                    }
                    bus.lane_word(self.id, l.staging_lines)
                        .fetch_sub(1, Relaxed);
                }
                return_credits(&bus, 1);
            }
            CompletionMode::SkipSuccess => {}
            CompletionMode::Slot(k) => {
                if let Ok(g) = self.global_slot(k) {
                    let state = bus.slot(g).0;
                    let gen = slot_generation(state.load(Relaxed));
                    state.store(slot_word(gen, RING_SLOT_FREE), Relaxed);
                }
                return_credits(&bus, 1);
            }
        }
    }

    pub(super) fn commit_line(
        &mut self,
        r: Reservation<'a>,
        mut sqe: Sqe,
        c: CompletionMode,
        line: Option<u32>,
    ) -> Result<u32, LaneError> {
        let ticket = r.ticket;
        if let Err(e) = self.prepare(&mut sqe, c, line) {
            // Refused: the reservation is published as a NOP that returns the credit (§4).
            self.abandon(r);
            return Err(e);
        }
        let mut r = r;
        r.live = false;
        self.stats.ops += 1;
        if let Err(e) = publish_sqe(&self.bus(), ticket, &sqe) {
            self.unprepare(c, line);
            return Err(e);
        }
        Ok(ticket)
    }

    /// Reserve (within `budget`) and commit. Refused before reserving: a completion slot this lane does not
    /// have (`BadSlot`), flags that would leak credits (`BadFlags`, §4).
    pub fn submit(&mut self, sqe: Sqe, c: CompletionMode, budget: u32) -> Result<u32, LaneError> {
        check_flags(sqe.flags, c)?;
        if let CompletionMode::Slot(k) = c {
            self.global_slot(k)?;
        }
        let r = self.reserve(budget)?;
        self.commit(r, sqe, c)
    }
}
