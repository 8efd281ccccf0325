#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
// exact: lane 0 publishes params.count SQE images the host wrote at fixed + 64 i exactly as given
// (Lane::commit_exact: no flags added), except user_data = TAG_SLOT | its slot 0 with generation 0 (which
// commit_exact arms with the slot's next generation), one at a time; it waits for
// each and stores the CQE's res at fixed + 64 count + 4 i (Program::Exact). What device code that ignores the
// library could write: the confined-ring tests show what the kernel refuses.
#include "../include/gpu_uring.glsl"

const uint PH_IDLE = 0u, PH_WAITING = 1u;

void main() {
    if (!gu_begin()) return;
    uint lane = gu_lane_id;
    uint count = gu_run.params.count;
    if (lane != 0u) { gu_st.flags |= GU_LANE_FINISHED; gu_end(GU_STATUS_READY); return; }
    uint status = GU_STATUS_TIMED_OUT;
    while (gu_can_start()) {
        gu_iters++;
        if (gu_st.phase == PH_WAITING) {
            int r;
            uint s = gu_wait(lane, 0u, 16u, r);
            if (s == GU_STATUS_TIMED_OUT) continue; // still pending: keep polling (this dispatch or the next)
            if (s == GU_STATUS_READY) gu_st.done++; else gu_st.failed++;
            gu_a.w[(gu_l.fixed_off + 64u * count + 4u * gu_st.seq) >> 2] = uint(r);
            gu_st.seq++;
            gu_st.phase = PH_IDLE;
            continue;
        }
        if (gu_st.seq >= count) { gu_st.flags |= GU_LANE_FINISHED; status = GU_STATUS_READY; break; }
        uint t;
        if (!gu_reserve(16u, t)) continue;
        uint img = (gu_l.fixed_off + 64u * gu_st.seq) >> 2;
        for (uint i = 0u; i < GU_SIZEOF_SQE / 4u; i++) gu_sqe[i] = gu_a.w[img + i];
        gu_sqe[GU_SQE_W_USER_DATA] = lane * gu_l.slots_per_lane; // global slot 0 of lane 0
        gu_sqe[GU_SQE_W_USER_DATA + 1u] = GU_TAG_SLOT_HI;               // generation 0: arm it
        gu_commit_exact(lane, t);
        gu_st.phase = PH_WAITING;
    }
    gu_end(status);
}
