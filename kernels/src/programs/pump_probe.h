// kernels/src/programs/pump_probe.h: the pump probe, the io_queue test program of device-shaders/src/pump_probe.comp
// (`PumpProgram::PROBE`) on gpu_uring/queue.h, mode for mode, with the same argument scheme as every pump program
// (host/src/backend/pump.rs `run_pump`): the pump arena, the run buffer (`PumpRunParams`, then one
// `PumpLaneState` per lane), the device-local block (the slot ownership words) and the `PumpLayout`. Resumable
// like the GLSL: each lane keeps its progress in its `PumpLaneState`, makes at most `iter_budget` loop rounds per
// dispatch, and the host dispatches again until every lane sets PUMP_LANE_FINISHED. `arg0` picks the mode:
//   0 echo: lane 0 writes into region `region` at 0: [0, 16) the PumpLayout, [16, 22) the QueueHeader words,
//     [22, 24) region 0's table entry, [24, 40) slot `arg1`'s 16 words read through the GU_IO_SLOT_* offsets,
//     [40, 56) the PumpRunParams; then it allocates a slot (scan from `arg2`) and publishes a NOP with known
//     fields (tag 0x0123456789abcdef, file_offset 0x1122334455667788, buf_offset 0x99aabbccddeeff00, len 7,
//     file 3, buf 5, reserved 0, 0), and sets its lane state's fields to known values.
//   1 ops: every lane performs `count` READs of `chunk` bytes (request k of lane l: file offset
//     (l × count + k) × chunk, into region `region` at l × chunk, tag = that chunk's index), one at a time:
//     allocate, publish, bounded wait, check result and tag, checksum in place, free. sum = Σ checksums.
//   2 bad: every lane publishes one request the pump must reject (lane % 5: BAD_BUFFER, BAD_FILE, RESERVED,
//     BAD_LENGTH, BUFFER_RANGE), waits and records status, error and result in its state.
//   3 stopped: every lane publishes a NOP to a stopped pump; its wait withdraws it (PUMP_STOPPED) and frees it.
//   4 write: every lane writes `chunk` bytes (word i = lane << 16 | i) into region `region` at lane × chunk,
//     WRITEs them to file `file` at lane × chunk, waits, then publishes a FENCE and waits for its DONE.
//   5 republish (the hostile-input table's io_queue row, one lane): publishes a READ of `chunk` bytes of file
//     `file` into region `region` at 0, waits until the host says the pump holds it (the host stores a non-zero
//     word at region offset `chunk`), publishes the same READ in the same slot again with the next sequence (the
//     attack the pump must count, and serve only after the held READ), then waits for its latest sequence and
//     frees the slot.
// A mode whose region is missing or too small for the lane, or with `chunk` not a positive multiple of 4 where
// it needs one, is refused: the lane finishes at once with last_status = program_refused and failed = 1 (the
// GLSL relies on run_pump's check; device code here checks for itself).
#ifndef GPU_URING_KERNELS_PUMP_PROBE_H
#define GPU_URING_KERNELS_PUMP_PROBE_H

#include "../../include/gpu_uring.h"
#include "ring_programs.h"

namespace gu {
namespace programs {

enum : uint32_t {
    probe_echo = 0,
    probe_ops = 1,
    probe_bad = 2,
    probe_stopped = 3,
    probe_write = 4,
    probe_republish = 5,
};
// Phases kept in PumpLaneState::phase (the GLSL's numbers).
enum : uint32_t { ph_alloc = 0, ph_wait = 1, ph_sum = 2, ph_second = 3, ph_second_wait = 4 };
// Polls per wait step (then the loop goes round again, within the dispatch's budget).
enum : uint32_t { probe_wait_polls = 64 };

class pump_probe {
  public:
    queue_lane q;
    const gpu_uring::PumpRunParams &p;
    gpu_uring::PumpLaneState &s;
    uint32_t iters = 0;
    uint32_t soft;
    uint32_t region_off = 0;
    uint32_t region_size = 0;
    backoff b; // between scans that found every slot taken, and between looks at the host's word

