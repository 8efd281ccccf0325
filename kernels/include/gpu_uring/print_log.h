// gpu_uring/print_log.h: §7.1 group-commit prints through the print log, as the Rust lane does them
// (host/src/protocol/print_log.rs, log_target.rs). A print reserves bytes and one ticket in the log with one
// device-local CAS on `log_reserve`, copies its line there with plain stores (host-shared log bytes, one
// writer: the reserver), and marks its ticket complete in `log_pub` (the §3 publish over tickets, carrying
// the completed byte position). The lane whose CAS advanced the completed prefix rings `log_bell` (the §3
// combining doorbell's LOCK/DIRTY): the holder submits ONE write over every completed, unsubmitted byte, waits
// (bounded) only for the kernel's completion of that write, and submits what accumulated meanwhile; after
// GU_LOG_DUTY_WRITES writes or its wait budget it hands the duty on in the DIRTY bit, which the next lane that
// touches the ring (print, flush, reap) takes.
//
// Memory (§1): every RMW word (log_reserve, log_pub, log_bell, the write's slot log_wstate) is device-local; the
// holder-only words (log_sub, log_written, print_offset in log mode, the statistics) are device-local with one
// writer at a time; the log bytes are host-shared, written with plain stores by the lane that reserved them.
// This file defines the `gu::ring` members ring.h declares; it is included at the end of ring.h.
#ifndef GPU_URING_PRINT_LOG_H
#define GPU_URING_PRINT_LOG_H

#include "ring.h"

