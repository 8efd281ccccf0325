//! TCP echo on loopback: a server on the proactor against a `tokio` server
//! (`current_thread` runtime) and a `monoio` server (io_uring driver), all on one
//! thread pinned to one core, driven by one load generator pinned to another core.
//!
//! Every server echoes with the same buffer size (`BUF`), `TCP_NODELAY` on each
//! accepted connection, and the same loop: receive into the buffer, send what came
//! in, receive again. The proactor runs two ways: single-shot `recv` into an owned
//! buffer that goes out again as the `send` (`proactor`), and one multishot recv per
//! connection picking buffers from a provided-buffer group (`multishot`), whose
//! bytes are copied into a per-connection send buffer.
//!
//! The load generator is one thread with its own `io-uring` ring: `CONNS`
//! connections, each keeping `DEPTH` messages in flight (a new one is sent as soon as
//! one has come back whole), one send and one recv in flight per connection. Message
//! contents are windows of a fixed pattern at a per-connection offset, so every byte
//! echoed is compared with what was sent. Latency is from queuing a message to
//! receiving its last byte (hdrhistogram).
//!
//! Servers run in interleaved rounds (every server once per round and message size,
//! each with a fresh server thread), so load changes on a shared machine hit all
//! alike; figures are the median over rounds with the range, ratios are taken within
//! a round and summarised the same way. CPU time per request is the server thread's
//! CPU clock (`pthread_getcpuclockid`) over the measured window divided by the
//! requests in it. Allocations per request count every heap allocation of the
//! process in that window (the load generator makes none), through the counting
//! global allocator.
//!
//! `cargo bench -p gpu-uring-benches --bench tcp_echo` runs the comparison; without
//! `--bench` (e.g. `cargo test --release --bench tcp_echo`) one short round is a
//! smoke test. Environment: `TCP_ECHO_ROUNDS` (default 7), `TCP_ECHO_CONNS` (32),
//! `TCP_ECHO_DEPTH` (4), `TCP_ECHO_MS` (measured milliseconds per run, 400),
//! `TCP_ECHO_SERVERS` (comma list of proactor, multishot, tokio, monoio, epoll;
//! default all but epoll), `TCP_ECHO_SIZES` (comma list of message sizes, default
//! 64,4096), `TCP_ECHO_RT=1` (server and load generator run `SCHED_FIFO`, so that
//! other work on a shared machine cannot delay their wake-ups; needs the privilege).
//!
//! Columns: `busy` and `gen` are the server's and the load generator's thread CPU
//! time over the window's wall time. Both near 1.0 means the pair is CPU-bound and
//! requests/s measures server and load generator together (on two cores the load
//! generator costs about as much per message as a server), so CPU time per request
//! is the server-side figure; well below 1.0 means the threads were waiting, on each
//! other or on the scheduler.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::thread::JoinHandleExt;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gpu_uring::proactor::net::{SockAddr, Socket, SocketKind};
use gpu_uring::proactor::{
    BackendChoice, BufRing, Completion, Operation, Options, Outcome, Proactor, Resources,
};
use gpu_uring_benches::{allocations, median_range, CountingAlloc};
use hdrhistogram::Histogram;
use io_uring::{opcode, types, IoUring};

#[global_allocator]
static A: CountingAlloc = CountingAlloc;

/// Every server's receive buffer (and the provided buffers' size).
const BUF: usize = 16 * 1024;
/// Largest message size the pattern supports.
const MAX_MSG: usize = 64 * 1024;
/// Pattern period (a prime, so windows at different offsets differ).
const PERIOD: usize = 65_521;
/// Load generator's receive buffer per connection.
const CLIENT_RBUF: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Server {
    Proactor,
    Multishot,
    Tokio,
    Monoio,
    Epoll,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Proactor => "proactor",
            Server::Multishot => "multishot",
            Server::Tokio => "tokio",
            Server::Monoio => "monoio",
            Server::Epoll => "epoll",
        }
    }
    fn parse(s: &str) -> Option<Server> {
        [
            Server::Proactor,
            Server::Multishot,
            Server::Tokio,
            Server::Monoio,
            Server::Epoll,
        ]
        .into_iter()
        .find(|k| k.name() == s.trim())
    }
    fn describe(self) -> &'static str {
        match self {
            Server::Proactor => "proactor io_uring, recv + send of one owned buffer",
            Server::Multishot => "proactor io_uring, multishot recv into provided buffers + send",
            Server::Tokio => "tokio current_thread, read + write_all",
            Server::Monoio => "monoio IoUringDriver, read + write_all (owned buffer)",
            Server::Epoll => "proactor epoll backend, recv + send of one owned buffer",
        }
    }
}

