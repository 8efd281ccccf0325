//! The RPC baseline: how LLVM libc for GPUs prints, rebuilt here so `print_latency` can compare it with the
//! device ring on the same machine in the same run.
//!
//! How it works: one page-aligned arena of mailboxes in shared memory, one per lane ([`MAILBOX_BYTES`] each, at
//! `lane * MAILBOX_BYTES`; the layout is plain offsets so a GPU API can import the same pages). A lane (the
//! client) owns its mailbox while it is `EMPTY`: it copies its line into the mailbox's data bytes, stores the
//! length, and publishes the request with a release store of `state = REQUEST`. One host server thread scans
//! every mailbox; on `REQUEST` (acquire: the line's bytes are visible) it calls `write(2)` on the target fd,
//! stores the result and replies with a release store of `state = REPLY`. The lane waits (bounded) for `REPLY`
//! (acquire: the result is visible), reads the result, and takes the mailbox back with `state = EMPTY`.
//!
//! The server polls like the kernel's SQPOLL thread does for the device ring, so the two designs pay for
//! polling alike: it spins while a request arrived within the last `spin_idle`, then sleeps in growing steps
//! (1 µs doubling up to `max_sleep`) and goes back to spinning as soon as it finds work. The thread is named
//! `rpc-server`, so experiments can read its CPU time ([`crate::threads_cpu`]).

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering::*};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes per mailbox (a multiple of the 64-byte cache line; a lane's mailbox shares no line with another's).
pub const MAILBOX_BYTES: usize = 512;
/// Offset of `state` (u32) in a mailbox.
pub const MB_STATE: usize = 0;
/// Offset of `len` (u32): bytes of the request's line.
pub const MB_LEN: usize = 4;
/// Offset of `result` (i32): what `write(2)` returned (bytes, or `-errno`).
pub const MB_RESULT: usize = 8;
/// Offset of `seq` (u32), for device clients that resume across dispatches (`device-shaders/src/
/// rpc_print.comp`): the lane's next line. Like `done`, `failed` and `finished` below, only the client uses it.
pub const MB_SEQ: usize = 12;
/// Offset of `done` (u32, device clients): replies whose result was the full line.
pub const MB_DONE: usize = 16;
/// Offset of `failed` (u32, device clients): replies with a failed or short write.
pub const MB_FAILED: usize = 20;
/// Offset of `finished` (u32, device clients): nonzero once the lane has printed all its lines.
pub const MB_FINISHED: usize = 24;
/// Offset of the line's bytes.
pub const MB_DATA: usize = 64;
/// The longest line a mailbox carries.
pub const MB_MAX_LINE: usize = MAILBOX_BYTES - MB_DATA;

/// `state`: the lane owns the mailbox.
pub const STATE_EMPTY: u32 = 0;
/// `state`: a request is waiting for the server.
pub const STATE_REQUEST: u32 = 1;
/// `state`: the server has replied; the lane owns the mailbox again once it has read the result.
pub const STATE_REPLY: u32 = 2;

/// Why an RPC did not complete.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The arena could not be mapped.
    #[error(
        "mapping {bytes} bytes of mailboxes failed: {source} (raise RLIMIT_MEMLOCK or free memory)"
    )]
    Map {
        /// Bytes asked for.
        bytes: usize,
        /// The `mmap(2)` error.
        source: std::sync::Arc<std::io::Error>,
    },
    /// The line is longer than a mailbox holds.
    #[error("a line of {0} bytes does not fit a mailbox (at most {MB_MAX_LINE})")]
    LineTooLong(usize),
    /// The server did not reply before the deadline; the request stays posted.
    #[error("the RPC server did not reply in time")]
    TimedOut,
    /// The mailbox was not the lane's to fill (a previous request is still posted).
    #[error("mailbox {0} still holds a request")]
    Busy(u32),
}

/// Page-aligned shared memory holding one mailbox per lane.
pub struct MailboxArena {
    base: *mut u8,
    len: usize,
    lanes: u32,
}

