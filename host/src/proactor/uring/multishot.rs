//! Completions of operations with several CQEs on the io_uring driver: multishot
//! operations and zero-copy sends (result, then notification).

use std::sync::atomic::Ordering;

use io_uring::cqueue;

use super::Uring;
use crate::proactor::caps::Capability;
use crate::proactor::core::{Core, Driver, Shared};
use crate::proactor::op::{OpCode, OpError, Outcome, Resources};
use crate::proactor::ops::send_zc::ZcStep;
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
        if let Some(OpKind::SendZc(z)) = s.op.as_mut() {
            // Exactly one completion is delivered: at the notification, or at a
            // result that announces none. A cancel request after the result finds
            // nothing to cancel; the notification still ends the operation.
            let step = z.reap(outcome, flags);
            if cqueue::notif(flags) {
                // Relaxed: a statistic, read by no synchronising code.
                sh.driver.zc_notifications.fetch_add(1, Ordering::Relaxed);
            }
            match step {
                ZcStep::Wait => {}
                ZcStep::End(o) | ZcStep::Notified(o) => core.finish(sh, idx, o),
                ZcStep::Plain if s.cancel => core.finish(sh, idx, Outcome::Cancelled),
                ZcStep::Plain => sh.driver.start(sh, core, idx),
            }
            return;
        }
        if let Some(OpKind::PollSource(p)) = s.op.as_ref() {
            // Readiness for the proactor's own consumers: every result carries the
            // route; the kernel's last completion (no `F_MORE`) ends the operation.
            let res = p.route.res();
            let ok = matches!(outcome, Outcome::Ok(_));
            if native && cqueue::more(flags) {
                core.emit(idx, outcome, res);
            } else if native || !ok {
                drop(res);
                core.finish(sh, idx, outcome);
            } else if s.cancel {
                core.emit(idx, outcome, res);
                core.finish(sh, idx, Outcome::Cancelled);
            } else {
                core.emit(idx, outcome, res);
                sh.driver.start(sh, core, idx);
            }
            return;
        }
        let (outcome, res, goes_on) = match s.op.as_mut() {
            Some(OpKind::RecvMultishot(r)) => r.reap(outcome, flags),
            _ => (outcome, Resources::None, matches!(outcome, Outcome::Ok(_))),
        };
        if native {
            if cqueue::more(flags) {
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
