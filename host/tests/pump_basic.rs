//! The io_queue pump end to end on the CPU reference device: exactly-once under 64 lanes, every validation
//! error, FENCE ordering, injected submission failures, stop with requests in flight, idle and cold requests.

mod pump_util;

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gpu_uring::backend::cpu::run_queue_lanes;
use gpu_uring::pump::device::SlotPoll;
use gpu_uring::pump::queue::*;
use gpu_uring::pump::SubmitFault;
use gpu_uring::pump::{Pump, PumpConfig, PumpError, PumpFile, QueueError, QueueLane, Request};
use pump_util::*;

/// Every publication the pump saw was completed once the pump stopped: each slot's completion sequence is its
/// request sequence (nothing stranded in the pump's hands), and no slot is left PUBLISHED by a lane that
/// finished (a lane either saw its completion or withdrew the request).
fn assert_nothing_stranded(p: &Pump) {
    let v = p.view();
    for i in 0..p.layout().nslots {
        let (r, d) = (
            v.req_seq(i).load(Ordering::Acquire),
            v.done_seq(i).load(Ordering::Acquire),
        );
        let own = v.slot_state(i);
        assert!(
            r == d || own == Some(QueueSlotState::Allocated) || own == Some(QueueSlotState::Free),
            "slot {i}: request {r}, completion {d}, lane state {own:?}"
        );
    }
}

#[test]
fn read_write_nop_fence_roundtrip() {
    let data = pattern_file(64 << 10);
    let out = tempfile::tempfile().unwrap();
    let p = Pump::spawn(PumpConfig {
        slots: 8,
        regions: vec![8192, 100],
        files: vec![
            PumpFile::reader(&data).unwrap(),
            PumpFile::writer(&out, 1 << 20),
        ],
        ..Default::default()
    })
    .unwrap();
    let mut lane = QueueLane::new(p.view(), 0);
    let c = lane
        .submit(&Request::read(0, 1000, 0, 100, 5000).tag(77), 1 << 20)
        .unwrap();
    assert!(c.done, "{c:?}");
    assert_eq!((c.result, c.error, c.tag), (5000, ERR_NONE, 77));
    let mut got = vec![0u8; 5000];
    p.view().read_region(0, 100, &mut got);
    assert_eq!(got, read_at(&data, 1000, 5000));

    p.view().write_region(1, 0, b"hello, pump");
    let c = lane
        .submit(&Request::write(1, 4096, 1, 0, 11), 1 << 20)
        .unwrap();
    assert_eq!((c.done, c.result), (true, 11));
    assert_eq!(read_at(&out, 4096, 11), b"hello, pump");

    let c = lane.submit(&Request::nop().tag(5), 1 << 20).unwrap();
    assert_eq!((c.done, c.result, c.tag), (true, 0, 5));
    let c = lane.submit(&Request::fence(), 1 << 20).unwrap();
    assert!(c.done);
    let st = p.stop().unwrap();
    assert_eq!(st.claimed, 4);
    assert_eq!(st.served, 4);
    assert_eq!(st.fences, 1);
    assert_eq!(st.bytes_read, 5000);
    assert_eq!(st.bytes_written, 11);
    assert!(st.batches >= 2);
    assert!(p.arena().guards_intact());
    assert_nothing_stranded(&p);
}

