#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
// pump_probe: io_queue tests on Vulkan (backend/vulkan/pump.rs, host/tests/pump_vulkan.rs). arg0 picks the mode:
//   0 echo: lane 0 writes into region `region` at 0: [0, 16) the PumpLayout push constants, [16, 22) the
//     QueueHeader words, [22, 24) region 0's table entry, [24, 40) slot arg1's 16 words read through the GU_IO_SLOT_*
//     offsets, [40, 56) its GqRunParams; then it allocates a slot and publishes a NOP with known fields (tag
//     0x0123456789abcdef, file_offset 0x1122334455667788, buf_offset 0x99aabbccddeeff00, len 7, file 3, buf 5,
//     reserved 0, 0) for the host to compare with the Rust IoSlot (run it before the pump starts), and sets its
//     GqLaneState fields to known values.
//   1 ops: every lane performs `count` READs of `chunk` bytes (request k of lane l: file offset
//     (l × count + k) × chunk, into region `region` at l × chunk, tag = that chunk's index), one at a time:
//     allocate, publish, bounded wait, check result and tag, checksum in place, free. sum = Σ checksums.
//   2 bad: every lane publishes one request the pump must reject (lane % 5: BAD_BUFFER, BAD_FILE, RESERVED,
//     BAD_LENGTH, BUFFER_RANGE), waits and records status, error and result in its state.
//   3 stopped: every lane publishes a NOP to a stopped pump; its wait withdraws it (PUMP_STOPPED) and frees it.
//   4 write: every lane writes `chunk` bytes (word i = lane << 16 | i) into region `region` at lane × chunk,
//     WRITEs them to file `file` at lane × chunk, waits, then publishes a FENCE and waits for its DONE.
//   5 republish (hostile, one lane): publishes a READ of `chunk` bytes of file `file` (a pipe the host fills
//     later) into region `region` at 0, waits until the host says the pump holds it (the host stores a non-zero
//     word at region offset `chunk` when the pump reports the READ in flight), publishes the same READ in the
//     same slot again with the next sequence (the attack the pump must count, and serve only after the held
//     READ), then waits for its latest sequence and frees the slot.
#include "../include/gpu_uring_pump.glsl"

const uint PH_ALLOC = 0u, PH_WAIT = 1u, PH_SUM = 2u;

