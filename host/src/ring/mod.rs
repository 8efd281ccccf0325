//! Device rings: io_uring instances whose SQ/CQ rings, SQEs, host-shared control block, staging lines and fixed
//! buffers live in one page-aligned arena (`IORING_SETUP_NO_MMAP`) that a GPU API can import, with the
//! protocol's device-local block (every word lanes update with a read-modify-write) in a separate allocation
//! ([`LocalBlock`], the host copy; PROTOCOL.md §1, §2).
//!
//! How it works inside: [`Ring::new`] plans the arena ([`layout::ArenaPlan`]), maps it with `memmap2`,
//! creates the ring with SQPOLL over it (falling back from `NO_SQARRAY` to an identity SQ array), registers
//! fixed files (plus one empty slot for the print target) and the staging/fixed regions as fixed buffers,
//! confines the ring with `IORING_REGISTER_RESTRICTIONS` before enabling it (unless the caller chose
//! [`DeviceAccess::DangerouslyUnconfined`]), initialises both control blocks, and starts the [`waker`]. Devices
//! get a [`RingLayout`] (by value) and a [`RingView`] (CPU devices) or the arena's address (GPU APIs import
//! it) and the local block (GPU APIs copy it in before a run and out after it). Dropping the ring waits (bounded) until the kernel took every published SQE, stops the waker, closes
//! the ring and only then unmaps the arena. This layer knows the arena's regions but not what lanes do in them:
//! credits, prints, reaping and quiescing are the protocol's ([`crate::protocol::DeviceRing`]).
//!
//! Every arena word the device can write is untrusted here: the host reads such words only to count, report
//! or bound its own waits, never to index, assert or unwrap (the lints below keep it so).
#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

mod arena;
pub mod bus;
mod detached;
pub mod error;
pub mod layout;
mod local;
pub(crate) mod sys;
pub mod view;
pub mod waker;
pub(crate) mod words;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use arena::ArenaKeepAlive;
use arena::Inner;
pub use detached::DetachedRing;
pub use error::RingError;
pub use layout::{Cqe, RingLayout, Sqe};
pub use local::LocalBlock;
pub use view::RingView;
pub use waker::{WakerConfig, WakerStats};

use crate::abi::{CompletionSlot, LOCAL_CONTROL_BYTES, MAX_LINE, SHARED_CONTROL_BYTES};
use crate::local_off;
use layout::{round_up, ArenaPlan};

/// What device code on a ring may make the kernel do: the ring is a privilege boundary between device code and
/// the host process (PROTOCOL.md, "Trust model"). Confined is the default.
#[derive(Debug, Clone)]
pub enum DeviceAccess {
    /// Restrictions registered before the ring is enabled (`IORING_REGISTER_RESTRICTIONS`): only the allowed
    /// opcodes, only on registered files (`IOSQE_FIXED_FILE` required), fixed-buffer opcodes only inside
    /// registered buffers, and only `IORING_REGISTER_FILES_UPDATE` (the print target) and the completion eventfd
    /// (`IORING_(UN)REGISTER_EVENTFD`) among later registrations. Device code can then touch nothing but the ring's own files and buffers.
    Confined(Confinement),
    /// No restrictions. Device code can make the kernel do anything this process may: open any file (as
    /// root, `/etc/shadow`), read or write any descriptor, read into any host address, post completions into
    /// other io_uring instances (`MSG_RING`). Choose it only for device code trusted as much as the process
    /// itself, e.g. to measure what confinement costs.
    DangerouslyUnconfined,
}

impl Default for DeviceAccess {
    fn default() -> Self {
        DeviceAccess::Confined(Confinement::default())
    }
}

impl DeviceAccess {
    /// Whether restrictions are registered.
    pub fn is_confined(&self) -> bool {
        matches!(self, DeviceAccess::Confined(_))
    }

    /// `"confined"` or `"UNCONFINED"`, for summaries.
    pub fn name(&self) -> &'static str {
        match self {
            DeviceAccess::Confined(_) => "confined",
            DeviceAccess::DangerouslyUnconfined => "UNCONFINED",
        }
    }
}

