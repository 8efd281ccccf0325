//! Socket conformance: every test is written once and run on io_uring under three
//! capability masks and on epoll (see `conformance!` at the end). Loopback only;
//! every wait is bounded. A configuration is skipped, with the reason printed, only
//! when its backend cannot be created here.
//!
//! Scenarios (one function each): TCP over IPv4 and IPv6 echo, Unix stream echo
//! (socket pair and a listener on a path), UDP (connected), Unix datagrams, a recv
//! that waits for data, end of stream, half-close, peer reset in the middle of a
//! recv, connection refused, cancelling a pending recv and a pending accept, a
//! 4 MiB transfer through partial sends, send to a closed peer (EPIPE, no SIGPIPE),
//! registered (fixed) sockets, futures, 64 concurrent connections, imported std
//! sockets, a linked send → recv sequence; per-operation timeouts: a recv that times
//! out (`ETIMEDOUT`, buffer returned, socket still usable), a recv whose data beats
//! its timeout (no stray completion), cancelling a recv with a timeout (`Cancelled`,
//! not `ETIMEDOUT`), three timeouts firing in deadline order, three timeouts all due
//! at the same poll still delivered in deadline order, a timed-out recv
//! through a future, a connect with a timeout that succeeds, a timeout in a linked
//! sequence rejected; recvmsg/sendmsg: unconnected UDP over IPv4 and IPv6 (the
//! sender's address reported and answered to), Unix datagrams to a path (the
//! sender's path reported), a connected Unix datagram pair with no address, a long
//! datagram truncated to the buffer, cancelling a pending recvmsg, a UDP sendmsg to
//! a port nobody holds; multishot accept: six connections through one operation
//! (each completion `more`, the cancellation ending it), accepted connections that
//! echo, cancelling an idle multishot accept, multishot refused as a future and in a
//! linked sequence, the `Multishot` capability reported per configuration;
//! multishot recv with provided buffers: chunks leased and returned on drop, running
//! out of buffers (`ENOBUFS` ends it) and re-arming after returning them, an empty
//! group that waits for data before ending with `ENOBUFS`, end of
//! stream, cancelling an idle one (no buffer kept), leases dropped on another
//! thread, bad group sizes refused, a group of the other kind refused. Scenarios that change or count process-wide
//! state (fd limits, fd counts) are in `proactor_socket_limits.rs`, a process of
//! their own.

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::task::Wake;
use std::time::{Duration, Instant};

mod proactor_common;
use gpu_uring::proactor::net::{SockAddr, Socket, SocketKind};
use gpu_uring::proactor::*;
use proactor_common::sock::*;
use proactor_common::Config;

fn tcp_v4_echo(p: &Proactor) {
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    cli.set_nodelay(true).unwrap();
    echo_once(p, &cli, &srv, b"hello over ipv4");
    echo_once(p, &srv, &cli, b"and back");
    assert_eq!(p.in_flight(), 0);
}

fn tcp_v6_echo(p: &Proactor) {
    if let Some((_l, cli, srv)) = tcp_pair(p, SocketKind::TcpV6) {
        echo_once(p, &cli, &srv, b"hello over ipv6");
        echo_once(p, &srv, &cli, &[7u8; 3000]);
    }
}

fn unix_stream_pair_echo(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    echo_once(p, &a, &b, b"unix stream");
    echo_once(p, &b, &a, &[1u8; 10_000]);
}

fn unix_stream_listener(p: &Proactor) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sock");
    let lst = Socket::new(SocketKind::UnixStream).unwrap();
    lst.bind(&SockAddr::unix(&path).unwrap()).unwrap();
    lst.listen(8).unwrap();
    let cli = Socket::new(SocketKind::UnixStream).unwrap();
    p.submit(Operation::accept(&lst).user_data(1)).unwrap();
    p.submit(Operation::connect(&cli, SockAddr::unix(&path).unwrap()).user_data(2))
        .unwrap();
    let mut srv = None;
    for c in collect(p, 2) {
        match c.user_data {
            1 => srv = Some(Socket::import(owned(c.outcome.ok().unwrap())).unwrap()),
            _ => assert_eq!(c.outcome, Outcome::Ok(0)),
        }
    }
    echo_once(p, &cli, srv.as_ref().unwrap(), b"over a path");
}

fn udp_connected(p: &Proactor) {
    let a = Socket::new(SocketKind::UdpV4).unwrap();
    let b = Socket::new(SocketKind::UdpV4).unwrap();
    let lo: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
    a.bind(&lo.into()).unwrap();
    b.bind(&lo.into()).unwrap();
    let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    assert_eq!(one(p, Operation::connect(&a, ba)).outcome, Outcome::Ok(0));
    assert_eq!(one(p, Operation::connect(&b, aa)).outcome, Outcome::Ok(0));
    // A pending recv completes with exactly one datagram.
    let r = p.submit(Operation::recv(&b, vec![0; 100])).unwrap();
    assert_quiet(p, Duration::from_millis(10));
    let s = p.submit(Operation::send(&a, b"dgram".to_vec())).unwrap();
    for c in collect(p, 2) {
        assert_eq!(c.outcome, Outcome::Ok(5));
        if c.id == r {
            assert_eq!(&c.resources.into_buf().unwrap()[..5], b"dgram");
        } else {
            assert_eq!(c.id, s);
        }
    }
}