// SAFETY: the arena is plain shared memory; every access to it goes through atomics, or through the mailbox
// protocol whose release/acquire pairs order the plain data copies (see the module docs).
unsafe impl Send for MailboxArena {}
// SAFETY: as for `Send`.
unsafe impl Sync for MailboxArena {}

impl MailboxArena {
    /// Maps zeroed, populated, page-aligned memory for `lanes` mailboxes (all `EMPTY`).
    pub fn new(lanes: u32) -> Result<MailboxArena, RpcError> {
        let page = 4096;
        let len = (lanes.max(1) as usize * MAILBOX_BYTES).div_ceil(page) * page;
        // SAFETY: an anonymous private mapping with no address hint; the result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(RpcError::Map {
                bytes: len,
                source: Arc::new(std::io::Error::last_os_error()),
            });
        }
        Ok(MailboxArena {
            base: p.cast(),
            len,
            lanes,
        })
    }

    /// Mailboxes in the arena.
    pub fn lanes(&self) -> u32 {
        self.lanes
    }

    /// The arena's base address and length (page-aligned), for importing into a GPU API.
    pub fn memory(&self) -> (*mut u8, usize) {
        (self.base, self.len)
    }

    fn off(&self, lane: u32, field: usize) -> *mut u8 {
        assert!(lane < self.lanes, "mailbox {lane} of {}", self.lanes);
        // SAFETY: `lane < lanes`, so the offset is inside the mapping (`len ≥ lanes * MAILBOX_BYTES`).
        unsafe { self.base.add(lane as usize * MAILBOX_BYTES + field) }
    }

    fn u32_at(&self, lane: u32, field: usize) -> &AtomicU32 {
        // SAFETY: in bounds (see `off`), 4-byte aligned (page-aligned base, aligned field offsets), and the
        // mapping lives as long as `self`.
        unsafe { AtomicU32::from_ptr(self.off(lane, field).cast()) }
    }

    fn i32_at(&self, lane: u32, field: usize) -> &AtomicI32 {
        // SAFETY: as in `u32_at`.
        unsafe { AtomicI32::from_ptr(self.off(lane, field).cast()) }
    }

    /// Word `field` (an `MB_*` offset) of mailbox `lane`, read with acquire ordering (for the host reading a
    /// device client's counters after a dispatch).
    pub fn word(&self, lane: u32, field: usize) -> u32 {
        self.u32_at(lane, field).load(Acquire)
    }

    /// Lane `lane`'s side of its mailbox.
    pub fn client(&self, lane: u32) -> RpcClient<'_> {
        assert!(lane < self.lanes, "mailbox {lane} of {}", self.lanes);
        RpcClient { arena: self, lane }
    }
}

impl Drop for MailboxArena {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are the mapping made in `new`; nothing borrows the arena any more.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// One lane's end of its mailbox.
pub struct RpcClient<'a> {
    arena: &'a MailboxArena,
    lane: u32,
}

