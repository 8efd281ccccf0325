// gpu_uring_pump.glsl — the GLSL lane side of the io_queue (PROTOCOL.md, "io_queue
// (megakernel pump)", §Q3 and §Q8), step by step as the Rust reference (host/src/pump/device.rs) does it.
// Include it after `#version 460` and `#pragma use_vulkan_memory_model`; the shader must also
// `#extension GL_GOOGLE_include_directive`. It stands alone: do not include gpu_uring.glsl in the same shader
// (the two bind different arenas at binding 0).
//
// Bindings (set 0), as backend/pump.rs binds them through the backend's kernel API:
//   0: the whole pump arena as 32-bit words (host-shared: imported host memory, HOST_COHERENT). Only loads and
//      stores here, never an RMW, and every word has one writer: the request fields and the request sequence
//      (req_seq[i]) are the owning lane's, the completion fields and done_seq the pump's. Every 64-bit slot
//      field is written as two 32-bit words, which the release store of the request sequence orders before the
//      pump's acquire, so no 64-bit atomics (and no 64-bit view of the arena) are needed.
//   1: the pump run buffer: GqRunParams, then one GqLaneState per lane (host-visible)
//   2: the device-local block (DEVICE_LOCAL): one word per slot, `seq << GU_QUEUE_SEQ_SHIFT | state`
//      (GU_QUEUE_SLOT_FREE / ALLOCATED / PUBLISHED); the allocation CAS is the only RMW, and lanes alone use it.
// Push constants: the 64-byte PumpLayout (host/src/abi/queue.rs; GU_PUMP_LAYOUT_MEMBERS in the ABI header).
//
// Every shared word (request and completion sequences, ownership words, pump_state) is accessed with an atomic of device scope
// (gl_ScopeDevice) and the semantics PROTOCOL.md §Q3 names: "acquire" = gl_SemanticsAcquire |
// gl_SemanticsMakeVisible, "release" = gl_SemanticsRelease | gl_SemanticsMakeAvailable, "relaxed" =
// gl_SemanticsRelaxed, storage gl_StorageSemanticsBuffer. The other slot fields are relaxed atomic stores /
// loads too (the pump reads them as plain memory only after its acquire CAS); region bytes are plain loads of
// the `coherent` buffer after the acquire of the completion sequence.
//
// Loop budget: lavapipe stops every loop of an invocation after 65535 iterations in total, silently. Every loop
// here counts its iterations in gq_iters and stops at the soft budget (GqRunParams.iter_budget); a program keeps
// its progress in its GqLaneState and the host re-dispatches. No loop waits on another lane: allocation is one
// bounded scan, polls are single looks, waits are bounded poll loops that return a status.

#ifndef GPU_URING_PUMP_GLSL
#define GPU_URING_PUMP_GLSL

#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#extension GL_KHR_memory_scope_semantics : require

// Offsets, sizes, states, ops, error codes and statuses shared with the host (generated from host/src/abi/).
#include "../../abi/gpu_uring_abi.h"

layout(local_size_x_id = 0) in; // = the device's subgroup size (lavapipe: 8)

layout(std430, set = 0, binding = 0) coherent buffer GqArena32 { uint w[]; } gq_a;
layout(std430, set = 0, binding = 2) coherent buffer GqLocal32 { uint w[]; } gq_loc;

// PumpLayout (host/src/abi/queue.rs, 64 bytes), PumpRunParams and PumpLaneState (host/src/abi/run.rs): the ABI
// header's member lists (GU_<STRUCT>_MEMBERS, with the Rust field names and offsets); no member is typed here.
layout(push_constant, std430) uniform GqPumpLayout { GU_PUMP_LAYOUT_MEMBERS } gq_l;

struct GqRunParams { GU_PUMP_RUN_PARAMS_MEMBERS };
struct GqLaneState { GU_PUMP_LANE_STATE_MEMBERS };
layout(std430, set = 0, binding = 1) buffer GqRunBuffer {
    GqRunParams params;
    GqLaneState lane[];
} gq_run;

// ---- constants: slot states, ops, error codes, pump states, IoSlot offsets, lane statuses and flags all come
// from the generated ABI header (abi/gpu_uring_abi.h, included above).

