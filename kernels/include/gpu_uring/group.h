// gpu_uring/group.h: the protocol aggregated per subgroup (PROTOCOL.md §5 "Subgroups"), as the Rust
// `protocol::Subgroup` and the GLSL library do it. The elected lane (the lowest member) takes up to n CQ credits
// with one CAS and as many contiguous SQ tickets with one CAS, hands them out in rank order (broadcast and an
// exclusive bit count), each lane fills its own SQE, and after the subgroup's memory barrier the elected lane
// publishes the batch with one `sq_pub` CAS and rings the bell once; a reap pass claims up to n CQEs with one
// CAS (the elected lane dispatches them), and each lane then reads its own slot. If fewer credits or tickets
// are free than lanes ask for, the first lanes in rank order get them and the rest retry.
//
// Collective: every member of `sg` calls these together, in uniform control flow (each loop's condition comes
// from a ballot, a broadcast or the call's arguments), as a warp's lanes under CUDA's independent thread
// scheduling must for their *_sync intrinsics. A subgroup of one runs the same code as the single-lane path.
// No lane waits on another lane beyond the subgroup's own lockstep meetings: every retry is bounded by
// `budget` rounds, and a round's waits are for the kernel (reaping) or the backoff.
#ifndef GPU_URING_GROUP_H
#define GPU_URING_GROUP_H

#include "lane.h"
#include "subgroup.h"

