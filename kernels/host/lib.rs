//! The host C++ target of the gpu-uring device library (`kernels/`): the same headers and program bodies the
//! CUDA/HIP kernels compile, built with the system C++ compiler and reached through `extern "C"`. This crate
//! exists for its tests: the §7 formatting oracle against the Rust formatter, the portability layer's
//! atomics, subgroup and backoff on the CPU, and the C++ protocol lanes (`gpu_uring/ring.h`) on a real ring.
//! See kernels/README.md.

use std::sync::atomic::{AtomicU32, AtomicU64};

/// A memory order, as the library's `gu::mo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Order {
    /// `gu::mo::relaxed`
    Relaxed = 0,
    /// `gu::mo::acquire`
    Acquire = 1,
    /// `gu::mo::release`
    Release = 2,
    /// `gu::mo::acq_rel`
    AcqRel = 3,
    /// `gu::mo::seq_cst`
    SeqCst = 4,
}

impl Order {
    /// Every order.
    pub const ALL: [Order; 5] = [
        Order::Relaxed,
        Order::Acquire,
        Order::Release,
        Order::AcqRel,
        Order::SeqCst,
    ];
}

mod ffi {
    extern "C" {
        pub fn gu_host_format_probe(records: *mut u8, count: u32);
        pub fn gu_host_print_line(lane: u32, seq: u32, out: *mut u8, cap: u32) -> u32;
        pub fn gu_host_format_args(out: *mut u8, cap: u32) -> u32;
        pub fn gu_host_line_str(
            text: *const u8,
            out: *mut u8,
            cap: u32,
            truncated: *mut u32,
        ) -> u32;
        pub fn gu_local_u32_cas(p: *mut u32, expected: *mut u32, desired: u32, o: u32) -> u32;
        pub fn gu_local_i32_fetch_add(p: *mut i32, v: i32, o: u32) -> i32;
        pub fn gu_local_u64_cas(p: *mut u64, expected: *mut u64, desired: u64, o: u32) -> u32;
        pub fn gu_fence_device(o: u32);
        pub fn gu_fence_system(o: u32);
        pub fn gu_host_subgroup(v: u32, out: *mut u32);
        pub fn gu_host_backoff(pauses: u32) -> u32;
        pub fn gu_host_subgroup_collectives(v: u32, out: *mut u32);
        pub fn gu_host_take_rmws() -> u64;
        pub fn gu_host_team_new(lanes: u32) -> *mut core::ffi::c_void;
        pub fn gu_host_team_free(team: *mut core::ffi::c_void);
        pub fn gu_host_team_join(team: *mut core::ffi::c_void, lane: u32);
        pub fn gu_host_ticket_lane(local: *mut u32, shared: *mut u32, n: u32, lane: u32);
        pub fn gu_host_wait_flag(flag: *mut u32, budget: u32, polls_out: *mut u32) -> u32;
        pub fn gu_host_nop_lane(
            arena: *mut u8,
            local: *mut u8,
            layout: *const core::ffi::c_void,
            lane: u32,
            mode: u32,
            count: u32,
            budget: u32,
            ready: *mut u32,
        ) -> u32;
        pub fn gu_host_print_lane(
            arena: *mut u8,
            local: *mut u8,
            layout: *const core::ffi::c_void,
            lane: u32,
            lines: u32,
            budget: u32,
            printed: *mut u32,
        ) -> u32;
        pub fn gu_host_hostile_lane(
            arena: *mut u8,
            local: *mut u8,
            layout: *const core::ffi::c_void,
            lane: u32,
            which: u32,
            budget: u32,
            out: *mut super::Report,
        ) -> u32;
        pub fn gu_host_write_lane(
            arena: *mut u8,
            local: *mut u8,
            layout: *const core::ffi::c_void,
            lane: u32,
            file: u32,
            ops: u32,
            len: u32,
            budget: u32,
            out: *mut super::Report,
        ) -> u32;
        pub fn gu_host_read_lane(
            arena: *mut u8,
            local: *mut u8,
            layout: *const core::ffi::c_void,
            lane: u32,
            lanes: u32,
            file: u32,
            chunk: u32,
            total: u64,
            depth: u32,
            budget: u32,
            out: *mut super::Report,
        ) -> u32;
        pub fn gu_host_lane_stress_lane(
            arena: *mut u8,
            local: *mut u8,
            layout: *const core::ffi::c_void,
            lane: u32,
            ops: u32,
            budget: u32,
            out: *mut super::Report,
        ) -> u32;
        pub fn gu_host_edit_buffer_lane(
            arena: *mut u8,
            layout: *const core::ffi::c_void,
            lane: u32,
            steps: u32,
            budget: u32,
            out: *mut super::Report,
        ) -> u32;
        pub fn gu_host_layout_lane(
            arena: *mut u8,
            local: *mut u8,
            layout: *const core::ffi::c_void,
            lane: u32,
            out: *mut super::Report,
        ) -> u32;
        pub fn gu_host_exact_lane(
            arena: *mut u8,
            local: *mut u8,
            layout: *const core::ffi::c_void,
            lane: u32,
            count: u32,
            budget: u32,
            out: *mut super::Report,
        ) -> u32;
        pub fn gu_host_format_lane(arena: *mut u8, layout: *const core::ffi::c_void, id: u32);
        pub fn gu_host_stream_lane(
            arena: *mut u8,
            local: *mut u8,
            layout: *const core::ffi::c_void,
            lane: u32,
            lanes: u32,
            file: u32,
            region: u32,
            chunk: u32,
            total: u64,
            budget: u32,
            out: *mut super::Report,
        ) -> u32;
        pub fn gu_host_group_read_lane(
            arena: *mut u8,
            local: *mut u8,
            layout: *const core::ffi::c_void,
            lane: u32,
            file: u32,
            region: u32,
            chunk: u32,
            count: u32,
            budget: u32,
            out: *mut super::Report,
        ) -> u32;
        pub fn gu_host_pump_probe_lane(
            arena: *mut u8,
            run: *mut u8,
            local: *mut u8,
            layout: *const core::ffi::c_void,
            lane: u32,
        );
        pub fn gu_host_rpc_print_lane(
            mailboxes: *mut u8,
            lanes: u32,
            lines: u32,
            budget: u32,
            lane: u32,
        ) -> u32;
        pub fn gu_host_memory_placement_lane(
            buf: *mut u32,
            mode: u32,
            n: u32,
            mask: u32,
            seed: u32,
            gid: u32,
            total: u32,
        );
    }
}

