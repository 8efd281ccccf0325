// gpu_uring.glsl — the GLSL side of the device protocol (PROTOCOL.md), step by step as the
// Rust reference (host/src/protocol/) does it. Include it after `#version 460` and
// `#pragma use_vulkan_memory_model`; the shader must also `#extension GL_GOOGLE_include_directive`.
//
// Bindings (set 0), all the same for every program:
//   0: the arena as 32-bit words    (host-shared: imported host memory, HOST_COHERENT)
//   1: the arena as 64-bit words    (host-shared; only the 64-bit mirror word is stored through it)
//   2: the run buffer: GuRunParams, the text table, then one GuLaneState per lane (host-visible)
//   3: the device-local block as 32-bit words  (LocalControl, completion slots, lane words: DEVICE_LOCAL)
//   4: the device-local block as 64-bit words  (sq_pub, cq_pub, print_offset, ff_last_user_data)
// Push constants: the 128-byte RingLayout (host/src/abi/ring.rs; GU_RING_LAYOUT_MEMBERS in the ABI header).
//
// Memory classes (PROTOCOL.md §1): the host-shared arena is reached only through gu_host_* — atomic loads and
// stores, never a read-modify-write, and every word has one writer at a time; every word more than one lane
// updates with an RMW lives in the device-local block, reached through gu_local_*. Every shared word is accessed
// with an atomic of device scope (gl_ScopeDevice) and the semantics PROTOCOL.md names; SQE fills, CQE reads and
// staging bytes are plain accesses ordered by those atomics (the buffers are `coherent`, so under the Vulkan
// memory model they are non-private and made available/visible by the release/acquire operations around them).
//
// Subgroups (PROTOCOL.md §0): the lanes active at a call aggregate. One elected lane (subgroupElect) does the
// RMWs for all of them — n credits and n tickets with one CAS each, one publication CAS for their contiguous
// tickets, one CQ claim CAS for up to n CQEs, one doorbell attempt — and hands the results out
// (subgroupBroadcastFirst, subgroupBallotExclusiveBitCount). A subgroup control barrier with device-scope
// acquire/release semantics (gu_subgroup_sync) orders the plain accesses of every lane against the elected
// lane's atomics.
//
// Loop budget: lavapipe stops every loop of an invocation after 65535 iterations in total, silently. Every
// loop here counts its iterations in gu_iters; a program starts new work only while gu_iters < the soft
// budget (GuRunParams.iter_budget) and returns otherwise, leaving its progress in its GuLaneState so the next
// dispatch resumes it. The only loops that do not stop at the soft budget are the lock-free CAS retries of
// publication (§0 rule 2: once reserved, a ticket is always published) and the doorbell's GU_BELL_ROUNDS rounds,
// which the headroom up to 65535 covers.

#ifndef GPU_URING_GLSL
#define GPU_URING_GLSL

#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#extension GL_EXT_shader_atomic_int64 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require

// Offsets, sizes, states, tags, flags and statuses shared with the host (generated from host/src/abi/).
#include "../../abi/gpu_uring_abi.h"

layout(local_size_x_id = 0) in; // = the device's subgroup size (lavapipe: 8); see vulkan/mod.rs

layout(std430, set = 0, binding = 0) coherent buffer GuArena32 { uint w[]; } gu_a;
layout(std430, set = 0, binding = 1) coherent buffer GuArena64 { uint64_t d[]; } gu_a64;
layout(std430, set = 0, binding = 3) coherent buffer GuLocal32 { uint w[]; } gu_d;
layout(std430, set = 0, binding = 4) coherent buffer GuLocal64 { uint64_t d[]; } gu_d64;

// The structs below are the ABI header's member lists (GU_<STRUCT>_MEMBERS, generated from host/src/abi/ with the
// Rust field names and offsets); no member is typed here. RingLayout's `fixed` is `fixed_off` (`fixed` is
// reserved in GLSL).
layout(push_constant, std430) uniform GuRingLayout { GU_RING_LAYOUT_MEMBERS } gu_l;

struct GuRunParams { GU_RUN_PARAMS_MEMBERS };
struct GuLaneState { GU_LANE_STATE_MEMBERS };
// RunHeader (params; text k: byte offset text_index[2k] into text_bytes, length text_index[2k+1]), then the lanes.
layout(std430, set = 0, binding = 2) buffer GuRunBuffer {
    GU_RUN_HEADER_MEMBERS
    GuLaneState lane[];
} gu_run;

// ---- constants: everything shared with the host comes from the generated ABI header (abi/gpu_uring_abi.h,
// included above); only the GLSL library's own conventions are defined here.

// completion modes (protocol::Completion)
const uint GU_FF = 0u, GU_SKIP = 1u, GU_SLOT = 2u;

// ---- loop budget ---------------------------------------------------------------------------------------------
const uint GU_HARD_BUDGET = 60000u; // below lavapipe's 65535
uint gu_iters = 0u;
uint gu_soft_budget = 30000u;

// Rings without SQPOLL (PROTOCOL.md §9): nothing the lane published executes before the host's io_uring_enter
// after this dispatch, so a lane that has reaped nothing and reserved nothing for GU_NO_POLL_IDLE passes in a
// row cannot progress in this dispatch: it yields it (the next dispatch resumes it) instead of spending its
// whole budget. Async completions (io-wq) may still land during the dispatch; the few idle passes leave room
// for them, and whatever comes later is reaped by the next dispatch.
const uint GU_NO_POLL_IDLE = 32u;
uint gu_idle = 0u;
bool gu_stalled() { return (gu_l.ring_flags & GU_RING_FLAG_SQPOLL) == 0u && gu_idle >= GU_NO_POLL_IDLE; }

bool gu_can_start() { return gu_iters < gu_soft_budget && !gu_stalled(); }

// ---- host-shared words (arena byte offsets): atomic loads and stores only -------------------------------------
uint gu_host_ld_rlx(uint off) { return atomicLoad(gu_a.w[off >> 2], gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed); }
uint gu_host_ld_acq(uint off) {
    return atomicLoad(gu_a.w[off >> 2], gl_ScopeDevice, gl_StorageSemanticsBuffer,
                      gl_SemanticsAcquire | gl_SemanticsMakeVisible);
}
void gu_host_st_rlx(uint off, uint v) { atomicStore(gu_a.w[off >> 2], v, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed); }
void gu_host_st_rel(uint off, uint v) {
    atomicStore(gu_a.w[off >> 2], v, gl_ScopeDevice, gl_StorageSemanticsBuffer,
                gl_SemanticsRelease | gl_SemanticsMakeAvailable);
}
void gu_host_st64_rel(uint off, uint64_t v) {
    atomicStore(gu_a64.d[off >> 3], v, gl_ScopeDevice, gl_StorageSemanticsBuffer,
                gl_SemanticsRelease | gl_SemanticsMakeAvailable);
}

