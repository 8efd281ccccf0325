//! Helpers shared by the device tests.
#![allow(dead_code)]

use std::collections::HashMap;

use gpu_uring::backend::expected_line;

/// Checks printed output: every line is a well-formed line of some lane, each (lane, seq) appears exactly
/// once, and each lane's lines are in program order. Returns the number of lines.
pub fn check_prints(out: &[u8], lanes: u32, lines: u32) -> usize {
    let text = std::str::from_utf8(out).expect("output is UTF-8 (a torn line would not be)");
    let mut next: HashMap<u32, u32> = HashMap::new();
    let mut n = 0usize;
    for (i, line) in text.lines().enumerate() {
        let lane: u32 = line
            .strip_prefix("lane=")
            .and_then(|r| r.split(' ').next())
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("line {i} is malformed: {line:?}"));
        let want = next.entry(lane).or_insert(0);
        assert_eq!(
            line,
            expected_line(lane, *want),
            "line {i}: lane {lane} out of order, torn or duplicated"
        );
        *want += 1;
        n += 1;
    }
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "output ends mid-line"
    );
    for lane in 0..lanes {
        assert_eq!(
            next.get(&lane).copied().unwrap_or(0),
            lines,
            "lane {lane} printed the wrong number of lines"
        );
    }
    assert_eq!(next.len() as u32, lanes, "lines from unknown lanes");
    n
}