#[test]
fn exactly_once_under_64_lanes() {
    const LANES: u32 = 64;
    const OPS: u32 = 150;
    const REC: u64 = 16;
    let data = pattern_file(1 << 20);
    let out = tempfile::tempfile().unwrap();
    out.set_len(LANES as u64 * OPS as u64 * REC).unwrap();
    let p = Pump::spawn(PumpConfig {
        slots: 128, // fewer slots than lanes × 2: allocation contention is part of the test
        regions: vec![LANES as usize * 8192],
        files: vec![
            PumpFile::reader(&data).unwrap(),
            PumpFile::writer(&out, LANES as u64 * OPS as u64 * REC),
        ],
        sq_entries: 32,
        ..Default::default()
    })
    .unwrap();
    let failures = run_queue_lanes(&p, LANES, |lane| {
        let id = lane.id();
        let v = lane.view();
        let base = id as u64 * 8192;
        let mut bad = 0u32;
        let mut buf = vec![0u8; 4096];
        for k in 0..OPS {
            let tag = ((id as u64) << 32) | k as u64;
            let req = match k % 3 {
                0 => {
                    let off = ((id * OPS + k) as u64 * 4096) % ((1 << 20) - 4096);
                    Request::read(0, off, 0, base, 4096)
                }
                1 => {
                    let rec = (id as u64 * OPS as u64 + k as u64) * REC;
                    let mut bytes = [0u8; REC as usize];
                    bytes[..8].copy_from_slice(&tag.to_le_bytes());
                    bytes[8..].copy_from_slice(&(!tag).to_le_bytes());
                    v.write_region(0, base + 4096, &bytes);
                    Request::write(1, rec, 0, base + 4096, REC as u32)
                }
                _ => Request::nop(),
            }
            .tag(tag);
            let until = deadline();
            let slot = loop {
                match lane.alloc(1 << 10) {
                    Ok(s) => break s,
                    Err(QueueError::WouldBlock) if std::time::Instant::now() < until => continue,
                    Err(e) => panic!("lane {id}: no slot: {e}"),
                }
            };
            lane.publish(slot, &req);
            let c = lane
                .wait_until(slot, deadline())
                .expect("request completes");
            lane.free(slot);
            if !c.done || c.tag != tag || c.result != req.len as i32 {
                bad += 1;
                continue;
            }
            if k % 3 == 0 {
                v.read_region(0, base, &mut buf);
                if buf != read_at(&data, req.file_offset, 4096) {
                    bad += 1;
                }
            }
        }
        bad
    })
    .expect("lanes start");
    assert!(failures.iter().all(|&b| b == 0), "{failures:?}");
    let st = p.stop().unwrap();
    let total = (LANES * OPS) as u64;
    assert_eq!(st.claimed, total, "{st:?}");
    assert_eq!(st.served, total, "{st:?}");
    assert_eq!(st.failed_total(), 0, "{st:?}");
    assert_eq!(st.stale_bits, 0, "{st:?}");
    assert_eq!(st.foreign_cqes, 0, "{st:?}");
    // Every WRITE record present exactly where its lane put it.
    let file = read_at(&out, 0, (total * REC) as usize);
    for id in 0..LANES as u64 {
        for k in (1..OPS as u64).step_by(3) {
            let tag = (id << 32) | k;
            let at = ((id * OPS as u64 + k) * REC) as usize;
            assert_eq!(&file[at..at + 8], &tag.to_le_bytes());
            assert_eq!(&file[at + 8..at + 16], &(!tag).to_le_bytes());
        }
    }
    assert!(p.arena().guards_intact());
    assert_nothing_stranded(&p);
}

