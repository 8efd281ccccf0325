// gpu_uring/print.h: a printf-easy line builder: `gu::format(l, "x=", x, " y=", gu::hex(y), " v=", v)`.
// Each argument is appended by the §7 rules (format.h) and the line is ended with `\n`; the result is the
// bytes a print submits as one write (PROTOCOL.md §7).
//
//   const char*  its text          char             that byte
//   signed ints  decimal           unsigned ints    decimal
//   gu::hex(v)   lowercase hex     float            6 decimals (gu::fixed(x, p) for p decimals)
//   double, bool and pointers do not compile: §7 formats f32 only, and the others have no one obvious form
//   (say gu::fixed((float)x, p), "true"/"false", gu::hex((uint64_t)p)).
#ifndef GPU_URING_PRINT_H
#define GPU_URING_PRINT_H

#include "format.h"

namespace gu {

struct hex_arg {
    uint64_t v;
};
struct fixed_arg {
    float x;
    uint32_t precision;
};
GU_FN hex_arg hex(uint64_t v) { return hex_arg{v}; }
GU_FN fixed_arg fixed(float x, uint32_t precision) { return fixed_arg{x, precision}; }

// The default precision of a float argument (§7).
enum : uint32_t { default_precision = 6 };

GU_FN void put(line &l, const char *s) { l.str(s); }
GU_FN void put(line &l, char c) { l.byte(c); }
GU_FN void put(line &l, signed char v) { l.i64(v); }
GU_FN void put(line &l, short v) { l.i64(v); }
GU_FN void put(line &l, int v) { l.i64(v); }
GU_FN void put(line &l, long v) { l.i64(v); }
GU_FN void put(line &l, long long v) { l.i64(v); }
GU_FN void put(line &l, unsigned char v) { l.u64(v); }
GU_FN void put(line &l, unsigned short v) { l.u64(v); }
GU_FN void put(line &l, unsigned v) { l.u64(v); }
GU_FN void put(line &l, unsigned long v) { l.u64(v); }
GU_FN void put(line &l, unsigned long long v) { l.u64(v); }
GU_FN void put(line &l, float x) { l.f32(x, default_precision); }
GU_FN void put(line &l, hex_arg h) { l.hex(h.v); }
GU_FN void put(line &l, fixed_arg f) { l.f32(f.x, f.precision); }
GU_DECL void put(line &l, double) = delete;
GU_DECL void put(line &l, bool) = delete;
GU_DECL void put(line &l, const void *) = delete;

// Formats one line from its arguments (cleared first, `\n` appended); returns its length in bytes.
template <class... Args> GU_FN uint32_t format(line &l, const Args &...args) {
    l.clear();
    (put(l, args), ...);
    l.finish();
    return l.size();
}

} // namespace gu

#endif // GPU_URING_PRINT_H