    GU_FN pump_probe(uint8_t *arena, uint8_t *local, const gpu_uring::PumpLayout *layout,
                     const gpu_uring::PumpRunParams &params, gpu_uring::PumpLaneState &state, uint32_t lane_id)
        : q(arena, local, layout, lane_id), p(params), s(state),
          soft(params.iter_budget > 0 ? params.iter_budget : 1u) {
        if (!q.region(p.region, region_off, region_size)) {
            region_off = 0;
            region_size = 0;
        }
    }

    GU_FN bool can_start() const { return iters < soft; }
    GU_FN shared_word<uint32_t> word(uint32_t off) const { return q.s32(off); }

    // One allocation scan from the lane's next_alloc (kept in its state, as the GLSL); a scan that found every
    // slot taken counts a would-block and backs off (other lanes' slots free only as the pump completes them).
    GU_FN bool alloc(uint32_t &slot) {
        if (q.l->nslots > 0) {
            q.next = s.next_alloc % q.l->nslots;
            if (q.try_alloc(slot) == GU_QUEUE_STATUS_READY) {
                s.next_alloc = q.next;
                b.reset();
                return true;
            }
        }
        s.would_block++;
        b.pause();
        return false;
    }

    // A wait step on slot0: TIMED_OUT leaves the request with the pump (the caller goes round again); anything
    // else is recorded in the state, and a completed or withdrawn slot is freed.
    GU_FN uint32_t wait_step(queue_completion &c) {
        c = queue_completion{0, 0, 0, 0};
        uint32_t st = q.wait(s.slot0, probe_wait_polls, c);
        if (st == GU_QUEUE_STATUS_TIMED_OUT) {
            return st;
        }
        s.last_status = st;
        s.last_error = c.error;
        s.last_result = c.result;
        s.last_tag = c.tag;
        if (st == GU_QUEUE_STATUS_READY || st == GU_QUEUE_STATUS_PUMP_STOPPED) {
            q.free(s.slot0);
        }
        return st;
    }

    GU_FN uint32_t finish(uint32_t st) {
        s.flags |= GU_PUMP_LANE_FINISHED;
        return st;
    }

