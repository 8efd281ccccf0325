//! The built-in programs on the CPU reference device: the Rust protocol implementation, one thread per lane,
//! in one dispatch.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::error::run_error;
use super::lanes::run_lanes;
use crate::backend::hal::FormatCase;
use crate::backend::run_buffer::{LaneState, LANE_FINISHED};
use crate::backend::{
    checksum, format_print_line, DeviceError, HostileCase, LaneReport, Program, RunReport,
};
use crate::protocol::DeviceRing;
use crate::protocol::{CompletionMode, FileRef, Lane, LaneError, LineBuf};

/// Runs a built-in program (the device's one dispatch); `budget` is the spin budget of each device-side wait.
pub(super) fn run(
    budget: u32,
    ring: &DeviceRing,
    lanes: u32,
    program: &Program,
    timeout: Duration,
) -> Result<RunReport, DeviceError> {
    let l = ring.layout();
    if lanes == 0 || lanes > l.lanes {
        return Err(run_error(format!(
            "{lanes} lanes requested; the ring has 1..={}",
            l.lanes
        )));
    }
    let deadline = Instant::now() + timeout;
    let start = Instant::now();
    let lanes_v = run_lanes(ring, lanes, |lane| {
        run_program(lane, lanes, program, budget, deadline)
    });
    let elapsed = start.elapsed();
    if Instant::now() > deadline {
        return Err(DeviceError::Timeout {
            backend: "cpu",
            limit: timeout,
        });
    }
    let states = lanes_v
        .iter()
        .map(|r: &LaneReport| LaneState {
            done: r.done as u32,
            failed: r.failed as u32,
            flags: LANE_FINISHED,
            checksum: r.checksum,
            bytes: r.bytes,
            dispatches: 1,
            ..LaneState::default()
        })
        .collect();
    Ok(RunReport {
        lanes: lanes_v,
        elapsed,
        dispatches: 1,
        states,
    })
}

/// The §7 formatter's output for each case (the reference the GPU formatters are compared with).
pub(super) fn format_cases(cases: &[FormatCase]) -> Vec<Vec<u8>> {
    cases
        .iter()
        .map(|c| {
            let mut l = LineBuf::with_capacity(256);
            match *c {
                FormatCase::U64(x) => l.u64(x),
                FormatCase::I64(x) => l.i64(x),
                FormatCase::Hex(x) => l.hex(x),
                FormatCase::F32(x, p) => l.f32(x, p),
            };
            l.as_bytes().to_vec()
        })
        .collect()
}

