//! Socket scenarios that change or count process-wide state, so they run in a
//! process of their own and one after another (a single test): accept under
//! `EMFILE` (the descriptor limit lowered, then restored), 10 000 concurrent loopback
//! connections opened and closed with the descriptor count back where it started
//! (both ends in this process: the limit raised towards its hard maximum; skipped,
//! with the reason, where that cannot reach the ~20 000 descriptors needed), and teardown with socket operations
//! in flight leaking no descriptor. Each runs on io_uring (native, no single
//! issuer, all emulated) and on epoll.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

mod proactor_common;
use gpu_uring::proactor::net::{Socket, SocketKind};
use gpu_uring::proactor::*;
use proactor_common::configs;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

fn collect(p: &Proactor, n: usize) -> Vec<Completion> {
    let mut out = Vec::new();
    let end = Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        assert!(Instant::now() < end, "timed out: {} of {n}", out.len());
        p.poll(Some(Duration::from_millis(100)), |c| out.push(c))
            .unwrap();
    }
    out
}

fn owned(fd: u32) -> OwnedFd {
    // SAFETY: an accept completion's value is a new descriptor the caller owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn listener(backlog: i32) -> (Socket, gpu_uring::proactor::net::SockAddr) {
    let l = Socket::new(SocketKind::TcpV4).unwrap();
    l.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    l.listen(backlog).unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

fn accept_under_emfile(name: &str, opts: &Options) {
    let p = Proactor::new(opts.clone()).unwrap();
    let (lst, addr) = listener(8);
    let cli = std::net::TcpStream::connect(addr.as_inet().unwrap()).unwrap();
    // Lower the soft limit to what is open now, plus nothing: the next descriptor fails.
    let saved = getrlimit(Resource::Nofile);
    let mut fillers = Vec::new();
    let open = open_fd_count() as u64;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(open + 4),
            maximum: saved.maximum,
        },
    )
    .unwrap();
    while let Ok(f) = rustix::io::fcntl_dupfd_cloexec(&lst, 0) {
        fillers.push(f);
        assert!(fillers.len() < 64, "the lowered limit did not bite");
    }
    p.submit(Operation::accept(&lst)).unwrap();
    let c = collect(&p, 1).pop().unwrap();
    let errno = match c.outcome {
        Outcome::Err(e) => e.errno,
        o => panic!("{name}: accept under EMFILE gave {o:?}"),
    };
    assert_eq!(errno, libc::EMFILE, "{name}");
    // With a descriptor free again, the same pending connection is accepted.
    fillers.pop();
    p.submit(Operation::accept(&lst)).unwrap();
    let c = collect(&p, 1).pop().unwrap();
    let srv = owned(c.outcome.ok().unwrap_or_else(|| panic!("{name}: {c:?}")));
    drop((srv, cli, fillers));
    setrlimit(Resource::Nofile, saved).unwrap();
}

/// Raises the descriptor limit to `want` (the hard limit too, when allowed);
/// returns the limit in force.
fn raise_nofile(want: u64) -> u64 {
    let cur = getrlimit(Resource::Nofile);
    let hard = cur.maximum.unwrap_or(u64::MAX);
    if hard < want
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: Some(want),
            },
        )
        .is_ok()
    {
        return want;
    }
    let soft = want.min(hard);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(soft),
            maximum: cur.maximum,
        },
    );
    getrlimit(Resource::Nofile).current.unwrap_or(0)
}

fn ten_thousand_connections(name: &str, opts: &Options) {
    const N: usize = 10_000;
    const BATCH: usize = 500;
    let p = Proactor::new(opts.clone()).unwrap();
    let before = open_fd_count();
    let (lst, addr) = listener(4096);
    let mut clients = Vec::with_capacity(N);
    let mut servers = Vec::with_capacity(N);
    while clients.len() < N {
        let batch: Vec<Socket> = (0..BATCH)
            .map(|_| Socket::new(SocketKind::TcpV4).unwrap())
            .collect();
        let mut ops: Vec<Operation> = (0..BATCH)
            .map(|_| Operation::accept(&lst).user_data(u64::MAX))
            .collect();
        ops.extend(batch.iter().map(|c| Operation::connect(c, addr.clone())));
        p.submit_batch(&mut ops, &mut Vec::new()).unwrap();
        for c in collect(&p, 2 * BATCH) {
            let v = c
                .outcome
                .ok()
                .unwrap_or_else(|| panic!("{name}: connection {}: {c:?}", clients.len()));
            if c.user_data == u64::MAX {
                servers.push(owned(v));
            }
        }
        clients.extend(batch);
    }
    assert_eq!(servers.len(), N);
    // Close every connection through the proactor.
    let all: Vec<OwnedFd> = clients
        .into_iter()
        .map(OwnedFd::from)
        .chain(servers)
        .collect();
    let mut it = all.into_iter();
    loop {
        let mut ops: Vec<Operation> = it.by_ref().take(1000).map(Operation::close).collect();
        if ops.is_empty() {
            break;
        }
        let n = ops.len();
        p.submit_batch(&mut ops, &mut Vec::new()).unwrap();
        let cs = collect(&p, n);
        assert!(cs.iter().all(|c| c.outcome == Outcome::Ok(0)), "{name}");
    }
    drop(lst);
    drop(p);
    assert_eq!(open_fd_count(), before, "{name}: descriptors leaked");
}

fn teardown_with_socket_ops(name: &str, opts: &Options) {
    let before = open_fd_count();
    {
        let p = Proactor::new(opts.clone()).unwrap();
        let (a, b) = Socket::pair(SocketKind::UnixStream).unwrap();
        let (lst, _) = listener(4);
        p.submit(Operation::recv(&b, vec![0; 8])).unwrap();
        p.submit(Operation::accept(&lst)).unwrap();
        p.submit(Operation::send(&a, vec![1; 4])).unwrap();
        p.poll(Some(Duration::from_millis(10)), |_| {}).unwrap();
        drop(p);
    }
    assert_eq!(open_fd_count(), before, "{name}: descriptors leaked");
}

#[test]
fn socket_limits() {
    let mut ran = 0;
    for (name, opts) in configs() {
        if let Err(e @ Error::Unavailable { .. }) = Proactor::new(opts.clone()) {
            eprintln!("SKIP {name}: backend unavailable: {e}");
            continue;
        }
        accept_under_emfile(name, &opts);
        teardown_with_socket_ops(name, &opts);
        ran += 1;
    }
    let need = 2 * 10_000 + 256;
    let got = raise_nofile(need as u64 + 1024);
    if got < need as u64 {
        eprintln!(
            "SKIP ten_thousand_connections: RLIMIT_NOFILE is {got} and cannot be raised to \
             the {need} descriptors 10 000 loopback connections (both ends) need in one process"
        );
        return;
    }
    for (name, opts) in configs() {
        if Proactor::new(opts.clone()).is_ok() {
            ten_thousand_connections(name, &opts);
        }
    }
    assert!(ran > 0 || cfg!(not(target_os = "linux")));
}
