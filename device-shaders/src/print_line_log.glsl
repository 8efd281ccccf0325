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

// The host's text table, read once per dispatch (pl_load_texts): each text's bytes and length (the print texts
// are at most 12 bytes: backend::PRINT_TEXT).
uvec3 pl_tv[6];
uint pl_tn[6];
void pl_load_texts() {
    for (uint t = 0u; t < 6u; t++) {
        uint o = gu_run.text_index[2u * t];
        uint sh = (o & 3u) * 8u;
        uint b = o >> 2;
        uvec3 v;
        for (uint k = 0u; k < 3u; k++) {
            uint lo = gu_run.text_bytes[min(b + k, GU_TEXT_BYTES / 4u - 1u)];
            uint hi = gu_run.text_bytes[min(b + k + 1u, GU_TEXT_BYTES / 4u - 1u)];
            v[k] = sh == 0u ? lo : (lo >> sh) | (hi << (32u - sh));
        }
        pl_tv[t] = v;
        pl_tn[t] = min(gu_run.text_index[2u * t + 1u], 12u);
    }
}
// One line's fields.
struct PlLine {
    uint lane, seq;
    uint dneg, dabs;   // d = seq - lane: sign (1 = '-') and magnitude
    uint hexa, na;     // x = (lane << 32) | seq: its leading part (lane, or seq when lane is 0) and digits
    uint hexb, nb;     // and the rest: seq in 8 digits after a nonzero lane, else none
    uint vneg, ip, fr; // v = seq / 8 - lane (f32), 3 decimals: sign, integer part, fraction (3 digits)
    uint len;          // bytes with the newline
    bool too_long;     // longer than the ring's lines: not printed (LINE_TOO_LONG, as the Rust lane)
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
    content += pl_tn[0] + pl_tn[1] + pl_tn[2] + pl_tn[3] + pl_tn[4] + pl_tn[5];
    l.len = content + 1u;
    l.too_long = l.len > gu_l.line_bytes;
    return l;
}

// ---- writing: whole words where the line owns them -------------------------------------------------------
// The line is first assembled in private words aligned like the log (pl_w: its first `pos & 3` bytes are not
// the line's), then stored: one word store per word the line fills, byte stores only in its first and last words,
// which it shares with its neighbours (other lanes' lines). Each loop has one store in it: a device that runs its
// stores lane by lane (lavapipe) pays per store instruction executed, whatever the mask.
const uint PL_WORDS = 36u;     // a line here is at most 130 bytes (6 texts ≤ 12, numbers ≤ 57, '\n') + 3
uint pl_w[PL_WORDS];
uint pl_wi = 0u;               // words of pl_w complete
uvec4 pl_acc = uvec4(0u);      // pending bytes after them (low bytes first)
uint pl_na = 0u;               // how many (< 4 between puts)

// The low `n` bytes of v (n ≤ 12).
uvec3 pl_low(uvec3 v, uint n) {
    uvec3 m = uvec3(n >= 4u ? ~0u : (1u << (8u * n)) - 1u, n >= 8u ? ~0u : n <= 4u ? 0u : (1u << (8u * (n - 4u))) - 1u,
                    n >= 12u ? ~0u : n <= 8u ? 0u : (1u << (8u * (n - 8u))) - 1u);
    return v & m;
}
// Appends `n` ≤ 12 bytes (v, low byte first) and moves the completed words into pl_w (one store in the loop, run
// once per completed word).
void pl_put(uvec3 v, uint n) {
    v = pl_low(v, n);
    uint s = 8u * pl_na; // < 32
    uint r = 32u - s;
    pl_acc |= s == 0u ? uvec4(v, 0u)
                      : uvec4(v.x << s, (v.y << s) | (v.x >> r), (v.z << s) | (v.y >> r), v.z >> r);
    pl_na += n;
    for (; pl_na >= 4u; pl_na -= 4u) {
        gu_iters++;
        pl_w[min(pl_wi, PL_WORDS - 1u)] = pl_acc.x;
        pl_wi++;
        pl_acc = uvec4(pl_acc.yzw, 0u);
    }
}

// Writes line `l` into the print log at byte position `pos` (the lane's reserved bytes). The line is 14 tokens —
// a text of the table, or a number (its digits, then a prefix byte shifted in front of them) — put by one loop,
// so the code that puts bytes is there once.
void pl_write(PlLine l, uint pos) {
    uint head = pos & 3u;
    pl_acc = uvec4(0u);
    pl_na = head;
    pl_wi = 0u;
    for (uint t = 0u; t < 14u; t++) {
        gu_iters++;
        uvec3 a = uvec3(0u); // the token's bytes, the first one low
        uint n = 0u;         // text bytes
        uint v = 0u, base = 10u, nd = 0u, pre = 0u, np = 0u;
        switch (t) {
        case 0u: a = pl_tv[0]; n = pl_tn[0]; break;
        case 1u: v = l.lane; nd = pl_dec_digits(v); break;
        case 2u: a = pl_tv[1]; n = pl_tn[1]; break;
        case 3u: v = l.seq; nd = pl_dec_digits(v); break;
        case 4u: a = pl_tv[2]; n = pl_tn[2]; break;
        case 5u: v = l.dabs; nd = pl_dec_digits(v); pre = 45u; np = l.dneg; break; // [-]|d|
        case 6u: a = pl_tv[3]; n = pl_tn[3]; break;
        case 7u: v = l.hexa; base = 16u; nd = l.na; break;
        case 8u: v = l.hexb; base = 16u; nd = l.nb; break;
        case 9u: a = pl_tv[4]; n = pl_tn[4]; break;
        case 10u: v = l.ip; nd = pl_dec_digits(v); pre = 45u; np = l.vneg; break; // [-]integer part
        case 11u: v = l.fr; nd = 3u; pre = 46u; np = 1u; break;                    // .fraction
        case 12u: a = pl_tv[5]; n = pl_tn[5]; break;
        default: pre = 10u; np = 1u; break;                                         // the newline
        }
        // Digits from the last, each shifted in at the front; then the prefix.
        for (uint k = 0u; k < nd + np; k++) {
            gu_iters++;
            uint d = base == 16u ? v & 15u : v % 10u;
            v = base == 16u ? v >> 4 : v / 10u;
            a = uvec3(a.x << 8, (a.y << 8) | (a.x >> 24), (a.z << 8) | (a.y >> 24));
            a.x |= k == nd ? pre : d < 10u ? 48u + d : 87u + d; // '0'.., 'a' - 10 = 87
        }
        pl_put(a, n + nd + np);
    }
    pl_w[min(pl_wi, PL_WORDS - 1u)] = pl_acc.x;
    // Bytes [head, span) of the words from pos - head: words k0 … k1-1 are the line's alone.
    uint base = pos - head;
    uint span = head + l.len;
    uint k0 = head != 0u ? 1u : 0u;
    uint k1 = span >> 2;
    for (uint k = k0; k < k1; k++) { gu_iters++; gu_log_word(base + 4u * k, pl_w[k]); }
    // The shared words' own bytes: the first word's from head on (when it is not the line's alone), the last's
    // below span (when the line ends inside it, and it is not that first word).
    uint last = span >> 2;
    for (uint j = 0u; j < 8u; j++) {
        gu_iters++;
        uint k = j < 4u ? 0u : last;
        uint off = 4u * k + (j & 3u);
        bool own = (j < 4u && head != 0u) || (j >= 4u && (span & 3u) != 0u && (last != 0u || head == 0u));
        if (own && off >= head && off < span) gu_log_byte(base + off, (pl_w[k] >> ((j & 3u) * 8u)) & 0xffu);
    }
}

#endif