fn run_program(
    lane: &mut Lane<'_>,
    lanes: u32,
    p: &Program,
    budget: u32,
    deadline: Instant,
) -> LaneReport {
    let mut rep = LaneReport::default();
    let id = lane.id();
    let wait_slot = (lane.view().layout().slots_per_lane - 1).min(1);
    match *p {
        Program::Print { lines } => {
            for seq in 0..lines {
                if seq % 1024 == 0 && Instant::now() > deadline {
                    rep.failed += (lines - seq) as u64;
                    break;
                }
                match lane.print_with(budget, |b| format_print_line(b, id, seq)) {
                    Ok(()) => rep.done += 1,
                    Err(_) => rep.failed += 1,
                }
            }
        }
        Program::Nop {
            ops,
            fire_and_forget,
        } => {
            for _ in 0..ops {
                let r = if fire_and_forget {
                    lane.nop(CompletionMode::FireAndForget, budget).map(|_| 0)
                } else {
                    lane.nop(CompletionMode::Slot(wait_slot), budget)
                        .and_then(|_| lane.wait(wait_slot, budget))
                };
                match r {
                    Ok(res) if res >= 0 => rep.done += 1,
                    _ => rep.failed += 1,
                }
            }
        }
        Program::Write { file, ops, len } => {
            let v = lane.view();
            let off = v.line_off(id, 0);
            let len = len.min(v.layout().line_bytes);
            let fill: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            v.write_bytes(off, &fill);
            for _ in 0..ops {
                match lane.write(
                    FileRef::Fixed(file),
                    off,
                    len,
                    -1,
                    CompletionMode::FireAndForget,
                    budget,
                ) {
                    Ok(_) => {
                        rep.done += 1;
                        rep.bytes += len as u64;
                    }
                    Err(_) => rep.failed += 1,
                }
            }
        }
        Program::Read { file, chunk, total } => {
            let v = lane.view();
            let fixed_off = id * chunk;
            let mut buf = vec![0u8; chunk as usize];
            let nchunks = total.div_ceil(chunk as u64);
            let mut c = id as u64;
            while c < nchunks {
                let off = c * chunk as u64;
                let len = (total - off).min(chunk as u64) as u32;
                let r = lane
                    .read_fixed(FileRef::Fixed(file), fixed_off, len, off, wait_slot, budget)
                    .and_then(|_| lane.wait(wait_slot, budget));
                match r {
                    Ok(n) if n == len as i32 => {
                        v.read_bytes(v.layout().fixed + fixed_off, &mut buf[..len as usize]);
                        rep.checksum = rep
                            .checksum
                            .wrapping_add(checksum(off, &buf[..len as usize]));
                        rep.done += 1;
                        rep.bytes += len as u64;
                    }
                    _ => rep.failed += 1,
                }
                c += lanes as u64;
            }
        }
        Program::LaneStress { ops } => {
            for seq in 0..ops {
                let r = if seq % 2 == 0 {
                    lane.nop(CompletionMode::Slot(wait_slot), budget)
                        .and_then(|_| lane.wait(wait_slot, budget))
                } else {
                    lane.nop(CompletionMode::FireAndForget, budget).map(|_| 0)
                };
                match r {
                    Ok(res) if res >= 0 => rep.done += 1,
                    _ => rep.failed += 1,
                }
            }
        }
        Program::EditBuffer { steps } => {
            let v = lane.view();
            let l = *v.layout();
            let (value, ack) = (v.u32_at(l.fixed + 8 * id), v.u32_at(l.fixed + 8 * id + 4));
            'steps: for k in 1..=steps {
                // Release: the host's acquire of the value sees this lane's earlier stores.
                value.store(k, Ordering::Release);
                let mut i = 0u32;
                // Acquire: pairs with the host's release store of the ack.
                while ack.load(Ordering::Acquire) < k {
                    if i % 1024 == 0 && Instant::now() > deadline {
                        rep.failed += (steps - k + 1) as u64;
                        break 'steps;
                    }
                    crate::protocol::lane::backoff(i);
                    i = i.wrapping_add(1);
                }
                rep.done += 1;
            }
        }
        Program::Exact { count } => {
            if id == 0 {
                let v = lane.view();
                let l = *v.layout();
                for i in 0..count {
                    let mut sqe = crate::ring::Sqe::default();
                    v.read_bytes(l.fixed + 64 * i, bytemuck::bytes_of_mut(&mut sqe));
                    // Generation 0 names this lane's slot 0 for commit_exact to arm.
                    let slot = lane.slot_index(0).unwrap_or(0);
                    sqe.user_data = crate::protocol::shared::slot_user_data(slot, 0);
                    let r = lane.reserve(budget).map(|r| lane.commit_exact(r, sqe));
                    match r.and_then(|_| lane.wait(0, budget)) {
                        Ok(res) => {
                            v.write_bytes(l.fixed + 64 * count + 4 * i, &res.to_le_bytes());
                            rep.done += 1;
                        }
                        Err(_) => rep.failed += 1,
                    }
                }
            }
        }
        Program::Hostile { case } => {
            if id == 0 {
                let (status, res) = hostile(lane, case, budget, deadline);
                rep.done = 1;
                rep.checksum = status as u64;
                rep.bytes = res as u32 as u64;
            }
        }
        Program::Layout => {
            let v = lane.view();
            let l = *v.layout();
            let base = l.fixed + 256 * id;
            let mut sqe = lane.write_sqe(
                FileRef::Fixed(id),
                v.line_off(id, 0),
                17 + id,
                0x1000 + id as i64,
            );
            sqe.user_data = crate::protocol::shared::TAG_FF | ((id as u64 & 0xffff) << 16) | 1;
            v.write_bytes(base, bytemuck::bytes_of(&sqe));
            v.write_bytes(base + 64, bytemuck::bytes_of(&l));
            rep.done += 1;
        }
    }
    rep
}

