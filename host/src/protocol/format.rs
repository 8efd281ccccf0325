//! Number formatting exactly as PROTOCOL.md §7 specifies, so every device prints the same digits. No
//! allocation: everything formats into a fixed line buffer.

/// A line being formatted by a lane: a fixed-capacity byte buffer. Text past the capacity is cut (the line
/// keeps its final `\n`), and `truncated` records it; a lane's print refuses a cut line
/// (`LaneError::LineTooLong`) rather than print part of it.
pub struct LineBuf {
    buf: Vec<u8>,
    cap: usize,
    truncated: bool,
    /// Bytes the text would take uncut, and its last byte.
    wanted: usize,
    wanted_last: u8,
}

impl LineBuf {
    /// A buffer for lines of up to `cap` bytes (including the newline). Allocates once.
    pub fn with_capacity(cap: usize) -> LineBuf {
        LineBuf {
            buf: Vec::with_capacity(cap),
            cap,
            truncated: false,
            wanted: 0,
            wanted_last: 0,
        }
    }

    /// Empties the buffer for the next line.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.truncated = false;
        self.wanted = 0;
        self.wanted_last = 0;
    }

    /// The formatted bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Whether text was cut.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The capacity: the longest line, newline included.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The length the line would have uncut, with its newline.
    pub fn wanted_len(&self) -> usize {
        self.wanted + usize::from(self.wanted_last != b'\n')
    }

    #[inline]
    fn push(&mut self, b: u8) {
        self.wanted += 1;
        self.wanted_last = b;
        // Keep one byte for the newline (which may be the caller's own).
        if self.buf.len() + 1 < self.cap || (b == b'\n' && self.buf.len() < self.cap) {
            self.buf.push(b);
        } else {
            self.truncated = true;
        }
    }

    /// Ends the line with `\n` (always fits: one byte is kept for it).
    pub(crate) fn finish(&mut self) {
        if self.buf.last() != Some(&b'\n') {
            self.buf.push(b'\n');
        }
    }

    /// Appends `bytes` as [`Self::push`] would one at a time, with one capacity check when they all fit (the
    /// common case: the formatting functions hand over whole numbers and texts, not bytes).
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let Some(&last) = bytes.last() else {
            return;
        };
        // Every byte `k` of them (`len ≤ k < len + n`) has `k + 1 < cap`: `push` would keep each.
        if self.buf.len() + bytes.len() < self.cap {
            self.buf.extend_from_slice(bytes);
            self.wanted += bytes.len();
            self.wanted_last = last;
        } else {
            for &b in bytes {
                self.push(b);
            }
        }
    }

    /// Appends text.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.put(s.as_bytes());
        self
    }

    /// Appends an unsigned integer in decimal.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let n = decimal(&mut digits, v);
        self.put(digits.get(20 - n..).unwrap_or_default());
        self
    }

    /// Appends a signed integer in decimal.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        if v < 0 {
            self.push(b'-');
        }
        self.u64(v.unsigned_abs())
    }

    /// Appends an unsigned integer in lowercase hex, no prefix.
    pub fn hex(&mut self, v: u64) -> &mut Self {
        // Digits: one per started nibble, at least one.
        let n = (64 - (v | 1).leading_zeros() as usize).div_ceil(4);
        let mut digits = [0u8; 16];
        for (i, d) in digits.iter_mut().take(n).enumerate() {
            *d = HEX_DIGITS[((v >> (4 * (n - 1 - i))) & 15) as usize];
        }
        self.put(digits.get(..n).unwrap_or_default());
        self
    }

    /// Appends a float with `precision` decimals (0–9), by the rule in PROTOCOL.md §7.
    pub fn f32(&mut self, x: f32, precision: u32) -> &mut Self {
        let p = precision.min(9);
        if x.is_nan() {
            return self.str("nan");
        }
        if x.is_sign_negative() {
            self.push(b'-');
        }
        if x.is_infinite() {
            return self.str("inf");
        }
        let mut v = (x as f64).abs();
        let pow = POW10[p as usize] as f64;
        if v * pow < 9_223_372_036_854_775_808.0 {
            self.fixed(v, p);
        } else {
            let mut e = 0u64;
            while v >= 10.0 {
                v /= 10.0;
                e += 1;
            }
            self.fixed(v, p);
            self.str("e+").u64(e);
        }
        self
    }

    /// `v ≥ 0` with `v × 10^p < 2^63`, rounded half to even to `p ≤ 9` decimals (PROTOCOL.md §7).
    fn fixed(&mut self, v: f64, p: u32) {
        let p = p.min(9) as usize;
        let y = v * POW10[p] as f64;
        // `y` is in [0, 2^63): the conversion truncates, which is `floor` there, and is exact.
        let mut s = y as u64;
        let d = y - s as f64;
        if d > 0.5 || (d == 0.5 && s % 2 == 1) {
            s += 1;
        }
        // `s % 10^p`, zero-padded to `p` digits, and `s / 10^p`, by `p` divisions by the constant 10.
        let mut frac = [b'0'; 9];
        for f in frac.iter_mut().take(p).rev() {
            *f = b'0' + (s % 10) as u8;
            s /= 10;
        }
        self.u64(s);
        if p > 0 {
            self.push(b'.');
            self.put(frac.get(..p).unwrap_or_default());
        }
    }
}