/// Bytes of one format-probe record (`gu::programs::format_record_bytes`): kind, precision, value at 0..16,
/// the formatted length at 16, its bytes at 20.
pub const FORMAT_RECORD_BYTES: usize = 128;

/// Formats every record of `records` (a multiple of [`FORMAT_RECORD_BYTES`] long) with the C++ formatter,
/// exactly as the `gu_format_probe` kernel does on a GPU.
pub fn format_probe(records: &mut [u8]) {
    let count = (records.len() / FORMAT_RECORD_BYTES) as u32;
    // The C++ side reads and writes u32 words: work on a 4-byte-aligned copy.
    let mut words = vec![0u32; records.len() / 4];
    for (w, c) in words.iter_mut().zip(records.chunks_exact(4)) {
        *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    // SAFETY: `words` holds `count` whole records (4-byte aligned); the C++ side reads and writes only inside
    // them.
    unsafe { ffi::gu_host_format_probe(words.as_mut_ptr().cast(), count) };
    for (w, c) in words.iter().zip(records.chunks_exact_mut(4)) {
        c.copy_from_slice(&w.to_le_bytes());
    }
}

/// The built-in print program's line `seq` of lane `lane`, newline included, by `gu::format`.
pub fn print_line(lane: u32, seq: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    // SAFETY: `buf` has 256 writable bytes and the line is told its capacity is 256.
    let n = unsafe { ffi::gu_host_print_line(lane, seq, buf.as_mut_ptr(), 256) };
    buf.truncate(n as usize);
    buf
}

/// One line with every argument kind of `gu::format` (see host_target.cpp).
pub fn format_args_line() -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    // SAFETY: as in `print_line`.
    let n = unsafe { ffi::gu_host_format_args(buf.as_mut_ptr(), 256) };
    buf.truncate(n as usize);
    buf
}

/// `text` appended to a `gu::line` of `cap` bytes and finished: the bytes and the truncation flag.
pub fn line_str(text: &str, cap: u32) -> (Vec<u8>, bool) {
    let mut c = text.as_bytes().to_vec();
    c.retain(|&b| b != 0);
    c.push(0);
    let mut buf = vec![0u8; cap as usize];
    let mut truncated = 0u32;
    // SAFETY: `c` is NUL-terminated; `buf` has `cap` writable bytes; `truncated` is a valid u32.
    let n = unsafe { ffi::gu_host_line_str(c.as_ptr(), buf.as_mut_ptr(), cap, &mut truncated) };
    buf.truncate(n as usize);
    (buf, truncated != 0)
}

