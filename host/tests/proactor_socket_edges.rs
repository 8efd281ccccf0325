//! Socket, file and edge scenarios, run like `proactor_sockets.rs`: each written
//! once and run on io_uring (native, no single issuer, every capability emulated)
//! and on epoll (see `conformance!` at the end). Loopback only; every wait bounded.
//!
//! Scenarios (one function each):
//! zero-copy send: data delivered with one completion and the buffer back intact;
//! the buffer held while the socket is full and released only after the peer read
//! (and, natively, after the kernel's notification); a closed peer (`EPIPE`, one
//! completion); cancelling a blocked one (exactly one completion, buffer back); a
//! connected UDP datagram; through a future; 16 in flight on 16 connections; a
//! registered socket; an empty buffer; a Unix stream (zero-copy refused by the
//! kernel, sent plainly); in a linked sequence with a plain send (order kept); a
//! 4 MiB transfer through partial sends; the capability reported per configuration;
//! teardown with one blocked;
//! leased receive slabs: a recv into a leased chunk (lease back on drop); leasing
//! every chunk then returning one; end of stream; cancelling a pending one (lease
//! back); a length beyond the chunk refused; a UDP datagram truncated to the length;
//! leases dropped on another thread; no slab registered; a registered socket; a
//! reset connection; eight in flight;
//! edges: a reset that arrives before the recv; a reset in the middle of a blocked
//! send; recv after shutting down one's own read side; shutdown of both sides;
//! shutdown of an unconnected socket; closing a descriptor twice; a UDP recv
//! truncating a datagram (boundaries kept); an empty datagram; a connected UDP
//! socket whose peer port is closed (`ECONNREFUSED`); an oversize datagram
//! (`EMSGSIZE`); Unix datagram boundaries; a Unix datagram to a missing path; a
//! Unix datagram to a closed peer; a refused connect with a timeout (refusal, not
//! timeout); a connect timeout firing against a full backlog; connecting a
//! connected socket (`EISCONN`); accept on a socket that does not listen; recv on a
//! listener; socket operations on an invalid descriptor (`EBADF`) and on a regular
//! file (`ENOTSOCK`); zero-length recv and send; send on an unconnected TCP socket;
//! a cancelled accept losing no connection; cancelling a multishot accept after it
//! delivered connections (none lost); cancelling an active multishot recv (every
//! buffer returned); a multishot recv ended by a reset; a multishot recv of UDP
//! datagrams (one chunk each); two multishot recvs sharing one group; multishot recv
//! and multishot accept on registered sockets; 128 recvs in flight; 16 linked sends
//! keeping their order; a bidirectional 1 MiB transfer; a recv timeout on a
//! registered socket; a recv with a timeout ended by a reset (`ECONNRESET`, not
//! `ETIMEDOUT`); teardown with every socket kind in flight, the sockets usable after;
//! `in_flight` over socket operations; cancelling one pending operation of every
//! socket kind; data then end of stream in order; a mixed batch of socket operations;
//! files: reads at and beyond the end; `O_EXCL` on an existing file; read on a
//! write-only descriptor; read of a directory; a sparse write reading back zeros; 64
//! reads of one file in flight; fsync of a socket; readv/writev of 16 buffers;
//! `O_APPEND` writes; a fixed read beyond the end.

use std::ffi::CString;
use std::future::Future;
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::task::Wake;
use std::time::{Duration, Instant};

mod proactor_common;
use gpu_uring::proactor::net::{SockAddr, Socket, SocketKind};
use gpu_uring::proactor::*;
use proactor_common::sock::*;
use proactor_common::Config;

fn lo() -> SockAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into()
}

fn pattern(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed) ^ (i >> 9)) as u8)
        .collect()
}

