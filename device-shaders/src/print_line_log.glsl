// print_line_log.glsl — print_line.glsl's line (`backend::format_print_line` exactly) written straight into the
// print log (print_log.comp). Include after gpu_uring.glsl and gpu_uring_log.glsl.
#ifndef PRINT_LINE_LOG_GLSL
#define PRINT_LINE_LOG_GLSL

// The line's length is known before a byte of it is written (digit counts by comparison), so a lane reserves it,
// then writes its bytes into the log at the reserved position: no private line buffer, no copy. Only 32-bit
// integer arithmetic for the digits (lane and seq are u32, |seq - lane| < 2^32) and the §7 float rule in f64 for
// v: lane < 2^16 and seq < 2^32, so |v| < 2^30, v × 1000 < 2^63 (the fixed-point form always applies) and the
// rounded s = round_half_even(|v| × 1000) < 2^40, whose integer part s / 1000 fits in 32 bits.

// Decimal digits of v (1 for 0).
uint pl_dec_digits(uint v) {
    return 1u + uint(v >= 10u) + uint(v >= 100u) + uint(v >= 1000u) + uint(v >= 10000u) + uint(v >= 100000u)
        + uint(v >= 1000000u) + uint(v >= 10000000u) + uint(v >= 100000000u) + uint(v >= 1000000000u);
}
// Lowercase hex digits of v (1 for 0).
uint pl_hex_digits(uint v) { return v == 0u ? 1u : uint(findMSB(v)) / 4u + 1u; }

// One line's fields.
struct PlLine {
    uint lane, seq;
    uint dneg, dabs;   // d = seq - lane: sign (1 = '-') and magnitude
    uint hexa, na;     // x = (lane << 32) | seq: its leading part (lane, or seq when lane is 0) and digits
    uint hexb, nb;     // and the rest: seq in 8 digits after a nonzero lane, else none
    uint vneg, ip, fr; // v = seq / 8 - lane (f32), 3 decimals: sign, integer part, fraction (3 digits)
    uint len;          // bytes with the newline, after the cut to the line capacity (LineBuf)
};

PlLine pl_line(uint lane, uint seq) {
    PlLine l;
    l.lane = lane;
    l.seq = seq;
    l.dneg = seq < lane ? 1u : 0u;
    l.dabs = seq < lane ? lane - seq : seq - lane;
    l.hexa = lane != 0u ? lane : seq;
    l.na = pl_hex_digits(l.hexa);
    l.hexb = seq;
    l.nb = lane != 0u ? 8u : 0u;
    precise float v = float(seq) * 0.125 - float(lane); // = seq as f32 / 8.0 - lane as f32 (exact scaling)
    l.vneg = (floatBitsToUint(v) & 0x80000000u) != 0u ? 1u : 0u;
    // §7 fixed point with p = 3, as gu_put_fixed: every step one correctly rounded f64 operation.
    precise double y = abs(double(v)) * 1000.0LF;
    precise double f = floor(y);
    precise double d = y - f;
    uint64_t s = uint64_t(f);
    if (d > 0.5LF || (d == 0.5LF && (s & uint64_t(1)) == uint64_t(1))) s += uint64_t(1);
    l.ip = uint(s / uint64_t(1000));
    l.fr = uint(s - uint64_t(l.ip) * uint64_t(1000));
    uint content = l.dneg + pl_dec_digits(l.dabs) + l.na + l.nb + l.vneg + pl_dec_digits(l.ip) + 4u
                   + pl_dec_digits(lane) + pl_dec_digits(seq);
    for (uint t = 0u; t < 6u; t++) { gu_iters++; content += gu_run.text_index[2u * t + 1u]; }
    // LineBuf keeps one byte of its capacity for the newline and drops what does not fit before it.
    l.len = min(content, min(gu_l.line_bytes, GU_MAX_LINE_WORDS * 4u) - 1u) + 1u;
    return l;
}

// ---- writing: whole words where the line owns them -------------------------------------------------------
// The line's bytes go into the log in order through a small accumulator aligned to the log's words: a word the
// line fills completely is one word store; the line's first and last words, which it shares with its neighbours
// (other lanes' lines), get byte stores for its own bytes only. So a line costs about len / 4 stores.
uint64_t pl_acc = uint64_t(0); // pending bytes of the current log word (low bytes first)
uint pl_na = 0u;               // bytes in the current word so far (the first word starts at pos & 3)
uint pl_word = 0u;             // log position of the current word (a multiple of 4)
uint pl_head = 0u;             // the line's first word: bytes below this one are the previous line's
bool pl_first = true;          // the current word is the line's first
uint pl_left = 0u;             // bytes of the line still to put before the newline (the cut)

