//! Random SQEs into a confined device ring, through the lane API only (`try_reserve`/`reserve` + `commit`,
//! `submit`, `poll`/`wait`, `reap`, `flush`), from several lanes (threads) at once and in every completion mode.
//!
//! Most SQEs use an allowed opcode (NOP, READ_FIXED, WRITE_FIXED) with near-valid fields: fixed-file and buffer
//! indices off by one, address ranges straddling the ends of the staging and fixed buffers or pointing at
//! canaries, lengths 0/1/huge, file offsets near the `u32`/`u64`/`i64` limits, and random
//! link/hardlink/drain/async/buffer-select flags. The rest carry arbitrary opcodes (0..=62 and beyond:
//! OPENAT, MSG_RING, URING_CMD, …), raw fd numbers and random fields. Note that on a confined ring every SQE
//! committed through the lane API carries `IOSQE_FIXED_FILE` (the ring requires it), so a raw fd number in
//! `fd` is looked up as a fixed-file index.
//!
//! What must hold at the end, whatever the kernel answered:
//! - no forbidden opcode ever completed with `res >= 0`, and no read/write reported more bytes than asked;
//! - canaries intact: a heap buffer (its address used in SQEs), the arena pages the protocol never writes
//!   (padding after the kernel's rings, the SQE array and the per-lane words, plus two extra pages at the end
//!   of the arena; all filled with a pattern and used as SQE addresses), a read-only registered file and an
//!   unregistered file (its fd number used in SQEs);
//! - the process holds as many fds as before; every lane finished its waits and its flush within budget; the
//!   host lane's flush succeeds, `DeviceRing::quiesce` succeeds and `cq_credits == credit_pool`; no foreign CQE
//!   and no protocol violation was counted.
//!
//! At the end an opcode × result histogram is printed (a completion slot's result as `ok`/`short`/errno name;
//! fire-and-forget and skip-success operations as `ff`/`skip`, their failures show up in the control counters;
//! library refusals as the `LaneError` variant).
//!
//! The normal test runs 10⁵ SQEs with 4 lanes (seconds in a debug build). The 10⁶ run, 8 lanes (seconds in
//! release):
//!
//! ```text
//! cargo test -p gpu-uring --release --test ring_fuzz -- --ignored --nocapture
//! ```
//!
//! `RING_FUZZ_SEED=<n or 0xhex>` replays a seed (each lane's SQE stream is a function of the seed; the
//! interleaving of lanes is not), `RING_FUZZ_SQES=<n>` changes the count of either test.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use gpu_uring::protocol::{CompletionMode, Lane, LaneError, Poll};
use gpu_uring::ring::{Confinement, RingConfig, RingLayout, Sqe};

const IOSQE_FIXED_FILE: u8 = 1 << 0;
const IOSQE_IO_DRAIN: u8 = 1 << 1;
const IOSQE_IO_LINK: u8 = 1 << 2;
const IOSQE_IO_HARDLINK: u8 = 1 << 3;
const IOSQE_ASYNC: u8 = 1 << 4;
const IOSQE_BUFFER_SELECT: u8 = 1 << 5;
const IOSQE_CQE_SKIP_SUCCESS: u8 = 1 << 6;

const OP_NOP: u8 = 0;
const OP_READ_FIXED: u8 = 4;
const OP_WRITE_FIXED: u8 = 5;
/// Opcodes the fuzzer names (the rest are numbers); the kernel under test may know more.
#[rustfmt::skip]
const OP_NAMES: [&str; 63] = [
    "NOP", "READV", "WRITEV", "FSYNC", "READ_FIXED", "WRITE_FIXED", "POLL_ADD", "POLL_REMOVE", "SYNC_FILE_RANGE",
    "SENDMSG", "RECVMSG", "TIMEOUT", "TIMEOUT_REMOVE", "ACCEPT", "ASYNC_CANCEL", "LINK_TIMEOUT", "CONNECT",
    "FALLOCATE", "OPENAT", "CLOSE", "FILES_UPDATE", "STATX", "READ", "WRITE", "FADVISE", "MADVISE", "SEND", "RECV",
    "OPENAT2", "EPOLL_CTL", "SPLICE", "PROVIDE_BUFFERS", "REMOVE_BUFFERS", "TEE", "SHUTDOWN", "RENAMEAT",
    "UNLINKAT", "MKDIRAT", "SYMLINKAT", "LINKAT", "MSG_RING", "FSETXATTR", "SETXATTR", "FGETXATTR", "GETXATTR",
    "SOCKET", "URING_CMD", "SEND_ZC", "SENDMSG_ZC", "READ_MULTISHOT", "WAITID", "FUTEX_WAIT", "FUTEX_WAKE",
    "FUTEX_WAITV", "FIXED_FD_INSTALL", "FTRUNCATE", "BIND", "LISTEN", "RECV_ZC", "EPOLL_WAIT", "READV_FIXED",
    "WRITEV_FIXED", "PIPE",
];
/// Opcodes picked more often among the arbitrary ones: what an attacker tries first.
const ATTACK_OPS: [u8; 10] = [18, 28, 40, 46, 22, 23, 19, 20, 1, 54];
/// Histogram rows printed individually; other opcodes are summed into two rows.
const NAMED_ROWS: [u8; 13] = [0, 4, 5, 18, 28, 40, 46, 22, 23, 19, 20, 1, 54];

