#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
// layout: layout agreement between Rust and GLSL (Program::Layout). Lane l writes at fixed + 256 l:
//   [0, 64)    the SQE backend::layout_sqe_expected describes, built by the protocol's own SQE code
//   [64, 192)  the RingLayout push constants as received
//   [192, 256) its GuRunParams as received
// and sets its GuLaneState fields to known values (checked by the host against shared::LaneState).
#include "../include/gpu_uring.glsl"

void main() {
    if (!gu_begin()) return;
    uint lane = gu_lane_id;
    uint b = (gu_l.fixed_off + 256u * lane) >> 2;
    gu_sqe_write(true, int(lane), gu_line_off(lane, 0u), 17u + lane, uint64_t(0x1000u + lane));
    gu_sqe[GU_SQE_W_USER_DATA] = ((lane & 0xffffu) << 16) | 1u;
    gu_sqe[GU_SQE_W_USER_DATA + 1u] = GU_TAG_FF_HI;
    for (uint i = 0u; i < GU_SIZEOF_SQE / 4u; i++) gu_a.w[b + i] = gu_sqe[i];
    b += 16u;
    gu_a.w[b + 0u] = uint(gu_l.arena_host_base); gu_a.w[b + 1u] = uint(gu_l.arena_host_base >> 32);
    gu_a.w[b + 2u] = uint(gu_l.arena_size);      gu_a.w[b + 3u] = uint(gu_l.arena_size >> 32);
    gu_a.w[b + 4u] = gu_l.sq_head;   gu_a.w[b + 5u] = gu_l.sq_tail;   gu_a.w[b + 6u] = gu_l.sq_flags;
    gu_a.w[b + 7u] = gu_l.sq_mask;   gu_a.w[b + 8u] = gu_l.sq_entries; gu_a.w[b + 9u] = gu_l.sq_array;
    gu_a.w[b + 10u] = gu_l.cq_head;  gu_a.w[b + 11u] = gu_l.cq_tail;  gu_a.w[b + 12u] = gu_l.cq_mask;
    gu_a.w[b + 13u] = gu_l.cq_entries; gu_a.w[b + 14u] = gu_l.cqes;   gu_a.w[b + 15u] = gu_l.sqes;
    gu_a.w[b + 16u] = gu_l.control;  gu_a.w[b + 17u] = gu_l.slots;    gu_a.w[b + 18u] = gu_l.slots_per_lane;
    gu_a.w[b + 19u] = gu_l.lanes;    gu_a.w[b + 20u] = gu_l.staging;  gu_a.w[b + 21u] = gu_l.staging_lines;
    gu_a.w[b + 22u] = gu_l.line_bytes; gu_a.w[b + 23u] = gu_l.staging_buf_index;
    gu_a.w[b + 24u] = gu_l.fixed_off; gu_a.w[b + 25u] = gu_l.fixed_size; gu_a.w[b + 26u] = gu_l.fixed_buf_index;
    gu_a.w[b + 27u] = gu_l.w_sq;     gu_a.w[b + 28u] = gu_l.w_cq;     gu_a.w[b + 29u] = gu_l.credit_pool;
    gu_a.w[b + 30u] = gu_l.ring_flags; gu_a.w[b + 31u] = gu_l.lane_words;
    b += 32u;
    GuRunParams p = gu_run.params;
    gu_a.w[b + 0u] = p.program; gu_a.w[b + 1u] = p.lanes; gu_a.w[b + 2u] = p.count; gu_a.w[b + 3u] = p.arg0;
    gu_a.w[b + 4u] = p.arg1;    gu_a.w[b + 5u] = p.arg2;  gu_a.w[b + 6u] = p.iter_budget;
    gu_a.w[b + 7u] = p.dispatch;
    gu_a.w[b + 8u] = uint(p.total); gu_a.w[b + 9u] = uint(p.total >> 32);
    for (uint i = 0u; i < 6u; i++) gu_a.w[b + 10u + i] = p.reserved[i];
    gu_st.seq = 11u; gu_st.phase = 12u; gu_st.done = 1u; gu_st.failed = 0u;
    gu_st.next_line = 15u; gu_st.pending_len = 16u; gu_st.line_len = 17u;
    gu_st.checksum = 0x1122334455667788UL; gu_st.bytes = 0x100000000UL + uint64_t(lane);
    gu_st.log_end = 18u;
    gu_st.flags |= GU_LANE_FINISHED;
    gu_end(GU_STATUS_READY);
}