impl RpcClient<'_> {
    /// Posts `line` and returns without waiting.
    pub fn post(&mut self, line: &[u8]) -> Result<(), RpcError> {
        if line.len() > MB_MAX_LINE {
            return Err(RpcError::LineTooLong(line.len()));
        }
        let a = self.arena;
        let state = a.u32_at(self.lane, MB_STATE);
        // Relaxed: only this lane ever stores EMPTY, so seeing EMPTY here means it is still ours.
        if state.load(Relaxed) != STATE_EMPTY {
            return Err(RpcError::Busy(self.lane));
        }
        // SAFETY: the data bytes are inside this lane's mailbox; while the state is EMPTY nobody else reads or
        // writes them (the server only touches a mailbox after acquiring REQUEST).
        unsafe {
            std::ptr::copy_nonoverlapping(line.as_ptr(), a.off(self.lane, MB_DATA), line.len())
        };
        a.u32_at(self.lane, MB_LEN)
            .store(line.len() as u32, Relaxed);
        // Release: the server's acquire load of REQUEST sees the line bytes and the length stored above.
        state.store(STATE_REQUEST, Release);
        Ok(())
    }

    /// One look for the reply: `Some(result)` (and the mailbox is the lane's again) or `None`.
    pub fn try_reply(&mut self) -> Option<i32> {
        let a = self.arena;
        let state = a.u32_at(self.lane, MB_STATE);
        // Acquire: pairs with the server's release store of REPLY, so `result` is the server's.
        if state.load(Acquire) != STATE_REPLY {
            return None;
        }
        let r = a.i32_at(self.lane, MB_RESULT).load(Relaxed);
        // Relaxed: the server never touches a REPLY mailbox; the next post's release orders this store.
        state.store(STATE_EMPTY, Relaxed);
        Some(r)
    }

    /// Posts `line` and waits for the reply until `deadline`, backing off between looks exactly as the device
    /// ring's lanes do ([`gpu_uring::protocol::backoff`]), so both designs wait alike. Returns what `write(2)`
    /// returned. On [`RpcError::TimedOut`] the request stays posted (the server may still serve it).
    pub fn call(&mut self, line: &[u8], deadline: Instant) -> Result<i32, RpcError> {
        self.post(line)?;
        let mut i = 0u32;
        loop {
            if let Some(r) = self.try_reply() {
                return Ok(r);
            }
            if i % 64 == 63 && Instant::now() >= deadline {
                return Err(RpcError::TimedOut);
            }
            gpu_uring::protocol::backoff(i);
            i = i.saturating_add(1);
        }
    }
}

/// How the server polls.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// Keep spinning this long after the last request (like `sq_thread_idle` for the SQPOLL thread).
    pub spin_idle: Duration,
    /// The longest sleep between scans once idle.
    pub max_sleep: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            spin_idle: Duration::from_millis(50),
            max_sleep: Duration::from_millis(1),
        }
    }
}

/// What the server did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServerStats {
    /// Requests served (`write(2)` calls).
    pub calls: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Calls that failed or wrote short.
    pub errors: u64,
}

/// The host server thread.
pub struct RpcServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<ServerStats>>,
}