/// The opcodes a confined ring accepts (PROTOCOL.md, "Trust model").
#[derive(Debug, Clone)]
pub struct Confinement {
    /// Allowed opcodes (the `io-uring` crate's `opcode::X::CODE`).
    pub allowed_ops: Vec<u8>,
}

impl Default for Confinement {
    /// NOP, READ_FIXED, WRITE_FIXED: what the device library needs for prints, writes and reads through
    /// registered buffers, and the protocol's own NOPs.
    fn default() -> Self {
        use io_uring::opcode;
        Confinement {
            allowed_ops: vec![
                opcode::Nop::CODE,
                opcode::ReadFixed::CODE,
                opcode::WriteFixed::CODE,
            ],
        }
    }
}

/// How to build a [`Ring`] (and a [`crate::protocol::DeviceRing`]).
#[derive(Debug, Clone)]
pub struct RingConfig {
    /// SQ entries: a power of two, 1..=32768.
    pub sq_entries: u32,
    /// CQ entries: a power of two ≥ `sq_entries` and ≥ 4, at most 65536; default `2 * sq_entries`.
    pub cq_entries: Option<u32>,
    /// How long the SQPOLL thread spins without work before it sleeps.
    pub sq_thread_idle: Duration,
    /// Pin the SQPOLL thread to this CPU.
    pub sq_thread_cpu: Option<u32>,
    /// Share the SQPOLL thread of this ring (`IORING_SETUP_ATTACH_WQ`).
    pub attach_to: Option<RawFd>,
    /// Use `IORING_SETUP_NO_SQARRAY` when the kernel offers it (default true).
    pub no_sqarray: bool,
    /// Lanes the arena is sized for (staging lines and completion slots).
    pub lanes: u32,
    /// Completion slots per lane (≥ 1; slot 0 is the lane's print slot).
    pub slots_per_lane: u32,
    /// Staging lines per lane.
    pub staging_lines: u32,
    /// Bytes per staging line (≤ 4096, a multiple of 8).
    pub line_bytes: u32,
    /// Size of the user fixed-buffer region in bytes (0 for none).
    pub fixed_buffer_bytes: usize,
    /// Size of the print log (PROTOCOL.md §7: group-commit prints) in bytes: a power of two in
    /// 4096..=2^30 and at least `2 * line_bytes`, or 0 for none (every print is then one write of its line).
    pub print_log_bytes: u32,
    /// Files to register as fixed files, in index order. One more fixed-file slot, index
    /// `fixed_files.len()`, is reserved for the print target ([`Ring::register_print_file`]).
    pub fixed_files: Vec<RawFd>,
    /// What device code may do through the ring (default: confined).
    pub access: DeviceAccess,
    /// Use this arena size instead of the computed one (must be large enough).
    pub arena_bytes: Option<usize>,
    /// Create the ring without SQPOLL (only for experiments that submit from the host).
    pub sqpoll: bool,
    /// The waker's behaviour.
    pub waker: WakerConfig,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            sq_entries: 256,
            cq_entries: None,
            sq_thread_idle: Duration::from_millis(50),
            sq_thread_cpu: None,
            attach_to: None,
            no_sqarray: true,
            lanes: 64,
            slots_per_lane: 2,
            staging_lines: 4,
            line_bytes: 256,
            fixed_buffer_bytes: 0,
            print_log_bytes: 1 << 16,
            fixed_files: Vec::new(),
            access: DeviceAccess::default(),
            arena_bytes: None,
            sqpoll: true,
            waker: WakerConfig::default(),
        }
    }
}

/// CQ entries kept free for failure CQEs of skip-success operations (PROTOCOL.md §4).
pub fn skip_headroom(cq_entries: u32) -> u32 {
    (cq_entries / 8).clamp(1, 32)
}

fn pow2(name: &'static str, value: u64, min: u64, max: u64) -> Result<(), RingError> {
    if value.is_power_of_two() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(RingError::NotPowerOfTwo {
            name,
            value,
            min,
            max,
        })
    }
}

