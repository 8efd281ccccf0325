//! Completions of multishot operations on the io_uring driver.

use super::Uring;
use crate::proactor::caps::Capability;
use crate::proactor::core::{Core, Driver, Shared};
use crate::proactor::op::{OpCode, OpError, Outcome, Resources};
use crate::proactor::ops::OpKind;

impl Uring {
    /// A completion of a multishot operation: native ones go on while the kernel sets
    /// `IORING_CQE_F_MORE`; emulated ones are re-armed after each success.
    #[cold]
    pub(super) fn reap_multishot(
        sh: &Shared<Self>,
        core: &mut Core<Self>,
        idx: u32,
        outcome: Outcome,
        flags: u32,
    ) {
        let native = sh.caps.is_native(Capability::Multishot);
        let s = &mut core.slots[idx as usize];
        let (outcome, res, goes_on) = match s.op.as_mut() {
            Some(OpKind::RecvMultishot(r)) => r.reap(outcome, flags),
            _ => (outcome, Resources::None, matches!(outcome, Outcome::Ok(_))),
        };
        if native {
            if io_uring::cqueue::more(flags) {
                core.emit(idx, outcome, res);
            } else if matches!(res, Resources::None) {
                core.finish(sh, idx, outcome);
            } else {
                // Data on the kernel's last completion: delivered, then the end.
                core.emit(idx, outcome, res);
                core.finish(
                    sh,
                    idx,
                    Outcome::Err(OpError {
                        op: OpCode::RecvMultishot,
                        errno: libc::EAGAIN,
                    }),
                );
            }
        } else if !goes_on {
            core.finish(sh, idx, outcome);
        } else if s.cancel {
            // The result is the caller's (a connection, a buffer); the cancellation
            // ends it.
            core.emit(idx, outcome, res);
            core.finish(sh, idx, Outcome::Cancelled);
        } else {
            core.emit(idx, outcome, res);
            sh.driver.start(sh, core, idx);
        }
    }
}