// ---- device-local words (byte offsets in the device-local block): loads, stores and RMWs ---------------------
uint gu_local_ld_rlx(uint off) { return atomicLoad(gu_d.w[off >> 2], gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed); }
uint gu_local_ld_acq(uint off) {
    return atomicLoad(gu_d.w[off >> 2], gl_ScopeDevice, gl_StorageSemanticsBuffer,
                      gl_SemanticsAcquire | gl_SemanticsMakeVisible);
}
void gu_local_st_rlx(uint off, uint v) { atomicStore(gu_d.w[off >> 2], v, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed); }
void gu_local_st_rel(uint off, uint v) {
    atomicStore(gu_d.w[off >> 2], v, gl_ScopeDevice, gl_StorageSemanticsBuffer,
                gl_SemanticsRelease | gl_SemanticsMakeAvailable);
}
uint gu_local_add_rlx(uint off, uint v) { return atomicAdd(gu_d.w[off >> 2], v, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed); }
uint gu_local_add_rel(uint off, uint v) {
    return atomicAdd(gu_d.w[off >> 2], v, gl_ScopeDevice, gl_StorageSemanticsBuffer,
                     gl_SemanticsRelease | gl_SemanticsMakeAvailable);
}
uint gu_local_or_acqrel(uint off, uint v) {
    return atomicOr(gu_d.w[off >> 2], v, gl_ScopeDevice, gl_StorageSemanticsBuffer,
                    gl_SemanticsAcquireRelease | gl_SemanticsMakeAvailable | gl_SemanticsMakeVisible);
}
uint gu_local_and_acq(uint off, uint v) {
    return atomicAnd(gu_d.w[off >> 2], v, gl_ScopeDevice, gl_StorageSemanticsBuffer,
                     gl_SemanticsAcquire | gl_SemanticsMakeVisible);
}
uint gu_local_and_rel(uint off, uint v) {
    return atomicAnd(gu_d.w[off >> 2], v, gl_ScopeDevice, gl_StorageSemanticsBuffer,
                     gl_SemanticsRelease | gl_SemanticsMakeAvailable);
}
uint gu_local_cas_rlx(uint off, uint cmp, uint v) {
    return atomicCompSwap(gu_d.w[off >> 2], cmp, v, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed,
                          gl_StorageSemanticsBuffer, gl_SemanticsRelaxed);
}
uint gu_local_cas_acqrel(uint off, uint cmp, uint v) {
    return atomicCompSwap(gu_d.w[off >> 2], cmp, v, gl_ScopeDevice, gl_StorageSemanticsBuffer,
                          gl_SemanticsAcquireRelease | gl_SemanticsMakeAvailable | gl_SemanticsMakeVisible,
                          gl_StorageSemanticsBuffer, gl_SemanticsRelaxed);
}
uint gu_local_or_rlx(uint off, uint v) { return atomicOr(gu_d.w[off >> 2], v, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed); }
uint gu_local_cas_rel(uint off, uint cmp, uint v) {
    return atomicCompSwap(gu_d.w[off >> 2], cmp, v, gl_ScopeDevice, gl_StorageSemanticsBuffer,
                          gl_SemanticsRelease | gl_SemanticsMakeAvailable, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed);
}
uint64_t gu_local_ld64_rlx(uint off) { return atomicLoad(gu_d64.d[off >> 3], gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed); }
uint64_t gu_local_ld64_acq(uint off) {
    return atomicLoad(gu_d64.d[off >> 3], gl_ScopeDevice, gl_StorageSemanticsBuffer,
                      gl_SemanticsAcquire | gl_SemanticsMakeVisible);
}
void gu_local_st64_rlx(uint off, uint64_t v) { atomicStore(gu_d64.d[off >> 3], v, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed); }
uint64_t gu_local_add64_rlx(uint off, uint64_t v) {
    return atomicAdd(gu_d64.d[off >> 3], v, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed);
}
uint64_t gu_local_cas64_acqrel(uint off, uint64_t cmp, uint64_t v) {
    return atomicCompSwap(gu_d64.d[off >> 3], cmp, v, gl_ScopeDevice, gl_StorageSemanticsBuffer,
                          gl_SemanticsAcquireRelease | gl_SemanticsMakeAvailable | gl_SemanticsMakeVisible,
                          gl_StorageSemanticsBuffer, gl_SemanticsRelaxed);
}

// The active lanes of the subgroup meet; each lane's earlier stores (made available at device scope) and the
// acquisitions of its earlier atomics happen-before the other lanes' later accesses. This is what lets one elected
// lane's release publish every lane's SQE, and one lane's acquire cover every lane's CQE reads.
void gu_subgroup_sync() {
    controlBarrier(gl_ScopeSubgroup, gl_ScopeDevice, gl_StorageSemanticsBuffer,
                   gl_SemanticsAcquireRelease | gl_SemanticsMakeAvailable | gl_SemanticsMakeVisible);
}

// Where the words are: LocalControl at offset 0 of the device-local block; SharedControl at `control` in the arena.
uint gu_lctl(uint field) { return field; }
uint gu_sctl(uint field) { return gu_l.control + field; }
uint gu_slot_off(uint g) { return gu_l.slots + g * GU_SIZEOF_COMPLETION_SLOT; }
uint gu_lane_word(uint lane, uint line) { return gu_l.lane_words + (lane * (gu_l.staging_lines + 1u) + line) * 4u; }
uint gu_line_off(uint lane, uint line) { return gu_l.staging + (lane * gu_l.staging_lines + line) * gu_l.line_bytes; }
uint64_t gu_host_addr(uint off) { return gu_l.arena_host_base + uint64_t(off); }
uint gu_nslots() { return gu_l.lanes * gu_l.slots_per_lane; }

// A device-written word outside what the protocol allows: counted (relaxed: a statistic), never acted on.
void gu_violation() { gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_PROTOCOL_VIOLATIONS), 1u); }

// ---- combining doorbell (PROTOCOL.md §3.4; the same for the CQ head in §5.5) -----------------------------------
// `bell`: LOCK | DIRTY bits (device-local); `pubw`: sq_pub / cq_pub; `stored`: the last value the holder stored;
// `kword`: the kernel's sq.tail / cq.head (host-shared, read by the kernel). Only the lock holder stores kword.

// The holder's mirror stores (host-shared words whose one writer it is, PROTOCOL.md §9), at each advance of the
// prefix `t`: the CQ holder copies the counters, the free credits and the released head `t` (`cq_released`), the
// SQ holder the free credits into its own mirror. Relaxed loads of device-local counters; release stores, so a
// host that acquires a mirror sees the kernel index stored before it.
const uint GU_MIRRORED = 7u;
const uint GU_MIRROR_FROM[GU_MIRRORED] = uint[](GU_LOCAL_CONTROL_FF_ERRORS, GU_LOCAL_CONTROL_SKIP_FAILURES,
    GU_LOCAL_CONTROL_LINES_PRINTED, GU_LOCAL_CONTROL_PRINT_ERRORS, GU_LOCAL_CONTROL_FOREIGN_CQES,
    GU_LOCAL_CONTROL_PROTOCOL_VIOLATIONS, GU_LOCAL_CONTROL_FF_LAST_ERROR);
const uint GU_MIRROR_TO[GU_MIRRORED] = uint[](GU_SHARED_CONTROL_FF_ERRORS, GU_SHARED_CONTROL_SKIP_FAILURES,
    GU_SHARED_CONTROL_LINES_PRINTED, GU_SHARED_CONTROL_PRINT_ERRORS, GU_SHARED_CONTROL_FOREIGN_CQES,
    GU_SHARED_CONTROL_PROTOCOL_VIOLATIONS, GU_SHARED_CONTROL_FF_LAST_ERROR);