/// Fills a connection until the sender would block and stays blocked: both buffers
/// are set small (which also stops the kernel from growing them), then the sender
/// writes until two rounds a few milliseconds apart move nothing.
fn fill(s: &Socket, peer: &Socket) -> usize {
    use rustix::net::sockopt;
    sockopt::set_socket_send_buffer_size(s, 16 * 1024).unwrap();
    sockopt::set_socket_recv_buffer_size(peer, 16 * 1024).unwrap();
    let chunk = [0x5au8; 65536];
    let (mut n, mut idle) = (0, 0);
    for _ in 0..1000 {
        let mut moved = 0;
        while let Ok(k) = rustix::net::send(s, &chunk, rustix::net::SendFlags::DONTWAIT) {
            moved += k;
        }
        n += moved;
        idle = if moved == 0 { idle + 1 } else { 0 };
        if idle == 2 {
            return n;
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    panic!("the connection never filled");
}

/// Reads what is there now from a non-blocking socket.
fn drain_now(s: &Socket, out: &mut Vec<u8>) {
    let mut buf = vec![0u8; 1 << 16];
    while let Ok((k, _)) = rustix::net::recv(s, &mut buf, rustix::net::RecvFlags::DONTWAIT) {
        if k == 0 {
            return;
        }
        out.extend_from_slice(&buf[..k]);
    }
}

/// Drains `s` while polling until `n` completions arrived; returns them and the bytes.
fn drain_until(p: &Proactor, s: &Socket, n: usize) -> (Vec<Completion>, Vec<u8>) {
    let mut got = Vec::new();
    let mut out = Vec::new();
    let end = Instant::now() + LIMIT;
    while out.len() < n {
        assert!(Instant::now() < end, "timed out: {out:?}");
        drain_now(s, &mut got);
        p.poll(Some(Duration::from_millis(5)), |c| out.push(c))
            .unwrap();
    }
    drain_now(s, &mut got);
    (out, got)
}

fn zc_native(p: &Proactor) -> bool {
    p.capabilities().is_native(Capability::ZeroCopySend)
}

fn recv_all(p: &Proactor, s: &Socket, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        let c = one(p, Operation::recv(s, vec![0; 65536]));
        let k = c.outcome.ok().expect("recv") as usize;
        assert!(k > 0, "early end of stream at {}", got.len());
        got.extend_from_slice(&c.resources.into_buf().unwrap()[..k]);
    }
    got
}

fn poll_future<F: Future + Unpin>(p: &Proactor, f: &mut F) -> F::Output {
    struct Nothing;
    impl Wake for Nothing {
        fn wake(self: Arc<Self>) {}
    }
    let waker = std::task::Waker::from(Arc::new(Nothing));
    let mut cx = std::task::Context::from_waker(&waker);
    let end = Instant::now() + LIMIT;
    loop {
        if let std::task::Poll::Ready(v) = std::pin::Pin::new(&mut *f).poll(&mut cx) {
            return v;
        }
        assert!(Instant::now() < end, "future never completed");
        p.poll(Some(Duration::from_millis(10)), |_| {}).unwrap();
    }
}

// ---------------------------------------------------------------------------------
// Zero-copy send

fn zc_send_delivers(p: &Proactor) {
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    let before = p.zero_copy_notifications();
    let data = pattern(100_000, 1);
    let c = one(p, Operation::send_zc(&cli, data.clone()));
    assert!(!c.more);
    let n = c.outcome.ok().expect("zero-copy send") as usize;
    assert!(n > 0 && n <= data.len());
    assert_eq!(c.resources.into_buf().unwrap(), data, "buffer back intact");
    assert_eq!(recv_all(p, &srv, n), data[..n]);
    let notes = p.zero_copy_notifications() - before;
    assert_eq!(notes, u64::from(zc_native(p)), "one notification natively");
    assert_quiet(p, Duration::from_millis(10));
}

fn zc_send_held_until_peer_reads(p: &Proactor) {
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    let filled = fill(&cli, &srv);
    let before = p.zero_copy_notifications();
    let data = pattern(256 * 1024, 2);
    let id = p.submit(Operation::send_zc(&cli, data.clone())).unwrap();
    // The socket is full: the operation holds the buffer and completes nothing.
    assert_quiet(p, Duration::from_millis(30));
    assert_eq!(p.in_flight(), 1);
    let (cs, got) = drain_until(p, &srv, 1);
    let c = &cs[0];
    assert_eq!(c.id, id);
    let n = c.outcome.ok().expect("send") as usize;
    assert!(n > 0);
    let Resources::Buf(b) = &c.resources else {
        panic!("{c:?}")
    };
    assert_eq!(b, &data, "the buffer was not touched");
    let mut got = got;
    while got.len() < filled + n {
        got.extend(recv_all(p, &srv, 1));
    }
    assert_eq!(&got[filled..filled + n], &data[..n]);
    if zc_native(p) {
        assert_eq!(p.zero_copy_notifications() - before, 1);
    }
}

fn zc_send_to_closed_peer(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    drop(b);
    let c = one(p, Operation::send_zc(&a, b"gone".to_vec()));
    assert_eq!(errno_of(&c.outcome), Some(libc::EPIPE), "{c:?}");
    assert_eq!(c.resources.into_buf().unwrap(), b"gone");
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    srv.set_linger(Some(Duration::ZERO)).unwrap();
    drop(srv);
    std::thread::sleep(Duration::from_millis(10));
    let c = one(p, Operation::send_zc(&cli, b"reset".to_vec()));
    let e = errno_of(&c.outcome);
    assert!(
        matches!(e, Some(libc::EPIPE) | Some(libc::ECONNRESET)),
        "{c:?}"
    );
    assert_quiet(p, Duration::from_millis(10));
}

fn zc_send_cancel_blocked(p: &Proactor) {
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    fill(&cli, &srv);
    let data = pattern(64 * 1024, 3);
    let id = p.submit(Operation::send_zc(&cli, data.clone())).unwrap();
    assert_quiet(p, Duration::from_millis(20));
    assert_eq!(p.cancel(id), CancelStatus::Requested);
    let c = collect(p, 1).pop().unwrap();
    assert_eq!(c.id, id);
    assert!(!c.more);
    assert!(
        c.outcome.is_cancelled() || c.outcome.ok().is_some(),
        "{c:?}"
    );
    assert_eq!(c.resources.into_buf().unwrap(), data);
    assert_eq!(p.cancel(id), CancelStatus::NotFound);
    assert_quiet(p, Duration::from_millis(20));
    assert_eq!(p.in_flight(), 0);
}

fn zc_send_udp(p: &Proactor) {
    let a = Socket::new(SocketKind::UdpV4).unwrap();
    let b = Socket::new(SocketKind::UdpV4).unwrap();
    a.bind(&lo()).unwrap();
    b.bind(&lo()).unwrap();
    assert_eq!(
        one(p, Operation::connect(&a, b.local_addr().unwrap())).outcome,
        Outcome::Ok(0)
    );
    let c = one(p, Operation::send_zc(&a, pattern(1200, 4)));
    assert_eq!(c.outcome, Outcome::Ok(1200));
    let c = one(p, Operation::recv(&b, vec![0; 2000]));
    assert_eq!(c.outcome, Outcome::Ok(1200));
    assert_eq!(c.resources.into_buf().unwrap()[..1200], pattern(1200, 4));
}

fn zc_send_future(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let mut f = p
        .submit_future(Operation::send_zc(&a, b"future".to_vec()))
        .unwrap();
    let c = poll_future(p, &mut f);
    assert_eq!(c.outcome, Outcome::Ok(6));
    assert_eq!(c.resources.into_buf().unwrap(), b"future");
    assert_eq!(recv_all(p, &b, 6), b"future");
}

fn zc_send_many_in_flight(p: &Proactor) {
    let lst = Socket::new(SocketKind::TcpV4).unwrap();
    lst.bind(&lo()).unwrap();
    lst.listen(32).unwrap();
    let pairs: Vec<(Socket, Socket)> = (0..16)
        .map(|_| {
            let c =
                std::net::TcpStream::connect(lst.local_addr().unwrap().as_inet().unwrap()).unwrap();
            let (s, _) = rustix::net::accept_with(&lst, rustix::net::SocketFlags::CLOEXEC)
                .map(|fd| (fd, ()))
                .unwrap();
            c.set_nonblocking(true).unwrap();
            (
                Socket::import(OwnedFd::from(c)).unwrap(),
                Socket::import(s).unwrap(),
            )
        })
        .collect();
    let mut ops: Vec<Operation> = pairs
        .iter()
        .enumerate()
        .map(|(i, (c, _))| Operation::send_zc(c, pattern(5000, i as u32)).user_data(i as u64))
        .collect();
    p.submit_batch(&mut ops, &mut Vec::new()).unwrap();
    let cs = collect(p, 16);
    let mut seen = [false; 16];
    for c in cs {
        assert_eq!(c.outcome, Outcome::Ok(5000), "{c:?}");
        assert!(!std::mem::replace(&mut seen[c.user_data as usize], true));
    }
    for (i, (_, s)) in pairs.iter().enumerate() {
        assert_eq!(recv_all(p, s, 5000), pattern(5000, i as u32));
    }
    assert_quiet(p, Duration::from_millis(10));
}

fn zc_send_fixed_socket(p: &Proactor) {
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    p.register_files(&[cli.as_fd()]).unwrap();
    let c = one(
        p,
        Operation::send_zc(Target::Fixed(0), b"fixed zc".to_vec()),
    );
    assert_eq!(c.outcome, Outcome::Ok(8));
    assert_eq!(recv_all(p, &srv, 8), b"fixed zc");
}

fn zc_send_empty(p: &Proactor) {
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    let c = one(p, Operation::send_zc(&cli, Vec::new()));
    assert_eq!(c.outcome, Outcome::Ok(0));
    echo_once(p, &cli, &srv, b"after");
}

fn zc_send_unix_stream(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let data = pattern(3000, 5);
    let c = one(p, Operation::send_zc(&a, data.clone()));
    assert_eq!(c.outcome, Outcome::Ok(3000), "{c:?}");
    assert_eq!(recv_all(p, &b, 3000), data);
}

fn zc_send_linked(p: &Proactor) {
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    let mut ops = vec![
        Operation::send_zc(&cli, b"first,".to_vec()),
        Operation::send(&cli, b"second".to_vec()),
    ];
    let mut ids = Vec::new();
    p.submit_linked(&mut ops, &mut ids).unwrap();
    let cs = collect(p, 2);
    assert!(cs.iter().all(|c| c.outcome.ok().is_some()), "{cs:?}");
    assert_eq!(recv_all(p, &srv, 12), b"first,second");
}

fn zc_send_large(p: &Proactor) {
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    let data = pattern(4 << 20, 6);
    let mut sent = 0usize;
    let mut got = Vec::with_capacity(data.len());
    let mut busy = false;
    let end = Instant::now() + LIMIT;
    while got.len() < data.len() {
        assert!(Instant::now() < end, "stalled at {}", got.len());
        if !busy && sent < data.len() {
            let chunk = data[sent..(sent + 512 * 1024).min(data.len())].to_vec();
            p.submit(Operation::send_zc(&cli, chunk)).unwrap();
            busy = true;
        }
        drain_now(&srv, &mut got);
        p.poll(Some(Duration::from_millis(2)), |c| {
            sent += c.outcome.ok().expect("send") as usize;
            busy = false;
        })
        .unwrap();
    }
    assert_eq!(got, data);
}

fn zc_capability_reported(p: &Proactor) {
    let s = p.capabilities().get(Capability::ZeroCopySend);
    match p.backend() {
        BackendKind::Epoll => assert_eq!(s, Support::Emulated),
        BackendKind::IoUring => assert_ne!(s, Support::Absent),
    }
    let masked = Proactor::new(Options {
        backend: BackendChoice::IoUring,
        allowed_capabilities: CapabilitySet::ALL.without(Capability::ZeroCopySend),
        ..Options::default()
    });
    if let Ok(m) = masked {
        assert_eq!(
            m.capabilities().get(Capability::ZeroCopySend),
            Support::Emulated
        );
    }
}

fn zc_teardown_blocked(p: &Proactor) {
    let opts = match p.backend() {
        BackendKind::Epoll => BackendChoice::Epoll,
        BackendKind::IoUring => BackendChoice::IoUring,
    };
    let q = Proactor::new(Options {
        backend: opts,
        allowed_capabilities: p_caps(p),
        ..Options::default()
    })
    .unwrap();
    let (_l, cli, srv) = tcp_pair(&q, SocketKind::TcpV4).unwrap();
    fill(&cli, &srv);
    q.submit(Operation::send_zc(&cli, pattern(100_000, 7)))
        .unwrap();
    q.poll(Some(Duration::from_millis(5)), |_| {}).unwrap();
    let t = Instant::now();
    drop(q);
    assert!(t.elapsed() < Duration::from_secs(3), "teardown hung");
}

/// The allowed set that reproduces `p`'s native capabilities.
fn p_caps(p: &Proactor) -> CapabilitySet {
    let c = p.capabilities();
    Capability::ALL
        .iter()
        .filter(|k| c.is_native(**k))
        .fold(CapabilitySet::NONE, |s, k| s.with(*k))
}

// ---------------------------------------------------------------------------------
// Leased receive slabs

fn slab_recv_fixed(p: &Proactor) {
    p.register_buffers(4, 4096).unwrap();
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    let buf = p.lease_buffer().unwrap();
    assert_eq!(p.free_buffers(), 3);
    let id = p.submit(Operation::recv_fixed(&srv, buf, 4096)).unwrap();
    assert_quiet(p, Duration::from_millis(10));
    rustix::net::send(&cli, b"into a slab", rustix::net::SendFlags::empty()).unwrap();
    let c = collect(p, 1).pop().unwrap();
    assert_eq!(c.id, id);
    assert_eq!(c.outcome, Outcome::Ok(11));
    let buf = c.resources.into_fixed().unwrap();
    assert_eq!(&buf[..11], b"into a slab");
    assert_eq!(p.free_buffers(), 3);
    drop(buf);
    assert_eq!(p.free_buffers(), 4, "the lease returns on drop");
}

fn slab_lease_all(p: &Proactor) {
    p.register_buffers(3, 512).unwrap();
    let leases: Vec<FixedBuf> = (0..3).map(|_| p.lease_buffer().unwrap()).collect();
    let mut idx: Vec<u16> = leases.iter().map(|b| b.index()).collect();
    idx.sort();
    assert_eq!(idx, [0, 1, 2]);
    assert!(p.lease_buffer().is_none());
    assert_eq!(p.free_buffers(), 0);
    let mut it = leases.into_iter();
    let first = it.next().unwrap();
    let i = first.index();
    drop(first);
    assert_eq!(p.lease_buffer().unwrap().index(), i);
}

fn slab_recv_fixed_end_of_stream(p: &Proactor) {
    p.register_buffers(2, 1024).unwrap();
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let id = p
        .submit(Operation::recv_fixed(&b, p.lease_buffer().unwrap(), 1024))
        .unwrap();
    drop(a);
    let c = collect(p, 1).pop().unwrap();
    assert_eq!((c.id, c.outcome), (id, Outcome::Ok(0)));
    assert!(c.resources.into_fixed().is_some());
}

fn slab_recv_fixed_cancel(p: &Proactor) {
    p.register_buffers(2, 1024).unwrap();
    let (_a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let id = p
        .submit(Operation::recv_fixed(&b, p.lease_buffer().unwrap(), 1024))
        .unwrap();
    assert_quiet(p, Duration::from_millis(10));
    assert_eq!(p.cancel(id), CancelStatus::Requested);
    let c = collect(p, 1).pop().unwrap();
    assert_eq!(c.outcome, Outcome::Cancelled);
    assert_eq!(p.free_buffers(), 1);
    drop(c);
    assert_eq!(p.free_buffers(), 2);
}

fn slab_recv_fixed_len_refused(p: &Proactor) {
    p.register_buffers(1, 256).unwrap();
    let (_a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let e = p
        .submit(Operation::recv_fixed(&b, p.lease_buffer().unwrap(), 257))
        .unwrap_err();
    assert!(matches!(e.error, Error::InvalidArgument(_)), "{e:?}");
    assert_eq!(e.op.name(), "recv_fixed");
    assert_eq!(p.free_buffers(), 0, "the refused op still holds the lease");
    drop(e);
    assert_eq!(p.free_buffers(), 1);
}

fn slab_recv_fixed_udp_truncates(p: &Proactor) {
    p.register_buffers(1, 4096).unwrap();
    let a = Socket::new(SocketKind::UdpV4).unwrap();
    let b = Socket::new(SocketKind::UdpV4).unwrap();
    a.bind(&lo()).unwrap();
    b.bind(&lo()).unwrap();
    one(p, Operation::connect(&a, b.local_addr().unwrap()));
    one(p, Operation::send(&a, pattern(1000, 8)));
    one(p, Operation::send(&a, b"next".to_vec()));
    let c = one(p, Operation::recv_fixed(&b, p.lease_buffer().unwrap(), 100));
    assert_eq!(c.outcome, Outcome::Ok(100));
    assert_eq!(
        c.resources.into_fixed().unwrap()[..100],
        pattern(1000, 8)[..100]
    );
    let c = one(p, Operation::recv_fixed(&b, p.lease_buffer().unwrap(), 100));
    assert_eq!(
        c.outcome,
        Outcome::Ok(4),
        "the rest of the datagram is gone"
    );
}

fn slab_leases_cross_threads(p: &Proactor) {
    p.register_buffers(8, 64).unwrap();
    let leases: Vec<FixedBuf> = (0..8).map(|_| p.lease_buffer().unwrap()).collect();
    std::thread::spawn(move || drop(leases)).join().unwrap();
    assert_eq!(p.free_buffers(), 8);
    assert!(p.lease_buffer().is_some());
}

fn slab_unregistered(p: &Proactor) {
    assert!(p.lease_buffer().is_none());
    assert_eq!(p.free_buffers(), 0);
}

fn slab_recv_fixed_fixed_socket(p: &Proactor) {
    p.register_buffers(2, 128).unwrap();
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    p.register_files(&[b.as_fd()]).unwrap();
    rustix::net::send(&a, b"both fixed", rustix::net::SendFlags::empty()).unwrap();
    let c = one(
        p,
        Operation::recv_fixed(Target::Fixed(0), p.lease_buffer().unwrap(), 128),
    );
    assert_eq!(c.outcome, Outcome::Ok(10));
    assert_eq!(&c.resources.into_fixed().unwrap()[..10], b"both fixed");
}

fn slab_recv_fixed_reset(p: &Proactor) {
    p.register_buffers(1, 128).unwrap();
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    let id = p
        .submit(Operation::recv_fixed(&cli, p.lease_buffer().unwrap(), 128))
        .unwrap();
    assert_quiet(p, Duration::from_millis(10));
    srv.set_linger(Some(Duration::ZERO)).unwrap();
    drop(srv);
    let c = collect(p, 1).pop().unwrap();
    assert_eq!(c.id, id);
    assert_eq!(errno_of(&c.outcome), Some(libc::ECONNRESET), "{c:?}");
}

fn slab_many_in_flight(p: &Proactor) {
    p.register_buffers(8, 256).unwrap();
    let pairs: Vec<(Socket, Socket)> = (0..8)
        .map(|_| Socket::pair(SocketKind::UnixStream).unwrap())
        .collect();
    for (i, (_, b)) in pairs.iter().enumerate() {
        p.submit(Operation::recv_fixed(b, p.lease_buffer().unwrap(), 256).user_data(i as u64))
            .unwrap();
    }
    assert!(p.lease_buffer().is_none());
    for (i, (a, _)) in pairs.iter().enumerate() {
        rustix::net::send(
            a,
            &pattern(100 + i, i as u32),
            rustix::net::SendFlags::empty(),
        )
        .unwrap();
    }
    for c in collect(p, 8) {
        let i = c.user_data as usize;
        assert_eq!(c.outcome, Outcome::Ok(100 + i as u32));
        assert_eq!(
            c.resources.into_fixed().unwrap()[..100 + i],
            pattern(100 + i, i as u32)
        );
    }
    assert_eq!(p.free_buffers(), 8);
}

// ---------------------------------------------------------------------------------
// Edges

fn reset_before_recv(p: &Proactor) {
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    srv.set_linger(Some(Duration::ZERO)).unwrap();
    drop(srv);
    std::thread::sleep(Duration::from_millis(10));
    let c = one(p, Operation::recv(&cli, vec![0; 8]));
    assert_eq!(errno_of(&c.outcome), Some(libc::ECONNRESET), "{c:?}");
    let c = one(p, Operation::recv(&cli, vec![0; 8]));
    assert_eq!(c.outcome, Outcome::Ok(0), "after the reset: end of stream");
}

fn reset_mid_send(p: &Proactor) {
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    fill(&cli, &srv);
    let id = p.submit(Operation::send(&cli, vec![1; 1 << 20])).unwrap();
    assert_quiet(p, Duration::from_millis(10));
    srv.set_linger(Some(Duration::ZERO)).unwrap();
    drop(srv);
    let c = collect(p, 1).pop().unwrap();
    assert_eq!(c.id, id);
    assert!(
        matches!(errno_of(&c.outcome), Some(libc::ECONNRESET | libc::EPIPE)),
        "{c:?}"
    );
}

fn recv_after_own_shutdown_read(p: &Proactor) {
    let (_a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    assert_eq!(
        one(p, Operation::shutdown(&b, Shutdown::Read)).outcome,
        Outcome::Ok(0)
    );
    assert_eq!(
        one(p, Operation::recv(&b, vec![0; 8])).outcome,
        Outcome::Ok(0)
    );
}

fn shutdown_both(p: &Proactor) {
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    assert_eq!(
        one(p, Operation::shutdown(&cli, Shutdown::Both)).outcome,
        Outcome::Ok(0)
    );
    assert_eq!(
        one(p, Operation::recv(&srv, vec![0; 8])).outcome,
        Outcome::Ok(0)
    );
    assert_eq!(
        one(p, Operation::recv(&cli, vec![0; 8])).outcome,
        Outcome::Ok(0)
    );
    let c = one(p, Operation::send(&cli, b"x".to_vec()));
    assert_eq!(errno_of(&c.outcome), Some(libc::EPIPE));
}

fn shutdown_unconnected(p: &Proactor) {
    let s = Socket::new(SocketKind::TcpV4).unwrap();
    let c = one(p, Operation::shutdown(&s, Shutdown::Both));
    assert_eq!(errno_of(&c.outcome), Some(libc::ENOTCONN), "{c:?}");
}

fn double_close(p: &Proactor) {
    let (a, _b) = Socket::pair(SocketKind::UnixStream).unwrap();
    // A number far above anything else this process opens (near the limit, at most
    // 15 000), so that no other test reuses it between the two closes.
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1024);
    let at = soft.saturating_sub(16).min(15_000) as i32;
    let high = rustix::io::fcntl_dupfd_cloexec(&a, at).unwrap();
    let n = high.as_raw_fd();
    assert_eq!(one(p, Operation::close(high)).outcome, Outcome::Ok(0));
    // SAFETY: `n` was closed just above; this deliberately closes it again.
    let again = unsafe { OwnedFd::from_raw_fd(n) };
    let c = one(p, Operation::close(again));
    assert_eq!(errno_of(&c.outcome), Some(libc::EBADF), "{c:?}");
}

fn udp_pair(p: &Proactor) -> (Socket, Socket) {
    let a = Socket::new(SocketKind::UdpV4).unwrap();
    let b = Socket::new(SocketKind::UdpV4).unwrap();
    a.bind(&lo()).unwrap();
    b.bind(&lo()).unwrap();
    one(p, Operation::connect(&a, b.local_addr().unwrap()));
    one(p, Operation::connect(&b, a.local_addr().unwrap()));
    (a, b)
}

fn udp_recv_truncates(p: &Proactor) {
    let (a, b) = udp_pair(p);
    one(p, Operation::send(&a, pattern(500, 9)));
    one(p, Operation::send(&a, b"two".to_vec()));
    let c = one(p, Operation::recv(&b, vec![0; 50]));
    assert_eq!(c.outcome, Outcome::Ok(50));
    assert_eq!(c.resources.into_buf().unwrap(), pattern(500, 9)[..50]);
    let c = one(p, Operation::recv(&b, vec![0; 50]));
    assert_eq!(c.outcome, Outcome::Ok(3));
}

fn udp_empty_datagram(p: &Proactor) {
    let (a, b) = udp_pair(p);
    assert_eq!(
        one(p, Operation::send(&a, Vec::new())).outcome,
        Outcome::Ok(0)
    );
    assert_eq!(
        one(p, Operation::recv(&b, vec![0; 8])).outcome,
        Outcome::Ok(0)
    );
    one(p, Operation::send(&a, b"more".to_vec()));
    assert_eq!(
        one(p, Operation::recv(&b, vec![0; 8])).outcome,
        Outcome::Ok(4),
        "an empty datagram is not an end of stream"
    );
}

fn udp_connected_port_closed(p: &Proactor) {
    let a = Socket::new(SocketKind::UdpV4).unwrap();
    a.bind(&lo()).unwrap();
    let gone = Socket::new(SocketKind::UdpV4).unwrap();
    gone.bind(&lo()).unwrap();
    let addr = gone.local_addr().unwrap();
    drop(gone);
    one(p, Operation::connect(&a, addr));
    let c = one(p, Operation::send(&a, b"anyone?".to_vec()));
    assert_eq!(c.outcome, Outcome::Ok(7));
    let c = one(p, Operation::recv(&a, vec![0; 8]));
    assert_eq!(errno_of(&c.outcome), Some(libc::ECONNREFUSED), "{c:?}");
}

fn udp_oversize(p: &Proactor) {
    let (a, _b) = udp_pair(p);
    let c = one(p, Operation::send(&a, vec![0; 70_000]));
    assert_eq!(errno_of(&c.outcome), Some(libc::EMSGSIZE), "{c:?}");
}

fn unix_datagram_boundaries(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixDatagram).unwrap();
    one(p, Operation::send(&a, b"abc".to_vec()));
    one(p, Operation::send(&a, b"defgh".to_vec()));
    assert_eq!(
        one(p, Operation::recv(&b, vec![0; 64])).outcome,
        Outcome::Ok(3)
    );
    assert_eq!(
        one(p, Operation::recv(&b, vec![0; 64])).outcome,
        Outcome::Ok(5)
    );
}

fn unix_datagram_missing_path(p: &Proactor) {
    let dir = tempfile::tempdir().unwrap();
    let s = Socket::new(SocketKind::UnixDatagram).unwrap();
    let to = SockAddr::unix(dir.path().join("nobody")).unwrap();
    let c = one(p, Operation::sendmsg(&s, b"x".to_vec(), Some(to)));
    assert_eq!(errno_of(&c.outcome), Some(libc::ENOENT), "{c:?}");
}

fn unix_datagram_peer_closed(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixDatagram).unwrap();
    drop(b);
    let c = one(p, Operation::send(&a, b"x".to_vec()));
    assert!(
        matches!(errno_of(&c.outcome), Some(libc::ECONNREFUSED | libc::EPIPE)),
        "{c:?}"
    );
}

fn connect_timeout_refused(p: &Proactor) {
    let probe = Socket::new(SocketKind::TcpV4).unwrap();
    probe.bind(&lo()).unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let cli = Socket::new(SocketKind::TcpV4).unwrap();
    let c = one(
        p,
        Operation::connect_timeout(&cli, addr, Duration::from_secs(5)),
    );
    assert_eq!(errno_of(&c.outcome), Some(libc::ECONNREFUSED), "{c:?}");
}

fn connect_timeout_fires(p: &Proactor) {
    // A listener nobody accepts from, with a backlog of zero: once its queue is
    // full the kernel drops further SYNs, so a connect hangs until its timeout.
    let lst = Socket::new(SocketKind::TcpV4).unwrap();
    lst.bind(&lo()).unwrap();
    lst.listen(0).unwrap();
    let addr = lst.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        let cli = Socket::new(SocketKind::TcpV4).unwrap();
        let c = one(
            p,
            Operation::connect_timeout(&cli, addr.clone(), Duration::from_millis(60)),
        );
        held.push(cli);
        match c.outcome {
            Outcome::Ok(0) => continue,
            o => {
                assert_eq!(errno_of(&o), Some(libc::ETIMEDOUT), "{c:?}");
                return;
            }
        }
    }
    panic!("eight connects to a backlog of zero all succeeded");
}

