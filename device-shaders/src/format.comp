#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
// format: the §7 number formatter, probed case by case (VulkanDevice::format_probe). Lane i reads case i at
// fixed + 128 i (kind, precision, value low, value high: kind 0 = u64, 1 = i64, 2 = hex, 3 = f32 bits) and
// writes the formatted bytes' length at + 16 and the bytes at + 20 (at most 108).
#include "../include/gpu_uring.glsl"

void main() {
    if (!gu_begin()) return;
    uint b = (gu_l.fixed_off + 128u * gu_lane_id) >> 2;
    uint kind = gu_a.w[b];
    uint prec = gu_a.w[b + 1u];
    uint64_t v = uint64_t(gu_a.w[b + 2u]) | (uint64_t(gu_a.w[b + 3u]) << 32);
    gu_line_begin();
    gu_cap = min(gu_cap, 109u); // 108 bytes + the byte kept for a newline
    if (kind == 0u) gu_put_u64(v);
    else if (kind == 1u) gu_put_i64(int64_t(v));
    else if (kind == 2u) gu_put_hex(v);
    else gu_put_f32(uintBitsToFloat(uint(v)), prec);
    gu_a.w[b + 4u] = gu_len;
    for (uint i = 0u; i < (gu_len + 3u) / 4u; i++) gu_a.w[b + 5u + i] = gu_line[i];
    gu_st.done = 1u;
    gu_st.flags |= GU_LANE_FINISHED;
    gu_end(GU_STATUS_READY);
}
