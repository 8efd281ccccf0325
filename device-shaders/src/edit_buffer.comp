#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
// edit_buffer: device code writes host-visible memory the host reads while the dispatch runs
// (Program::EditBuffer). Lane l owns words (value, ack) at fixed + 8 l; for step k = 1..count it stores
// value = k (release) and polls ack >= k (acquire); the host acknowledges what it sees. A poll that runs out
// of budget ends the dispatch; the next one resumes at the same step.
#include "../include/gpu_uring.glsl"

const uint PH_IDLE = 0u, PH_WAITING = 1u;

// One poll = 64 acquire loads in straight-line code: on lavapipe the loop budget (not time) limits a dispatch,
// so each counted iteration should last long enough for a host thread on another core to answer within one
// dispatch (a few milliseconds per dispatch instead of a few tens of microseconds).
#define GU_POLL1 seen = max(seen, gu_host_ld_acq(ack));
#define GU_POLL8 GU_POLL1 GU_POLL1 GU_POLL1 GU_POLL1 GU_POLL1 GU_POLL1 GU_POLL1 GU_POLL1
uint poll_ack(uint ack) {
    uint seen = 0u;
    GU_POLL8 GU_POLL8 GU_POLL8 GU_POLL8 GU_POLL8 GU_POLL8 GU_POLL8 GU_POLL8
    return seen;
}

void main() {
    if (!gu_begin()) return;
    uint lane = gu_lane_id;
    uint steps = gu_run.params.count;
    uint value = gu_l.fixed_off + 8u * lane;
    uint status = GU_STATUS_TIMED_OUT;
    while (gu_can_start()) {
        gu_iters++;
        if (gu_st.seq >= steps) { gu_st.flags |= GU_LANE_FINISHED; status = GU_STATUS_READY; break; }
        uint k = gu_st.seq + 1u;
        if (gu_st.phase == PH_IDLE) {
            // Release: the host's acquire of the value sees the lane's earlier stores.
            gu_host_st_rel(value, k);
            gu_st.phase = PH_WAITING;
        }
        // Acquire: pairs with the host's release store of the ack.
        if (poll_ack(value + 4u) >= k) {
            gu_st.seq++;
            gu_st.done++;
            gu_st.phase = PH_IDLE;
        }
    }
    gu_end(status);
}
