#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
// pump_stream: the megakernel_stream kernel on Vulkan. Lane l streams chunks l, l + lanes, ... of pump file
// `file` ([0, total) in `chunk`-byte chunks) through a double buffer in pump region `region` (halves at
// (2 l + j) × chunk, chunk k of the lane in half k % 2): it READs via the io_queue (§Q3) and checksums each chunk
// in place with backend::checksum (seeded by the chunk's file offset), summing the chunks' checksums.
// Resumable: chunks published (issued) and consumed, the slot of each half, and the partial hash of the chunk
// being checksummed (hash, hpos) live in the lane state; the next READ is published before the current chunk is
// checksummed, so the pump fills one half while the lane reads the other. arg0 = 1 corrupts chunk 0's checksum
// (the mismatch self-check).
#include "../include/gpu_uring_pump.glsl"

const uint PH_WAIT = 0u, PH_SUM = 1u;

void main() {
    if (!gq_begin()) return;
    uint lane = gq_lane_id;
    uint lanes = gq_run.params.lanes;
    uint chunk = gq_run.params.chunk;
    uint64_t total = gq_run.params.total;
    uint64_t nchunks = (total + uint64_t(chunk) - 1UL) / uint64_t(chunk);
    uint mine = uint64_t(lane) < nchunks ? uint((nchunks - uint64_t(lane) - 1UL) / uint64_t(lanes)) + 1u : 0u;
    if (gq_st.dispatches == 0u) {
        gq_st.next_alloc = lane * 2u;
        gq_st.slot0 = GU_PUMP_NO_SLOT;
        gq_st.slot1 = GU_PUMP_NO_SLOT;
    }
    uint status = GU_QUEUE_STATUS_TIMED_OUT;
    while (gq_can_start()) {
        gq_iters++;
        if (gq_st.consumed == mine) { gq_st.flags |= GU_PUMP_LANE_FINISHED; status = GU_QUEUE_STATUS_READY; break; }
        // Prefetch: publish the next chunk's READ into its half while at most one other chunk is outstanding
        // (that half was consumed and its slot freed).
        if (gq_st.issued < mine && gq_st.issued - gq_st.consumed < 2u) {
            uint slot;
            if (gq_try_alloc(gq_st.next_alloc, slot)) {
                uint k = gq_st.issued;
                uint64_t c = uint64_t(lane) + uint64_t(k) * uint64_t(lanes);
                uint64_t off = c * uint64_t(chunk);
                uint len = uint(min(total - off, uint64_t(chunk)));
                uint j = k & 1u;
                gq_publish(slot, GU_QUEUE_OP_READ, gq_run.params.file, gq_run.params.region, off,
                           uint64_t(2u * lane + j) * uint64_t(chunk), len, lane, c);
                if (j == 0u) gq_st.slot0 = slot; else gq_st.slot1 = slot;
                gq_st.issued++;
                continue;
            }
            gq_st.would_block++;
        }
        if (gq_st.consumed == gq_st.issued) continue; // nothing outstanding: allocation would-blocked, retry
        uint k = gq_st.consumed;
        uint j = k & 1u;
        uint64_t c = uint64_t(lane) + uint64_t(k) * uint64_t(lanes);
        uint64_t off = c * uint64_t(chunk);
        uint len = uint(min(total - off, uint64_t(chunk)));
        if (gq_st.phase == PH_WAIT) {
            uint slot = j == 0u ? gq_st.slot0 : gq_st.slot1;
            GqCompletion done;
            uint s = gq_poll(slot, done);
            if (s == GU_QUEUE_STATUS_WOULD_BLOCK) continue;
            gq_st.last_status = s;
            gq_st.last_error = done.error;
            gq_st.last_result = done.result;
            gq_st.last_tag = done.tag;
            if (s == GU_QUEUE_STATUS_READY || s == GU_QUEUE_STATUS_PUMP_STOPPED) gq_free(slot);
            if (j == 0u) gq_st.slot0 = GU_PUMP_NO_SLOT; else gq_st.slot1 = GU_PUMP_NO_SLOT;
            if (s == GU_QUEUE_STATUS_READY && done.done && done.result == int(len) && done.tag == c) {
                gq_st.phase = PH_SUM;
                gq_st.hash = gq_checksum_seed(off);
                gq_st.hpos = 0u;
            } else {
                gq_st.failed++;
                gq_st.consumed++;
            }
            continue;
        }
        // PH_SUM: checksum the chunk in place (the region half is ours: its READ is DONE, the next READ targets
        // the other half), resuming at hpos.
        uint half_off = gq_region_offset(gq_run.params.region) + (2u * lane + j) * chunk;
        gq_st.hpos = gq_checksum_step(gq_st.hash, half_off, gq_st.hpos, len);
        if (gq_st.hpos == len) {
            uint64_t h = gq_st.hash;
            if (gq_run.params.arg0 == 1u && c == 0UL) h ^= 1UL;
            gq_st.sum += h;
            gq_st.bytes += uint64_t(len);
            gq_st.done++;
            gq_st.consumed++;
            gq_st.phase = PH_WAIT;
        }
    }
    gq_end(status);
}