/// `10^p` for the float precisions `p` in 0–9.
const POW10: [u64; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// "00" … "99": two decimal digits per division by 100.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes `v` in decimal at the end of `out` (minimal digits); returns how many.
fn decimal(out: &mut [u8; 20], mut v: u64) -> usize {
    let mut at = out.len();
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        at -= 2;
        out[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        at -= 2;
        out[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        out[at] = b'0' + v as u8;
    }
    out.len() - at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(f: impl FnOnce(&mut LineBuf)) -> String {
        let mut l = LineBuf::with_capacity(256);
        f(&mut l);
        String::from_utf8(l.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn integers() {
        assert_eq!(
            fmt(|l| {
                l.u64(0);
            }),
            "0"
        );
        assert_eq!(
            fmt(|l| {
                l.u64(u64::MAX);
            }),
            u64::MAX.to_string()
        );
        assert_eq!(
            fmt(|l| {
                l.i64(i64::MIN);
            }),
            i64::MIN.to_string()
        );
        assert_eq!(
            fmt(|l| {
                l.i64(-42);
            }),
            "-42"
        );
        assert_eq!(
            fmt(|l| {
                l.hex(0);
            }),
            "0"
        );
        assert_eq!(
            fmt(|l| {
                l.hex(0xdead_beef);
            }),
            "deadbeef"
        );
    }

    #[test]
    fn floats_match_rust_for_ordinary_values() {
        for &x in &[
            0.0f32, 1.5, -2.25, 1.23456, 1e-7, 123_456.79, -0.0, 0.1, 2.5e9,
        ] {
            for p in [0u32, 1, 3, 6] {
                let ours = fmt(|l| {
                    l.f32(x, p);
                });
                let rust = format!("{:.*}", p as usize, x as f64);
                assert_eq!(ours, rust, "x={x} p={p}");
            }
        }
        assert_eq!(
            fmt(|l| {
                l.f32(f32::NAN, 3);
            }),
            "nan"
        );
        assert_eq!(
            fmt(|l| {
                l.f32(f32::NEG_INFINITY, 3);
            }),
            "-inf"
        );
        assert_eq!(
            fmt(|l| {
                l.f32(f32::MAX, 6);
            }),
            "3.402823e+38"
        );
    }

    /// The §7 float rule written out step by step (f64 `floor`, divisions by `10^p`), for comparison.
    fn f32_by_the_rule(x: f32, p: u32) -> String {
        fn fixed(v: f64, p: u32) -> String {
            let pow = 10u64.pow(p);
            let y = v * pow as f64;
            let f = y.floor();
            let d = y - f;
            let mut s = f as u64;
            if d > 0.5 || (d == 0.5 && s % 2 == 1) {
                s += 1;
            }
            if p == 0 {
                format!("{}", s / pow)
            } else {
                format!("{}.{:0w$}", s / pow, s % pow, w = p as usize)
            }
        }
        if x.is_nan() {
            return "nan".into();
        }
        let sign = if x.is_sign_negative() { "-" } else { "" };
        if x.is_infinite() {
            return format!("{sign}inf");
        }
        let mut v = (x as f64).abs();
        if v * 10u64.pow(p) as f64 >= 9_223_372_036_854_775_808.0 {
            let mut e = 0;
            while v >= 10.0 {
                v /= 10.0;
                e += 1;
            }
            return format!("{sign}{}e+{e}", fixed(v, p));
        }
        format!("{sign}{}", fixed(v, p))
    }

    #[test]
    fn numbers_match_the_rule_over_many_values() {
        // Decimal and hex around every power of ten and of two, and a pseudo-random spread.
        let mut vals = vec![0u64, 1, 9, u64::MAX, u64::MAX - 1];
        for k in 0..20 {
            let p = 10u64.pow(k);
            vals.extend([p - 1, p, p + 1]);
        }
        for k in 0..64 {
            vals.extend([(1u64 << k) - 1, 1 << k, (1u64 << k) + 1]);
        }
        let mut r = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            vals.push(r >> (r % 64));
        }
        for &v in &vals {
            assert_eq!(
                fmt(|l| {
                    l.u64(v);
                }),
                v.to_string()
            );
            assert_eq!(
                fmt(|l| {
                    l.i64(v as i64);
                }),
                (v as i64).to_string()
            );
            assert_eq!(
                fmt(|l| {
                    l.hex(v);
                }),
                format!("{v:x}")
            );
            let x = f32::from_bits(v as u32);
            for p in 0..=9 {
                assert_eq!(
                    fmt(|l| {
                        l.f32(x, p);
                    }),
                    f32_by_the_rule(x, p),
                    "bits={:#x} p={p}",
                    v as u32
                );
            }
        }
        // The print program's values.
        for lane in 0..64u32 {
            for seq in (0..20_000u32).step_by(7) {
                let x = seq as f32 / 8.0 - lane as f32;
                assert_eq!(
                    fmt(|l| {
                        l.f32(x, 3);
                    }),
                    f32_by_the_rule(x, 3)
                );
            }
        }
    }

    #[test]
    fn cut_text_matches_byte_by_byte() {
        // Bulk appends cut exactly where byte-by-byte pushes would, for every capacity.
        for cap in 1..40 {
            let mut a = LineBuf::with_capacity(cap);
            a.str("lane=").u64(12345).str(" x=").hex(0xabcdef).str("\n");
            let mut b = LineBuf::with_capacity(cap);
            for &c in b"lane=12345 x=abcdef\n" {
                b.push(c);
            }
            a.finish();
            b.finish();
            assert_eq!(a.as_bytes(), b.as_bytes(), "cap={cap}");
            assert_eq!(
                (a.truncated(), a.wanted_len()),
                (b.truncated(), b.wanted_len())
            );
        }
    }

    #[test]
    fn truncation_keeps_room_for_newline() {
        let mut l = LineBuf::with_capacity(8);
        l.str("abcdefghijk");
        l.finish();
        assert_eq!(l.as_bytes(), b"abcdefg\n");
        assert!(l.truncated());
        assert_eq!(l.wanted_len(), 12);
        l.clear();
        l.str("abcdefg\n");
        l.finish();
        assert!(!l.truncated());
        assert_eq!((l.as_bytes().len(), l.wanted_len()), (8, 8));
    }
}
