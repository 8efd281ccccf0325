// gpu_uring/lane.h: one lane's calls (PROTOCOL.md §3–§7) on top of the shared steps of ring.h — reserve,
// commit (the §4 flag rule and completion modes), submit, writes and reads of registered files, poll/wait,
// prints (§7.1 through the print log, §7.2 one write per line), flush — as the Rust `Lane`
// (host/src/protocol/{lane,publish,ops,print_log}.rs) does them. Lane-private state only; everything shared is
// in the ring's memory. The subgroup-aggregated calls are gpu_uring/group.h.
#ifndef GPU_URING_LANE_H
#define GPU_URING_LANE_H

#include "ring.h"

namespace gu {

// One lane (a subgroup of one). Lane-private state only; everything shared is in the ring's memory.
class lane {
  public:
    ring r;
    uint32_t id;
    uint32_t base_flags;
    uint32_t sq_head_seen = 0;
    uint32_t cq_tail_seen = 0;
    uint32_t next_line = 0;
    uint32_t stream_pending = proto::no_stream;
    uint32_t print_flags = 0;
    int32_t print_fd = 0;
    // The print log (§7.1), read once the print target is: whether prints go through it, and where.
    bool log_read = false;
    bool has_log = false;
    log_target log_t = {0, 0, 0, 0};
    // End byte position of this lane's last line in the log (what flush waits to see written).
    bool has_log_end = false;
    uint32_t log_end = 0;

    GU_FN lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane_id)
        : r{arena, local, layout}, id(lane_id),
          base_flags((layout->ring_flags & GU_RING_FLAG_CONFINED) != 0 ? GU_IOSQE_FIXED_FILE : 0) {}

    // Global index of this lane's slot `k`; false if it has none.
    GU_FN bool global_slot(uint32_t k, uint32_t &g) const {
        if (id >= r.l->lanes || k >= r.l->slots_per_lane) {
            return false;
        }
        g = id * r.l->slots_per_lane + k;
        return true;
    }

    // §5 reap pass: a handed-on print-log duty first (this lane takes it; its waits are on the kernel only, at
    // most 4096 polls — the Rust LOG_DRAFT_POLLS), then up to `max` CQEs. How many.
    GU_OUTLINE uint32_t reap(uint32_t max) {
        r.take_pending_log(cq_tail_seen, sq_head_seen, 4096u);
        return r.reap(max, cq_tail_seen);
    }

    // One attempt at an SQ ticket with its CQ credit; never waits. READY (`ticket`) or WOULD_BLOCK.
    GU_FN uint32_t try_reserve(uint32_t &ticket) {
        r.take_pending(proto::sq_bell);
        r.take_pending(proto::cq_bell);
        if (r.take_credits(1) == 0) {
            return GU_STATUS_WOULD_BLOCK;
        }
        uint32_t k = 0;
        if (r.take_tickets(1, sq_head_seen, ticket, k) != GU_STATUS_READY) {
            // Full, contended or a violation (counted): the credit goes back.
            r.return_credits(1);
            return GU_STATUS_WOULD_BLOCK;
        }
        return GU_STATUS_READY;
    }

    // Reserves, reaping and backing off between attempts, at most `budget` attempts: READY or TIMED_OUT.
    GU_OUTLINE uint32_t reserve(uint32_t budget, uint32_t &ticket) {
        backoff b;
        for (uint32_t i = 0;; i++) {
            if (try_reserve(ticket) == GU_STATUS_READY) {
                return GU_STATUS_READY;
            }
            // Always reap before giving up: with a zero budget this is what frees credits.
            reap(16);
            if (i >= budget) {
                return GU_STATUS_TIMED_OUT;
            }
            b.pause();
        }
    }

    // The filler of a ticket that cannot carry the caller's SQE: a fire-and-forget NOP of no lane, whose CQE
    // returns the credit.
    GU_OUTLINE void abandon(uint32_t ticket) const {
        sqe s = sqe::nop();
        s.set_flags(base_flags);
        s.set_user_data(GU_TAG_FF_UD | proto::ff_user_data(proto::hole_lane, 0));
        r.publish_sqe(ticket, s);
    }

