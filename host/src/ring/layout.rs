//! Where each region of a ring's arena lives ([`ArenaPlan`]). The [`RingLayout`] descriptor handed to every
//! device and the kernel's SQE/CQE layouts are defined in [`crate::abi`] and re-exported here.

pub use crate::abi::ring::{
    RingLayout, RING_FLAG_CONFINED, RING_FLAG_NO_SQARRAY, RING_FLAG_SQPOLL,
};
pub use crate::abi::uring::{Cqe, Sqe};

/// Where each region of the arena lives. All offsets page-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaPlan {
    /// Rings region (SQ/CQ headers + CQEs + optional SQ array).
    pub rings: usize,
    /// Bytes of the rings region.
    pub rings_len: usize,
    /// The SQE array.
    pub sqes: usize,
    /// Bytes of the SQE array.
    pub sqes_len: usize,
    /// The host-shared control block (`SharedControl`).
    pub control: usize,
    /// Bytes of the control block, page-rounded.
    pub control_len: usize,
    /// The staging lines and the print log (registered as one fixed buffer).
    pub staging: usize,
    /// Bytes of the staging region.
    pub staging_len: usize,
    /// The fixed buffers device code reads and writes through.
    pub fixed: usize,
    /// Bytes of the fixed buffers.
    pub fixed_len: usize,
    /// Total bytes.
    pub total: usize,
}

/// The page size (4096 on every machine this targets; read at run time).
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

pub(crate) fn round_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

/// Upper bound for the kernel's ring header before the CQE array (`struct io_rings` is under 200 bytes).
const RING_HEADER_BOUND: usize = 1024;

impl ArenaPlan {
    /// Plans an arena. `control_bytes` is the host-shared control block.
    pub fn new(
        sq_entries: u32,
        cq_entries: u32,
        control_bytes: usize,
        staging_bytes: usize,
        fixed_bytes: usize,
    ) -> ArenaPlan {
        let page = page_size();
        let rings_len = round_up(
            RING_HEADER_BOUND + cq_entries as usize * 16 + 64 + sq_entries as usize * 4,
            page,
        );
        let sqes_len = round_up(sq_entries as usize * 64, page);
        let control_len = round_up(control_bytes, page);
        let staging_len = round_up(staging_bytes.max(1), page);
        let fixed_len = round_up(fixed_bytes, page);
        let rings = 0;
        let sqes = rings + rings_len;
        let control = sqes + sqes_len;
        let staging = control + control_len;
        let fixed = staging + staging_len;
        ArenaPlan {
            rings,
            rings_len,
            sqes,
            sqes_len,
            control,
            control_len,
            staging,
            staging_len,
            fixed,
            fixed_len,
            total: fixed + fixed_len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_page_aligned() {
        let p = ArenaPlan::new(256, 512, 5000, 64 * 4 * 256, 1 << 20);
        let page = page_size();
        for off in [p.rings, p.sqes, p.control, p.staging, p.fixed, p.total] {
            assert_eq!(off % page, 0);
        }
        assert!(p.rings_len >= 1024 + 512 * 16);
        assert_eq!(p.fixed_len, 1 << 20);
    }
}