void gu_mirrors(bool cq, uint t) {
    uint credits = gu_local_ld_rlx(gu_lctl(GU_LOCAL_CONTROL_CQ_CREDITS));
    gu_host_st_rel(gu_sctl(cq ? GU_SHARED_CONTROL_CREDITS_FREE : GU_SHARED_CONTROL_SQ_CREDITS_FREE), credits);
    if (!cq) return;
    gu_host_st_rel(gu_sctl(GU_SHARED_CONTROL_CQ_RELEASED), t);
    for (uint i = 0u; i < GU_MIRRORED; i++) {
        gu_iters++;
        gu_host_st_rel(gu_sctl(GU_MIRROR_TO[i]), gu_local_ld_rlx(gu_lctl(GU_MIRROR_FROM[i])));
    }
    gu_host_st64_rel(gu_sctl(GU_SHARED_CONTROL_FF_LAST_USER_DATA), gu_local_ld64_rlx(gu_lctl(GU_LOCAL_CONTROL_FF_LAST_USER_DATA)));
}

// Steps 2a–2d, run by the lane that took LOCK. `entries`: the kernel ring's size (a prefix that moved backwards
// or past it was rewritten by device code: counted, and the kernel word keeps its last good value).
void gu_bell_hold(uint bell, uint pubw, uint stored, uint kword, uint entries, bool cq) {
    // The CQ head is stored once it is the lag ahead (PROTOCOL.md §5 step 5); the SQ tail at once.
    uint lag = cq ? max(1u, gu_l.w_cq / GU_CQ_HEAD_LAG_DIVISOR) : 1u;
    for (uint round = 0u; round < GU_BELL_ROUNDS; round++) {
        gu_iters++;
        // (a) Acquire: synchronises with the release RMW of every lane whose DIRTY this clears, so their
        // advances of pubw are visible to (b).
        gu_local_and_acq(bell, ~GU_BELL_DIRTY);
        // (b) Acquire: the SQE stores (CQE reads) of every position below T happen-before (c).
        uint t = uint(gu_local_ld64_acq(pubw));
        // Holder-only word (relaxed): the lock's release/acquire chain orders it between holders.
        uint last = gu_local_ld_rlx(stored);
        if (t != last) {
            if (t - last <= entries) {
                if (t - last >= lag) {
                    // (c) The only writer of the kernel word while LOCK is held. Release at device scope with
                    // MakeAvailable (Vulkan's stand-in for a system-scope fence): the kernel's acquire of the
                    // index sees every SQE below it (SQ), or learns every CQE below it was read (CQ).
                    gu_host_st_rel(kword, t);
                    gu_local_st_rlx(stored, t);
                }
                gu_mirrors(cq, t);
            } else {
                gu_violation();
            }
        }
        // (d) Release: the next holder's acquire sees `stored`. Fails only while DIRTY is set again: next round.
        if (gu_local_cas_rel(bell, GU_BELL_LOCK, 0u) == GU_BELL_LOCK) return;
    }
    // Out of rounds: drop LOCK (release, as (d)), leave DIRTY set; the next lane that touches the ring takes it.
    gu_local_and_rel(bell, ~GU_BELL_LOCK);
}

// Step 1: a lane that advanced pubw's prefix (or found a pending duty) rings; it waits for nobody.
void gu_bell_ring(uint bell, uint pubw, uint stored, uint kword, uint entries, bool cq) {
    // AcqRel: release hands this lane's advance to the holder's clear (a); acquire, when this lane becomes the
    // holder, takes in the previous holder's `stored`.
    uint old = gu_local_or_acqrel(bell, GU_BELL_LOCK | GU_BELL_DIRTY);
    if ((old & GU_BELL_LOCK) != 0u) return;
    gu_bell_hold(bell, pubw, stored, kword, entries, cq);
}

// Which bells a lane rings: bit GU_RING_SQ (sq_bell → kernel sq.tail), bit GU_RING_CQ (cq_bell → kernel cq.head).
// Every library call rings through one gu_bells call site (the shader compiler inlines every call; one site keeps
// the doorbell's code once per call).
const uint GU_RING_SQ = 1u, GU_RING_CQ = 2u;
void gu_bells(uint which) {
    for (uint b = 0u; b < 2u; b++) {
        if ((which & (1u << b)) == 0u) continue;
        gu_iters++;
        bool cq = b == 1u;
        gu_bell_ring(cq ? gu_lctl(GU_LOCAL_CONTROL_CQ_BELL) : gu_lctl(GU_LOCAL_CONTROL_SQ_BELL),
                     cq ? gu_lctl(GU_LOCAL_CONTROL_CQ_PUB) : gu_lctl(GU_LOCAL_CONTROL_SQ_PUB),
                     cq ? gu_lctl(GU_LOCAL_CONTROL_CQ_HEAD_STORED) : gu_lctl(GU_LOCAL_CONTROL_SQ_TAIL_STORED),
                     cq ? gu_l.cq_head : gu_l.sq_tail, cq ? gu_l.cq_entries : gu_l.sq_entries, cq);
    }
}

// A pending duty (DIRTY without LOCK: a holder ran out of rounds) is taken by the next lane that touches the
// ring: one relaxed load of each bell word; returns the bells to ring.
uint gu_bells_pending() {
    uint r = 0u;
    uint sb = gu_local_ld_rlx(gu_lctl(GU_LOCAL_CONTROL_SQ_BELL));
    if ((sb & (GU_BELL_LOCK | GU_BELL_DIRTY)) == GU_BELL_DIRTY) r |= GU_RING_SQ;
    uint cb = gu_local_ld_rlx(gu_lctl(GU_LOCAL_CONTROL_CQ_BELL));
    if ((cb & (GU_BELL_LOCK | GU_BELL_DIRTY)) == GU_BELL_DIRTY) r |= GU_RING_CQ;
    return r;
}

// ---- §4 credits (elected lane) --------------------------------------------------------------------------------
// Takes up to `n` credits with one CAS; returns how many (0: none free).
uint gu_take_credits(uint n) {
    uint off = gu_lctl(GU_LOCAL_CONTROL_CQ_CREDITS);
    for (uint i = 0u; i < GU_RESERVE_TRIES; i++) {
        gu_iters++;
        uint cur = gu_local_ld_rlx(off);
        if (cur == 0u) return 0u;
        // More credits than the pool holds: device code rewrote the word (§4).
        if (cur > gu_l.credit_pool) { gu_violation(); return 0u; }
        uint k = min(n, cur);
        if (gu_local_cas_rlx(off, cur, cur - k) == cur) return k;
    }
    return 0u;
}

// ---- §3 reservation (elected lane) ----------------------------------------------------------------------------
// The kernel SQ head this lane last acquired (a lower bound: the head only moves forward); reloaded only when it
// shows no room, so a reservation with room costs no load of host-shared memory.
uint gu_sq_head_seen = 0u;