/// Spin budgets (iterations of `backoff`, which sleeps up to 50 µs each): a few seconds, far more than any
/// operation here needs, small enough that a stuck ring fails the test instead of hanging it.
const RESERVE_BUDGET: u32 = 1 << 16;
const WAIT_BUDGET: u32 = 1 << 17;

#[test]
fn confined_ring_survives_random_sqes() {
    fuzz(env_u64("RING_FUZZ_SQES").unwrap_or(100_000), 4);
}

/// The large run; see the file's doc comment for the command.
#[test]
#[ignore = "10^6 SQEs: run in release, see the file's doc comment"]
fn confined_ring_survives_a_million_random_sqes() {
    fuzz(env_u64("RING_FUZZ_SQES").unwrap_or(1_000_000), 8);
}

// ---- randomness ---------------------------------------------------------------------------------------------

/// splitmix64: cheap, good enough, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let s = std::env::var(name).ok()?;
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

// ---- what the SQEs aim at -----------------------------------------------------------------------------------

/// An address range an SQE may point into, with the fixed-buffer index that would be right for it.
#[derive(Clone, Copy)]
struct Target {
    addr: u64,
    len: u64,
    buf_index: Option<u16>,
}

/// Everything the generator needs to know; plain numbers, shared by all lanes.
struct Aim {
    /// The staging buffer, the fixed buffer, then everything else.
    targets: Vec<Target>,
    /// Raw fd numbers: the unregistered file, the ring itself, stdio, AT_FDCWD, nonsense.
    raw_fds: Vec<i32>,
    fixed_files: i32,
    file_len: u64,
    /// Host addresses of NUL-terminated paths (for OPENAT and friends).
    paths: Vec<u64>,
    staging_buf: u16,
    fixed_buf: u16,
}

/// A generated operation.
struct Op {
    sqe: Sqe,
    mode: CompletionMode,
}

fn gen_flags(rng: &mut Rng) -> u8 {
    let mut f = 0u8;
    for (bit, pct) in [
        (IOSQE_IO_LINK, 12),
        (IOSQE_IO_DRAIN, 3),
        (IOSQE_IO_HARDLINK, 3),
        (IOSQE_ASYNC, 3),
        (IOSQE_BUFFER_SELECT, 2),
        (IOSQE_CQE_SKIP_SUCCESS, 3),
        (1 << 7, 1),
        (IOSQE_FIXED_FILE, 20),
    ] {
        if rng.chance(pct) {
            f |= bit;
        }
    }
    f
}

