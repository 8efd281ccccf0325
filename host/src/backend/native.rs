//! The built-in programs as native (Rust) kernels, as [`super::spirv`] holds them as SPIR-V: the Rust protocol
//! implementation ([`crate::protocol::Lane`]), one invocation per lane, or per subgroup for the programs that
//! aggregate (`aggregated`: its lanes in lockstep, [`crate::protocol::Subgroup`], or, for the read program,
//! stepped as state machines, `backend/cpu/read.rs`), each running its program to the end in one dispatch. A
//! device that loads [`KernelCode::Native`](super::KernelCode::Native) (the CPU reference
//! device) runs the built-in programs with [`kernel`].
//!
//! The argument scheme is the SPIR-V programs' one: the ring arena twice (the GLSL's 32- and 64-bit views),
//! the run buffer ([`super::run_buffer`]: parameters, then one [`LaneState`] per lane), the device-local block
//! twice (32- and 64-bit views; on the CPU reference device the ring's host copy itself) and the
//! [`RingLayout`] by value. Each invocation reads its program from the run parameters and writes its
//! [`LaneState`] (finished, with its counters) when it is done.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::hal::{NativeArg, NativeKernel};
use super::run_buffer::*;
use super::{format_print_line, HostileCase, LaneReport};
use crate::protocol::subgroup::MAX_SUBGROUP;
use crate::protocol::{
    CompletionMode, FileRef, Lane, LaneError, LineBuf, Subgroup, DEFAULT_BUDGET,
};
use crate::ring::{RingLayout, RingView};

/// The native kernel of every built-in program (the program is the run parameters' `program`; the format
/// probe is [`PROGRAM_FORMAT`]).
pub fn kernel() -> NativeKernel {
    Arc::new(invocation)
}

/// The run parameters, read from the run buffer's first words.
fn params(run: &[AtomicU32]) -> Option<RunParams> {
    let n = std::mem::size_of::<RunParams>() / 4;
    // Acquire: pairs with the host's release stores of the parameters before the launch.
    let words: Vec<u32> = run
        .get(..n)?
        .iter()
        .map(|w| w.load(Ordering::Acquire))
        .collect();
    Some(bytemuck::pod_read_unaligned(bytemuck::cast_slice(&words)))
}

/// Whether a program runs one invocation per subgroup (its lanes aggregated, [`Subgroup`]) on a device that
/// passes a subgroup size; the others run one invocation per lane.
pub(super) fn aggregated(program: u32, arg0: u32) -> bool {
    program == PROGRAM_PRINT
        || program == PROGRAM_LANE_STRESS
        || program == PROGRAM_READ
        || (program == PROGRAM_NOP && arg0 < 2)
}

fn invocation(id: u32, args: &[NativeArg<'_>], deadline: Instant) {
    let (
        Some(NativeArg::Words(arena)),
        Some(NativeArg::Words(run)),
        Some(NativeArg::Words(local)),
        Some(NativeArg::Bytes(layout)),
    ) = (args.first(), args.get(2), args.get(3), args.get(5))
    else {
        return;
    };
    // The subgroup size, where the launch passes one (0 or absent: one invocation per lane).
    let sg = match args.get(6) {
        Some(NativeArg::Bytes(b)) => b
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes),
        _ => 0,
    };
    let Some(p) = params(run) else { return };
    let Ok(l) = bytemuck::try_pod_read_unaligned::<RingLayout>(layout) else {
        return;
    };
    let (first, n) = if sg > 0 && aggregated(p.program, p.arg0) {
        let first = id.saturating_mul(sg);
        (first, sg.min(p.lanes.saturating_sub(first)))
    } else {
        (id, u32::from(id < p.lanes))
    };
    if n == 0 {
        return;
    }
    let mut reports = [LaneReport::default(); MAX_SUBGROUP];
    if (arena.len() as u64) * 4 >= l.arena_size && (local.len() as u64) * 4 >= l.local_size() {
        // SAFETY: `arena` is the ring's whole arena and `local` its device-local block (the built-in programs'
        // argument scheme, which the kernel's loader promises), `l.arena_size` and `l.local_size()` bytes of
        // them checked present, initialised by the ring and mapped for the whole launch, which outlives this
        // invocation.
        let view = unsafe {
            RingView::new(
                arena.as_ptr() as *mut u8,
                local.as_ptr() as *mut u8,
                local.len() as u64 * 4,
                &l,
            )
        };
        if p.program == PROGRAM_READ {
            // Stepped lanes (a subgroup of one where the launch runs one invocation per lane).
            super::cpu::read::read_subgroup(view, first, n, &p, deadline, &mut reports);
        } else if sg > 0 && aggregated(p.program, p.arg0) {
            let mut g = Subgroup::new(view, first, n);
            run_subgroup(&mut g, &p, deadline, &mut reports);
            let _ = g.flush(DEFAULT_BUDGET);
        } else {
            let mut lane = Lane::new(view, id);
            let rep = if p.program == PROGRAM_FORMAT {
                format_case(&lane, &p)
            } else {
                run_program(&mut lane, &p, deadline)
            };
            let _ = lane.flush(DEFAULT_BUDGET);
            reports[0] = rep;
        }
    } else {
        for r in reports.iter_mut() {
            r.failed = 1;
        }
    }
    for (i, rep) in reports.iter().take(n as usize).enumerate() {
        write_state(run, first + i as u32, rep);
    }
}

