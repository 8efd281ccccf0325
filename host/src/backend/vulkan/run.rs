//! Built-in programs on Vulkan: each program's SPIR-V ([`crate::backend::spirv`]) runs over the ring's arena
//! (imported, kept alive by an [`crate::ring::ArenaKeepAlive`] while the run lives) with a host-visible run
//! buffer ([`crate::backend::run_buffer`]: parameters, text table, one [`LaneState`] per lane) and the
//! [`crate::ring::RingLayout`] as push constants, in workgroups of exactly one subgroup. The dispatch is
//! recorded once and re-submitted by the backend-neutral re-dispatch loop
//! ([`crate::backend::redispatch::run_resumable`]) until every lane reports finished.

use std::sync::Arc;
use std::time::Duration;

use super::error::run_error;
use super::raw;
use crate::backend::hal::{BetweenDispatches, FormatCase};
use crate::backend::redispatch::{run_resumable, Resumable};
use crate::backend::run_buffer::*;
use crate::backend::spirv;
use crate::backend::{DeviceError, LaneReport, Program, RunReport};
use crate::protocol::DeviceRing;

/// What a device's runs of built-in programs need: its context and budgets.
pub(super) struct Runner<'a> {
    /// The device's context.
    pub ctx: &'a Arc<raw::Context>,
    /// Loop iterations per lane and dispatch of resumable programs.
    pub lane_budget: u32,
    /// Loop iterations per lane of the format probe.
    pub format_budget: u32,
    /// Longest a single dispatch may run.
    pub dispatch_timeout: Duration,
}

/// What [`Runner::plan`] decides for a program.
pub(super) struct Plan {
    name: &'static str,
    spirv: &'static [u8],
    params: RunParams,
    texts: &'static [&'static str],
}

