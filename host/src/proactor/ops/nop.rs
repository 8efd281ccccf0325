//! nop: completes with `Ok(0)`.

use io_uring::{opcode, squeue};

use super::base::{EpollCx, Op, Step, UringCx};
use crate::proactor::op::{OpCode, Resources};

pub(crate) struct Nop;

impl Op for Nop {
    const CODE: OpCode = OpCode::Nop;
    fn owns_nothing(&self) -> bool {
        true
    }
    fn into_resources(self) -> Resources {
        Resources::None
    }
    #[inline(always)]
    fn entry(&mut self, _cx: &mut UringCx<'_>) -> squeue::Entry {
        opcode::Nop::new().build()
    }
    fn epoll(&mut self, _cx: &mut EpollCx<'_>, _ready: bool) -> Step {
        Step::ok(0)
    }
}