#[test]
fn every_validation_error_fails_and_touches_nothing() {
    let data = pattern_file(10_000);
    let out = tempfile::tempfile().unwrap();
    out.write_all_at(&[0x11; 512], 0).unwrap();
    let wo = tempfile::NamedTempFile::new().unwrap();
    let write_only = std::fs::OpenOptions::new()
        .write(true)
        .open(wo.path())
        .unwrap();
    let p = Pump::spawn(PumpConfig {
        slots: 16,
        regions: vec![4096, 6000],
        files: vec![
            PumpFile::reader(&data).unwrap(),
            PumpFile::writer(&out, 512),
            PumpFile::reader_with_extent(&write_only, 4096),
        ],
        ..Default::default()
    })
    .unwrap();
    let v = p.view();
    v.write_region(0, 0, &[0xEE; 4096]);
    v.write_region(1, 0, &[0xDD; 6000]);
    let mut lane = QueueLane::new(v, 3);
    let read = |file, foff, buf, boff, len| Request::read(file, foff, buf, boff, len);
    let cases: Vec<(&str, Request, [u32; 2], u32)> = vec![
        (
            "unknown op",
            Request {
                op: 4,
                ..read(0, 0, 0, 0, 1)
            },
            [0, 0],
            ERR_BAD_OP,
        ),
        (
            "op flags",
            Request {
                op: OP_READ | 1 << 8,
                ..read(0, 0, 0, 0, 1)
            },
            [0, 0],
            ERR_BAD_OP,
        ),
        ("reserved word", read(0, 0, 0, 0, 1), [0, 9], ERR_RESERVED),
        ("unknown file", read(3, 0, 0, 0, 1), [0, 0], ERR_BAD_FILE),
        (
            "huge file handle",
            read(u32::MAX, 0, 0, 0, 1),
            [0, 0],
            ERR_BAD_FILE,
        ),
        (
            "unknown buffer",
            read(0, 0, 2, 0, 1),
            [0, 0],
            ERR_BAD_BUFFER,
        ),
        ("zero length", read(0, 0, 0, 0, 0), [0, 0], ERR_BAD_LENGTH),
        (
            "write to a read-only file",
            Request::write(0, 0, 0, 0, 1),
            [0, 0],
            ERR_READ_ONLY,
        ),
        (
            "buffer end past region",
            read(0, 0, 0, 4000, 97),
            [0, 0],
            ERR_BUFFER_RANGE,
        ),
        (
            "buffer offset wraps",
            read(0, 0, 0, u64::MAX - 2, 8),
            [0, 0],
            ERR_BUFFER_RANGE,
        ),
        (
            "len larger than region",
            read(0, 0, 1, 0, 6001),
            [0, 0],
            ERR_BUFFER_RANGE,
        ),
        (
            "read past end of file",
            read(0, 9_999, 0, 0, 2),
            [0, 0],
            ERR_FILE_RANGE,
        ),
        (
            "file offset wraps",
            read(0, u64::MAX, 0, 0, 1),
            [0, 0],
            ERR_FILE_RANGE,
        ),
        (
            "write past extent",
            Request::write(1, 500, 1, 0, 13),
            [0, 0],
            ERR_FILE_RANGE,
        ),
    ];
    for (what, req, reserved, code) in &cases {
        let slot = lane.alloc(1000).unwrap();
        lane.publish_raw(
            slot,
            &IoSlot {
                op: req.op,
                file: req.file,
                buf: req.buf,
                file_offset: req.file_offset,
                buf_offset: req.buf_offset,
                len: req.len,
                tag: 0xabc,
                reserved: *reserved,
                ..Default::default()
            },
        );
        let c = lane.wait_until(slot, deadline()).unwrap();
        lane.free(slot);
        assert!(!c.done, "{what}: {c:?}");
        assert_eq!(c.error, *code, "{what}: got {}", error_name(c.error));
        assert_eq!(c.tag, 0xabc, "{what}");
    }
    // A kernel error (reading a write-only descriptor) fails with ERR_IO and the errno.
    let c = lane
        .submit(&Request::read(2, 0, 0, 0, 16), 1 << 20)
        .unwrap();
    assert_eq!((c.done, c.error, c.result), (false, ERR_IO, -libc::EBADF));
    // Nothing was touched: regions, the writable file, the guards.
    let mut r0 = vec![0u8; 4096];
    v.read_region(0, 0, &mut r0);
    assert!(r0.iter().all(|&b| b == 0xEE));
    let mut r1 = vec![0u8; 6000];
    v.read_region(1, 0, &mut r1);
    assert!(r1.iter().all(|&b| b == 0xDD));
    assert_eq!(read_at(&out, 0, 512), vec![0x11; 512]);
    assert_eq!(out.metadata().unwrap().len(), 512);
    assert!(p.arena().guards_intact());
    let st = p.stop().unwrap();
    for (_, _, _, code) in &cases {
        assert!(st.failed[*code as usize] >= 1);
    }
    assert_eq!(st.failed[ERR_IO as usize], 1);
    assert_eq!(st.sqes, 1, "only the valid request reached the ring");
    assert_nothing_stranded(&p);
}

