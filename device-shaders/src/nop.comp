#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
// nop: each lane submits params.count operations (Program::Nop / Program::Write):
//   arg0 = 0: fire-and-forget NOPs; 1: waited NOPs (slot min(slots_per_lane - 1, 1)); 2: fire-and-forget
//   writes of arg2 bytes of the lane's first staging line ('a'..'z' repeated) to fixed file arg1 at the file
//   position. Resumable: seq, and a waited NOP in flight (phase), live in the lane state.
#include "../include/gpu_uring.glsl"

const uint PH_IDLE = 0u, PH_WAITING = 1u;

void main() {
    if (!gu_begin()) return;
    uint lane = gu_lane_id;
    uint ops = gu_run.params.count;
    uint mode = gu_run.params.arg0;
    uint ws = min(gu_l.slots_per_lane - 1u, 1u);
    uint line_off = gu_line_off(lane, 0u);
    uint len = gu_run.params.arg2;
    if (mode == 2u && gu_st.next_line == 0u) {
        // Fill the line once (next_line = 1 marks it filled).
        for (uint i = 0u; i < (len + 3u) / 4u; i++) {
            gu_iters++;
            uint w = 0u;
            for (uint b = 0u; b < 4u; b++) w |= (97u + ((4u * i + b) % 26u)) << (8u * b);
            gu_a.w[(line_off >> 2) + i] = w;
        }
        gu_st.next_line = 1u;
    }
    uint status = GU_STATUS_TIMED_OUT;
    // Every reap of the loop happens at its top (the shader compiler inlines each call site; one site keeps the
    // shader small): a branch that needs one sets `reap` and continues.
    bool reap = false;
    while (gu_can_start()) {
        gu_iters++;
        if (reap) { gu_reap(16u); reap = false; }
        if (gu_st.phase == PH_WAITING) {
            int r;
            uint s = gu_poll(lane, ws, r);
            if (s == GU_STATUS_WOULD_BLOCK) continue;
            if (s == GU_STATUS_READY && r >= 0) gu_st.done++; else gu_st.failed++;
            gu_st.seq++;
            gu_st.phase = PH_IDLE;
            continue;
        }
        if (gu_st.seq >= ops) {
            if (gu_in_flight(lane) == 0u) { gu_st.flags |= GU_LANE_FINISHED; status = GU_STATUS_READY; break; }
            reap = true;
            continue;
        }
        uint t;
        if (!gu_try_reserve(t)) { reap = true; continue; }
        // One commit site (the shader compiler inlines each call).
        if (mode == 2u) gu_sqe_write(true, int(gu_run.params.arg1), line_off, len, ~uint64_t(0));
        else gu_sqe_nop();
        bool waited = mode == 1u;
        gu_commit(lane, t, waited ? GU_SLOT : GU_FF, waited ? ws : 0u, 0u);
        if (waited) {
            gu_st.phase = PH_WAITING;
        } else {
            gu_st.seq++;
            gu_st.done++;
            if (mode == 2u) gu_st.bytes += uint64_t(len);
        }
    }
    gu_end(status);
}