    // The flag rule of §4.
    GU_FN static bool flags_ok(uint32_t flags, completion c) {
        if ((flags & GU_IOSQE_CQE_SKIP_SUCCESS) != 0) {
            return false;
        }
        return !(c.kind == complete_skip && (flags & (GU_IOSQE_IO_LINK | GU_IOSQE_IO_HARDLINK)) != 0);
    }

    // Arms global slot `g` (this lane's): bumps its generation, PENDING; returns the user_data.
    GU_FN uint64_t arm(uint32_t g) const {
        uint32_t so = r.slot_off(g);
        r.l32(so + GU_COMPLETION_SLOT_OWNER).store(id, mo::relaxed);
        local_word<uint32_t> state = r.l32(so + GU_COMPLETION_SLOT_STATE);
        // Relaxed: only the owner writes a FREE slot; the publication release orders the new word before the
        // kernel can complete the operation.
        uint32_t gen = proto::next_generation(proto::slot_generation(state.load(mo::relaxed)));
        state.store(proto::slot_word(gen, GU_RING_SLOT_PENDING), mo::relaxed);
        return proto::slot_user_data(g, gen);
    }

    // §3 fill + publish of a reserved ticket in completion mode `c` (`line_plus_1`: the staging line of a
    // print, 0 none). READY, BAD_FLAGS / BAD_SLOT (the ticket is published as the filler NOP), or
    // PROTOCOL_VIOLATION (sq_pub rewritten: the mode's bookkeeping is undone).
    GU_OUTLINE uint32_t commit(uint32_t ticket, sqe s, completion c, uint32_t line_plus_1 = 0) {
        uint32_t st = prepare(s, c, line_plus_1);
        if (st != GU_STATUS_READY) {
            abandon(ticket);
            return st;
        }
        st = r.publish_sqe(ticket, s);
        if (st != GU_STATUS_READY) {
            unprepare(c, line_plus_1);
        }
        return st;
    }

    // The mode's half of a commit (§4): the flag rule and the slot range (BAD_FLAGS / BAD_SLOT: nothing done),
    // then `s`'s user_data and flags and the mode's bookkeeping — the fire-and-forget line word and in-flight
    // count, the skip-success credit returned, the slot armed.
    GU_OUTLINE uint32_t prepare(sqe &s, completion c, uint32_t line_plus_1) {
        uint32_t g = 0;
        if (!flags_ok(s.flags(), c)) {
            return GU_STATUS_BAD_FLAGS;
        }
        if (c.kind == complete_slot && !global_slot(c.slot, g)) {
            return GU_STATUS_BAD_SLOT;
        }
        uint32_t flags = s.flags() | base_flags;
        if (c.kind == complete_ff) {
            s.set_user_data(GU_TAG_FF_UD | proto::ff_user_data(id, line_plus_1));
            if (id < r.l->lanes) {
                if (line_plus_1 != 0) {
                    // Relaxed: published by the SQ tail release before any CQE can clear it.
                    r.lane_word(id, line_plus_1 - 1).store(1, mo::relaxed);
                }
                r.lane_word(id, r.l->staging_lines).fetch_add(1, mo::relaxed);
            }
        } else if (c.kind == complete_skip) {
            flags |= GU_IOSQE_CQE_SKIP_SUCCESS;
            s.set_user_data(GU_TAG_SKIP_UD | proto::ff_user_data(id, 0));
            // No CQE on success: the credit goes back now; failures use the headroom.
            r.return_credits(1);
        } else {
            s.set_user_data(arm(g));
        }
        s.set_flags(flags);
        return GU_STATUS_READY;
    }

    // Undoes `prepare` for an SQE that was not published (a window violation, counted), so flush and quiesce
    // wait for nothing: the line word and in-flight count, the slot freed, the credit back.
    GU_OUTLINE void unprepare(completion c, uint32_t line_plus_1) {
        if (c.kind == complete_ff) {
            if (id < r.l->lanes) {
                if (line_plus_1 != 0) {
                    r.lane_word(id, line_plus_1 - 1).store(0, mo::relaxed);
                }
                r.lane_word(id, r.l->staging_lines).fetch_add(0xffffffffu, mo::relaxed);
            }
            r.return_credits(1);
        } else if (c.kind == complete_slot) {
            uint32_t g = 0;
            if (global_slot(c.slot, g)) {
                local_word<uint32_t> state = r.l32(r.slot_off(g) + GU_COMPLETION_SLOT_STATE);
                uint32_t gen = proto::slot_generation(state.load(mo::relaxed));
                state.store(proto::slot_word(gen, GU_RING_SLOT_FREE), mo::relaxed);
            }
            r.return_credits(1);
        }
    }

