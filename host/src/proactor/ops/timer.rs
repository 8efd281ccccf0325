//! Timers, relative or absolute (CLOCK_MONOTONIC): `IORING_OP_TIMEOUT` with
//! `ETIME_SUCCESS`; on epoll a heap behind one timerfd.

use io_uring::{opcode, squeue, types};

use super::base::{EpollCx, Op, Step, UringCx};
use crate::proactor::caps::Capability;
use crate::proactor::op::{Deadline, OpCode, Resources, TimerSpec};

pub(crate) struct Timer(pub(crate) TimerSpec);

/// The entry of a timer; `ts` is where the kernel reads the time (it copies it when
/// the entry is submitted). Also used by the simple-operation path.
#[inline(never)]
pub(crate) fn entry(spec: TimerSpec, abs_native: bool, ts: &mut types::Timespec) -> squeue::Entry {
    let mut flags = types::TimeoutFlags::ETIME_SUCCESS;
    let ns = match spec {
        TimerSpec::After(d) => d.as_nanos().min(u64::MAX as u128) as u64,
        TimerSpec::At(dl) if abs_native => {
            flags |= types::TimeoutFlags::ABS;
            dl.as_nanos()
        }
        // Emulated absolute timer: converted to relative here.
        TimerSpec::At(dl) => dl.since(Deadline::now()).as_nanos() as u64,
    };
    *ts = types::Timespec::new()
        .sec(ns / 1_000_000_000)
        .nsec((ns % 1_000_000_000) as u32);
    opcode::Timeout::new(ts as *const types::Timespec)
        .flags(flags)
        .build()
}

impl Op for Timer {
    const CODE: OpCode = OpCode::Timer;
    fn owns_nothing(&self) -> bool {
        true
    }
    fn into_resources(self) -> Resources {
        Resources::None
    }
    fn entry(&mut self, cx: &mut UringCx<'_>) -> squeue::Entry {
        entry(
            self.0,
            cx.env.caps.is_native(Capability::AbsoluteTimers),
            cx.ts,
        )
    }
    fn epoll(&mut self, cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        let at = match self.0 {
            TimerSpec::After(d) => Deadline::after(d),
            TimerSpec::At(dl) if cx.env.caps.is_native(Capability::AbsoluteTimers) => dl,
            // Emulated absolute timer: converted to relative at start.
            TimerSpec::At(dl) => Deadline::after(dl.since(Deadline::now())),
        };
        Step::Timer(at.as_nanos())
    }
}
