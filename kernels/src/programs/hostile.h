// kernels/src/programs/hostile.h: the hostile-input table's ring rows (`Program::Hostile`, host/src/backend/
// program.rs `HostileCase`; the numbers below are its codes): lane 0 corrupts its own ring the way device code
// holding the arena could, through the same library calls the Rust lane (host/src/backend/native.rs `hostile`)
// and the GLSL (device-shaders/src/hostile.comp) make, so every device reports the same status, result and
// counter deltas.
#ifndef GPU_URING_KERNELS_HOSTILE_H
#define GPU_URING_KERNELS_HOSTILE_H

#include "ring_programs.h"

namespace gu {
namespace programs {

enum : uint32_t {
    hostile_sq_window_at_publish = 0,
    hostile_sq_window_at_reserve = 1,
    hostile_cq_window = 2,
    hostile_slot_out_of_range = 3,
    hostile_write_range_wraps_u32 = 4,
    hostile_cq_credits_wild = 5,
    hostile_cq_credits_zero = 6,
    hostile_cq_claim_wild = 7,
    hostile_sq_reserve_wild = 8,
    hostile_stale_completion = 9,
    hostile_linked_skip_success = 10,
    hostile_caller_skip_success = 11,
    hostile_cases = 12,
};

// A NOP published exactly as given after one attempt at a reservation (`try_reserve`): the reservation's
// status.
GU_FN uint32_t hostile_try_nop(lane &ln) {
    uint32_t ticket = 0;
    uint32_t st = ln.try_reserve(ticket);
    if (st == GU_STATUS_READY) {
        ln.commit_exact(ticket, sqe::nop());
    }
    return st;
}

// `s` waited on slot 0 (submit, then wait): the status, and the CQE's result in `res`.
GU_FN uint32_t hostile_waited(lane &ln, const sqe &s, uint32_t budget, int32_t &res) {
    uint32_t st = ln.submit(s, in_slot(0), budget);
    if (st == GU_STATUS_READY) {
        st = ln.wait(0, budget, res);
    }
    return st;
}

// The row `which` (lane 0 only; other lanes do nothing). Returns the status of the row's last library call;
// `*res` the CQE result it waited for (0 if none).
GU_FN uint32_t hostile_row(lane &ln, uint32_t which, uint32_t budget, int32_t &res) {
    const gpu_uring::RingLayout *l = ln.r.l;
    // Relaxed throughout: the corrupting stores stand for device code that ignores the protocol.
    local_word<uint64_t> sq_pub = ln.r.l64(GU_LOCAL_CONTROL_SQ_PUB);
    res = 0;
    uint32_t ticket = 0;
    uint32_t st;
    switch (which) {
    case hostile_sq_window_at_publish:
        // Reserve, move sq_pub's base 1000 back (bitmap cleared), commit: the ticket is outside the window.
        st = ln.reserve(budget, ticket);
        if (st != GU_STATUS_READY) {
            return st;
        }
        sq_pub.store((uint32_t)(sq_pub.load(mo::relaxed) - 1000u), mo::relaxed);
        return ln.commit(ticket, sqe::nop(), fire_and_forget());
    case hostile_sq_window_at_reserve:
        sq_pub.store((uint32_t)(sq_pub.load(mo::relaxed) - 1000u), mo::relaxed);
        return hostile_try_nop(ln);
    case hostile_cq_window: {
        st = ln.submit(sqe::nop(), in_slot(0), budget);
        if (st != GU_STATUS_READY) {
            return st;
        }
        uint32_t claim = ln.r.l32(GU_LOCAL_CONTROL_CQ_CLAIM).load(mo::relaxed);
        // Until the CQE is posted (not reaped: the corruption comes first). Acquire: the CQE is written.
        backoff b;
        uint32_t i = 0;
        while (ln.r.s32(l->cq_tail).load(mo::acquire) == claim) {
            if (i >= budget) {
                return GU_STATUS_TIMED_OUT;
            }
            b.pause();
            i++;
        }
        ln.r.l64(GU_LOCAL_CONTROL_CQ_PUB).store((uint64_t)(uint32_t)(claim - 1000u), mo::relaxed);
        return ln.reap(1) > 0 ? GU_STATUS_READY : GU_STATUS_WOULD_BLOCK;
    }
    case hostile_slot_out_of_range:
        st = ln.reserve(budget, ticket);
        if (st != GU_STATUS_READY) {
            return st;
        }
        return ln.commit(ticket, sqe::nop(), in_slot(l->slots_per_lane));
    case hostile_write_range_wraps_u32: {
        // [staging, staging + len) with an end that wraps 2^32 to inside the staging region: the 64-bit range
        // check makes it a plain WRITE (refused by confinement), never a WRITE_FIXED.
        uint32_t len = 0u - l->staging + 64u;
        return hostile_waited(ln, ln.r.write_sqe(fixed_file(0), l->staging, len, 0), budget, res);
    }
    case hostile_cq_credits_wild:
    case hostile_cq_credits_zero:
        ln.r.l32(GU_LOCAL_CONTROL_CQ_CREDITS).store(which == hostile_cq_credits_wild ? 0xdeadbeefu : 0u, mo::relaxed);
        return hostile_try_nop(ln);
    case hostile_cq_claim_wild:
        ln.r.l32(GU_LOCAL_CONTROL_CQ_CLAIM).fetch_add(0x10000u, mo::relaxed);
        return ln.reap(1) > 0 ? GU_STATUS_READY : GU_STATUS_WOULD_BLOCK;
    case hostile_sq_reserve_wild:
        ln.r.l32(GU_LOCAL_CONTROL_SQ_RESERVE).fetch_add(0x10000u, mo::relaxed);
        return hostile_try_nop(ln);
    case hostile_stale_completion: {
        // A waited NOP (generation G), a NOP forged with slot 0's tag and the stale G, a waited NOP (G + 1):
        // the forged CQE is counted foreign and the last NOP reports 0.
        st = hostile_waited(ln, sqe::nop(), budget, res);
        if (st != GU_STATUS_READY) {
            return st;
        }
        uint32_t g = 0;
        ln.global_slot(0, g);
        uint32_t stale = proto::slot_generation(ln.r.l32(ln.r.slot_off(g) + GU_COMPLETION_SLOT_STATE).load(mo::relaxed));
        sqe forged = sqe::nop();
        forged.set_flags(GU_IOSQE_FIXED_FILE);
        forged.set_user_data(proto::slot_user_data(g, stale));
        st = ln.reserve(budget, ticket);
        if (st != GU_STATUS_READY) {
            return st;
        }
        ln.commit_exact(ticket, forged);
        return hostile_waited(ln, sqe::nop(), budget, res);
    }
    case hostile_linked_skip_success:
    case hostile_caller_skip_success: {
        sqe s = sqe::nop();
        s.set_flags(which == hostile_linked_skip_success ? GU_IOSQE_IO_LINK : GU_IOSQE_CQE_SKIP_SUCCESS);
        st = ln.reserve(budget, ticket);
        if (st != GU_STATUS_READY) {
            return st;
        }
        return ln.commit(ticket, s, which == hostile_linked_skip_success ? skip_success() : fire_and_forget());
    }
    default: return program_refused;
    }
}

// The hostile program: lane 0 runs row `which`, then flushes (as every program ends); its report is done = 1,
// checksum = the row's status, bytes = the result as u32 (the Rust lane's report).
GU_FN uint32_t hostile_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane_id,
                            uint32_t which, uint32_t budget, lane_report *out) {
    lane_report rep = {0, 0, 0, 0};
    if (lane_id != 0 || which >= hostile_cases) {
        *out = rep;
        return lane_id != 0 ? GU_STATUS_READY : program_refused;
    }
    lane ln(arena, local, layout, lane_id);
    int32_t res = 0;
    uint32_t st = hostile_row(ln, which, budget, res);
    ln.flush(budget);
    rep.done = 1;
    rep.checksum = st;
    rep.bytes = (uint32_t)res;
    *out = rep;
    return st;
}

} // namespace programs
} // namespace gu

#endif // GPU_URING_KERNELS_HOSTILE_H