#[test]
fn fence_waits_for_every_earlier_request() {
    let (pr, mut pw) = pipe();
    let data = pattern_file(1 << 16);
    let p = Pump::spawn(PumpConfig {
        slots: 32,
        regions: vec![1 << 16],
        files: vec![
            PumpFile::reader_with_extent(&pr, 1 << 20),
            PumpFile::reader(&data).unwrap(),
        ],
        ..Default::default()
    })
    .unwrap();
    let v = p.view();
    let mut a = QueueLane::new(v, 0);
    let mut b = QueueLane::new(v, 1);
    // Lane a: a READ from an empty pipe (cannot complete until the test writes), and some file reads.
    let blocked = a.alloc(100).unwrap();
    a.publish(blocked, &Request::read(0, 0, 0, 0, 100));
    let mut reads = Vec::new();
    for i in 0..8u64 {
        let s = a.alloc(100).unwrap();
        a.publish(s, &Request::read(1, i * 4096, 0, 4096 + i * 4096, 4096));
        reads.push(s);
    }
    // Lane b's FENCE is published after all of them.
    let fence = b.alloc(100).unwrap();
    b.publish(fence, &Request::fence());
    for s in &reads {
        let c = a.wait_until(*s, deadline()).unwrap();
        assert_eq!(c.result, 4096);
    }
    // However long we look, the fence stays pending while the pipe read is outstanding.
    for _ in 0..50 {
        assert_eq!(b.poll(fence).unwrap(), SlotPoll::Pending);
        assert_eq!(a.poll(blocked).unwrap(), SlotPoll::Pending);
        std::thread::sleep(Duration::from_millis(1));
    }
    pw.write_all(&[7u8; 100]).unwrap();
    let c = b.wait_until(fence, deadline()).unwrap();
    assert!(c.done);
    // Acquiring the fence's DONE shows the pipe read already complete.
    assert_eq!(v.done_seq(blocked).load(Ordering::Acquire), a.seq(blocked));
    assert_eq!(v.result(blocked).load(Ordering::Relaxed), 100);
    for s in reads.into_iter().chain([blocked]) {
        a.free(s);
    }
    b.free(fence);
    let st = p.stop().unwrap();
    assert_eq!(st.fences, 1);
    assert_nothing_stranded(&p);
}

/// Publishes `n` 4 KiB READs of `data` into distinct 4 KiB pieces of region 0 (pre-filled with 0xEE) before
/// the pump starts, so they form one batch.
fn publish_reads(p: &Pump, n: u32) -> Vec<u32> {
    let v = p.view();
    let mut lane = QueueLane::new(v, 0);
    (0..n)
        .map(|i| {
            v.write_region(0, i as u64 * 4096, &[0xEE; 4096]);
            let s = lane.alloc(10).unwrap();
            lane.publish(
                s,
                &Request::read(0, i as u64 * 4096, 0, i as u64 * 4096, 4096).tag(i as u64),
            );
            s
        })
        .collect()
}

