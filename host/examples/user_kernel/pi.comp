#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
#include "gpu_uring_print.glsl"

// Each lane estimates pi from `count` random points (params.count), printing a line after every `arg0` points
// and after the last. That is more loop iterations than one dispatch allows (lavapipe stops every loop of an
// invocation after 65 535 in total), so each lane keeps its progress in gu_st, its lane state, and the host
// dispatches it again until it has finished. seq = points drawn, checksum = points inside the quarter circle
// (any u64 field of the state will do), done = lines printed.

// The host's text table (RingKernel::with_texts), by index.
const uint T_LANE = 0u, T_POINTS = 1u, T_INSIDE = 2u, T_DIFF = 3u, T_LAST = 4u, T_PI = 5u;

// Point i of lane `lane`: two 16-bit coordinates from an integer hash.
uint point(uint lane, uint i) {
    uint x = lane * 0x9e3779b9u + i;
    x ^= x >> 16; x *= 0x7feb352du;
    x ^= x >> 15; x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

void main() {
    if (!gu_begin()) return;   // no lane for this invocation, or it finished in an earlier dispatch
    uint points = gu_run.params.count;
    uint every = max(gu_run.params.arg0, 1u);
    while (gup_running()) {   // false once this dispatch's loop budget is spent
        uint n = gu_st.seq;
        uint due = n == points ? (points + every - 1u) / every : n / every;
        if (gu_st.done < due) {
            // "lane 3: 25000 points, 19642 inside, diff -9, last 5e0a6c3b, pi ~ 3.1427"
            uint inside = uint(gu_st.checksum);
            gup_line();
            gup_text(T_LANE); gup_uint(gu_lane_id);
            gup_text(T_POINTS); gup_uint(n);
            gup_text(T_INSIDE); gup_uint(inside);
            gup_text(T_DIFF); gup_int(int(inside) - int(uint64_t(n) * 51472u / 65536u)); // pi/4 ~ 51472/65536
            gup_text(T_LAST); gup_hex(point(gu_lane_id, n - 1u));
            gup_text(T_PI); gup_float(4.0 * float(inside) / float(n), 4u);
            // Not printed (the ring is busy, or the budget is spent): try again on the next pass.
            if (gup_print() == GU_STATUS_READY) gu_st.done++;
            continue;
        }
        if (n == points) {
            if (gup_finish() == GU_STATUS_READY) break;   // every line written: the lane is finished
            continue;
        }
        // The work, many points per pass (each counted in gu_iters), up to where the next line is due.
        uint until = min(points, (gu_st.done + 1u) * every);
        for (uint k = 0u; k < 256u && n < until; k++) {
            gu_iters++;
            uint p = point(gu_lane_id, n);
            uint64_t x = uint64_t(p & 0xffffu), y = uint64_t(p >> 16);
            if (x * x + y * y < (uint64_t(1) << 32)) gu_st.checksum++;
            n++;
        }
        gu_st.seq = n;
    }
    gup_end();   // saves gu_st for the next dispatch
}