impl RingConfig {
    /// Bytes of the staging lines, rounded up to 64 (the print log starts there, inside the staging region).
    fn staging_lines_bytes(&self) -> u64 {
        (self.lanes as u64 * self.staging_lines as u64 * self.line_bytes as u64).div_ceil(64) * 64
    }

    fn cq(&self) -> u32 {
        self.cq_entries
            .unwrap_or(self.sq_entries.saturating_mul(2).max(4))
    }

    /// Checks every size; the errors say which value is wrong and what is allowed.
    pub fn validate(&self) -> Result<ArenaPlan, RingError> {
        pow2("sq_entries", self.sq_entries as u64, 1, 32768)?;
        let cq = self.cq();
        pow2(
            "cq_entries",
            cq as u64,
            (self.sq_entries as u64).max(4),
            65536,
        )?;
        if self.lanes == 0 || self.slots_per_lane == 0 || self.staging_lines == 0 {
            return Err(RingError::InvalidConfig(
                "lanes, slots_per_lane and staging_lines must be at least 1".into(),
            ));
        }
        if self.lanes > 65535 || self.staging_lines > 65534 {
            return Err(RingError::InvalidConfig(
                "at most 65535 lanes and 65534 staging lines per lane (user_data encoding)".into(),
            ));
        }
        if self.line_bytes == 0 || self.line_bytes > MAX_LINE || self.line_bytes % 8 != 0 {
            return Err(RingError::InvalidConfig(format!(
                "line_bytes must be a multiple of 8 in 8..={MAX_LINE} (PIPE_BUF), got {}",
                self.line_bytes
            )));
        }
        if self.fixed_buffer_bytes > (1 << 30) {
            return Err(RingError::InvalidConfig(format!(
                "fixed_buffer_bytes must be at most 1 GiB (the kernel's limit per registered buffer), got {}",
                self.fixed_buffer_bytes
            )));
        }
        let idle_ms = self.sq_thread_idle.as_millis();
        if idle_ms == 0 || idle_ms > u32::MAX as u128 {
            return Err(RingError::InvalidConfig(
                "sq_thread_idle must be at least 1 ms".into(),
            ));
        }
        let nslots = self.lanes as u64 * self.slots_per_lane as u64;
        let local = LOCAL_CONTROL_BYTES as u64
            + nslots * std::mem::size_of::<CompletionSlot>() as u64
            + self.lanes as u64 * (self.staging_lines as u64 + 1) * 4;
        if self.print_log_bytes != 0
            && (!self.print_log_bytes.is_power_of_two()
                || !(4096..=1 << 30).contains(&self.print_log_bytes)
                || self.print_log_bytes < 2 * self.line_bytes)
        {
            return Err(RingError::InvalidConfig(format!(
                "print_log_bytes must be 0 or a power of two in 4096..=2^30 and at least 2 * line_bytes, got {}",
                self.print_log_bytes
            )));
        }
        // The print log follows the staging lines inside the staging region (one registered buffer).
        let staging = self.staging_lines_bytes() + self.print_log_bytes as u64;
        if local > u32::MAX as u64 / 2
            || SHARED_CONTROL_BYTES as u64 + staging + self.fixed_buffer_bytes as u64
                > u32::MAX as u64 / 2
        {
            return Err(RingError::InvalidConfig(
                "arena or device-local block would exceed 2 GiB (device offsets are 32-bit)".into(),
            ));
        }
        let plan = ArenaPlan::new(
            self.sq_entries,
            cq,
            SHARED_CONTROL_BYTES,
            staging as usize,
            self.fixed_buffer_bytes,
        );
        if let Some(given) = self.arena_bytes {
            if given < plan.total {
                return Err(RingError::ArenaTooSmall {
                    given,
                    needed: plan.total,
                });
            }
            if given % layout::page_size() != 0 {
                return Err(RingError::InvalidConfig(format!(
                    "arena_bytes must be a multiple of the page size ({}), got {given}",
                    layout::page_size()
                )));
            }
        }
        Ok(plan)
    }
}