fn fault_pump(data: &std::fs::File, errno: i32) -> Pump {
    Pump::new(PumpConfig {
        slots: 64,
        regions: vec![32 * 4096],
        files: vec![PumpFile::reader(data).unwrap()],
        sq_entries: 32,
        fault: Some(SubmitFault {
            after: 0,
            min_sqes: 32,
            consume: 5,
            errno,
            times: 1,
        }),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn transient_submit_failure_mid_batch_is_retried() {
    let data = pattern_file(32 * 4096);
    let p = fault_pump(&data, libc::EAGAIN);
    let slots = publish_reads(&p, 32);
    p.start().unwrap();
    let mut lane = QueueLane::new(p.view(), 1);
    for (i, s) in slots.iter().enumerate() {
        let c = lane.wait_until(*s, deadline()).unwrap();
        assert_eq!((c.done, c.result), (true, 4096), "request {i}");
        let mut got = vec![0u8; 4096];
        p.view().read_region(0, i as u64 * 4096, &mut got);
        assert_eq!(got, read_at(&data, i as u64 * 4096, 4096));
        lane.free(*s);
    }
    let st = p.stop().unwrap();
    assert_eq!(st.submit_errors, 1);
    assert_eq!(st.served, 32);
    assert_nothing_stranded(&p);
}

#[test]
fn fatal_submit_failure_mid_batch_fails_the_rest_and_stops() {
    let data = pattern_file(32 * 4096);
    let p = fault_pump(&data, libc::EIO);
    let slots = publish_reads(&p, 32);
    p.start().unwrap();
    let mut lane = QueueLane::new(p.view(), 1);
    let (mut done, mut failed) = (0, 0);
    for (i, s) in slots.iter().enumerate() {
        let c = lane.wait_until(*s, deadline()).unwrap();
        let mut got = vec![0u8; 4096];
        p.view().read_region(0, i as u64 * 4096, &mut got);
        if c.done {
            // Consumed by the kernel before the failure: it ran, and it ran correctly.
            assert_eq!(c.result, 4096);
            assert_eq!(got, read_at(&data, i as u64 * 4096, 4096));
            done += 1;
        } else {
            // Never consumed: failed with the enter's errno and never touched its buffer.
            assert_eq!((c.error, c.result), (ERR_SUBMIT, -libc::EIO), "request {i}");
            assert!(
                got.iter().all(|&b| b == 0xEE),
                "request {i} touched its buffer"
            );
            failed += 1;
        }
        lane.free(*s);
    }
    assert_eq!((done, failed), (5, 27));
    assert_eq!(p.stop(), Err(PumpError::Submit { errno: libc::EIO }));
    assert_eq!(p.view().pump_state().load(Ordering::Acquire), PUMP_FAILED);
    // A request published after the failure is withdrawn, not left hanging.
    let s = lane.alloc(10).unwrap();
    lane.publish(s, &Request::nop());
    assert_eq!(lane.wait_until(s, deadline()), Err(QueueError::PumpStopped));
    lane.free(s);
    // The unconsumed SQEs never run, not even after the ring is gone.
    drop(p);
}

#[test]
fn stop_with_requests_in_flight_strands_nothing() {
    let (pr, _pw) = pipe();
    let data = pattern_file(1 << 20);
    let p = Pump::spawn(PumpConfig {
        slots: 64,
        regions: vec![32 * 8192],
        files: vec![
            PumpFile::reader_with_extent(&pr, 1 << 20),
            PumpFile::reader(&data).unwrap(),
        ],
        sq_entries: 16,
        stop_timeout: Duration::from_millis(100),
        ..Default::default()
    })
    .unwrap();
    let v = p.view();
    let mut a = QueueLane::new(v, 99);
    let blocked = a.alloc(10).unwrap();
    a.publish(blocked, &Request::read(0, 0, 0, 0, 64));
    let outcomes = std::thread::scope(|s| {
        let lanes = run_lanes_async(s, &p, 16);
        // Stop once lanes are being served.
        assert!(
            eventually(Duration::from_secs(30), || p.stats().served > 0),
            "no lane was served"
        );
        let st = p.stop();
        let outcomes: Vec<(u32, u32, u32)> = lanes.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(st.is_ok(), "{st:?}");
        outcomes
    });
    // The pipe read was cancelled, and says so.
    let c = a.wait_until(blocked, deadline()).unwrap();
    assert_eq!(
        (c.done, c.error, c.result),
        (false, ERR_STOPPED, -libc::ECANCELED)
    );
    a.free(blocked);
    let st = p.stats();
    assert_eq!(st.cancelled, 1);
    assert_eq!(st.abandoned, 0);
    let (ok, stopped, withdrawn) = outcomes
        .iter()
        .fold((0, 0, 0), |t, o| (t.0 + o.0, t.1 + o.1, t.2 + o.2));
    assert!(ok > 0, "lanes were served before the stop");
    assert_eq!(st.claimed, st.completed());
    eprintln!("served {ok}, failed STOPPED {stopped}, withdrawn {withdrawn}; {st:?}");
    assert_nothing_stranded(&p);
    for i in 0..p.layout().nslots {
        assert_eq!(v.slot_state(i), Some(QueueSlotState::Free), "slot {i}");
    }
}

/// 16 lanes reading in a loop until the pump stops; each returns (served, failed STOPPED, withdrawn).
fn run_lanes_async<'s, 'p: 's>(
    s: &'s std::thread::Scope<'s, '_>,
    p: &'p Pump,
    n: u32,
) -> Vec<std::thread::ScopedJoinHandle<'s, (u32, u32, u32)>> {
    let v = p.view();
    (0..n)
        .map(|id| {
            s.spawn(move || {
                let mut lane = QueueLane::new(v, id);
                let mut o = (0, 0, 0);
                for k in 0u64.. {
                    let Ok(slot) = lane.alloc(1 << 12) else {
                        continue;
                    };
                    let off = ((id as u64 * 977 + k) * 4096) % ((1 << 20) - 4096);
                    lane.publish(
                        slot,
                        &Request::read(1, off, 0, 8192 + id as u64 * 8192, 4096),
                    );
                    match lane.wait_until(slot, deadline()) {
                        Ok(c) if c.done => o.0 += 1,
                        Ok(c) => {
                            assert_eq!(c.error, ERR_STOPPED, "{c:?}");
                            o.1 += 1;
                        }
                        Err(QueueError::PumpStopped) => o.2 += 1,
                        Err(e) => panic!("lane {id}: {e}"),
                    }
                    lane.free(slot);
                    if o.1 + o.2 > 0 {
                        break;
                    }
                }
                o
            })
        })
        .collect()
}

#[test]
fn idle_pump_parks_and_serves_a_cold_request() {
    let p = Pump::spawn(PumpConfig {
        slots: 4,
        ..Default::default()
    })
    .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || p.stats().idle_parks > 0),
        "an idle pump parks"
    );
    let parks = p.stats().idle_parks;
    let mut lane = QueueLane::new(p.view(), 0);
    let c = lane.submit(&Request::nop(), 1 << 20).unwrap();
    assert!(c.done);
    let cpu = p.cpu_time().unwrap();
    eprintln!("idle parks {parks}, pump CPU {cpu:?} since it started");
    p.stop().unwrap();
}

