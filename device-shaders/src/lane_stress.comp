#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
// lane_stress: many lanes on a tiny ring (Program::LaneStress). Each lane submits params.count NOPs,
// alternating a waited NOP (even seq, slot min(slots_per_lane - 1, 1)) and a fire-and-forget NOP (odd seq),
// so reservations, credits, the publication window and reaping by any lane are all under pressure.
#include "../include/gpu_uring.glsl"

const uint PH_IDLE = 0u, PH_WAITING = 1u;

void main() {
    if (!gu_begin()) return;
    uint lane = gu_lane_id;
    uint ops = gu_run.params.count;
    uint ws = min(gu_l.slots_per_lane - 1u, 1u);
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
        gu_sqe_nop();
        // One commit site (the shader compiler inlines each call).
        bool waited = (gu_st.seq & 1u) == 0u;
        gu_commit(lane, t, waited ? GU_SLOT : GU_FF, waited ? ws : 0u, 0u);
        if (waited) {
            gu_st.phase = PH_WAITING;
        } else {
            gu_st.seq++;
            gu_st.done++;
        }
    }
    gu_end(status);
}