fn unix_datagram(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixDatagram).unwrap();
    for i in 0..3u8 {
        let msg = vec![i; 10 + i as usize];
        assert_eq!(
            one(p, Operation::send(&a, msg.clone())).outcome,
            Outcome::Ok(msg.len() as u32)
        );
    }
    for i in 0..3u8 {
        let c = one(p, Operation::recv(&b, vec![0; 64]));
        assert_eq!(
            c.outcome,
            Outcome::Ok(10 + i as u32),
            "datagram boundaries kept"
        );
    }
}

fn recv_waits_for_data(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let id = p.submit(Operation::recv(&b, vec![0; 16])).unwrap();
    assert_quiet(p, Duration::from_millis(30));
    assert_eq!(p.in_flight(), 1);
    rustix::io::write(&a, b"late").unwrap();
    let c = collect(p, 1).pop().unwrap();
    assert_eq!((c.id, c.outcome), (id, Outcome::Ok(4)));
}

fn end_of_stream(p: &Proactor) {
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    let id = p.submit(Operation::recv(&srv, vec![0; 16])).unwrap();
    assert_quiet(p, Duration::from_millis(10));
    p.submit(Operation::close(cli.into_fd())).unwrap();
    let cs = collect(p, 2);
    assert!(cs.iter().all(|c| c.outcome == Outcome::Ok(0)), "{cs:?}");
    assert!(cs.iter().any(|c| c.id == id));
}

fn half_close(p: &Proactor) {
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    assert_eq!(
        one(p, Operation::shutdown(&cli, Shutdown::Write)).outcome,
        Outcome::Ok(0)
    );
    assert_eq!(
        one(p, Operation::recv(&srv, vec![0; 8])).outcome,
        Outcome::Ok(0)
    );
    // The other direction still works.
    echo_once(p, &srv, &cli, b"still open this way");
    // Sending on the shut side fails.
    let c = one(p, Operation::send(&cli, b"x".to_vec()));
    assert_eq!(errno_of(&c.outcome), Some(libc::EPIPE));
}

fn peer_reset_mid_recv(p: &Proactor) {
    let (_l, cli, srv) = tcp_pair(p, SocketKind::TcpV4).unwrap();
    let id = p.submit(Operation::recv(&cli, vec![0; 64])).unwrap();
    assert_quiet(p, Duration::from_millis(20));
    srv.set_linger(Some(Duration::ZERO)).unwrap();
    drop(srv); // RST
    let c = collect(p, 1).pop().unwrap();
    assert_eq!(c.id, id);
    assert_eq!(
        errno_of(&c.outcome),
        Some(libc::ECONNRESET),
        "{:?}",
        c.outcome
    );
}

fn connect_refused(p: &Proactor) {
    let probe = Socket::new(SocketKind::TcpV4).unwrap();
    probe
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe); // bound, never listened, now closed: nobody there
    let cli = Socket::new(SocketKind::TcpV4).unwrap();
    let c = one(p, Operation::connect(&cli, addr));
    assert_eq!(
        errno_of(&c.outcome),
        Some(libc::ECONNREFUSED),
        "{:?}",
        c.outcome
    );
}

