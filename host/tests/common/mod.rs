//! Helpers shared by the device tests.
#![allow(dead_code)]

use std::collections::HashMap;

use gpu_uring::backend::format_print_line;
use gpu_uring::protocol::LineBuf;

/// Checks printed output: every line is a well-formed line of some lane, each (lane, seq) appears exactly
/// once, and each lane's lines are in program order. Returns the number of lines.
pub fn check_prints(out: &[u8], lanes: u32, lines: u32) -> usize {
    let text = std::str::from_utf8(out).expect("output is UTF-8 (a torn line would not be)");
    let mut next: HashMap<u32, u32> = HashMap::new();
    let mut n = 0usize;
    let mut buf = LineBuf::with_capacity(256);
    for (i, line) in text.lines().enumerate() {
        let lane: u32 = line
            .strip_prefix("lane=")
            .and_then(|r| r.split(' ').next())
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("line {i} is malformed: {line:?}"));
        let want = next.entry(lane).or_insert(0);
        buf.clear();
        format_print_line(&mut buf, lane, *want);
        let want_line = std::str::from_utf8(buf.as_bytes()).unwrap();
        assert!(
            line == want_line,
            "line {i}: lane {lane} out of order, torn or duplicated: got {:?}, want {want_line:?}",
            &line[..line.len().min(200)]
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

/// A ring for tests: short SQ idle so SQPOLL threads do not hog the 2-core machines.
pub fn ring(cfg: gpu_uring::ring::RingConfig) -> gpu_uring::protocol::DeviceRing {
    gpu_uring::protocol::DeviceRing::new(gpu_uring::ring::RingConfig {
        sq_thread_idle: std::time::Duration::from_millis(10),
        ..cfg
    })
    .expect("creating a device ring")
}

/// Reads everything from a raw fd's current file (via /proc/self/fd) from offset 0.
pub fn read_fd_file(fd: i32) -> Vec<u8> {
    std::fs::read(format!("/proc/self/fd/{fd}")).expect("reading the output file")
}

/// The CPU reference device, opened through the backend registry like any other device.
pub fn cpu() -> Box<dyn gpu_uring::backend::Device> {
    gpu_uring::backend::open(&gpu_uring::backend::DeviceSelector::Cpu)
        .expect("the CPU reference device is always present")
        .0
}

/// Open descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Serialises the tests of one test binary that count process-wide resources (fds, threads): each holds the
/// guard while it runs.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