/// `gu::local_word<uint32_t>` over a Rust atomic (device-local: RMW allowed).
#[derive(Clone, Copy)]
pub struct LocalU32<'a>(pub &'a AtomicU32);
/// `gu::local_word<uint64_t>`.
#[derive(Clone, Copy)]
pub struct LocalU64<'a>(pub &'a AtomicU64);
/// `gu::shared_word<uint32_t>` (host-shared: loads and stores only).
#[derive(Clone, Copy)]
pub struct SharedU32<'a>(pub &'a AtomicU32);
/// `gu::shared_word<uint64_t>`.
#[derive(Clone, Copy)]
pub struct SharedU64<'a>(pub &'a AtomicU64);

/// Methods of a word view that forward to the C++ `gu::local_word` / `gu::shared_word` calls (host_target.cpp),
/// one per `fn name(args) -> ret = c_function;` line, which also declares the C function: it takes `self.0`'s
/// pointer, the arguments, then the order.
macro_rules! word_calls {
    ($view:ident($word:ty) { $( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $ffi:ident; )* }) => {
        extern "C" {
            $( fn $ffi(p: *mut $word, $($arg: $ty,)* o: u32) $(-> $ret)?; )*
        }
        impl $view<'_> {
            $(
                $(#[$doc])*
                pub fn $name(self, $($arg: $ty,)* o: Order) $(-> $ret)? {
                    // SAFETY: the pointer comes from a live `&AtomicU32`/`&AtomicU64`, so it is aligned and valid
                    // for the call; the C++ side accesses it only through `std::atomic_ref`, which may race with
                    // Rust's atomics on the same word.
                    unsafe { $ffi(self.0.as_ptr(), $($arg,)* o as u32) }
                }
            )*
        }
    };
}

word_calls!(LocalU32(u32) {
    /// `load(o)`
    fn load() -> u32 = gu_local_u32_load;
    /// `store(v, o)`
    fn store(v: u32) = gu_local_u32_store;
    /// `fetch_add(v, o)`
    fn fetch_add(v: u32) -> u32 = gu_local_u32_fetch_add;
    /// `fetch_or(v, o)`
    fn fetch_or(v: u32) -> u32 = gu_local_u32_fetch_or;
    /// `fetch_and(v, o)`
    fn fetch_and(v: u32) -> u32 = gu_local_u32_fetch_and;
    /// `exchange(v, o)`
    fn exchange(v: u32) -> u32 = gu_local_u32_exchange;
});

word_calls!(LocalU64(u64) {
    /// `load(o)`
    fn load() -> u64 = gu_local_u64_load;
    /// `store(v, o)`
    fn store(v: u64) = gu_local_u64_store;
    /// `fetch_add(v, o)`
    fn fetch_add(v: u64) -> u64 = gu_local_u64_fetch_add;
    /// `fetch_or(v, o)`
    fn fetch_or(v: u64) -> u64 = gu_local_u64_fetch_or;
    /// `fetch_and(v, o)`
    fn fetch_and(v: u64) -> u64 = gu_local_u64_fetch_and;
});

word_calls!(SharedU32(u32) {
    /// `load(o)`
    fn load() -> u32 = gu_shared_u32_load;
    /// `store(v, o)`
    fn store(v: u32) = gu_shared_u32_store;
});

word_calls!(SharedU64(u64) {
    /// `load(o)`
    fn load() -> u64 = gu_shared_u64_load;
    /// `store(v, o)`
    fn store(v: u64) = gu_shared_u64_store;
});

impl LocalU32<'_> {
    /// `compare_exchange(expected, desired, o)`: `Ok(previous)` or `Err(found)`.
    pub fn compare_exchange(self, expected: u32, desired: u32, o: Order) -> Result<u32, u32> {
        let mut e = expected;
        // SAFETY: as in `word_calls!`; `e` is a valid u32.
        let ok = unsafe { ffi::gu_local_u32_cas(self.0.as_ptr(), &mut e, desired, o as u32) };
        if ok != 0 {
            Ok(e)
        } else {
            Err(e)
        }
    }
    /// `gu::local_word<int32_t>::fetch_add` on the same word (two's complement, wrapping).
    pub fn fetch_add_i32(self, v: i32, o: Order) -> i32 {
        // SAFETY: as in `word_calls!`; i32 and u32 have the same size and alignment.
        unsafe { ffi::gu_local_i32_fetch_add(self.0.as_ptr().cast(), v, o as u32) }
    }
}