#[test]
fn requests_to_a_pump_that_never_started_fail_stopped() {
    let p = Pump::new(PumpConfig {
        slots: 4,
        ..Default::default()
    })
    .unwrap();
    let mut lane = QueueLane::new(p.view(), 0);
    let s = lane.alloc(10).unwrap();
    lane.publish(s, &Request::nop());
    let st = p.stop().unwrap();
    assert_eq!(st.failed[ERR_STOPPED as usize], 1);
    let c = lane.wait_until(s, deadline()).unwrap();
    assert_eq!((c.done, c.error), (false, ERR_STOPPED));
    lane.free(s);
    assert_eq!(p.start(), Err(PumpError::AlreadyStarted));
}

#[test]
fn a_tiny_ring_still_serves_everything() {
    // 2 SQ / 4 CQ entries for 8 lanes: the SQ and the in-flight cap are full all the time.
    let data = pattern_file(1 << 16);
    let p = Pump::spawn(PumpConfig {
        slots: 32,
        regions: vec![8 * 4096],
        files: vec![PumpFile::reader(&data).unwrap()],
        sq_entries: 2,
        cq_entries: Some(4),
        ..Default::default()
    })
    .unwrap();
    let bad = run_queue_lanes(&p, 8, |lane| {
        let id = lane.id() as u64;
        let v = lane.view();
        let mut got = vec![0u8; 4096];
        let mut bad = 0;
        for k in 0..100u64 {
            let off = ((id * 100 + k) * 4096) % ((1 << 16) - 4096);
            let slot = lane.alloc(1 << 16).unwrap();
            lane.publish(slot, &Request::read(0, off, 0, id * 4096, 4096));
            let c = lane.wait_until(slot, deadline()).unwrap();
            lane.free(slot);
            v.read_region(0, id * 4096, &mut got);
            if c.result != 4096 || got != read_at(&data, off, 4096) {
                bad += 1;
            }
        }
        bad
    })
    .expect("lanes start");
    assert!(bad.iter().all(|&b| b == 0), "{bad:?}");
    let st = p.stop().unwrap();
    assert_eq!(st.served, 800);
    assert!(st.sqes / st.batches.max(1) <= 2);
    assert_nothing_stranded(&p);
}

