//! The host C++ target of the gpu-uring device library (`kernels/`): the same headers and program bodies the
//! CUDA/HIP kernels compile, built with the system C++ compiler and reached through `extern "C"`. This crate
//! exists for its tests: the §7 formatting oracle against the Rust formatter, and the portability layer's
//! atomics, subgroup and backoff on the CPU. See kernels/README.md.

use std::sync::atomic::{AtomicU32, AtomicU64};

/// A memory order, as the library's `gu::mo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Order {
    /// `gu::mo::relaxed`
    Relaxed = 0,
    /// `gu::mo::acquire`
    Acquire = 1,
    /// `gu::mo::release`
    Release = 2,
    /// `gu::mo::acq_rel`
    AcqRel = 3,
    /// `gu::mo::seq_cst`
    SeqCst = 4,
}

impl Order {
    /// Every order.
    pub const ALL: [Order; 5] = [
        Order::Relaxed,
        Order::Acquire,
        Order::Release,
        Order::AcqRel,
        Order::SeqCst,
    ];
}

mod ffi {
    extern "C" {
        pub fn gu_host_format_probe(records: *mut u8, count: u32);
        pub fn gu_host_print_line(lane: u32, seq: u32, out: *mut u8, cap: u32) -> u32;
        pub fn gu_host_format_args(out: *mut u8, cap: u32) -> u32;
        pub fn gu_host_line_str(
            text: *const u8,
            out: *mut u8,
            cap: u32,
            truncated: *mut u32,
        ) -> u32;
        pub fn gu_local_u32_load(p: *mut u32, o: u32) -> u32;
        pub fn gu_local_u32_store(p: *mut u32, v: u32, o: u32);
        pub fn gu_local_u32_cas(p: *mut u32, expected: *mut u32, desired: u32, o: u32) -> u32;
        pub fn gu_local_u32_fetch_add(p: *mut u32, v: u32, o: u32) -> u32;
        pub fn gu_local_u32_fetch_or(p: *mut u32, v: u32, o: u32) -> u32;
        pub fn gu_local_u32_fetch_and(p: *mut u32, v: u32, o: u32) -> u32;
        pub fn gu_local_u32_exchange(p: *mut u32, v: u32, o: u32) -> u32;
        pub fn gu_local_i32_fetch_add(p: *mut i32, v: i32, o: u32) -> i32;
        pub fn gu_local_u64_load(p: *mut u64, o: u32) -> u64;
        pub fn gu_local_u64_store(p: *mut u64, v: u64, o: u32);
        pub fn gu_local_u64_cas(p: *mut u64, expected: *mut u64, desired: u64, o: u32) -> u32;
        pub fn gu_local_u64_fetch_add(p: *mut u64, v: u64, o: u32) -> u64;
        pub fn gu_local_u64_fetch_or(p: *mut u64, v: u64, o: u32) -> u64;
        pub fn gu_local_u64_fetch_and(p: *mut u64, v: u64, o: u32) -> u64;
        pub fn gu_shared_u32_load(p: *mut u32, o: u32) -> u32;
        pub fn gu_shared_u32_store(p: *mut u32, v: u32, o: u32);
        pub fn gu_shared_u64_load(p: *mut u64, o: u32) -> u64;
        pub fn gu_shared_u64_store(p: *mut u64, v: u64, o: u32);
        pub fn gu_fence_device(o: u32);
        pub fn gu_fence_system(o: u32);
        pub fn gu_host_subgroup(v: u32, out: *mut u32);
        pub fn gu_host_backoff(pauses: u32) -> u32;
        pub fn gu_host_ticket_lane(local: *mut u32, shared: *mut u32, n: u32, lane: u32);
        pub fn gu_host_wait_flag(flag: *mut u32, budget: u32, polls_out: *mut u32) -> u32;
    }
}

/// Bytes of one format-probe record (`gu::programs::format_record_bytes`): kind, precision, value at 0..16,
/// the formatted length at 16, its bytes at 20.
pub const FORMAT_RECORD_BYTES: usize = 128;

/// Formats every record of `records` (a multiple of [`FORMAT_RECORD_BYTES`] long) with the C++ formatter,
/// exactly as the `gu_format_probe` kernel does on a GPU.
pub fn format_probe(records: &mut [u8]) {
    let count = (records.len() / FORMAT_RECORD_BYTES) as u32;
    // The C++ side reads and writes u32 words: work on a 4-byte-aligned copy.
    let mut words = vec![0u32; records.len() / 4];
    for (w, c) in words.iter_mut().zip(records.chunks_exact(4)) {
        *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    // SAFETY: `words` holds `count` whole records (4-byte aligned); the C++ side reads and writes only inside
    // them.
    unsafe { ffi::gu_host_format_probe(words.as_mut_ptr().cast(), count) };
    for (w, c) in words.iter().zip(records.chunks_exact_mut(4)) {
        c.copy_from_slice(&w.to_le_bytes());
    }
}

/// The built-in print program's line `seq` of lane `lane`, newline included, by `gu::format`.
pub fn print_line(lane: u32, seq: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    // SAFETY: `buf` has 256 writable bytes and the line is told its capacity is 256.
    let n = unsafe { ffi::gu_host_print_line(lane, seq, buf.as_mut_ptr(), 256) };
    buf.truncate(n as usize);
    buf
}

/// One line with every argument kind of `gu::format` (see host_target.cpp).
pub fn format_args_line() -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    // SAFETY: as in `print_line`.
    let n = unsafe { ffi::gu_host_format_args(buf.as_mut_ptr(), 256) };
    buf.truncate(n as usize);
    buf
}

