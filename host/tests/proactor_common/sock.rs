//! Socket helpers shared by the proactor socket suites: the runner of a scenario
//! under one configuration, bounded completion collection, and loopback pairs.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::Config;
use gpu_uring::proactor::net::{Socket, SocketKind};
use gpu_uring::proactor::*;

pub fn run(cfg: Config, name: &str, test: fn(&Proactor)) {
    match Proactor::new(cfg.options()) {
        Ok(p) => test(&p),
        Err(e @ Error::Unavailable { .. }) => {
            eprintln!("SKIP {name} [{cfg:?}]: backend unavailable: {e}")
        }
        Err(e) => panic!("{cfg:?}: creating the proactor failed: {e}"),
    }
}

pub const LIMIT: Duration = Duration::from_secs(10);

pub fn collect(p: &Proactor, n: usize) -> Vec<Completion> {
    let mut out = Vec::new();
    let end = Instant::now() + LIMIT;
    while out.len() < n {
        assert!(
            Instant::now() < end,
            "timed out: {} of {n}: {out:?}",
            out.len()
        );
        p.poll(Some(Duration::from_millis(100)), |c| out.push(c))
            .unwrap();
    }
    out
}

pub fn one(p: &Proactor, op: Operation) -> Completion {
    let id = p.submit(op).expect("submit");
    let c = collect(p, 1).pop().unwrap();
    assert_eq!(c.id, id);
    c
}

pub fn assert_quiet(p: &Proactor, d: Duration) {
    let end = Instant::now() + d;
    let mut extra = Vec::new();
    while Instant::now() < end {
        p.poll(Some(Duration::from_millis(10)), |c| extra.push(c))
            .unwrap();
    }
    assert!(extra.is_empty(), "unexpected completions: {extra:?}");
}

pub fn errno_of(o: &Outcome) -> Option<i32> {
    match o {
        Outcome::Err(e) => Some(e.errno),
        _ => None,
    }
}

pub fn owned(fd: u32) -> OwnedFd {
    // SAFETY: an accept completion's value is a new descriptor the caller owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// A listener on loopback and a client connected to it through the proactor:
/// (listener, client, server side).
pub fn tcp_pair(p: &Proactor, kind: SocketKind) -> Option<(Socket, Socket, Socket)> {
    let lst = Socket::new(kind).unwrap();
    let any: SocketAddr = match kind {
        SocketKind::TcpV6 => (Ipv6Addr::LOCALHOST, 0).into(),
        _ => (Ipv4Addr::LOCALHOST, 0).into(),
    };
    if let Err(e) = lst.bind(&any.into()) {
        assert_eq!(kind, SocketKind::TcpV6, "{e}");
        eprintln!("SKIP: no IPv6 loopback here: {e}");
        return None;
    }
    lst.listen(64).unwrap();
    let addr = lst.local_addr().unwrap();
    let cli = Socket::new(kind).unwrap();
    let a = p.submit(Operation::accept(&lst).user_data(1)).unwrap();
    let c = p
        .submit(Operation::connect(&cli, addr).user_data(2))
        .unwrap();
    let mut srv = None;
    for done in collect(p, 2) {
        if done.id == a {
            let fd = done.outcome.ok().expect("accept");
            srv = Some(Socket::import(owned(fd)).unwrap());
        } else {
            assert_eq!(done.id, c);
            assert_eq!(done.outcome, Outcome::Ok(0), "connect");
        }
    }
    Some((lst, cli, srv.unwrap()))
}

/// Sends `msg` one way and checks it arrives whole (recv loop for stream sockets).
pub fn echo_once(p: &Proactor, from: &Socket, to: &Socket, msg: &[u8]) {
    let c = one(p, Operation::send(from, msg.to_vec()));
    assert_eq!(c.outcome, Outcome::Ok(msg.len() as u32));
    let mut got = Vec::new();
    while got.len() < msg.len() {
        let c = one(p, Operation::recv(to, vec![0; 4096]));
        let n = c.outcome.ok().expect("recv") as usize;
        assert!(n > 0, "early end of stream");
        got.extend_from_slice(&c.resources.into_buf().unwrap()[..n]);
    }
    assert_eq!(got, msg);
}