    // Mode 0, lane 0. Relaxed stores into the region: the host reads them after the launch.
    GU_FN void echo() {
        uint32_t b = region_off;
        const gpu_uring::PumpLayout *l = q.l;
        uint32_t w[56];
        w[0] = (uint32_t)l->arena_size;
        w[1] = (uint32_t)(l->arena_size >> 32);
        w[2] = l->header;
        w[3] = l->req_seq;
        w[4] = l->local_size;
        w[5] = l->slots;
        w[6] = l->nslots;
        w[7] = l->regions;
        w[8] = l->nregions;
        w[9] = l->nfiles;
        w[10] = l->version;
        for (uint32_t i = 0; i < 5; i++) {
            w[11 + i] = l->reserved[i];
        }
        for (uint32_t i = 0; i < 6; i++) {
            w[16 + i] = word(l->header + 4u * i).load(mo::relaxed);
        }
        w[22] = word(l->regions).load(mo::relaxed);
        w[23] = word(l->regions + 4u).load(mo::relaxed);
        const uint32_t f[16] = {GU_IO_SLOT_DONE_SEQ,        GU_IO_SLOT_OP,         GU_IO_SLOT_FILE,
                                GU_IO_SLOT_BUF,             GU_IO_SLOT_FILE_OFFSET, GU_IO_SLOT_FILE_OFFSET + 4u,
                                GU_IO_SLOT_BUF_OFFSET,      GU_IO_SLOT_BUF_OFFSET + 4u, GU_IO_SLOT_LEN,
                                GU_IO_SLOT_OWNER,           GU_IO_SLOT_TAG,        GU_IO_SLOT_TAG + 4u,
                                GU_IO_SLOT_RESULT,          GU_IO_SLOT_ERROR,      GU_IO_SLOT_RESERVED,
                                GU_IO_SLOT_RESERVED + 4u};
        for (uint32_t i = 0; i < 16; i++) {
            w[24 + i] = p.arg1 < l->nslots ? word(q.slot_off(p.arg1) + f[i]).load(mo::relaxed) : 0u;
        }
        w[40] = p.program;
        w[41] = p.lanes;
        w[42] = p.iter_budget;
        w[43] = p.dispatch;
        w[44] = p.file;
        w[45] = p.region;
        w[46] = p.chunk;
        w[47] = p.count;
        w[48] = (uint32_t)p.total;
        w[49] = (uint32_t)(p.total >> 32);
        w[50] = p.arg0;
        w[51] = p.arg1;
        w[52] = p.arg2;
        w[53] = p.arg3;
        w[54] = p.reserved[0];
        w[55] = p.reserved[1];
        for (uint32_t i = 0; i < 56; i++) {
            word(b + 4u * i).store(w[i], mo::relaxed);
        }
        uint32_t slot = GU_PUMP_NO_SLOT;
        s.next_alloc = p.arg2;
        if (alloc(slot)) {
            q.publish(slot, queue_request::nop(3u, 0x1122334455667788ull, 5u, 0x99aabbccddeeff00ull, 7u,
                                               0x0123456789abcdefull));
        }
        s.slot0 = slot;
        s.phase = 2u;
        s.seq = 3u;
        s.done = 4u;
        s.failed = 5u;
        s.issued = 6u;
        s.consumed = 7u;
        s.next_alloc = 8u;
        s.slot1 = 10u;
        s.hpos = 11u;
        s.last_error = 12u;
        s.last_result = -13;
        s.would_block = 17u;
        s.reserved0 = 18u;
        s.reserved1 = 19u;
        s.hash = 0x1111222233334444ull;
        s.sum = 0x5555666677778888ull;
        s.bytes = 0x99990000aaaa0000ull;
        s.last_tag = 0xbbbbccccddddeeeeull;
        s.last_status = 26u;
        for (uint32_t i = 0; i < 4; i++) {
            s.reserved2[i] = 22u + i;
        }
    }

    // Mode 1.
    GU_FN uint32_t ops(uint32_t lane) {
        uint32_t chunk = p.chunk;
        while (can_start()) {
            iters++;
            if (s.seq == p.count) {
                return finish(GU_QUEUE_STATUS_READY);
            }
            uint64_t c = (uint64_t)lane * p.count + s.seq;
            uint64_t off = c * chunk;
            uint64_t boff = (uint64_t)lane * chunk;
            if (s.phase == ph_alloc) {
                uint32_t slot = 0;
                if (!alloc(slot)) {
                    continue;
                }
                q.publish(slot, queue_request::read(p.file, off, p.region, boff, chunk, c));
                s.slot0 = slot;
                s.phase = ph_wait;
            } else if (s.phase == ph_wait) {
                queue_completion done;
                uint32_t st = wait_step(done);
                if (st == GU_QUEUE_STATUS_TIMED_OUT) {
                    continue; // still the pump's: wait again (here or in the next dispatch)
                }
                if (st == GU_QUEUE_STATUS_READY && done.done != 0 && done.result == (int32_t)chunk && done.tag == c) {
                    s.phase = ph_sum;
                    s.hpos = 0;
                } else {
                    s.failed++;
                    s.seq++;
                    s.phase = ph_alloc;
                }
            } else {
                // The READ is DONE (the acquire of done_seq ordered its bytes): checksum them in place.
                s.hash = chunk_checksum(q.arena, region_off + lane * chunk, off, chunk);
                s.hpos = chunk;
                s.sum += s.hash;
                s.bytes += chunk;
                s.done++;
                s.seq++;
                s.phase = ph_alloc;
            }
        }
        return GU_QUEUE_STATUS_TIMED_OUT;
    }