/// An (addr, len, buf_index) triple near the edges of a target.
fn gen_range(rng: &mut Rng, aim: &Aim) -> (u64, u32, u16) {
    if rng.chance(45) {
        // Valid: inside the staging or the fixed buffer, with its index.
        let t = rng.pick(&aim.targets[..2]);
        let start = rng.below(t.len);
        let len = rng.below((t.len - start).min(8192)) + 1;
        return (
            t.addr + start,
            len as u32,
            t.buf_index.unwrap_or(aim.fixed_buf),
        );
    }
    let t = rng.pick(&aim.targets);
    let start_in = match rng.below(9) {
        0 | 1 => 0,
        2 => 1,
        3 => t.len.wrapping_sub(1),
        4 => t.len,
        5 => t.len.wrapping_add(1),
        6 => 0u64.wrapping_sub(1 + rng.below(4096)),
        7 => t.len.wrapping_sub(4096),
        _ => rng.below(t.len.max(1)),
    };
    let addr = t.addr.wrapping_add(start_in);
    let rest = t.len.wrapping_sub(start_in);
    let len = match rng.below(12) {
        0 => 0,
        1 => 1,
        2 => 8,
        3 => 4096,
        4 | 5 => rest,
        6 => rest.wrapping_add(1),
        7 => u32::MAX as u64,
        8 => 1 << 31,
        9 => t.len,
        _ => rng.below(rest.clamp(1, 1 << 16)) + 1,
    } as u32;
    let right = t
        .buf_index
        .unwrap_or_else(|| rng.pick(&[aim.staging_buf, aim.fixed_buf]));
    let buf = if rng.chance(80) {
        right
    } else {
        rng.pick(&[
            aim.staging_buf,
            aim.fixed_buf,
            aim.fixed_buf + 1,
            aim.fixed_buf + 2,
            u16::MAX,
        ])
    };
    (addr, len, buf)
}

fn gen_file_off(rng: &mut Rng, aim: &Aim) -> u64 {
    match rng.below(14) {
        0..=3 => rng.below(aim.file_len),
        4 => 0,
        5 => aim.file_len - 1,
        6 => aim.file_len,
        7 => aim.file_len + 1,
        8 => u32::MAX as u64 + rng.below(3) - 1,
        9 => u64::MAX, // -1: the file position
        10 => u64::MAX - 1,
        11 => i64::MAX as u64 - rng.below(2),
        12 => 1 << 40,
        _ => rng.next(),
    }
}

fn gen_fixed_index(rng: &mut Rng, aim: &Aim) -> i32 {
    match rng.below(20) {
        0..=10 => 0,
        11..=14 => 1,
        15 => aim.fixed_files,
        16 => aim.fixed_files + 1,
        17 => -1,
        18 => rng.pick(&aim.raw_fds),
        _ => rng.next() as i32,
    }
}

/// One random SQE and completion mode.
fn gen_op(rng: &mut Rng, aim: &Aim, slots_per_lane: u32) -> Op {
    let mut sqe = Sqe {
        user_data: rng.next(), // the library must overwrite it
        ..Sqe::default()
    };
    if rng.chance(60) {
        // An allowed opcode with near-valid fields.
        sqe.opcode = match rng.below(10) {
            0 | 1 => OP_NOP,
            2..=5 => OP_READ_FIXED,
            _ => OP_WRITE_FIXED,
        };
        sqe.fd = gen_fixed_index(rng, aim);
        let (addr, len, buf) = gen_range(rng, aim);
        sqe.addr = addr;
        sqe.len = len;
        sqe.buf_index = buf;
        sqe.off = gen_file_off(rng, aim);
        if rng.chance(6) {
            // RWF_* for reads/writes; IORING_NOP_* (inject result, file, fixed file, fixed buffer, …) for NOP.
            sqe.op_flags = if rng.chance(50) {
                1 << rng.below(8)
            } else {
                rng.next() as u32
            };
        }
        if rng.chance(2) {
            sqe.ioprio = rng.next() as u16;
        }
        if rng.chance(2) {
            sqe.personality = rng.next() as u16;
        }
        if rng.chance(3) {
            // attr_ptr / attr_type_mask (PI attributes), write_stream, …
            sqe.addr3 = rng.pick(&aim.targets).addr;
            let any = rng.next();
            sqe._pad2 = rng.pick(&[1, any]);
            sqe.file_index = rng.next() as i32;
        }
    } else {
        // Anything at all.
        sqe.opcode = match rng.below(10) {
            0..=3 => rng.pick(&ATTACK_OPS),
            4..=8 => rng.below(63) as u8,
            _ => rng.next() as u8,
        };
        sqe.fd = if rng.chance(60) {
            rng.pick(&aim.raw_fds)
        } else {
            gen_fixed_index(rng, aim)
        };
        sqe.addr = match rng.below(4) {
            0 => rng.pick(&aim.paths),
            1 | 2 => gen_range(rng, aim).0,
            _ => rng.next(),
        };
        let any = rng.next();
        sqe.len = rng.pick(&[0, 1, 4096, u32::MAX, any as u32]);
        let offs = [0, gen_file_off(rng, aim), rng.pick(&aim.paths), rng.next()];
        sqe.off = rng.pick(&offs);
        let any = rng.next();
        sqe.op_flags = rng.pick(&[0, 0, libc::O_RDWR as u32, any as u32]);
        if rng.chance(30) {
            sqe.buf_index = rng.next() as u16;
            sqe.file_index = rng.next() as i32;
            sqe.addr3 = rng.next();
        }
    }
    sqe.flags = gen_flags(rng);
    let mode = match rng.below(10) {
        0..=2 => CompletionMode::FireAndForget,
        3 | 4 => CompletionMode::SkipSuccess,
        // One past the lane's last slot now and then: the library must refuse it.
        _ if rng.chance(3) => CompletionMode::Slot(slots_per_lane + rng.below(2) as u32),
        _ => CompletionMode::Slot(rng.below(slots_per_lane as u64) as u32),
    };
    Op { sqe, mode }
}