impl LocalU64<'_> {
    /// `compare_exchange(expected, desired, o)`: `Ok(previous)` or `Err(found)`.
    pub fn compare_exchange(self, expected: u64, desired: u64, o: Order) -> Result<u64, u64> {
        let mut e = expected;
        // SAFETY: as in `word_calls!`; `e` is a valid u64.
        let ok = unsafe { ffi::gu_local_u64_cas(self.0.as_ptr(), &mut e, desired, o as u32) };
        if ok != 0 {
            Ok(e)
        } else {
            Err(e)
        }
    }
}

/// `gu::fence_device(o)`
pub fn fence_device(o: Order) {
    // SAFETY: a fence touches no memory of ours.
    unsafe { ffi::gu_fence_device(o as u32) }
}

/// `gu::fence_system(o)`
pub fn fence_system(o: Order) {
    // SAFETY: a fence touches no memory of ours.
    unsafe { ffi::gu_fence_system(o as u32) }
}

/// What `gu::subgroup::active()` reports on the host: size, mask, leader, elect, rank, ballot(true),
/// ballot(false), broadcast_first(v).
pub fn host_subgroup(v: u32) -> [u32; 8] {
    let mut out = [0u32; 8];
    // SAFETY: `out` has the 8 words the C++ side writes.
    unsafe { ffi::gu_host_subgroup(v, out.as_mut_ptr()) };
    out
}

/// The collectives of `gu::subgroup::active()` with this lane's `v`: ballot(lane id odd), exclusive_sum(v),
/// its total, broadcast_first(v), and 1 once `sync()` has passed. On a [`Team`]'s thread every member must call
/// it together.
pub fn host_subgroup_collectives(v: u32) -> [u32; 5] {
    let mut out = [0u32; 5];
    // SAFETY: `out` has the 5 words the C++ side writes.
    unsafe { ffi::gu_host_subgroup_collectives(v, out.as_mut_ptr()) };
    out
}

/// `gu::backoff`'s step after `pauses` pauses.
pub fn backoff_step(pauses: u32) -> u32 {
    // SAFETY: no memory is passed.
    unsafe { ffi::gu_host_backoff(pauses) }
}

/// The device-local read-modify-writes (CAS, add, or, and, exchange) the C++ library made on the calling
/// thread since the thread's last call: what subgroup aggregation saves, measured on the host target.
pub fn take_rmws() -> u64 {
    // SAFETY: reads and resets a thread-local counter.
    unsafe { ffi::gu_host_take_rmws() }
}

/// An emulated subgroup (`gu::host_team`): `lanes` threads that run as one subgroup in lockstep, meeting at a
/// barrier for every collective (ballot, broadcast, the subgroup's memory barrier), so the library's aggregated
/// paths (gpu_uring/group.h) run on the CPU. The team's threads must make the same collective calls in the same
/// order (the aggregated programs are written so); one that waits 60 s at a meeting aborts the process.
pub struct Team {
    raw: *mut core::ffi::c_void,
    lanes: u32,
}

// SAFETY: the C++ team is shared by its member threads by design; its words are atomics or are ordered by its
// barrier.
unsafe impl Send for Team {}
// SAFETY: as for Send.
unsafe impl Sync for Team {}

impl Team {
    /// A team of `lanes` (1..=64) threads.
    pub fn new(lanes: u32) -> Team {
        let lanes = lanes.clamp(1, 64);
        // SAFETY: allocates a C++ object this value owns until drop.
        let raw = unsafe { ffi::gu_host_team_new(lanes) };
        Team { raw, lanes }
    }

    /// The team's size.
    pub fn lanes(&self) -> u32 {
        self.lanes
    }

    /// Runs `f` on the calling thread as lane `lane` (< `lanes`) of this team; the thread is a subgroup of one
    /// again afterwards. Every lane of the team must be run so, concurrently, each on its own thread.
    pub fn run_as<R>(&self, lane: u32, f: impl FnOnce() -> R) -> R {
        struct Leave;
        impl Drop for Leave {
            fn drop(&mut self) {
                // SAFETY: resets the calling thread's thread-local team pointer.
                unsafe { ffi::gu_host_team_join(std::ptr::null_mut(), 0) }
            }
        }
        let lane = lane.min(self.lanes - 1);
        // SAFETY: the team lives at least as long as `self`, which outlives this call; the pointer is reset
        // (by `Leave`) before the call returns or unwinds.
        unsafe { ffi::gu_host_team_join(self.raw, lane) };
        let _leave = Leave;
        f()
    }
}