/// An io_uring instance in a device-visible arena, with its waker. This layer knows the kernel ring and the
/// arena's regions; what lanes do in them (credits, prints, reaping, quiescing) is the protocol's
/// ([`crate::protocol::DeviceRing`] wraps a `Ring`).
pub struct Ring {
    waker: Option<waker::Waker>,
    inner: Arc<Inner>,
    fixed_files: Vec<RawFd>,
    access: DeviceAccess,
    features: u32,
    setup_flags: u32,
    /// Protocol violations the host detected in device-written words (host memory: the device cannot rewrite
    /// this count).
    host_violations: AtomicU64,
}

/// The kernel ring's parameters after `io_uring_setup`.
struct KernelRing {
    fd: OwnedFd,
    params: sys::Params,
}

impl Ring {
    /// Creates a ring: plan and map the arena, set up the kernel ring over it, lay out the descriptor,
    /// register files and buffers, confine, enable, start the waker.
    pub fn new(cfg: RingConfig) -> Result<Ring, RingError> {
        let plan = cfg.validate()?;
        let mut arena = map_arena(cfg.arena_bytes.unwrap_or(plan.total))?;
        let kring = setup_kernel_ring(&cfg, &plan, arena.as_mut_ptr())?;
        let lay = describe(&cfg, &plan, &kring.params, &arena)?;
        let local = LocalBlock::new(lay.local_size())?;
        let inner = Arc::new(Inner {
            fd: kring.fd,
            arena,
            local,
            layout: lay,
        });
        init_control(&inner.view(), &cfg);
        let raw = inner.fd.as_fd();
        register_files(raw, &cfg.fixed_files)?;
        register_buffers(raw, &inner, &plan, cfg.fixed_buffer_bytes)?;
        if let DeviceAccess::Confined(conf) = &cfg.access {
            confine(raw, conf)?;
        }
        if kring.params.flags.bits() & sys::SETUP_R_DISABLED != 0 {
            // SAFETY: ENABLE_RINGS takes no argument.
            unsafe {
                sys::register(
                    raw,
                    sys::RegisterOp::RegisterEnableRings,
                    std::ptr::null(),
                    0,
                )
            }
            .map_err(|source| RingError::Register {
                op: "IORING_REGISTER_ENABLE_RINGS",
                source,
            })?;
        }
        let waker = if cfg.sqpoll {
            Some(
                waker::Waker::start(inner.clone(), cfg.waker.clone()).map_err(|source| {
                    RingError::Io {
                        context: "spawning the waker thread",
                        source,
                    }
                })?,
            )
        } else {
            None
        };
        Ok(Ring {
            waker,
            inner,
            fixed_files: cfg.fixed_files,
            access: cfg.access,
            features: kring.params.features.bits(),
            setup_flags: kring.params.flags.bits(),
            host_violations: AtomicU64::new(0),
        })
    }

    /// The layout descriptor to hand to a device.
    pub fn layout(&self) -> RingLayout {
        self.inner.layout
    }