void echo() {
    uint b = gq_region_offset(gq_run.params.region) >> 2;
    gq_a.w[b + 0u] = uint(gq_l.arena_size); gq_a.w[b + 1u] = uint(gq_l.arena_size >> 32);
    gq_a.w[b + 2u] = gq_l.header; gq_a.w[b + 3u] = gq_l.req_seq; gq_a.w[b + 4u] = gq_l.local_size;
    gq_a.w[b + 5u] = gq_l.slots; gq_a.w[b + 6u] = gq_l.nslots; gq_a.w[b + 7u] = gq_l.regions;
    gq_a.w[b + 8u] = gq_l.nregions; gq_a.w[b + 9u] = gq_l.nfiles; gq_a.w[b + 10u] = gq_l.version;
    gq_a.w[b + 11u] = gq_l.reserved[0]; gq_a.w[b + 12u] = gq_l.reserved[1]; gq_a.w[b + 13u] = gq_l.reserved[2];
    gq_a.w[b + 14u] = gq_l.reserved[3]; gq_a.w[b + 15u] = gq_l.reserved[4];
    for (uint i = 0u; i < 6u; i++) gq_a.w[b + 16u + i] = gq_ld_rlx(gq_l.header + 4u * i);
    gq_a.w[b + 22u] = gq_region_offset(0u); gq_a.w[b + 23u] = gq_region_size(0u);
    uint s = gq_slot_off(gq_run.params.arg1);
    uint f[16] = uint[16](GU_IO_SLOT_DONE_SEQ, GU_IO_SLOT_OP, GU_IO_SLOT_FILE, GU_IO_SLOT_BUF, GU_IO_SLOT_FILE_OFFSET, GU_IO_SLOT_FILE_OFFSET + 4u,
                          GU_IO_SLOT_BUF_OFFSET, GU_IO_SLOT_BUF_OFFSET + 4u, GU_IO_SLOT_LEN, GU_IO_SLOT_OWNER, GU_IO_SLOT_TAG,
                          GU_IO_SLOT_TAG + 4u, GU_IO_SLOT_RESULT, GU_IO_SLOT_ERROR, GU_IO_SLOT_RESERVED, (GU_IO_SLOT_RESERVED + 4u));
    for (uint i = 0u; i < 16u; i++) gq_a.w[b + 24u + i] = gq_ld_rlx(s + f[i]);
    GqRunParams p = gq_run.params;
    gq_a.w[b + 40u] = p.program; gq_a.w[b + 41u] = p.lanes; gq_a.w[b + 42u] = p.iter_budget;
    gq_a.w[b + 43u] = p.dispatch; gq_a.w[b + 44u] = p.file; gq_a.w[b + 45u] = p.region;
    gq_a.w[b + 46u] = p.chunk; gq_a.w[b + 47u] = p.count;
    gq_a.w[b + 48u] = uint(p.total); gq_a.w[b + 49u] = uint(p.total >> 32);
    gq_a.w[b + 50u] = p.arg0; gq_a.w[b + 51u] = p.arg1; gq_a.w[b + 52u] = p.arg2; gq_a.w[b + 53u] = p.arg3;
    gq_a.w[b + 54u] = p.reserved[0]; gq_a.w[b + 55u] = p.reserved[1];
    uint next = gq_run.params.arg2, slot;
    if (gq_try_alloc(next, slot)) {
        gq_publish(slot, GU_QUEUE_OP_NOP, 3u, 5u, 0x1122334455667788UL, 0x99aabbccddeeff00UL, 7u, gq_lane_id,
                   0x0123456789abcdefUL);
        gq_st.slot0 = slot;
    } else {
        gq_st.slot0 = GU_PUMP_NO_SLOT;
    }
    gq_st.phase = 2u; gq_st.seq = 3u; gq_st.done = 4u; gq_st.failed = 5u; gq_st.issued = 6u; gq_st.consumed = 7u;
    gq_st.next_alloc = 8u; gq_st.slot1 = 10u; gq_st.hpos = 11u; gq_st.last_error = 12u; gq_st.last_result = -13;
    gq_st.would_block = 17u; gq_st.reserved0 = 18u; gq_st.reserved1 = 19u;
    gq_st.hash = 0x1111222233334444UL; gq_st.sum = 0x5555666677778888UL; gq_st.bytes = 0x99990000aaaa0000UL;
    gq_st.last_tag = 0xbbbbccccddddeeeeUL; gq_st.last_status = 26u;
    gq_st.reserved2[0] = 22u; gq_st.reserved2[1] = 23u; gq_st.reserved2[2] = 24u; gq_st.reserved2[3] = 25u;
}

// mode 1; returns the status of the last step.
uint ops(uint lane) {
    uint chunk = gq_run.params.chunk;
    uint count = gq_run.params.count;
    uint status = GU_QUEUE_STATUS_TIMED_OUT;
    while (gq_can_start()) {
        gq_iters++;
        if (gq_st.seq == count) { gq_st.flags |= GU_PUMP_LANE_FINISHED; return GU_QUEUE_STATUS_READY; }
        uint64_t c = uint64_t(lane) * uint64_t(count) + uint64_t(gq_st.seq);
        uint64_t off = c * uint64_t(chunk);
        uint64_t boff = uint64_t(lane) * uint64_t(chunk);
        if (gq_st.phase == PH_ALLOC) {
            uint slot;
            if (!gq_try_alloc(gq_st.next_alloc, slot)) { gq_st.would_block++; continue; }
            gq_publish(slot, GU_QUEUE_OP_READ, gq_run.params.file, gq_run.params.region, off, boff, chunk, lane, c);
            gq_st.slot0 = slot;
            gq_st.phase = PH_WAIT;
        } else if (gq_st.phase == PH_WAIT) {
            GqCompletion done;
            uint s = gq_wait(gq_st.slot0, 64u, done);
            if (s == GU_QUEUE_STATUS_TIMED_OUT) continue; // still the pump's: wait again (here or in the next dispatch)
            gq_st.last_status = s;
            gq_st.last_error = done.error;
            gq_st.last_result = done.result;
            gq_st.last_tag = done.tag;
            if (s == GU_QUEUE_STATUS_READY || s == GU_QUEUE_STATUS_PUMP_STOPPED) gq_free(gq_st.slot0);
            if (s == GU_QUEUE_STATUS_READY && done.done && done.result == int(chunk) && done.tag == c) {
                gq_st.phase = PH_SUM;
                gq_st.hash = gq_checksum_seed(off);
                gq_st.hpos = 0u;
            } else {
                gq_st.failed++;
                gq_st.seq++;
                gq_st.phase = PH_ALLOC;
            }
        } else {
            uint at = gq_region_offset(gq_run.params.region) + lane * chunk;
            gq_st.hpos = gq_checksum_step(gq_st.hash, at, gq_st.hpos, chunk);
            if (gq_st.hpos == chunk) {
                gq_st.sum += gq_st.hash;
                gq_st.bytes += uint64_t(chunk);
                gq_st.done++;
                gq_st.seq++;
                gq_st.phase = PH_ALLOC;
            }
        }
    }
    return status;
}