namespace gu {
namespace group {

// One reap pass for the subgroup: the elected lane claims up to `sg.size()` CQEs (one claim CAS per batch) and
// dispatches them; every member gets the count.
GU_FN uint32_t reap(lane &ln, const subgroup &sg) {
    uint32_t got = 0;
    if (sg.elect()) {
        got = ln.reap(sg.size());
    }
    return sg.broadcast_first(got);
}

// §4 + §3 by the elected lane for `want` lanes: up to `want` credits (one CAS), as many contiguous tickets (one
// CAS), the credits not matched by a ticket back (one add). `first`/`k` in every member; k = 0: nothing taken.
GU_FN void reserve_batch(lane &ln, const subgroup &sg, uint32_t want, uint32_t &first, uint32_t &k) {
    uint32_t f = 0;
    uint32_t got = 0;
    if (sg.elect()) {
        // Any duty a holder left pending, before reserving (as every lane that touches the ring does).
        ln.r.take_pending(proto::sq_bell);
        ln.r.take_pending(proto::cq_bell);
        uint32_t c = ln.r.take_credits(want);
        if (c > 0) {
            if (ln.r.take_tickets(c, ln.sq_head_seen, f, got) != GU_STATUS_READY) {
                got = 0;
            }
            ln.r.return_credits(c - got);
        }
    }
    first = sg.broadcast_first(f);
    k = sg.broadcast_first(got);
}

// §3–§4 for the subgroup: every member with `active` submits its `s` in completion mode `c` (`line_plus_1`: a
// print's staging line + 1, or 0). Refused before reserving, per lane: BAD_FLAGS, BAD_SLOT. Otherwise the
// elected lane reserves for all pending lanes at once (retrying, reaping and backing off, at most `budget`
// rounds: TIMED_OUT), each lane prepares and fills its ticket, and after `sync` the elected lane publishes the
// batch (PROTOCOL_VIOLATION in every lane of a batch whose publication found `sq_pub` rewritten: their
// bookkeeping is undone). Members without `active` take part in the collectives only; they get READY.
GU_OUTLINE uint32_t submit(lane &ln, const subgroup &sg, bool active, sqe s, completion c, uint32_t budget,
                           uint32_t line_plus_1 = 0) {
    uint32_t st = GU_STATUS_READY;
    bool pending = false;
    if (active) {
        uint32_t g = 0;
        if (!lane::flags_ok(s.flags(), c)) {
            st = GU_STATUS_BAD_FLAGS;
        } else if (c.kind == complete_slot && !ln.global_slot(c.slot, g)) {
            st = GU_STATUS_BAD_SLOT;
        } else {
            pending = true;
            st = GU_STATUS_TIMED_OUT;
        }
    }
    backoff b;
    uint64_t waiting = sg.ballot(pending);
    for (uint32_t round = 0; waiting != 0;) {
        uint32_t want = detail::popcount64(waiting);
        uint32_t first = 0;
        uint32_t k = 0;
        reserve_batch(ln, sg, want, first, k);
        if (k == 0) {
            reap(ln, sg);
            if (round >= budget) {
                break; // every pending lane keeps TIMED_OUT
            }
            b.pause();
            round++;
            continue;
        }
        // The batch's tickets go to the first k pending lanes in rank order.
        uint32_t rank = sg.rank_in(waiting);
        bool mine = pending && rank < k;
        // The elected lane's acquire of the kernel's SQ head (in take_tickets) happens-before every member's
        // overwrite of an SQE slot the kernel has consumed.
        sg.sync();
        bool filled = false;
        if (mine) {
            if (ln.prepare(s, c, line_plus_1) == GU_STATUS_READY) {
                ln.r.write_sqe(first + rank, s);
                filled = true;
            } else {
                // Cannot happen after the checks above; the ticket still must be filled (§3).
                sqe hole = sqe::nop();
                hole.set_flags(ln.base_flags);
                hole.set_user_data(GU_TAG_FF_UD | proto::ff_user_data(proto::hole_lane, 0));
                ln.r.write_sqe(first + rank, hole);
            }
        }
        // Every member's SQE stores happen-before the elected lane's publishing CAS (release).
        sg.sync();
        uint32_t pub = GU_STATUS_READY;
        if (sg.elect()) {
            pub = ln.r.publish_tickets(first, k);
        }
        pub = sg.broadcast_first(pub);
        if (mine) {
            if (pub != GU_STATUS_READY) {
                if (filled) {
                    ln.unprepare(c, line_plus_1);
                }
                st = pub;
            } else {
                st = filled ? GU_STATUS_READY : GU_STATUS_BAD_FLAGS;
            }
            pending = false;
        }
        waiting = sg.ballot(pending);
    }
    return st;
}

// §6 for the subgroup: every member with `active` waits for its slot `k`. Each round (a poll: at most
// `budget`, then TIMED_OUT) every waiting lane looks at its own slot (acquire), then — while any lane still
// waits — one aggregated reap pass; a round that reaped nothing backs off. READY (`result`; the slot is freed),
// NOT_PENDING, BAD_SLOT; members without `active` get READY.
GU_OUTLINE uint32_t wait(lane &ln, const subgroup &sg, bool active, uint32_t k, uint32_t budget, int32_t &result) {
    uint32_t st = GU_STATUS_READY;
    bool waiting = active;
    uint32_t g = 0;
    if (waiting && !ln.global_slot(k, g)) {
        st = GU_STATUS_BAD_SLOT;
        waiting = false;
    }
    backoff b;
    for (uint32_t round = 0;;) {
        if (waiting) {
            uint32_t so = ln.r.slot_off(g);
            local_word<uint32_t> state = ln.r.l32(so + GU_COMPLETION_SLOT_STATE);
            // Acquire: pairs with the reaper's release of DONE (result and flags are written).
            uint32_t word = state.load(mo::acquire);
            uint32_t s = proto::slot_state(word);
            if (s == GU_RING_SLOT_DONE) {
                result = ln.r.li32(so + GU_COMPLETION_SLOT_RESULT).load(mo::relaxed);
                state.store(proto::slot_word(proto::slot_generation(word), GU_RING_SLOT_FREE), mo::relaxed);
                st = GU_STATUS_READY;
                waiting = false;
            } else if (s == GU_RING_SLOT_FREE) {
                st = GU_STATUS_NOT_PENDING;
                waiting = false;
            }
        }
        if (sg.ballot(waiting) == 0) {
            return st;
        }
        if (round >= budget) {
            return waiting ? GU_STATUS_TIMED_OUT : st;
        }
        round++;
        if (reap(ln, sg) == 0) {
            b.pause();
        }
    }
}

// A NOP per member with `active`, in completion mode `c` (waited modes: then `wait`).
GU_FN uint32_t nop(lane &ln, const subgroup &sg, bool active, completion c, uint32_t budget) {
    return submit(ln, sg, active, sqe::nop(), c, budget);
}

// §7.1 for the subgroup: every member with `staged` has its line (`len` bytes) in its first staging line. The
// elected lane reserves the bytes of every pending line with one `log_reserve` CAS (one ticket for the batch)
// — or, when fewer bytes are free, of the lines that fit, in rank order — and hands each lane its position
// (exclusive prefix sums); each lane copies its line; after `sync` the elected lane completes the batch with
// one `log_pub` CAS, counts the lines with one add and rings the duty word once. Lanes that did not fit retry
// (taking handed-on duty, reaping at growing intervals, backing off) within `budget`: TIMED_OUT means that
// line was not reserved. Returns this lane's status (`st` for members without `staged`).
GU_OUTLINE uint32_t print_log(lane &ln, const subgroup &sg, bool staged, uint32_t len, uint32_t budget, uint32_t st) {
    uint32_t duty = budget < GU_LOG_PRINT_POLLS ? budget : GU_LOG_PRINT_POLLS;
    bool pending = staged;
    if (staged) {
        st = GU_STATUS_TIMED_OUT;
    }
    backoff b;
    for (uint32_t round = 0; sg.ballot(pending) != 0;) {
        uint32_t total = 0;
        uint32_t below = sg.exclusive_sum(pending ? len : 0u, total);
        uint32_t r = GU_STATUS_READY;
        uint32_t ticket = 0;
        uint32_t start = 0;
        uint32_t free_bytes = 0;
        if (sg.elect()) {
            ln.take_log_duty(duty);
            r = ln.r.reserve_log(ln.log_t, total, ticket, start, free_bytes);
        }
        r = sg.broadcast_first(r);
        bool take = pending && r == GU_STATUS_READY;
        if (r == log_no_bytes) {
            // The prefix of lines (in rank order) that fits the free bytes.
            free_bytes = sg.broadcast_first(free_bytes);
            bool fits = pending && below + len <= free_bytes;
            uint32_t fit_total = 0;
            sg.exclusive_sum(fits ? len : 0u, fit_total);
            if (fit_total > 0) {
                if (sg.elect()) {
                    r = ln.r.reserve_log(ln.log_t, fit_total, ticket, start, free_bytes);
                }
                r = sg.broadcast_first(r);
                take = fits && r == GU_STATUS_READY;
                total = fit_total;
            }
        }
        if (r == GU_STATUS_PROTOCOL_VIOLATION) {
            return pending ? GU_STATUS_PROTOCOL_VIOLATION : st;
        }
        if (sg.ballot(take) == 0) {
            if (sg.elect() && (round < 2 || (round & (round - 1u)) == 0)) {
                ln.reap(16);
            }
            if (round >= budget) {
                return st; // every pending lane keeps TIMED_OUT: nothing of its line was reserved
            }
            b.pause();
            round++;
            continue;
        }
        ticket = sg.broadcast_first(ticket);
        start = sg.broadcast_first(start);
        // Straight-line from the reservation to the completing CAS (§0.2): each lane copies its own line.
        if (take) {
            ln.r.copy_into_log(ln.log_t, start + below, ln.r.line_off(ln.id, 0), len);
            ln.log_end = start + below + len;
            ln.has_log_end = true;
            st = GU_STATUS_READY;
            pending = false;
        }
        uint32_t n = detail::popcount64(sg.ballot(take));
        // Every member's log bytes happen-before the elected lane's completing CAS (release).
        sg.sync();
        if (sg.elect()) {
            // Relaxed: a statistic.
            ln.r.l32(GU_LOCAL_CONTROL_LINES_PRINTED).fetch_add(n, mo::relaxed);
            if (ln.r.complete_log(ticket, start + total)) {
                ln.r.ring_log(ln.log_t, ln.cq_tail_seen, ln.sq_head_seen, duty);
            }
        }
    }
    return st;
}

// §7 line mode for the subgroup: every member with `active` prints one line formatted from `args`. Each lane
// stages its own line (its staging line made reusable, the line formatted into it); in offset mode the elected
// lane takes the file range of every staged line with one `print_offset` add (exclusive prefix sums hand the
// offsets out in rank order), then the writes go through `submit` (one reservation and one publication per
// batch) and one add counts the lines printed. As in the Rust `Subgroup::print_with`, a line whose write timed
// out after its offset was taken leaves a gap of its length in the file. READY, or the status of the step that
// failed for this lane (its line is not printed); members without `active` get READY.
template <class... Args>
GU_FN uint32_t print(lane &ln, const subgroup &sg, bool active, uint32_t budget, const Args &...args) {
    // Group commit (§7.1, the host's PRINT_LOG). The target is the ring's, so every member decides alike.
    if (sg.ballot(active && ln.log_mode()) != 0) {
        uint32_t len = 0;
        uint32_t st = active ? ln.stage_log(budget, len, args...) : GU_STATUS_READY;
        return print_log(ln, sg, active && st == GU_STATUS_READY, len, budget, st);
    }
    uint32_t j = 0;
    uint32_t len = 0;
    uint32_t st = active ? ln.stage(budget, j, len, args...) : GU_STATUS_READY;
    bool staged = active && st == GU_STATUS_READY;
    // The target is the ring's (the host set it before the run): every lane that read it read the same.
    uint64_t offset_lanes = sg.ballot(staged && (ln.print_flags & GU_PRINT_OFFSET_MODE) != 0);
    if (sg.ballot(staged) == 0) {
        return st;
    }
    bool offset_mode = offset_lanes != 0;
    uint64_t file_off = ~(uint64_t)0; // at the file position (stream mode)
    if (offset_mode) {
        uint32_t total = 0;
        uint32_t below = sg.exclusive_sum(staged ? len : 0u, total);
        uint64_t base = 0;
        if (sg.elect()) {
            // Relaxed: the offsets only divide the file; the SQEs carrying them are published by sq_pub.
            base = ln.r.l64(GU_LOCAL_CONTROL_PRINT_OFFSET).fetch_add(total, mo::relaxed);
        }
        file_off = sg.broadcast_first(base) + below;
    }
    sqe s = staged ? ln.r.write_sqe(ln.print_file(), ln.r.line_off(ln.id, j), len, file_off) : sqe::nop();
    uint32_t sub = submit(ln, sg, staged, s, offset_mode ? fire_and_forget() : in_slot(0), budget,
                          offset_mode ? j + 1 : 0);
    bool printed = staged && sub == GU_STATUS_READY;
    if (printed) {
        if (!offset_mode) {
            ln.stream_pending = len;
        }
        ln.next_line++;
    }
    uint32_t n = detail::popcount64(sg.ballot(printed));
    if (sg.elect() && n > 0) {
        // Relaxed: a statistic.
        ln.r.l32(GU_LOCAL_CONTROL_LINES_PRINTED).fetch_add(n, mo::relaxed);
    }
    return staged ? sub : st;
}

} // namespace group
} // namespace gu

#endif // GPU_URING_GROUP_H
