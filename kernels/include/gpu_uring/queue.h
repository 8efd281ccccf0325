// gpu_uring/queue.h: the lane side of the io_queue (PROTOCOL.md "io_queue (megakernel pump)", §Q3), as the Rust
// `pump::QueueLane` (host/src/pump/device.rs) and the GLSL (device-shaders/include/gpu_uring_pump.glsl) do it:
// allocate a slot (a bounded scan of CAS attempts on the device-local ownership words), publish a request
// (relaxed stores of the inbox fields, then the release store of the slot's request sequence), poll or wait
// (bounded) for its completion, withdraw it from a stopped pump, free the slot.
//
// Memory (§Q1): the pump arena is host-shared — header, request sequences, region table, slots, regions — and
// reached only through `shared_word` (system-scope loads and stores, no RMW); the device-local block holds one
// ownership word per slot, `own[i] = seq << 2 | state`, the lanes' only RMW (the allocation CAS). No lane waits
// on another lane: allocation fails with WOULD_BLOCK when every slot is taken, and every wait is for the pump
// and bounded. Statuses are GU_QUEUE_STATUS_*.
#ifndef GPU_URING_QUEUE_H
#define GPU_URING_QUEUE_H

#include "atomic.h"
#include "backoff.h"

namespace gu {

// A request as a lane states it (the inbox of an IoSlot).
struct queue_request {
    uint32_t op; // GU_QUEUE_OP_*
    uint32_t file;
    uint32_t buf;
    uint64_t file_offset;
    uint64_t buf_offset;
    uint32_t len;
    uint64_t tag;

    GU_FN static queue_request read(uint32_t file, uint64_t file_offset, uint32_t buf, uint64_t buf_offset,
                                    uint32_t len, uint64_t tag) {
        queue_request r = {GU_QUEUE_OP_READ, file, buf, file_offset, buf_offset, len, tag};
        return r;
    }
    GU_FN static queue_request write(uint32_t file, uint64_t file_offset, uint32_t buf, uint64_t buf_offset,
                                     uint32_t len, uint64_t tag) {
        queue_request r = {GU_QUEUE_OP_WRITE, file, buf, file_offset, buf_offset, len, tag};
        return r;
    }
    // Completes once every earlier request of this lane has (§Q6); moves no bytes.
    GU_FN static queue_request fence(uint64_t tag) {
        queue_request r = {GU_QUEUE_OP_FENCE, 0, 0, 0, 0, 0, tag};
        return r;
    }
    // Moves no bytes; the pump still validates the fields it is given.
    GU_FN static queue_request nop(uint32_t file, uint64_t file_offset, uint32_t buf, uint64_t buf_offset,
                                   uint32_t len, uint64_t tag) {
        queue_request r = {GU_QUEUE_OP_NOP, file, buf, file_offset, buf_offset, len, tag};
        return r;
    }
};

// A finished request, read from its slot's outbox.
struct queue_completion {
    uint32_t done;  // 1: DONE (error == ERR_NONE), 0: FAILED
    int32_t result; // bytes moved, 0, or -errno
    uint32_t error; // GU_QUEUE_ERR_*
    uint64_t tag;
};

class queue_lane {
  public:
    uint8_t *arena;
    uint8_t *local;
    const gpu_uring::PumpLayout *l;
    uint32_t id;
    uint32_t next; // where the next allocation scan starts

    // Lane `lane_id`; lanes start their scans at different slots so they rarely collide.
    GU_FN queue_lane(uint8_t *arena_, uint8_t *local_, const gpu_uring::PumpLayout *layout, uint32_t lane_id)
        : arena(arena_), local(local_), l(layout), id(lane_id),
          next(layout->nslots == 0 ? 0 : (lane_id * 0x9e3779b9u) % layout->nslots) {}

    GU_FN local_word<uint32_t> own(uint32_t i) const {
        return local_word<uint32_t>(reinterpret_cast<uint32_t *>(local + 4u * i));
    }
    GU_FN shared_word<uint32_t> s32(uint32_t off) const {
        return shared_word<uint32_t>(reinterpret_cast<uint32_t *>(arena + off));
    }
    GU_FN shared_word<uint64_t> s64(uint32_t off) const {
        return shared_word<uint64_t>(reinterpret_cast<uint64_t *>(arena + off));
    }
    GU_FN uint32_t slot_off(uint32_t i) const { return l->slots + i * GU_SIZEOF_IO_SLOT; }
    GU_FN shared_word<uint32_t> req_seq(uint32_t i) const { return s32(l->req_seq + 4u * i); }
    GU_FN shared_word<uint32_t> done_seq(uint32_t i) const { return s32(slot_off(i) + GU_IO_SLOT_DONE_SEQ); }
    GU_FN shared_word<uint32_t> pump_state() const { return s32(l->header + GU_QUEUE_HEADER_PUMP_STATE); }