// mode 4
uint write_fence(uint lane) {
    uint chunk = gq_run.params.chunk;
    while (gq_can_start()) {
        gq_iters++;
        if (gq_st.phase == PH_ALLOC || gq_st.phase == 3u) {
            uint slot;
            if (!gq_try_alloc(gq_st.next_alloc, slot)) { gq_st.would_block++; continue; }
            if (gq_st.phase == PH_ALLOC) {
                // The region bytes are written before the release publication, which carries them to the pump.
                uint at = (gq_region_offset(gq_run.params.region) + lane * chunk) >> 2;
                for (uint i = 0u; i < chunk / 4u; i++) { gq_iters++; gq_a.w[at + i] = (lane << 16) | i; }
                gq_publish(slot, GU_QUEUE_OP_WRITE, gq_run.params.file, gq_run.params.region, uint64_t(lane * chunk),
                           uint64_t(lane * chunk), chunk, lane, uint64_t(lane));
            } else {
                gq_publish(slot, GU_QUEUE_OP_FENCE, 0u, 0u, uint64_t(0), uint64_t(0), 0u, lane, uint64_t(lane) | (1UL << 32));
            }
            gq_st.slot0 = slot;
            gq_st.phase = gq_st.phase == PH_ALLOC ? PH_WAIT : 4u;
        } else {
            GqCompletion done;
            uint s = gq_wait(gq_st.slot0, 64u, done);
            if (s == GU_QUEUE_STATUS_TIMED_OUT) continue;
            gq_st.last_status = s;
            gq_st.last_error = done.error;
            gq_st.last_result = done.result;
            gq_st.last_tag = done.tag;
            if (s == GU_QUEUE_STATUS_READY || s == GU_QUEUE_STATUS_PUMP_STOPPED) gq_free(gq_st.slot0);
            if (s == GU_QUEUE_STATUS_READY && done.done) gq_st.done++; else gq_st.failed++;
            if (gq_st.phase == PH_WAIT) {
                gq_st.bytes += uint64_t(max(done.result, 0));
                gq_st.phase = 3u; // the FENCE next
            } else {
                gq_st.flags |= GU_PUMP_LANE_FINISHED;
                return GU_QUEUE_STATUS_READY;
            }
        }
    }
    return GU_QUEUE_STATUS_TIMED_OUT;
}