    // Publishes `s` exactly as given (no flag rule, no flags added, user_data kept): what device code outside
    // the library could write. One convenience, as the Rust `commit_exact`: a `user_data` of `TAG_SLOT | g`
    // with generation 0 naming one of this lane's slots arms that slot and is published with the armed
    // generation, so the caller can wait on it. A window violation is counted inside.
    GU_OUTLINE uint32_t commit_exact(uint32_t ticket, sqe s) const {
        uint64_t ud = s.user_data();
        uint32_t g = (uint32_t)ud;
        uint32_t spl = r.l->slots_per_lane;
        bool own = id < r.l->lanes && g >= id * spl && g - id * spl < spl;
        if ((uint32_t)(ud >> GU_TAG_SHIFT) == GU_TAG_SLOT && ((uint32_t)(ud >> 32) & GU_RING_SLOT_GEN_MASK) == 0 &&
            own) {
            s.set_user_data(arm(g));
        }
        return r.publish_sqe(ticket, s);
    }

    // Reserve (within `budget`) and commit. Refused before reserving: BAD_FLAGS, BAD_SLOT.
    GU_OUTLINE uint32_t submit(const sqe &s, completion c, uint32_t budget) {
        uint32_t g = 0;
        if (!flags_ok(s.flags(), c)) {
            return GU_STATUS_BAD_FLAGS;
        }
        if (c.kind == complete_slot && !global_slot(c.slot, g)) {
            return GU_STATUS_BAD_SLOT;
        }
        uint32_t ticket = 0;
        uint32_t st = reserve(budget, ticket);
        if (st != GU_STATUS_READY) {
            return st;
        }
        return commit(ticket, s, c);
    }

    GU_FN uint32_t nop(completion c, uint32_t budget) { return submit(sqe::nop(), c, budget); }

    // Writes arena bytes [arena_off, arena_off + len) to `f` at `file_off` (all ones: at the file position), in
    // completion mode `c`: WRITE_FIXED from the staging or fixed region, a plain WRITE otherwise.
    GU_FN uint32_t write(file_ref f, uint32_t arena_off, uint32_t len, uint64_t file_off, completion c,
                         uint32_t budget) {
        return submit(r.write_sqe(f, arena_off, len, file_off), c, budget);
    }

    // Reads `len` bytes of `f` at `file_off` into the fixed region at `fixed_off` (READ_FIXED), waited on slot
    // `k`: poll or wait on it, then read the bytes (system-scope loads; the slot's DONE acquire orders them).
    GU_FN uint32_t read_fixed(file_ref f, uint32_t fixed_off, uint32_t len, uint64_t file_off, uint32_t k,
                              uint32_t budget) {
        return submit(r.read_fixed_sqe(f, fixed_off, len, file_off), in_slot(k), budget);
    }

    // ---- §6 waiting ----------------------------------------------------------------------------------

    // One reap pass, then slot `k`: READY (`result`; the slot is freed), WOULD_BLOCK, NOT_PENDING, BAD_SLOT.
    GU_OUTLINE uint32_t poll(uint32_t k, int32_t &result) {
        uint32_t g = 0;
        if (!global_slot(k, g)) {
            return GU_STATUS_BAD_SLOT;
        }
        reap(16);
        uint32_t so = r.slot_off(g);
        local_word<uint32_t> state = r.l32(so + GU_COMPLETION_SLOT_STATE);
        // Acquire: pairs with the reaper's release of DONE (result and flags are written).
        uint32_t word = state.load(mo::acquire);
        uint32_t s = proto::slot_state(word);
        if (s == GU_RING_SLOT_DONE) {
            result = r.li32(so + GU_COMPLETION_SLOT_RESULT).load(mo::relaxed);
            state.store(proto::slot_word(proto::slot_generation(word), GU_RING_SLOT_FREE), mo::relaxed);
            return GU_STATUS_READY;
        }
        // A state no value names (a rewritten word) reads as still in flight.
        return s == GU_RING_SLOT_FREE ? GU_STATUS_NOT_PENDING : GU_STATUS_WOULD_BLOCK;
    }