    // Mode 4.
    GU_FN uint32_t write_fence(uint32_t lane) {
        uint32_t chunk = p.chunk;
        while (can_start()) {
            iters++;
            if (s.phase == ph_alloc || s.phase == ph_second) {
                uint32_t slot = 0;
                if (!alloc(slot)) {
                    continue;
                }
                if (s.phase == ph_alloc) {
                    // Relaxed stores of the region bytes: the release publication below carries them to the pump.
                    uint32_t at = region_off + lane * chunk;
                    for (uint32_t i = 0; i < chunk / 4u; i++) {
                        word(at + 4u * i).store(lane << 16 | i, mo::relaxed);
                    }
                    q.publish(slot, queue_request::write(p.file, (uint64_t)lane * chunk, p.region,
                                                         (uint64_t)lane * chunk, chunk, lane));
                } else {
                    q.publish(slot, queue_request::fence((uint64_t)lane | 1ull << 32));
                }
                s.slot0 = slot;
                s.phase = s.phase == ph_alloc ? ph_wait : ph_second_wait;
            } else {
                queue_completion done;
                uint32_t st = wait_step(done);
                if (st == GU_QUEUE_STATUS_TIMED_OUT) {
                    continue;
                }
                if (st == GU_QUEUE_STATUS_READY && done.done != 0) {
                    s.done++;
                } else {
                    s.failed++;
                }
                if (s.phase == ph_wait) {
                    s.bytes += done.result > 0 ? (uint64_t)done.result : 0u;
                    s.phase = ph_second; // the FENCE next
                } else {
                    return finish(GU_QUEUE_STATUS_READY);
                }
            }
        }
        return GU_QUEUE_STATUS_TIMED_OUT;
    }

    // Modes 2 and 3 (a valid NOP to a stopped pump).
    GU_FN uint32_t bad(uint32_t lane) {
        while (can_start()) {
            iters++;
            if (s.phase == ph_alloc) {
                uint32_t slot = 0;
                if (!alloc(slot)) {
                    continue;
                }
                uint32_t kind = p.arg0 == probe_stopped ? 5u : lane % 5u;
                uint32_t file = kind == 1u ? q.l->nfiles : p.file;
                uint32_t buf = kind == 0u ? q.l->nregions : p.region;
                uint32_t len = kind == 3u ? 0u : 4u;
                uint64_t boff = kind == 4u ? (uint64_t)region_size : 0u;
                queue_request r = queue_request::read(file, 0, buf, boff, len, lane);
                r.op = kind == 5u ? (uint32_t)GU_QUEUE_OP_NOP : (uint32_t)GU_QUEUE_OP_READ;
                q.publish_raw(slot, r, kind == 2u ? 1u : 0u, 0u);
                s.slot0 = slot;
                s.phase = ph_wait;
            } else {
                queue_completion done;
                uint32_t st = wait_step(done);
                if (st == GU_QUEUE_STATUS_TIMED_OUT) {
                    continue;
                }
                if (st == GU_QUEUE_STATUS_READY && done.done != 0) {
                    s.done++;
                } else {
                    s.failed++;
                }
                return finish(GU_QUEUE_STATUS_READY);
            }
        }
        return GU_QUEUE_STATUS_TIMED_OUT;
    }

