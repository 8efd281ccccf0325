//! The device side of the protocol in Rust: what one lane does to reserve, fill, publish, reap, wait and
//! print (PROTOCOL.md §3–§7). The CPU reference device runs this code on its threads; the GLSL and HIP/CUDA
//! implementations mirror it step by step. Comments name the spec section and the ordering of each access.
//!
//! The host runs this code too (`Lane::host`: `DeviceRing::quiesce` reaps with it), on words device code can
//! write: nothing here may panic or index out of range on such a value. A word outside what the protocol
//! allows is counted in `protocol_violations` and not acted on.
#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

use io_uring::{opcode, squeue::Flags, types};

use super::format::LineBuf;
use super::shared::*;
use crate::ctl_off;
use crate::ring::layout::{Sqe, RING_FLAG_CONFINED};
use crate::ring::RingView;

/// Why a device operation did not happen. Nothing was submitted when one of these is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
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
}

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
        }
    }
}

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
}

/// Spin budget used when a caller does not give one: on the CPU reference device about 100 s of backing off.
pub const DEFAULT_BUDGET: u32 = 1 << 21;

/// An SQ ticket held between reservation and publication (§3). It must be committed; if dropped it is
/// published as a NOP so the ring never stalls on a hole.
#[must_use = "a reservation must be committed, or the SQ stalls until it is dropped"]
pub struct Reservation<'a> {
    view: RingView<'a>,
    ticket: u32,
    base_flags: u8,
    live: bool,
}

impl Reservation<'_> {
    /// The SQ ticket.
    pub fn ticket(&self) -> u32 {
        self.ticket
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.live {
            // Fill the hole with a NOP whose CQE returns the credit.
            let mut sqe = Sqe::from_entry(&opcode::Nop::new().build());
            sqe.flags |= self.base_flags;
            sqe.user_data = TAG_FF | ff_user_data(u32::MAX, None);
            // A window violation is counted inside; nothing else can be done with the ticket.
            let _ = publish_sqe(&self.view, self.ticket, &sqe);
        }
    }
}

/// `user_data` payload of a fire-and-forget op: lane in bits 16–31 (0xffff: none), staging line + 1 in bits 0–15
/// (0: none).
fn ff_user_data(lane: u32, line: Option<u32>) -> u64 {
    (((lane & 0xffff) << 16) | line.map_or(0, |l| l + 1)) as u64
}

/// Writes SQE `ticket` and publishes it (§3 fill + publish). `Err` (counted): `sq_pub` no longer has `ticket`
/// in its window, so the SQE was written but not published.
fn publish_sqe(view: &RingView<'_>, ticket: u32, sqe: &Sqe) -> Result<(), LaneError> {
    view.write_sqe(ticket, sqe);
    let l = view.layout();
    let violations = view.ctl32(ctl_off!(protocol_violations));
    if let Some(t) = mark_and_advance(view.ctl64(ctl_off!(sq_pub)), ticket, violations)? {
        // §3.4: the kernel reads the tail with acquire; our release carries every SQE the tail covers.
        max_store_release(view.u32_at(l.sq_tail), t);
        view.ctl32(ctl_off!(doorbell)).fetch_add(1, Relaxed);
    }
    Ok(())
}

/// §3 steps 1–3 (and §5.5): sets the bit for `pos` in a (low: base, high: bitmap) word and advances the base
/// over the prefix of set bits. Returns the new base if it moved. A `pos` outside the 32-wide window (device
/// code rewrote the word) is counted in `violations` and nothing is marked.
pub(crate) fn mark_and_advance(
    word: &AtomicU64,
    pos: u32,
    violations: &AtomicU32,
) -> Result<Option<u32>, LaneError> {
    let mut old = word.load(Relaxed);
    loop {
        let base = old as u32;
        let k = pos.wrapping_sub(base);
        if k >= 32 {
            // Relaxed: a statistic; nothing is ordered by it.
            violations.fetch_add(1, Relaxed);
            return Err(LaneError::ProtocolViolation);
        }
        let bits = (old >> 32) as u32 | (1 << k);
        let m = bits.trailing_ones();
        let nbase = base.wrapping_add(m);
        let nbits = if m == 32 { 0 } else { bits >> m };
        let new = nbase as u64 | ((nbits as u64) << 32);
        // AcqRel: release publishes this lane's stores (SQE or CQE read); acquire takes in those of the lanes
        // whose bits this CAS consumes, so the base store that follows carries them all.
        match word.compare_exchange_weak(old, new, AcqRel, Relaxed) {
            Ok(_) => return Ok((m > 0).then_some(nbase)),
            Err(cur) => old = cur,
        }
    }
}