// Takes up to `n` consecutive tickets first..first+k-1 with one CAS; returns k (0: SQ or window full, contended,
// or a violation, counted).
uint gu_take_tickets(uint n, out uint first) {
    first = 0u;
    uint roff = gu_lctl(GU_LOCAL_CONTROL_SQ_RESERVE);
    for (uint i = 0u; i < GU_RESERVE_TRIES; i++) {
        gu_iters++;
        // Acquire, paired with the release CAS below: an honest ticket is never ahead of the head and prefix read
        // next (a relaxed load could see a newer ticket with an older head and count a false violation).
        uint r = gu_local_ld_acq(roff);
        // Acquire: the SQE stores of every published ticket.
        uint published = uint(gu_local_ld64_acq(gu_lctl(GU_LOCAL_CONTROL_SQ_PUB)));
        uint sq_room = gu_sq_head_seen + gu_l.sq_entries - r;
        if (sq_room == 0u || sq_room > 2u * gu_l.sq_entries) {
            // The cached head shows no room (or is far behind): reload it. Acquire: the kernel has finished
            // reading every SQE before the head.
            gu_sq_head_seen = gu_host_ld_acq(gu_l.sq_head);
            sq_room = gu_sq_head_seen + gu_l.sq_entries - r;
        }
        uint head = gu_sq_head_seen;
        // r was read before the head was loaded (or the cached head is older still); head and the published tail
        // only move forward and never pass a reservation: r ahead of them by more than the SQ / the window means
        // device code rewrote a word (§3). A stale r is behind, not ahead.
        if (int(r - head) > int(gu_l.sq_entries) || int(r - published) > int(gu_l.w_sq)) { gu_violation(); return 0u; }
        uint w_room = published + gu_l.w_sq - r;
        if (sq_room == 0u || sq_room > 2u * gu_l.sq_entries) return 0u; // SQ full
        if (w_room == 0u || w_room > gu_l.w_sq) return 0u;              // publication window full
        uint k = min(n, min(sq_room, w_room));
        if (gu_local_cas_rel(roff, r, r + k) == r) { first = r; return k; }
    }
    return 0u;
}

// One attempt to reserve an SQ ticket with its CQ credit for every active lane; never waits (false =
// WOULD_BLOCK for this lane). The elected lane takes n credits and then as many tickets as it got credits, and
// returns the credits it could not use; the first k active lanes (in subgroup order) get tickets first..first+k-1.
bool gu_try_reserve(out uint ticket) {
    uvec4 act = subgroupBallot(true);
    uint n = subgroupBallotBitCount(act);
    uint rank = subgroupBallotExclusiveBitCount(act);
    uint got = 0u;
    uint first = 0u;
    if (subgroupElect()) {
        gu_bells(gu_bells_pending());
        uint c = gu_take_credits(n);
        if (c > 0u) {
            got = gu_take_tickets(c, first);
            if (got < c) gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_CQ_CREDITS), c - got);
        }
    }
    got = subgroupBroadcastFirst(got);
    first = subgroupBroadcastFirst(first);
    // The elected lane's acquire of the SQ head covers every lane's SQE stores that follow.
    gu_subgroup_sync();
    ticket = first + rank;
    if (rank < got) { gu_idle = 0u; return true; }
    return false;
}

// §3 publish steps 1–3 and §5.5: set bits pos..pos+cnt-1 in a (low: base, high: bitmap) word and advance the
// base over the ready prefix. AcqRel CAS: release publishes the stores ordered before it; acquire takes in those
// of the lanes whose bits this CAS consumes, so the kernel-index store that follows carries them all. Lock-free:
// every failed CAS means another lane made progress. A position outside the 32-wide window (device code rewrote
// the word) is counted in protocol_violations and nothing is marked (never masked).
const uint GU_MARK_KEPT = 0u, GU_MARK_MOVED = 1u, GU_MARK_VIOLATION = 2u;
uint gu_mark_and_advance(uint off, uint pos, uint cnt, out uint nbase) {
    uint64_t old = gu_local_ld64_rlx(off);
    nbase = uint(old);
    uint want = (cnt >= 32u) ? 0xffffffffu : ((1u << cnt) - 1u);
    for (;;) {
        gu_iters++;
        uint base = uint(old);
        uint k = pos - base;
        if (cnt == 0u || cnt > 32u || k >= 32u || k + cnt > 32u) { gu_violation(); return GU_MARK_VIOLATION; }
        uint bits = uint(old >> 32) | (want << k);
        uint m = (bits == 0xffffffffu) ? 32u : uint(findLSB(~bits));
        nbase = base + m;
        uint nbits = (m == 32u) ? 0u : (bits >> m);
        uint64_t nw = uint64_t(nbase) | (uint64_t(nbits) << 32);
        uint64_t cur = gu_local_cas64_acqrel(off, old, nw);
        if (cur == old) return m > 0u ? GU_MARK_MOVED : GU_MARK_KEPT;
        old = cur;
    }
    return GU_MARK_KEPT;
}

// ---- SQE building (a private 64-byte image, then copied into the SQ with plain stores) ------------------------
// Word indices into the image, from the ABI header's byte offsets. Word GU_SQE_W_OPCODE holds opcode (bits 0-7),
// flags (bits GU_SQE_FLAGS_SHIFT..+7) and ioprio; 64-bit fields are two words, low first.
const uint GU_SQE_W_OPCODE = GU_SQE_OPCODE / 4u;
const uint GU_SQE_FLAGS_SHIFT = (GU_SQE_FLAGS % 4u) * 8u;
const uint GU_SQE_W_FD = GU_SQE_FD / 4u;
const uint GU_SQE_W_OFF = GU_SQE_OFF / 4u;
const uint GU_SQE_W_ADDR = GU_SQE_ADDR / 4u;
const uint GU_SQE_W_LEN = GU_SQE_LEN / 4u;
const uint GU_SQE_W_OP_FLAGS = GU_SQE_OP_FLAGS / 4u;
const uint GU_SQE_W_USER_DATA = GU_SQE_USER_DATA / 4u;
const uint GU_SQE_W_BUF_INDEX = GU_SQE_BUF_INDEX / 4u;
uint gu_sqe[GU_SIZEOF_SQE / 4u];

void gu_sqe_rw(uint opcode, uint flags, int fd, uint64_t off, uint64_t addr, uint len, uint buf_index) {
    // Straight-line stores (no loop: lavapipe counts every loop iteration against its per-invocation cap).
    gu_sqe[GU_SQE_W_OPCODE] = (opcode & 0xffu) | ((flags & 0xffu) << GU_SQE_FLAGS_SHIFT); // ioprio = 0
    gu_sqe[GU_SQE_W_FD] = uint(fd);
    gu_sqe[GU_SQE_W_OFF] = uint(off);   gu_sqe[GU_SQE_W_OFF + 1u] = uint(off >> 32);
    gu_sqe[GU_SQE_W_ADDR] = uint(addr); gu_sqe[GU_SQE_W_ADDR + 1u] = uint(addr >> 32);
    gu_sqe[GU_SQE_W_LEN] = len;
    gu_sqe[GU_SQE_W_OP_FLAGS] = 0u;                                                       // rw_flags
    gu_sqe[GU_SQE_W_USER_DATA] = 0u; gu_sqe[GU_SQE_W_USER_DATA + 1u] = 0u;                // set at commit
    gu_sqe[GU_SQE_W_BUF_INDEX] = buf_index & 0xffffu;                                     // personality = 0
    gu_sqe[GU_SQE_FILE_INDEX / 4u] = 0u;
    gu_sqe[GU_SQE_ADDR3 / 4u] = 0u; gu_sqe[GU_SQE_ADDR3 / 4u + 1u] = 0u;
    gu_sqe[GU_SQE_PAD2 / 4u] = 0u;  gu_sqe[GU_SQE_PAD2 / 4u + 1u] = 0u;
}
void gu_sqe_nop() { gu_sqe_rw(GU_IORING_OP_NOP, 0u, -1, uint64_t(0), uint64_t(0), 0u, 0u); }