// mode 2 (and 3: a valid NOP to a stopped pump)
uint bad(uint lane) {
    while (gq_can_start()) {
        gq_iters++;
        if (gq_st.phase == PH_ALLOC) {
            uint slot;
            if (!gq_try_alloc(gq_st.next_alloc, slot)) { gq_st.would_block++; continue; }
            uint kind = gq_run.params.arg0 == 3u ? 5u : lane % 5u;
            uint file = kind == 1u ? gq_l.nfiles : gq_run.params.file;
            uint buf = kind == 0u ? gq_l.nregions : gq_run.params.region;
            uint len = kind == 3u ? 0u : 4u;
            uint64_t boff = kind == 4u ? uint64_t(gq_region_size(gq_run.params.region)) : uint64_t(0);
            gq_publish_raw(slot, kind == 5u ? GU_QUEUE_OP_NOP : GU_QUEUE_OP_READ, file, buf, uint64_t(0), boff, len, lane, uint64_t(lane),
                           kind == 2u ? 1u : 0u, 0u);
            gq_st.slot0 = slot;
            gq_st.phase = PH_WAIT;
        } else {
            GqCompletion done;
            uint s = gq_wait(gq_st.slot0, 64u, done);
            if (s == GU_QUEUE_STATUS_TIMED_OUT) continue;
            gq_st.last_status = s;
            gq_st.last_error = done.error;
            gq_st.last_result = done.result;
            gq_st.last_tag = done.tag;
            if (s == GU_QUEUE_STATUS_READY || s == GU_QUEUE_STATUS_PUMP_STOPPED) gq_free(gq_st.slot0);
            if (s == GU_QUEUE_STATUS_READY && done.done) gq_st.done++; else gq_st.failed++;
            gq_st.flags |= GU_PUMP_LANE_FINISHED;
            return GU_QUEUE_STATUS_READY;
        }
    }
    return GU_QUEUE_STATUS_TIMED_OUT;
}

// mode 5
uint republish(uint lane) {
    uint chunk = gq_run.params.chunk;
    while (gq_can_start()) {
        gq_iters++;
        if (gq_st.phase == PH_ALLOC) {
            uint slot;
            if (!gq_try_alloc(gq_st.next_alloc, slot)) { gq_st.would_block++; continue; }
            gq_publish(slot, GU_QUEUE_OP_READ, gq_run.params.file, gq_run.params.region, uint64_t(0), uint64_t(0),
                       chunk, lane, uint64_t(5));
            gq_st.slot0 = slot;
            gq_st.phase = 3u;
        } else if (gq_st.phase == 3u) {
            // A bounded wait on the host (not on a lane): it stores the word once the pump holds the READ.
            if (gq_ld_acq(gq_region_offset(gq_run.params.region) + chunk) == 0u) continue;
            // The attack: the device-local word back to ALLOCATED (as if this lane owned an unpublished slot),
            // then a normal publication — the next sequence over the one the pump holds.
            uint w = gq_own_ld(gq_st.slot0);
            gq_own_st(gq_st.slot0, (w & ~GU_QUEUE_SLOT_STATE_MASK) | GU_QUEUE_SLOT_ALLOCATED);
            gq_publish(gq_st.slot0, GU_QUEUE_OP_READ, gq_run.params.file, gq_run.params.region, uint64_t(0),
                       uint64_t(0), chunk, lane, uint64_t(5));
            gq_st.issued = 1u;
            gq_st.phase = PH_WAIT;
        } else {
            GqCompletion done;
            uint s = gq_wait(gq_st.slot0, 64u, done);
            if (s == GU_QUEUE_STATUS_TIMED_OUT) continue;
            gq_st.last_status = s;
            gq_st.last_error = done.error;
            gq_st.last_result = done.result;
            gq_st.last_tag = done.tag;
            if (s == GU_QUEUE_STATUS_READY || s == GU_QUEUE_STATUS_PUMP_STOPPED) gq_free(gq_st.slot0);
            gq_st.flags |= GU_PUMP_LANE_FINISHED;
            return s;
        }
    }
    return GU_QUEUE_STATUS_TIMED_OUT;
}

void main() {
    if (!gq_begin()) return;
    uint lane = gq_lane_id;
    if (gq_st.dispatches == 0u) gq_st.next_alloc = lane * 2u;
    uint status = GU_QUEUE_STATUS_READY;
    uint mode = gq_run.params.arg0;
    if (mode == 0u) {
        if (lane == 0u) echo();
        gq_st.flags |= GU_PUMP_LANE_FINISHED;
    } else if (mode == 1u) {
        status = ops(lane);
    } else if (mode == 4u) {
        status = write_fence(lane);
    } else if (mode == 5u) {
        status = republish(lane);
    } else {
        status = bad(lane);
    }
    gq_end(status);
}
