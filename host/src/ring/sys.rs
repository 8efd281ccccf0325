//! The io_uring system calls this crate makes itself, through `rustix` (the `io-uring` crate cannot set up a
//! ring over caller-provided memory, `IORING_SETUP_NO_MMAP`): setup parameters, `io_uring_setup`,
//! `io_uring_enter` and `io_uring_register`, and the flag values as plain `u32`s for the code that keeps them
//! in shared words and error messages.
//!
//! This is the only module that issues io_uring system calls directly; everything above it is safe code.
#![allow(dead_code)]

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::io_uring::{
    self as ru, IoringEnterFlags, IoringFeatureFlags, IoringSetupFlags, IoringSqFlags,
};

pub use rustix::io_uring::IoringRegisterOp as RegisterOp;

/// `io_uring_params`.
pub type Params = ru::io_uring_params;

/// `io_uring_files_update` (`IORING_REGISTER_FILES_UPDATE`).
pub type FilesUpdate = ru::io_uring_files_update;

pub const SETUP_SQPOLL: u32 = IoringSetupFlags::SQPOLL.bits();
pub const SETUP_SQ_AFF: u32 = IoringSetupFlags::SQ_AFF.bits();
pub const SETUP_CQSIZE: u32 = IoringSetupFlags::CQSIZE.bits();
pub const SETUP_ATTACH_WQ: u32 = IoringSetupFlags::ATTACH_WQ.bits();
pub const SETUP_R_DISABLED: u32 = IoringSetupFlags::R_DISABLED.bits();
pub const SETUP_NO_MMAP: u32 = IoringSetupFlags::NO_MMAP.bits();
pub const SETUP_NO_SQARRAY: u32 = IoringSetupFlags::NO_SQARRAY.bits();

pub const ENTER_GETEVENTS: u32 = IoringEnterFlags::GETEVENTS.bits();
pub const ENTER_SQ_WAKEUP: u32 = IoringEnterFlags::SQ_WAKEUP.bits();

pub const SQ_NEED_WAKEUP: u32 = IoringSqFlags::NEED_WAKEUP.bits();
pub const SQ_CQ_OVERFLOW: u32 = IoringSqFlags::CQ_OVERFLOW.bits();

pub const FEAT_NODROP: u32 = IoringFeatureFlags::NODROP.bits();

/// Parameters for `io_uring_setup` with `flags`, the CQ size, the SQ thread's CPU and idle time, the ring to
/// share the SQ thread with, and the addresses of the caller's SQE array and rings (`IORING_SETUP_NO_MMAP`).
pub fn params(
    flags: u32,
    cq_entries: u32,
    sq_thread_cpu: u32,
    sq_thread_idle_ms: u32,
    wq_fd: i32,
    sqes: *mut u8,
    rings: *mut u8,
) -> Params {
    let mut p = Params::default();
    p.flags = IoringSetupFlags::from_bits_retain(flags);
    p.cq_entries = cq_entries;
    p.sq_thread_cpu = sq_thread_cpu;
    p.sq_thread_idle = sq_thread_idle_ms;
    p.wq_fd = wq_fd;
    p.sq_off.user_addr = ru::io_uring_ptr::new(sqes.cast());
    p.cq_off.user_addr = ru::io_uring_ptr::new(rings.cast());
    p
}

/// `io_uring_setup(2)`. Returns the ring's fd; `params` is updated by the kernel.
pub fn setup(entries: u32, params: &mut Params) -> io::Result<OwnedFd> {
    // SAFETY: `params` is a valid, exclusive `io_uring_params` for the call. With ATTACH_WQ, `wq_fd` names the
    // ring the caller gave (`RingConfig::attach_to`); the kernel checks it is an io_uring (EBADF/EINVAL
    // otherwise) and takes no ownership of it. The `user_addr` fields are addresses of the caller's arena,
    // which the kernel validates and pins.
    Ok(unsafe { ru::io_uring_setup(entries, params) }?)
}

/// `io_uring_enter(2)` without a signal mask or argument.
pub fn enter(fd: BorrowedFd<'_>, to_submit: u32, min_complete: u32, flags: u32) -> io::Result<u32> {
    let flags = IoringEnterFlags::from_bits_retain(flags);
    debug_assert!(!flags.intersects(IoringEnterFlags::EXT_ARG | IoringEnterFlags::EXT_ARG_REG));
    // SAFETY: no pointer arguments are passed (no EXT_ARG: the argument is null, size 0); `fd` is open.
    Ok(unsafe { ru::io_uring_enter(fd, to_submit, min_complete, flags) }?)
}

/// `io_uring_register(2)`.
///
/// # Safety
/// `arg` must point to `nr_args` valid elements of the type `op` expects (or be null where it expects none),
/// alive for the duration of the call.
pub unsafe fn register(
    fd: BorrowedFd<'_>,
    op: RegisterOp,
    arg: *const libc::c_void,
    nr_args: u32,
) -> io::Result<u32> {
    // SAFETY: the caller guarantees `arg` matches `op` (see `# Safety`).
    Ok(unsafe { ru::io_uring_register(fd, op, arg, nr_args) }?)
}

/// `IORING_REGISTER_EVENTFD`: the kernel signals `efd` whenever it posts a CQE on the ring `fd` (`EBUSY` if
/// one is registered already).
pub fn register_eventfd(fd: BorrowedFd<'_>, efd: BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let raw: i32 = efd.as_raw_fd();
    // SAFETY: the op takes one `int` (the eventfd), read during the call from `raw`, which outlives it.
    unsafe {
        register(
            fd,
            RegisterOp::RegisterEventfd,
            (&raw as *const i32).cast(),
            1,
        )
    }
    .map(drop)
}

/// `IORING_UNREGISTER_EVENTFD`.
pub fn unregister_eventfd(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: the op takes no argument.
    unsafe { register(fd, RegisterOp::UnregisterEventfd, std::ptr::null(), 0) }.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_layout_matches_uapi() {
        assert_eq!(std::mem::size_of::<Params>(), 120);
        assert_eq!(std::mem::offset_of!(Params, sq_off), 40);
        assert_eq!(std::mem::offset_of!(Params, cq_off), 80);
        assert_eq!(SETUP_NO_MMAP, 1 << 14);
        assert_eq!(SETUP_NO_SQARRAY, 1 << 16);
        assert_eq!(ENTER_SQ_WAKEUP, 1 << 1);
        assert_eq!(SQ_NEED_WAKEUP, 1);
    }
}