    // Polls slot `k` up to `budget` times with backoff: READY or TIMED_OUT (or NOT_PENDING / BAD_SLOT).
    GU_OUTLINE uint32_t wait(uint32_t k, uint32_t budget, int32_t &result) {
        backoff b;
        uint32_t n = budget > 0 ? budget : 1;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t st = poll(k, result);
            if (st != GU_STATUS_WOULD_BLOCK) {
                return st;
            }
            b.pause();
        }
        return GU_STATUS_TIMED_OUT;
    }

    // Fire-and-forget operations of this lane in flight. Acquire: pairs with the reapers' release decrements.
    GU_FN uint32_t in_flight() const {
        return id < r.l->lanes ? r.lane_word(id, r.l->staging_lines).load(mo::acquire) : 0;
    }

    // ---- §7 prints -----------------------------------------------------------------------------------

    // The print target, read once: flags with acquire (pairs with the host's release after the fd and the
    // offset), then the fd.
    GU_FN uint32_t target() {
        if (print_flags == 0) {
            uint32_t f = r.s32(r.ctl(GU_SHARED_CONTROL_PRINT_FLAGS)).load(mo::acquire);
            print_fd = r.si32(r.ctl(GU_SHARED_CONTROL_PRINT_FD)).load(mo::relaxed);
            print_flags = f;
        }
        return print_flags;
    }

    // The last stream print's result: waits (bounded) for it; a result other than the line's length counts in
    // print_errors.
    GU_OUTLINE uint32_t finish_stream_print(uint32_t budget) {
        if (stream_pending == proto::no_stream) {
            return GU_STATUS_READY;
        }
        int32_t res = 0;
        uint32_t st = wait(0, budget, res);
        if (st != GU_STATUS_READY) {
            return st;
        }
        if (res != (int32_t)stream_pending) {
            r.l32(GU_LOCAL_CONTROL_PRINT_ERRORS).fetch_add(1, mo::relaxed);
            if (res < 0) {
                r.li32(GU_LOCAL_CONTROL_FF_LAST_ERROR).store(res, mo::relaxed);
            }
        }
        stream_pending = proto::no_stream;
        return GU_STATUS_READY;
    }

    // Waits (bounded, reaping) until staging line `j` is free. Acquire: pairs with the reaper's release once
    // the kernel is done reading the line.
    GU_OUTLINE uint32_t wait_line_free(uint32_t j, uint32_t budget) {
        backoff b;
        for (uint32_t i = 0;; i++) {
            if (r.lane_word(id, j).load(mo::acquire) == 0) {
                return GU_STATUS_READY;
            }
            reap(16);
            if (r.lane_word(id, j).load(mo::acquire) == 0) {
                return GU_STATUS_READY;
            }
            if (i >= budget) {
                return GU_STATUS_TIMED_OUT;
            }
            b.pause();
        }
    }

    // The file prints go to: the registered print slot (PRINT_FIXED_FILE) or a raw fd.
    GU_FN file_ref print_file() const {
        return (print_flags & GU_PRINT_FIXED_FILE) != 0 ? fixed_file((uint32_t)print_fd) : raw_fd(print_fd);
    }

    // §7 first half: the target, this lane's next staging line `j` made reusable (offset mode: bounded wait
    // until the kernel is done with it; stream mode: the previous line's result), the line formatted straight
    // into it (`len` bytes, newline included). READY, or the status of the step that failed (WOULD_BLOCK: no
    // print target; LINE_TOO_LONG: the line with its newline is longer than the ring's lines — nothing of it
    // may be printed, and the staging line stays free for the next).
    template <class... Args> GU_FN uint32_t stage(uint32_t budget, uint32_t &j, uint32_t &len, const Args &...args) {
        const gpu_uring::RingLayout *l = r.l;
        uint32_t pflags = target();
        if (pflags == 0 || id >= l->lanes || l->staging_lines == 0) {
            return GU_STATUS_WOULD_BLOCK;
        }
        j = next_line % l->staging_lines;
        uint32_t st = (pflags & GU_PRINT_OFFSET_MODE) != 0 ? wait_line_free(j, budget) : finish_stream_print(budget);
        if (st != GU_STATUS_READY) {
            return st;
        }
        // The staging line is this lane's until its write is published: plain stores into the arena.
        gu::line text(reinterpret_cast<char *>(r.arena + r.line_off(id, j)), l->line_bytes);
        len = format(text, args...);
        return text.truncated() ? GU_STATUS_LINE_TOO_LONG : GU_STATUS_READY;
    }

    // Whether prints go through the print log (§7.1): PRINT_LOG set by the host and the log's words sane.
    // Read once the print target is set.
    GU_FN bool log_mode() {
        if (!log_read && target() != 0) {
            has_log = id < r.l->lanes && r.read_log_target(log_t);
            log_read = true;
        }
        return has_log;
    }

    // Takes a handed-on print-log duty (every lane that touches the ring does, §7.1).
    GU_FN void take_log_duty(uint32_t budget) { r.take_pending_log(cq_tail_seen, sq_head_seen, budget); }

    // Whether the kernel has written this lane's last log line (true if it printed none through the log).
    // Acquire: pairs with the holder's release of log_written.
    GU_FN bool log_flushed() const {
        return !has_log_end || (int32_t)(r.l32(GU_LOCAL_CONTROL_LOG_WRITTEN).load(mo::acquire) - log_end) >= 0;
    }

    // §7.1 first half: the line formatted into the lane's first staging line (free unless a line-mode write
    // of it is still in flight: bounded wait), `len` bytes with the newline. LINE_TOO_LONG as in `stage`.
    template <class... Args> GU_FN uint32_t stage_log(uint32_t budget, uint32_t &len, const Args &...args) {
        const gpu_uring::RingLayout *l = r.l;
        if (l->staging_lines == 0 || id >= l->lanes) {
            return GU_STATUS_WOULD_BLOCK;
        }
        uint32_t st = wait_line_free(0, budget);
        if (st != GU_STATUS_READY) {
            return st;
        }
        gu::line text(reinterpret_cast<char *>(r.arena + r.line_off(id, 0)), l->line_bytes);
        len = format(text, args...);
        return text.truncated() ? GU_STATUS_LINE_TOO_LONG : GU_STATUS_READY;
    }

    // §7.1: one line through the print log. The line is formatted into the lane's first staging line (its own:
    // no line write reads it in log mode), then: reserve its bytes and a ticket (retrying within `budget`,
    // taking handed-on duty, reaping at growing intervals, backing off), copy it into the log, complete the
    // range, and ring the duty word if the completed prefix moved. READY: the line will be written (by this
    // lane's duty, another lane's, or the host after the run); TIMED_OUT: nothing was reserved, no byte of the
    // line is in the log; LINE_TOO_LONG: the line does not fit the ring's lines, nothing was reserved;
    // PROTOCOL_VIOLATION: a log word was rewritten (counted).
    template <class... Args> GU_FN uint32_t print_log(uint32_t budget, const Args &...args) {
        uint32_t len = 0;
        uint32_t st = stage_log(budget, len, args...);
        if (st != GU_STATUS_READY) {
            return st;
        }
        uint32_t src = r.line_off(id, 0);
        uint32_t duty = budget < GU_LOG_PRINT_POLLS ? budget : GU_LOG_PRINT_POLLS;
        uint32_t ticket = 0;
        uint32_t start = 0;
        uint32_t free_bytes = 0;
        backoff b;
        for (uint32_t i = 0;; i++) {
            take_log_duty(duty);
            st = r.reserve_log(log_t, len, ticket, start, free_bytes);
            if (st == GU_STATUS_READY) {
                break;
            }
            if (st == GU_STATUS_PROTOCOL_VIOLATION) {
                return st;
            }
            // Reap (the kernel's CQ tail is a bus round trip) at growing intervals.
            if (i < 2 || (i & (i - 1u)) == 0) {
                reap(16);
            }
            if (i >= budget) {
                return GU_STATUS_TIMED_OUT;
            }
            b.pause();
        }
        // Straight-line from here to the completing CAS (§0.2).
        r.copy_into_log(log_t, start, src, len);
        log_end = start + len;
        has_log_end = true;
        // Relaxed: a statistic.
        r.l32(GU_LOCAL_CONTROL_LINES_PRINTED).fetch_add(1, mo::relaxed);
        if (r.complete_log(ticket, log_end)) {
            r.ring_log(log_t, cq_tail_seen, sq_head_seen, duty);
        }
        return GU_STATUS_READY;
    }

    // One line, written with one write SQE (§7 line mode): offset mode (device-assigned file offsets,
    // fire-and-forget tagged with the line) or stream mode (waited on slot 0, one line in flight). READY, or
    // the status of the step that failed (the line is not printed; WOULD_BLOCK: no print target;
    // LINE_TOO_LONG: longer than the ring's lines).
    template <class... Args> GU_FN uint32_t print(uint32_t budget, const Args &...args) {
        if (log_mode()) {
            return print_log(budget, args...);
        }
        uint32_t j = 0;
        uint32_t len = 0;
        uint32_t st = stage(budget, j, len, args...);
        if (st != GU_STATUS_READY) {
            return st;
        }
        uint32_t ticket = 0;
        st = reserve(budget, ticket);
        if (st != GU_STATUS_READY) {
            return st;
        }
        // Reservation held: straight-line code until commit.
        bool offset_mode = (print_flags & GU_PRINT_OFFSET_MODE) != 0;
        uint64_t file_off = 0xffffffffffffffffull; // -1: at the file position (stream mode)
        if (offset_mode) {
            // Relaxed: the offset only divides the file; the SQE carrying it is published by sq_pub.
            file_off = r.l64(GU_LOCAL_CONTROL_PRINT_OFFSET).fetch_add(len, mo::relaxed);
        }
        // WRITE_FIXED: the staging line is in the staging buffer's registration.
        sqe s = r.write_sqe(print_file(), r.line_off(id, j), len, file_off);
        if (offset_mode) {
            st = commit(ticket, s, fire_and_forget(), j + 1);
        } else {
            st = commit(ticket, s, in_slot(0));
            if (st == GU_STATUS_READY) {
                stream_pending = len;
            }
        }
        if (st != GU_STATUS_READY) {
            return st;
        }
        next_line++;
        r.l32(GU_LOCAL_CONTROL_LINES_PRINTED).fetch_add(1, mo::relaxed);
        return GU_STATUS_READY;
    }

    // §7.1 part of flush: a handed-on duty taken, then (bounded, reaping) until the kernel has written this lane's
    // last log line. READY or TIMED_OUT.
    GU_OUTLINE uint32_t wait_log_flushed(uint32_t budget) {
        if (id >= r.l->lanes) {
            return GU_STATUS_READY;
        }
        take_log_duty(budget);
        backoff b;
        for (uint32_t i = 0; !log_flushed(); i++) {
            reap(16);
            if (log_flushed()) {
                break;
            }
            if (i >= budget) {
                return GU_STATUS_TIMED_OUT;
            }
            b.pause();
        }
        return GU_STATUS_READY;
    }

    // §7 flush: the last stream print; the print log's duty if one was handed on, then (bounded, reaping) until
    // the kernel has written this lane's last log line; then until no fire-and-forget op of this lane is in
    // flight.
    GU_OUTLINE uint32_t flush(uint32_t budget) {
        uint32_t st = finish_stream_print(budget);
        if (st != GU_STATUS_READY) {
            return st;
        }
        st = wait_log_flushed(budget);
        if (st != GU_STATUS_READY) {
            return st;
        }
        backoff b;
        for (uint32_t i = 0;; i++) {
            if (in_flight() == 0) {
                return GU_STATUS_READY;
            }
            reap(16);
            if (in_flight() == 0) {
                return GU_STATUS_READY;
            }
            if (i >= budget) {
                return GU_STATUS_TIMED_OUT;
            }
            b.pause();
        }
    }
};

} // namespace gu

#endif // GPU_URING_LANE_H
