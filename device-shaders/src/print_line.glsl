// print_line.glsl — the line every print program prints, `backend::format_print_line` exactly:
//   lane=<L> seq=<K> d=<K-L> x=<hex (L<<32)|K> v=<K/8 - L, 3 decimals> gpu-uring
// Text pieces 0..5 come from the host's text table. Include after gpu_uring.glsl.
#ifndef PRINT_LINE_GLSL
#define PRINT_LINE_GLSL

void format_line(uint lane, uint seq) {
    gu_line_begin();
    gu_put_text(0u); gu_put_u64(uint64_t(lane));
    gu_put_text(1u); gu_put_u64(uint64_t(seq));
    gu_put_text(2u); gu_put_i64(int64_t(seq) - int64_t(lane));
    gu_put_text(3u); gu_put_hex((uint64_t(lane) << 32) | uint64_t(seq));
    gu_put_text(4u);
    precise float v = float(seq) * 0.125 - float(lane); // = seq as f32 / 8.0 - lane as f32 (exact scaling)
    gu_put_f32(v, 3u);
    gu_put_text(5u);
    gu_line_finish();
}

#endif