    // Mode 5.
    GU_FN uint32_t republish() {
        uint32_t chunk = p.chunk;
        queue_request r = queue_request::read(p.file, 0, p.region, 0, chunk, 5u);
        while (can_start()) {
            iters++;
            if (s.phase == ph_alloc) {
                uint32_t slot = 0;
                if (!alloc(slot)) {
                    continue;
                }
                q.publish(slot, r);
                s.slot0 = slot;
                s.phase = ph_second;
            } else if (s.phase == ph_second) {
                // A bounded wait on the host (not on a lane): it stores the word once the pump holds the READ.
                // Acquire (system scope): pairs with the host's release store.
                if (word(region_off + chunk).load(mo::acquire) == 0) {
                    b.pause();
                    continue;
                }
                // The attack: the device-local word back to ALLOCATED (as if this lane owned an unpublished
                // slot), then a normal publication — the next sequence over the one the pump holds.
                local_word<uint32_t> w = q.own(s.slot0);
                w.store((w.load(mo::relaxed) & ~(uint32_t)GU_QUEUE_SLOT_STATE_MASK) | GU_QUEUE_SLOT_ALLOCATED,
                        mo::relaxed);
                q.publish(s.slot0, r);
                s.issued = 1u;
                s.phase = ph_wait;
            } else {
                queue_completion done;
                uint32_t st = wait_step(done);
                if (st == GU_QUEUE_STATUS_TIMED_OUT) {
                    continue;
                }
                return finish(st);
            }
        }
        return GU_QUEUE_STATUS_TIMED_OUT;
    }

    // Whether the mode's parameters fit the region (the bytes each lane touches) and its chunk rule.
    GU_FN bool fits(uint32_t lane) const {
        uint64_t chunk = p.chunk;
        bool chunked = p.arg0 == probe_ops || p.arg0 == probe_write || p.arg0 == probe_republish;
        if (chunked && (chunk == 0 || chunk % 4u != 0)) {
            return false;
        }
        uint64_t needs = p.arg0 == probe_echo                                ? (lane == 0 ? 56u * 4u : 0u)
                         : p.arg0 == probe_ops || p.arg0 == probe_write     ? (lane + 1ull) * chunk
                         : p.arg0 == probe_republish                        ? chunk + 4u
                                                                            : 0u;
        return needs == 0 || (p.region < q.l->nregions && needs <= region_size);
    }
};

// One dispatch of lane `lane_id` of the pump probe (run buffer: PumpRunParams, then the lanes' PumpLaneStates;
// the host wrote them before the launch and reads them after it: plain loads and stores of the lane's own state).
GU_FN void pump_probe_lane(uint8_t *arena, uint8_t *run, uint8_t *local, const gpu_uring::PumpLayout *layout,
                           uint32_t lane_id) {
    const gpu_uring::PumpRunParams &params = *reinterpret_cast<const gpu_uring::PumpRunParams *>(run);
    if (lane_id >= params.lanes) {
        return;
    }
    gpu_uring::PumpLaneState *states =
        reinterpret_cast<gpu_uring::PumpLaneState *>(run + GU_SIZEOF_PUMP_RUN_PARAMS);
    gpu_uring::PumpLaneState st = states[lane_id];
    if ((st.flags & GU_PUMP_LANE_FINISHED) != 0) {
        return;
    }
    if (st.dispatches == 0) {
        st.next_alloc = lane_id * 2u;
    }
    pump_probe pr(arena, local, layout, params, st, lane_id);
    uint32_t status = GU_QUEUE_STATUS_READY;
    if (!pr.fits(lane_id)) {
        st.last_status = program_refused;
        st.failed = 1;
        pr.finish(status);
    } else if (params.arg0 == probe_echo) {
        if (lane_id == 0) {
            pr.echo();
        }
        pr.finish(status);
    } else if (params.arg0 == probe_ops) {
        status = pr.ops(lane_id);
    } else if (params.arg0 == probe_write) {
        status = pr.write_fence(lane_id);
    } else if (params.arg0 == probe_republish) {
        status = pr.republish();
    } else {
        status = pr.bad(lane_id);
    }
    st.dispatches++;
    if (status != GU_QUEUE_STATUS_READY) {
        st.waits++;
    }
    st.iters = pr.iters;
    states[lane_id] = st;
}

} // namespace programs
} // namespace gu

#endif // GPU_URING_KERNELS_PUMP_PROBE_H