    /// The device's view of the arena.
    pub fn view(&self) -> RingView<'_> {
        self.inner.view()
    }

    /// The arena's base address (page-aligned) and length, for importing into a GPU API.
    pub fn arena(&self) -> (*mut u8, usize) {
        (self.inner.arena.as_ptr() as *mut u8, self.inner.arena.len())
    }

    /// The host copy of the device-local block (PROTOCOL.md §2): the CPU reference device runs on it; a GPU
    /// backend copies it into its device-local buffer before a run and back after it. The host itself touches
    /// it only outside runs.
    pub fn local_block(&self) -> &LocalBlock {
        &self.inner.local
    }

    /// A handle that keeps the arena mapped for as long as it lives (see [`ArenaKeepAlive`]).
    pub fn arena_keepalive(&self) -> ArenaKeepAlive {
        ArenaKeepAlive(self.inner.clone())
    }

    /// The ring's file descriptor.
    pub fn fd(&self) -> RawFd {
        self.inner.fd.as_raw_fd()
    }

    /// `io_uring_params.features` reported by the kernel.
    pub fn features(&self) -> u32 {
        self.features
    }

    /// The setup flags the ring was created with.
    pub fn setup_flags(&self) -> u32 {
        self.setup_flags
    }

    /// What device code may do through this ring.
    pub fn access(&self) -> &DeviceAccess {
        &self.access
    }

    /// For a ring created without SQPOLL (`RingConfig::sqpoll = false`), where nothing executes the SQEs lanes
    /// publish until the host submits them: `io_uring_enter(2)` submitting `to_submit` of them and, with
    /// `wait_for > 0`, waiting until that many completions are in the CQ (`IORING_ENTER_GETEVENTS`). Returns
    /// how many SQEs the kernel consumed. On an SQPOLL ring the SQ thread owns submission: use the waker
    /// instead.
    pub fn submit_and_wait(&self, to_submit: u32, wait_for: u32) -> std::io::Result<u32> {
        let flags = if wait_for > 0 {
            sys::ENTER_GETEVENTS
        } else {
            0
        };
        sys::enter(self.inner.fd.as_fd(), to_submit, wait_for, flags)
    }

    /// A duplicate of the ring's file descriptor (the same ring), for code that must reach the ring after the
    /// [`Ring`] it got it from is out of reach (the CPU device's launches register their completion eventfd
    /// through it, [`sys::register_eventfd`]).
    pub fn clone_fd(&self) -> std::io::Result<OwnedFd> {
        self.inner.fd.try_clone()
    }

    /// Whether the ring uses `IORING_SETUP_NO_SQARRAY`.
    pub fn no_sqarray(&self) -> bool {
        self.inner.layout.ring_flags & layout::RING_FLAG_NO_SQARRAY != 0
    }

    /// The waker's counters (zero for a ring without SQPOLL).
    pub fn waker_stats(&self) -> WakerStats {
        self.waker.as_ref().map(|w| w.stats()).unwrap_or_default()
    }

    /// The registered fixed files (the reserved print slot, index `fixed_files().len()`, is not listed).
    pub fn fixed_files(&self) -> &[RawFd] {
        &self.fixed_files
    }

    /// The fixed-file index reserved for the print target.
    pub fn print_slot(&self) -> u32 {
        self.fixed_files.len() as u32
    }

    /// Puts `fd` into the reserved print slot (`IORING_REGISTER_FILES_UPDATE`, the one file registration a
    /// confined ring still accepts); the ring holds its own reference. Returns the slot's fixed-file index.
    pub fn register_print_file(&self, fd: RawFd) -> Result<u32, RingError> {
        let slot = self.print_slot();
        let mut update = sys::FilesUpdate::default();
        update.offset = slot;
        update.fds = rustix::io_uring::io_uring_ptr::new((&fd as *const RawFd).cast_mut().cast());
        // SAFETY: `update` is a valid `io_uring_files_update` whose `fds` points to one live i32 for the duration
        // of the call (the kernel only reads it).
        unsafe {
            sys::register(
                self.inner.fd.as_fd(),
                sys::RegisterOp::RegisterFilesUpdate,
                (&update as *const sys::FilesUpdate).cast(),
                1,
            )
        }
        .map_err(|source| RingError::Register {
            op: "IORING_REGISTER_FILES_UPDATE (print target)",
            source,
        })?;
        Ok(slot)
    }

    /// Counts a protocol violation the host found in device-written words.
    pub fn record_violation(&self) {
        self.host_violations.fetch_add(1, Ordering::Relaxed);
    }

    /// Protocol violations the host found so far (kept in host memory).
    pub fn host_violations(&self) -> u64 {
        self.host_violations.load(Ordering::Relaxed)
    }

    /// Waits, bounded, until the kernel has consumed every SQE published so far (SQ head = tail). Reads only the
    /// kernel's ring words; never panics on device-written values.
    pub fn wait_sq_consumed(&self, timeout: Duration) -> bool {
        let view = self.view();
        let l = self.inner.layout;
        let start = Instant::now();
        loop {
            let head = view.u32_at(l.sq_head).load(Ordering::Acquire);
            let tail = view.u32_at(l.sq_tail).load(Ordering::Acquire);
            if head == tail {
                return true;
            }
            if start.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Let the kernel take what was published (the waker keeps a sleeping SQ thread awake meanwhile), then
        // stop the waker. The waker also stops itself when dropped, so even an unwinding drop joins its
        // thread; `inner` (ring fd first, then the arena) drops after this.
        let _ = self.wait_sq_consumed(Duration::from_secs(1));
        if let Some(w) = self.waker.take() {
            w.stop();
        }
    }
}

