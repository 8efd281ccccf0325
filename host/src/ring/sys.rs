//! The raw io_uring ABI that the `io-uring` crate keeps private: setup parameters, the three system calls, and
//! the flag values this crate needs. Values are the kernel's uapi (`include/uapi/linux/io_uring.h`).
//!
//! This is the only module that issues io_uring system calls directly; everything above it is safe code.
#![allow(dead_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// `io_sqring_offsets`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SqRingOffsets {
    pub head: u32,
    pub tail: u32,
    pub ring_mask: u32,
    pub ring_entries: u32,
    pub flags: u32,
    pub dropped: u32,
    pub array: u32,
    pub resv1: u32,
    pub user_addr: u64,
}

/// `io_cqring_offsets`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CqRingOffsets {
    pub head: u32,
    pub tail: u32,
    pub ring_mask: u32,
    pub ring_entries: u32,
    pub overflow: u32,
    pub cqes: u32,
    pub flags: u32,
    pub resv1: u32,
    pub user_addr: u64,
}

/// `io_uring_params`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub sq_entries: u32,
    pub cq_entries: u32,
    pub flags: u32,
    pub sq_thread_cpu: u32,
    pub sq_thread_idle: u32,
    pub features: u32,
    pub wq_fd: u32,
    pub resv: [u32; 3],
    pub sq_off: SqRingOffsets,
    pub cq_off: CqRingOffsets,
}

pub const SETUP_SQPOLL: u32 = 1 << 1;
pub const SETUP_SQ_AFF: u32 = 1 << 2;
pub const SETUP_CQSIZE: u32 = 1 << 3;
pub const SETUP_ATTACH_WQ: u32 = 1 << 5;
pub const SETUP_R_DISABLED: u32 = 1 << 6;
pub const SETUP_NO_MMAP: u32 = 1 << 14;
pub const SETUP_NO_SQARRAY: u32 = 1 << 16;

pub const ENTER_GETEVENTS: u32 = 1 << 0;
pub const ENTER_SQ_WAKEUP: u32 = 1 << 1;

pub const SQ_NEED_WAKEUP: u32 = 1 << 0;
pub const SQ_CQ_OVERFLOW: u32 = 1 << 1;

pub const FEAT_NODROP: u32 = 1 << 1;

pub const REGISTER_BUFFERS: u32 = 0;
pub const UNREGISTER_BUFFERS: u32 = 1;
pub const REGISTER_FILES: u32 = 2;
pub const UNREGISTER_FILES: u32 = 3;
pub const REGISTER_FILES_UPDATE: u32 = 6;
pub const REGISTER_RESTRICTIONS: u32 = 11;
pub const REGISTER_ENABLE_RINGS: u32 = 12;

/// `io_uring_files_update` (`IORING_REGISTER_FILES_UPDATE`): `fds` is the address of an i32 array.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct FilesUpdate {
    pub offset: u32,
    pub resv: u32,
    pub fds: u64,
}

/// `io_uring_setup(2)`. Returns the ring's fd; `params` is updated by the kernel.
pub fn setup(entries: u32, params: &mut Params) -> io::Result<OwnedFd> {
    // SAFETY: `params` is a valid, exclusive `io_uring_params` for the duration of the call. The kernel reads
    // `user_addr` fields only as addresses of the caller's memory (validated and pinned by the kernel).
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, entries, params as *mut Params) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `io_uring_enter(2)` without a signal mask.
pub fn enter(fd: i32, to_submit: u32, min_complete: u32, flags: u32) -> io::Result<u32> {
    // SAFETY: no pointer arguments are passed (sig = NULL, size 0).
    let r = unsafe {
        libc::syscall(
            libc::SYS_io_uring_enter,
            fd,
            to_submit,
            min_complete,
            flags,
            std::ptr::null::<libc::c_void>(),
            0usize,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as u32)
}

/// `io_uring_register(2)`.
///
/// # Safety
/// `arg` must point to `nr_args` valid elements of the type `opcode` expects (or be null where it expects
/// none), alive for the duration of the call.
pub unsafe fn register(
    fd: i32,
    opcode: u32,
    arg: *const libc::c_void,
    nr_args: u32,
) -> io::Result<u32> {
    // SAFETY: the caller guarantees `arg` matches `opcode` (see `# Safety`).
    let r = unsafe { libc::syscall(libc::SYS_io_uring_register, fd, opcode, arg, nr_args) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_layout_matches_uapi() {
        assert_eq!(std::mem::size_of::<SqRingOffsets>(), 40);
        assert_eq!(std::mem::size_of::<CqRingOffsets>(), 40);
        assert_eq!(std::mem::size_of::<Params>(), 120);
        assert_eq!(std::mem::offset_of!(Params, sq_off), 40);
        assert_eq!(std::mem::offset_of!(Params, cq_off), 80);
        assert_eq!(std::mem::offset_of!(SqRingOffsets, user_addr), 32);
    }
}
