#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
// hostile: lane 0 corrupts its own ring the way hostile device code could, then makes the library calls the
// case names (Program::Hostile, backend::HostileCase; the CPU reference device makes the same calls in
// backend/cpu/mod.rs). It reports in its lane state: done = 1, checksum = the status of the case's last
// library call (GU_STATUS_READY, GU_STATUS_WOULD_BLOCK, GU_STATUS_BAD_FLAGS, ...), bytes = the CQE res it waited for (or 0).
// Other lanes do nothing. arg0 = the case. Resumable: phase (0: start a step, 1: wait for a posted CQE without
// reaping, 2: poll slot 0), seq (the step), pending_len (the claim index a CqWindow case waits past).
#include "../include/gpu_uring.glsl"

const uint C_SQ_WINDOW_AT_PUBLISH = 0u, C_SQ_WINDOW_AT_RESERVE = 1u, C_CQ_WINDOW = 2u, C_SLOT_OUT_OF_RANGE = 3u;
const uint C_WRITE_RANGE_WRAPS_U32 = 4u, C_CQ_CREDITS_WILD = 5u, C_CQ_CREDITS_ZERO = 6u, C_CQ_CLAIM_WILD = 7u;
const uint C_SQ_RESERVE_WILD = 8u, C_STALE_COMPLETION = 9u, C_LINKED_SKIP_SUCCESS = 10u, C_CALLER_SKIP_SUCCESS = 11u;

const uint PH_START = 0u, PH_WAIT_CQE = 1u, PH_WAIT_SLOT = 2u;

void finish(uint status, int res) {
    gu_st.done = 1u;
    gu_st.checksum = uint64_t(status);
    gu_st.bytes = uint64_t(uint(res));
    gu_st.flags |= GU_LANE_FINISHED;
}

// sq_pub's base moved 1000 back, bitmap cleared (relaxed: device code that ignores the protocol).
void sq_pub_back_1000() {
    uint off = gu_lctl(GU_LOCAL_CONTROL_SQ_PUB);
    gu_local_st64_rlx(off, uint64_t(uint(gu_local_ld64_rlx(off)) - 1000u));
}