fn cancel_pending_recv_and_accept(p: &Proactor) {
    let (_a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let lst = Socket::new(SocketKind::TcpV4).unwrap();
    lst.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    lst.listen(4).unwrap();
    let r = p.submit(Operation::recv(&b, vec![0; 8])).unwrap();
    let a = p.submit(Operation::accept(&lst)).unwrap();
    assert_quiet(p, Duration::from_millis(20));
    assert_eq!(p.cancel(r), CancelStatus::Requested);
    assert_eq!(p.cancel(a), CancelStatus::Requested);
    let cs = collect(p, 2);
    assert!(cs.iter().all(|c| c.outcome == Outcome::Cancelled), "{cs:?}");
    assert_eq!(p.cancel(r), CancelStatus::NotFound);
    assert_quiet(p, Duration::from_millis(20));
    assert_eq!(p.in_flight(), 0);
    // The socket still works after the cancelled recv.
    let (a2, b2) = (_a, b);
    echo_once(p, &a2, &b2, b"after cancel");
}

fn large_transfer(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let data: Vec<u8> = (0..4 << 20)
        .map(|i: u32| (i * 7 + i / 4096) as u8)
        .collect();
    let mut sent = 0usize;
    let mut got = Vec::with_capacity(data.len());
    let mut send_busy = false;
    let mut recv_busy = false;
    let end = Instant::now() + LIMIT;
    while got.len() < data.len() {
        assert!(
            Instant::now() < end,
            "transfer stalled at {} bytes",
            got.len()
        );
        if !send_busy && sent < data.len() {
            let chunk = data[sent..(sent + 256 * 1024).min(data.len())].to_vec();
            p.submit(Operation::send(&a, chunk).user_data(1)).unwrap();
            send_busy = true;
        }
        if !recv_busy {
            p.submit(Operation::recv(&b, vec![0; 64 * 1024]).user_data(2))
                .unwrap();
            recv_busy = true;
        }
        p.poll(Some(Duration::from_millis(100)), |c| {
            let n = c.outcome.ok().expect("transfer op") as usize;
            if c.user_data == 1 {
                sent += n;
                send_busy = false;
            } else {
                got.extend_from_slice(&c.resources.into_buf().unwrap()[..n]);
                recv_busy = false;
            }
        })
        .unwrap();
    }
    assert!(got == data, "4 MiB arrive intact and in order");
    if recv_busy {
        // The last recv may still be pending; it ends with the stream.
        drop(a);
        let c = collect(p, 1).pop().unwrap();
        assert_eq!(c.outcome, Outcome::Ok(0));
    }
}

fn send_to_closed_peer(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    drop(b);
    let c = one(p, Operation::send(&a, b"nobody".to_vec()));
    assert_eq!(errno_of(&c.outcome), Some(libc::EPIPE), "{:?}", c.outcome);
}

fn fixed_sockets(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    p.register_files(&[a.as_fd(), b.as_fd()]).unwrap();
    let c = one(p, Operation::send(Target::Fixed(0), b"fixed".to_vec()));
    assert_eq!(c.outcome, Outcome::Ok(5));
    let c = one(p, Operation::recv(Target::Fixed(1), vec![0; 8]));
    assert_eq!(c.outcome, Outcome::Ok(5));
    assert_eq!(&c.resources.into_buf().unwrap()[..5], b"fixed");
    // An index that is not registered is refused at submission.
    let e = p
        .submit(Operation::recv(Target::Fixed(9), vec![0; 8]))
        .unwrap_err();
    assert!(matches!(e.error, Error::InvalidArgument(_)));
}

fn recv_future(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let mut fut = Box::pin(p.submit_future(Operation::recv(&b, vec![0; 8])).unwrap());
    rustix::io::write(&a, b"fut").unwrap();
    struct Nothing;
    impl Wake for Nothing {
        fn wake(self: Arc<Self>) {}
    }
    let waker = std::task::Waker::from(Arc::new(Nothing));
    let mut cx = std::task::Context::from_waker(&waker);
    let end = Instant::now() + LIMIT;
    let c = loop {
        if let std::task::Poll::Ready(c) = fut.as_mut().poll(&mut cx) {
            break c;
        }
        assert!(Instant::now() < end);
        p.poll(Some(Duration::from_millis(20)), |_| {
            panic!("raw completion")
        })
        .unwrap();
    };
    assert_eq!(c.outcome, Outcome::Ok(3));
}

fn many_connections(p: &Proactor) {
    let lst = Socket::new(SocketKind::TcpV4).unwrap();
    lst.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    lst.listen(128).unwrap();
    let addr = lst.local_addr().unwrap();
    let n = 64;
    let clients: Vec<Socket> = (0..n)
        .map(|_| Socket::new(SocketKind::TcpV4).unwrap())
        .collect();
    let mut ops: Vec<Operation> = (0..n)
        .map(|_| Operation::accept(&lst).user_data(u64::MAX))
        .collect();
    ops.extend(
        clients
            .iter()
            .enumerate()
            .map(|(i, c)| Operation::connect(c, addr.clone()).user_data(i as u64)),
    );
    p.submit_batch(&mut ops, &mut Vec::new()).unwrap();
    let mut servers = Vec::new();
    for c in collect(p, 2 * n) {
        let v = c.outcome.ok().unwrap_or_else(|| panic!("{c:?}"));
        if c.user_data == u64::MAX {
            servers.push(Socket::import(owned(v)).unwrap());
        }
    }
    assert_eq!(servers.len(), n);
    // Every client sends its index; every server echoes what it got.
    let mut ops: Vec<Operation> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| Operation::send(c, vec![i as u8; 8]))
        .collect();
    ops.extend(servers.iter().map(|s| Operation::recv(s, vec![0; 8])));
    p.submit_batch(&mut ops, &mut Vec::new()).unwrap();
    let cs = collect(p, 2 * n);
    assert!(cs.iter().all(|c| c.outcome == Outcome::Ok(8)), "{cs:?}");
}

fn import_std_sockets(p: &Proactor) {
    let lst = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = lst.local_addr().unwrap();
    let cli = std::net::TcpStream::connect(addr).unwrap();
    let (srv, _) = lst.accept().unwrap();
    let cli = Socket::import(OwnedFd::from(cli)).unwrap();
    let srv = Socket::import(OwnedFd::from(srv)).unwrap();
    echo_once(p, &cli, &srv, b"imported");
}

fn linked_send_recv(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let mut ops = vec![
        Operation::send(&a, b"chain".to_vec()).user_data(1),
        Operation::recv(&b, vec![0; 5]).user_data(2),
    ];
    p.submit_linked(&mut ops, &mut Vec::new()).unwrap();
    let mut cs = collect(p, 2);
    cs.sort_by_key(|c| c.user_data);
    assert_eq!(cs[0].outcome, Outcome::Ok(5));
    assert_eq!(cs[1].outcome, Outcome::Ok(5));
}