/// Writes lane `lane`'s finished [`LaneState`] into the run buffer.
fn write_state(run: &[AtomicU32], lane: u32, rep: &LaneReport) {
    let each = std::mem::size_of::<LaneState>() / 4;
    let at = std::mem::size_of::<RunHeader>() / 4 + lane as usize * each;
    let Some(state) = run.get(at..at + each) else {
        return;
    };
    let st = LaneState {
        flags: LANE_FINISHED,
        dispatches: 1,
        done: rep.done as u32,
        failed: rep.failed as u32,
        checksum: rep.checksum,
        bytes: rep.bytes,
        ..LaneState::default()
    };
    for (w, v) in state.iter().zip(bytemuck::cast_slice::<LaneState, u32>(
        std::slice::from_ref(&st),
    )) {
        // Release: the host reads the state after the launch has ended (the join orders it too).
        w.store(*v, Ordering::Release);
    }
}

/// The aggregated programs on one subgroup ([`aggregated`]): every lane of `g` runs the program in lockstep.
fn run_subgroup(g: &mut Subgroup<'_>, p: &RunParams, deadline: Instant, reps: &mut [LaneReport]) {
    let budget = p.iter_budget;
    let all = g.all();
    let wait_slot = g
        .lanes()
        .first()
        .map_or(0, |l| (l.view().layout().slots_per_lane - 1).min(1));
    let tally = |ok: u32, reps: &mut [LaneReport]| {
        for (i, r) in reps.iter_mut().enumerate().take(32) {
            if all & (1 << i) != 0 {
                if ok & (1 << i) != 0 {
                    r.done += 1;
                } else {
                    r.failed += 1;
                }
            }
        }
    };
    let mask_of = |rs: &[Option<bool>]| {
        rs.iter().enumerate().fold(
            0u32,
            |m, (i, r)| if *r == Some(true) { m | 1 << i } else { m },
        )
    };
    for seq in 0..p.count {
        if seq % 1024 == 0 && Instant::now() > deadline {
            for r in reps.iter_mut() {
                r.failed += (p.count - seq) as u64;
            }
            break;
        }
        let waited = match p.program {
            PROGRAM_PRINT => {
                let rs = g.print_with(all, budget, |_, id, b| format_print_line(b, id, seq));
                tally(mask_of(&rs.map(|r| r.map(|r| r.is_ok()))), reps);
                continue;
            }
            PROGRAM_NOP => p.arg0 == 1,
            _ => seq % 2 == 0,
        };
        if waited {
            let sub = g.nop(all, CompletionMode::Slot(wait_slot), budget);
            let armed = mask_of(&sub.map(|r| r.map(|r| r.is_ok())));
            let rs = g.wait(armed, wait_slot, budget);
            tally(
                mask_of(&rs.map(|r| r.map(|r| matches!(r, Ok(v) if v >= 0)))),
                reps,
            );
        } else {
            let sub = g.nop(all, CompletionMode::FireAndForget, budget);
            tally(mask_of(&sub.map(|r| r.map(|r| r.is_ok()))), reps);
        }
    }
}