// A write of arena bytes [arena_off, +len): WRITE_FIXED from the staging or fixed region, plain WRITE
// otherwise (Lane::write_sqe). `fixed_file`: fd is a fixed-file index. file_off = ~0 means "file position".
// The range end is computed in 64 bits, as Rust does: an end that wraps 2^32 never passes for a buffer range.
void gu_sqe_write(bool fixed_file, int fd, uint arena_off, uint len, uint64_t file_off) {
    uint64_t end = uint64_t(arena_off) + uint64_t(len);
    uint64_t staging_end = uint64_t(gu_l.staging) + uint64_t(gu_l.lanes * gu_l.staging_lines * gu_l.line_bytes);
    uint flags = fixed_file ? GU_IOSQE_FIXED_FILE : 0u;
    uint64_t addr = gu_host_addr(arena_off);
    if (arena_off >= gu_l.staging && end <= staging_end) {
        gu_sqe_rw(GU_IORING_OP_WRITE_FIXED, flags, fd, file_off, addr, len, gu_l.staging_buf_index);
    } else if (gu_l.fixed_size > 0u && arena_off >= gu_l.fixed_off
               && end <= uint64_t(gu_l.fixed_off) + uint64_t(gu_l.fixed_size)) {
        gu_sqe_rw(GU_IORING_OP_WRITE_FIXED, flags, fd, file_off, addr, len, gu_l.fixed_buf_index);
    } else {
        gu_sqe_rw(GU_IORING_OP_WRITE, flags, fd, file_off, addr, len, 0u);
    }
}

// READ_FIXED into the fixed region at fixed_off.
void gu_sqe_read_fixed(bool fixed_file, int fd, uint fixed_off, uint len, uint64_t file_off) {
    gu_sqe_rw(GU_IORING_OP_READ_FIXED, fixed_file ? GU_IOSQE_FIXED_FILE : 0u, fd, file_off,
              gu_host_addr(gu_l.fixed_off + fixed_off), len, gu_l.fixed_buf_index);
}

// Fill (plain stores: the lane owns the ticket) and publish ticket `t` (§3). The active lanes publish together:
// when their tickets are consecutive in subgroup order (they are, after one aggregated reservation) the elected
// lane marks them all with one CAS and rings the bell once; otherwise each lane marks its own. False (counted):
// sq_pub no longer has `t` in its window, so the SQE was written but not published.
bool gu_publish(uint t) {
    uint base = (gu_l.sqes + (t & gu_l.sq_mask) * GU_SIZEOF_SQE) >> 2;
    for (uint i = 0u; i < GU_SIZEOF_SQE / 4u; i++) gu_a.w[base + i] = gu_sqe[i];
    uvec4 act = subgroupBallot(true);
    uint n = subgroupBallotBitCount(act);
    uint rank = subgroupBallotExclusiveBitCount(act);
    uint first = subgroupBroadcastFirst(t);
    bool together = subgroupBallotBitCount(subgroupBallot(t != first + rank)) == 0u;
    uint pub = gu_lctl(GU_LOCAL_CONTROL_SQ_PUB);
    uint m = GU_MARK_KEPT;
    uint ring = 0u;
    uint nb;
    if (together) {
        // Every lane's SQE stores happen-before the elected lane's publishing CAS (release).
        gu_subgroup_sync();
        if (subgroupElect()) {
            ring = gu_bells_pending();
            m = gu_mark_and_advance(pub, first, n, nb);
        }
        m = subgroupBroadcastFirst(m);
    } else {
        m = gu_mark_and_advance(pub, t, 1u, nb);
    }
    // §3.4: the lane that moved the tail rings the combining doorbell, which stores it into the kernel's sq.tail.
    if (m == GU_MARK_MOVED && (!together || subgroupElect())) ring |= GU_RING_SQ;
    gu_bells(ring);
    return m != GU_MARK_VIOLATION;
}

// The flag rule of §4 (protocol::check_flags) on the caller's gu_sqe: IOSQE_CQE_SKIP_SUCCESS only from the
// GU_SKIP mode, and never linked.
uint gu_check_flags(uint mode) {
    uint f = (gu_sqe[GU_SQE_W_OPCODE] >> GU_SQE_FLAGS_SHIFT) & 0xffu;
    if ((f & GU_IOSQE_CQE_SKIP_SUCCESS) != 0u) return GU_STATUS_BAD_FLAGS;
    if (mode == GU_SKIP && (f & (GU_IOSQE_IO_LINK | GU_IOSQE_IO_HARDLINK)) != 0u) return GU_STATUS_BAD_FLAGS;
    return GU_STATUS_READY;
}

// Publishes ticket `t` as the filler NOP of a refused commit (Rust: the dropped Reservation): fire-and-forget
// of no lane, so its CQE returns the credit.
void gu_sqe_filler() {
    gu_sqe_nop();
    if ((gu_l.ring_flags & GU_RING_FLAG_CONFINED) != 0u) gu_sqe[GU_SQE_W_OPCODE] |= GU_IOSQE_FIXED_FILE << GU_SQE_FLAGS_SHIFT;
    gu_sqe[GU_SQE_W_USER_DATA] = 0xffff0000u;
    gu_sqe[GU_SQE_W_USER_DATA + 1u] = GU_TAG_FF_HI;
}
void gu_publish_filler(uint t) {
    gu_sqe_filler();
    gu_publish(t);
}

// Arms global slot g of `lane`: bumps its generation (skipping 0), marks it PENDING, returns the generation.
// Relaxed: only the owner writes a FREE slot; the publication release orders it before any completion.
uint gu_arm(uint lane, uint g) {
    uint soff = gu_slot_off(g);
    gu_local_st_rlx(soff + GU_COMPLETION_SLOT_OWNER, lane);
    uint gen = ((gu_local_ld_rlx(soff) >> GU_RING_SLOT_GEN_SHIFT) + 1u) & GU_RING_SLOT_GEN_MASK;
    if (gen == 0u) gen = 1u;
    gu_local_st_rlx(soff, (gen << GU_RING_SLOT_GEN_SHIFT) | GU_RING_SLOT_PENDING);
    return gen;
}