/// Lane 0 of [`Program::Hostile`]: the case's library calls, as `hostile.comp` makes them. Returns (status,
/// res).
fn hostile(lane: &mut Lane<'_>, case: HostileCase, budget: u32, deadline: Instant) -> (u32, i32) {
    use crate::protocol::shared::*;
    use io_uring::{opcode, squeue::Flags};
    let v = lane.view();
    let l = *v.layout();
    let nop = || crate::ring::Sqe::from_entry(&opcode::Nop::new().build());
    let status = |r: Result<u32, LaneError>| r.map_or_else(|e| e.status(), |_| STATUS_READY);
    let reap_status = |n: u32| {
        if n > 0 {
            STATUS_READY
        } else {
            STATUS_WOULD_BLOCK
        }
    };
    // Relaxed throughout: the corrupting stores stand for device code that ignores the protocol.
    let sq_pub = v.ctl64(crate::ctl_off!(sq_pub));
    let back_1000 = |w: &std::sync::atomic::AtomicU64| {
        let base = w.load(Ordering::Relaxed) as u32;
        w.store(base.wrapping_sub(1000) as u64, Ordering::Relaxed);
    };
    let waited = |lane: &mut Lane<'_>, sqe| {
        lane.submit(sqe, CompletionMode::Slot(0), budget)
            .and_then(|_| lane.wait(0, budget))
    };
    match case {
        HostileCase::SqWindowAtPublish => match lane.reserve(budget) {
            Ok(r) => {
                back_1000(sq_pub);
                (
                    status(lane.commit(r, nop(), CompletionMode::FireAndForget)),
                    0,
                )
            }
            Err(e) => (e.status(), 0),
        },
        HostileCase::SqWindowAtReserve => {
            back_1000(sq_pub);
            (
                status(lane.try_reserve().map(|r| lane.commit_exact(r, nop()))),
                0,
            )
        }
        HostileCase::CqWindow => {
            if let Err(e) = lane.submit(nop(), CompletionMode::Slot(0), budget) {
                return (e.status(), 0);
            }
            let claim = v.ctl32(crate::ctl_off!(cq_claim)).load(Ordering::Relaxed);
            let mut i = 0u32;
            // Acquire: the CQE is posted (not reaped: the corruption must come first).
            while v.u32_at(l.cq_tail).load(Ordering::Acquire) == claim {
                if Instant::now() > deadline {
                    return (STATUS_TIMED_OUT, 0);
                }
                crate::protocol::lane::backoff(i);
                i = i.saturating_add(1);
            }
            v.ctl64(crate::ctl_off!(cq_pub))
                .store(claim.wrapping_sub(1000) as u64, Ordering::Relaxed);
            (reap_status(lane.reap(1)), 0)
        }
        HostileCase::SlotOutOfRange => match lane.reserve(budget) {
            Ok(r) => (
                status(lane.commit(r, nop(), CompletionMode::Slot(l.slots_per_lane))),
                0,
            ),
            Err(e) => (e.status(), 0),
        },
        HostileCase::WriteRangeWrapsU32 => {
            let len = 0u32.wrapping_sub(l.staging).wrapping_add(64);
            let sqe = lane.write_sqe(FileRef::Fixed(0), l.staging, len, 0);
            match waited(lane, sqe) {
                Ok(res) => (STATUS_READY, res),
                Err(e) => (e.status(), 0),
            }
        }
        HostileCase::CqCreditsWild | HostileCase::CqCreditsZero => {
            let wild = if case == HostileCase::CqCreditsWild {
                0xdead_beef
            } else {
                0
            };
            v.ctl32(crate::ctl_off!(cq_credits))
                .store(wild, Ordering::Relaxed);
            (
                status(lane.try_reserve().map(|r| lane.commit_exact(r, nop()))),
                0,
            )
        }
        HostileCase::CqClaimWild => {
            v.ctl32(crate::ctl_off!(cq_claim))
                .fetch_add(0x10000, Ordering::Relaxed);
            (reap_status(lane.reap(1)), 0)
        }
        HostileCase::SqReserveWild => {
            v.ctl32(crate::ctl_off!(sq_reserve))
                .fetch_add(0x10000, Ordering::Relaxed);
            (
                status(lane.try_reserve().map(|r| lane.commit_exact(r, nop()))),
                0,
            )
        }
        HostileCase::StaleCompletion => {
            if let Err(e) = waited(lane, nop()) {
                return (e.status(), 0);
            }
            let g = lane.slot_index(0).unwrap_or(0);
            let stale = slot_generation(v.slot(g).0.load(Ordering::Relaxed));
            let mut forged = nop();
            forged.flags = Flags::FIXED_FILE.bits();
            forged.user_data = slot_user_data(g, stale);
            match lane.reserve(budget) {
                Ok(r) => {
                    lane.commit_exact(r, forged);
                }
                Err(e) => return (e.status(), 0),
            }
            match waited(lane, nop()) {
                Ok(res) => (STATUS_READY, res),
                Err(e) => (e.status(), 0),
            }
        }
        HostileCase::LinkedSkipSuccess | HostileCase::CallerSkipSuccess => {
            let (flags, c) = if case == HostileCase::LinkedSkipSuccess {
                (Flags::IO_LINK, CompletionMode::SkipSuccess)
            } else {
                (Flags::SKIP_SUCCESS, CompletionMode::FireAndForget)
            };
            let mut sqe = nop();
            sqe.flags = flags.bits();
            match lane.reserve(budget) {
                Ok(r) => (status(lane.commit(r, sqe, c)), 0),
                Err(e) => (e.status(), 0),
            }
        }
    }
}