// ---- loop budget -------------------------------------------------------------------------------------------------
const uint GQ_HARD_BUDGET = 60000u; // below lavapipe's 65535
uint gq_iters = 0u;
uint gq_soft_budget = 3000u;
bool gq_can_start() { return gq_iters < gq_soft_budget; }

// ---- atomics on arena words (byte offsets) -----------------------------------------------------------------------
uint gq_ld_rlx(uint off) { return atomicLoad(gq_a.w[off >> 2], gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed); }
uint gq_ld_acq(uint off) {
    return atomicLoad(gq_a.w[off >> 2], gl_ScopeDevice, gl_StorageSemanticsBuffer,
                      gl_SemanticsAcquire | gl_SemanticsMakeVisible);
}
void gq_st_rlx(uint off, uint v) { atomicStore(gq_a.w[off >> 2], v, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed); }
void gq_st_rel(uint off, uint v) {
    atomicStore(gq_a.w[off >> 2], v, gl_ScopeDevice, gl_StorageSemanticsBuffer,
                gl_SemanticsRelease | gl_SemanticsMakeAvailable);
}
// The device-local block (binding 2), by slot index.
uint gq_own_ld(uint i) { return atomicLoad(gq_loc.w[i], gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed); }
void gq_own_st(uint i, uint v) { atomicStore(gq_loc.w[i], v, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed); }
void gq_own_st_rel(uint i, uint v) {
    atomicStore(gq_loc.w[i], v, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelease | gl_SemanticsMakeAvailable);
}
// CAS with acquire on success, relaxed on failure (§Q3.1 allocation): device-local memory only.
uint gq_own_cas_acq(uint i, uint cmp, uint v) {
    return atomicCompSwap(gq_loc.w[i], cmp, v, gl_ScopeDevice, gl_StorageSemanticsBuffer,
                          gl_SemanticsAcquire | gl_SemanticsMakeVisible, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed);
}
uint gq_next_seq(uint seq) { return (seq + 1u) & GU_QUEUE_SEQ_MASK; }
void gq_st64_rlx(uint off, uint64_t v) { gq_st_rlx(off, uint(v)); gq_st_rlx(off + 4u, uint(v >> 32)); }
uint64_t gq_ld64_rlx(uint off) { return uint64_t(gq_ld_rlx(off)) | (uint64_t(gq_ld_rlx(off + 4u)) << 32); }

uint gq_slot_off(uint i) { return gq_l.slots + i * GU_SIZEOF_IO_SLOT; }
uint gq_req_seq_off(uint i) { return gq_l.req_seq + 4u * i; }
uint gq_pump_state() { return gq_ld_acq(gq_l.header + GU_QUEUE_HEADER_PUMP_STATE); }
// Region `h`'s arena offset and size (the table the host wrote before the first dispatch).
uint gq_region_offset(uint h) { return gq_a.w[(gq_l.regions >> 2) + 2u * h]; }
uint gq_region_size(uint h) { return gq_a.w[(gq_l.regions >> 2) + 2u * h + 1u]; }

// ---- §Q3.1 allocate ------------------------------------------------------------------------------------------------
// One bounded scan of at most nslots slots from `next` (a lane-specific start kept in the lane state): the first
// FREE slot whose device-local CAS FREE → ALLOCATED (acquire: pairs with the previous owner's release of FREE)
// succeeds is this lane's. Stops early when the loop budget is spent. false = WOULD_BLOCK (retry later; never spin
// on a slot another lane holds).
bool gq_try_alloc(inout uint next, out uint slot) {
    slot = GU_PUMP_NO_SLOT;
    uint n = gq_l.nslots;
    uint start = next % n;
    for (uint i = 0u; i < n && gq_can_start(); i++) {
        gq_iters++;
        uint idx = (start + i) % n;
        uint w = gq_own_ld(idx);
        if ((w & GU_QUEUE_SLOT_STATE_MASK) == GU_QUEUE_SLOT_FREE &&
            gq_own_cas_acq(idx, w, w | GU_QUEUE_SLOT_ALLOCATED) == w) {
            next = (idx + 1u) % n;
            slot = idx;
            return true;
        }
    }
    return false;
}