fn map_arena(total: usize) -> Result<memmap2::MmapMut, RingError> {
    let arena = memmap2::MmapOptions::new()
        .len(total)
        .populate()
        .map_anon()
        .map_err(|source| RingError::Io {
            context: "mapping the arena",
            source,
        })?;
    // Pinned pages must not become copy-on-write in a forked child.
    let _ = arena.advise(memmap2::Advice::DontFork);
    Ok(arena)
}

/// `io_uring_setup` over the planned arena (SQPOLL, NO_MMAP, NO_SQARRAY with the SQ-array fallback).
fn setup_kernel_ring(
    cfg: &RingConfig,
    plan: &ArenaPlan,
    base: *mut u8,
) -> Result<KernelRing, RingError> {
    let cq = cfg.cq();
    let mut flags = sys::SETUP_NO_MMAP | sys::SETUP_CQSIZE;
    if cfg.sqpoll {
        flags |= sys::SETUP_SQPOLL;
        if cfg.sq_thread_cpu.is_some() {
            flags |= sys::SETUP_SQ_AFF;
        }
        if cfg.attach_to.is_some() {
            flags |= sys::SETUP_ATTACH_WQ;
        }
    }
    if cfg.access.is_confined() {
        // Restrictions can only be registered while the ring is disabled.
        flags |= sys::SETUP_R_DISABLED;
    }
    let release = error::kernel_release();
    let try_setup = |flags: u32| {
        let mut p = sys::params(
            flags,
            cq,
            cfg.sq_thread_cpu.unwrap_or(0),
            cfg.sq_thread_idle.as_millis() as u32,
            cfg.attach_to.unwrap_or(0),
            base.wrapping_add(plan.sqes),
            base.wrapping_add(plan.rings),
        );
        sys::setup(cfg.sq_entries, &mut p).map(|fd| KernelRing { fd, params: p })
    };
    let attempt = if cfg.no_sqarray {
        match try_setup(flags | sys::SETUP_NO_SQARRAY) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => try_setup(flags),
            r => r,
        }
    } else {
        try_setup(flags)
    };
    let kring =
        attempt.map_err(|e| error::classify_setup_error(e, flags, cfg.sq_entries, &release))?;
    let params = &kring.params;
    if params.sq_entries != cfg.sq_entries || params.cq_entries != cq {
        return Err(RingError::InvalidConfig(format!(
            "kernel changed ring sizes to {}/{} (asked {}/{})",
            params.sq_entries, params.cq_entries, cfg.sq_entries, cq
        )));
    }
    // The kernel's offsets must fall inside the rings region we planned.
    let cq_end = params.cq_off.cqes as usize + cq as usize * 16;
    let arr_end = if params.flags.bits() & sys::SETUP_NO_SQARRAY != 0 {
        0
    } else {
        params.sq_off.array as usize + cfg.sq_entries as usize * 4
    };
    if cq_end.max(arr_end) > plan.rings_len {
        return Err(RingError::InvalidConfig(format!(
            "kernel ring layout needs {} bytes, planned {}",
            cq_end.max(arr_end),
            plan.rings_len
        )));
    }
    Ok(kring)
}