/// Runs `f(lane)` for lanes `0..lanes`, each on a thread of its own, grouped into emulated subgroups of `team`
/// lanes (lane `id` is lane `id % team` of team `id / team`, the last team smaller if `team` does not divide
/// `lanes`; a team of one is a plain thread, a subgroup of one): the results in lane order. A lane thread that
/// panics fails the call.
pub fn run_in_teams<R: Send>(lanes: u32, team: u32, f: impl Fn(u32) -> R + Sync) -> Vec<R> {
    let team = team.clamp(1, 64);
    let teams: Vec<Team> = (0..lanes.div_ceil(team))
        .map(|t| Team::new(team.min(lanes - t * team)))
        .collect();
    std::thread::scope(|s| {
        let (f, teams) = (&f, &teams);
        let hs: Vec<_> = (0..lanes)
            .map(|id| {
                s.spawn(move || {
                    let t = &teams[(id / team) as usize];
                    if t.lanes() > 1 {
                        t.run_as(id % team, || f(id))
                    } else {
                        f(id)
                    }
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("a lane thread panicked"))
            .collect()
    })
}

impl Drop for Team {
    fn drop(&mut self) {
        // SAFETY: `raw` came from gu_host_team_new and no thread is a member any more (`run_as` borrows `self`).
        unsafe { ffi::gu_host_team_free(self.raw) }
    }
}

/// One lane of the ticket probe (`gu::programs::ticket_lane`): `local` is [ticket counter, finished count,
/// bitmap]; `shared` has `n` ticket words and then the `done` word.
pub fn ticket_lane(local: &[AtomicU32; 3], shared: &[AtomicU32], lane: u32) {
    let Some(first) = shared.first() else {
        return;
    };
    let n = (shared.len() - 1) as u32;
    // SAFETY: the C++ side touches local[0..3] and shared[0..=n] only (a ticket ≥ n is not stored), all through
    // std::atomic_ref, on words borrowed from live atomics.
    unsafe { ffi::gu_host_ticket_lane(local[0].as_ptr(), first.as_ptr(), n, lane) }
}

/// `gu::programs::wait_flag`: polls used (`budget + 1` when it gave up), also stored into `polls_out`.
pub fn wait_flag(flag: &AtomicU32, budget: u32, polls_out: &AtomicU32) -> u32 {
    // SAFETY: both pointers come from live atomics; the C++ side accesses them through std::atomic_ref.
    unsafe { ffi::gu_host_wait_flag(flag.as_ptr(), budget, polls_out.as_ptr()) }
}

/// The memory of one ring as the C++ lanes take it (PROTOCOL.md §1): the arena's base, the device-local
/// block's base and the `RingLayout` (`gpu_uring::abi::RingLayout`, 128 bytes, `#[repr(C)]`), all borrowed from
/// a live ring (`gpu_uring::protocol::DeviceRing`: `arena().0`, `local_block().as_ptr()`, `view().layout()`).
#[derive(Debug, Clone, Copy)]
pub struct RingMemory {
    /// The arena's base (host-shared).
    pub arena: *mut u8,
    /// The device-local block's base (its host copy).
    pub local: *mut u8,
    /// The ring's `RingLayout`.
    pub layout: *const core::ffi::c_void,
}

// SAFETY: the pointers name memory every lane of the ring shares by design; the C++ side touches its words only
// atomically (`std::atomic_ref`) or, for SQEs and staging lines, as the protocol's owner of those bytes.
unsafe impl Send for RingMemory {}
// SAFETY: as for Send.
unsafe impl Sync for RingMemory {}

/// How the nop program's NOPs complete (`gu::programs::nop_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum NopMode {
    /// Waited on the lane's slot 0, one after another.
    Waited = 0,
    /// Fire-and-forget.
    FireAndForget = 1,
    /// `IOSQE_CQE_SKIP_SUCCESS`.
    SkipSuccess = 2,
}

/// `gu::programs::nop_lane`: lane `lane` makes `count` NOPs in `mode` with the C++ lane, then flushes. Returns
/// (its final `STATUS_*`, how many completed READY with result 0 (waited) or were submitted (the others)).
///
/// # Safety
/// `m` must come from a live ring that outlives the call, `lane` < its lanes, and no other thread may run lane
/// `lane` at the same time (a lane's slots and staging lines have one owner).
pub unsafe fn nop_lane(
    m: RingMemory,
    lane: u32,
    mode: NopMode,
    count: u32,
    budget: u32,
) -> (u32, u32) {
    let mut ready = 0u32;
    // SAFETY: the caller's contract; `ready` is a valid u32.
    let st = unsafe {
        ffi::gu_host_nop_lane(
            m.arena,
            m.local,
            m.layout,
            lane,
            mode as u32,
            count,
            budget,
            &mut ready,
        )
    };
    (st, ready)
}

/// `gu::programs::print_lane`: lane `lane` prints its `lines` print-program lines through the ring with the
/// C++ lane (§7: the print log or line mode, the target the host set), then flushes. Returns (its final
/// `STATUS_*`: the first that was not READY, e.g. `LINE_TOO_LONG` for a line longer than the ring's lines, which
/// is not printed; the lines printed READY).
///
/// # Safety
/// As for [`nop_lane`].
pub unsafe fn print_lane(m: RingMemory, lane: u32, lines: u32, budget: u32) -> (u32, u32) {
    let mut printed = 0u32;
    // SAFETY: the caller's contract; `printed` is a valid u32.
    let st = unsafe {
        ffi::gu_host_print_lane(
            m.arena,
            m.local,
            m.layout,
            lane,
            lines,
            budget,
            &mut printed,
        )
    };
    (st, printed)
}

/// What a lane of a ring program reports (`gu::programs::lane_report`): the backend's `LaneReport` fields.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Report {
    /// Operations completed.
    pub done: u64,
    /// Operations that failed or could not be submitted within the budget.
    pub failed: u64,
    /// Read: the chunks' checksums summed; hostile: the row's status.
    pub checksum: u64,
    /// Bytes moved; hostile: the CQE result the row waited for (as `u32`).
    pub bytes: u64,
}

/// `gu::programs::program_refused`: the ring lacks what the program needs; nothing was done.
pub const PROGRAM_REFUSED: u32 = 0x100;

/// A built-in ring program as the C++ lanes run it (`kernels/src/programs/`); each maps to one kernel
/// (kernels/README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingProgram {
    /// `write_lane`: `ops` fire-and-forget writes of `len` bytes to registered file `file`.
    Write {
        /// Fixed-file index.
        file: u32,
        /// Writes per lane.
        ops: u32,
        /// Bytes per write.
        len: u32,
    },
    /// `read_lane`: `lanes` lanes read `[0, total)` of registered file `file` in `chunk`-byte pieces.
    Read {
        /// Lanes taking part (chunk `c` is lane `c mod lanes`'s).
        lanes: u32,
        /// Fixed-file index.
        file: u32,
        /// Bytes per read.
        chunk: u32,
        /// Total bytes.
        total: u64,
        /// Reads in flight per lane.
        depth: u32,
    },
    /// `lane_stress_lane`: `ops` NOPs, waited and fire-and-forget alternately.
    LaneStress {
        /// NOPs per lane.
        ops: u32,
    },
    /// `edit_buffer_lane`: `steps` handshakes with a host thread.
    EditBuffer {
        /// Handshakes per lane.
        steps: u32,
    },
    /// `layout_lane`: the lane's SQE and the `RingLayout` into the fixed region.
    Layout,
    /// `exact_lane`: lane 0 publishes `count` SQE images as given.
    Exact {
        /// SQE images.
        count: u32,
    },
    /// `hostile_lane`: lane 0 runs the hostile-input row `which` (`HostileCase` code).
    Hostile {
        /// The row.
        which: u32,
    },
}