    // Region `h`'s arena offset and size from the region table (the host wrote it before the run; relaxed).
    // False if there is no such region.
    GU_FN bool region(uint32_t h, uint32_t &offset, uint32_t &size) const {
        if (h >= l->nregions) {
            return false;
        }
        offset = s32(l->regions + 8u * h).load(mo::relaxed);
        size = s32(l->regions + 8u * h + 4u).load(mo::relaxed);
        return true;
    }

    // §Q3.1: one bounded scan for a FREE slot; CAS FREE → ALLOCATED with acquire (pairs with the previous
    // owner's release store of FREE: its reads of the old completion and region bytes are done). The slot's
    // sequence stays in the word. READY (`slot`) or WOULD_BLOCK (every slot taken).
    GU_OUTLINE uint32_t try_alloc(uint32_t &slot) {
        uint32_t n = l->nslots;
        for (uint32_t k = 0; k < n; k++) {
            uint32_t i = (next + k) % n;
            local_word<uint32_t> w = own(i);
            uint32_t v = w.load(mo::relaxed);
            if ((v & GU_QUEUE_SLOT_STATE_MASK) != GU_QUEUE_SLOT_FREE) {
                continue;
            }
            // The lanes' only RMW: a device-local word, contended among lanes, never with the host.
            if (w.compare_exchange(v, v | GU_QUEUE_SLOT_ALLOCATED, mo::acquire)) {
                next = (i + 1) % n;
                slot = i;
                return GU_QUEUE_STATUS_READY;
            }
        }
        return GU_QUEUE_STATUS_WOULD_BLOCK;
    }

    // try_alloc up to `budget` times, backing off between scans.
    GU_FN uint32_t alloc(uint32_t budget, uint32_t &slot) {
        backoff b;
        uint32_t n = budget > 0 ? budget : 1;
        for (uint32_t i = 0; i < n; i++) {
            if (try_alloc(slot) == GU_QUEUE_STATUS_READY) {
                return GU_QUEUE_STATUS_READY;
            }
            b.pause();
        }
        return GU_QUEUE_STATUS_WOULD_BLOCK;
    }

    // §Q3.2: fills ALLOCATED slot `slot`'s inbox with `r` and publishes the next sequence (30 bits, wrapping).
    // For a WRITE the region bytes are already written. Returns the sequence.
    GU_FN uint32_t publish(uint32_t slot, const queue_request &r) { return publish_raw(slot, r, 0, 0); }

    // `publish` with the inbox's reserved words as given: non-zero ones make the pump fail the request
    // (ERR_RESERVED) — what the validation probe checks; every other caller publishes zeros.
    GU_OUTLINE uint32_t publish_raw(uint32_t slot, const queue_request &r, uint32_t reserved0, uint32_t reserved1) {
        local_word<uint32_t> w = own(slot);
        uint32_t seq = ((w.load(mo::relaxed) >> GU_QUEUE_SEQ_SHIFT) + 1u) & GU_QUEUE_SEQ_MASK;
        uint32_t so = slot_off(slot);
        // Relaxed stores: the release store of the sequence below orders them before the pump's acquire.
        s32(so + GU_IO_SLOT_OP).store(r.op, mo::relaxed);
        s32(so + GU_IO_SLOT_FILE).store(r.file, mo::relaxed);
        s32(so + GU_IO_SLOT_BUF).store(r.buf, mo::relaxed);
        s64(so + GU_IO_SLOT_FILE_OFFSET).store(r.file_offset, mo::relaxed);
        s64(so + GU_IO_SLOT_BUF_OFFSET).store(r.buf_offset, mo::relaxed);
        s32(so + GU_IO_SLOT_LEN).store(r.len, mo::relaxed);
        s32(so + GU_IO_SLOT_OWNER).store(id, mo::relaxed);
        s64(so + GU_IO_SLOT_TAG).store(r.tag, mo::relaxed);
        s32(so + GU_IO_SLOT_RESERVED).store(reserved0, mo::relaxed);
        s32(so + GU_IO_SLOT_RESERVED + 4u).store(reserved1, mo::relaxed);
        // Release (system scope): the pump's acquire load of this word sees every field above and, for a WRITE,
        // the region bytes this lane wrote; it also orders this publication after the lane's earlier ones (what
        // FENCE relies on, §Q6). This lane is the word's only writer.
        req_seq(slot).store(seq, mo::release);
        // Device-local, lane-private while the lane owns the slot.
        w.store(seq << GU_QUEUE_SEQ_SHIFT | GU_QUEUE_SLOT_PUBLISHED, mo::relaxed);
        return seq;
    }