impl RpcServer {
    /// Starts a server (thread `rpc-server`) for every mailbox of `arena`, writing to `fd` (which must stay open
    /// until [`RpcServer::stop`]).
    pub fn start(
        arena: Arc<MailboxArena>,
        fd: RawFd,
        cfg: ServerConfig,
    ) -> std::io::Result<RpcServer> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rpc-server".into())
            .spawn(move || serve(&arena, fd, cfg, &s))?;
        Ok(RpcServer {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the server after its current scan and returns its statistics.
    pub fn stop(mut self) -> ServerStats {
        self.stop.store(true, Release);
        self.thread
            .take()
            .map(|t| t.join().expect("the RPC server panicked"))
            .unwrap_or_default()
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        self.stop.store(true, Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(a: &MailboxArena, fd: RawFd, cfg: ServerConfig, stop: &AtomicBool) -> ServerStats {
    let mut st = ServerStats::default();
    let mut last_work = Instant::now();
    let mut sleep = Duration::from_micros(1);
    while !stop.load(Acquire) {
        let mut found = false;
        for lane in 0..a.lanes() {
            let state = a.u32_at(lane, MB_STATE);
            // Acquire: pairs with the client's release store of REQUEST (the line's bytes are visible).
            if state.load(Acquire) != STATE_REQUEST {
                continue;
            }
            found = true;
            let len = (a.u32_at(lane, MB_LEN).load(Relaxed) as usize).min(MB_MAX_LINE);
            // SAFETY: the mailbox holds a REQUEST, so its data bytes are the server's to read until it stores
            // REPLY; `len ≤ MB_MAX_LINE` keeps the read inside the mailbox.
            let r = unsafe { libc::write(fd, a.off(lane, MB_DATA).cast(), len) };
            let res = if r < 0 {
                -std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO)
            } else {
                r as i32
            };
            st.calls += 1;
            if res == len as i32 {
                st.bytes += len as u64;
            } else {
                st.errors += 1;
            }
            a.i32_at(lane, MB_RESULT).store(res, Relaxed);
            // Release: the client's acquire load of REPLY sees the result.
            state.store(STATE_REPLY, Release);
        }
        if found {
            last_work = Instant::now();
            sleep = Duration::from_micros(1);
        } else if last_work.elapsed() < cfg.spin_idle {
            std::hint::spin_loop();
        } else {
            std::thread::sleep(sleep);
            sleep = (sleep * 2).min(cfg.max_sleep);
        }
    }
    st
}

/// What [`serve_flags`] saw.
#[derive(Debug, Default, Clone)]
pub struct FlagStats {
    /// Values seen change (one per device step).
    pub seen: u64,
    /// Round trips in µs as the host sees them: from its acknowledgement of a lane's step `k` to seeing that
    /// lane's value `k + 1` (the device saw the ack, went on, and its next store became visible).
    pub round_trips_us: Vec<f64>,
}

/// The host half of `Program::EditBuffer` (a device lane stores `value = k` at `fixed + 8 lane` and waits for
/// the host to store `ack ≥ k` at `fixed + 8 lane + 4`), used as a doorbell: every value seen is passed to
/// `on_value(lane, value)` (an RPC server does its work there) and then acknowledged. Polls until `stop` is
/// set: spinning, yielding after 64 empty scans so a device that runs on the same CPU cores keeps running.
pub fn serve_flags(
    ring: &gpu_uring::protocol::DeviceRing,
    lanes: u32,
    stop: &AtomicBool,
    mut on_value: impl FnMut(u32, u32),
) -> FlagStats {
    let v = ring.view();
    let fixed = v.layout().fixed;
    assert!(
        v.layout().fixed_size as u64 >= lanes as u64 * 8,
        "the ring's fixed buffer holds fewer than {lanes} lanes' (value, ack) words"
    );
    let mut st = FlagStats::default();
    let mut seen = vec![0u32; lanes as usize];
    let mut acked_at: Vec<Option<Instant>> = vec![None; lanes as usize];
    let mut idle = 0u32;
    while !stop.load(Acquire) {
        let mut any = false;
        for lane in 0..lanes {
            // Acquire: pairs with the lane's release store of its value.
            let val = v.u32_at(fixed + 8 * lane).load(Acquire);
            if val == seen[lane as usize] {
                continue;
            }
            let now = Instant::now();
            if let Some(t) = acked_at[lane as usize] {
                st.round_trips_us.push((now - t).as_secs_f64() * 1e6);
            }
            seen[lane as usize] = val;
            st.seen += 1;
            any = true;
            on_value(lane, val);
            // Release: the lane's acquire of the ack sees everything done for this value.
            v.u32_at(fixed + 8 * lane + 4).store(val, Release);
            acked_at[lane as usize] = Some(Instant::now());
        }
        if any {
            idle = 0;
        } else {
            idle += 1;
            if idle & 63 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_print_through_the_server() {
        let arena = Arc::new(MailboxArena::new(4).unwrap());
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is a valid out-parameter for two fds.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let server = RpcServer::start(arena.clone(), fds[1], ServerConfig::default()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        std::thread::scope(|s| {
            for lane in 0..4 {
                let a = &arena;
                s.spawn(move || {
                    let mut c = a.client(lane);
                    let line = format!("lane {lane}\n");
                    let r = c.call(line.as_bytes(), deadline);
                    assert_eq!(r.ok(), Some(line.len() as i32));
                });
            }
        });
        let st = server.stop();
        assert_eq!((st.calls, st.errors), (4, 0));
        let mut buf = [0u8; 64];
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
        let text = String::from_utf8_lossy(&buf[..n as usize]);
        for lane in 0..4 {
            assert!(text.contains(&format!("lane {lane}\n")), "{text}");
        }
        // SAFETY: closing the two fds made above.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        let too_long = vec![b'x'; MB_MAX_LINE + 1];
        assert!(matches!(
            arena.client(0).post(&too_long),
            Err(RpcError::LineTooLong(n)) if n == MB_MAX_LINE + 1
        ));
    }
}