// The sequence this lane last published in `slot` (its device-local word).
uint gq_seq(uint slot) { return gq_own_ld(slot) >> GU_QUEUE_SEQ_SHIFT; }

// ---- §Q3.2 publish -----------------------------------------------------------------------------------------------
// Fills ALLOCATED slot `slot`'s request fields (relaxed stores; done_seq, result and error are the pump's), then
// store_release of the next sequence into req_seq[slot] — what the pump's acquire load pairs with; as a release
// after this lane's earlier publications it also orders them before this one, which FENCE relies on — then the
// device-local word records the sequence as PUBLISHED. reserved0/1 are normally zero (else failed RESERVED).
void gq_publish_raw(uint slot, uint op, uint file, uint buf, uint64_t file_offset, uint64_t buf_offset, uint len,
                    uint owner, uint64_t tag, uint reserved0, uint reserved1) {
    uint s = gq_slot_off(slot);
    uint seq = gq_next_seq(gq_seq(slot));
    gq_st_rlx(s + GU_IO_SLOT_OP, op);
    gq_st_rlx(s + GU_IO_SLOT_FILE, file);
    gq_st_rlx(s + GU_IO_SLOT_BUF, buf);
    gq_st64_rlx(s + GU_IO_SLOT_FILE_OFFSET, file_offset);
    gq_st64_rlx(s + GU_IO_SLOT_BUF_OFFSET, buf_offset);
    gq_st_rlx(s + GU_IO_SLOT_LEN, len);
    gq_st_rlx(s + GU_IO_SLOT_OWNER, owner);
    gq_st64_rlx(s + GU_IO_SLOT_TAG, tag);
    gq_st_rlx(s + GU_IO_SLOT_RESERVED, reserved0);
    gq_st_rlx(s + (GU_IO_SLOT_RESERVED + 4u), reserved1);
    gq_st_rel(gq_req_seq_off(slot), seq);
    gq_own_st(slot, (seq << GU_QUEUE_SEQ_SHIFT) | GU_QUEUE_SLOT_PUBLISHED);
}
void gq_publish(uint slot, uint op, uint file, uint buf, uint64_t file_offset, uint64_t buf_offset, uint len,
                uint owner, uint64_t tag) {
    gq_publish_raw(slot, op, file, buf, file_offset, buf_offset, len, owner, tag, 0u, 0u);
}

// ---- §Q3.3 poll and wait -------------------------------------------------------------------------------------------
struct GqCompletion { bool done; int result; uint error; uint64_t tag; };

void gq_read_completion(uint slot, out GqCompletion c) {
    uint s = gq_slot_off(slot);
    c.error = gq_ld_rlx(s + GU_IO_SLOT_ERROR);
    c.done = c.error == GU_QUEUE_ERR_NONE;
    c.result = int(gq_ld_rlx(s + GU_IO_SLOT_RESULT));
    c.tag = gq_ld64_rlx(s + GU_IO_SLOT_TAG);
}

// One look at `slot`: a slot this lane has not published → NOT_PUBLISHED (an error, never a wait). Acquire load of
// done_seq: equal to the lane's sequence → READY with result, error, tag (relaxed: the pump's release store of
// done_seq made them, and any READ data, visible). Otherwise, if the pump is STOPPED/FAILED (acquire: it writes no
// slot word after that store), one more look decides: READY, or withdrawn — the device-local word goes back to
// ALLOCATED and the lane owns the slot: PUMP_STOPPED. No CAS on host memory. Otherwise WOULD_BLOCK.
uint gq_poll(uint slot, out GqCompletion c) {
    c.done = false; c.result = 0; c.error = 0u; c.tag = uint64_t(0);
    uint w = gq_own_ld(slot);
    if ((w & GU_QUEUE_SLOT_STATE_MASK) != GU_QUEUE_SLOT_PUBLISHED) return GU_QUEUE_STATUS_NOT_PUBLISHED;
    uint seq = w >> GU_QUEUE_SEQ_SHIFT;
    uint d = gq_ld_acq(gq_slot_off(slot) + GU_IO_SLOT_DONE_SEQ);
    if (d == seq) { gq_read_completion(slot, c); return GU_QUEUE_STATUS_READY; }
    uint ps = gq_pump_state();
    if (ps == GU_PUMP_STOPPED || ps == GU_PUMP_FAILED) {
        if (gq_ld_acq(gq_slot_off(slot) + GU_IO_SLOT_DONE_SEQ) == seq) { gq_read_completion(slot, c); return GU_QUEUE_STATUS_READY; }
        gq_own_st(slot, (seq << GU_QUEUE_SEQ_SHIFT) | GU_QUEUE_SLOT_ALLOCATED);
        return GU_QUEUE_STATUS_PUMP_STOPPED;
    }
    return GU_QUEUE_STATUS_WOULD_BLOCK;
}

