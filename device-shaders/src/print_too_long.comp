#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
// print_too_long: lines around the lane's line capacity through the print API (host/tests/user_kernel.rs). Texts:
// 0 = "0123456789", k = 1 … 9 = the first k letters "abcdefghi", 10 = "xyz\n". Every lane
//   seq = 0 … count - 1: prints seq bytes (texts 0 and seq % 10; gup_print appends the newline);
//   seq = count:         prints 64 bytes that end with their own newline (six times text 0, then text 10);
//   seq = count + 1:     prints 33 one-byte pieces (one piece more than a line holds);
//   seq = count + 2:     writes 64 bytes without a newline (six times text 0, then text 4) to registered file 0.
// done counts operations that returned READY, failed those that returned LINE_TOO_LONG, checksum sums the
// lengths of the lines printed (newline included); other statuses are retried (or end the dispatch).
// Prints through the print log when the ring's prints are in group-commit mode (gpu_uring_print.glsl).
#define GUP_PRINT_LOG
#include "../include/gpu_uring_print.glsl"

void main() {
    if (!gu_begin()) return;
    uint count = gu_run.params.count;
    while (gup_running()) {
        uint seq = gu_st.seq;
        if (seq == count + 3u) {
            if (gup_finish() == GU_STATUS_READY) break;
            continue;
        }
        gup_line();
        uint len = seq < count ? seq + 1u : 64u;
        if (seq == count + 1u) {
            for (uint i = 0u; i < 33u; i++) { gu_iters++; gup_char(120u); } // 'x'
        } else {
            uint n = seq < count ? seq : 60u;
            for (uint i = 0u; i < n / 10u; i++) { gu_iters++; gup_text(0u); }
            uint r = seq < count ? n % 10u : seq == count ? 10u : 4u;
            if (r != 0u) gup_text(r);
        }
        int res = 0;
        uint s = gup_op(seq == count + 2u ? GUP_OP_WRITE : GUP_OP_PRINT, 0u, uint64_t(0), 0u, 0u, res);
        if (s == GU_STATUS_READY) {
            gu_st.done++;
            if (seq <= count) gu_st.checksum += uint64_t(len);
        } else if (s == GU_STATUS_LINE_TOO_LONG) {
            gu_st.failed++;
        } else {
            continue;
        }
        gu_st.seq++;
    }
    gup_end();
}