/// `text` appended to a `gu::line` of `cap` bytes and finished: the bytes and the truncation flag.
pub fn line_str(text: &str, cap: u32) -> (Vec<u8>, bool) {
    let mut c = text.as_bytes().to_vec();
    c.retain(|&b| b != 0);
    c.push(0);
    let mut buf = vec![0u8; cap as usize];
    let mut truncated = 0u32;
    // SAFETY: `c` is NUL-terminated; `buf` has `cap` writable bytes; `truncated` is a valid u32.
    let n = unsafe { ffi::gu_host_line_str(c.as_ptr(), buf.as_mut_ptr(), cap, &mut truncated) };
    buf.truncate(n as usize);
    (buf, truncated != 0)
}

/// `gu::local_word<uint32_t>` over a Rust atomic (device-local: RMW allowed).
#[derive(Clone, Copy)]
pub struct LocalU32<'a>(pub &'a AtomicU32);
/// `gu::local_word<uint64_t>`.
#[derive(Clone, Copy)]
pub struct LocalU64<'a>(pub &'a AtomicU64);
/// `gu::shared_word<uint32_t>` (host-shared: loads and stores only).
#[derive(Clone, Copy)]
pub struct SharedU32<'a>(pub &'a AtomicU32);
/// `gu::shared_word<uint64_t>`.
#[derive(Clone, Copy)]
pub struct SharedU64<'a>(pub &'a AtomicU64);

// SAFETY (every method below): the pointer comes from a live `&AtomicU32`/`&AtomicU64`, so it is aligned and
// valid for the call; the C++ side accesses it only through `std::atomic_ref`, which may race with Rust's
// atomics on the same word.
impl LocalU32<'_> {
    /// `load(o)`
    pub fn load(self, o: Order) -> u32 {
        // SAFETY: see above.
        unsafe { ffi::gu_local_u32_load(self.0.as_ptr(), o as u32) }
    }
    /// `store(v, o)`
    pub fn store(self, v: u32, o: Order) {
        // SAFETY: see above.
        unsafe { ffi::gu_local_u32_store(self.0.as_ptr(), v, o as u32) }
    }
    /// `compare_exchange(expected, desired, o)`: `Ok(previous)` or `Err(found)`.
    pub fn compare_exchange(self, expected: u32, desired: u32, o: Order) -> Result<u32, u32> {
        let mut e = expected;
        // SAFETY: see above; `e` is a valid u32.
        let ok = unsafe { ffi::gu_local_u32_cas(self.0.as_ptr(), &mut e, desired, o as u32) };
        if ok != 0 {
            Ok(e)
        } else {
            Err(e)
        }
    }
    /// `fetch_add(v, o)`
    pub fn fetch_add(self, v: u32, o: Order) -> u32 {
        // SAFETY: see above.
        unsafe { ffi::gu_local_u32_fetch_add(self.0.as_ptr(), v, o as u32) }
    }
    /// `fetch_or(v, o)`
    pub fn fetch_or(self, v: u32, o: Order) -> u32 {
        // SAFETY: see above.
        unsafe { ffi::gu_local_u32_fetch_or(self.0.as_ptr(), v, o as u32) }
    }
    /// `fetch_and(v, o)`
    pub fn fetch_and(self, v: u32, o: Order) -> u32 {
        // SAFETY: see above.
        unsafe { ffi::gu_local_u32_fetch_and(self.0.as_ptr(), v, o as u32) }
    }
    /// `exchange(v, o)`
    pub fn exchange(self, v: u32, o: Order) -> u32 {
        // SAFETY: see above.
        unsafe { ffi::gu_local_u32_exchange(self.0.as_ptr(), v, o as u32) }
    }
    /// `gu::local_word<int32_t>::fetch_add` on the same word (two's complement, wrapping).
    pub fn fetch_add_i32(self, v: i32, o: Order) -> i32 {
        // SAFETY: see above; i32 and u32 have the same size and alignment.
        unsafe { ffi::gu_local_i32_fetch_add(self.0.as_ptr().cast(), v, o as u32) }
    }
}