/// [`PROGRAM_FORMAT`]: the case at `fixed + 128 id` (kind, precision, value low, value high) formatted with
/// the §7 formatter; its length at `+ 16`, its bytes (at most 108) at `+ 20`.
fn format_case(lane: &Lane<'_>, p: &RunParams) -> LaneReport {
    let mut rep = LaneReport::default();
    let id = lane.id();
    if id >= p.count {
        return rep;
    }
    let v = lane.view();
    let at = v.layout().fixed + 128 * id;
    let mut w = [0u32; 4];
    v.read_bytes(at, bytemuck::bytes_of_mut(&mut w));
    let val = w[2] as u64 | (w[3] as u64) << 32;
    let mut l = LineBuf::with_capacity(256);
    match w[0] {
        0 => l.u64(val),
        1 => l.i64(val as i64),
        2 => l.hex(val),
        _ => l.f32(f32::from_bits(val as u32), w[1]),
    };
    let bytes = l.as_bytes();
    let n = bytes.len().min(108);
    v.write_bytes(at + 16, &(n as u32).to_le_bytes());
    v.write_bytes(at + 20, &bytes[..n]);
    rep.done = 1;
    rep
}

/// One lane of the program the run parameters name (the Rust version of its shader).
fn run_program(lane: &mut Lane<'_>, p: &RunParams, deadline: Instant) -> LaneReport {
    let mut rep = LaneReport::default();
    let id = lane.id();
    let budget = p.iter_budget;
    let wait_slot = (lane.view().layout().slots_per_lane - 1).min(1);
    match p.program {
        PROGRAM_PRINT => {
            let lines = p.count;
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
        PROGRAM_NOP if p.arg0 < 2 => {
            let (ops, fire_and_forget) = (p.count, p.arg0 == 0);
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
        PROGRAM_NOP => {
            let (file, ops, len) = (p.arg1, p.count, p.arg2);
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
        PROGRAM_LANE_STRESS => {
            for seq in 0..p.count {
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
        PROGRAM_EDIT_BUFFER => {
            let steps = p.count;
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
        PROGRAM_EXACT => {
            let count = p.count;
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
        PROGRAM_HOSTILE => {
            let case = HostileCase::ALL.get(p.arg0 as usize);
            if let (0, Some(&case)) = (id, case) {
                let (status, res) = hostile(lane, case, budget, deadline);
                rep.done = 1;
                rep.checksum = status as u64;
                rep.bytes = res as u32 as u64;
            }
        }
        PROGRAM_LAYOUT => {
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
        _ => rep.failed += 1,
    }
    rep
}

/// Lane 0 of [`Program::Hostile`](super::Program::Hostile): the case's library calls, as `hostile.comp` makes them. Returns (status,
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
    let sq_pub = v.local64(crate::local_off!(sq_pub));
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
            let claim = v
                .local32(crate::local_off!(cq_claim))
                .load(Ordering::Relaxed);
            let mut i = 0u32;
            // Acquire: the CQE is posted (not reaped: the corruption must come first).
            while v.u32_at(l.cq_tail).load(Ordering::Acquire) == claim {
                if Instant::now() > deadline {
                    return (STATUS_TIMED_OUT, 0);
                }
                crate::protocol::lane::backoff(i);
                i = i.saturating_add(1);
            }
            v.local64(crate::local_off!(cq_pub))
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
            v.local32(crate::local_off!(cq_credits))
                .store(wild, Ordering::Relaxed);
            (
                status(lane.try_reserve().map(|r| lane.commit_exact(r, nop()))),
                0,
            )
        }
        HostileCase::CqClaimWild => {
            v.local32(crate::local_off!(cq_claim))
                .fetch_add(0x10000, Ordering::Relaxed);
            (reap_status(lane.reap(1)), 0)
        }
        HostileCase::SqReserveWild => {
            v.local32(crate::local_off!(sq_reserve))
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