fn recv_timeout_expires(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let t0 = Instant::now();
    let c = one(
        p,
        Operation::recv_timeout(&b, vec![7; 16], Duration::from_millis(40)),
    );
    let took = t0.elapsed();
    assert_eq!(
        errno_of(&c.outcome),
        Some(libc::ETIMEDOUT),
        "{:?}",
        c.outcome
    );
    assert!(
        took >= Duration::from_millis(30),
        "timed out early: {took:?}"
    );
    assert_eq!(
        c.resources.into_buf().unwrap(),
        vec![7; 16],
        "buffer returned"
    );
    assert_quiet(p, Duration::from_millis(20));
    assert_eq!(p.in_flight(), 0);
    // The socket still works, and nothing was consumed.
    echo_once(p, &a, &b, b"after timeout");
}

fn recv_timeout_data_first(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let r = p
        .submit(Operation::recv_timeout(
            &b,
            vec![0; 16],
            Duration::from_secs(5),
        ))
        .unwrap();
    assert_quiet(p, Duration::from_millis(20));
    let s = p.submit(Operation::send(&a, b"in time".to_vec())).unwrap();
    let mut cs = collect(p, 2);
    cs.sort_by_key(|c| c.id != s);
    assert_eq!(cs[0].outcome, Outcome::Ok(7), "send");
    let c = cs.pop().unwrap();
    assert_eq!(c.id, r);
    assert_eq!(c.outcome, Outcome::Ok(7));
    assert_eq!(&c.resources.into_buf().unwrap()[..7], b"in time");
    // The timeout that did not fire leaves no completion behind.
    assert_quiet(p, Duration::from_millis(20));
    assert_eq!(p.in_flight(), 0);
}

