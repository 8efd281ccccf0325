#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
// print_api: the print API of gpu_uring_print.glsl, step by step (host/tests/user_kernel.rs). Lane L does
// params.count rounds; round K:
//   1. prints  "L=<L> K=<K> i=<K-L-5> x=<hex (L<<8)|K> f=<K/8 - L, 3 digits>!"   (texts 0-4, char '!')
//   2. writes  "w<L>.<K>;" (texts 5, 6, 7) to registered file arg0 at byte 16 * (L * count + K)
//   3. reads   8 bytes of registered file arg1 at byte 8 * L + K into the fixed buffer at 64 * L
//   4. prints  "r<L>.<K> <res> <the bytes read>"   (texts 8, 6)
// done counts rounds, failed counts file operations that failed (a write that wrote nothing, a read of other
// than 8 bytes), checksum sums the results (the host checks the written lengths), bytes keeps the last read's.
// Resumable: the step is `phase`, the round `seq`.
#include "../include/gpu_uring_print.glsl"

void main() {
    if (!gu_begin()) return;
    uint lane = gu_lane_id;
    uint rounds = gu_run.params.count;
    while (gup_running()) {
        uint k = gu_st.seq;
        if (k == rounds) {
            if (gup_finish() == GU_STATUS_READY) break;
            continue;
        }
        int res = 0;
        uint s;
        gup_line();
        // Each operation call site carries the ring code (gpu_uring_print.glsl, "JIT cost"): the file operations
        // share one, gup_op (what gup_write and gup_read call), the prints another.
        if (gu_st.phase == 1u || gu_st.phase == 2u) {
            bool write = gu_st.phase == 1u;
            if (write) { gup_text(5u); gup_uint(lane); gup_text(6u); gup_uint(k); gup_text(7u); }
            s = gup_op(write ? GUP_OP_WRITE : GUP_OP_READ, write ? gu_run.params.arg0 : gu_run.params.arg1,
                       write ? uint64_t(16u * (lane * rounds + k)) : uint64_t(8u * lane + k), 64u * lane, 8u, res);
            if (s == GU_STATUS_READY && write && res <= 0) gu_st.failed++;
            if (s == GU_STATUS_READY && !write) {
                if (res != 8) gu_st.failed++;
                gu_st.bytes = uint64_t(res);
            }
        } else {
            if (gu_st.phase == 0u) {
                gup_text(0u); gup_uint(lane);
                gup_text(1u); gup_uint(uint64_t(k));
                gup_text(2u); gup_int(int(k) - int(lane) - 5);
                gup_text(3u); gup_hex((uint64_t(lane) << 8) | uint64_t(k));
                gup_text(4u); precise float v = float(k) * 0.125 - float(lane); gup_float(v, 3u);
                gup_char(33u);
            } else {
                gup_text(8u); gup_uint(lane); gup_text(6u); gup_uint(k); gup_char(32u);
                gup_int(int(gu_st.bytes)); gup_char(32u);
                gup_put_fixed(64u * lane, min(uint(gu_st.bytes), 8u));
            }
            s = gup_print();
        }
        if (s != GU_STATUS_READY) continue;
        gu_st.checksum += uint64_t(res);
        gu_st.phase++;
        if (gu_st.phase == 4u) { gu_st.phase = 0u; gu_st.seq++; gu_st.done++; }
    }
    gup_end();
}