/// Moves a kernel ring index forward to `v` unless it is already at or past it (wrapping compare).
pub(crate) fn max_store_release(word: &AtomicU32, v: u32) {
    let mut cur = word.load(Relaxed);
    while (v.wrapping_sub(cur) as i32) > 0 {
        match word.compare_exchange_weak(cur, v, Release, Relaxed) {
            Ok(_) => return,
            Err(x) => cur = x,
        }
    }
}

/// One lane of a device.
pub struct Lane<'a> {
    view: RingView<'a>,
    id: u32,
    base_flags: u8,
    line: LineBuf,
    next_line: u32,
    stream_pending: Option<u32>,
    stats: LaneStats,
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

    /// The host's own lane: it may reap, drain and flush, but owns no slots or staging lines.
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

    /// This lane's counters.
    pub fn stats(&self) -> LaneStats {
        self.stats
    }

    fn global_slot(&self, k: u32) -> Result<u32, LaneError> {
        let l = self.view.layout();
        if self.id >= l.lanes || k >= l.slots_per_lane {
            return Err(LaneError::BadSlot(k));
        }
        Ok(self.id * l.slots_per_lane + k)
    }

    // ---- §4 credits -------------------------------------------------------------------------------

    /// Counts a device-written word found outside the protocol (relaxed: a statistic).
    fn violation(&self) {
        self.view
            .ctl32(ctl_off!(protocol_violations))
            .fetch_add(1, Relaxed);
    }

    fn take_credit(&mut self) -> bool {
        let c = self.view.ctl32(ctl_off!(cq_credits));
        let pool = self.view.layout().credit_pool;
        for _ in 0..RESERVE_TRIES {
            let cur = c.load(Relaxed);
            if cur == 0 {
                break;
            }
            if cur > pool {
                // More credits than the pool holds: device code rewrote the word (§4).
                self.violation();
                break;
            }
            if c.compare_exchange_weak(cur, cur - 1, Relaxed, Relaxed)
                .is_ok()
            {
                return true;
            }
        }
        self.stats.no_credit += 1;
        false
    }

    // ---- §3 reservation ---------------------------------------------------------------------------

    fn take_ticket(&mut self) -> Option<u32> {
        let v = self.view;
        let l = v.layout();
        let reserve = v.ctl32(ctl_off!(sq_reserve));
        for _ in 0..RESERVE_TRIES {
            let r = reserve.load(Relaxed);
            // Acquire: the kernel has finished reading every SQE before `head`.
            let head = v.u32_at(l.sq_head).load(Acquire);
            let published = v.ctl64(ctl_off!(sq_pub)).load(Acquire) as u32;
            // `r` was read first, and head and the published tail only move forward and never pass a
            // reservation: `r` ahead of the head by more than the SQ, or of the published tail by more than
            // the window, means device code rewrote a word (§3). (A stale `r` is behind, not ahead.)
            if r.wrapping_sub(head) as i32 > l.sq_entries as i32
                || r.wrapping_sub(published) as i32 > l.w_sq as i32
            {
                self.violation();
                return None;
            }
            let next = r.wrapping_add(1);
            if next.wrapping_sub(head) > l.sq_entries {
                self.stats.sq_full += 1;
                return None;
            }
            if next.wrapping_sub(published) > l.w_sq {
                self.stats.window_full += 1;
                return None;
            }
            if reserve
                .compare_exchange_weak(r, next, Relaxed, Relaxed)
                .is_ok()
            {
                return Some(r);
            }
        }
        None
    }

    /// One attempt to reserve an SQ slot with its CQ credit. Never waits.
    pub fn try_reserve(&mut self) -> Result<Reservation<'a>, LaneError> {
        if !self.take_credit() {
            return Err(LaneError::WouldBlock);
        }
        match self.take_ticket() {
            Some(ticket) => Ok(Reservation {
                view: self.view,
                ticket,
                base_flags: self.base_flags,
                live: true,
            }),
            None => {
                self.view.ctl32(ctl_off!(cq_credits)).fetch_add(1, Relaxed);
                Err(LaneError::WouldBlock)
            }
        }
    }

    /// Reserves, reaping and backing off between attempts, for at most `budget` attempts.
    pub fn reserve(&mut self, budget: u32) -> Result<Reservation<'a>, LaneError> {
        let mut i = 0;
        loop {
            match self.try_reserve() {
                Ok(r) => return Ok(r),
                Err(LaneError::WouldBlock) => {
                    // Always reap before giving up: with a zero budget this is what frees credits.
                    self.reap(16);
                    if i >= budget {
                        return Err(LaneError::TimedOut);
                    }
                    backoff(i);
                    i += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

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
        let (ud, v) = (sqe.user_data, self.view);
        let l = v.layout();
        let g = ud as u32;
        let own = self.id < l.lanes
            && g >= self.id * l.slots_per_lane
            && g - self.id * l.slots_per_lane < l.slots_per_lane;
        if ud & TAG_MASK == TAG_SLOT && (ud >> 32) as u32 & SLOT_GEN_MASK == 0 && own {
            sqe.user_data = self.arm(g);
        }
        r.live = false;
        // A window violation is counted inside.
        let _ = publish_sqe(&v, r.ticket, &sqe);
        r.ticket
    }

    /// Arms global slot `g` (this lane's): bumps its generation, marks it PENDING, returns the `user_data`.
    fn arm(&self, g: u32) -> u64 {
        let v = self.view;
        let (state, _, _, owner) = v.slot(g);
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

    fn commit_line(
        &mut self,
        mut r: Reservation<'a>,
        mut sqe: Sqe,
        c: CompletionMode,
        line: Option<u32>,
    ) -> Result<u32, LaneError> {
        let v = self.view;
        let ticket = r.ticket;
        // Refused: `r` drops and is published as a NOP that returns the credit (§4).
        check_flags(sqe.flags, c)?;
        sqe.flags |= self.base_flags;
        match c {
            CompletionMode::FireAndForget => {
                sqe.user_data = TAG_FF | ff_user_data(self.id, line);
                if self.id < v.layout().lanes {
                    if let Some(j) = line {
                        // Relaxed: published by the SQ tail release before any CQE can clear it.
                        v.u32_at(v.layout().lane_word(self.id, j)).store(1, Relaxed);
                    }
                    let l = v.layout();
                    v.u32_at(l.lane_word(self.id, l.staging_lines))
                        .fetch_add(1, Relaxed);
                }
            }
            CompletionMode::SkipSuccess => {
                sqe.flags |= Flags::SKIP_SUCCESS.bits();
                sqe.user_data = TAG_SKIP | ff_user_data(self.id, None);
                // No CQE on success: the credit goes back now; failures use the headroom (§4).
                v.ctl32(ctl_off!(cq_credits)).fetch_add(1, Relaxed);
            }
            CompletionMode::Slot(k) => {
                // On error `r` drops and is published as a NOP.
                let g = self.global_slot(k)?;
                sqe.user_data = self.arm(g);
            }
        }
        r.live = false;
        if let Err(e) = publish_sqe(&v, ticket, &sqe) {
            // Not published (counted): undo what the mode did, so this lane's flush and the host's quiesce
            // do not wait for a CQE that cannot come.
            let l = v.layout();
            match c {
                CompletionMode::FireAndForget => {
                    if self.id < l.lanes {
                        if let Some(j) = line {
                            v.u32_at(l.lane_word(self.id, j)).store(0, Relaxed);
                        }
                        v.u32_at(l.lane_word(self.id, l.staging_lines))
                            .fetch_sub(1, Relaxed);
                    }
                    v.ctl32(ctl_off!(cq_credits)).fetch_add(1, Relaxed);
                }
                CompletionMode::SkipSuccess => {}
                CompletionMode::Slot(k) => {
                    if let Ok(g) = self.global_slot(k) {
                        let state = v.slot(g).0;
                        let gen = slot_generation(state.load(Relaxed));
                        state.store(slot_word(gen, RING_SLOT_FREE), Relaxed);
                    }
                    v.ctl32(ctl_off!(cq_credits)).fetch_add(1, Relaxed);
                }
            }
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

    // ---- operations ---------------------------------------------------------------------------------

    /// A NOP.
    pub fn nop(&mut self, c: CompletionMode, budget: u32) -> Result<u32, LaneError> {
        self.submit(Sqe::from_entry(&opcode::Nop::new().build()), c, budget)
    }

    /// Builds a write SQE from arena bytes `[arena_off, arena_off + len)`: WRITE_FIXED when they lie in the
    /// staging or fixed region, plain WRITE otherwise. `file_off` −1 means "at the file position".
    pub fn write_sqe(&self, file: FileRef, arena_off: u32, len: u32, file_off: i64) -> Sqe {
        let addr = self.view.host_addr(arena_off) as *const u8;
        let buf = self.buf_index(arena_off, len);
        let e = match (file, buf) {
            (FileRef::Raw(fd), Some(b)) => opcode::WriteFixed::new(types::Fd(fd), addr, len, b)
                .offset(file_off as u64)
                .build(),
            (FileRef::Fixed(i), Some(b)) => opcode::WriteFixed::new(types::Fixed(i), addr, len, b)
                .offset(file_off as u64)
                .build(),
            (FileRef::Raw(fd), None) => opcode::Write::new(types::Fd(fd), addr, len)
                .offset(file_off as u64)
                .build(),
            (FileRef::Fixed(i), None) => opcode::Write::new(types::Fixed(i), addr, len)
                .offset(file_off as u64)
                .build(),
        };
        Sqe::from_entry(&e)
    }

    /// Builds a READ_FIXED SQE into the fixed region at `fixed_off`.
    pub fn read_fixed_sqe(&self, file: FileRef, fixed_off: u32, len: u32, file_off: u64) -> Sqe {
        let l = self.view.layout();
        let addr = self.view.host_addr(l.fixed + fixed_off) as *mut u8;
        let idx = l.fixed_buf_index as u16;
        let e = match file {
            FileRef::Raw(fd) => opcode::ReadFixed::new(types::Fd(fd), addr, len, idx),
            FileRef::Fixed(i) => opcode::ReadFixed::new(types::Fixed(i), addr, len, idx),
        }
        .offset(file_off)
        .build();
        Sqe::from_entry(&e)
    }

    fn buf_index(&self, off: u32, len: u32) -> Option<u16> {
        let l = self.view.layout();
        let end = off as u64 + len as u64;
        let staging_end = l.staging as u64 + (l.lanes * l.staging_lines * l.line_bytes) as u64;
        if off >= l.staging && end <= staging_end {
            Some(l.staging_buf_index as u16)
        } else if l.fixed_size > 0 && off >= l.fixed && end <= l.fixed as u64 + l.fixed_size as u64
        {
            Some(l.fixed_buf_index as u16)
        } else {
            None
        }
    }

    /// Writes arena bytes to a file.
    pub fn write(
        &mut self,
        file: FileRef,
        arena_off: u32,
        len: u32,
        file_off: i64,
        c: CompletionMode,
        budget: u32,
    ) -> Result<u32, LaneError> {
        let sqe = self.write_sqe(file, arena_off, len, file_off);
        self.submit(sqe, c, budget)
    }

    /// Reads a file range into the fixed region at `fixed_off` (waited op on slot `k`).
    pub fn read_fixed(
        &mut self,
        file: FileRef,
        fixed_off: u32,
        len: u32,
        file_off: u64,
        k: u32,
        budget: u32,
    ) -> Result<u32, LaneError> {
        let sqe = self.read_fixed_sqe(file, fixed_off, len, file_off);
        self.submit(sqe, CompletionMode::Slot(k), budget)
    }

    // ---- §5 reaping ---------------------------------------------------------------------------------

    /// Reaps up to `max` CQEs into their slots / counters. Returns how many.
    pub fn reap(&mut self, max: u32) -> u32 {
        let v = self.view;
        let l = *v.layout();
        let claim = v.ctl32(ctl_off!(cq_claim));
        let violations = v.ctl32(ctl_off!(protocol_violations));
        let mut n = 0;
        let mut tries = 0;
        while n < max && tries < max.saturating_add(RESERVE_TRIES) {
            tries += 1;
            let c = claim.load(Relaxed);
            // Acquire: every CQE before the tail is written.
            let tail = v.u32_at(l.cq_tail).load(Acquire);
            if c == tail {
                break;
            }
            let released = v.ctl64(ctl_off!(cq_pub)).load(Relaxed) as u32;
            // `c` was read first; the tail and the released head only move forward and never pass a claim.
            // A claim ahead of the tail, or ahead of the released head by more than the window, means device
            // code rewrote a word (§5): counted, and this reap stops. (A stale `c` is behind, not ahead.)
            if c.wrapping_sub(tail) as i32 > 0 || c.wrapping_sub(released) as i32 > l.w_cq as i32 {
                violations.fetch_add(1, Relaxed);
                break;
            }
            if c.wrapping_sub(released) >= l.w_cq {
                break;
            }
            if claim
                .compare_exchange_weak(c, c.wrapping_add(1), Relaxed, Relaxed)
                .is_err()
            {
                continue;
            }
            let cqe = v.read_cqe(c);
            self.dispatch(cqe.user_data, cqe.res, cqe.flags);
            n += 1;
            match mark_and_advance(v.ctl64(ctl_off!(cq_pub)), c, violations) {
                // Release: we (and the lanes whose bits we consumed) are done reading those CQEs.
                Ok(Some(h)) => max_store_release(v.u32_at(l.cq_head), h),
                Ok(None) => {}
                // `cq_pub` was rewritten under us (counted): stop reaping.
                Err(_) => break,
            }
        }
        self.stats.reaped += n as u64;
        n
    }

    fn dispatch(&mut self, ud: u64, res: i32, flags: u32) {
        let v = self.view;
        let l = v.layout();
        let credits = v.ctl32(ctl_off!(cq_credits));
        match ud & TAG_MASK {
            TAG_SLOT => {
                let (g, gen) = (ud as u32, (ud >> 32) as u32 & SLOT_GEN_MASK);
                let mut delivered = false;
                if g < l.nslots() {
                    let (state, result, fl, _) = v.slot(g);
                    // Claim the slot: only a PENDING slot of the same generation takes the CQE, and only once
                    // (a duplicate or late CQE finds REAPING, DONE, FREE or another generation). Relaxed: the
                    // owner's PENDING store reached us through the kernel (SQ tail release, CQ tail acquire).
                    if state
                        .compare_exchange(
                            slot_word(gen, RING_SLOT_PENDING),
                            slot_word(gen, RING_SLOT_REAPING),
                            Relaxed,
                            Relaxed,
                        )
                        .is_ok()
                    {
                        result.store(res, Relaxed);
                        fl.store(flags, Relaxed);
                        // Release: the owner's acquire of DONE sees result and flags.
                        state.store(slot_word(gen, RING_SLOT_DONE), Release);
                        delivered = true;
                    }
                }
                if !delivered {
                    // A stale or forged completion (another generation, no such slot): counted and recorded,
                    // never delivered.
                    v.ctl32(ctl_off!(foreign_cqes)).fetch_add(1, Relaxed);
                    self.record_failure(ud, res);
                }
                // Every TAG_SLOT CQE was paid for by a reservation's credit (§4), delivered or not.
                credits.fetch_add(1, Relaxed);
            }
            TAG_FF => {
                let lane = (ud as u32) >> 16;
                let line = ud as u32 & 0xffff;
                if res < 0 {
                    self.record_failure(ud, res);
                    if line != 0 {
                        v.ctl32(ctl_off!(print_errors)).fetch_add(1, Relaxed);
                    }
                }
                if lane < l.lanes {
                    if line != 0 && line <= l.staging_lines {
                        // Release: the kernel is done with the line; its owner may refill it.
                        v.u32_at(l.lane_word(lane, line - 1)).store(0, Release);
                    }
                    v.u32_at(l.lane_word(lane, l.staging_lines))
                        .fetch_sub(1, Release);
                }
                credits.fetch_add(1, Relaxed);
            }
            TAG_SKIP => {
                // Only failures of skip-success ops post; they hold no credit.
                v.ctl32(ctl_off!(skip_failures)).fetch_add(1, Relaxed);
                self.record_failure(ud, res);
            }
            _ => {
                // A CQE no lane recognises: counted and recorded, never dropped silently.
                v.ctl32(ctl_off!(foreign_cqes)).fetch_add(1, Relaxed);
                self.record_failure(ud, res);
            }
        }
    }

    fn record_failure(&self, ud: u64, res: i32) {
        let v = self.view;
        v.ctl32(ctl_off!(ff_errors)).fetch_add(1, Relaxed);
        v.i32_at(v.layout().control + ctl_off!(ff_last_error))
            .store(res, Relaxed);
        v.ctl64(ctl_off!(ff_last_user_data)).store(ud, Relaxed);
    }

    /// Fire-and-forget operations of this lane still in flight.
    pub fn in_flight(&self) -> u32 {
        let l = self.view.layout();
        if self.id >= l.lanes {
            return 0;
        }
        self.view
            .u32_at(l.lane_word(self.id, l.staging_lines))
            .load(Acquire)
    }

    fn wait_until(
        &mut self,
        budget: u32,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<(), LaneError> {
        let mut i = 0;
        loop {
            if done(self) {
                return Ok(());
            }
            self.reap(16);
            if done(self) {
                return Ok(());
            }
            if i >= budget {
                return Err(LaneError::TimedOut);
            }
            backoff(i);
            i += 1;
        }
    }

    // ---- §6 waiting ---------------------------------------------------------------------------------

    /// One reap pass, then checks slot `k`. A `Ready` slot is freed.
    pub fn poll(&mut self, k: u32) -> Result<Poll, LaneError> {
        let g = self.global_slot(k)?;
        self.reap(16);
        let (state, result, _, _) = self.view.slot(g);
        let word = state.load(Acquire);
        // A state no value names (device code rewrote the word) reads as still in flight, like PENDING.
        match RingSlotState::try_from(slot_state(word)) {
            Ok(RingSlotState::Done) => {
                let r = result.load(Relaxed);
                state.store(slot_word(slot_generation(word), RING_SLOT_FREE), Relaxed);
                Ok(Poll::Ready(r))
            }
            Ok(RingSlotState::Free) => Err(LaneError::NotPending(k)),
            Ok(RingSlotState::Pending | RingSlotState::Reaping) | Err(_) => Ok(Poll::WouldBlock),
        }
    }

    /// Polls slot `k` up to `budget` times.
    pub fn wait(&mut self, k: u32, budget: u32) -> Result<i32, LaneError> {
        for i in 0..budget.max(1) {
            if let Poll::Ready(r) = self.poll(k)? {
                return Ok(r);
            }
            backoff(i);
        }
        Err(LaneError::TimedOut)
    }

    /// Whether slot `k` has an operation in flight.
    pub fn slot_pending(&self, k: u32) -> Result<bool, LaneError> {
        let g = self.global_slot(k)?;
        let st = RingSlotState::try_from(slot_state(self.view.slot(g).0.load(Acquire)));
        Ok(matches!(
            st,
            Ok(RingSlotState::Pending | RingSlotState::Reaping)
        ))
    }

    // ---- §7 prints -----------------------------------------------------------------------------------

    /// Formats one line with `f` and writes it with one write (a `\n` is appended if missing). Returns
    /// `TimedOut` (the line is not printed) if it could not be submitted within `budget`.
    pub fn print_with(
        &mut self,
        budget: u32,
        f: impl FnOnce(&mut LineBuf),
    ) -> Result<(), LaneError> {
        let v = self.view;
        let l = *v.layout();
        let pflags = v.ctl32(ctl_off!(print_flags)).load(Acquire);
        if pflags == 0 || self.id >= l.lanes {
            return Err(LaneError::NoPrintTarget);
        }
        let offset_mode = pflags & PRINT_OFFSET_MODE != 0;
        let j = self.next_line % l.staging_lines;
        // Make the staging line reusable (no lane-to-lane wait: only the kernel and drains are waited on).
        if offset_mode {
            let w = v.u32_at(l.lane_word(self.id, j));
            // Acquire: pairs with the reaper's release once the kernel is done reading the line.
            self.wait_until(budget, |_| w.load(Acquire) == 0)?;
        } else {
            self.finish_stream_print(budget)?;
        }
        self.line.clear();
        f(&mut self.line);
        self.line.finish();
        let line_off = v.line_off(self.id, j);
        v.write_bytes(line_off, self.line.as_bytes());
        let len = self.line.as_bytes().len() as u32;
        let fd = v.ctl32(ctl_off!(print_fd)).load(Relaxed) as i32;
        let file = if pflags & PRINT_FIXED_FILE != 0 {
            FileRef::Fixed(fd as u32)
        } else {
            FileRef::Raw(fd)
        };
        let r = self.reserve(budget)?;
        // Reservation held: straight-line code until commit.
        if offset_mode {
            let off = v
                .ctl64(ctl_off!(print_offset))
                .fetch_add(len as u64, Relaxed);
            let sqe = self.write_sqe(file, line_off, len, off as i64);
            self.commit_line(r, sqe, CompletionMode::FireAndForget, Some(j))?;
        } else {
            let sqe = self.write_sqe(file, line_off, len, -1);
            self.commit(r, sqe, CompletionMode::Slot(0))?;
            self.stream_pending = Some(len);
        }
        self.next_line = self.next_line.wrapping_add(1);
        self.stats.lines += 1;
        v.ctl32(ctl_off!(lines_printed)).fetch_add(1, Relaxed);
        Ok(())
    }

    fn finish_stream_print(&mut self, budget: u32) -> Result<(), LaneError> {
        if let Some(len) = self.stream_pending {
            let res = self.wait(0, budget)?;
            self.stream_pending = None;
            if res != len as i32 {
                // A failed or short line write: counted where host and device read it.
                self.view
                    .ctl32(ctl_off!(print_errors))
                    .fetch_add(1, Relaxed);
                if res < 0 {
                    self.view
                        .i32_at(self.view.layout().control + ctl_off!(ff_last_error))
                        .store(res, Relaxed);
                }
            }
        }
        Ok(())
    }

    /// Waits until every fire-and-forget operation of this lane has completed and its last stream print is
    /// done (§7 flush). The host lane waits until every credit is back.
    pub fn flush(&mut self, budget: u32) -> Result<(), LaneError> {
        let l = *self.view.layout();
        if self.id < l.lanes {
            self.finish_stream_print(budget)?;
            self.wait_until(budget, |s| s.in_flight() == 0)
        } else {
            let credits = self.view.ctl32(ctl_off!(cq_credits));
            self.wait_until(budget, |_| credits.load(Acquire) == l.credit_pool)
        }
    }
}

/// Backoff between polls on the CPU reference device: spin briefly, then yield, then sleep with a growing
/// interval (up to 50 µs). Lanes usually outnumber cores many times over, and a lane that keeps the CPU busy
/// while it waits starves the SQPOLL thread it is waiting for. (A GPU lane backs off with `__nanosleep` /
/// `s_sleep` instead; the budget still counts iterations.)
#[inline]
pub fn backoff(i: u32) {
    if i < 16 {
        std::hint::spin_loop();
    } else if i < 32 {
        std::thread::yield_now();
    } else {
        let us = 1u64 << ((i - 32) / 4).min(6);
        std::thread::sleep(std::time::Duration::from_micros(us.min(50)));
    }
}

#[cfg(test)]
#[path = "lane_tests.rs"]
mod tests;