/// Runs lane `lane` of `program` with the C++ lane: (its final `STATUS_*` or [`PROGRAM_REFUSED`], its report).
///
/// # Safety
/// `m` must come from a live ring that outlives the call, `lane` < its lanes, and no other thread may run lane
/// `lane` at the same time (a lane's slots and staging lines have one owner). The hostile rows leave the ring's
/// control words corrupted, as they intend.
pub unsafe fn ring_program_lane(
    m: RingMemory,
    lane: u32,
    program: RingProgram,
    budget: u32,
) -> (u32, Report) {
    let mut out = Report::default();
    let (a, l, y) = (m.arena, m.local, m.layout);
    // SAFETY: the caller's contract; `out` is a valid Report (repr(C), as the C++ lane_report).
    let st = unsafe {
        match program {
            RingProgram::Write { file, ops, len } => {
                ffi::gu_host_write_lane(a, l, y, lane, file, ops, len, budget, &mut out)
            }
            RingProgram::Read {
                lanes,
                file,
                chunk,
                total,
                depth,
            } => ffi::gu_host_read_lane(
                a, l, y, lane, lanes, file, chunk, total, depth, budget, &mut out,
            ),
            RingProgram::LaneStress { ops } => {
                ffi::gu_host_lane_stress_lane(a, l, y, lane, ops, budget, &mut out)
            }
            RingProgram::EditBuffer { steps } => {
                ffi::gu_host_edit_buffer_lane(a, y, lane, steps, budget, &mut out)
            }
            RingProgram::Layout => ffi::gu_host_layout_lane(a, l, y, lane, &mut out),
            RingProgram::Exact { count } => {
                ffi::gu_host_exact_lane(a, l, y, lane, count, budget, &mut out)
            }
            RingProgram::Hostile { which } => {
                ffi::gu_host_hostile_lane(a, l, y, lane, which, budget, &mut out)
            }
        }
    };
    (st, out)
}