/// Whether the library must refuse this combination with `LaneError::BadFlags`: a failing skip-success member
/// makes the kernel suppress the CQEs of the rest of its chain, and a caller-set skip flag hides a credited
/// operation's CQE, so either would leak credits (PROTOCOL.md §4).
fn must_refuse(op: &Op) -> bool {
    op.sqe.flags & IOSQE_CQE_SKIP_SUCCESS != 0
        || (op.mode == CompletionMode::SkipSuccess
            && op.sqe.flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK) != 0)
}

// ---- results ------------------------------------------------------------------------------------------------

fn row(op: u8) -> String {
    if NAMED_ROWS.contains(&op) {
        OP_NAMES[op as usize].to_string()
    } else if (op as usize) < OP_NAMES.len() {
        "other opcodes < 63".to_string()
    } else {
        "opcodes >= 63".to_string()
    }
}

/// `-ENAME` for a negative result (any `i32`: a NOP can inject `i32::MIN`).
fn errno_name(res: i32) -> String {
    let Some(e) = res.checked_neg() else {
        return format!("{res}");
    };
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::ERANGE => "ERANGE",
        libc::ENOSYS => "ENOSYS",
        libc::ENODATA => "ENODATA",
        libc::ETIME => "ETIME",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOBUFS => "ENOBUFS",
        libc::EALREADY => "EALREADY",
        libc::ECANCELED => "ECANCELED",
        _ => return format!("{res}"),
    };
    format!("-{name}")
}

fn result_label(sqe: &Sqe, res: i32) -> String {
    if res < 0 {
        errno_name(res)
    } else if sqe.opcode == OP_READ_FIXED || sqe.opcode == OP_WRITE_FIXED {
        match (res as u32).cmp(&sqe.len) {
            std::cmp::Ordering::Equal => "ok".into(),
            std::cmp::Ordering::Less => "short".into(),
            std::cmp::Ordering::Greater => "more than asked".into(),
        }
    } else if res == 0 {
        "ok".into()
    } else {
        "res > 0".into()
    }
}

fn refusal_label(e: &LaneError) -> String {
    let s = format!("{e:?}");
    let name = s.split(['(', ' ']).next().unwrap_or(&s);
    format!("refused {name}")
}

type Histogram = BTreeMap<(String, String), u64>;

#[derive(Default)]
struct LaneOut {
    hist: Histogram,
    generated: u64,
    committed: u64,
    /// Anything that must never happen, with enough detail to reproduce.
    violations: Vec<String>,
    stalled: bool,
}

impl LaneOut {
    fn count(&mut self, op: u8, result: String) {
        *self.hist.entry((row(op), result)).or_default() += 1;
    }
    /// A spin budget ran out: the ring is starved (e.g. credits leaked); every lane stops generating.
    fn stall(&mut self, s: String) {
        self.stalled = true;
        self.violation(s);
    }
    fn violation(&mut self, s: String) {
        if self.violations.len() < 20 {
            self.violations.push(s);
        }
    }
}

// ---- one lane -----------------------------------------------------------------------------------------------

