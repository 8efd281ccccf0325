//! 4 KiB random reads from a file: proactor (io_uring and epoll) vs a raw `io-uring`
//! submit/reap loop, `DEPTH` reads per round.
//!
//! Guards the cost of the proactor on a realistic small-I/O path (page-cache-hot file,
//! so the kernel work per read is small and proactor overhead shows). `main` prints the
//! throughput ratios measured in one process before the criterion groups run.

use std::hint::black_box;
use std::os::fd::AsRawFd;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use gpu_uring::proactor::{BackendChoice, OpId, Operation, Options, Proactor};
use io_uring::{opcode, types, IoUring};

const FILE_SIZE: u64 = 32 << 20;
const BLOCK: usize = 4096;
const DEPTH: usize = 32;

/// xorshift64*: deterministic offsets without a dependency.
struct Rng(u64);
impl Rng {
    fn offset(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % (FILE_SIZE / BLOCK as u64)) * BLOCK as u64
    }
}

fn make_file() -> (tempfile_dir::Dir, std::fs::File) {
    let dir = tempfile_dir::Dir::new();
    let path = dir.0.join("data");
    let block: Vec<u8> = (0..BLOCK).map(|i| i as u8).collect();
    let mut content = Vec::with_capacity(FILE_SIZE as usize);
    while (content.len() as u64) < FILE_SIZE {
        content.extend_from_slice(&block);
    }
    std::fs::write(&path, &content).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    (dir, f)
}

/// A scratch directory removed on drop (std only).
mod tempfile_dir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir().join(format!("proactor-bench-{}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

struct Raw {
    ring: IoUring,
    bufs: Vec<Vec<u8>>,
    fd: i32,
    rng: Rng,
}

impl Raw {
    fn new(fd: i32) -> Raw {
        Raw::with_ring(fd, IoUring::new(256).expect("io_uring"))
    }
    /// The ring flags the proactor uses (minus R_DISABLED).
    fn new_like_proactor(fd: i32) -> Raw {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(256)
            .unwrap_or_else(|_| IoUring::new(256).expect("io_uring"));
        Raw::with_ring(fd, ring)
    }
    fn with_ring(fd: i32, ring: IoUring) -> Raw {
        Raw {
            ring,
            bufs: vec![vec![0; BLOCK]; DEPTH],
            fd,
            rng: Rng(7),
        }
    }
    fn round(&mut self) -> usize {
        {
            let mut sq = self.ring.submission();
            for (i, b) in self.bufs.iter_mut().enumerate() {
                let e = opcode::Read::new(types::Fd(self.fd), b.as_mut_ptr(), BLOCK as u32)
                    .offset(self.rng.offset())
                    .build()
                    .user_data(i as u64);
                // SAFETY: `b` is not touched again until its completion is reaped below.
                unsafe { sq.push(&e) }.expect("sq has room");
            }
        }
        self.ring.submit_and_wait(DEPTH).expect("submit");
        let mut n = 0;
        for cqe in self.ring.completion() {
            assert_eq!(cqe.result(), BLOCK as i32);
            n += 1;
        }
        n
    }
}

struct Pro {
    p: Proactor,
    fd: i32,
    rng: Rng,
    free: Vec<Vec<u8>>,
    ops: Vec<Operation>,
    ids: Vec<OpId>,
}

impl Pro {
    fn new(backend: BackendChoice, fd: i32) -> Option<Pro> {
        let p = Proactor::new(Options {
            backend,
            ..Options::default()
        })
        .ok()?;
        p.poll(Some(Duration::ZERO), |_| {}).unwrap();
        Some(Pro {
            p,
            fd,
            rng: Rng(7),
            free: vec![vec![0; BLOCK]; DEPTH],
            ops: Vec::with_capacity(DEPTH),
            ids: Vec::with_capacity(DEPTH),
        })
    }
    fn round(&mut self) -> usize {
        while let Some(b) = self.free.pop() {
            self.ops
                .push(Operation::read_at(self.fd, b, self.rng.offset()));
        }
        self.ids.clear();
        self.p
            .submit_batch(&mut self.ops, &mut self.ids)
            .expect("submit");
        let mut n = 0;
        let free = &mut self.free;
        while n < DEPTH {
            self.p
                .poll(None, |c| {
                    assert_eq!(c.outcome.ok(), Some(BLOCK as u32));
                    free.push(black_box(c.resources.into_buf().unwrap()));
                    n += 1;
                })
                .expect("poll");
        }
        n
    }
}

/// Operations per second of `f` over about `d` (the benches' shared measuring loop).
fn rate(d: Duration, f: impl FnMut() -> usize) -> f64 {
    gpu_uring_benches::rate(d, 100, 16, f)
}

fn compare(fd: i32) {
    let Some(mut pro) = Pro::new(BackendChoice::IoUring, fd) else {
        println!("proactor_read: io_uring unavailable, no comparison");
        return;
    };
    let mut raw = Raw::new(fd);
    let mut raw2 = Raw::new_like_proactor(fd);
    let mut epoll = Pro::new(BackendChoice::Epoll, fd).unwrap();
    let (mut r, mut r2, mut p, mut e) = (0f64, 0f64, 0f64, 0f64);
    for _ in 0..9 {
        r = r.max(rate(Duration::from_millis(150), || raw.round()));
        r2 = r2.max(rate(Duration::from_millis(150), || raw2.round()));
        p = p.max(rate(Duration::from_millis(150), || pro.round()));
        e = e.max(rate(Duration::from_millis(150), || epoll.round()));
    }
    // Ratios against the faster raw loop (default flags or the proactor's flags).
    let ceiling = r.max(r2);
    println!(
        "proactor_read (4 KiB random, depth {DEPTH}, {} MiB page-cached file): raw io-uring {:.0} kIOPS (raw with SINGLE_ISSUER|DEFER_TASKRUN {:.0}), proactor io_uring {:.0} kIOPS (ratio {:.3} to the faster raw), proactor epoll {:.0} kIOPS (ratio {:.3})",
        FILE_SIZE >> 20,
        r / 1e3,
        r2 / 1e3,
        p / 1e3,
        p / ceiling,
        e / 1e3,
        e / ceiling
    );
}

fn benches(c: &mut Criterion, fd: i32) {
    let mut g = c.benchmark_group("read_4k_random");
    g.throughput(Throughput::Elements(DEPTH as u64));
    if let Some(mut pro) = Pro::new(BackendChoice::IoUring, fd) {
        let mut raw = Raw::new(fd);
        let mut raw2 = Raw::new_like_proactor(fd);
        g.bench_function("raw_io_uring", |b| b.iter(|| raw.round()));
        g.bench_function("raw_io_uring_proactor_flags", |b| b.iter(|| raw2.round()));
        g.bench_function("proactor_io_uring", |b| b.iter(|| pro.round()));
    }
    let mut epoll = Pro::new(BackendChoice::Epoll, fd).unwrap();
    g.bench_function("proactor_epoll", |b| b.iter(|| epoll.round()));
    g.finish();
}

fn main() {
    let (_dir, file) = make_file();
    let fd = file.as_raw_fd();
    if std::env::var_os("PROACTOR_BENCH_NO_COMPARE").is_none() {
        compare(fd);
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, fd);
    c.final_summary();
}