/// `gu::programs::format_case` on a ring: the record of case `id` at the arena's fixed region (fixed + 128 id),
/// as the `gu_format` kernel formats it.
///
/// # Safety
/// `m` must come from a live ring whose fixed region holds at least `128 (id + 1)` bytes, and no other thread
/// may touch that record meanwhile.
pub unsafe fn format_lane(m: RingMemory, id: u32) {
    // SAFETY: the caller's contract.
    unsafe { ffi::gu_host_format_lane(m.arena, m.layout, id) }
}

/// The memory of one io_queue as the C++ lanes take it (PROTOCOL.md §Q1): the pump arena's base, the
/// device-local block's base (the slot ownership words) and the `PumpLayout` (`gpu_uring::abi::PumpLayout`, 64
/// bytes, `#[repr(C)]`), borrowed from a live pump (`Pump::arena().raw().0`, `.local_raw().0`, `Pump::layout()`).
#[derive(Debug, Clone, Copy)]
pub struct QueueMemory {
    /// The pump arena's base (host-shared).
    pub arena: *mut u8,
    /// The device-local block's base (its host copy).
    pub local: *mut u8,
    /// The pump's `PumpLayout`.
    pub layout: *const core::ffi::c_void,
}

// SAFETY: as for RingMemory: memory every lane of the queue shares by design, touched atomically.
unsafe impl Send for QueueMemory {}
// SAFETY: as for Send.
unsafe impl Sync for QueueMemory {}

/// `gu::programs::stream_lane`: lane `lane` of `lanes` streams `[0, total)` of pump file `file` in
/// `chunk`-byte READs through a double buffer in pump region `region` and checksums it (the megakernel stream
/// kernel). Returns (`QUEUE_STATUS_*` or [`PROGRAM_REFUSED`], its report: done = chunks, checksum = their sum).
///
/// # Safety
/// `m` must come from a live pump that outlives the call, and no other thread may run lane `lane` at the same
/// time (its region halves are its own).
#[allow(clippy::too_many_arguments)]
pub unsafe fn stream_lane(
    m: QueueMemory,
    lane: u32,
    lanes: u32,
    file: u32,
    region: u32,
    chunk: u32,
    total: u64,
    budget: u32,
) -> (u32, Report) {
    let mut out = Report::default();
    // SAFETY: the caller's contract; `out` is a valid Report.
    let st = unsafe {
        ffi::gu_host_stream_lane(
            m.arena, m.local, m.layout, lane, lanes, file, region, chunk, total, budget, &mut out,
        )
    };
    (st, out)
}

/// `gu::programs::group_read_lane` (the `gu_pump_read` kernel): lane `lane` performs `count` READs of `chunk`
/// bytes of pump file `file` (chunk `lane · count + k`) into pump region `region` at `lane · chunk`, one at a time,
/// allocating with its subgroup (`gpu_uring/queue_group.h`; on a [`Team`]'s thread the team's lanes scan together)
/// and checksumming each chunk. Returns (`QUEUE_STATUS_*` or [`PROGRAM_REFUSED`], its report: done = chunks,
/// checksum = their sum).
///
/// # Safety
/// As for [`stream_lane`]; on a team, every member must make this call together.
#[allow(clippy::too_many_arguments)]
pub unsafe fn group_read_lane(
    m: QueueMemory,
    lane: u32,
    file: u32,
    region: u32,
    chunk: u32,
    count: u32,
    budget: u32,
) -> (u32, Report) {
    let mut out = Report::default();
    // SAFETY: the caller's contract; `out` is a valid Report.
    let st = unsafe {
        ffi::gu_host_group_read_lane(
            m.arena, m.local, m.layout, lane, file, region, chunk, count, budget, &mut out,
        )
    };
    (st, out)
}