fn settle(
    lane: &mut Lane<'_>,
    out: &mut LaneOut,
    pending: &mut [Option<Sqe>],
    k: usize,
    allowed: &[u8],
) {
    let Some(sqe) = pending.get_mut(k).and_then(Option::take) else {
        return;
    };
    match lane.wait(k as u32, WAIT_BUDGET) {
        Ok(res) => record(out, &sqe, res, allowed),
        Err(e) => {
            out.count(sqe.opcode, format!("wait {}", refusal_label(&e)));
            out.stall(format!(
                "lane {}: waiting for slot {k} failed with {e:?} (opcode {}, flags {:#x})",
                lane.id(),
                sqe.opcode,
                sqe.flags
            ));
        }
    }
}

fn record(out: &mut LaneOut, sqe: &Sqe, res: i32, allowed: &[u8]) {
    if res >= 0 && !allowed.contains(&sqe.opcode) {
        out.violation(format!(
            "forbidden opcode {} completed with {res} on a confined ring: {sqe:?}",
            sqe.opcode
        ));
    }
    if (sqe.opcode == OP_READ_FIXED || sqe.opcode == OP_WRITE_FIXED)
        && res > 0
        && res as u32 > sqe.len
    {
        out.violation(format!(
            "{res} bytes for a {}-byte request: {sqe:?}",
            sqe.len
        ));
    }
    out.count(sqe.opcode, result_label(sqe, res));
}

fn run_lane(
    lane: &mut Lane<'_>,
    aim: &Aim,
    seed: u64,
    n: u64,
    allowed: &[u8],
    stop: &AtomicBool,
) -> LaneOut {
    let mut rng = Rng(seed ^ (lane.id() as u64 + 1).wrapping_mul(0xa076_1d64_78bd_642f));
    let spl = lane.view().layout().slots_per_lane;
    let mut pending: Vec<Option<Sqe>> = vec![None; spl as usize];
    let mut out = LaneOut::default();
    for _ in 0..n {
        if out.stalled {
            // Relaxed: a hint to stop early; nothing else is published through it.
            stop.store(true, Relaxed);
        }
        if stop.load(Relaxed) {
            break;
        }
        out.generated += 1;
        let op = gen_op(&mut rng, aim, spl);
        if let CompletionMode::Slot(k) = op.mode {
            // A slot is reused only after its result was taken.
            settle(lane, &mut out, &mut pending, k as usize, allowed);
        }
        let refuse = must_refuse(&op);
        let path = rng.below(100);
        let committed: Result<u32, LaneError> = match path {
            0..=3 => {
                // Reserve and walk away: the reservation is published as a NOP.
                match lane.reserve(RESERVE_BUDGET) {
                    Ok(r) => {
                        drop(r);
                        out.count(OP_NOP, "reservation dropped".into());
                    }
                    Err(e) => {
                        if e == LaneError::TimedOut {
                            out.stall(format!("lane {}: reserving timed out", lane.id()));
                        }
                        out.count(OP_NOP, refusal_label(&e))
                    }
                }
                continue;
            }
            4..=18 => lane
                .try_reserve()
                .and_then(|r| lane.commit(r, op.sqe, op.mode)),
            19..=33 => lane
                .reserve(RESERVE_BUDGET)
                .and_then(|r| lane.commit(r, op.sqe, op.mode)),
            _ => lane.submit(op.sqe, op.mode, RESERVE_BUDGET),
        };
        match committed {
            Ok(_) => {
                out.committed += 1;
                if refuse {
                    out.violation(format!(
                        "lane {}: the library accepted skip-success with link flags or a caller-set \
                         IOSQE_CQE_SKIP_SUCCESS ({:?}, flags {:#x})",
                        lane.id(),
                        op.mode,
                        op.sqe.flags
                    ));
                }
                match op.mode {
                    CompletionMode::FireAndForget => out.count(op.sqe.opcode, "ff".into()),
                    CompletionMode::SkipSuccess => out.count(op.sqe.opcode, "skip".into()),
                    CompletionMode::Slot(k) => {
                        if let Some(p) = pending.get_mut(k as usize) {
                            *p = Some(op.sqe);
                        }
                    }
                }
            }
            Err(e) => {
                if e == LaneError::TimedOut {
                    out.stall(format!("lane {}: reserving timed out", lane.id()));
                }
                out.count(op.sqe.opcode, refusal_label(&e));
            }
        }
        // Now and then: poll a slot, reap for others, flush this lane's fire-and-forget operations.
        match rng.below(100) {
            0..=9 => {
                let k = rng.below(spl as u64) as usize;
                if pending.get(k).is_some_and(Option::is_some) {
                    match lane.poll(k as u32) {
                        Ok(Poll::Ready(res)) => {
                            if let Some(sqe) = pending.get_mut(k).and_then(Option::take) {
                                record(&mut out, &sqe, res, allowed);
                            }
                        }
                        Ok(Poll::WouldBlock) => {}
                        Err(e) => {
                            out.violation(format!("lane {}: poll({k}) failed: {e:?}", lane.id()))
                        }
                    }
                }
            }
            10..=12 => {
                lane.reap(rng.below(64) as u32);
            }
            13 => {
                if let Err(e) = lane.flush(WAIT_BUDGET) {
                    out.stall(format!("lane {}: flush failed: {e:?}", lane.id()));
                }
            }
            _ => {}
        }
    }
    for k in 0..pending.len() {
        settle(lane, &mut out, &mut pending, k, allowed);
    }
    if let Err(e) = lane.flush(WAIT_BUDGET) {
        out.violation(format!(
            "lane {}: final flush failed: {e:?} (lane stuck)",
            lane.id()
        ));
    }
    out
}

