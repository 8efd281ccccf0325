//! Socket scenarios that change or count process-wide state, so they run in a
//! process of their own and one after another (a single test): accept under
//! `EMFILE` (the descriptor limit lowered, then restored), 10 000 concurrent loopback
//! connections opened and closed with the descriptor count back where it started in
//! both processes (the server ends here, the client ends in a child process, this
//! binary re-executed to run `ten_k_client`; each raises its limit to the hard
//! maximum, and the scenario is skipped, with the reason, where that is below the
//! ~10 000 descriptors one side needs), and teardown with socket operations in
//! flight leaking no descriptor. Each runs on io_uring (native, no single
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

/// Raises the soft descriptor limit to the hard maximum; returns the limit in force.
fn raise_nofile_to_hard() -> u64 {
    let cur = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: cur.maximum,
            maximum: cur.maximum,
        },
    );
    getrlimit(Resource::Nofile).current.unwrap_or(0)
}

/// Connections held open at once.
const N: usize = 10_000;
/// Descriptors one side needs: its N sockets plus the proactor, listener, pipes and
/// the test harness.
const NEED: u64 = N as u64 + 256;
/// Environment of the client half: the configuration's name and the server address.
const CLIENT_ENV: &str = "GPU_URING_TEST_TEN_K_CLIENT";

fn config_named(name: &str) -> Option<Options> {
    configs()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, o)| o)
}

/// Server half: accepts N connections from a child process (the client half, this
/// test binary re-executed) while it connects them, holds all of them open at once,
/// then closes them through the proactor after the child closed its ends; both
/// processes check that their descriptor counts are back where they started.
fn ten_thousand_connections(name: &str, opts: &Options) {
    use std::io::{BufRead, Write};
    const ACCEPTS: usize = 512;
    let before = open_fd_count();
    let p = Proactor::new(Options {
        ring_entries: 1024,
        ..opts.clone()
    })
    .unwrap();
    let (lst, addr) = listener(4096);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["ten_k_client", "--exact", "--nocapture", "--test-threads=1"])
        .env(CLIENT_ENV, format!("{name} {}", addr.as_inet().unwrap()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_child = child.stdin.take().unwrap();
    let mut from_child = std::io::BufReader::new(child.stdout.take().unwrap());
    // Accept while the child connects (the backlog holds fewer than N).
    let mut servers = Vec::with_capacity(N);
    let mut pending = 0;
    let end = Instant::now() + Duration::from_secs(60);
    while servers.len() < N {
        assert!(Instant::now() < end, "{name}: {} accepted", servers.len());
        let want = ACCEPTS.min(N - servers.len()).saturating_sub(pending);
        let mut ops: Vec<Operation> = (0..want).map(|_| Operation::accept(&lst)).collect();
        p.submit_batch(&mut ops, &mut Vec::new()).unwrap();
        pending += want;
        p.poll(Some(Duration::from_millis(100)), |c| {
            pending -= 1;
            let fd = c
                .outcome
                .ok()
                .unwrap_or_else(|| panic!("{name}: accept {}: {c:?}", servers.len()));
            servers.push(owned(fd));
        })
        .unwrap();
    }
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            from_child.read_line(&mut line).unwrap() > 0,
            "{name}: the client half ended early"
        );
        // The harness may have started the line (`test ten_k_client ... `).
        if let Some(rest) = line.split("TEN_K ").nth(1) {
            assert_eq!(rest.trim(), "connected", "{name}: client: {line}");
            break;
        }
    }
    // All N connections are open in both processes now.
    assert_eq!(servers.len(), N);
    writeln!(to_child, "close").unwrap();
    loop {
        line.clear();
        assert!(from_child.read_line(&mut line).unwrap() > 0, "{name}");
        // The harness may have started the line (`test ten_k_client ... `).
        if let Some(rest) = line.split("TEN_K ").nth(1) {
            assert_eq!(rest.trim(), "closed", "{name}: client: {line}");
            break;
        }
    }
    let mut it = servers.into_iter();
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
    drop((lst, p, to_child, from_child));
    assert!(
        child.wait().unwrap().success(),
        "{name}: the client half failed"
    );
    assert_eq!(open_fd_count(), before, "{name}: server descriptors leaked");
}

/// Writes a protocol line to the parent straight to standard output (`println!`
/// may be captured by the test harness).
fn tell_parent(what: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "TEN_K {what}").unwrap();
    out.flush().unwrap();
}

/// Client half of `ten_thousand_connections`: does nothing unless re-executed by it.
#[test]
fn ten_k_client() {
    use std::io::BufRead;
    const BATCH: usize = 500;
    let Ok(spec) = std::env::var(CLIENT_ENV) else {
        return;
    };
    let (name, addr) = spec.split_once(' ').unwrap();
    let addr: SocketAddr = addr.parse().unwrap();
    let opts = config_named(name).unwrap();
    assert!(raise_nofile_to_hard() >= NEED);
    let before = open_fd_count();
    let p = Proactor::new(Options {
        ring_entries: 1024,
        ..opts
    })
    .unwrap();
    let mut clients = Vec::with_capacity(N);
    while clients.len() < N {
        let batch: Vec<Socket> = (0..BATCH)
            .map(|_| Socket::new(SocketKind::TcpV4).unwrap())
            .collect();
        let mut ops: Vec<Operation> = batch.iter().map(|c| Operation::connect(c, addr)).collect();
        p.submit_batch(&mut ops, &mut Vec::new()).unwrap();
        for c in collect(&p, BATCH) {
            assert_eq!(c.outcome, Outcome::Ok(0), "connect {}", clients.len());
        }
        clients.extend(batch);
    }
    tell_parent("connected");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "close");
    let mut it = clients.into_iter().map(OwnedFd::from);
    loop {
        let mut ops: Vec<Operation> = it.by_ref().take(1000).map(Operation::close).collect();
        if ops.is_empty() {
            break;
        }
        let n = ops.len();
        p.submit_batch(&mut ops, &mut Vec::new()).unwrap();
        assert!(collect(&p, n).iter().all(|c| c.outcome == Outcome::Ok(0)));
    }
    drop(p);
    assert_eq!(open_fd_count(), before, "client descriptors leaked");
    tell_parent("closed");
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
    // Each process holds one end of every connection, under its own limit.
    let got = raise_nofile_to_hard();
    if got < NEED {
        eprintln!(
            "SKIP ten_thousand_connections: the hard RLIMIT_NOFILE is {got}, below the \
             {NEED} descriptors each process (server here, client in a child) needs"
        );
        return;
    }
    for (name, opts) in configs() {
        if Proactor::new(opts.clone()).is_ok() {
            let t = Instant::now();
            ten_thousand_connections(name, &opts);
            eprintln!("ten_thousand_connections [{name}]: {:?}", t.elapsed());
        }
    }
    assert!(ran > 0 || cfg!(not(target_os = "linux")));
}