impl Runner<'_> {
    pub(super) fn run_builtin(
        &self,
        ring: &DeviceRing,
        lanes: u32,
        program: &Program,
        timeout: Duration,
        between: &mut BetweenDispatches<'_>,
    ) -> Result<RunReport, DeviceError> {
        let l = ring.layout();
        if lanes == 0 || lanes > l.lanes || lanes > 65535 {
            return Err(run_error(format!(
                "{lanes} lanes requested; the ring has 1..={}",
                l.lanes
            )));
        }
        let plan = self.plan(&l, lanes, program)?;
        self.run_plan(ring, lanes, plan, timeout, between)
    }

    fn run_plan(
        &self,
        ring: &DeviceRing,
        lanes: u32,
        plan: Plan,
        timeout: Duration,
        between: &mut BetweenDispatches<'_>,
    ) -> Result<RunReport, DeviceError> {
        let l = ring.layout();
        let Plan {
            name,
            spirv,
            params,
            texts,
        } = plan;
        self.ctx.reclaim_orphans();
        let pipeline = self.ctx.pipeline(name, spirv).map_err(run_error)?;
        let head = std::mem::size_of::<RunHeader>();
        let run_len = head + lanes as usize * std::mem::size_of::<LaneState>();
        let sg = self.ctx.subgroup_size.max(1);
        let groups = lanes.div_ceil(sg);
        let push: [u8; 128] = bytemuck::cast(l);
        let mut run = raw::Run::new(
            self.ctx,
            ring.arena_keepalive(),
            run_len,
            pipeline,
            &push,
            groups,
        )
        .map_err(run_error)?;
        let header = RunHeader::new(params, texts);
        {
            let bytes = run.run_bytes();
            bytes.fill(0);
            bytes[..head].copy_from_slice(bytemuck::bytes_of(&header));
        }
        let mut dispatch = |i: u32, limit: Duration| -> Result<Vec<LaneState>, DeviceError> {
            {
                let bytes = run.run_bytes();
                let p: &mut RunHeader = bytemuck::from_bytes_mut(&mut bytes[..head]);
                p.params.dispatch = i;
            }
            match run.dispatch(limit).map_err(run_error)? {
                raw::Waited::Done => {}
                raw::Waited::TimedOut => {
                    return Err(DeviceError::Timeout {
                        backend: "vulkan",
                        limit: limit.min(timeout),
                    });
                }
            }
            let states: Vec<LaneState> = run.run_bytes()[head..]
                .chunks_exact(std::mem::size_of::<LaneState>())
                .map(bytemuck::pod_read_unaligned)
                .collect();
            if log::log_enabled!(log::Level::Trace) {
                let fin = states
                    .iter()
                    .filter(|s| s.flags & LANE_FINISHED != 0)
                    .count();
                let done: u64 = states.iter().map(|s| s.done as u64).sum();
                log::trace!(
                    "vulkan: dispatch {i}: {fin} lanes finished, {done} ops done; lane 0 {:?}; control {:?}",
                    states.first(),
                    ring.view().control_snapshot()
                );
            }
            Ok(states)
        };
        let r = run_resumable(Resumable {
            backend: "vulkan",
            timeout,
            per_dispatch: self.dispatch_timeout,
            dispatch: &mut dispatch,
            between,
            finished: |s: &LaneState| s.flags & LANE_FINISHED != 0,
            progress: |s: &LaneState| {
                s.seq as u64 + s.done as u64 + s.phase as u64 + s.flags as u64
            },
        });
        if r.is_err() {
            log::warn!(
                "vulkan: run of {name} ended early; control: {:?}",
                ring.view().control_snapshot()
            );
        }
        let r = r?;
        let lanes_v = r
            .states
            .iter()
            .map(|s| LaneReport {
                done: s.done as u64,
                failed: s.failed as u64,
                checksum: s.checksum,
                bytes: s.bytes,
            })
            .collect();
        Ok(RunReport {
            lanes: lanes_v,
            elapsed: r.elapsed,
            dispatches: r.dispatches,
            states: r.states,
        })
    }

    pub(super) fn format_cases(
        &self,
        ring: &DeviceRing,
        cases: &[FormatCase],
    ) -> Result<Vec<Vec<u8>>, DeviceError> {
        let l = ring.layout();
        let n = cases.len() as u32;
        if n == 0 || n > l.lanes || (l.fixed_size as u64) < 128 * n as u64 {
            return Err(run_error(format!(
                "format_probe needs 1..={} cases and 128 bytes of fixed buffer per case",
                l.lanes
            )));
        }
        let v = ring.view();
        for (i, c) in cases.iter().enumerate() {
            let (kind, prec, val) = match *c {
                FormatCase::U64(x) => (0u32, 0u32, x),
                FormatCase::I64(x) => (1, 0, x as u64),
                FormatCase::Hex(x) => (2, 0, x),
                FormatCase::F32(x, p) => (3, p, x.to_bits() as u64),
            };
            let words = [kind, prec, val as u32, (val >> 32) as u32];
            v.write_bytes(l.fixed + 128 * i as u32, bytemuck::bytes_of(&words));
        }
        let plan = Plan {
            name: "format",
            spirv: spirv::FORMAT,
            params: RunParams {
                program: PROGRAM_FORMAT,
                lanes: n,
                count: n,
                iter_budget: self.format_budget,
                ..Default::default()
            },
            texts: &[],
        };
        self.run_plan(ring, n, plan, Duration::from_secs(60), &mut |_, _| Ok(()))?;
        Ok((0..n)
            .map(|i| {
                let mut len = [0u8; 4];
                v.read_bytes(l.fixed + 128 * i + 16, &mut len);
                let len = u32::from_le_bytes(len).min(108) as usize;
                let mut out = vec![0u8; len];
                v.read_bytes(l.fixed + 128 * i + 20, &mut out);
                out
            })
            .collect())
    }

    /// Which SPIR-V, parameters and text a program needs; refuses what the shaders cannot do.
    fn plan(
        &self,
        l: &crate::ring::RingLayout,
        lanes: u32,
        program: &Program,
    ) -> Result<Plan, DeviceError> {
        let mut p = RunParams {
            lanes,
            iter_budget: self.lane_budget,
            ..Default::default()
        };
        let fixed_needs = |bytes: u64, what: &str| {
            if (l.fixed_size as u64) < bytes {
                Err(run_error(format!(
                    "{what} needs a fixed buffer of at least {bytes} bytes (RingConfig::fixed_buffer_bytes), the ring has {}",
                    l.fixed_size
                )))
            } else {
                Ok(())
            }
        };
        let r = match *program {
            Program::Print { lines } => {
                p.program = PROGRAM_PRINT;
                p.count = lines;
                ("print", spirv::PRINT, &PRINT_TEXT[..])
            }
            Program::Nop {
                ops,
                fire_and_forget,
            } => {
                p.program = PROGRAM_NOP;
                p.count = ops;
                p.arg0 = if fire_and_forget { 0 } else { 1 };
                ("nop", spirv::NOP, &[][..])
            }
            Program::Write { file, ops, len } => {
                p.program = PROGRAM_NOP;
                p.count = ops;
                p.arg0 = 2;
                p.arg1 = file;
                p.arg2 = len.min(l.line_bytes);
                ("nop", spirv::NOP, &[][..])
            }
            Program::Read { file, chunk, total } => {
                // A chunk's checksum (chunk / 4 loop iterations) runs inside one dispatch's loop budget.
                let max_chunk = (4 * p.iter_budget).min(16384) & !3;
                if chunk == 0 || chunk % 4 != 0 || chunk > max_chunk {
                    return Err(run_error(format!(
                        "Read chunk must be a multiple of 4 in 4..={max_chunk} on this Vulkan device (a chunk's \
                         checksum runs within one dispatch's loop budget), got {chunk}"
                    )));
                }
                fixed_needs(lanes as u64 * chunk as u64, "Read")?;
                p.program = PROGRAM_READ;
                p.arg0 = file;
                p.arg1 = chunk;
                p.total = total;
                ("read", spirv::READ, &[][..])
            }
            Program::LaneStress { ops } => {
                p.program = PROGRAM_LANE_STRESS;
                p.count = ops;
                ("lane_stress", spirv::LANE_STRESS, &[][..])
            }
            Program::EditBuffer { steps } => {
                fixed_needs(lanes as u64 * 8, "EditBuffer")?;
                p.program = PROGRAM_EDIT_BUFFER;
                p.count = steps;
                ("edit_buffer", spirv::EDIT_BUFFER, &[][..])
            }
            Program::Exact { count } => {
                fixed_needs(count as u64 * 68, "Exact")?;
                p.program = PROGRAM_EXACT;
                p.count = count;
                ("exact", spirv::EXACT, &[][..])
            }
            Program::Hostile { case } => {
                p.program = PROGRAM_HOSTILE;
                p.count = 1;
                p.arg0 = case.code();
                ("hostile", spirv::HOSTILE, &[][..])
            }
            Program::Layout => {
                fixed_needs(lanes as u64 * 256, "Layout")?;
                p.program = PROGRAM_LAYOUT;
                p.count = 1;
                ("layout", spirv::LAYOUT, &[][..])
            }
        };
        Ok(Plan {
            name: r.0,
            spirv: r.1,
            params: p,
            texts: r.2,
        })
    }
}