// ---- canaries -----------------------------------------------------------------------------------------------

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(seed as u32 * 7 + 3) as u8
        })
        .collect()
}

/// A file with `content`, in /dev/shm when it exists (fast syncs), else the temp dir.
fn temp_file(content: &[u8]) -> File {
    let mut f = tempfile::tempfile_in("/dev/shm")
        .or_else(|_| tempfile::tempfile())
        .expect("creating a temp file");
    f.write_all(content).expect("writing a temp file");
    f
}

fn file_content(f: &File) -> Vec<u8> {
    let len = f.metadata().map(|m| m.len()).unwrap_or(0) as usize;
    let mut buf = vec![0; len];
    match f.read_exact_at(&mut buf, 0) {
        Ok(()) => buf,
        Err(_) => Vec::new(),
    }
}

/// Arena ranges (offset, len) that neither the kernel nor the protocol ever writes.
fn quiet_regions(l: &RingLayout, planned_total: u64) -> Vec<(u32, u32)> {
    let rings_end = (l.cqes + l.cq_entries * 16).max(if l.sq_array != 0 {
        l.sq_array + l.sq_entries * 4
    } else {
        0
    });
    let rings_end = rings_end.next_multiple_of(64);
    let sqes_end = l.sqes + l.sq_entries * 64;
    // The arena's control region holds only the host-shared SharedControl; the rest of its page is quiet.
    let words_end = l.control + std::mem::size_of::<gpu_uring::abi::SharedControl>() as u32;
    let mut v = Vec::new();
    for (start, end) in [
        (rings_end, l.sqes.max(rings_end)),
        (sqes_end, l.control.max(sqes_end)),
        (words_end, l.staging.max(words_end)),
        (planned_total as u32, l.arena_size as u32),
    ] {
        if end > start {
            v.push((start, end - start));
        }
    }
    v
}

// ---- the run ------------------------------------------------------------------------------------------------