void main() {
    if (!gu_begin()) return;
    uint lane = gu_lane_id;
    if (lane != 0u) { gu_st.flags |= GU_LANE_FINISHED; gu_end(GU_STATUS_READY); return; }
    uint c = gu_run.params.arg0;
    while (gu_can_start() && (gu_st.flags & GU_LANE_FINISHED) == 0u) {
        gu_iters++;
        if (gu_st.phase == PH_WAIT_CQE) {
            // Acquire: the CQE is posted; not reaped, so the corruption comes first.
            if (gu_host_ld_acq(gu_l.cq_tail) == gu_st.pending_len) continue;
            gu_local_st64_rlx(gu_lctl(GU_LOCAL_CONTROL_CQ_PUB), uint64_t(gu_st.pending_len - 1000u));
            finish(gu_reap(1u) > 0u ? GU_STATUS_READY : GU_STATUS_WOULD_BLOCK, 0);
            break;
        }
        if (gu_st.phase == PH_WAIT_SLOT) {
            int r;
            uint s = gu_poll(lane, 0u, r);
            if (s == GU_STATUS_WOULD_BLOCK) continue;
            gu_st.phase = PH_START;
            if (s != GU_STATUS_READY) { finish(s, 0); break; }
            if (c == C_STALE_COMPLETION && gu_st.seq == 0u) { gu_st.seq = 1u; continue; }
            finish(GU_STATUS_READY, r);
            break;
        }
        // PH_START. One call site per library function (the shader compiler inlines every call, and a JIT
        // such as llvmpipe's compiles the whole program at its first dispatch): the cases differ only in the
        // corruption, the SQE, the completion mode and what follows the commit.
        if (c == C_CQ_CLAIM_WILD) {
            gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_CQ_CLAIM), 0x10000u);
            finish(gu_reap(1u) > 0u ? GU_STATUS_READY : GU_STATUS_WOULD_BLOCK, 0);
            break;
        }
        // Cases that corrupt a word first and then make one reservation attempt; when it succeeds (never
        // expected) its NOP is published as is.
        bool once = c == C_SQ_WINDOW_AT_RESERVE || c == C_CQ_CREDITS_WILD || c == C_CQ_CREDITS_ZERO ||
                    c == C_SQ_RESERVE_WILD;
        if (c == C_SQ_WINDOW_AT_RESERVE) sq_pub_back_1000();
        if (c == C_CQ_CREDITS_WILD || c == C_CQ_CREDITS_ZERO) {
            gu_local_st_rlx(gu_lctl(GU_LOCAL_CONTROL_CQ_CREDITS), c == C_CQ_CREDITS_WILD ? 0xdeadbeefu : 0u);
        }
        if (c == C_SQ_RESERVE_WILD) gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_SQ_RESERVE), 0x10000u);
        uint t;
        if (!gu_try_reserve(t)) {
            if (once) { finish(GU_STATUS_WOULD_BLOCK, 0); break; }
            // The rest reserve until they get a ticket, reaping between attempts (as Lane::reserve does).
            gu_reap(16u);
            continue;
        }
        gu_sqe_nop();
        uint mode = GU_SLOT, k = 0u, next = PH_WAIT_SLOT;
        // exact: published as built (gu_commit_exact), and the case ends with `end_status` / `end_res`.
        bool exact = once, ends = once;
        uint end_status = GU_STATUS_READY;
        int end_res = 0;
        if (once) {
        } else if (c == C_SQ_WINDOW_AT_PUBLISH) {
            sq_pub_back_1000();
            mode = GU_FF;
            ends = true;
        } else if (c == C_CQ_WINDOW) {
            next = PH_WAIT_CQE;
        } else if (c == C_SLOT_OUT_OF_RANGE) {
            k = gu_l.slots_per_lane;
            ends = true;
        } else if (c == C_WRITE_RANGE_WRAPS_U32) {
            // [staging, staging + len) with an end of 2^32 + 64: wraps to 64 in 32 bits.
            gu_sqe_write(true, 0, gu_l.staging, 64u - gu_l.staging, uint64_t(0));
        } else if (c == C_STALE_COMPLETION && gu_st.seq == 1u) {
            // A NOP carrying slot 0's tag with the generation its last (finished) operation had.
            uint g = lane * gu_l.slots_per_lane;
            uint stale = gu_local_ld_rlx(gu_slot_off(g)) >> GU_RING_SLOT_GEN_SHIFT;
            gu_sqe[GU_SQE_W_OPCODE] |= GU_IOSQE_FIXED_FILE << GU_SQE_FLAGS_SHIFT;
            gu_sqe[GU_SQE_W_USER_DATA] = g;
            gu_sqe[GU_SQE_W_USER_DATA + 1u] = GU_TAG_SLOT_HI | stale;
            exact = true;
            next = PH_START;
            gu_st.seq = 2u;
        } else if (c == C_STALE_COMPLETION) {
        } else if (c == C_LINKED_SKIP_SUCCESS) {
            gu_sqe[GU_SQE_W_OPCODE] |= GU_IOSQE_IO_LINK << GU_SQE_FLAGS_SHIFT;
            mode = GU_SKIP;
            ends = true;
        } else if (c == C_CALLER_SKIP_SUCCESS) {
            gu_sqe[GU_SQE_W_OPCODE] |= GU_IOSQE_CQE_SKIP_SUCCESS << GU_SQE_FLAGS_SHIFT;
            mode = GU_FF;
            ends = true;
        } else {
            // Unknown case: publish the reservation as a filler and report it.
            gu_sqe_filler();
            exact = true;
            ends = true;
            end_status = GU_STATUS_BAD_FLAGS;
            end_res = -22;
        }
        uint s = GU_STATUS_READY;
        if (exact) {
            gu_commit_exact(lane, t);
        } else {
            s = gu_commit(lane, t, mode, k, 0u);
        }
        if (ends) { finish(exact ? end_status : s, end_res); break; }
        if (s != GU_STATUS_READY) { finish(s, 0); break; }
        if (next == PH_WAIT_CQE) gu_st.pending_len = gu_local_ld_rlx(gu_lctl(GU_LOCAL_CONTROL_CQ_CLAIM));
        gu_st.phase = next;
    }
    gu_end((gu_st.flags & GU_LANE_FINISHED) != 0u ? GU_STATUS_READY : GU_STATUS_TIMED_OUT);
}