// Lane::commit_line: sets user_data and flags for the completion mode, then publishes. Returns GU_STATUS_READY, or
// GU_STATUS_BAD_FLAGS / GU_STATUS_BAD_SLOT (the ticket is published as a filler NOP; nothing of gu_sqe is submitted), or
// GU_STATUS_PROTOCOL_VIOLATION (counted; the mode's bookkeeping is undone).
// mode GU_SLOT: k = lane-relative slot; mode GU_FF: line_plus1 = staging line + 1 (0 = none).
uint gu_commit(uint lane, uint t, uint mode, uint k, uint line_plus1) {
    uint bad = gu_check_flags(mode);
    if (bad == GU_STATUS_READY && mode == GU_SLOT && (lane >= gu_l.lanes || k >= gu_l.slots_per_lane)) bad = GU_STATUS_BAD_SLOT;
    // One publication site for both outcomes (the shader compiler inlines every call).
    if (bad != GU_STATUS_READY) {
        gu_sqe_filler();
    } else if ((gu_l.ring_flags & GU_RING_FLAG_CONFINED) != 0u) {
        gu_sqe[GU_SQE_W_OPCODE] |= GU_IOSQE_FIXED_FILE << GU_SQE_FLAGS_SHIFT;
    }
    if (bad != GU_STATUS_READY) {
        // Refused: nothing of the caller's SQE, no bookkeeping.
    } else if (mode == GU_FF) {
        gu_sqe[GU_SQE_W_USER_DATA] = ((lane & 0xffffu) << 16) | line_plus1;
        gu_sqe[GU_SQE_W_USER_DATA + 1u] = GU_TAG_FF_HI;
        if (line_plus1 != 0u) {
            // Relaxed: published by the SQ tail release before any CQE can clear it.
            gu_local_st_rlx(gu_lane_word(lane, line_plus1 - 1u), 1u);
        }
        gu_local_add_rlx(gu_lane_word(lane, gu_l.staging_lines), 1u);
    } else if (mode == GU_SKIP) {
        gu_sqe[GU_SQE_W_OPCODE] |= GU_IOSQE_CQE_SKIP_SUCCESS << GU_SQE_FLAGS_SHIFT;
        gu_sqe[GU_SQE_W_USER_DATA] = (lane & 0xffffu) << 16;
        gu_sqe[GU_SQE_W_USER_DATA + 1u] = GU_TAG_SKIP_HI;
        // No CQE on success: the credit goes back now; failures use the headroom (§4).
        gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_CQ_CREDITS), 1u);
    } else {
        uint g = lane * gu_l.slots_per_lane + k;
        gu_sqe[GU_SQE_W_USER_DATA] = g;
        gu_sqe[GU_SQE_W_USER_DATA + 1u] = GU_TAG_SLOT_HI | gu_arm(lane, g); // user_data = TAG_SLOT | generation << 32 | slot
    }
    bool published = gu_publish(t);
    if (bad != GU_STATUS_READY) return bad;
    if (!published) {
        // Not published (counted): undo the mode's bookkeeping, so flushes do not wait for a CQE that cannot come.
        if (mode == GU_FF) {
            if (line_plus1 != 0u) gu_local_st_rlx(gu_lane_word(lane, line_plus1 - 1u), 0u);
            gu_local_add_rlx(gu_lane_word(lane, gu_l.staging_lines), 0xffffffffu);
            gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_CQ_CREDITS), 1u);
        } else if (mode == GU_SLOT) {
            uint soff = gu_slot_off(lane * gu_l.slots_per_lane + k);
            gu_local_st_rlx(soff, gu_local_ld_rlx(soff) & ~GU_RING_SLOT_STATE_MASK); // FREE, generation kept
            gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_CQ_CREDITS), 1u);
        }
        return GU_STATUS_PROTOCOL_VIOLATION;
    }
    return GU_STATUS_READY;
}

// Lane::commit_exact: publishes gu_sqe exactly as given (no flags added, no flag rule, user_data kept), except
// that a TAG_SLOT user_data with generation 0 naming one of `lane`'s own slots arms that slot and is published
// with the armed generation (so the lane can wait on it). Anything else arms nothing.
void gu_commit_exact(uint lane, uint t) {
    uint g = gu_sqe[GU_SQE_W_USER_DATA];
    uint first = lane * gu_l.slots_per_lane;
    bool own = lane < gu_l.lanes && g >= first && g - first < gu_l.slots_per_lane;
    if ((gu_sqe[GU_SQE_W_USER_DATA + 1u] >> (GU_TAG_SHIFT - 32u)) == GU_TAG_SLOT && (gu_sqe[GU_SQE_W_USER_DATA + 1u] & GU_RING_SLOT_GEN_MASK) == 0u && own) gu_sqe[GU_SQE_W_USER_DATA + 1u] = GU_TAG_SLOT_HI | gu_arm(lane, g);
    gu_publish(t);
}

// ---- §5 reaping ------------------------------------------------------------------------------------------------
void gu_record_failure(uint ud_lo, uint ud_hi, int res) {
    gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_FF_ERRORS), 1u);
    gu_local_st_rlx(gu_lctl(GU_LOCAL_CONTROL_FF_LAST_ERROR), uint(res));
    gu_local_st64_rlx(gu_lctl(GU_LOCAL_CONTROL_FF_LAST_USER_DATA), uint64_t(ud_lo) | (uint64_t(ud_hi) << 32));
}

// Dispatches one CQE (§5.4); returns the credits it gives back (0 or 1), which the elected lane returns for the
// whole subgroup.
uint gu_dispatch_cqe(uint ud_lo, uint ud_hi, int res, uint cflags) {
    uint tag = ud_hi >> (GU_TAG_SHIFT - 32u);
    if (tag == GU_TAG_SLOT) {
        uint gen = ud_hi & GU_RING_SLOT_GEN_MASK;
        bool delivered = false;
        // The print log's write (§7.1) completes the log's own slot (log_wstate / log_wres) the same way.
        bool log = ud_lo == GU_LOG_SLOT;
        if (log || ud_lo < gu_nslots()) {
            uint soff = log ? gu_lctl(GU_LOCAL_CONTROL_LOG_WSTATE) : gu_slot_off(ud_lo);
            uint roff = log ? gu_lctl(GU_LOCAL_CONTROL_LOG_WRES) : soff + GU_COMPLETION_SLOT_RESULT;
            // Claim: only a PENDING slot of the same generation takes the CQE, and only once (§5).
            uint want = (gen << GU_RING_SLOT_GEN_SHIFT) | GU_RING_SLOT_PENDING;
            if (gu_local_cas_rlx(soff, want, (gen << GU_RING_SLOT_GEN_SHIFT) | GU_RING_SLOT_REAPING) == want) {
                gu_local_st_rlx(roff, uint(res));
                if (!log) gu_local_st_rlx(soff + GU_COMPLETION_SLOT_FLAGS, cflags);
                // Release: the owner's acquire of DONE sees result and flags.
                gu_local_st_rel(soff, (gen << GU_RING_SLOT_GEN_SHIFT) | GU_RING_SLOT_DONE);
                delivered = true;
            }
        }
        if (!delivered) {
            // A stale or forged completion: counted and recorded, never delivered.
            gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_FOREIGN_CQES), 1u);
            gu_record_failure(ud_lo, ud_hi, res);
        }
        // Every TAG_SLOT CQE was paid for by a reservation's credit, delivered or not (§5).
        return 1u;
    } else if (tag == GU_TAG_FF) {
        uint lane = ud_lo >> 16;
        uint line = ud_lo & 0xffffu;
        if (res < 0) {
            gu_record_failure(ud_lo, ud_hi, res);
            if (line != 0u) gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_PRINT_ERRORS), 1u);
        }
        if (lane < gu_l.lanes) {
            // Release: the kernel is done with the line; its owner may refill it.
            if (line != 0u && line <= gu_l.staging_lines) gu_local_st_rel(gu_lane_word(lane, line - 1u), 0u);
            gu_local_add_rel(gu_lane_word(lane, gu_l.staging_lines), 0xffffffffu);
        }
        return 1u;
    } else if (tag == GU_TAG_SKIP) {
        // Only failures of skip-success ops post; they hold no credit.
        gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_SKIP_FAILURES), 1u);
        gu_record_failure(ud_lo, ud_hi, res);
    } else {
        // A CQE no lane recognises: counted and recorded, never dropped silently.
        gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_FOREIGN_CQES), 1u);
        gu_record_failure(ud_lo, ud_hi, res);
    }
    return 0u;
}