impl LocalU64<'_> {
    /// `load(o)`
    pub fn load(self, o: Order) -> u64 {
        // SAFETY: see above.
        unsafe { ffi::gu_local_u64_load(self.0.as_ptr(), o as u32) }
    }
    /// `store(v, o)`
    pub fn store(self, v: u64, o: Order) {
        // SAFETY: see above.
        unsafe { ffi::gu_local_u64_store(self.0.as_ptr(), v, o as u32) }
    }
    /// `compare_exchange(expected, desired, o)`: `Ok(previous)` or `Err(found)`.
    pub fn compare_exchange(self, expected: u64, desired: u64, o: Order) -> Result<u64, u64> {
        let mut e = expected;
        // SAFETY: see above; `e` is a valid u64.
        let ok = unsafe { ffi::gu_local_u64_cas(self.0.as_ptr(), &mut e, desired, o as u32) };
        if ok != 0 {
            Ok(e)
        } else {
            Err(e)
        }
    }
    /// `fetch_add(v, o)`
    pub fn fetch_add(self, v: u64, o: Order) -> u64 {
        // SAFETY: see above.
        unsafe { ffi::gu_local_u64_fetch_add(self.0.as_ptr(), v, o as u32) }
    }
    /// `fetch_or(v, o)`
    pub fn fetch_or(self, v: u64, o: Order) -> u64 {
        // SAFETY: see above.
        unsafe { ffi::gu_local_u64_fetch_or(self.0.as_ptr(), v, o as u32) }
    }
    /// `fetch_and(v, o)`
    pub fn fetch_and(self, v: u64, o: Order) -> u64 {
        // SAFETY: see above.
        unsafe { ffi::gu_local_u64_fetch_and(self.0.as_ptr(), v, o as u32) }
    }
}

impl SharedU32<'_> {
    /// `load(o)`
    pub fn load(self, o: Order) -> u32 {
        // SAFETY: see above.
        unsafe { ffi::gu_shared_u32_load(self.0.as_ptr(), o as u32) }
    }
    /// `store(v, o)`
    pub fn store(self, v: u32, o: Order) {
        // SAFETY: see above.
        unsafe { ffi::gu_shared_u32_store(self.0.as_ptr(), v, o as u32) }
    }
}

impl SharedU64<'_> {
    /// `load(o)`
    pub fn load(self, o: Order) -> u64 {
        // SAFETY: see above.
        unsafe { ffi::gu_shared_u64_load(self.0.as_ptr(), o as u32) }
    }
    /// `store(v, o)`
    pub fn store(self, v: u64, o: Order) {
        // SAFETY: see above.
        unsafe { ffi::gu_shared_u64_store(self.0.as_ptr(), v, o as u32) }
    }
}

/// `gu::fence_device(o)`
pub fn fence_device(o: Order) {
    // SAFETY: a fence touches no memory of ours.
    unsafe { ffi::gu_fence_device(o as u32) }
}

/// `gu::fence_system(o)`
pub fn fence_system(o: Order) {
    // SAFETY: a fence touches no memory of ours.
    unsafe { ffi::gu_fence_system(o as u32) }
}

/// What `gu::subgroup::active()` reports on the host: size, mask, leader, elect, rank, ballot(true),
/// ballot(false), broadcast_first(v).
pub fn host_subgroup(v: u32) -> [u32; 8] {
    let mut out = [0u32; 8];
    // SAFETY: `out` has the 8 words the C++ side writes.
    unsafe { ffi::gu_host_subgroup(v, out.as_mut_ptr()) };
    out
}

/// `gu::backoff`'s step after `pauses` pauses.
pub fn backoff_step(pauses: u32) -> u32 {
    // SAFETY: no memory is passed.
    unsafe { ffi::gu_host_backoff(pauses) }
}

/// One lane of the ticket probe (`gu::programs::ticket_lane`): `local` is [ticket counter, finished count,
/// bitmap]; `shared` has `n` ticket words and then the `done` word.
pub fn ticket_lane(local: &[AtomicU32; 3], shared: &[AtomicU32], lane: u32) {
    let Some(first) = shared.first() else {
        return;
    };
    let n = (shared.len() - 1) as u32;
    // SAFETY: the C++ side touches local[0..3] and shared[0..=n] only (a ticket ≥ n is not stored), all through
    // std::atomic_ref, on words borrowed from live atomics.
    unsafe { ffi::gu_host_ticket_lane(local[0].as_ptr(), first.as_ptr(), n, lane) }
}

/// `gu::programs::wait_flag`: polls used (`budget + 1` when it gave up), also stored into `polls_out`.
pub fn wait_flag(flag: &AtomicU32, budget: u32, polls_out: &AtomicU32) -> u32 {
    // SAFETY: both pointers come from live atomics; the C++ side accesses them through std::atomic_ref.
    unsafe { ffi::gu_host_wait_flag(flag.as_ptr(), budget, polls_out.as_ptr()) }
}
