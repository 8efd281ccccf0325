// gpu_uring/format.h: number formatting exactly as PROTOCOL.md §7 specifies (the same bytes as the Rust
// `LineBuf` and the GLSL library): decimal, lowercase hex, f32 with a precision computed in IEEE f64 where
// every step is one correctly rounded operation. No allocation, no C library.
//
// `gu::line` formats into a caller-owned buffer of `cap` bytes (a staging line, at most 4096): text past the
// capacity is cut, one byte is always kept for the final `\n`, and `truncated()` records the cut. A print
// (gpu_uring/lane.h, group.h) never submits a cut line: it returns GU_STATUS_LINE_TOO_LONG and prints nothing,
// as the Rust lane does.
#ifndef GPU_URING_FORMAT_H
#define GPU_URING_FORMAT_H

#include "config.h"

namespace gu {

namespace detail {
// f64 operations rounded to nearest even, never contracted into an FMA (an FMA would skip the rounding of
// the product, and the digits would differ between devices). CUDA: the _rn intrinsics are never fused.
// clang (HIP, host): contraction is switched off in these functions; GCC contracts nothing across
// statements, and on x86-64 it contracts nothing at all without FMA target flags.
GU_FN double mul_rn(double a, double b) {
#if defined(GU_CUDA) && defined(GU_DEVICE_CODE)
    return __dmul_rn(a, b);
#else
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
    return a * b;
#endif
}
GU_FN double div_rn(double a, double b) {
#if defined(GU_CUDA) && defined(GU_DEVICE_CODE)
    return __ddiv_rn(a, b);
#else
    return a / b;
#endif
}
GU_FN double sub_rn(double a, double b) {
#if defined(GU_CUDA) && defined(GU_DEVICE_CODE)
    return __dsub_rn(a, b);
#else
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
    return a - b;
#endif
}
GU_FN uint32_t f32_bits(float x) {
#if defined(GU_CUDA) || defined(GU_HIP)
    return __float_as_uint(x);
#else
    uint32_t b;
    std::memcpy(&b, &x, sizeof b);
    return b;
#endif
}
} // namespace detail

class line {
    char *data_;
    uint32_t cap_;
    uint32_t len_ = 0;
    bool truncated_ = false;

  public:
    // A line of at most `cap` bytes including its newline, written into `data`.
    GU_FN line(char *data, uint32_t cap) : data_(data), cap_(cap) {}

    GU_FN const char *data() const { return data_; }
    GU_FN uint32_t size() const { return len_; }
    GU_FN bool truncated() const { return truncated_; }
    GU_FN void clear() {
        len_ = 0;
        truncated_ = false;
    }

    GU_FN line &byte(char b) {
        // Keep one byte for the newline, which may be the caller's own (as the Rust `LineBuf`).
        if (len_ + 1 < cap_ || (b == '\n' && len_ < cap_)) {
            data_[len_++] = b;
        } else {
            truncated_ = true;
        }
        return *this;
    }

    // Ends the line with `\n` unless it ends with one (one byte is always kept for it).
    GU_FN line &finish() {
        if ((len_ == 0 || data_[len_ - 1] != '\n') && len_ < cap_) {
            data_[len_++] = '\n';
        }
        return *this;
    }

    // Text up to its NUL.
    GU_FN line &str(const char *s) {
        for (; *s; s++) {
            byte(*s);
        }
        return *this;
    }
    GU_FN line &bytes(const char *s, uint32_t n) {
        for (uint32_t i = 0; i < n; i++) {
            byte(s[i]);
        }
        return *this;
    }

    // Unsigned decimal, minimal digits.
    GU_FN line &u64(uint64_t v) {
        char digits[20];
        uint32_t n = 0;
        do {
            digits[n++] = (char)('0' + v % 10);
            v /= 10;
        } while (v != 0);
        while (n > 0) {
            byte(digits[--n]);
        }
        return *this;
    }

    // Signed decimal (INT64_MIN exact: its magnitude is taken in unsigned arithmetic).
    GU_FN line &i64(int64_t v) {
        if (v < 0) {
            byte('-');
            return u64(0ull - (uint64_t)v);
        }
        return u64((uint64_t)v);
    }

    // Lowercase hex, no prefix, minimal digits.
    GU_FN line &hex(uint64_t v) {
        char digits[16];
        uint32_t n = 0;
        do {
            uint32_t d = (uint32_t)(v & 15);
            digits[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
            v >>= 4;
        } while (v != 0);
        while (n > 0) {
            byte(digits[--n]);
        }
        return *this;
    }

    // An f32 with `precision` decimals (0–9, larger is 9), PROTOCOL.md §7.
    GU_FN line &f32(float x, uint32_t precision) {
        uint32_t p = precision < 9 ? precision : 9;
        uint32_t bits = detail::f32_bits(x);
        uint32_t exp = (bits >> 23) & 0xff;
        uint32_t man = bits & 0x7fffff;
        if (exp == 0xff && man != 0) {
            return str("nan");
        }
        if (bits >> 31) {
            byte('-');
        }
        if (exp == 0xff) {
            return str("inf");
        }
        double v = (double)x; // exact
        if (v < 0) {
            v = -v;
        }
        double pow = (double)pow10(p); // exact: 10^9 < 2^53
        if (detail::mul_rn(v, pow) < 9223372036854775808.0) {
            fixed(v, p);
        } else {
            uint64_t e = 0;
            while (v >= 10.0) {
                v = detail::div_rn(v, 10.0);
                e++;
            }
            fixed(v, p);
            str("e+");
            u64(e);
        }
        return *this;
    }

  private:
    GU_FN static uint64_t pow10(uint32_t p) {
        uint64_t r = 1;
        for (uint32_t i = 0; i < p; i++) {
            r *= 10;
        }
        return r;
    }

    // v ≥ 0 and v × 10^p < 2^63, or v < 10 (the exponent branch).
    GU_FN void fixed(double v, uint32_t p) {
        uint64_t pow = pow10(p);
        double y = detail::mul_rn(v, (double)pow);
        // floor(y) by truncation (y ≥ 0 and < 2^63, so the conversion is exact and equals floor).
        uint64_t s = (uint64_t)y;
        double d = detail::sub_rn(y, (double)s);
        if (d > 0.5 || (d == 0.5 && (s & 1))) {
            s++;
        }
        u64(s / pow);
        if (p > 0) {
            byte('.');
            uint64_t frac = s % pow;
            for (uint64_t div = pow / 10; div > 0; div /= 10) {
                byte((char)('0' + (frac / div) % 10));
            }
        }
    }
};

} // namespace gu

#endif // GPU_URING_FORMAT_H