// The kernel CQ tail this lane last acquired (the CQEs before it are written); reloaded only when the claim has
// reached it, so a claim of posted CQEs costs no load of host-shared memory.
uint gu_cq_tail_seen = 0u;

// §5.1–5.3 for the subgroup (elected lane): claims up to `n` consecutive CQEs first..first+k-1 with one CAS;
// returns k (0: empty, window full, or a violation, counted).
uint gu_claim_cqes(uint n, out uint first) {
    first = 0u;
    uint claim = gu_lctl(GU_LOCAL_CONTROL_CQ_CLAIM);
    for (uint i = 0u; i < GU_RESERVE_TRIES; i++) {
        gu_iters++;
        // Acquire, paired with the release claim CAS below (as for tickets).
        uint c = gu_local_ld_acq(claim);
        uint ahead = gu_cq_tail_seen - c;
        if (ahead == 0u || ahead > gu_l.cq_entries) {
            // The cached tail shows nothing to claim (or is not a tail this claim can be behind): reload it.
            // Acquire: every CQE before the tail is written.
            gu_cq_tail_seen = gu_host_ld_acq(gu_l.cq_tail);
        }
        uint tail = gu_cq_tail_seen;
        if (c == tail) return 0u;
        uint released = uint(gu_local_ld64_rlx(gu_lctl(GU_LOCAL_CONTROL_CQ_PUB)));
        // c was read before the tail was loaded (or the cached tail is older); the tail and the released head only
        // move forward and never pass a claim: a claim ahead of the tail, or of the released head by more than
        // the window, means device code rewrote a word (§5): counted, stop.
        if (int(c - tail) > 0 || int(c - released) > int(gu_l.w_cq)) { gu_violation(); return 0u; }
        // The window counts from the head the CQ-bell holder last stored into the kernel's cq.head, not from
        // cq_pub's released head: credits of claimed CQEs come back as they are dispatched, so the CQEs the kernel
        // still counts as unread must stay within W_CQ however long a holder takes to store the head (§5).
        // Relaxed: holder-written; a stale value is behind, which only narrows the window.
        uint stored = gu_local_ld_rlx(gu_lctl(GU_LOCAL_CONTROL_CQ_HEAD_STORED));
        uint window = stored + gu_l.w_cq - c;
        uint posted = tail - c;
        if (window == 0u || window > gu_l.w_cq || posted > gu_l.cq_entries) return 0u;
        uint k = min(min(n, 32u), min(window, posted));
        // Relaxed: the CQEs were made visible by the tail acquire; the claim only divides them.
        if (gu_local_cas_rel(claim, c, c + k) == c) { first = c; return k; }
    }
    return 0u;
}

// Reaps CQEs into their slots / counters, up to `max` claim rounds of the subgroup (each round: one claim CAS
// for up to one CQE per active lane, one credit return, one release CAS, one bell attempt). Returns how many
// CQEs the subgroup reaped (the same for every active lane).
uint gu_reap(uint max) {
    uvec4 act = subgroupBallot(true);
    uint n = subgroupBallotBitCount(act);
    uint rank = subgroupBallotExclusiveBitCount(act);
    uint total = 0u;
    // The elected lane's bells: a pending duty first, then the CQ bell after each release that moved the head,
    // rung at the top of the next round (one call site; the last round only rings).
    uint ring = subgroupElect() ? gu_bells_pending() : 0u;
    for (uint round = 0u; round <= max; round++) {
        gu_iters++;
        gu_bells(ring);
        ring = 0u;
        if (round == max) break;
        uint first = 0u;
        uint k = 0u;
        if (subgroupElect()) k = gu_claim_cqes(n, first);
        k = subgroupBroadcastFirst(k);
        first = subgroupBroadcastFirst(first);
        if (k == 0u) break;
        // The elected lane's acquire of the CQ tail covers every lane's CQE reads.
        gu_subgroup_sync();
        uint credit = 0u;
        if (rank < k) {
            uint cb = (gu_l.cqes + ((first + rank) & gu_l.cq_mask) * GU_SIZEOF_CQE) >> 2;
            uint ud_lo = gu_a.w[cb + GU_CQE_USER_DATA / 4u];
            uint ud_hi = gu_a.w[cb + GU_CQE_USER_DATA / 4u + 1u];
            int res = int(gu_a.w[cb + GU_CQE_RES / 4u]);
            uint cflags = gu_a.w[cb + GU_CQE_FLAGS / 4u];
            credit = gu_dispatch_cqe(ud_lo, ud_hi, res, cflags);
        }
        uint back = subgroupBallotBitCount(subgroupBallot(credit != 0u));
        // Every lane's CQE reads happen-before the elected lane's release of them to the kernel.
        gu_subgroup_sync();
        uint m = GU_MARK_KEPT;
        if (subgroupElect()) {
            if (back > 0u) gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_CQ_CREDITS), back);
            uint h;
            // Release (inside): we and the lanes whose bits we consumed are done reading those CQEs.
            m = gu_mark_and_advance(gu_lctl(GU_LOCAL_CONTROL_CQ_PUB), first, k, h);
            if (m == GU_MARK_MOVED) ring = GU_RING_CQ;
        }
        m = subgroupBroadcastFirst(m);
        total += k;
        // cq_pub rewritten under us (counted), or fewer CQEs than lanes (drained for now): ring and stop.
        if (m == GU_MARK_VIOLATION || k < n) max = round + 1u;
    }
    if (total == 0u) gu_idle++; else gu_idle = 0u;
    return total;
}

// ---- §6 waiting (one poll; callers loop within their budget and resume across dispatches) -------------------
// One reap pass, then checks the lane's slot k. READY frees the slot and returns the CQE's res in `result`.
uint gu_poll(uint lane, uint k, out int result) {
    result = 0;
    if (lane >= gu_l.lanes || k >= gu_l.slots_per_lane) return GU_STATUS_BAD_SLOT;
    gu_reap(16u);
    uint soff = gu_slot_off(lane * gu_l.slots_per_lane + k);
    uint st = gu_local_ld_acq(soff);
    if ((st & GU_RING_SLOT_STATE_MASK) == GU_RING_SLOT_DONE) {
        result = int(gu_local_ld_rlx(soff + GU_COMPLETION_SLOT_RESULT));
        gu_local_st_rlx(soff, st & ~GU_RING_SLOT_STATE_MASK); // FREE, generation kept
        return GU_STATUS_READY;
    }
    if ((st & GU_RING_SLOT_STATE_MASK) == GU_RING_SLOT_FREE) return GU_STATUS_NOT_PENDING;
    return GU_STATUS_WOULD_BLOCK;
}

// §6 wait: polls slot k up to `budget` times (each poll reaps) → GU_STATUS_READY with the result, or GU_STATUS_TIMED_OUT.
// There is no portable backoff instruction in GLSL; the budget counts polls. A program that gets GU_STATUS_TIMED_OUT
// keeps the operation pending in its lane state and polls again later (or in the next dispatch).
uint gu_wait(uint lane, uint k, uint budget, out int result) {
    result = 0;
    for (uint i = 0u; i < max(budget, 1u); i++) {
        gu_iters++;
        uint s = gu_poll(lane, k, result);
        if (s != GU_STATUS_WOULD_BLOCK) return s;
        if (gu_stalled()) break;
    }
    return GU_STATUS_TIMED_OUT;
}

