//! Helpers shared by the pump tests.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// The byte at offset `i` of every pattern file.
pub fn pattern(i: u64) -> u8 {
    let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 56) as u8 ^ (i as u8)
}

/// A temporary file of `len` pattern bytes.
pub fn pattern_file(len: u64) -> std::fs::File {
    let mut f = tempfile::tempfile().unwrap();
    let bytes: Vec<u8> = (0..len).map(pattern).collect();
    f.write_all(&bytes).unwrap();
    f
}

/// `len` bytes of `f` at `off`.
pub fn read_at(f: &std::fs::File, off: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    f.read_exact_at(&mut v, off).unwrap();
    v
}

/// A generous deadline for one wait on a noisy 2-core machine.
pub fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// A pipe (read end, write end).
pub fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    use std::os::fd::FromRawFd;
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

/// A pump config with `slots` slots, one region of `region` bytes and `data` as file 0 (a reader).
pub fn reader_config(
    data: &std::fs::File,
    slots: u32,
    region: usize,
) -> gpu_uring::pump::PumpConfig {
    gpu_uring::pump::PumpConfig {
        slots,
        regions: vec![region],
        files: vec![gpu_uring::pump::PumpFile::reader(data).unwrap()],
        ..Default::default()
    }
}

/// The pump config the probe oracles run against: 8 slots, one 4096-byte region, `data` as file 0.
pub fn probe_config(data: &std::fs::File) -> gpu_uring::pump::PumpConfig {
    reader_config(data, 8, 4096)
}

/// The pump the held-slot attack runs against (the hostile table's io_queue row and its device runs): 16 slots,
/// one 4096-byte region (a READ at 0, the host's "held" word after the chunk), the read end `pr` of a pipe as
/// file 0, `sq_entries` 4 (so `cq_entries` 8), `stop_timeout` 30 s.
pub fn held_slot_pump(pr: &std::fs::File) -> gpu_uring::pump::Pump {
    use gpu_uring::pump::{Pump, PumpConfig, PumpFile};
    Pump::spawn(PumpConfig {
        slots: 16,
        regions: vec![4096],
        files: vec![PumpFile::reader_with_extent(pr, 1 << 30)],
        sq_entries: 4,
        stop_timeout: Duration::from_secs(30),
        ..Default::default()
    })
    .unwrap()
}

/// The host's part of the held-slot attack on `pump` (from [`held_slot_pump`]): once the pump holds one READ,
/// store 1 into region 0's word at `chunk` (the lane polls it; the host is its only writer), then once the
/// pump counts more than `before` protocol violations (or `bound` runs out, so a lane that never attacks
/// still finishes) write two chunks of 0x5a into `pw`.
pub fn hold_then_fill(
    pump: &gpu_uring::pump::Pump,
    chunk: u32,
    before: u64,
    bound: Duration,
    mut pw: impl Write,
) {
    use std::sync::atomic::Ordering;
    eventually(bound, || pump.stats().in_flight == 1);
    let v = pump.view();
    let held_word = v.region(0).unwrap().offset + chunk;
    v.u32_at(held_word).store(1, Ordering::Release);
    eventually(bound, || pump.stats().protocol_violations > before);
    pw.write_all(&vec![0x5a; 2 * chunk as usize]).unwrap();
}

/// Polls `cond` until it holds or `within` runs out; returns whether it held.
pub fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The hostile input "a lane publishes again a slot the pump holds": what it did, for a table row.
#[derive(Debug)]
pub struct RepublishOutcome {
    /// Each round's completion of the held READ (expected: DONE, `result = 10`, `error = 0`).
    pub completions: Vec<gpu_uring::pump::device::QueueCompletion>,
    /// Counters before the first round and after the last (expected delta per round: `claimed` +2, `served`
    /// +2 — the held READ, then the re-publication once the held one completed —, `protocol_violations` +1,
    /// `foreign_cqes` +0, `stale_bits` +0; `in_flight` back to 0).
    pub before: gpu_uring::pump::PumpStats,
    pub after: gpu_uring::pump::PumpStats,
    /// Requests in flight at once after the rounds, when the pump was offered `cap` of them (expected: `cap`,
    /// i.e. no in-flight capacity leaked).
    pub concurrent_after: u64,
    /// The pump's in-flight cap (`min(cq_entries, slots)`).
    pub cap: u64,
    /// How long `stop()` took with nothing in flight (expected: far below `stop_timeout`, 30 s here).
    pub stop_time: Duration,
    /// `stop()`'s counters.
    pub stopped: gpu_uring::pump::PumpStats,
}