#[test]
fn fences_of_two_lanes_and_a_stop_while_they_wait() {
    let (pr, _pw) = pipe();
    let p = Pump::spawn(PumpConfig {
        slots: 16,
        regions: vec![4096],
        files: vec![PumpFile::reader_with_extent(&pr, 1 << 20)],
        stop_timeout: Duration::from_millis(50),
        ..Default::default()
    })
    .unwrap();
    let v = p.view();
    let (mut a, mut b) = (QueueLane::new(v, 0), QueueLane::new(v, 1));
    let blocked = a.alloc(10).unwrap();
    a.publish(blocked, &Request::read(0, 0, 0, 0, 64));
    let fa = a.alloc(10).unwrap();
    a.publish(fa, &Request::fence());
    let fb = b.alloc(10).unwrap();
    b.publish(fb, &Request::fence());
    // Wait (bounded) until the pump has claimed all three: both fences then wait on the blocked read. A stop
    // before that would fail an unclaimed fence STOPPED instead of completing it.
    let until = deadline();
    while p.stats().claimed < 3 {
        assert!(
            Instant::now() < until,
            "the pump claimed {} of 3 requests",
            p.stats().claimed
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(a.poll(fa).unwrap(), SlotPoll::Pending);
    assert_eq!(b.poll(fb).unwrap(), SlotPoll::Pending);
    // A NOP published after both fences: FENCE does not order later requests (a lane that needs that waits
    // for the fence first), so it may run before the fences complete or be failed by the stop.
    let later = b.alloc(10).unwrap();
    b.publish(later, &Request::nop());
    // Stop while both fences wait on the pipe read: the read is cancelled, the fences complete (everything
    // before them has completed, if unsuccessfully).
    p.stop().unwrap();
    let r = a.wait_until(blocked, deadline()).unwrap();
    assert_eq!((r.done, r.error), (false, ERR_STOPPED));
    assert!(a.wait_until(fa, deadline()).unwrap().done);
    assert!(b.wait_until(fb, deadline()).unwrap().done);
    let n = b.wait_until(later, deadline()).unwrap();
    assert!(n.done || n.error == ERR_STOPPED, "{n:?}");
    a.free(blocked);
    a.free(fa);
    b.free(fb);
    b.free(later);
    let st = p.stats();
    assert_eq!((st.fences, st.cancelled, st.abandoned), (2, 1, 0));
    assert_nothing_stranded(&p);
}

#[test]
fn polling_an_unpublished_slot_is_an_error_not_a_hang() {
    let p = Pump::spawn(PumpConfig {
        slots: 4,
        ..Default::default()
    })
    .unwrap();
    let mut lane = QueueLane::new(p.view(), 0);
    let s = lane.alloc(10).unwrap();
    assert_eq!(lane.wait(s, 1 << 20), Err(QueueError::NotPublished(s)));
    lane.free(s);
    assert_eq!(lane.poll(s), Err(QueueError::NotPublished(s)));
    p.stop().unwrap();
}

#[test]
fn fences_from_many_lanes_at_once() {
    // 16 lanes, each round: 4 requests then a FENCE; when the FENCE is DONE every earlier request of the lane
    // must already be complete. Many fences wait at once, so before sets merge and fence mode is re-entered
    // constantly.
    const LANES: u32 = 16;
    let data = pattern_file(1 << 20);
    let out = tempfile::tempfile().unwrap();
    let p = Pump::spawn(PumpConfig {
        slots: 128,
        regions: vec![LANES as usize * 4 * 4096],
        files: vec![
            PumpFile::reader(&data).unwrap(),
            PumpFile::writer(&out, 1 << 20),
        ],
        sq_entries: 16,
        ..Default::default()
    })
    .unwrap();
    let bad = run_queue_lanes(&p, LANES, |lane| {
        let id = lane.id() as u64;
        let v = lane.view();
        let mut bad = 0;
        for round in 0..60u64 {
            let base = id * 4 * 4096;
            let mut slots = [0u32; 4];
            for (i, s) in slots.iter_mut().enumerate() {
                *s = lane.alloc(1 << 16).unwrap();
                let off = ((id * 60 + round) * 4 + i as u64) * 4096 % ((1 << 20) - 4096);
                let req = if i == 3 {
                    Request::write(1, (id * 60 + round) * 4096 % (1 << 20), 0, base, 4096)
                } else {
                    Request::read(0, off, 0, base + (i as u64 + 1) * 4096, 4096)
                };
                lane.publish(*s, &req);
            }
            let f = lane.alloc(1 << 16).unwrap();
            lane.publish(f, &Request::fence());
            let c = lane.wait_until(f, deadline()).unwrap();
            if !c.done {
                bad += 1;
            }
            for s in slots {
                // Acquired through the fence's DONE: already complete, no waiting.
                if v.done_seq(s).load(Ordering::Acquire) != lane.seq(s) {
                    bad += 1;
                }
                let c = lane.wait_until(s, deadline()).unwrap();
                if c.result != 4096 {
                    bad += 1;
                }
                lane.free(s);
            }
            lane.free(f);
        }
        bad
    })
    .expect("lanes start");
    assert!(bad.iter().all(|&b| b == 0), "{bad:?}");
    let st = p.stop().unwrap();
    assert_eq!(st.fences, LANES as u64 * 60);
    assert_eq!(st.served, LANES as u64 * 60 * 5);
    assert_nothing_stranded(&p);
}

/// A lane publishes again a slot the pump holds with its READ in flight: the pump refuses the second
/// publication (counted `protocol_violations`), the held READ completes once with its own result, and after 7
/// such rounds the pump still puts its full in-flight cap of requests in flight and stops at once.
#[test]
fn republishing_a_held_slot_is_refused_and_leaks_nothing() {
    let o = republish_held_slot(7);
    for c in &o.completions {
        assert_eq!((c.done, c.result, c.error), (true, 10, ERR_NONE), "{o:?}");
    }
    let (b, a) = (&o.before, &o.after);
    assert_eq!(a.claimed - b.claimed, 14, "{o:?}");
    assert_eq!(a.served - b.served, 14, "{o:?}");
    assert_eq!(a.protocol_violations - b.protocol_violations, 7, "{o:?}");
    assert_eq!(a.foreign_cqes, 0, "{o:?}");
    assert_eq!(a.stale_bits, 0, "{o:?}");
    assert_eq!(a.in_flight, 0, "{o:?}");
    assert_eq!(
        o.concurrent_after, o.cap,
        "in-flight capacity leaked: {o:?}"
    );
    assert!(o.stop_time < Duration::from_secs(5), "{o:?}");
    assert_eq!(o.stopped.in_flight, 0);
    assert_eq!(o.stopped.claimed, o.stopped.completed());
    assert_eq!((o.stopped.cancelled, o.stopped.abandoned), (0, 0));
}