namespace gu {

namespace plog {
// log_pub's parts: completed byte position D (low 32), completed ticket prefix C (bits 32–47), done bitmap of
// C … C+15 (bits 48–63).
GU_FN uint32_t pub_d(uint64_t w) { return (uint32_t)w; }
GU_FN uint32_t pub_c(uint64_t w) { return (uint32_t)(w >> 32) & 0xffffu; }
GU_FN uint32_t pub_bits(uint64_t w) { return (uint32_t)(w >> 48) & 0xffffu; }
GU_FN uint64_t pub_word(uint32_t d, uint32_t c, uint32_t bits) {
    return (uint64_t)d | (uint64_t)(c & 0xffffu) << 32 | (uint64_t)(bits & 0xffffu) << 48;
}
// Offset of ticket t's entry in log_starts / log_ends.
GU_FN uint32_t tix(uint32_t t) { return ((t & 0xffffu) % GU_LOG_TICKETS) * 4u; }
} // namespace plog

// The log target from SharedControl (host-written before the run): PRINT_LOG and sane words. A log outside the
// arena or of a size that is not a power of two ≥ 4096 is counted as a violation and not used.
GU_OUTLINE bool ring::read_log_target(log_target &t) const {
    // Acquire: pairs with the host's release store of the flags after the target and the log's place.
    uint32_t flags = s32(ctl(GU_SHARED_CONTROL_PRINT_FLAGS)).load(mo::acquire);
    if ((flags & GU_PRINT_LOG) == 0) {
        return false;
    }
    int32_t fd = si32(ctl(GU_SHARED_CONTROL_PRINT_FD)).load(mo::relaxed);
    uint32_t base = s32(ctl(GU_SHARED_CONTROL_PRINT_LOG)).load(mo::relaxed);
    uint32_t size = s32(ctl(GU_SHARED_CONTROL_PRINT_LOG_BYTES)).load(mo::relaxed);
    if (size < 4096 || (size & (size - 1u)) != 0 || base < l->staging || (uint64_t)base + size > l->arena_size) {
        violation();
        return false;
    }
    t.base = base;
    t.size = size;
    t.flags = flags;
    t.fd = fd;
    return true;
}

// §7.1 step 1: `len` bytes and one ticket with one CAS on log_reserve. READY (`ticket`, `start`), or why not:
// log_no_bytes (`free_bytes` are free), log_no_ticket, log_contended, or PROTOCOL_VIOLATION (counted).
GU_OUTLINE uint32_t ring::reserve_log(const log_target &t, uint32_t len, uint32_t &ticket, uint32_t &start,
                                      uint32_t &free_bytes) const {
    local_word<uint64_t> res = l64(GU_LOCAL_CONTROL_LOG_RESERVE);
    for (uint32_t i = 0; i < GU_RESERVE_TRIES; i++) {
        // (R, N) first and, before a violation is concluded, again: unchanged, it held while `written` and C were
        // read, where R − written ≤ size and N − C ≤ 16 hold. Acquire: pairs with the previous reserver's
        // release CAS, so the loads below see at least the `written` and C that reserver checked against.
        uint64_t cur = res.load(mo::acquire);
        // Acquire: pairs with the holder's release of log_written (the kernel is done with the bytes before it).
        uint32_t written = l32(GU_LOCAL_CONTROL_LOG_WRITTEN).load(mo::acquire);
        // Acquire: every ticket below C was reserved before the completing CAS this reads.
        uint32_t c = plog::pub_c(l64(GU_LOCAL_CONTROL_LOG_PUB).load(mo::acquire));
        uint32_t r = (uint32_t)cur;
        uint32_t n = (uint32_t)(cur >> 32) & 0xffffu;
        uint32_t used = r - written;
        uint32_t outstanding = (n - c) & 0xffffu;
        if (used > t.size || outstanding > GU_LOG_TICKETS) {
            // Relaxed: coherence orders it after the acquire loads above. Moved: read at different points.
            if (res.load(mo::relaxed) != cur) {
                continue;
            }
            violation();
            return GU_STATUS_PROTOCOL_VIOLATION;
        }
        if (outstanding == GU_LOG_TICKETS) {
            return log_no_ticket;
        }
        if (t.size - used < len) {
            free_bytes = t.size - used;
            return log_no_bytes;
        }
        uint64_t next = (uint64_t)(r + len) | (uint64_t)((n + 1u) & 0xffffu) << 32;
        // Release on success: the next reserver's acquire sees at least the `written` and C this check used.
        if (res.compare_exchange(cur, next, mo::release)) {
            // Relaxed: released by this ticket's completing CAS on log_pub.
            l32(GU_LOCAL_CONTROL_LOG_STARTS + plog::tix(n)).store(r, mo::relaxed);
            // Release: the lane that advances the prefix over this ticket reads the end (acquire) before its CAS.
            l32(GU_LOCAL_CONTROL_LOG_ENDS + plog::tix(n)).store(r + len, mo::release);
            ticket = n;
            start = r;
            return GU_STATUS_READY;
        }
    }
    return log_contended;
}

// §7.1 step 2: `len` bytes from arena offset `src` into the log at byte position `pos` (split at the log's
// end). Plain byte stores into host-shared memory this lane reserved; released by the completing CAS.
GU_FN void ring::copy_into_log(const log_target &t, uint32_t pos, uint32_t src, uint32_t len) const {
    for (uint32_t i = 0; i < len; i++) {
        arena[t.base + ((pos + i) & (t.size - 1u))] = arena[src + i];
    }
}

// §7.1 step 3: marks `ticket` (bytes up to `end`) complete in log_pub and advances the completed prefix over
// the done tickets, carrying the byte position. True if this CAS advanced the prefix (the caller rings the duty
// word). The end of the new prefix's last ticket is read (acquire) before the CAS; it cannot be a later ticket's
// that reuses the index (see the Rust `complete_range`).
GU_OUTLINE bool ring::complete_log(uint32_t ticket, uint32_t end) const {
    local_word<uint64_t> w = l64(GU_LOCAL_CONTROL_LOG_PUB);
    // Acquire: the ends of tickets other lanes marked (released by their CASes).
    uint64_t old = w.load(mo::acquire);
    for (uint32_t i = 0; i < GU_RESERVE_TRIES * 4u; i++) {
        uint32_t d = plog::pub_d(old);
        uint32_t c = plog::pub_c(old);
        uint32_t o = (ticket - c) & 0xffffu;
        if (o >= GU_LOG_TICKETS) {
            violation();
            return false;
        }
        uint32_t b = plog::pub_bits(old) | 1u << o;
        uint32_t m = proto::trailing_ones(b);
        uint64_t next;
        if (m == 0) {
            next = plog::pub_word(d, c, b);
        } else {
            uint32_t last = (c + m - 1u) & 0xffffu;
            // Acquire: pairs with the reserver's release store of its end.
            uint32_t nd = last == (ticket & 0xffffu) ? end : l32(GU_LOCAL_CONTROL_LOG_ENDS + plog::tix(last)).load(mo::acquire);
            next = plog::pub_word(nd, c + m, m >= 16 ? 0u : b >> m);
        }
        // AcqRel: release publishes this lane's log bytes (and end) to whoever acquires the prefix; acquire takes
        // in the marks this CAS consumes. A failure loads `old` (another lane's progress).
        if (w.compare_exchange(old, next, mo::acq_rel)) {
            return m > 0;
        }
    }
    // Only a word rewritten over and over by device code gets here.
    violation();
    return false;
}

// Leaves the duty in the DIRTY bit for the next lane that touches the ring. Release: the next holder's acquire
// sees the holder-only words.
GU_FN void ring::hand_off_log() const {
    local_word<uint32_t> bell = l32(GU_LOCAL_CONTROL_LOG_BELL);
    bell.fetch_or(GU_BELL_DIRTY, mo::relaxed);
    bell.fetch_and(~(uint32_t)GU_BELL_LOCK, mo::release);
}

// (b) of the holder: the completed log write (state word `sw`, DONE) advances log_written by what the kernel
// wrote; a short write's remainder is unsubmitted again (the next write starts with it); a failed write is
// counted and its bytes dropped (the log must not stall on a target that refuses them).
GU_OUTLINE void ring::finish_log_write(const log_target &t, uint32_t sw) const {
    int32_t res = li32(GU_LOCAL_CONTROL_LOG_WRES).load(mo::relaxed);
    // Holder-only words: relaxed (the bell's release/acquire chain orders them between holders).
    uint32_t written = l32(GU_LOCAL_CONTROL_LOG_WRITTEN).load(mo::relaxed);
    uint32_t sub = l32(GU_LOCAL_CONTROL_LOG_SUB).load(mo::relaxed);
    uint32_t len = sub - written < t.size ? sub - written : t.size;
    uint32_t n = len;
    if (res > 0) {
        n = (uint32_t)res < len ? (uint32_t)res : len;
        if (n < len) {
            local_word<uint32_t> s = l32(GU_LOCAL_CONTROL_LOG_SHORT_WRITES);
            s.store(s.load(mo::relaxed) + 1u, mo::relaxed);
        }
    } else {
        // Relaxed: statistics, mirrored by the CQ-bell holder.
        l32(GU_LOCAL_CONTROL_PRINT_ERRORS).fetch_add(1, mo::relaxed);
        li32(GU_LOCAL_CONTROL_FF_LAST_ERROR).store(res, mo::relaxed);
    }
    uint32_t now = written + n;
    if ((t.flags & GU_PRINT_OFFSET_MODE) != 0) {
        // In log mode print_offset is holder-only: the file offset of log_written.
        local_word<uint64_t> off = l64(GU_LOCAL_CONTROL_PRINT_OFFSET);
        off.store(off.load(mo::relaxed) + n, mo::relaxed);
    }
    l32(GU_LOCAL_CONTROL_LOG_SUB).store(now, mo::relaxed);
    // Release: reservers that acquire it may overwrite the bytes before it (the kernel is done with them).
    l32(GU_LOCAL_CONTROL_LOG_WRITTEN).store(now, mo::release);
    l32(GU_LOCAL_CONTROL_LOG_WSTATE).store(proto::slot_word(proto::slot_generation(sw), GU_RING_SLOT_FREE),
                                           mo::relaxed);
}

// (c) of the holder: one write of the completed, unsubmitted bytes [sub, d) (cut at the log's end): the log's
// slot armed, one credit and one ticket, WRITE_FIXED from the staging registration at print_offset (offset
// mode) or the file position, published. False: no room now (nothing done), or sq_pub rewritten (counted).
GU_OUTLINE bool ring::submit_log_write(const log_target &t, uint32_t sub, uint32_t d, uint32_t &sq_head) const {
    uint32_t off = sub & (t.size - 1u);
    uint32_t len = d - sub < t.size - off ? d - sub : t.size - off;
    if (take_credits(1) == 0) {
        return false;
    }
    uint32_t ticket = 0;
    uint32_t k = 0;
    if (take_tickets(1, sq_head, ticket, k) != GU_STATUS_READY) {
        return_credits(1);
        return false;
    }
    local_word<uint32_t> wstate = l32(GU_LOCAL_CONTROL_LOG_WSTATE);
    // Relaxed: only the holder arms the slot; the publication release orders it before the kernel can complete
    // the write.
    uint32_t gen = proto::next_generation(proto::slot_generation(wstate.load(mo::relaxed)));
    wstate.store(proto::slot_word(gen, GU_RING_SLOT_PENDING), mo::relaxed);
    l32(GU_LOCAL_CONTROL_LOG_SUB).store(sub + len, mo::relaxed);
    uint64_t file_off = (t.flags & GU_PRINT_OFFSET_MODE) != 0 ? l64(GU_LOCAL_CONTROL_PRINT_OFFSET).load(mo::relaxed)
                                                              : ~(uint64_t)0;
    file_ref f = (t.flags & GU_PRINT_FIXED_FILE) != 0 ? fixed_file((uint32_t)t.fd) : raw_fd(t.fd);
    sqe s = sqe::on_file(GU_IORING_OP_WRITE_FIXED, f, file_off, l->arena_host_base + t.base + off, len,
                         l->staging_buf_index);
    s.set_user_data(proto::slot_user_data(GU_LOG_SLOT, gen));
    write_sqe(ticket, s);
    if (publish_tickets(ticket, 1) != GU_STATUS_READY) {
        // sq_pub rewritten (counted): the write is not in flight.
        wstate.store(proto::slot_word(gen, GU_RING_SLOT_FREE), mo::relaxed);
        l32(GU_LOCAL_CONTROL_LOG_SUB).store(sub, mo::relaxed);
        return_credits(1);
        return false;
    }
    local_word<uint32_t> w = l32(GU_LOCAL_CONTROL_LOG_WRITES);
    w.store(w.load(mo::relaxed) + 1u, mo::relaxed);
    return true;
}

// The holder's rounds: the write in flight processed when it completes, the completed prefix submitted, the
// duty released — or handed on after GU_LOG_DUTY_WRITES writes or `budget` polls of one wait. Its waits are
// for the kernel only (its own write's CQE), reaping with `ring::reap` (which takes no log duty: this lane
// holds it).
GU_OUTLINE void ring::hold_log(const log_target &t, uint32_t &cq_tail, uint32_t &sq_head, uint32_t budget) const {
    local_word<uint32_t> bell = l32(GU_LOCAL_CONTROL_LOG_BELL);
    local_word<uint32_t> wstate = l32(GU_LOCAL_CONTROL_LOG_WSTATE);
    uint32_t writes = 0;
    uint32_t polls = 0;
    backoff b;
    for (;;) {
        // (a) Acquire: synchronises with every lane whose DIRTY this clears: their prefix advances are visible.
        bell.fetch_and(~(uint32_t)GU_BELL_DIRTY, mo::acquire);
        // (b) The write in flight, if any: wait for the kernel (only), bounded.
        uint32_t sw = wstate.load(mo::acquire);
        while (proto::slot_state(sw) == GU_RING_SLOT_PENDING || proto::slot_state(sw) == GU_RING_SLOT_REAPING) {
            if (polls >= budget) {
                hand_off_log();
                return;
            }
            // The kernel's CQ tail is a bus round trip on a GPU: polled at growing intervals, while the
            // device-local slot word shows any other lane's reap at once.
            if (polls < 2 || (polls & (polls - 1u)) == 0) {
                reap(16, cq_tail);
            }
            // Acquire: pairs with the reaper's release of DONE (the result is written).
            sw = wstate.load(mo::acquire);
            if (proto::slot_state(sw) == GU_RING_SLOT_DONE) {
                break;
            }
            b.pause();
            polls++;
        }
        if (proto::slot_state(sw) == GU_RING_SLOT_DONE) {
            finish_log_write(t, sw);
        }
        // (c) Acquire: the log bytes below D, released by the completing CASes.
        uint32_t d = plog::pub_d(l64(GU_LOCAL_CONTROL_LOG_PUB).load(mo::acquire));
        uint32_t sub = l32(GU_LOCAL_CONTROL_LOG_SUB).load(mo::relaxed);
        if (d != sub) {
            if (d - sub > t.size) {
                // The prefix moved backwards or past the log: rewritten. Counted; the duty stays for the host.
                violation();
                hand_off_log();
                return;
            }
            if (submit_log_write(t, sub, d, sq_head)) {
                writes++;
                // Each wait for the kernel has its own budget: the duty is bounded by GU_LOG_DUTY_WRITES waits.
                polls = 0;
                b.reset();
                if (writes >= GU_LOG_DUTY_WRITES) {
                    // Bounded duty: the write is in flight; the next lane that touches the ring waits for it.
                    hand_off_log();
                    return;
                }
            } else {
                // No SQ room or credit now: reap, back off, try again within the budget.
                if (polls >= budget) {
                    hand_off_log();
                    return;
                }
                reap(16, cq_tail);
                b.pause();
                polls++;
            }
            continue;
        }
        // (d) Nothing in flight, nothing completed and unsubmitted. Release: the next holder's acquire sees the
        // holder-only words. Fails only if DIRTY was set again meanwhile → next round.
        uint32_t locked = GU_BELL_LOCK;
        if (bell.compare_exchange(locked, 0, mo::release)) {
            return;
        }
    }
}

// D1 of §3 on log_bell, by a lane whose CAS advanced the completed prefix (or that found a handed-on duty):
// become the holder, or leave DIRTY for the holder and return.
GU_OUTLINE void ring::ring_log(const log_target &t, uint32_t &cq_tail, uint32_t &sq_head, uint32_t budget) const {
    local_word<uint32_t> bell = l32(GU_LOCAL_CONTROL_LOG_BELL);
    // AcqRel as the doorbells (§3): release carries this lane's prefix advance to the holder whose DIRTY clear
    // reads it; acquire takes in the previous holder's holder-only words.
    uint32_t idle = 0;
    if (bell.compare_exchange(idle, GU_BELL_LOCK, mo::acq_rel) ||
        (bell.fetch_or(GU_BELL_LOCK | GU_BELL_DIRTY, mo::acq_rel) & GU_BELL_LOCK) == 0) {
        hold_log(t, cq_tail, sq_head, budget);
    }
}

// A duty a holder handed on: one relaxed load of log_bell; DIRTY without LOCK means nobody holds it.
GU_OUTLINE void ring::take_pending_log(uint32_t &cq_tail, uint32_t &sq_head, uint32_t budget) const {
    // Relaxed: a hint; ring_log's RMW orders.
    uint32_t w = l32(GU_LOCAL_CONTROL_LOG_BELL).load(mo::relaxed);
    if ((w & GU_BELL_DIRTY) != 0 && (w & GU_BELL_LOCK) == 0) {
        log_target t;
        if (read_log_target(t)) {
            ring_log(t, cq_tail, sq_head, budget);
        }
    }
}

} // namespace gu

#endif // GPU_URING_PRINT_LOG_H