fn connect_connected(p: &Proactor) {
    let (l, cli, _srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    let c = one(p, Operation::connect(&cli, l.local_addr().unwrap()));
    assert_eq!(errno_of(&c.outcome), Some(libc::EISCONN), "{c:?}");
}

fn accept_not_listening(p: &Proactor) {
    let s = Socket::new(SocketKind::TcpV4).unwrap();
    s.bind(&lo()).unwrap();
    let c = one(p, Operation::accept(&s));
    assert_eq!(errno_of(&c.outcome), Some(libc::EINVAL), "{c:?}");
}

fn recv_on_listener(p: &Proactor) {
    let s = Socket::new(SocketKind::TcpV4).unwrap();
    s.bind(&lo()).unwrap();
    s.listen(1).unwrap();
    let c = one(p, Operation::recv(&s, vec![0; 8]));
    assert_eq!(errno_of(&c.outcome), Some(libc::ENOTCONN), "{c:?}");
}

fn socket_ops_bad_descriptor(p: &Proactor) {
    let ops = [
        Operation::recv(-1, vec![0; 8]),
        Operation::send(-1, vec![0; 8]),
        Operation::send_zc(-1, vec![0; 8]),
        Operation::accept(-1),
        Operation::shutdown(-1, Shutdown::Both),
        Operation::recvmsg(-1, vec![0; 8]),
    ];
    for op in ops {
        let name = op.name();
        let c = one(p, op);
        assert_eq!(errno_of(&c.outcome), Some(libc::EBADF), "{name}: {c:?}");
    }
}

fn socket_ops_on_file(p: &Proactor) {
    let f = tempfile::tempfile().unwrap();
    let ops = [
        Operation::recv(&f, vec![0; 8]),
        Operation::send(&f, vec![0; 8]),
        Operation::send_zc(&f, vec![0; 8]),
        Operation::accept(&f),
        Operation::shutdown(&f, Shutdown::Both),
    ];
    for op in ops {
        let name = op.name();
        let c = one(p, op);
        assert_eq!(errno_of(&c.outcome), Some(libc::ENOTSOCK), "{name}: {c:?}");
    }
}

fn zero_length_recv_send(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    assert_eq!(
        one(p, Operation::send(&a, Vec::new())).outcome,
        Outcome::Ok(0)
    );
    rustix::net::send(&a, b"abc", rustix::net::SendFlags::empty()).unwrap();
    // With data waiting, an empty recv completes at once and consumes nothing.
    assert_eq!(
        one(p, Operation::recv(&b, Vec::new())).outcome,
        Outcome::Ok(0)
    );
    assert_eq!(
        one(p, Operation::recv(&b, vec![0; 8])).outcome,
        Outcome::Ok(3)
    );
}

fn send_unconnected_tcp(p: &Proactor) {
    let s = Socket::new(SocketKind::TcpV4).unwrap();
    let c = one(p, Operation::send(&s, b"x".to_vec()));
    assert!(
        matches!(errno_of(&c.outcome), Some(libc::EPIPE | libc::ENOTCONN)),
        "{c:?}"
    );
}

fn accept_cancel_loses_nothing(p: &Proactor) {
    let lst = Socket::new(SocketKind::TcpV4).unwrap();
    lst.bind(&lo()).unwrap();
    lst.listen(4).unwrap();
    let id = p.submit(Operation::accept(&lst)).unwrap();
    assert_quiet(p, Duration::from_millis(10));
    p.cancel(id);
    assert_eq!(collect(p, 1).pop().unwrap().outcome, Outcome::Cancelled);
    let cli = std::net::TcpStream::connect(lst.local_addr().unwrap().as_inet().unwrap()).unwrap();
    let c = one(p, Operation::accept(&lst));
    let srv = Socket::import(owned(c.outcome.ok().expect("accept"))).unwrap();
    drop(cli);
    assert_eq!(
        one(p, Operation::recv(&srv, vec![0; 4])).outcome,
        Outcome::Ok(0)
    );
}

fn multishot_accept_cancel_after_connections(p: &Proactor) {
    let lst = Socket::new(SocketKind::TcpV4).unwrap();
    lst.bind(&lo()).unwrap();
    lst.listen(8).unwrap();
    let addr = lst.local_addr().unwrap().as_inet().unwrap();
    let id = p.submit(Operation::accept_multishot(&lst)).unwrap();
    let clients: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let mut fds = Vec::new();
    for c in collect(p, 3) {
        assert!(c.more, "{c:?}");
        fds.push(owned(c.outcome.ok().unwrap()));
    }
    p.cancel(id);
    let mut last = collect(p, 1);
    while last[0].more {
        fds.push(owned(last[0].outcome.ok().unwrap()));
        last = collect(p, 1);
    }
    assert_eq!(last[0].outcome, Outcome::Cancelled);
    let late = std::net::TcpStream::connect(addr).unwrap();
    let c = one(p, Operation::accept(&lst));
    fds.push(owned(c.outcome.ok().expect("the late connection waits")));
    assert_eq!(fds.len(), 4);
    drop((clients, late));
}

fn multishot_recv_cancel_active(p: &Proactor) {
    let ring = p.buf_ring(8, 64).unwrap();
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let id = p.submit(Operation::recv_multishot(&b, &ring)).unwrap();
    rustix::net::send(&a, &[1; 100], rustix::net::SendFlags::empty()).unwrap();
    let mut got = Vec::new();
    let mut bytes = 0;
    while bytes < 100 {
        for c in collect(p, 1) {
            assert!(c.more, "{c:?}");
            bytes += c.outcome.ok().unwrap() as usize;
            got.push(c);
        }
    }
    p.cancel(id);
    let mut end = collect(p, 1);
    while end[0].more {
        got.extend(end);
        end = collect(p, 1);
    }
    assert!(
        end[0].outcome.is_cancelled() || end[0].outcome.ok().is_some(),
        "{end:?}"
    );
    drop(got);
    drop(end);
    assert_eq!(ring.available(), 8, "every buffer returned");
}

fn multishot_recv_reset(p: &Proactor) {
    let ring = p.buf_ring(4, 64).unwrap();
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    p.submit(Operation::recv_multishot(&cli, &ring)).unwrap();
    assert_quiet(p, Duration::from_millis(10));
    srv.set_linger(Some(Duration::ZERO)).unwrap();
    drop(srv);
    let c = collect(p, 1).pop().unwrap();
    assert!(!c.more);
    assert_eq!(errno_of(&c.outcome), Some(libc::ECONNRESET), "{c:?}");
    assert_eq!(ring.available(), 4);
}

fn multishot_recv_udp(p: &Proactor) {
    let ring = p.buf_ring(8, 256).unwrap();
    let (a, b) = udp_pair(p);
    let id = p.submit(Operation::recv_multishot(&b, &ring)).unwrap();
    for i in 0..3u32 {
        rustix::net::send(
            &a,
            &pattern(10 + i as usize, i),
            rustix::net::SendFlags::empty(),
        )
        .unwrap();
    }
    let mut sizes = Vec::new();
    let mut chunks = Vec::new();
    while sizes.len() < 3 {
        for c in collect(p, 1) {
            assert!(c.more, "{c:?}");
            sizes.push(c.outcome.ok().unwrap());
            chunks.push(c);
        }
    }
    assert_eq!(sizes, [10, 11, 12], "one chunk per datagram");
    p.cancel(id);
    let mut end = collect(p, 1);
    while end[0].more {
        end = collect(p, 1);
    }
}

fn multishot_recv_shared_group(p: &Proactor) {
    let ring = p.buf_ring(8, 64).unwrap();
    let (a1, b1) = Socket::pair(SocketKind::UnixStream).unwrap();
    let (a2, b2) = Socket::pair(SocketKind::UnixStream).unwrap();
    let i1 = p
        .submit(Operation::recv_multishot(&b1, &ring).user_data(1))
        .unwrap();
    let i2 = p
        .submit(Operation::recv_multishot(&b2, &ring).user_data(2))
        .unwrap();
    rustix::net::send(&a1, b"one", rustix::net::SendFlags::empty()).unwrap();
    rustix::net::send(&a2, b"two!", rustix::net::SendFlags::empty()).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        for c in collect(p, 1) {
            let b = c.resources.into_leased().unwrap();
            seen.push((c.user_data, b.to_vec()));
        }
    }
    seen.sort();
    assert_eq!(seen, [(1, b"one".to_vec()), (2, b"two!".to_vec())]);
    p.cancel(i1);
    p.cancel(i2);
    let mut ended = 0;
    while ended < 2 {
        for c in collect(p, 1) {
            ended += usize::from(!c.more);
        }
    }
    assert_eq!(ring.available(), 8);
}

