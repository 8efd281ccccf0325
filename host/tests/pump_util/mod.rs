//! Helpers shared by the pump tests.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// The byte at offset `i` of every pattern file.
pub fn pattern(i: u64) -> u8 {
    let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 56) as u8 ^ (i as u8)
}

/// A temporary file of `len` pattern bytes.
pub fn pattern_file(len: u64) -> std::fs::File {
    let mut f = tempfile::tempfile().unwrap();
    let bytes: Vec<u8> = (0..len).map(pattern).collect();
    f.write_all(&bytes).unwrap();
    f
}

/// `len` bytes of `f` at `off`.
pub fn read_at(f: &std::fs::File, off: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    f.read_exact_at(&mut v, off).unwrap();
    v
}

/// A generous deadline for one wait on a noisy 2-core machine.
pub fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// A pipe (read end, write end).
pub fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    use std::os::fd::FromRawFd;
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}