/// The layout descriptor devices get (PROTOCOL.md §8).
fn describe(
    cfg: &RingConfig,
    plan: &ArenaPlan,
    params: &sys::Params,
    arena: &memmap2::MmapMut,
) -> Result<RingLayout, RingError> {
    let cq = cfg.cq();
    let no_sqarray = params.flags.bits() & sys::SETUP_NO_SQARRAY != 0;
    let w_sq = cfg.sq_entries.min(32);
    let w_cq = (cq / 4).min(32);
    let credit_pool = cq - w_cq - skip_headroom(cq);
    let nslots = cfg.lanes * cfg.slots_per_lane;
    let ring_off = plan.rings as u32;
    let mut ring_flags = 0;
    if no_sqarray {
        ring_flags |= layout::RING_FLAG_NO_SQARRAY;
    }
    if cfg.access.is_confined() {
        ring_flags |= layout::RING_FLAG_CONFINED;
    }
    if cfg.sqpoll {
        ring_flags |= layout::RING_FLAG_SQPOLL;
    }
    Ok(RingLayout {
        arena_host_base: arena.as_ptr() as u64,
        arena_size: arena.len() as u64,
        sq_head: ring_off + params.sq_off.head,
        sq_tail: ring_off + params.sq_off.tail,
        sq_flags: ring_off + params.sq_off.flags,
        sq_mask: cfg.sq_entries - 1,
        sq_entries: cfg.sq_entries,
        sq_array: if no_sqarray {
            0
        } else {
            ring_off + params.sq_off.array
        },
        cq_head: ring_off + params.cq_off.head,
        cq_tail: ring_off + params.cq_off.tail,
        cq_mask: cq - 1,
        cq_entries: cq,
        cqes: ring_off + params.cq_off.cqes,
        sqes: plan.sqes as u32,
        control: plan.control as u32,
        slots: LOCAL_CONTROL_BYTES as u32,
        slots_per_lane: cfg.slots_per_lane,
        lanes: cfg.lanes,
        staging: plan.staging as u32,
        staging_lines: cfg.staging_lines,
        line_bytes: cfg.line_bytes,
        staging_buf_index: 0,
        fixed: if cfg.fixed_buffer_bytes > 0 {
            plan.fixed as u32
        } else {
            0
        },
        fixed_size: cfg.fixed_buffer_bytes as u32,
        fixed_buf_index: 1,
        w_sq,
        w_cq,
        credit_pool,
        ring_flags,
        lane_words: (LOCAL_CONTROL_BYTES + nslots as usize * std::mem::size_of::<CompletionSlot>())
            as u32,
    })
}

/// The identity SQ array (without NO_SQARRAY), the credit pool and its mirror; everything else in both control
/// blocks starts at zero (fresh anonymous memory).
fn init_control(view: &RingView<'_>, cfg: &RingConfig) {
    let sq_entries = cfg.sq_entries;
    let lay = *view.layout();
    if cfg.print_log_bytes > 0 {
        view.shared32(crate::shared_off!(print_log)).store(
            lay.staging + cfg.staging_lines_bytes() as u32,
            Ordering::Relaxed,
        );
        view.shared32(crate::shared_off!(print_log_bytes))
            .store(cfg.print_log_bytes, Ordering::Release);
    }
    if lay.ring_flags & layout::RING_FLAG_NO_SQARRAY == 0 {
        for i in 0..sq_entries {
            view.u32_at(lay.sq_array + i * 4)
                .store(i, Ordering::Relaxed);
        }
    }
    view.local32(local_off!(cq_credits))
        .store(lay.credit_pool, Ordering::Release);
    for mirror in [
        crate::shared_off!(credits_free),
        crate::shared_off!(sq_credits_free),
    ] {
        view.shared32(mirror)
            .store(lay.credit_pool, Ordering::Release);
    }
}

/// The caller's files, then the reserved print slot (-1: empty until `set_print_target`).
fn register_files(raw: BorrowedFd<'_>, files: &[RawFd]) -> Result<(), RingError> {
    let mut table = files.to_vec();
    table.push(-1);
    // SAFETY: `table` is a live slice of `len` i32 fds (-1 = an empty slot) for the duration of the call.
    unsafe {
        sys::register(
            raw,
            sys::RegisterOp::RegisterFiles,
            table.as_ptr().cast(),
            table.len() as u32,
        )
    }
    .map_err(|source| RingError::Register {
        op: "IORING_REGISTER_FILES",
        source,
    })?;
    Ok(())
}