// Bytes k0 … k1-1 of log word w (value v), one byte store each.
void pl_bytes(uint w, uint v, uint k0, uint k1) {
    if (k0 <= 0u && 0u < k1) gu_log_byte(w, v & 0xffu);
    if (k0 <= 1u && 1u < k1) gu_log_byte(w + 1u, (v >> 8) & 0xffu);
    if (k0 <= 2u && 2u < k1) gu_log_byte(w + 2u, (v >> 16) & 0xffu);
    if (k0 <= 3u && 3u < k1) gu_log_byte(w + 3u, v >> 24);
}
// Appends `n` ≤ 16 bytes (v, low byte first; bytes past the cut are dropped) and stores each completed word.
void pl_put(uvec4 v, uint n) {
    n = min(n, pl_left);
    pl_left -= n;
    for (uint j = 0u; j < n; j += 4u) {
        gu_iters++;
        uint c = min(4u, n - j);
        uint part = v[j >> 2];
        if (c < 4u) part &= (1u << (8u * c)) - 1u;
        pl_acc |= uint64_t(part) << (8u * pl_na);
        pl_na += c;
        if (pl_na >= 4u) {
            uint w = uint(pl_acc);
            if (pl_first) pl_bytes(pl_word, w, pl_head, 4u); else gu_log_word(pl_word, w);
            pl_first = false;
            pl_word += 4u;
            pl_acc >>= 32;
            pl_na -= 4u;
        }
    }
}
// A text of the host's table (≤ 16 bytes here).
void pl_text(uint t) {
    uint o = gu_run.text_index[2u * t];
    uint n = gu_run.text_index[2u * t + 1u];
    uint sh = (o & 3u) * 8u;
    uint b = o >> 2;
    uvec4 v;
    for (uint k = 0u; k < 4u; k++) {
        uint lo = gu_run.text_bytes[min(b + k, GU_TEXT_BYTES / 4u - 1u)];
        uint hi = gu_run.text_bytes[min(b + k + 1u, GU_TEXT_BYTES / 4u - 1u)];
        v[k] = sh == 0u ? lo : (lo >> sh) | (hi << (32u - sh));
    }
    pl_put(v, n);
}
// `n` (≤ 16) digits of v in `base` (10 or 16), most significant first: generated from the last, each shifted in
// at the front (little-endian: the first byte is the low one).
void pl_num(uint v, uint base, uint n) {
    uvec4 a = uvec4(0u);
    for (uint k = 0u; k < n; k++) {
        gu_iters++;
        uint d = base == 16u ? v & 15u : v % 10u;
        v = base == 16u ? v >> 4 : v / 10u;
        a = uvec4(a.x << 8, (a.y << 8) | (a.x >> 24), (a.z << 8) | (a.y >> 24), (a.w << 8) | (a.z >> 24));
        a.x |= d < 10u ? 48u + d : 87u + d; // '0'.., 'a' - 10 = 87
    }
    pl_put(a, n);
}
void pl_char(uint b, uint n) { pl_put(uvec4(b, 0u, 0u, 0u), n); }

// Writes line `l` into the print log at byte position `pos` (the lane's reserved bytes).
void pl_write(PlLine l, uint pos) {
    pl_acc = uint64_t(0);
    pl_head = pos & 3u;
    pl_na = pl_head;
    pl_word = pos - pl_head;
    pl_first = true;
    pl_left = l.len - 1u;
    pl_text(0u); pl_num(l.lane, 10u, pl_dec_digits(l.lane));
    pl_text(1u); pl_num(l.seq, 10u, pl_dec_digits(l.seq));
    pl_text(2u); pl_char(45u, l.dneg); pl_num(l.dabs, 10u, pl_dec_digits(l.dabs));
    pl_text(3u); pl_num(l.hexa, 16u, l.na); pl_num(l.hexb, 16u, l.nb);
    pl_text(4u); pl_char(45u, l.vneg); pl_num(l.ip, 10u, pl_dec_digits(l.ip)); pl_char(46u, 1u);
    pl_num(l.fr, 10u, 3u);
    pl_text(5u);
    pl_left = 1u;
    pl_char(10u, 1u);
    // The last word's bytes, if it is not complete.
    if (pl_na > 0u) pl_bytes(pl_word, uint(pl_acc), pl_first ? pl_head : 0u, pl_na);
}

#endif
