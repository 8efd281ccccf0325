#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
// read: lanes read [0, total) of fixed file arg0 in arg1-byte chunks (lane l takes chunks l, l + lanes, ...)
// with READ_FIXED into the fixed region, keeping up to arg2 (depth, 1..=32) reads in flight, and checksum each
// chunk as backend::checksum does (FNV-1a over 32-bit little-endian words, zero-padded, seeded with the chunk's
// file offset) in submission order. Read j of a lane goes into its buffer j % depth at
// fixed + (l * depth + j % depth) * chunk and completes in slot min(slots_per_lane - depth, 1) + j % depth, as
// the native lane does. Resumable: seq (chunks checksummed by this lane) and pending_len (reads in flight after
// them) live in the lane state; a chunk's checksum always completes in the dispatch that sees its completion
// (the host caps chunk / 4 at the soft loop budget).
#include "../include/gpu_uring.glsl"

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
    uint depth = clamp(gu_run.params.arg2, 1u, 32u);
    uint64_t total = gu_run.params.total;
    uint64_t nchunks = (total + uint64_t(chunk) - 1UL) / uint64_t(chunk);
    uint status = GU_STATUS_TIMED_OUT;
    if (depth > gu_l.slots_per_lane) {
        // The host refuses this; a run buffer that says it anyway fails the lane instead of using other slots.
        gu_st.failed++;
        gu_st.flags |= GU_LANE_FINISHED;
        gu_end(GU_STATUS_BAD_SLOT);
        return;
    }
    uint base = min(gu_l.slots_per_lane - depth, 1u);
    // Every reap of the loop happens at its top (the shader compiler inlines each call site; one site keeps the
    // shader small): a branch that needs one sets `reap` and continues.
    bool reap = false;
    while (gu_can_start()) {
        gu_iters++;
        if (reap) { gu_reap(16u); reap = false; }
        uint seen = gu_st.seq;
        uint sent = seen + gu_st.pending_len;
        uint64_t cs = uint64_t(lane) + uint64_t(sent) * uint64_t(gu_run.params.lanes);
        // Keep `depth` reads in flight while chunks remain.
        if (gu_st.pending_len < depth && cs < nchunks) {
            uint t;
            if (gu_try_reserve(t)) {
                uint64_t off = cs * uint64_t(chunk);
                uint len = uint(min(total - off, uint64_t(chunk)));
                uint j = sent % depth;
                gu_sqe_read_fixed(true, int(file), (lane * depth + j) * chunk, len, off);
                if (gu_commit(lane, t, GU_SLOT, base + j, 0u) == GU_STATUS_READY) {
                    gu_st.pending_len++;
                    continue;
                }
                // Not submitted (counted by the library). With nothing in flight this chunk fails and the lane
                // goes on with its next one; otherwise it is tried again once the reads before it are done.
                if (gu_st.pending_len == 0u) { gu_st.failed++; gu_st.seq++; continue; }
            }
            // No SQ slot or credit now: with nothing in flight, reap and try again; else wait for the oldest.
            else if (gu_st.pending_len == 0u) { reap = true; continue; }
        }
        if (gu_st.pending_len == 0u) {
            if (gu_in_flight(lane) == 0u) { gu_st.flags |= GU_LANE_FINISHED; status = GU_STATUS_READY; break; }
            reap = true;
            continue;
        }
        // The oldest read in flight. Its checksum runs in the dispatch that sees its completion: poll only while
        // the budget still has room for it (the host keeps chunk / 4 within the soft budget, so a fresh dispatch
        // has).
        uint64_t c = uint64_t(lane) + uint64_t(seen) * uint64_t(gu_run.params.lanes);
        uint64_t off = c * uint64_t(chunk);
        uint len = uint(min(total - off, uint64_t(chunk)));
        if (gu_iters + (len + 3u) / 4u > 2u * gu_soft_budget) break;
        int r;
        uint s = gu_poll(lane, base + seen % depth, r);
        if (s == GU_STATUS_WOULD_BLOCK) continue;
        if (s == GU_STATUS_READY && r == int(len)) {
            gu_st.checksum += chunk_checksum(off, gu_l.fixed_off + (lane * depth + seen % depth) * chunk, len);
            gu_st.done++;
            gu_st.bytes += uint64_t(len);
        } else {
            gu_st.failed++;
        }
        gu_st.seq++;
        gu_st.pending_len--;
    }
    gu_end(status);
}