/// Re-publishes, `rounds` times, a slot whose READ the pump has in flight, on the CPU reference device.
///
/// Each round: a lane publishes a 10-byte READ of an empty pipe (so the pump holds the slot with the I/O in
/// flight until the test writes); once the pump reports it in flight, the lane publishes the slot again — the
/// next sequence, with the same READ — while the pump holds it (the attack); once the pump counted that as a
/// protocol violation, the test writes 20 bytes into the pipe: the held READ completes, then the pump serves
/// the re-publication; the lane waits for its latest sequence and frees the slot. Then the lane offers the
/// pump `cap` blocking pipe READs at once (all must be in flight together), feeds them, and stops the pump.
/// Pump: `sq_entries` 4 (so `cq_entries` 8, the cap), 16 slots, `stop_timeout` 30 s.
pub fn republish_held_slot(rounds: u32) -> RepublishOutcome {
    use gpu_uring::pump::queue::*;
    use gpu_uring::pump::{QueueLane, Request};
    use std::sync::atomic::Ordering;

    let (pr, mut pw) = pipe();
    let p = held_slot_pump(&pr);
    let v = p.view();
    let mut lane = QueueLane::new(v, 0);
    let before = p.stats();
    let wait = Duration::from_secs(20);
    let mut completions = Vec::new();
    for r in 0..rounds {
        let slot = lane.alloc(100).unwrap();
        lane.publish(slot, &Request::read(0, 0, 0, 0, 10));
        assert!(
            eventually(wait, || p.stats().in_flight == 1),
            "round {r}: the pump never put the READ in flight: {:?}",
            p.stats()
        );
        let violations = p.stats().protocol_violations;
        // The attack: publish the held slot again (the next sequence, Release, as a lane publishes), and let
        // the lane's device-local word say so, so that it waits for that sequence.
        let next = next_seq(lane.seq(slot));
        v.req_seq(slot).store(next, Ordering::Release);
        v.own(slot).store(
            (next << QUEUE_SEQ_SHIFT) | QUEUE_SLOT_PUBLISHED,
            Ordering::Relaxed,
        );
        assert!(
            eventually(wait, || p.stats().protocol_violations > violations),
            "round {r}: the re-publication was not refused: {:?}",
            p.stats()
        );
        pw.write_all(&[r as u8; 20]).unwrap();
        let c = lane.wait_until(slot, deadline()).unwrap();
        completions.push(c);
        assert!(eventually(wait, || p.stats().in_flight == 0));
        lane.free(slot);
    }
    let after = p.stats();
    let cap = 8u64;
    let slots: Vec<u32> = (0..cap)
        .map(|i| {
            let s = lane.alloc(100).unwrap();
            lane.publish(s, &Request::read(0, 0, 0, i * 16, 10));
            s
        })
        .collect();
    eventually(wait, || p.stats().in_flight == cap);
    let concurrent_after = p.stats().in_flight;
    pw.write_all(&[0xEE; 80]).unwrap();
    for s in slots {
        lane.wait_until(s, deadline()).unwrap();
        lane.free(s);
    }
    let t = Instant::now();
    let stopped = p.stop().unwrap();
    let stop_time = t.elapsed();
    RepublishOutcome {
        completions,
        before,
        after,
        concurrent_after,
        cap,
        stop_time,
        stopped,
    }
}
