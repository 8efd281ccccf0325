//! "No allocation per operation on the hot path", checked: a counting global allocator
//! watches steady-state rounds of raw-path operations (after a warm-up that lets every
//! reusable buffer reach its capacity) on each backend, both through `submit_batch` +
//! `poll`, through `submit_simple` + `poll_lent`, and for a zero-copy send and a
//! recv into a leased registered buffer over TCP. The same allocator checks that
//! tearing a proactor down with operations in flight frees their memory (live bytes
//! return to where they were). Single test in this binary so no other test allocates
//! concurrently.

use std::time::Duration;

use gpu_uring::proactor::*;

#[path = "common/alloc.rs"]
mod alloc;

#[global_allocator]
static A: alloc::Counting = alloc::Counting;

const DEPTH: usize = 32;

fn round(
    p: &Proactor,
    fd: i32,
    ops: &mut Vec<Operation>,
    ids: &mut Vec<OpId>,
    bufs: &mut Vec<Vec<u8>>,
) {
    for i in 0..DEPTH {
        let op = match i % 4 {
            0 => Operation::nop(),
            1 => Operation::timer(Duration::from_micros(1)),
            _ => Operation::read_at(fd, bufs.pop().unwrap(), (i * 512) as u64),
        };
        ops.push(op.user_data(i as u64));
    }
    ids.clear();
    p.submit_batch(ops, ids).unwrap();
    let mut n = 0;
    while n < DEPTH {
        p.poll(Some(Duration::from_secs(5)), |c| {
            assert!(c.outcome.ok().is_some(), "{c:?}");
            if let Resources::Buf(b) = c.resources {
                bufs.push(b);
            }
            n += 1;
        })
        .unwrap();
    }
}

/// One socket round: a zero-copy send of `buf` and recvs into a leased registered
/// buffer until its bytes arrived; hands both buffers back.
fn socket_round(
    p: &Proactor,
    cli: &std::net::TcpStream,
    srv: &std::net::TcpStream,
    ops: &mut Vec<Operation>,
    ids: &mut Vec<OpId>,
    buf: &mut Option<Vec<u8>>,
    lease: &mut Option<FixedBuf>,
) {
    let len = 64u32;
    ops.push(Operation::send_zc(cli, buf.take().unwrap()).user_data(1));
    ops.push(Operation::recv_fixed(srv, lease.take().unwrap(), len).user_data(2));
    ids.clear();
    p.submit_batch(ops, ids).unwrap();
    let (mut got, mut sent) = (0, false);
    while !(sent && got == len) {
        p.poll(Some(Duration::from_secs(5)), |c| {
            let n = c.outcome.ok().unwrap_or_else(|| panic!("{c:?}"));
            match c.resources {
                Resources::Buf(b) => {
                    assert_eq!(n, len);
                    *buf = Some(b);
                    sent = true;
                }
                Resources::Fixed(f) => {
                    got += n;
                    *lease = Some(f);
                }
                r => panic!("{r:?}"),
            }
        })
        .unwrap();
        // A short recv: receive the rest into the same lease.
        if got < len {
            if let Some(l) = lease.take() {
                ops.push(Operation::recv_fixed(srv, l, len - got).user_data(2));
                p.submit_batch(ops, ids).unwrap();
            }
        }
    }
}

/// One round of the simple-operation hot path: `submit_simple` (ids wanted) and
/// `poll_lent`. The first half of the batch is submitted in one call, the rest one op
/// per call.
fn simple_round(p: &Proactor, ops: &[SimpleOp], ids: &mut [OpId]) {
    let half = ops.len() / 2;
    p.submit_simple(&ops[..half], &mut ids[..half]).unwrap();
    for i in half..ops.len() {
        p.submit_simple(&ops[i..i + 1], &mut ids[i..i + 1]).unwrap();
    }
    let mut n = 0;
    while n < ops.len() {
        p.poll_lent(Some(Duration::from_secs(5)), |c| {
            assert_eq!(c.outcome, Outcome::Ok(0), "{c:?}");
            n += 1;
        })
        .unwrap();
    }
}