fn multishot_fixed_sockets(p: &Proactor) {
    let ring = p.buf_ring(4, 64).unwrap();
    let lst = Socket::new(SocketKind::TcpV4).unwrap();
    lst.bind(&lo()).unwrap();
    lst.listen(4).unwrap();
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    p.register_files(&[lst.as_fd(), b.as_fd()]).unwrap();
    let acc = p
        .submit(Operation::accept_multishot(Target::Fixed(0)).user_data(1))
        .unwrap();
    let rcv = p
        .submit(Operation::recv_multishot(Target::Fixed(1), &ring).user_data(2))
        .unwrap();
    let cli = std::net::TcpStream::connect(lst.local_addr().unwrap().as_inet().unwrap()).unwrap();
    rustix::net::send(&a, b"fixed", rustix::net::SendFlags::empty()).unwrap();
    let mut got = (false, false);
    let mut keep = Vec::new();
    while !(got.0 && got.1) {
        for c in collect(p, 1) {
            assert!(c.more, "{c:?}");
            if c.user_data == 1 {
                keep.push(owned(c.outcome.ok().unwrap()));
                got.0 = true;
            } else {
                assert_eq!(&c.resources.into_leased().unwrap()[..], b"fixed");
                got.1 = true;
            }
        }
    }
    p.cancel(acc);
    p.cancel(rcv);
    let mut ended = 0;
    while ended < 2 {
        for c in collect(p, 1) {
            ended += usize::from(!c.more);
        }
    }
    drop(cli);
}

