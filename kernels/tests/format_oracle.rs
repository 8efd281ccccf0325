//! The C++ §7 formatter (the code every CUDA/HIP kernel runs) gives the same bytes as the Rust `LineBuf`
//! for every case of the Rust format tests, the device suite's format probe and a deterministic sweep.

use gpu_uring::backend::FormatCase as Case;
use gpu_uring::protocol::LineBuf;
use gpu_uring_kernels::{
    format_args_line, format_probe, line_str, print_line, FORMAT_RECORD_BYTES,
};

/// Formats every case with the C++ formatter through the format-probe record layout.
fn cpp(cases: &[Case]) -> Vec<Vec<u8>> {
    let mut rec = vec![0u8; cases.len() * FORMAT_RECORD_BYTES];
    for (c, r) in cases.iter().zip(rec.chunks_exact_mut(FORMAT_RECORD_BYTES)) {
        let (kind, p, v) = c.record();
        r[0..4].copy_from_slice(&kind.to_le_bytes());
        r[4..8].copy_from_slice(&p.to_le_bytes());
        r[8..16].copy_from_slice(&v.to_le_bytes());
    }
    format_probe(&mut rec);
    rec.chunks_exact(FORMAT_RECORD_BYTES)
        .map(|r| {
            let n = u32::from_le_bytes([r[16], r[17], r[18], r[19]]) as usize;
            r[20..20 + n.min(108)].to_vec()
        })
        .collect()
}

fn check(cases: &[Case]) {
    let got = cpp(cases);
    let mut bad = Vec::new();
    for (c, g) in cases.iter().zip(&got) {
        let want = c.reference();
        if *g != want {
            bad.push(format!(
                "{c:?}: C++ {:?}, Rust {:?}",
                String::from_utf8_lossy(g),
                String::from_utf8_lossy(&want)
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} cases differ:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
}

#[test]
fn the_rust_format_tests_cases() {
    use Case::*;
    let mut cases = vec![
        U64(0),
        U64(u64::MAX),
        I64(i64::MIN),
        I64(-42),
        Hex(0),
        Hex(0xdead_beef),
        F32(f32::NAN, 3),
        F32(f32::NEG_INFINITY, 3),
        F32(f32::MAX, 6),
    ];
    for &x in &[
        0.0f32, 1.5, -2.25, 1.23456, 1e-7, 123_456.79, -0.0, 0.1, 2.5e9,
    ] {
        for p in [0u32, 1, 3, 6] {
            cases.push(F32(x, p));
        }
    }
    check(&cases);
    // The Rust tests also hold the digits to Rust's own float formatting for ordinary values.
    for &x in &[0.0f32, 1.5, -2.25, 1.23456, 0.1, 2.5e9] {
        for p in [0u32, 1, 3, 6] {
            assert_eq!(
                cpp(&[F32(x, p)])[0],
                format!("{:.*}", p as usize, x as f64).into_bytes()
            );
        }
    }
    assert_eq!(cpp(&[F32(f32::MAX, 6)])[0], b"3.402823e+38");
}

#[test]
fn the_device_suite_format_probe_cases() {
    use Case::*;
    let mut cases = Case::probe_cases();
    // Precision above 9 is 9; a negative NaN is still "nan".
    cases.extend([F32(1.0, 12), F32(-f32::NAN, 2)]);
    check(&cases);
}

/// A deterministic sweep: integers of every magnitude, f32 bit patterns across every exponent (subnormals,
/// halves at each precision, values at the 2^63 boundary of the fixed branch), every precision.
#[test]
fn a_sweep_of_bit_patterns_and_precisions() {
    use Case::*;
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut cases = Vec::new();
    for i in 0..64 {
        let v = 1u64 << i;
        cases.extend([
            U64(v),
            U64(v - 1),
            I64((v as i64).wrapping_neg()),
            Hex(v),
            Hex(v - 1),
        ]);
    }
    for _ in 0..500 {
        let r = next();
        cases.extend([
            U64(r >> (r % 64)),
            I64(r as i64 >> (r % 63)),
            Hex(r >> (r % 64)),
        ]);
    }
    for _ in 0..6000 {
        let r = next();
        cases.push(F32(f32::from_bits(r as u32), ((r >> 32) % 10) as u32));
    }
    for e in -45..=38 {
        let x = 10f32.powi(e);
        for p in 0..=9 {
            cases.extend([F32(x, p), F32(-x * 1.5, p), F32(x * 2.5, p)]);
        }
    }
    for p in 0..=9u32 {
        // Exact halves at this precision (ties to even) and the values around the fixed/exponent boundary.
        for k in 0..40u32 {
            cases.push(F32((k as f32 + 0.5) / 10f32.powi(p as i32), p));
        }
        let edge = 9.223_372e18f32 / 10f32.powi(p as i32);
        for b in [-2i32, -1, 0, 1, 2] {
            cases.push(F32(f32::from_bits((edge.to_bits() as i32 + b) as u32), p));
        }
    }
    check(&cases);
}

#[test]
fn print_program_lines_match_the_rust_formatter() {
    for lane in 0..12 {
        for seq in 0..40 {
            let want = format!("{}\n", gpu_uring::backend::expected_line(lane, seq));
            assert_eq!(
                String::from_utf8_lossy(&print_line(lane, seq)),
                want,
                "lane {lane} seq {seq}"
            );
        }
    }
}

#[test]
fn every_argument_kind_of_format() {
    assert_eq!(
        String::from_utf8_lossy(&format_args_line()),
        "u8=255 i16=-7 c=z i32=-2147483648 u32=4294967295 i64=-9 u64=18446744073709551615 f=1.500000 \
         h=abc p=2 long=-3 ul=4 ll=-5 ull=6\n"
    );
}

#[test]
fn truncation_keeps_room_for_the_newline() {
    // The Rust format test's case.
    let mut l = LineBuf::with_capacity(8);
    l.str("abcdefghijk");
    assert_eq!(line_str("abcdefghijk", 8), (b"abcdefg\n".to_vec(), true));
    assert_eq!(&l.as_bytes()[..7], b"abcdefg");
    assert!(l.truncated());
    assert_eq!(line_str("abc", 8), (b"abc\n".to_vec(), false));
    // A line that ends in a newline keeps just that one.
    assert_eq!(line_str("abc\n", 8), (b"abc\n".to_vec(), false));
    assert_eq!(line_str("abcdefg", 8), (b"abcdefg\n".to_vec(), false));
    assert_eq!(line_str("abcdefgh", 8), (b"abcdefg\n".to_vec(), true));
    // The caller's own newline may take the last byte (the line fits); anything after it is cut.
    assert_eq!(line_str("abcdefg\n", 8), (b"abcdefg\n".to_vec(), false));
    assert_eq!(line_str("abcdefg\nx", 8), (b"abcdefg\n".to_vec(), true));
    // The truncation flag (what makes a print return LINE_TOO_LONG) is the Rust `LineBuf`'s at every length
    // around the capacity, with and without a newline of the caller's.
    for n in 0..12 {
        for nl in ["", "\n"] {
            let text = format!("{}{nl}", "y".repeat(n));
            let mut l = LineBuf::with_capacity(8);
            l.str(&text);
            let rust = l.truncated();
            assert_eq!(line_str(&text, 8).1, rust, "{text:?}");
        }
    }
}