fn recv_timeout_cancelled(p: &Proactor) {
    let (_a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let r = p
        .submit(Operation::recv_timeout(
            &b,
            vec![0; 8],
            Duration::from_secs(5),
        ))
        .unwrap();
    assert_quiet(p, Duration::from_millis(20));
    assert_eq!(p.cancel(r), CancelStatus::Requested);
    let c = collect(p, 1).pop().unwrap();
    assert_eq!(c.outcome, Outcome::Cancelled, "cancel is not a timeout");
    assert_quiet(p, Duration::from_millis(20));
    assert_eq!(p.in_flight(), 0);
}

fn recv_timeouts_in_order(p: &Proactor) {
    // Several pending timeouts of different lengths fire in deadline order (gaps wide
    // enough that a loaded 2-core machine does not make two of them due at once).
    let pairs: Vec<_> = (0..3)
        .map(|_| Socket::pair(SocketKind::UnixStream).unwrap())
        .collect();
    for (i, ms) in [(0u64, 300u64), (1, 20), (2, 160)] {
        p.submit(
            Operation::recv_timeout(&pairs[i as usize].1, vec![0; 4], Duration::from_millis(ms))
                .user_data(i),
        )
        .unwrap();
    }
    let order: Vec<u64> = collect(p, 3)
        .into_iter()
        .map(|c| {
            assert_eq!(errno_of(&c.outcome), Some(libc::ETIMEDOUT), "{c:?}");
            c.user_data
        })
        .collect();
    assert_eq!(order, vec![1, 2, 0]);
}

fn recv_timeouts_due_together_in_deadline_order(p: &Proactor) {
    // Three timeouts all past due when the proactor next polls: their completions still come in
    // deadline order (not in the order of the slots they occupy).
    let pairs: Vec<_> = (0..3)
        .map(|_| Socket::pair(SocketKind::UnixStream).unwrap())
        .collect();
    for (i, ms) in [(0u64, 30u64), (1, 10), (2, 20)] {
        p.submit(
            Operation::recv_timeout(&pairs[i as usize].1, vec![0; 4], Duration::from_millis(ms))
                .user_data(i),
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(60));
    let order: Vec<u64> = collect(p, 3)
        .into_iter()
        .map(|c| {
            assert_eq!(errno_of(&c.outcome), Some(libc::ETIMEDOUT), "{c:?}");
            c.user_data
        })
        .collect();
    assert_eq!(order, vec![1, 2, 0]);
}

fn recv_timeout_future(p: &Proactor) {
    let (_a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let mut fut = Box::pin(
        p.submit_future(Operation::recv_timeout(
            &b,
            vec![0; 8],
            Duration::from_millis(20),
        ))
        .unwrap(),
    );
    struct NoopWake;
    impl Wake for NoopWake {
        fn wake(self: Arc<Self>) {}
    }
    let waker = std::task::Waker::from(Arc::new(NoopWake));
    let mut cx = std::task::Context::from_waker(&waker);
    let end = Instant::now() + LIMIT;
    let c = loop {
        assert!(Instant::now() < end, "future never completed");
        if let std::task::Poll::Ready(c) = fut.as_mut().poll(&mut cx) {
            break c;
        }
        p.poll(Some(Duration::from_millis(50)), |_| {}).unwrap();
    };
    assert_eq!(
        errno_of(&c.outcome),
        Some(libc::ETIMEDOUT),
        "{:?}",
        c.outcome
    );
}

fn connect_timeout_succeeds(p: &Proactor) {
    let lst = Socket::new(SocketKind::TcpV4).unwrap();
    lst.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    lst.listen(4).unwrap();
    let cli = Socket::new(SocketKind::TcpV4).unwrap();
    let c = one(
        p,
        Operation::connect_timeout(&cli, lst.local_addr().unwrap(), Duration::from_secs(5)),
    );
    assert_eq!(c.outcome, Outcome::Ok(0));
    assert_quiet(p, Duration::from_millis(20));
    assert_eq!(p.in_flight(), 0);
}

fn timeout_in_linked_sequence_rejected(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let mut ops = vec![
        Operation::send(&a, b"x".to_vec()),
        Operation::recv_timeout(&b, vec![0; 1], Duration::from_secs(1)),
    ];
    match p.submit_linked(&mut ops, &mut Vec::new()) {
        Err(Error::InvalidArgument(_)) => {}
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert_eq!(p.in_flight(), 0);
}

/// Two unconnected UDP sockets bound to `lo`, or `None` (with the reason printed)
/// where that loopback is missing.
fn udp_unconnected(lo: SocketAddr, kind: SocketKind) -> Option<(Socket, Socket)> {
    let a = Socket::new(kind).unwrap();
    let b = Socket::new(kind).unwrap();
    if let Err(e) = a.bind(&lo.into()) {
        assert_eq!(kind, SocketKind::UdpV6, "{e}");
        eprintln!("SKIP: no IPv6 loopback here: {e}");
        return None;
    }
    b.bind(&lo.into()).unwrap();
    Some((a, b))
}

/// a → b with sendmsg to b's address; b sees a's address and answers to it.
fn sendmsg_recvmsg_roundtrip(p: &Proactor, a: &Socket, b: &Socket) {
    let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let r = p.submit(Operation::recvmsg(b, vec![0; 64])).unwrap();
    assert_quiet(p, Duration::from_millis(10));
    let s = p
        .submit(Operation::sendmsg(a, b"to b".to_vec(), Some(ba.clone())))
        .unwrap();
    let mut from = None;
    for c in collect(p, 2) {
        assert_eq!(c.outcome, Outcome::Ok(4), "{c:?}");
        if c.id == r {
            let (buf, f) = c.resources.into_msg().expect("msg resources");
            assert_eq!(&buf[..4], b"to b");
            from = f;
        } else {
            assert_eq!(c.id, s);
            assert_eq!(c.resources.into_buf().unwrap(), b"to b");
        }
    }
    let from = from.expect("sender address");
    assert_eq!(from.as_inet(), aa.as_inet());
    // Answer to the address recvmsg reported.
    let c = one(p, Operation::sendmsg(b, b"back".to_vec(), Some(from)));
    assert_eq!(c.outcome, Outcome::Ok(4));
    let c = one(p, Operation::recvmsg(a, vec![0; 64]));
    assert_eq!(c.outcome, Outcome::Ok(4));
    let (buf, f) = c.resources.into_msg().unwrap();
    assert_eq!(&buf[..4], b"back");
    assert_eq!(f.unwrap().as_inet(), ba.as_inet());
}

fn udp_v4_sendmsg_recvmsg(p: &Proactor) {
    let lo: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
    let (a, b) = udp_unconnected(lo, SocketKind::UdpV4).unwrap();
    sendmsg_recvmsg_roundtrip(p, &a, &b);
}

fn udp_v6_sendmsg_recvmsg(p: &Proactor) {
    let lo: SocketAddr = (Ipv6Addr::LOCALHOST, 0).into();
    if let Some((a, b)) = udp_unconnected(lo, SocketKind::UdpV6) {
        sendmsg_recvmsg_roundtrip(p, &a, &b);
    }
}

fn unix_datagram_sendmsg_to_path(p: &Proactor) {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (dir.path().join("a.sock"), dir.path().join("b.sock"));
    let a = Socket::new(SocketKind::UnixDatagram).unwrap();
    let b = Socket::new(SocketKind::UnixDatagram).unwrap();
    a.bind(&SockAddr::unix(&pa).unwrap()).unwrap();
    b.bind(&SockAddr::unix(&pb).unwrap()).unwrap();
    let c = one(
        p,
        Operation::sendmsg(&a, b"by path".to_vec(), Some(SockAddr::unix(&pb).unwrap())),
    );
    assert_eq!(c.outcome, Outcome::Ok(7));
    let c = one(p, Operation::recvmsg(&b, vec![0; 32]));
    assert_eq!(c.outcome, Outcome::Ok(7));
    let (buf, from) = c.resources.into_msg().unwrap();
    assert_eq!(&buf[..7], b"by path");
    assert_eq!(from.and_then(|f| f.as_unix_path()), Some(pa));
}

fn sendmsg_connected_recvmsg_unnamed(p: &Proactor) {
    // No address on either side: the connected peer, and an unnamed sender.
    let (a, b) = Socket::pair(SocketKind::UnixDatagram).unwrap();
    let c = one(p, Operation::sendmsg(&a, b"pair".to_vec(), None));
    assert_eq!(c.outcome, Outcome::Ok(4));
    let c = one(p, Operation::recvmsg(&b, vec![0; 8]));
    assert_eq!(c.outcome, Outcome::Ok(4));
    let (buf, from) = c.resources.into_msg().unwrap();
    assert_eq!(&buf[..4], b"pair");
    assert!(from.and_then(|f| f.as_unix_path()).is_none());
}

fn recvmsg_truncates_long_datagram(p: &Proactor) {
    let (a, b) = Socket::pair(SocketKind::UnixDatagram).unwrap();
    let c = one(p, Operation::sendmsg(&a, vec![9; 100], None));
    assert_eq!(c.outcome, Outcome::Ok(100));
    let c = one(p, Operation::recvmsg(&b, vec![0; 10]));
    assert_eq!(c.outcome, Outcome::Ok(10), "cut to the buffer");
    // The rest of that datagram is gone: the next one arrives whole.
    assert_eq!(
        one(p, Operation::sendmsg(&a, b"next".to_vec(), None)).outcome,
        Outcome::Ok(4)
    );
    let c = one(p, Operation::recvmsg(&b, vec![0; 10]));
    assert_eq!(c.outcome, Outcome::Ok(4));
    assert_eq!(&c.resources.into_msg().unwrap().0[..4], b"next");
}

fn recvmsg_cancelled(p: &Proactor) {
    let (_a, b) = Socket::pair(SocketKind::UnixDatagram).unwrap();
    let r = p.submit(Operation::recvmsg(&b, vec![5; 8])).unwrap();
    assert_quiet(p, Duration::from_millis(20));
    assert_eq!(p.cancel(r), CancelStatus::Requested);
    let c = collect(p, 1).pop().unwrap();
    assert_eq!(c.outcome, Outcome::Cancelled);
    let (buf, from) = c.resources.into_msg().unwrap();
    assert_eq!(buf, vec![5; 8], "buffer returned untouched");
    assert!(from.is_none());
    assert_eq!(p.in_flight(), 0);
}

fn sendmsg_to_unbound_port(p: &Proactor) {
    // UDP to a loopback port nobody holds: the send itself succeeds.
    let probe = Socket::new(SocketKind::UdpV4).unwrap();
    probe
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    let nobody = probe.local_addr().unwrap();
    drop(probe);
    let a = Socket::new(SocketKind::UdpV4).unwrap();
    let c = one(p, Operation::sendmsg(&a, b"lost".to_vec(), Some(nobody)));
    assert_eq!(c.outcome, Outcome::Ok(4));
}

/// A TCP listener on IPv4 loopback and its address.
fn listener() -> (Socket, SocketAddr) {
    let lst = Socket::new(SocketKind::TcpV4).unwrap();
    lst.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    lst.listen(64).unwrap();
    let addr = lst.local_addr().unwrap().as_inet().unwrap();
    (lst, addr)
}

fn multishot_accept_many(p: &Proactor) {
    let (lst, addr) = listener();
    let id = p
        .submit(Operation::accept_multishot(&lst).user_data(9))
        .unwrap();
    let clients: Vec<_> = (0..5)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let cs = collect(p, 5);
    let mut servers = Vec::new();
    for c in cs {
        assert_eq!((c.id, c.user_data), (id, 9));
        assert!(c.more, "the operation goes on: {c:?}");
        servers.push(owned(c.outcome.ok().expect("a connection")));
    }
    assert_eq!(p.in_flight(), 1, "one operation for all connections");
    // A sixth connection after the first batch is accepted by the same operation.
    let late = std::net::TcpStream::connect(addr).unwrap();
    let c = collect(p, 1).pop().unwrap();
    assert!(c.more && c.id == id, "{c:?}");
    servers.push(owned(c.outcome.ok().unwrap()));
    assert_eq!(p.cancel(id), CancelStatus::Requested);
    let last = collect(p, 1).pop().unwrap();
    assert_eq!(last.id, id);
    assert!(!last.more, "the cancellation ends it");
    assert_eq!(last.outcome, Outcome::Cancelled);
    assert_eq!(p.cancel(id), CancelStatus::NotFound);
    assert_quiet(p, Duration::from_millis(20));
    assert_eq!(p.in_flight(), 0);
    drop((clients, late));
}

fn multishot_accept_connections_usable(p: &Proactor) {
    let (lst, addr) = listener();
    let id = p.submit(Operation::accept_multishot(&lst)).unwrap();
    let cli = Socket::import(std::net::TcpStream::connect(addr).unwrap().into()).unwrap();
    let c = collect(p, 1).pop().unwrap();
    let srv = Socket::import(owned(c.outcome.ok().unwrap())).unwrap();
    echo_once(p, &cli, &srv, b"through a multishot accept");
    echo_once(p, &srv, &cli, b"and back");
    p.cancel(id);
    let last = collect(p, 1).pop().unwrap();
    assert!(!last.more && last.outcome == Outcome::Cancelled, "{last:?}");
}

fn multishot_accept_cancel_idle(p: &Proactor) {
    let (lst, _) = listener();
    let id = p.submit(Operation::accept_multishot(&lst)).unwrap();
    assert_quiet(p, Duration::from_millis(20));
    assert_eq!(p.cancel(id), CancelStatus::Requested);
    let c = collect(p, 1).pop().unwrap();
    assert_eq!((c.id, c.outcome, c.more), (id, Outcome::Cancelled, false));
    assert_quiet(p, Duration::from_millis(20));
    assert_eq!(p.in_flight(), 0);
}

fn multishot_not_future_or_linked(p: &Proactor) {
    let (lst, _) = listener();
    match p.submit_future(Operation::accept_multishot(&lst)) {
        Err(e) => assert!(matches!(e.error, Error::InvalidArgument(_)), "{e:?}"),
        Ok(_) => panic!("a multishot future was accepted"),
    }
    let mut ops = vec![Operation::nop(), Operation::accept_multishot(&lst)];
    assert!(matches!(
        p.submit_linked(&mut ops, &mut Vec::new()),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(p.in_flight(), 0);
}

fn multishot_capability_reported(p: &Proactor) {
    let got = p.capabilities().get(Capability::Multishot);
    let masked = p.capabilities().get(Capability::RegisteredBuffers) == Support::Emulated;
    match p.backend() {
        BackendKind::Epoll => assert_eq!(got, Support::Emulated),
        BackendKind::IoUring if masked => assert_eq!(got, Support::Emulated),
        BackendKind::IoUring => assert_ne!(got, Support::Absent),
    }
}

fn multishot_recv_chunks(p: &Proactor) {
    let ring = p.buf_ring(8, 64).unwrap();
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let id = p
        .submit(Operation::recv_multishot(&b, &ring).user_data(3))
        .unwrap();
    let mut kept = Vec::new();
    for i in 0..3u8 {
        let msg = vec![i + 1; 10 + i as usize];
        rustix::io::write(&a, &msg).unwrap();
        let c = collect(p, 1).pop().unwrap();
        assert_eq!((c.id, c.user_data), (id, 3));
        assert!(c.more, "{c:?}");
        assert_eq!(c.outcome, Outcome::Ok(msg.len() as u32));
        let buf = c.resources.into_leased().expect("a leased buffer");
        assert_eq!(&buf[..], &msg[..]);
        kept.push(buf);
    }
    assert_eq!(ring.available(), 5, "three buffers leased");
    drop(kept);
    assert_eq!(ring.available(), 8, "dropped leases return to the group");
    assert_eq!(p.cancel(id), CancelStatus::Requested);
    let last = collect(p, 1).pop().unwrap();
    assert_eq!((last.outcome, last.more), (Outcome::Cancelled, false));
    assert_eq!(p.in_flight(), 0);
    assert_eq!(ring.available(), 8);
}

fn multishot_recv_out_of_buffers_rearm(p: &Proactor) {
    let ring = p.buf_ring(2, 16).unwrap();
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let data: Vec<u8> = (0..40u8).collect();
    rustix::io::write(&a, &data).unwrap();
    let id = p.submit(Operation::recv_multishot(&b, &ring)).unwrap();
    let cs = collect(p, 3);
    let mut held = Vec::new();
    for c in &cs[..2] {
        assert!(c.more && c.outcome == Outcome::Ok(16), "{c:?}");
    }
    for c in cs {
        if let Some(buf) = c.resources.into_leased() {
            held.push(buf);
        } else {
            assert_eq!(c.id, id);
            assert!(!c.more);
            assert_eq!(errno_of(&c.outcome), Some(libc::ENOBUFS), "{:?}", c.outcome);
        }
    }
    assert_eq!(&held[0][..], &data[..16]);
    assert_eq!(&held[1][..], &data[16..32]);
    assert_eq!(ring.available(), 0);
    assert_eq!(p.in_flight(), 0, "ENOBUFS ends the operation");
    // Return the buffers and arm it again: the rest arrives.
    drop(held);
    let id = p.submit(Operation::recv_multishot(&b, &ring)).unwrap();
    let c = collect(p, 1).pop().unwrap();
    assert!(c.more && c.outcome == Outcome::Ok(8), "{c:?}");
    assert_eq!(&c.resources.into_leased().unwrap()[..], &data[32..]);
    p.cancel(id);
    let last = collect(p, 1).pop().unwrap();
    assert!(!last.more, "{last:?}");
}

fn multishot_recv_empty_group_waits_for_data(p: &Proactor) {
    // With every buffer leased the operation keeps waiting; data then ends it.
    let ring = p.buf_ring(1, 8).unwrap();
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let id = p.submit(Operation::recv_multishot(&b, &ring)).unwrap();
    rustix::io::write(&a, b"12345678").unwrap();
    let c = collect(p, 1).pop().unwrap();
    assert!(c.more && c.outcome == Outcome::Ok(8), "{c:?}");
    let held = c.resources.into_leased().unwrap();
    assert_eq!(ring.available(), 0);
    assert_quiet(p, Duration::from_millis(30));
    assert_eq!(p.in_flight(), 1, "still armed with an empty group");
    rustix::io::write(&a, b"more").unwrap();
    let last = collect(p, 1).pop().unwrap();
    assert_eq!(last.id, id);
    assert!(!last.more);
    assert_eq!(errno_of(&last.outcome), Some(libc::ENOBUFS), "{last:?}");
    drop(held);
    // The data waits in the socket for the next arming.
    let id = p.submit(Operation::recv_multishot(&b, &ring)).unwrap();
    let c = collect(p, 1).pop().unwrap();
    assert_eq!(&c.resources.into_leased().unwrap()[..], b"more");
    p.cancel(id);
    assert!(!collect(p, 1).pop().unwrap().more);
}

fn multishot_recv_end_of_stream(p: &Proactor) {
    let ring = p.buf_ring(4, 32).unwrap();
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let id = p.submit(Operation::recv_multishot(&b, &ring)).unwrap();
    rustix::io::write(&a, b"bye").unwrap();
    let c = collect(p, 1).pop().unwrap();
    assert!(c.more);
    assert_eq!(&c.resources.into_leased().unwrap()[..], b"bye");
    drop(a);
    let last = collect(p, 1).pop().unwrap();
    assert_eq!(
        (last.id, last.outcome, last.more),
        (id, Outcome::Ok(0), false)
    );
    assert_eq!(ring.available(), 4);
    assert_eq!(p.in_flight(), 0);
}

fn multishot_recv_cancel_idle(p: &Proactor) {
    let ring = p.buf_ring(4, 32).unwrap();
    let (_a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let id = p.submit(Operation::recv_multishot(&b, &ring)).unwrap();
    assert_quiet(p, Duration::from_millis(20));
    assert_eq!(p.cancel(id), CancelStatus::Requested);
    let c = collect(p, 1).pop().unwrap();
    assert_eq!((c.outcome, c.more), (Outcome::Cancelled, false));
    assert_quiet(p, Duration::from_millis(20));
    assert_eq!(
        ring.available(),
        4,
        "no buffer kept by the cancelled operation"
    );
    assert_eq!(p.in_flight(), 0);
}

fn multishot_recv_leases_cross_threads(p: &Proactor) {
    // Leased buffers may be dropped on another thread.
    let ring = p.buf_ring(4, 8).unwrap();
    let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let id = p.submit(Operation::recv_multishot(&b, &ring)).unwrap();
    rustix::io::write(&a, b"12345678abc").unwrap();
    let mut bufs = Vec::new();
    let mut total = 0;
    while total < 11 {
        for c in collect(p, 1) {
            assert!(c.more, "{c:?}");
            let buf = c.resources.into_leased().unwrap();
            total += buf.len();
            bufs.push(buf);
        }
    }
    std::thread::spawn(move || drop(bufs)).join().unwrap();
    assert_eq!(ring.available(), 4);
    p.cancel(id);
    assert!(!collect(p, 1).pop().unwrap().more);
}

fn buf_ring_of_another_kind_refused(p: &Proactor) {
    // A group from a proactor on the other backend: refused where the kinds
    // (native, emulated) differ, never misused.
    let other = Proactor::new(Options {
        backend: if p.backend() == BackendKind::Epoll {
            BackendChoice::IoUring
        } else {
            BackendChoice::Epoll
        },
        ..Options::default()
    });
    let Ok(other) = other else {
        eprintln!("SKIP: the other backend is unavailable here");
        return;
    };
    let ring = other.buf_ring(2, 16).unwrap();
    let (_a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
    let same = other.capabilities().get(Capability::Multishot)
        == p.capabilities().get(Capability::Multishot);
    match p.submit(Operation::recv_multishot(&b, &ring)) {
        Err(e) => {
            assert!(!same, "{e:?}");
            assert!(matches!(e.error, Error::InvalidArgument(_)), "{e:?}");
        }
        Ok(id) => {
            assert!(same);
            p.cancel(id);
            assert!(!collect(p, 1).pop().unwrap().more);
        }
    }
}

fn buf_ring_rejects_bad_sizes(p: &Proactor) {
    for (count, size) in [(0u16, 16usize), (3, 16), (4, 0)] {
        assert!(
            matches!(p.buf_ring(count, size), Err(Error::InvalidArgument(_))),
            "count {count} size {size}"
        );
    }
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
    tcp_v4_echo,
    tcp_v6_echo,
    unix_stream_pair_echo,
    unix_stream_listener,
    udp_connected,
    unix_datagram,
    recv_waits_for_data,
    end_of_stream,
    half_close,
    peer_reset_mid_recv,
    connect_refused,
    cancel_pending_recv_and_accept,
    large_transfer,
    send_to_closed_peer,
    fixed_sockets,
    recv_future,
    many_connections,
    import_std_sockets,
    linked_send_recv,
    recv_timeout_expires,
    recv_timeout_data_first,
    recv_timeout_cancelled,
    recv_timeouts_in_order,
    recv_timeouts_due_together_in_deadline_order,
    recv_timeout_future,
    connect_timeout_succeeds,
    timeout_in_linked_sequence_rejected,
    udp_v4_sendmsg_recvmsg,
    udp_v6_sendmsg_recvmsg,
    unix_datagram_sendmsg_to_path,
    sendmsg_connected_recvmsg_unnamed,
    recvmsg_truncates_long_datagram,
    recvmsg_cancelled,
    sendmsg_to_unbound_port,
    multishot_accept_many,
    multishot_accept_connections_usable,
    multishot_accept_cancel_idle,
    multishot_not_future_or_linked,
    multishot_capability_reported,
    multishot_recv_chunks,
    multishot_recv_out_of_buffers_rearm,
    multishot_recv_end_of_stream,
    multishot_recv_empty_group_waits_for_data,
    multishot_recv_cancel_idle,
    multishot_recv_leases_cross_threads,
    buf_ring_rejects_bad_sizes,
    buf_ring_of_another_kind_refused,
);