fn many_recvs_in_flight(p: &Proactor) {
    let pairs: Vec<(Socket, Socket)> = (0..128)
        .map(|_| Socket::pair(SocketKind::UnixStream).unwrap())
        .collect();
    let mut ops: Vec<Operation> = pairs
        .iter()
        .enumerate()
        .map(|(i, (_, b))| Operation::recv(b, vec![0; 16]).user_data(i as u64))
        .collect();
    p.submit_batch(&mut ops, &mut Vec::new()).unwrap();
    assert_eq!(p.in_flight(), 128);
    assert_quiet(p, Duration::from_millis(10));
    for (i, (a, _)) in pairs.iter().enumerate() {
        rustix::net::send(
            a,
            &(i as u32).to_le_bytes(),
            rustix::net::SendFlags::empty(),
        )
        .unwrap();
    }
    let mut seen = [false; 128];
    for c in collect(p, 128) {
        let i = c.user_data as usize;
        assert_eq!(c.outcome, Outcome::Ok(4));
        assert_eq!(
            c.resources.into_buf().unwrap()[..4],
            (i as u32).to_le_bytes()
        );
        assert!(!std::mem::replace(&mut seen[i], true));
    }
    assert_eq!(p.in_flight(), 0);
}

fn linked_sends_keep_order(p: &Proactor) {
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    let mut ops: Vec<Operation> = (0..16u8)
        .map(|i| Operation::send(&cli, vec![i; 100]))
        .collect();
    let mut ids = Vec::new();
    p.submit_linked(&mut ops, &mut ids).unwrap();
    let cs = collect(p, 16);
    assert!(cs.iter().all(|c| c.outcome == Outcome::Ok(100)), "{cs:?}");
    let got = recv_all(p, &srv, 1600);
    let want: Vec<u8> = (0..16u8).flat_map(|i| [i; 100]).collect();
    assert_eq!(got, want);
}