    // The outbox of `slot` (after an acquire load of done_seq that read this lane's sequence; relaxed).
    GU_FN queue_completion completion(uint32_t slot) const {
        uint32_t so = slot_off(slot);
        queue_completion c;
        c.error = s32(so + GU_IO_SLOT_ERROR).load(mo::relaxed);
        c.done = c.error == GU_QUEUE_ERR_NONE ? 1u : 0u;
        c.result = (int32_t)s32(so + GU_IO_SLOT_RESULT).load(mo::relaxed);
        c.tag = s64(so + GU_IO_SLOT_TAG).load(mo::relaxed);
        return c;
    }

    // §Q3.3: one look. READY (`c`), WOULD_BLOCK (pending), PUMP_STOPPED (the pump stopped and never served it:
    // withdrawn, the slot is ALLOCATED again) or NOT_PUBLISHED (the slot holds no published request).
    GU_OUTLINE uint32_t poll(uint32_t slot, queue_completion &c) {
        if (slot >= l->nslots) {
            return GU_QUEUE_STATUS_NOT_PUBLISHED;
        }
        local_word<uint32_t> w = own(slot);
        uint32_t v = w.load(mo::relaxed);
        if ((v & GU_QUEUE_SLOT_STATE_MASK) != GU_QUEUE_SLOT_PUBLISHED) {
            return GU_QUEUE_STATUS_NOT_PUBLISHED;
        }
        uint32_t seq = v >> GU_QUEUE_SEQ_SHIFT;
        // Acquire (system scope, a waited load): the pump's release store of done_seq made the outbox and any
        // READ data visible.
        if (done_seq(slot).load(mo::acquire) == seq) {
            c = completion(slot);
            return GU_QUEUE_STATUS_READY;
        }
        // Acquire: a STOPPED/FAILED pump writes no slot word after this store, and every completion it made is
        // visible once it is seen.
        uint32_t ps = pump_state().load(mo::acquire);
        if (ps == GU_PUMP_STOPPED || ps == GU_PUMP_FAILED) {
            if (done_seq(slot).load(mo::acquire) == seq) {
                c = completion(slot);
                return GU_QUEUE_STATUS_READY;
            }
            // Never served and never will be: the lane owns the slot again.
            w.store(seq << GU_QUEUE_SEQ_SHIFT | GU_QUEUE_SLOT_ALLOCATED, mo::relaxed);
            return GU_QUEUE_STATUS_PUMP_STOPPED;
        }
        return GU_QUEUE_STATUS_WOULD_BLOCK;
    }

    // Polls up to `budget` times with backoff. TIMED_OUT leaves the request with the pump (wait again before
    // freeing the slot).
    GU_OUTLINE uint32_t wait(uint32_t slot, uint32_t budget, queue_completion &c) {
        backoff b;
        uint32_t n = budget > 0 ? budget : 1;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t st = poll(slot, c);
            if (st != GU_QUEUE_STATUS_WOULD_BLOCK) {
                return st;
            }
            b.pause();
        }
        return GU_QUEUE_STATUS_TIMED_OUT;
    }

    // §Q3.5: frees a slot this lane owns (completed or ALLOCATED). Release: this lane's reads of the completion
    // and of the region bytes happen before the next owner's writes. The sequence stays in the word.
    GU_FN void free(uint32_t slot) {
        if (slot >= l->nslots) {
            return;
        }
        local_word<uint32_t> w = own(slot);
        w.store(w.load(mo::relaxed) & ~(uint32_t)GU_QUEUE_SLOT_STATE_MASK, mo::release);
    }
};

} // namespace gu

#endif // GPU_URING_QUEUE_H