#[test]
fn no_per_op_allocation_and_no_leak_on_teardown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, vec![1u8; 64 * 1024]).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    for (name, backend) in [
        ("io_uring", BackendChoice::IoUring),
        ("epoll", BackendChoice::Epoll),
    ] {
        let p = match Proactor::new(Options {
            backend,
            ..Options::default()
        }) {
            Ok(p) => p,
            Err(e @ Error::Unavailable { .. }) => {
                eprintln!("SKIP {name}: {e}");
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        let mut ops = Vec::with_capacity(DEPTH);
        let mut ids = Vec::with_capacity(DEPTH);
        let mut bufs: Vec<Vec<u8>> = (0..DEPTH).map(|_| vec![0u8; 512]).collect();
        for _ in 0..200 {
            round(&p, fd, &mut ops, &mut ids, &mut bufs);
        }
        let before = alloc::calls();
        for _ in 0..500 {
            round(&p, fd, &mut ops, &mut ids, &mut bufs);
        }
        let n = alloc::calls() - before;
        eprintln!("{name}: {n} allocations in {} operations", 500 * DEPTH);
        assert_eq!(n, 0, "{name}: the raw path allocated in steady state");

        // The simple-operation path: submit_simple + poll_lent, nops and short timers
        // (relative and absolute).
        let simple: Vec<SimpleOp> = (0..DEPTH)
            .map(|i| {
                match i % 4 {
                    0 | 2 => SimpleOp::nop(),
                    1 => SimpleOp::timer(Duration::from_micros(1)),
                    _ => SimpleOp::timer_at(Deadline::now()),
                }
                .user_data(i as u64)
            })
            .collect();
        let mut sids = vec![ids[0]; DEPTH];
        for _ in 0..200 {
            simple_round(&p, &simple, &mut sids);
        }
        let before = alloc::calls();
        for _ in 0..500 {
            simple_round(&p, &simple, &mut sids);
        }
        let n = alloc::calls() - before;
        eprintln!(
            "{name}: {n} allocations in {} simple operations",
            500 * DEPTH
        );
        assert_eq!(
            n, 0,
            "{name}: submit_simple + poll_lent allocated in steady state"
        );
        // Sockets: zero-copy send and recv into a leased slab chunk.
        p.register_buffers(1, 64).unwrap();
        let lst = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let cli = std::net::TcpStream::connect(lst.local_addr().unwrap()).unwrap();
        let (srv, _) = lst.accept().unwrap();
        cli.set_nonblocking(true).unwrap();
        srv.set_nonblocking(true).unwrap();
        let mut buf = Some(vec![7u8; 64]);
        let mut lease = p.lease_buffer();
        for _ in 0..200 {
            socket_round(&p, &cli, &srv, &mut ops, &mut ids, &mut buf, &mut lease);
        }
        let before = alloc::calls();
        for _ in 0..500 {
            socket_round(&p, &cli, &srv, &mut ops, &mut ids, &mut buf, &mut lease);
        }
        let n = alloc::calls() - before;
        eprintln!("{name}: {n} allocations in 1000 socket operations");
        assert_eq!(n, 0, "{name}: zero-copy send / recv_fixed allocated");
        assert_eq!(p.in_flight(), 0);
        drop(p);
        teardown_frees_memory(name, backend, fd);
    }
}

/// Tears proactors down with operations in flight that own buffers (read steps of
/// linked sequences waiting behind long timers, dropped futures) and checks that the
/// live heap returns to its starting size.
fn teardown_frees_memory(name: &str, backend: BackendChoice, fd: i32) {
    let cycle = |poll_first: bool| {
        let p = Proactor::new(Options {
            backend,
            ..Options::default()
        })
        .unwrap();
        let mut ids = Vec::new();
        for _ in 0..4 {
            let mut seq = vec![
                Operation::timer(Duration::from_secs(30)),
                Operation::read_at(fd, vec![0u8; 1 << 20], 0),
                Operation::readv_at(fd, vec![vec![0u8; 4096]; 8], 0),
            ];
            p.submit_linked(&mut seq, &mut ids).unwrap();
        }
        // Simple operations in flight (simple slots on io_uring) as well.
        p.submit_simple(&[SimpleOp::timer(Duration::from_secs(30)); 4], &mut [])
            .unwrap();
        let fut = p
            .submit_future(Operation::read_at(fd, vec![0u8; 1 << 16], 0))
            .unwrap();
        let fut2 = p
            .submit_future(Operation::timer(Duration::from_secs(30)))
            .unwrap();
        if poll_first {
            p.poll(Some(Duration::from_millis(5)), |_| {}).unwrap();
        }
        drop(fut);
        drop(p);
        drop(fut2);
    };
    // Warm up one-time allocations (thread-locals, lazily initialised statics).
    cycle(true);
    cycle(false);
    let before = alloc::live_bytes();
    for i in 0..6 {
        cycle(i % 2 == 0);
    }
    let after = alloc::live_bytes();
    eprintln!("{name}: live heap {before} bytes before, {after} after 6 teardowns with ~4.3 MiB in flight each");
    assert!(
        after <= before + 4096,
        "{name}: teardown leaked {} bytes",
        after.saturating_sub(before)
    );

    // The last handle dropped off the poll thread (an I/O thread that polled and
    // exited) with nothing in flight frees everything as well.
    let off_thread = || {
        let p = Proactor::new(Options {
            backend,
            ..Options::default()
        })
        .unwrap();
        let p2 = p.clone();
        std::thread::spawn(move || {
            p2.submit(Operation::nop()).unwrap();
            let mut n = 0;
            while n == 0 {
                p2.poll(Some(Duration::from_secs(5)), |_| n += 1).unwrap();
            }
        })
        .join()
        .unwrap();
        drop(p);
    };
    off_thread();
    let before = alloc::live_bytes();
    for _ in 0..4 {
        off_thread();
    }
    let after = alloc::live_bytes();
    eprintln!("{name}: live heap {before} bytes before, {after} after 4 idle teardowns off the poll thread");
    assert!(
        after <= before + 4096,
        "{name}: idle off-thread teardown leaked {} bytes",
        after.saturating_sub(before)
    );
}