struct Config {
    conns: usize,
    depth: usize,
    size: usize,
    warmup: Duration,
    measure: Duration,
    server_cpu: Option<usize>,
    rt: bool,
}

/// One run's figures.
#[derive(Clone, Copy, Default)]
struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_req: f64,
    /// Server thread CPU time over the window's wall time (1.0: never idle).
    busy: f64,
    /// The same for the load generator's thread.
    gen_busy: f64,
    allocs_per_req: f64,
    /// Heap allocations in the window, and the requests it served.
    allocs: u64,
    reqs: u64,
}

// ---------------------------------------------------------------------------------
// Pinning and clocks

fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity writes at most
    // its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) {
    // SAFETY: as above; sched_setaffinity(0) applies to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let r = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(r, 0, "sched_setaffinity({cpu})");
    }
}

/// Gives the calling thread `SCHED_FIFO` priority 1 (`TCP_ECHO_RT=1`), so that other
/// work on a shared machine cannot delay its wake-ups; returns whether it worked.
fn realtime() -> bool {
    let p = libc::sched_param { sched_priority: 1 };
    // SAFETY: plain system call on the calling thread with a valid parameter block.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) == 0 }
}

/// CPU time of a live thread, nanoseconds.
fn thread_cpu_ns(t: libc::pthread_t) -> u64 {
    let mut clock: libc::clockid_t = 0;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a thread that has not been joined (the caller holds its handle);
    // both calls only write the out-parameters given.
    unsafe {
        assert_eq!(libc::pthread_getcpuclockid(t, &mut clock), 0);
        assert_eq!(libc::clock_gettime(clock, &mut ts), 0);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// ---------------------------------------------------------------------------------
// Servers. Each binds 127.0.0.1:0, reports its address, accepts `n` connections and
// echoes until all of them are closed by the peer.

fn spawn_server(
    kind: Server,
    n: usize,
    cpu: Option<usize>,
    rt: bool,
) -> (JoinHandle<()>, SocketAddr) {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::Builder::new()
        .name(format!("echo-{}", kind.name()))
        .spawn(move || {
            if let Some(c) = cpu {
                pin(c);
            }
            if rt {
                realtime();
            }
            match kind {
                Server::Proactor => proactor_server(n, tx, false, BackendChoice::IoUring),
                Server::Epoll => proactor_server(n, tx, false, BackendChoice::Epoll),
                Server::Multishot => proactor_server(n, tx, true, BackendChoice::IoUring),
                Server::Tokio => tokio_server(n, tx),
                Server::Monoio => monoio_server(n, tx),
            }
        })
        .expect("spawn server");
    let addr = rx.recv().expect("server address");
    (h, addr)
}

/// user_data: connection index << 1 | 1 for a send.
const SEND: u64 = 1;

struct PConn {
    sock: Option<Socket>,
    /// Multishot: bytes received while a send is in flight.
    pending: Vec<u8>,
    /// Multishot: the send buffer when no send is in flight.
    out: Option<Vec<u8>>,
}

fn proactor_server(
    n: usize,
    tx: mpsc::Sender<SocketAddr>,
    multishot: bool,
    backend: BackendChoice,
) {
    let p = Proactor::new(Options {
        backend,
        max_in_flight: (4 * n as u32 + 16).max(1024),
        ring_entries: (2 * n as u32 + 16).next_power_of_two().max(256),
        ..Options::default()
    })
    .expect("proactor");
    let listener = Socket::new(SocketKind::TcpV4).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    listener.bind(&SockAddr::from(any)).expect("bind");
    listener.listen(1024).expect("listen");
    let addr = listener.local_addr().unwrap().as_inet().unwrap();
    tx.send(addr).unwrap();
    let lfd = listener.as_raw_fd();
    let mut conns: Vec<PConn> = Vec::with_capacity(n);
    for _ in 0..n {
        p.submit(Operation::accept(lfd)).expect("submit accept");
        let mut fd = -1;
        while fd < 0 {
            p.poll(None, |c| {
                fd = c.outcome.ok().expect("accept") as RawFd;
            })
            .expect("poll");
        }
        // SAFETY: the accept's result is a new descriptor that we now own.
        let sock = Socket::import(unsafe { OwnedFd::from_raw_fd(fd) }).expect("import");
        sock.set_nodelay(true).expect("nodelay");
        conns.push(PConn {
            sock: Some(sock),
            pending: Vec::with_capacity(4 * BUF),
            out: Some(Vec::with_capacity(4 * BUF)),
        });
    }
    let ring = multishot.then(|| p.buf_ring(512, BUF).expect("buf_ring"));
    let mut ops: Vec<Operation> = Vec::with_capacity(4 * n);
    let mut ids = Vec::with_capacity(4 * n);
    for (i, c) in conns.iter().enumerate() {
        let fd = c.sock.as_ref().unwrap().as_raw_fd();
        let op = match &ring {
            Some(r) => Operation::recv_multishot(fd, r),
            None => Operation::recv(fd, vec![0u8; BUF]),
        };
        ops.push(op.user_data((i as u64) << 1));
    }
    let mut open = n;
    while open > 0 {
        if !ops.is_empty() {
            p.submit_batch(&mut ops, &mut ids).expect("submit");
            ids.clear();
        }
        p.poll(None, |c: Completion| {
            let i = (c.user_data >> 1) as usize;
            let conn = &mut conns[i];
            let fd = conn.sock.as_ref().map_or(-1, |s| s.as_raw_fd());
            if c.user_data & SEND != 0 {
                let mut buf = c.resources.into_buf().expect("send buffer");
                let sent = match c.outcome {
                    Outcome::Ok(k) => k as usize,
                    o => panic!("send: {o:?}"),
                };
                if sent < buf.len() {
                    buf.drain(..sent);
                    ops.push(Operation::send(fd, buf).user_data(c.user_data));
                } else if ring.is_some() {
                    buf.clear();
                    if conn.pending.is_empty() {
                        conn.out = Some(buf);
                    } else {
                        std::mem::swap(&mut buf, &mut conn.pending);
                        ops.push(Operation::send(fd, buf).user_data(c.user_data));
                    }
                } else {
                    // SAFETY: the buffer was `BUF` initialised bytes when created and
                    // was only truncated since (a recv writes within its length); its
                    // capacity is still `BUF`, so those bytes are initialised.
                    unsafe { buf.set_len(BUF) };
                    ops.push(Operation::recv(fd, buf).user_data(c.user_data & !SEND));
                }
                return;
            }
            let more = c.more;
            match (c.outcome, c.resources) {
                (Outcome::Ok(0), _) if !more => {
                    conn.sock = None;
                    open -= 1;
                }
                (Outcome::Ok(k), Resources::Buf(mut buf)) => {
                    // Single-shot recv: the buffer goes out as the send.
                    buf.truncate(k as usize);
                    ops.push(Operation::send(fd, buf).user_data(c.user_data | SEND));
                }
                (Outcome::Ok(k), Resources::Leased(rb)) => {
                    conn.pending
                        .extend_from_slice(&rb[..(k as usize).min(rb.len())]);
                    drop(rb);
                    if let Some(mut out) = conn.out.take() {
                        std::mem::swap(&mut out, &mut conn.pending);
                        ops.push(Operation::send(fd, out).user_data(c.user_data | SEND));
                    }
                    if !more {
                        rearm(&mut ops, fd, ring.as_ref(), c.user_data);
                    }
                }
                // The kernel (or the group running dry) ended the multishot recv: re-arm.
                (Outcome::Err(e), _)
                    if !more && (e.errno == libc::ENOBUFS || e.errno == libc::EAGAIN) =>
                {
                    rearm(&mut ops, fd, ring.as_ref(), c.user_data);
                }
                (o, _) => panic!("recv: {o:?}"),
            }
        })
        .expect("poll");
    }
}

fn rearm(ops: &mut Vec<Operation>, fd: RawFd, ring: Option<&BufRing>, user_data: u64) {
    let ring = ring.expect("multishot recv has a group");
    ops.push(Operation::recv_multishot(fd, ring).user_data(user_data));
}

fn tokio_server(n: usize, tx: mpsc::Sender<SocketAddr>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_l.set_nonblocking(true).unwrap();
        tx.send(std_l.local_addr().unwrap()).unwrap();
        let l = tokio::net::TcpListener::from_std(std_l).unwrap();
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let (mut s, _) = l.accept().await.expect("accept");
            s.set_nodelay(true).unwrap();
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; BUF];
                loop {
                    let k = s.read(&mut buf).await.expect("read");
                    if k == 0 {
                        break;
                    }
                    s.write_all(&buf[..k]).await.expect("write");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

fn monoio_server(n: usize, tx: mpsc::Sender<SocketAddr>) {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(1024)
        .build()
        .expect("monoio runtime");
    rt.block_on(async move {
        let l = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        tx.send(l.local_addr().unwrap()).unwrap();
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let (mut s, _) = l.accept().await.expect("accept");
            s.set_nodelay(true).unwrap();
            tasks.push(monoio::spawn(async move {
                let mut buf: Vec<u8> = Vec::with_capacity(BUF);
                loop {
                    let (r, b) = s.read(buf).await;
                    buf = b;
                    if r.expect("read") == 0 {
                        break;
                    }
                    let (r, b) = s.write_all(buf).await;
                    buf = b;
                    r.expect("write");
                    buf.clear();
                }
            }));
        }
        for t in tasks {
            t.await;
        }
    });
}

// ---------------------------------------------------------------------------------
// Load generator

/// The bytes every connection sends: a fixed sequence of period `PERIOD`, repeated so
/// that any window of up to `MAX_MSG` bytes starting in the first period is contiguous.
struct Pattern(Vec<u8>);

impl Pattern {
    fn new() -> Pattern {
        Pattern(
            (0..PERIOD + MAX_MSG)
                .map(|i| {
                    let j = (i % PERIOD) as u32;
                    ((j.wrapping_mul(2_654_435_761) >> 13) as u8) ^ (j as u8)
                })
                .collect(),
        )
    }
    /// The contiguous bytes (at most `len`) at stream position `pos` of a connection
    /// whose stream starts at pattern offset `off`.
    fn window(&self, off: usize, pos: u64, len: usize) -> &[u8] {
        let start = ((pos + off as u64) % PERIOD as u64) as usize;
        let n = len.min(self.0.len() - start);
        &self.0[start..start + n]
    }
}

struct CConn {
    stream: TcpStream,
    off: usize,
    /// Stream bytes queued for sending (whole messages).
    queued: u64,
    /// Stream bytes the kernel accepted.
    sent: u64,
    sending: bool,
    /// Stream bytes echoed back and verified.
    rx: u64,
    /// Messages queued, and echoed back whole.
    msgs: u64,
    done: u64,
    rbuf: Box<[u8]>,
    /// Queue times (ns) of the messages in flight, by message number modulo depth.
    ts: Box<[u64]>,
}

struct Window {
    cpu_ns: u64,
    gen_cpu_ns: u64,
    allocs: u64,
    done: u64,
    at_ns: u64,
}

/// Drives `cfg.conns` connections against the server at `addr` (thread `server`):
/// warm-up, measured window, then a drain of what is in flight. Returns the window's
/// figures.
fn drive(cfg: &Config, addr: SocketAddr, server: libc::pthread_t, pat: &Pattern) -> Run {
    let (n, depth, size) = (cfg.conns, cfg.depth as u64, cfg.size as u64);
    let mut conns: Vec<CConn> = (0..n)
        .map(|i| {
            let stream = TcpStream::connect(addr).expect("connect");
            stream.set_nodelay(true).unwrap();
            CConn {
                stream,
                off: (i * 7919) % PERIOD,
                queued: 0,
                sent: 0,
                sending: false,
                rx: 0,
                msgs: 0,
                done: 0,
                rbuf: vec![0u8; CLIENT_RBUF].into_boxed_slice(),
                ts: vec![0u64; cfg.depth].into_boxed_slice(),
            }
        })
        .collect();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let mut ring = IoUring::new((4 * n as u32).next_power_of_two().max(64)).expect("io_uring");
    let (submitter, mut sq, mut cq) = ring.split();
    let base = Instant::now();

    fn push(sq: &mut io_uring::SubmissionQueue<'_>, e: io_uring::squeue::Entry) {
        // SAFETY: every entry points into a connection's receive buffer or into the
        // pattern, both of which outlive the ring (dropped at the end of `drive`,
        // after all operations completed).
        unsafe { sq.push(&e) }.expect("SQ room (two entries per connection at most)");
    }
    let recv = |i: usize, c: &mut CConn| {
        opcode::Recv::new(
            types::Fd(c.stream.as_raw_fd()),
            c.rbuf.as_mut_ptr(),
            c.rbuf.len() as u32,
        )
        .build()
        .user_data((i as u64) << 1)
    };
    let send = |i: usize, c: &mut CConn| {
        let w = pat.window(c.off, c.sent, (c.queued - c.sent) as usize);
        c.sending = true;
        opcode::Send::new(types::Fd(c.stream.as_raw_fd()), w.as_ptr(), w.len() as u32)
            .build()
            .user_data(((i as u64) << 1) | 1)
    };
    let queue = |c: &mut CConn, now: u64| {
        c.ts[(c.msgs % depth) as usize] = now;
        c.msgs += 1;
        c.queued += size;
    };
    for (i, c) in conns.iter_mut().enumerate() {
        push(&mut sq, recv(i, c));
        for _ in 0..depth {
            queue(c, 0);
        }
        push(&mut sq, send(i, c));
    }
    sq.sync();
    let (warm_end, hard_end) = (cfg.warmup.as_nanos() as u64, 60_000_000_000u64);
    let mut start: Option<Window> = None;
    let mut end: Option<Window> = None;
    let mut total_done = 0u64;
    let mut in_flight = n as u64 * depth;
    let snapshot = |total_done: u64, now: u64| Window {
        cpu_ns: thread_cpu_ns(server),
        // SAFETY: pthread_self is always valid for the calling thread.
        gen_cpu_ns: thread_cpu_ns(unsafe { libc::pthread_self() }),
        allocs: allocations(),
        done: total_done,
        at_ns: now,
    };
    while in_flight > 0 {
        submitter.submit_and_wait(1).expect("io_uring_enter");
        let now = base.elapsed().as_nanos() as u64;
        assert!(
            now < hard_end,
            "echo run stalled ({in_flight} messages in flight)"
        );
        if start.is_none() && now >= warm_end {
            start = Some(snapshot(total_done, now));
            hist.reset();
        }
        if let (Some(s), None) = (&start, &end) {
            if now >= s.at_ns + cfg.measure.as_nanos() as u64 {
                end = Some(snapshot(total_done, now));
            }
        }
        let measuring = start.is_some() && end.is_none();
        let stopping = end.is_some();
        cq.sync();
        for cqe in &mut cq {
            let i = (cqe.user_data() >> 1) as usize;
            let res = cqe.result();
            let c = &mut conns[i];
            if cqe.user_data() & 1 == 1 {
                assert!(res > 0, "client send: {res}");
                c.sent += res as u64;
                c.sending = false;
                if c.sent < c.queued {
                    push(&mut sq, send(i, c));
                }
                continue;
            }
            assert!(res > 0, "client recv: {res} (0: server closed)");
            let mut got = &c.rbuf[..res as usize];
            let mut pos = c.rx;
            while !got.is_empty() {
                let w = pat.window(c.off, pos, got.len());
                assert!(
                    got[..w.len()] == *w,
                    "connection {i}: echoed bytes at stream offset {pos} differ from those sent"
                );
                got = &got[w.len()..];
                pos += w.len() as u64;
            }
            c.rx = pos;
            while c.rx >= (c.done + 1) * size {
                let t = c.ts[(c.done % depth) as usize];
                if measuring {
                    hist.saturating_record(now.saturating_sub(t).max(1));
                }
                c.done += 1;
                total_done += 1;
                if stopping {
                    in_flight -= 1;
                } else {
                    queue(c, now);
                }
            }
            if c.queued > c.sent && !c.sending {
                push(&mut sq, send(i, c));
            }
            if c.rx < c.queued {
                push(&mut sq, recv(i, c));
            }
        }
        sq.sync();
    }
    let (s, e) = (start.expect("warm-up ended"), end.expect("window ended"));
    let reqs = (e.done - s.done).max(1);
    drop(conns);
    Run {
        rps: reqs as f64 / ((e.at_ns - s.at_ns) as f64 / 1e9),
        p50_us: hist.value_at_quantile(0.50) as f64 / 1e3,
        p99_us: hist.value_at_quantile(0.99) as f64 / 1e3,
        cpu_us_per_req: (e.cpu_ns - s.cpu_ns) as f64 / 1e3 / reqs as f64,
        busy: (e.cpu_ns - s.cpu_ns) as f64 / (e.at_ns - s.at_ns) as f64,
        gen_busy: (e.gen_cpu_ns - s.gen_cpu_ns) as f64 / (e.at_ns - s.at_ns) as f64,
        allocs_per_req: (e.allocs - s.allocs) as f64 / reqs as f64,
        allocs: e.allocs - s.allocs,
        reqs,
    }
}

/// One run: a fresh server thread, the load, the server's exit.
fn one(kind: Server, cfg: &Config, pat: &Pattern) -> Run {
    let (h, addr) = spawn_server(kind, cfg.conns, cfg.server_cpu, cfg.rt);
    let run = drive(cfg, addr, h.as_pthread_t(), pat);
    h.join().expect("server thread");
    run
}

// ---------------------------------------------------------------------------------
// Report

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn loadavg() -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open("/proc/loadavg") {
        let _ = f.read_to_string(&mut s);
    }
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// "median (min–max)" of `v`.
fn mr(v: &[f64], scale: f64, prec: usize) -> String {
    let mut w: Vec<f64> = v.iter().map(|x| x * scale).collect();
    let (m, lo, hi) = median_range(&mut w);
    format!("{m:.prec$} ({lo:.prec$}-{hi:.prec$})")
}

fn median(v: &[f64]) -> f64 {
    median_range(&mut v.to_vec()).0
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let rounds: usize = env_or("TCP_ECHO_ROUNDS", if bench { 7 } else { 1 });
    let conns: usize = env_or("TCP_ECHO_CONNS", 32);
    let depth: usize = env_or("TCP_ECHO_DEPTH", 4);
    let ms: u64 = env_or("TCP_ECHO_MS", if bench { 400 } else { 100 });
    let mut servers: Vec<Server> = std::env::var("TCP_ECHO_SERVERS")
        .unwrap_or_else(|_| "proactor,multishot,tokio,monoio".into())
        .split(',')
        .map(|s| Server::parse(s).unwrap_or_else(|| panic!("unknown server {s:?}")))
        .collect();
    if let Err(e) = IoUring::new(8) {
        // The load generator needs io_uring too: nothing to compare without it.
        println!("tcp_echo: io_uring unavailable ({e}), no comparison");
        return;
    }
    servers.dedup();
    let sizes: Vec<usize> = std::env::var("TCP_ECHO_SIZES")
        .unwrap_or_else(|_| "64,4096".into())
        .split(',')
        .map(|s| s.trim().parse().expect("message size"))
        .collect();
    assert!(sizes.iter().all(|&s| (1..=MAX_MSG).contains(&s)));
    assert!(conns > 0 && depth > 0 && !servers.is_empty());
    let cpus = allowed_cpus();
    let (server_cpu, client_cpu) = match cpus.as_slice() {
        [a, b, ..] => (Some(*a), Some(*b)),
        _ => (None, None),
    };
    if let Some(c) = client_cpu {
        pin(c);
    }
    let rt = env_or("TCP_ECHO_RT", 0u8) == 1 && realtime();
    let pat = Pattern::new();
    let load_before = loadavg();
    println!(
        "tcp_echo: {conns} connections x {depth} messages in flight, buffers {BUF} B, {rounds} interleaved rounds of {ms} ms (+100 ms warm-up) per server and size; server on CPU {}, load generator on CPU {}, {}; load average before: {load_before}",
        server_cpu.map_or("any".into(), |c| c.to_string()),
        client_cpu.map_or("any".into(), |c| c.to_string()),
        if rt { "both SCHED_FIFO" } else { "normal scheduling" },
    );
    for s in &servers {
        println!("  {:<9} {}", s.name(), s.describe());
    }
    // runs[size][server][round]
    let mut runs = vec![vec![Vec::<Run>::new(); servers.len()]; sizes.len()];
    for r in 0..rounds {
        for (zi, &size) in sizes.iter().enumerate() {
            let cfg = Config {
                conns,
                depth,
                size,
                warmup: Duration::from_millis(100),
                measure: Duration::from_millis(ms),
                server_cpu,
                rt,
            };
            // Rotate the order each round so that no server always runs first.
            for k in 0..servers.len() {
                let si = (k + r) % servers.len();
                runs[zi][si].push(one(servers[si], &cfg, &pat));
            }
        }
    }
    let load_after = loadavg();
    let idx = |k: Server| servers.iter().position(|&s| s == k);
    for (zi, &size) in sizes.iter().enumerate() {
        println!("\nmessage size {size} B (median over {rounds} rounds, min-max in parentheses)");
        println!(
            "  {:<9} {:>26} {:>22} {:>24} {:>20} {:>5} {:>5} {:>9}",
            "server",
            "requests/s (k)",
            "p50 us",
            "p99 us",
            "CPU us/request",
            "busy",
            "gen",
            "alloc/req"
        );
        for (si, s) in servers.iter().enumerate() {
            let v = &runs[zi][si];
            let col = |f: fn(&Run) -> f64| v.iter().map(f).collect::<Vec<f64>>();
            println!(
                "  {:<9} {:>26} {:>22} {:>24} {:>20} {:>5.2} {:>5.2} {:>9.3}",
                s.name(),
                mr(&col(|r| r.rps), 1e-3, 1),
                mr(&col(|r| r.p50_us), 1.0, 1),
                mr(&col(|r| r.p99_us), 1.0, 0),
                mr(&col(|r| r.cpu_us_per_req), 1.0, 2),
                median(&col(|r| r.busy)),
                median(&col(|r| r.gen_busy)),
                median(&col(|r| r.allocs_per_req)),
            );
        }
        let ratio = |a: usize, b: usize, f: fn(&Run) -> f64| -> Vec<f64> {
            runs[zi][a]
                .iter()
                .zip(&runs[zi][b])
                .map(|(x, y)| f(x) / f(y))
                .collect()
        };
        for (name, k) in [
            ("proactor", Server::Proactor),
            ("multishot", Server::Multishot),
        ] {
            let Some(a) = idx(k) else { continue };
            for (other, target) in [(Server::Tokio, 1.0), (Server::Monoio, 0.95)] {
                let Some(b) = idx(other) else { continue };
                let rps = ratio(a, b, |r| r.rps);
                let p99 = ratio(a, b, |r| r.p99_us);
                let cpu = ratio(a, b, |r| r.cpu_us_per_req);
                let verdict = if median(&rps) >= target {
                    "met"
                } else {
                    "MISSED"
                };
                let p99_verdict = match other {
                    Server::Tokio if median(&p99) <= 1.0 => ", p99 no worse than tokio: met",
                    Server::Tokio => ", p99 no worse than tokio: MISSED",
                    _ => "",
                };
                println!(
                    "  {name} / {}: requests/s {} (target >= {target}: {verdict}), p99 {}, CPU/request {}{p99_verdict}",
                    other.name(),
                    mr(&rps, 1.0, 3),
                    mr(&p99, 1.0, 3),
                    mr(&cpu, 1.0, 3),
                );
            }
        }
        if let (Some(a), Some(b)) = (idx(Server::Multishot), idx(Server::Proactor)) {
            println!(
                "  multishot / single-shot recv: requests/s {}, CPU/request {}",
                mr(&ratio(a, b, |r| r.rps), 1.0, 3),
                mr(&ratio(a, b, |r| r.cpu_us_per_req), 1.0, 3),
            );
        }
        for k in [Server::Proactor, Server::Multishot, Server::Epoll] {
            if let Some(a) = idx(k) {
                let worst = runs[zi][a]
                    .iter()
                    .max_by_key(|r| r.allocs)
                    .copied()
                    .unwrap_or_default();
                println!(
                    "  {} steady-state heap allocations per request (whole process, worst round): {:.6} ({} in {} requests); target 0: {}",
                    k.name(),
                    worst.allocs_per_req,
                    worst.allocs,
                    worst.reqs,
                    if worst.allocs == 0 { "met" } else { "MISSED" }
                );
            }
        }
    }
    println!("\nload average before: {load_before}; after: {load_after} (2-core machine: ratios are measured under that load)");
    let _ = std::io::stdout().flush();
}