fn fuzz(total: u64, lanes: u32) {
    let _serial = common::serial();
    let seed = env_u64("RING_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    println!("ring_fuzz: seed {seed:#x} (RING_FUZZ_SEED={seed:#x} replays it), {total} SQEs, {lanes} lanes");

    const FILE_LEN: usize = 64 * 1024;
    let scratch = temp_file(&pattern(1, FILE_LEN));
    let ro_content = pattern(2, 8192);
    let ro = {
        let w = temp_file(&ro_content);
        File::open(format!("/proc/self/fd/{}", w.as_raw_fd())).expect("reopening read-only")
    };
    let unreg_content = pattern(3, 8192);
    let unreg = temp_file(&unreg_content);
    let heap_content = pattern(4, 3 * 4096);
    let heap = heap_content.clone();
    let paths: Vec<Vec<u8>> = vec![
        b"/etc/passwd\0".to_vec(),
        format!("/proc/self/fd/{}\0", unreg.as_raw_fd()).into_bytes(),
        b"/tmp/ring_fuzz_must_not_exist\0".to_vec(),
    ];
    let fds_before = common::fd_count();

    let page = gpu_uring::ring::layout::page_size();
    let cfg = RingConfig {
        sq_entries: 64,
        lanes,
        slots_per_lane: 4,
        staging_lines: 2,
        line_bytes: 256,
        fixed_buffer_bytes: 16384,
        fixed_files: vec![scratch.as_raw_fd(), ro.as_raw_fd()],
        ..Default::default()
    };
    let allowed = Confinement::default().allowed_ops;
    let plan = cfg.validate().expect("a valid ring config");
    let ring = common::ring(RingConfig {
        arena_bytes: Some(plan.total + 2 * page),
        ..cfg
    });
    assert!(ring.access().is_confined(), "rings are confined by default");
    let fds_with_ring = common::fd_count();
    let l = ring.layout();
    let view = ring.view();
    let quiet = quiet_regions(&l, plan.total as u64);
    let quiet_content: Vec<Vec<u8>> = quiet
        .iter()
        .enumerate()
        .map(|(i, &(off, len))| {
            let p = pattern(10 + i as u8, len as usize);
            view.write_bytes(off, &p);
            p
        })
        .collect();

    let staging_len = (l.lanes * l.staging_lines * l.line_bytes).next_multiple_of(page as u32);
    let mut targets = vec![
        Target {
            addr: view.host_addr(l.staging),
            len: staging_len as u64,
            buf_index: Some(l.staging_buf_index as u16),
        },
        Target {
            addr: view.host_addr(l.fixed),
            len: l.fixed_size as u64,
            buf_index: Some(l.fixed_buf_index as u16),
        },
        Target {
            addr: heap.as_ptr() as u64,
            len: heap.len() as u64,
            buf_index: None,
        },
        Target {
            addr: view.host_addr(l.control),
            len: 128,
            buf_index: None,
        },
        Target {
            addr: view.host_addr(l.sqes),
            len: l.sq_entries as u64 * 64,
            buf_index: None,
        },
        Target {
            addr: view.host_addr(l.cqes),
            len: l.cq_entries as u64 * 16,
            buf_index: None,
        },
        Target {
            addr: 0,
            len: 4096,
            buf_index: None,
        },
        Target {
            addr: 0xffff_8880_0000_0000,
            len: 4096,
            buf_index: None,
        },
        Target {
            addr: u64::MAX - 4095,
            len: 4096,
            buf_index: None,
        },
    ];
    for &(off, len) in &quiet {
        targets.push(Target {
            addr: view.host_addr(off),
            len: len as u64,
            buf_index: None,
        });
    }
    let aim = Aim {
        targets,
        raw_fds: vec![
            unreg.as_raw_fd(),
            ring.fd(),
            0,
            1,
            2,
            libc::AT_FDCWD,
            -1,
            1 << 20,
        ],
        fixed_files: 2,
        file_len: FILE_LEN as u64,
        paths: paths.iter().map(|p| p.as_ptr() as u64).collect(),
        staging_buf: l.staging_buf_index as u16,
        fixed_buf: l.fixed_buf_index as u16,
    };

    let t0 = Instant::now();
    let per_lane = total.div_ceil(lanes as u64);
    let stop = AtomicBool::new(false);
    let outs: Vec<LaneOut> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..lanes)
            .map(|id| {
                let (aim, allowed, stop) = (&aim, &allowed[..], &stop);
                s.spawn(move || {
                    run_lane(&mut Lane::new(view, id), aim, seed, per_lane, allowed, stop)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("a lane thread panicked"))
            .collect()
    });
    let lanes_done = t0.elapsed();

    let mut failures: Vec<String> = Vec::new();
    let mut hist = Histogram::new();
    let (mut generated, mut committed) = (0, 0);
    for o in &outs {
        for (k, v) in &o.hist {
            *hist.entry(k.clone()).or_default() += v;
        }
        generated += o.generated;
        committed += o.committed;
        failures.extend(o.violations.iter().cloned());
    }
    if let Err(e) = Lane::host(view).flush(WAIT_BUDGET) {
        failures.push(format!(
            "host flush failed: {e:?} (credits never came back)"
        ));
    }
    if !ring.quiesce(Duration::from_secs(10)) {
        failures.push("quiesce timed out".into());
    }
    let ctl = view.local_snapshot();
    if ctl.cq_credits != l.credit_pool {
        failures.push(format!(
            "cq_credits {} after quiesce, pool {}",
            ctl.cq_credits, l.credit_pool
        ));
    }
    if ctl.foreign_cqes != 0 {
        failures.push(format!(
            "{} foreign CQEs (the lane API only posts its own user_data)",
            ctl.foreign_cqes
        ));
    }
    if ctl.protocol_violations != 0 {
        failures.push(format!(
            "{} protocol violations counted",
            ctl.protocol_violations
        ));
    }
    if std::hint::black_box(&heap) != &heap_content {
        failures.push("the heap canary changed".into());
    }
    for (i, &(off, len)) in quiet.iter().enumerate() {
        let mut now = vec![0; len as usize];
        view.read_bytes(off, &mut now);
        if now != quiet_content[i] {
            let at = now
                .iter()
                .zip(&quiet_content[i])
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            failures.push(format!(
                "arena canary [{off:#x}, +{len:#x}) changed at +{at:#x}"
            ));
        }
    }
    if file_content(&ro) != ro_content {
        failures.push("the read-only registered file changed".into());
    }
    if file_content(&unreg) != unreg_content {
        failures.push("the unregistered file changed".into());
    }
    if common::fd_count() != fds_with_ring {
        failures.push(format!(
            "fds with the ring: {} at start, {} at the end",
            fds_with_ring,
            common::fd_count()
        ));
    }
    let waker = ring.waker_stats();
    drop(ring);
    if common::fd_count() != fds_before {
        failures.push(format!(
            "fds: {fds_before} before the ring, {} after dropping it",
            common::fd_count()
        ));
    }
    let elapsed = t0.elapsed();

    print_histogram(&hist);
    println!(
        "ring_fuzz: {generated} SQEs generated, {committed} committed, lanes done in {:.2?}, all checks in {:.2?}",
        lanes_done, elapsed
    );
    println!(
        "ring_fuzz: control: ff_errors {}, skip_failures {}, foreign_cqes {}, protocol_violations {}, \
         cq_credits {}/{}; waker: {:?}",
        ctl.ff_errors, ctl.skip_failures, ctl.foreign_cqes, ctl.protocol_violations, ctl.cq_credits, l.credit_pool, waker
    );
    // Not vacuous: real I/O happened, and the kernel (not the library) refused forbidden opcodes.
    if total >= 10_000 {
        for (op, res) in [
            ("READ_FIXED", "ok"),
            ("WRITE_FIXED", "ok"),
            ("NOP", "ok"),
            ("OPENAT", "-EACCES"),
        ] {
            if hist
                .get(&(op.to_string(), res.to_string()))
                .copied()
                .unwrap_or(0)
                == 0
            {
                failures.push(format!(
                    "no {op} completed with {res}: the generator lost its aim"
                ));
            }
        }
    }
    let quiet_text: Vec<String> = quiet
        .iter()
        .map(|(off, len)| format!("[{off:#x}, +{len:#x})"))
        .collect();
    println!(
        "ring_fuzz: canaries: heap {} B, arena {}, read-only fixed file {} B, unregistered file {} B, {} fds",
        heap.len(),
        quiet_text.join(" "),
        ro_content.len(),
        unreg_content.len(),
        fds_before
    );
    assert!(
        !quiet.is_empty(),
        "no arena region the protocol never writes (the extra pages at the end should be one)"
    );
    assert!(
        failures.is_empty(),
        "seed {seed:#x}: {} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(generated >= total, "generated {generated} of {total}");
    drop(paths);
}

fn print_histogram(hist: &Histogram) {
    let mut rows: BTreeMap<&str, Vec<(&str, u64)>> = BTreeMap::new();
    for ((op, res), n) in hist {
        rows.entry(op).or_default().push((res, *n));
    }
    let order = |op: &str| {
        NAMED_ROWS
            .iter()
            .position(|&o| OP_NAMES[o as usize] == op)
            .unwrap_or(NAMED_ROWS.len())
    };
    let mut names: Vec<&str> = rows.keys().copied().collect();
    names.sort_by_key(|op| (order(op), op.to_string()));
    println!("ring_fuzz: opcode × result");
    for op in names {
        let mut cells = rows.remove(op).unwrap_or_default();
        cells.sort_by_key(|c| std::cmp::Reverse(c.1));
        let total: u64 = cells.iter().map(|c| c.1).sum();
        let text: Vec<String> = cells.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!("  {op:<20} {total:>8}: {}", text.join(", "));
    }
}