// §3 reserve with a budget: up to `budget` attempts, reaping between them → true, or false (TIMED_OUT).
bool gu_reserve(uint budget, out uint ticket) {
    ticket = 0u;
    for (uint i = 0u; i < max(budget, 1u); i++) {
        gu_iters++;
        if (gu_try_reserve(ticket)) return true;
        // Always reap before trying again: that is what frees credits.
        gu_reap(16u);
        if (gu_stalled()) break;
    }
    return false;
}

// Fire-and-forget operations of `lane` still in flight (acquire: their CQEs' effects are visible).
uint gu_in_flight(uint lane) { return gu_local_ld_acq(gu_lane_word(lane, gu_l.staging_lines)); }

// ---- §7 line formatting (identical digits on every device) ---------------------------------------------------
const uint GU_MAX_LINE_WORDS = 64u; // lines up to 256 bytes; longer lines are cut like LineBuf cuts them
uint gu_line[GU_MAX_LINE_WORDS];
uint gu_len = 0u;
uint gu_cap = 0u;
// A byte did not fit since gu_line_begin: the line is longer than the lane's line (min(line_bytes, 256) bytes
// with its newline) and holds only its first gu_cap - 1 bytes. A print or write of it returns LINE_TOO_LONG and
// submits nothing (PROTOCOL.md §7).
bool gu_cut = false;

void gu_line_begin() {
    gu_len = 0u;
    gu_cap = min(gu_l.line_bytes, GU_MAX_LINE_WORDS * 4u);
    gu_cut = false;
}
void gu_putc(uint b) {
    // Keep one byte for the newline, which may be the caller's own (LineBuf::push).
    if (gu_len + 1u < gu_cap || ((b & 0xffu) == 10u && gu_len < gu_cap)) {
        uint i = gu_len >> 2;
        uint sh = (gu_len & 3u) * 8u;
        if (sh == 0u) gu_line[i] = b & 0xffu; else gu_line[i] |= (b & 0xffu) << sh;
        gu_len++;
    } else {
        gu_cut = true;
    }
}
uint gu_last_byte() { return gu_len == 0u ? 0u : (gu_line[(gu_len - 1u) >> 2] >> (((gu_len - 1u) & 3u) * 8u)) & 0xffu; }
void gu_line_finish() {
    if (gu_last_byte() != 10u) {
        uint i = gu_len >> 2;
        uint sh = (gu_len & 3u) * 8u;
        if (sh == 0u) gu_line[i] = 10u; else gu_line[i] |= 10u << sh;
        gu_len++;
    }
}
// Text: GLSL has no strings, so a program's literal pieces come from the host's text table (run buffer).
void gu_put_text(uint id) {
    uint o = gu_run.text_index[2u * id];
    uint n = gu_run.text_index[2u * id + 1u];
    for (uint i = 0u; i < n; i++) {
        gu_iters++;
        uint b = o + i;
        gu_putc((gu_run.text_bytes[b >> 2] >> ((b & 3u) * 8u)) & 0xffu);
    }
}
void gu_put_u64(uint64_t v) {
    uint digits[20];
    uint n = 0u;
    do {
        gu_iters++;
        digits[n] = uint(v % uint64_t(10));
        n++;
        v /= uint64_t(10);
    } while (v != uint64_t(0) && n < 20u);
    while (n > 0u) {
        gu_iters++;
        n--;
        gu_putc(48u + digits[n]);
    }
}
void gu_put_i64(int64_t v) {
    if (v < int64_t(0)) {
        gu_putc(45u); // '-'
        gu_put_u64(uint64_t(-(v + int64_t(1))) + uint64_t(1)); // exact for i64::MIN
    } else {
        gu_put_u64(uint64_t(v));
    }
}
void gu_put_hex(uint64_t v) {
    uint digits[16];
    uint n = 0u;
    do {
        gu_iters++;
        digits[n] = uint(v & uint64_t(15));
        n++;
        v >>= 4;
    } while (v != uint64_t(0) && n < 16u);
    while (n > 0u) {
        gu_iters++;
        n--;
        uint d = digits[n];
        gu_putc(d < 10u ? 48u + d : 87u + d); // '0'.., 'a' - 10 = 87
    }
}
uint64_t gu_pow10(uint p) {
    uint64_t r = uint64_t(1);
    for (uint i = 0u; i < p; i++) { gu_iters++; r *= uint64_t(10); }
    return r;
}
// §7: s = round_half_even(v × 10^p) in IEEE f64, then integer and fraction digits.
void gu_put_fixed(double v, uint p) {
    uint64_t pw = gu_pow10(p);
    precise double y = v * double(pw);
    precise double f = floor(y);
    precise double d = y - f;
    uint64_t s = uint64_t(f);
    if (d > 0.5LF || (d == 0.5LF && (s & uint64_t(1)) == uint64_t(1))) s += uint64_t(1);
    gu_put_u64(s / pw);
    if (p > 0u) {
        gu_putc(46u); // '.'
        uint64_t frac = s % pw;
        uint64_t div = pw / uint64_t(10);
        while (div > uint64_t(0)) {
            gu_iters++;
            gu_putc(48u + uint((frac / div) % uint64_t(10)));
            div /= uint64_t(10);
        }
    }
}
void gu_put_f32(float x, uint prec) {
    uint p = min(prec, 9u);
    if (isnan(x)) { gu_putc(110u); gu_putc(97u); gu_putc(110u); return; } // "nan"
    if ((floatBitsToUint(x) & 0x80000000u) != 0u) gu_putc(45u);
    if (isinf(x)) { gu_putc(105u); gu_putc(110u); gu_putc(102u); return; } // "inf"
    precise double v = abs(double(x));
    precise double y = v * double(gu_pow10(p));
    if (y < 9223372036854775808.0LF) {
        gu_put_fixed(v, p);
    } else {
        uint e = 0u;
        while (v >= 10.0LF && e < 400u) { gu_iters++; v = v / 10.0LF; e++; }
        gu_put_fixed(v, p);
        gu_putc(101u); gu_putc(43u); // "e+"
        gu_put_u64(uint64_t(e));
    }
}
// Copies the formatted line into arena bytes at `off` (a staging line the lane owns).
void gu_line_store(uint off) {
    uint base = off >> 2;
    uint words = (gu_len + 3u) >> 2;
    for (uint i = 0u; i < words; i++) { gu_iters++; gu_a.w[base + i] = gu_line[i]; }
}

// ---- per-lane program state --------------------------------------------------------------------------------
GuLaneState gu_st;
uint gu_lane_id = 0u;

// Loads the lane's state; returns false for invocations past the lane count (they do nothing).
bool gu_begin() {
    gu_lane_id = gl_GlobalInvocationID.x;
    if (gu_lane_id >= gu_run.params.lanes || gu_lane_id >= gu_l.lanes) return false;
    gu_soft_budget = min(gu_run.params.iter_budget, GU_HARD_BUDGET / 2u); // the host also scales it by the subgroup size
    gu_st = gu_run.lane[gu_lane_id];
    return (gu_st.flags & GU_LANE_FINISHED) == 0u;
}
// Stores the lane's progress for the host and the next dispatch.
void gu_end(uint status) {
    gu_st.dispatches++;
    if (status != GU_STATUS_READY) gu_st.waits++;
    gu_st.iters = gu_iters;
    gu_st.last_status = status;
    gu_run.lane[gu_lane_id] = gu_st;
}

#endif
