// kernels/src/programs/pump_programs.h: the io_queue programs (PROTOCOL.md "io_queue (megakernel pump)"): the
// megakernel stream kernel, the lane side of experiments/src/bin/megakernel_stream.rs and of
// device-shaders/src/pump_stream.comp, on gpu_uring/queue.h; and exactly-once READs with the allocation
// aggregated per subgroup (gpu_uring/queue_group.h).
#ifndef GPU_URING_KERNELS_PUMP_PROGRAMS_H
#define GPU_URING_KERNELS_PUMP_PROGRAMS_H

#include "../../include/gpu_uring.h"
#include "ring_programs.h"

namespace gu {
namespace programs {

enum : uint32_t { stream_no_slot = 0xffffffffu };

// The stream program: lane `lane_id` of `lanes` streams chunks l, l + lanes, … of pump file `file` ([0, total)
// in `chunk`-byte chunks) through a double buffer in pump region `region` (halves at (2 l + j) · chunk; the
// lane's chunk k goes to half k mod 2): it READs each chunk through the io_queue, publishing the next READ
// before it checksums the current chunk in place (so the pump fills one half while the lane reads the other),
// and sums the chunks' `backend::checksum`s. `report`: done = chunks checksummed, failed, checksum = the sum,
// bytes. A chunk whose READ failed, came back short or with another tag counts failed (its slot is freed;
// a stopped pump's withdrawn requests too); when a wait or an allocation has polled `budget` times without
// progress the lane gives up (TIMED_OUT; the rest of its chunks count failed and requests in flight stay with
// the pump). Runs to its end in one launch.
GU_FN uint32_t stream_lane(uint8_t *arena, uint8_t *local, const gpu_uring::PumpLayout *layout, uint32_t lane_id,
                           uint32_t lanes, uint32_t file, uint32_t region, uint32_t chunk, uint64_t total,
                           uint32_t budget, lane_report *out) {
    lane_report rep = {0, 0, 0, 0};
    queue_lane q(arena, local, layout, lane_id);
    uint32_t region_off = 0;
    uint32_t region_size = 0;
    if (lanes == 0 || lane_id >= lanes || chunk == 0 || chunk % 4 != 0 || !q.region(region, region_off, region_size) ||
        (uint64_t)2 * (lane_id + 1ull) * chunk > region_size) {
        rep.failed = 1;
        *out = rep;
        return program_refused;
    }
    uint64_t nchunks = total / chunk + (total % chunk != 0 ? 1 : 0);
    uint64_t mine = lane_id < nchunks ? (nchunks - lane_id - 1) / lanes + 1 : 0;
    uint64_t issued = 0;
    uint64_t consumed = 0;
    uint32_t slot_of[2] = {stream_no_slot, stream_no_slot};
    uint32_t st = GU_QUEUE_STATUS_READY;
    uint32_t polls = 0;
    backoff b;
    while (consumed < mine) {
        // Prefetch: publish the next chunk's READ into its half while at most one other chunk is outstanding.
        if (issued < mine && issued - consumed < 2) {
            uint32_t slot = 0;
            if (q.try_alloc(slot) == GU_QUEUE_STATUS_READY) {
                uint64_t c = lane_id + issued * lanes;
                uint64_t off = c * chunk;
                uint32_t len = total - off < chunk ? (uint32_t)(total - off) : chunk;
                uint32_t j = (uint32_t)(issued & 1u);
                q.publish(slot, queue_request::read(file, off, region, (uint64_t)(2u * lane_id + j) * chunk, len, c));
                slot_of[j] = slot;
                issued++;
                continue;
            }
        }
        uint32_t j = (uint32_t)(consumed & 1u);
        queue_completion done = {0, 0, 0, 0};
        uint32_t s = consumed == issued ? GU_QUEUE_STATUS_WOULD_BLOCK : q.poll(slot_of[j], done);
        if (s == GU_QUEUE_STATUS_WOULD_BLOCK) {
            // Nothing outstanding (every slot taken) or the oldest READ not done yet.
            if (polls >= budget) {
                st = GU_QUEUE_STATUS_TIMED_OUT;
                break;
            }
            b.pause();
            polls++;
            continue;
        }
        polls = 0;
        b.reset();
        if (s == GU_QUEUE_STATUS_READY || s == GU_QUEUE_STATUS_PUMP_STOPPED) {
            q.free(slot_of[j]);
        }
        slot_of[j] = stream_no_slot;
        uint64_t c = lane_id + consumed * lanes;
        uint64_t off = c * chunk;
        uint32_t len = total - off < chunk ? (uint32_t)(total - off) : chunk;
        if (s == GU_QUEUE_STATUS_READY && done.done != 0 && done.result == (int32_t)len && done.tag == c) {
            // The half is this lane's: its READ is DONE (the acquire of done_seq ordered the bytes), the next
            // READ targets the other half.
            rep.checksum += chunk_checksum(arena, region_off + (2u * lane_id + j) * chunk, off, len);
            rep.bytes += len;
            rep.done++;
        } else {
            rep.failed++;
            st = s != GU_QUEUE_STATUS_READY ? s : st;
        }
        consumed++;
    }
    if (st == GU_QUEUE_STATUS_TIMED_OUT) {
        rep.failed += mine - consumed;
    }
    *out = rep;
    return st;
}

// The aggregated read program: lane `lane_id` performs `count` READs of `chunk` bytes of pump file `file`, one at
// a time — request k at file offset (lane_id · count + k) · chunk into pump region `region` at lane_id · chunk,
// tagged with that chunk's index — allocating through gpu_uring/queue_group.h (one shared scan per subgroup and
// round), publishing, polling and freeing its own slot, and checksums each chunk in place (`backend::checksum`).
// Every member makes rounds until all are done (uniform control flow: a lane that is done, or refused, still
// takes part in the collectives); a round in which no member made progress backs off, and after `budget` such
// rounds in a row the lanes still short give up (TIMED_OUT: the rest of their READs count failed, one in flight
// stays with the pump). `report`: done = chunks, failed, checksum = their sum, bytes. A lane whose region is
// missing or too small, or whose chunk is not a positive multiple of 4, does nothing: program_refused.
GU_FN uint32_t group_read_lane(uint8_t *arena, uint8_t *local, const gpu_uring::PumpLayout *layout, uint32_t lane_id,
                               uint32_t file, uint32_t region, uint32_t chunk, uint32_t count, uint32_t budget,
                               lane_report *out) {
    lane_report rep = {0, 0, 0, 0};
    queue_lane q(arena, local, layout, lane_id);
    subgroup sg = subgroup::active();
    uint32_t region_off = 0;
    uint32_t region_size = 0;
    bool ok = chunk > 0 && chunk % 4 == 0 && q.region(region, region_off, region_size) &&
              (uint64_t)(lane_id + 1ull) * chunk <= region_size;
    uint32_t k = ok ? 0 : count; // READs finished (checked or failed)
    bool holding = false;
    uint32_t slot = 0;
    uint32_t st = GU_QUEUE_STATUS_READY;
    uint32_t idle = 0;
    backoff b;
    while (sg.ballot(k < count) != 0) {
        bool progress = false;
        bool need = k < count && !holding;
        uint64_t c = (uint64_t)lane_id * count + k;
        if (queue_group::try_alloc(q, sg, need, slot) == GU_QUEUE_STATUS_READY && need) {
            q.publish(slot, queue_request::read(file, c * chunk, region, (uint64_t)lane_id * chunk, chunk, c));
            holding = true;
            progress = true;
        }
        if (holding) {
            queue_completion done = {0, 0, 0, 0};
            uint32_t s = q.poll(slot, done);
            if (s != GU_QUEUE_STATUS_WOULD_BLOCK) {
                if (s == GU_QUEUE_STATUS_READY || s == GU_QUEUE_STATUS_PUMP_STOPPED) {
                    q.free(slot);
                }
                if (s == GU_QUEUE_STATUS_READY && done.done != 0 && done.result == (int32_t)chunk && done.tag == c) {
                    // The READ is DONE (the acquire of done_seq ordered its bytes): checksum them in place.
                    rep.checksum += chunk_checksum(arena, region_off + lane_id * chunk, c * chunk, chunk);
                    rep.bytes += chunk;
                    rep.done++;
                } else {
                    rep.failed++;
                    st = s != GU_QUEUE_STATUS_READY ? s : st;
                }
                holding = false;
                k++;
                progress = true;
            }
        }
        // Uniform: every member sees the same ballot, so all back off, or give up, together.
        if (sg.ballot(progress) != 0) {
            idle = 0;
            b.reset();
        } else {
            if (idle >= budget) {
                break;
            }
            idle++;
            b.pause();
        }
    }
    if (k < count) {
        st = GU_QUEUE_STATUS_TIMED_OUT;
        rep.failed += count - k;
    }
    *out = rep;
    return ok ? st : (uint32_t)program_refused;
}

} // namespace programs
} // namespace gu

#endif // GPU_URING_KERNELS_PUMP_PROGRAMS_H