fn bidirectional_transfer(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    const N: usize = 1 << 20;
    let (da, db) = (pattern(N, 10), pattern(N, 11));
    let socks = [&a, &b];
    let data = [&da, &db];
    let mut sent = [0usize; 2];
    let mut got: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut sbusy = [false; 2];
    let mut rbusy = [false; 2];
    let end = Instant::now() + LIMIT;
    while got[0].len() < N || got[1].len() < N {
        assert!(
            Instant::now() < end,
            "stalled: {} {}",
            got[0].len(),
            got[1].len()
        );
        for k in 0..2 {
            if !sbusy[k] && sent[k] < N {
                let chunk = data[k][sent[k]..(sent[k] + 100_000).min(N)].to_vec();
                p.submit(Operation::send(socks[k], chunk).user_data(k as u64))
                    .unwrap();
                sbusy[k] = true;
            }
            if !rbusy[k] && got[k].len() < N {
                p.submit(Operation::recv(socks[1 - k], vec![0; 32768]).user_data(2 + k as u64))
                    .unwrap();
                rbusy[k] = true;
            }
        }
        p.poll(Some(Duration::from_millis(50)), |c| {
            let n = c.outcome.ok().expect("transfer") as usize;
            match c.user_data {
                k @ 0..=1 => {
                    sent[k as usize] += n;
                    sbusy[k as usize] = false;
                }
                k => {
                    let k = (k - 2) as usize;
                    got[k].extend_from_slice(&c.resources.into_buf().unwrap()[..n]);
                    rbusy[k] = false;
                }
            }
        })
        .unwrap();
    }
    assert_eq!(got[0], da);
    assert_eq!(got[1], db);
}

