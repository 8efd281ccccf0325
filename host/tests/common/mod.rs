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

/// Waits until `cond` holds, polling every millisecond, and panics saying `what` if it does not within 10 s:
/// tests wait for a condition, never for a fixed time.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < end, "not within 10 s: {what}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Waits until `ring`'s SQ thread has gone to sleep (`IORING_SQ_NEED_WAKEUP`), then runs `op`, which must
/// submit a request and see it complete, and returns once a run of `op` completed through a waker wake-up.
/// The SQ thread raises the flag just before it sleeps and then checks the SQ once more, so a request
/// published in that window is taken without a wake-up (likely on a loaded machine): such a run is repeated,
/// up to 20 times. A request that a sleeping SQ thread never sees makes `op` itself fail.
pub fn completes_through_a_wakeup(
    ring: &gpu_uring::protocol::DeviceRing,
    what: &str,
    mut op: impl FnMut(),
) {
    let flags = ring.view().u32_at(ring.layout().sq_flags);
    for _ in 0..20 {
        wait_for(&format!("{what}: SQ thread asleep"), || {
            flags.load(std::sync::atomic::Ordering::Acquire) & 1 != 0
        });
        let before = ring.waker_stats().wakeups;
        op();
        // The waker counts a wake-up call before making it, so a completion it caused is never seen first.
        if ring.waker_stats().wakeups > before {
            return;
        }
    }
    panic!("{what}: 20 requests after the SQ thread slept completed without a waker wake-up");
}
