#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
// read: lanes read [0, total) of fixed file arg0 in arg1-byte chunks (lane l takes chunks l, l + lanes, ...)
// with READ_FIXED into the fixed region at l * chunk, and checksum each chunk as backend::checksum does
// (FNV-1a over 32-bit little-endian words, zero-padded, seeded with the chunk's file offset). Resumable: seq
// (chunks done by this lane) and a read in flight (phase) live in the lane state; a chunk's checksum always
// completes in the dispatch that sees its completion (the host caps chunk / 4 at the soft loop budget).
#include "../include/gpu_uring.glsl"

const uint PH_IDLE = 0u, PH_WAITING = 1u;

uint64_t chunk_checksum(uint64_t off, uint arena_off, uint len) {
    uint64_t h = 0xcbf29ce484222325UL ^ off;
    uint words = (len + 3u) / 4u;
    for (uint i = 0u; i < words; i++) {
        gu_iters++;
        uint w = gu_a.w[(arena_off >> 2) + i];
        uint rest = len - 4u * i;
        if (rest < 4u) w &= (1u << (8u * rest)) - 1u;
        h ^= uint64_t(w);
        h *= 0x00000100000001b3UL;
    }
    return h;
}

void main() {
    if (!gu_begin()) return;
    uint lane = gu_lane_id;
    uint file = gu_run.params.arg0;
    uint chunk = gu_run.params.arg1;
    uint64_t total = gu_run.params.total;
    uint64_t nchunks = (total + uint64_t(chunk) - 1UL) / uint64_t(chunk);
    uint ws = min(gu_l.slots_per_lane - 1u, 1u);
    uint fixed_off = lane * chunk;
    uint status = GU_STATUS_TIMED_OUT;
    // Every reap of the loop happens at its top (the shader compiler inlines each call site; one site keeps the
    // shader small): a branch that needs one sets `reap` and continues.
    bool reap = false;
    while (gu_can_start()) {
        gu_iters++;
        if (reap) { gu_reap(16u); reap = false; }
        uint64_t c = uint64_t(lane) + uint64_t(gu_st.seq) * uint64_t(gu_run.params.lanes);
        uint64_t off = c * uint64_t(chunk);
        uint len = c < nchunks ? uint(min(total - off, uint64_t(chunk))) : 0u;
        if (gu_st.phase == PH_WAITING) {
            // A chunk's checksum runs in the dispatch that sees its completion: poll only while the budget
            // still has room for it (the host keeps chunk / 4 within the soft budget, so a fresh dispatch has).
            if (gu_iters + (len + 3u) / 4u > 2u * gu_soft_budget) break;
            int r;
            uint s = gu_poll(lane, ws, r);
            if (s == GU_STATUS_WOULD_BLOCK) continue;
            if (s == GU_STATUS_READY && r == int(len)) {
                gu_st.checksum += chunk_checksum(off, gu_l.fixed_off + fixed_off, len);
                gu_st.done++;
                gu_st.bytes += uint64_t(len);
            } else {
                gu_st.failed++;
            }
            gu_st.seq++;
            gu_st.phase = PH_IDLE;
            continue;
        }
        if (c >= nchunks) {
            if (gu_in_flight(lane) == 0u) { gu_st.flags |= GU_LANE_FINISHED; status = GU_STATUS_READY; break; }
            reap = true;
            continue;
        }
        uint t;
        if (!gu_try_reserve(t)) { reap = true; continue; }
        gu_sqe_read_fixed(true, int(file), fixed_off, len, off);
        gu_commit(lane, t, GU_SLOT, ws, 0u);
        gu_st.phase = PH_WAITING;
    }
    gu_end(status);
}