/// Bytes of the `PumpRunParams` (`gpu_uring::abi::run::PumpRunParams`) at the start of a pump run buffer.
pub const PUMP_RUN_PARAMS_BYTES: usize = 64;
/// Bytes of one lane's `PumpLaneState` (`gpu_uring::abi::run::PumpLaneState`); lane `l`'s follows the params at
/// `PUMP_RUN_PARAMS_BYTES + l · PUMP_LANE_STATE_BYTES`.
pub const PUMP_LANE_STATE_BYTES: usize = 128;

/// One dispatch of lane `lane` of the pump probe (`gu::programs::pump_probe_lane`, the `gu_pump_probe` kernel;
/// `PumpProgram::PROBE`'s modes): the lane runs at most the params' `iter_budget` loop rounds from where its
/// `PumpLaneState` left off and stores its progress there; dispatch again until it has `PUMP_LANE_FINISHED`.
///
/// # Safety
/// `m` must come from a live pump that outlives the call; `run` must point at an 8-byte-aligned run buffer of
/// [`PUMP_RUN_PARAMS_BYTES`] + lanes · [`PUMP_LANE_STATE_BYTES`] bytes (lanes: the params' `lanes`) that no
/// thread writes during the call except this lane's own state, which no other thread may touch meanwhile.
pub unsafe fn pump_probe_dispatch(m: QueueMemory, run: *mut u8, lane: u32) {
    // SAFETY: the caller's contract.
    unsafe { ffi::gu_host_pump_probe_lane(m.arena, run, m.local, m.layout, lane) }
}

/// `gu::programs::rpc_print_lane`: lane `lane`'s RPC client over the mailboxes at `mailboxes` (experiments/src/
/// rpc.rs layout). READY once the lane has printed every line, TIMED_OUT when `budget` iterations ran out.
///
/// # Safety
/// `mailboxes` must point at `lanes` live mailboxes (512 bytes each, 4-byte aligned) whose other side is a
/// server following the mailbox protocol, and no other thread may run lane `lane` at the same time.
pub unsafe fn rpc_print_lane(
    mailboxes: *mut u8,
    lanes: u32,
    lines: u32,
    budget: u32,
    lane: u32,
) -> u32 {
    // SAFETY: the caller's contract.
    unsafe { ffi::gu_host_rpc_print_lane(mailboxes, lanes, lines, budget, lane) }
}

/// `gu::programs::memory_placement_lane`: invocation `gid` of `total` on `buf` (at least `mask + 2` words).
pub fn memory_placement_lane(
    buf: &[AtomicU32],
    mode: u32,
    n: u32,
    mask: u32,
    seed: u32,
    gid: u32,
    total: u32,
) {
    if (buf.len() as u64) < mask as u64 + 2 {
        return;
    }
    // SAFETY: the C++ side touches words 0..=mask + 1 only (indices are masked), which `buf` holds; the words are
    // live atomics (the C++ side's volatile accesses do not race with Rust: each run's words are written by
    // one invocation, and runs are joined before the next).
    unsafe {
        ffi::gu_host_memory_placement_lane(
            buf.as_ptr() as *mut u32,
            mode,
            n,
            mask,
            seed,
            gid,
            total,
        )
    }
}

/// `gu::programs::hostile_lane`: a row of the hostile-input table (`which`: the `HostileCase` code) run by
/// the C++ lane `lane`, which corrupts the ring itself. Returns (the row's `STATUS_*`, the CQE result it
/// waited for or 0).
///
/// # Safety
/// As for [`nop_lane`]; the ring's control words are corrupted afterwards, as the row intends.
pub unsafe fn hostile_lane(m: RingMemory, lane: u32, which: u32, budget: u32) -> (u32, i32) {
    // SAFETY: the caller's contract.
    let (st, rep) = unsafe { ring_program_lane(m, lane, RingProgram::Hostile { which }, budget) };
    (st, rep.bytes as u32 as i32)
}