/// The staging lines (buffer 0) and the fixed region (buffer 1).
fn register_buffers(
    raw: BorrowedFd<'_>,
    inner: &Inner,
    plan: &ArenaPlan,
    fixed_buffer_bytes: usize,
) -> Result<(), RingError> {
    let view = inner.view();
    let lay = inner.layout;
    let mut iovs = vec![libc::iovec {
        iov_base: view.host_addr(lay.staging) as *mut libc::c_void,
        iov_len: plan.staging_len,
    }];
    if fixed_buffer_bytes > 0 {
        iovs.push(libc::iovec {
            iov_base: view.host_addr(lay.fixed) as *mut libc::c_void,
            iov_len: round_up(fixed_buffer_bytes, layout::page_size()),
        });
    }
    let pinned: usize = iovs.iter().map(|v| v.iov_len).sum();
    // SAFETY: `iovs` is a live array of iovecs describing arena memory that outlives the ring (the ring fd is
    // dropped before the arena, see `Inner`).
    unsafe {
        sys::register(
            raw,
            sys::RegisterOp::RegisterBuffers,
            iovs.as_ptr().cast(),
            iovs.len() as u32,
        )
    }
    .map_err(|source| {
        if source.raw_os_error() == Some(libc::ENOMEM) {
            RingError::MemlockLimit {
                what: "registering the staging and fixed buffers",
                bytes: pinned,
                limit: error::memlock_limit_text(),
                needed_kib: (pinned + inner.arena.len()).div_ceil(1024) + 64,
            }
        } else {
            RingError::Register {
                op: "IORING_REGISTER_BUFFERS",
                source,
            }
        }
    })?;
    Ok(())
}

/// `IORING_REGISTER_RESTRICTIONS` (the ring is still disabled): the allowed opcodes, registered files
/// required, the SQE flags the library uses, and `FILES_UPDATE` and the completion eventfd
/// (`REGISTER_EVENTFD`, `UNREGISTER_EVENTFD`) as the only later registrations.
fn confine(raw: BorrowedFd<'_>, conf: &Confinement) -> Result<(), RingError> {
    use io_uring::register::Restriction;
    use io_uring::squeue::Flags;
    let mut res: Vec<Restriction> = conf
        .allowed_ops
        .iter()
        .map(|&op| Restriction::sqe_op(op))
        .collect();
    res.push(Restriction::sqe_flags_required(Flags::FIXED_FILE.bits()));
    res.push(Restriction::sqe_flags_allowed(
        (Flags::FIXED_FILE | Flags::SKIP_SUCCESS | Flags::IO_DRAIN | Flags::IO_LINK).bits(),
    ));
    res.push(Restriction::register_op(
        sys::RegisterOp::RegisterFilesUpdate as u8,
    ));
    // The host's completion eventfd (the CPU reference device's lanes block on it): it lets the kernel signal
    // a descriptor, nothing more.
    res.push(Restriction::register_op(
        sys::RegisterOp::RegisterEventfd as u8,
    ));
    res.push(Restriction::register_op(
        sys::RegisterOp::UnregisterEventfd as u8,
    ));
    // SAFETY: `Restriction` is the crate's `#[repr(C)]` wrapper of `struct io_uring_restriction`; the vector is
    // live for the call.
    unsafe {
        sys::register(
            raw,
            sys::RegisterOp::RegisterRestrictions,
            res.as_ptr().cast(),
            res.len() as u32,
        )
    }
    .map_err(|source| RingError::Register {
        op: "IORING_REGISTER_RESTRICTIONS",
        source,
    })?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_name_the_value() {
        let e = RingConfig {
            sq_entries: 100,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            matches!(
                e,
                RingError::NotPowerOfTwo {
                    name: "sq_entries",
                    value: 100,
                    ..
                }
            ),
            "{e}"
        );
        let e = RingConfig {
            cq_entries: Some(48),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            matches!(
                e,
                RingError::NotPowerOfTwo {
                    name: "cq_entries",
                    ..
                }
            ),
            "{e}"
        );
        let e = RingConfig {
            arena_bytes: Some(4096),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            matches!(e, RingError::ArenaTooSmall { given: 4096, .. }),
            "{e}"
        );
        let e = RingConfig {
            line_bytes: 5000,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("PIPE_BUF"), "{e}");
    }
}
