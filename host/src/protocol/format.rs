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

    /// Appends text.
    pub fn str(&mut self, s: &str) -> &mut Self {
        for &b in s.as_bytes() {
            self.push(b);
        }
        self
    }

    /// Appends an unsigned integer in decimal.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut n = 0;
        let mut v = v;
        loop {
            digits[n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for i in (0..n).rev() {
            self.push(digits[i]);
        }
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
        let mut digits = [0u8; 16];
        let mut n = 0;
        let mut v = v;
        loop {
            let d = (v & 15) as u8;
            digits[n] = if d < 10 { b'0' + d } else { b'a' + d - 10 };
            n += 1;
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        for i in (0..n).rev() {
            self.push(digits[i]);
        }
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
        let pow = 10u64.pow(p) as f64;
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

    fn fixed(&mut self, v: f64, p: u32) {
        let pow = 10u64.pow(p);
        let y = v * pow as f64;
        let f = y.floor();
        let d = y - f;
        let mut s = f as u64;
        if d > 0.5 || (d == 0.5 && s % 2 == 1) {
            s += 1;
        }
        self.u64(s / pow);
        if p > 0 {
            self.push(b'.');
            let frac = s % pow;
            let mut div = pow / 10;
            while div > 0 {
                self.push(b'0' + ((frac / div) % 10) as u8);
                div /= 10;
            }
        }
    }
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