fn recv_timeout_fixed_socket(p: &Proactor) {
    let (_a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    p.register_files(&[b.as_fd()]).unwrap();
    let c = one(
        p,
        Operation::recv_timeout(Target::Fixed(0), vec![0; 8], Duration::from_millis(20)),
    );
    assert_eq!(errno_of(&c.outcome), Some(libc::ETIMEDOUT), "{c:?}");
}

fn recv_timeout_reset(p: &Proactor) {
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    let id = p
        .submit(Operation::recv_timeout(
            &cli,
            vec![0; 8],
            Duration::from_secs(5),
        ))
        .unwrap();
    assert_quiet(p, Duration::from_millis(10));
    srv.set_linger(Some(Duration::ZERO)).unwrap();
    drop(srv);
    let c = collect(p, 1).pop().unwrap();
    assert_eq!(c.id, id);
    assert_eq!(errno_of(&c.outcome), Some(libc::ECONNRESET), "{c:?}");
    assert_quiet(p, Duration::from_millis(10));
}

fn teardown_every_socket_kind(p: &Proactor) {
    let choice = match p.backend() {
        BackendKind::Epoll => BackendChoice::Epoll,
        BackendKind::IoUring => BackendChoice::IoUring,
    };
    let opts = Options {
        backend: choice,
        allowed_capabilities: p_caps(p),
        ..Options::default()
    };
    let q = Proactor::new(opts.clone()).unwrap();
    q.register_buffers(2, 64).unwrap();
    let ring = q.buf_ring(2, 64).unwrap();
    let (_l, tcp_c, tcp_s) = tcp_pair(&q, SocketKind::TcpV4).unwrap();
    let (ua, ub) = udp_pair(&q);
    let (sa, sb) = Socket::pair(SocketKind::UnixStream).unwrap();
    let (da, db) = Socket::pair(SocketKind::UnixDatagram).unwrap();
    let (ma, mb) = Socket::pair(SocketKind::UnixStream).unwrap();
    let lst = Socket::new(SocketKind::TcpV4).unwrap();
    lst.bind(&lo()).unwrap();
    lst.listen(4).unwrap();
    let lst2 = Socket::new(SocketKind::TcpV4).unwrap();
    lst2.bind(&lo()).unwrap();
    lst2.listen(4).unwrap();
    let (_l2, zc_c, zc_s) = tcp_pair(&q, SocketKind::TcpV4).unwrap();
    fill(&zc_c, &zc_s);
    let ops = vec![
        Operation::recv(&tcp_s, vec![0; 8]),
        Operation::recv(&ub, vec![0; 8]),
        Operation::recv(&sb, vec![0; 8]),
        Operation::recvmsg(&db, vec![0; 8]),
        Operation::accept(&lst),
        Operation::accept_multishot(&lst2),
        Operation::recv_multishot(&mb, &ring),
        Operation::recv_fixed(&tcp_c, q.lease_buffer().unwrap(), 64),
        Operation::send_zc(&zc_c, vec![3; 100_000]),
    ];
    for op in ops {
        q.submit(op).unwrap();
    }
    q.poll(Some(Duration::from_millis(10)), |c| panic!("{c:?}"))
        .unwrap();
    let t = Instant::now();
    drop(q);
    assert!(t.elapsed() < Duration::from_secs(3), "teardown hung");
    drop(ring);
    // The sockets still work, and the torn-down receives consumed nothing.
    let r = Proactor::new(opts).unwrap();
    echo_once(&r, &tcp_c, &tcp_s, b"tcp");
    echo_once(&r, &ua, &ub, b"udp");
    echo_once(&r, &sa, &sb, b"stream");
    echo_once(&r, &da, &db, b"dgram");
    echo_once(&r, &ma, &mb, b"multi");
}

fn in_flight_socket_ops(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let r1 = p.submit(Operation::recv(&b, vec![0; 4])).unwrap();
    let r2 = p.submit(Operation::recv(&a, vec![0; 4])).unwrap();
    assert_eq!(p.in_flight(), 2);
    rustix::net::send(&a, b"1234", rustix::net::SendFlags::empty()).unwrap();
    let c = collect(p, 1).pop().unwrap();
    assert_eq!(c.id, r1);
    assert_eq!(p.in_flight(), 1);
    p.cancel(r2);
    collect(p, 1);
    assert_eq!(p.in_flight(), 0);
}

fn cancel_every_socket_kind(p: &Proactor) {
    p.register_buffers(1, 64).unwrap();
    let ring = p.buf_ring(2, 64).unwrap();
    let (_a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let (_da, db) = Socket::pair(SocketKind::UnixDatagram).unwrap();
    let (_ma, mb) = Socket::pair(SocketKind::UnixStream).unwrap();
    let (_fa, fb) = Socket::pair(SocketKind::UnixStream).unwrap();
    let lst = Socket::new(SocketKind::TcpV4).unwrap();
    lst.bind(&lo()).unwrap();
    lst.listen(4).unwrap();
    let lst2 = Socket::new(SocketKind::TcpV4).unwrap();
    lst2.bind(&lo()).unwrap();
    lst2.listen(4).unwrap();
    let (_l, zc, zs) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    fill(&zc, &zs);
    let ops = vec![
        Operation::recv(&b, vec![0; 8]),
        Operation::recvmsg(&db, vec![0; 8]),
        Operation::accept(&lst),
        Operation::accept_multishot(&lst2),
        Operation::recv_multishot(&mb, &ring),
        Operation::recv_fixed(&fb, p.lease_buffer().unwrap(), 64),
        Operation::send_zc(&zc, vec![1; 50_000]),
        Operation::recv_timeout(&b, vec![0; 8], Duration::from_secs(30)),
    ];
    let ids: Vec<OpId> = ops.into_iter().map(|o| p.submit(o).unwrap()).collect();
    assert_quiet(p, Duration::from_millis(20));
    for id in &ids {
        assert_eq!(p.cancel(*id), CancelStatus::Requested);
    }
    let cs = collect(p, ids.len());
    for c in &cs {
        assert!(!c.more, "{c:?}");
        // The blocked zero-copy send may have moved some bytes before the cancel.
        assert!(
            c.outcome.is_cancelled() || (c.id == ids[6] && c.outcome.ok().is_some()),
            "{c:?}"
        );
    }
    let mut ends: Vec<OpId> = cs.iter().map(|c| c.id).collect();
    ends.sort_by_key(|i| format!("{i:?}"));
    ends.dedup();
    assert_eq!(ends.len(), ids.len(), "one completion each");
    drop(cs);
    assert_eq!(p.free_buffers(), 1);
    assert_eq!(ring.available(), 2);
    assert_quiet(p, Duration::from_millis(10));
}

fn data_then_end_of_stream(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    rustix::net::send(&a, b"last words", rustix::net::SendFlags::empty()).unwrap();
    drop(a);
    let c = one(p, Operation::recv(&b, vec![0; 64]));
    assert_eq!(c.outcome, Outcome::Ok(10));
    assert_eq!(
        one(p, Operation::recv(&b, vec![0; 64])).outcome,
        Outcome::Ok(0)
    );
}

fn mixed_socket_batch(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let (ua, ub) = udp_pair(p);
    let mut ops = vec![
        Operation::send(&a, b"s".to_vec()).user_data(1),
        Operation::send_zc(&ua, b"u".to_vec()).user_data(2),
        Operation::recv(&b, vec![0; 4]).user_data(3),
        Operation::recvmsg(&ub, vec![0; 4]).user_data(4),
        Operation::nop().user_data(5),
    ];
    p.submit_batch(&mut ops, &mut Vec::new()).unwrap();
    let mut cs = collect(p, 5);
    cs.sort_by_key(|c| c.user_data);
    let vals: Vec<_> = cs.iter().map(|c| c.outcome).collect();
    assert_eq!(
        vals,
        [
            Outcome::Ok(1),
            Outcome::Ok(1),
            Outcome::Ok(1),
            Outcome::Ok(1),
            Outcome::Ok(0)
        ]
    );
}

// ---------------------------------------------------------------------------------
// Files

fn tmp_with(content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf, std::fs::File) {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("f");
    std::fs::write(&path, content).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    (d, path, f)
}

fn cstr(p: &std::path::Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

fn file_read_at_and_past_end(p: &Proactor) {
    let (_d, _p, f) = tmp_with(b"12345");
    let c = one(p, Operation::read_at(&f, vec![0; 10], 3));
    assert_eq!(c.outcome, Outcome::Ok(2));
    assert_eq!(
        one(p, Operation::read_at(&f, vec![0; 10], 5)).outcome,
        Outcome::Ok(0)
    );
    assert_eq!(
        one(p, Operation::read_at(&f, vec![0; 10], 1 << 30)).outcome,
        Outcome::Ok(0)
    );
}

fn file_open_excl_existing(p: &Proactor) {
    let (_d, path, _f) = tmp_with(b"x");
    let c = one(
        p,
        Operation::open_at(
            libc::AT_FDCWD,
            cstr(&path),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
            0o600,
        ),
    );
    assert_eq!(errno_of(&c.outcome), Some(libc::EEXIST), "{c:?}");
}

fn file_read_write_only(p: &Proactor) {
    let (_d, path, _f) = tmp_with(b"abc");
    let wo = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let c = one(p, Operation::read_at(&wo, vec![0; 3], 0));
    assert_eq!(errno_of(&c.outcome), Some(libc::EBADF), "{c:?}");
}

fn file_read_directory(p: &Proactor) {
    let d = tempfile::tempdir().unwrap();
    let c = one(
        p,
        Operation::open_at(
            libc::AT_FDCWD,
            cstr(d.path()),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        ),
    );
    // SAFETY: an open completion's value is a new descriptor the caller owns.
    let dir = unsafe { OwnedFd::from_raw_fd(c.outcome.ok().expect("open dir") as i32) };
    let c = one(p, Operation::read_at(&dir, vec![0; 8], 0));
    assert_eq!(errno_of(&c.outcome), Some(libc::EISDIR), "{c:?}");
}

fn file_sparse_write(p: &Proactor) {
    let (_d, path, f) = tmp_with(b"");
    assert_eq!(
        one(p, Operation::write_at(&f, b"end".to_vec(), 1 << 20)).outcome,
        Outcome::Ok(3)
    );
    let c = one(p, Operation::read_at(&f, vec![9; 4096], 4096));
    assert_eq!(c.outcome, Outcome::Ok(4096));
    assert!(c.resources.into_buf().unwrap().iter().all(|&b| b == 0));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), (1 << 20) + 3);
}

fn file_many_reads(p: &Proactor) {
    let content = pattern(64 * 1024, 12);
    let (_d, _p, f) = tmp_with(&content);
    let mut ops: Vec<Operation> = (0..64u64)
        .map(|i| Operation::read_at(&f, vec![0; 1024], i * 1024).user_data(i))
        .collect();
    p.submit_batch(&mut ops, &mut Vec::new()).unwrap();
    for c in collect(p, 64) {
        let i = c.user_data as usize;
        assert_eq!(c.outcome, Outcome::Ok(1024));
        assert_eq!(
            c.resources.into_buf().unwrap(),
            content[i * 1024..(i + 1) * 1024]
        );
    }
}

fn fsync_socket(p: &Proactor) {
    let (a, _b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let c = one(p, Operation::fsync(&a, false));
    assert_eq!(errno_of(&c.outcome), Some(libc::EINVAL), "{c:?}");
}

fn file_vectored_16(p: &Proactor) {
    let (_d, _p, f) = tmp_with(b"");
    let bufs: Vec<Vec<u8>> = (0..16).map(|i| pattern(100 + i, i as u32)).collect();
    let total: usize = bufs.iter().map(Vec::len).sum();
    let c = one(p, Operation::writev_at(&f, bufs.clone(), 7));
    assert_eq!(c.outcome, Outcome::Ok(total as u32));
    let back: Vec<Vec<u8>> = bufs.iter().map(|b| vec![0; b.len()]).collect();
    let c = one(p, Operation::readv_at(&f, back, 7));
    assert_eq!(c.outcome, Outcome::Ok(total as u32));
    assert_eq!(c.resources.into_bufs().unwrap(), bufs);
}

fn file_append(p: &Proactor) {
    let (_d, path, _f) = tmp_with(b"head");
    let c = one(
        p,
        Operation::open_at(
            libc::AT_FDCWD,
            cstr(&path),
            libc::O_WRONLY | libc::O_APPEND,
            0,
        ),
    );
    // SAFETY: an open completion's value is a new descriptor the caller owns.
    let f = unsafe { OwnedFd::from_raw_fd(c.outcome.ok().expect("open") as i32) };
    assert_eq!(
        one(p, Operation::write_at(&f, b"+tail".to_vec(), 0)).outcome,
        Outcome::Ok(5)
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"head+tail");
}

fn file_read_fixed_past_end(p: &Proactor) {
    p.register_buffers(1, 64).unwrap();
    let (_d, _p, f) = tmp_with(b"short");
    let c = one(
        p,
        Operation::read_fixed(&f, p.lease_buffer().unwrap(), 100, 64),
    );
    assert_eq!(c.outcome, Outcome::Ok(0));
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod io_uring {
            $( #[test] fn $name() { super::run(super::Config::Uring, stringify!($name), super::$name) } )*
        }
        mod io_uring_no_single_issuer {
            $( #[test] fn $name() { super::run(super::Config::UringNoSingleIssuer, stringify!($name), super::$name) } )*
        }
        mod io_uring_emulated {
            $( #[test] fn $name() { super::run(super::Config::UringEmulated, stringify!($name), super::$name) } )*
        }
        mod epoll {
            $( #[test] fn $name() { super::run(super::Config::Epoll, stringify!($name), super::$name) } )*
        }
    };
}

conformance!(
    zc_send_delivers,
    zc_send_held_until_peer_reads,
    zc_send_to_closed_peer,
    zc_send_cancel_blocked,
    zc_send_udp,
    zc_send_future,
    zc_send_many_in_flight,
    zc_send_fixed_socket,
    zc_send_empty,
    zc_send_unix_stream,
    zc_send_linked,
    zc_send_large,
    zc_capability_reported,
    zc_teardown_blocked,
    slab_recv_fixed,
    slab_lease_all,
    slab_recv_fixed_end_of_stream,
    slab_recv_fixed_cancel,
    slab_recv_fixed_len_refused,
    slab_recv_fixed_udp_truncates,
    slab_leases_cross_threads,
    slab_unregistered,
    slab_recv_fixed_fixed_socket,
    slab_recv_fixed_reset,
    slab_many_in_flight,
    reset_before_recv,
    reset_mid_send,
    recv_after_own_shutdown_read,
    shutdown_both,
    shutdown_unconnected,
    double_close,
    udp_recv_truncates,
    udp_empty_datagram,
    udp_connected_port_closed,
    udp_oversize,
    unix_datagram_boundaries,
    unix_datagram_missing_path,
    unix_datagram_peer_closed,
    connect_timeout_refused,
    connect_timeout_fires,
    connect_connected,
    accept_not_listening,
    recv_on_listener,
    socket_ops_bad_descriptor,
    socket_ops_on_file,
    zero_length_recv_send,
    send_unconnected_tcp,
    accept_cancel_loses_nothing,
    multishot_accept_cancel_after_connections,
    multishot_recv_cancel_active,
    multishot_recv_reset,
    multishot_recv_udp,
    multishot_recv_shared_group,
    multishot_fixed_sockets,
    many_recvs_in_flight,
    linked_sends_keep_order,
    bidirectional_transfer,
    recv_timeout_fixed_socket,
    recv_timeout_reset,
    teardown_every_socket_kind,
    in_flight_socket_ops,
    cancel_every_socket_kind,
    data_then_end_of_stream,
    mixed_socket_batch,
    file_read_at_and_past_end,
    file_open_excl_existing,
    file_read_write_only,
    file_read_directory,
    file_sparse_write,
    file_many_reads,
    fsync_socket,
    file_vectored_16,
    file_append,
    file_read_fixed_past_end,
);