// Polls up to `budget` times (and never past the soft loop budget) → READY, PUMP_STOPPED, NOT_PUBLISHED or
// TIMED_OUT. TIMED_OUT leaves the slot with the pump: wait again (this dispatch or a later one) before freeing it.
// GLSL has no portable sleep, so the back-off is the poll count itself (one poller per lane; lanes never wait
// on each other).
uint gq_wait(uint slot, uint budget, out GqCompletion c) {
    for (uint i = 0u; i < max(budget, 1u) && gq_can_start(); i++) {
        gq_iters++;
        uint st = gq_poll(slot, c);
        if (st != GU_QUEUE_STATUS_WOULD_BLOCK) return st;
    }
    c.done = false; c.result = 0; c.error = 0u; c.tag = uint64_t(0);
    return GU_QUEUE_STATUS_TIMED_OUT;
}

// ---- §Q3.5 free -------------------------------------------------------------------------------------------------------
// From a completed request, or ALLOCATED after a withdrawal. Release store on the device-local word (the sequence
// stays): this lane's reads of the result and region happen before the next owner's writes.
void gq_free(uint slot) { gq_own_st_rel(slot, gq_own_ld(slot) & ~GU_QUEUE_SLOT_STATE_MASK); }

// ---- the checksum every device matches (backend::checksum): FNV-1a-style over 32-bit little-endian words,
// zero-padded, seeded with the chunk's file offset. Resumable: `h` and the byte position live in the lane state.
const uint64_t GQ_FNV_SEED = 0xcbf29ce484222325UL, GQ_FNV_PRIME = 0x00000100000001b3UL;
uint64_t gq_checksum_seed(uint64_t file_offset) { return GQ_FNV_SEED ^ file_offset; }
// Hashes bytes [pos, len) of the bytes at arena offset `arena_off` (4-aligned) into h while the loop budget lasts;
// returns the new position (len when the chunk is done).
uint gq_checksum_step(inout uint64_t h, uint arena_off, uint pos, uint len) {
    uint base = arena_off >> 2;
    while (pos < len && gq_can_start()) {
        gq_iters++;
        uint w = gq_a.w[base + (pos >> 2)];
        uint rest = len - pos;
        if (rest < 4u) w &= (1u << (8u * rest)) - 1u;
        h ^= uint64_t(w);
        h *= GQ_FNV_PRIME;
        pos += 4u;
    }
    return min(pos, len);
}

// ---- per-lane state ---------------------------------------------------------------------------------------------------
GqLaneState gq_st;
uint gq_lane_id = 0u;

// Loads the lane's state; false for invocations past the lane count or lanes already finished.
bool gq_begin() {
    gq_lane_id = gl_GlobalInvocationID.x;
    if (gq_lane_id >= gq_run.params.lanes) return false;
    gq_soft_budget = min(gq_run.params.iter_budget, GQ_HARD_BUDGET / 2u);
    gq_st = gq_run.lane[gq_lane_id];
    return (gq_st.flags & GU_PUMP_LANE_FINISHED) == 0u;
}
// Stores the lane's progress for the host and the next dispatch. `status` (READY: the lane finished) only
// counts the dispatches that ended unfinished; last_status is the program's (its last completed poll or wait).
void gq_end(uint status) {
    gq_st.dispatches++;
    if (status != GU_QUEUE_STATUS_READY) gq_st.waits++;
    gq_st.iters = gq_iters;
    gq_run.lane[gq_lane_id] = gq_st;
}

#endif
