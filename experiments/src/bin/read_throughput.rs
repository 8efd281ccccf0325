//! read_throughput: 4 KiB reads from the page cache at queue depth 8, several ways, in one run on one file.
//!
//! - `baseline`: one host thread on a plain io_uring SQPOLL ring (the `io-uring` crate), one registered
//!   buffer of 8 × 4 KiB and one registered file, 8 READ_FIXED in flight; for each completion it checksums
//!   the chunk and pushes the next read into the same buffer. It enters the kernel only to wait when no
//!   completion is ready (`io_uring_enter` with GETEVENTS) or to wake a sleeping SQ thread. Like the lanes it
//!   runs on a thread spawned for the run.
//! - `direct 1x8` / `direct 8x1`: device lanes write READ_FIXED SQEs into a device ring themselves
//!   (`Program::Read` on the CPU reference device): one lane with 8 reads in flight, and 8 lanes with one each,
//!   the 8 lanes one subgroup stepped on one thread (the device's subgroup of 8).
//! - `pump 1x8` / `pump 8x1`: the same reads published to the io_queue pump; the 8 lanes one subgroup on one
//!   thread (`run_queue_subgroups`).
//! - `direct 8x1 threads` / `pump 8x1 threads`: the 8 lanes one thread each (a CPU device with subgroups of
//!   one; `run_queue_lanes`), as a GPU's lanes are not.
//!
//! Every path reads the whole file once per run as 4 KiB chunks at sequential offsets (chunk `c` at
//! `4096 c`; with several lanes, lane `l` takes chunks `l, l + lanes, …`) into page-cache-warm memory and
//! checksums each chunk ([`checksum`]); every run's sum is compared with the host's. Rounds interleave the
//! paths (their order rotates each round), so each path sees the same load, and each run starts once the
//! last run's SQPOLL thread has ended (a dropped ring's keeps polling on a core for tens of ms; a run started
//! beside it got about half its rate, whichever path it was); the table gives each path's
//! median reads/s with min–max over the rounds, and its ratio to the baseline: the median over rounds of
//! (path reads/s ÷ baseline reads/s in the same round).
//!
//! Beside the rates, each path's process CPU time per read (user + system over every thread of the process:
//! the kernel's SQPOLL thread of the path's ring, lanes, the pump thread; median over rounds) and context
//! switches per read (voluntary + involuntary), from `getrusage` around each run: where the time goes when
//! the path shares the cores with its own threads and with other load.
//!
//! Output: a table (or `--json` rows), `throughput.csv`, `throughput.svg`; `uptime` before and after.
//! Exit status 1 if a checksum differed.

use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use gpu_uring::backend::cpu::{run_queue_lanes, run_queue_subgroups, CpuDevice, Step, SteppedLane};
use gpu_uring::backend::{checksum, Program, Programs};
use gpu_uring::protocol::DeviceRing;
use gpu_uring::pump::{Pump, PumpConfig, PumpFile, QueueLane, Request, SlotPoll};
use gpu_uring::ring::RingConfig;
use gpu_uring_experiments::cli::Devices;
use gpu_uring_experiments::progress::Progress;
use gpu_uring_experiments::{
    bar_chart, data_file, fail, loadavg, ring_mode_line, settle_sqpoll, CommonArgs, Experiment,
    Record,
};
use io_uring::{opcode, types, IoUring};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "4 KiB page-cache READ throughput: plain io_uring reader vs device lanes vs the pump"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// File size, MiB (each run reads it once).
    #[arg(long, default_value_t = 64)]
    mib: u64,
    /// Rounds (each runs every path once).
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Run only these paths besides the baseline (0 baseline, 1 direct 1x8, 2 direct 8x1, 3 pump 1x8,
    /// 4 pump 8x1, 5 direct 8x1 threads, 6 pump 8x1 threads).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5,6")]
    paths: Vec<usize>,
}

/// Reads in flight on every path.
const DEPTH: u32 = 8;
const CHUNK: u64 = 4096;
const WAIT: Duration = Duration::from_secs(60);
/// The longest a run waits for the last run's SQPOLL thread to end ([`settle_sqpoll`]).
const SETTLE: Duration = Duration::from_secs(2);

/// The paths, in table order.
const PATHS: [&str; 7] = [
    "baseline",
    "direct 1x8",
    "direct 8x1",
    "pump 1x8",
    "pump 8x1",
    "direct 8x1 threads",
    "pump 8x1 threads",
];

/// Lanes per subgroup of the subgroup paths: the CPU reference device's.
const SUBGROUP: u32 = 8;

fn host_checksum(f: &std::fs::File, total: u64) -> u64 {
    let mut sum = 0u64;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut off = 0;
    while off < total {
        let n = (total - off).min(CHUNK) as usize;
        f.read_exact_at(&mut buf[..n], off)
            .unwrap_or_else(|e| fail(&format!("reading the data file: {e}")));
        sum = sum.wrapping_add(checksum(off, &buf[..n]));
        off += n as u64;
    }
    sum
}

/// The plain reader. Returns (seconds, checksum).
fn baseline(data: &std::fs::File, total: u64) -> (f64, u64) {
    let mut ring = IoUring::builder()
        .setup_sqpoll(50)
        .build(2 * DEPTH)
        .unwrap_or_else(|e| fail(&format!("io-uring crate ring with SQPOLL: {e}")));
    let mut buf = vec![0u8; (DEPTH as u64 * CHUNK) as usize];
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `buf` outlives the ring (dropped after it at the end of this function, every read completed).
    unsafe { ring.submitter().register_buffers(&[iov]) }
        .unwrap_or_else(|e| fail(&format!("registering the buffer: {e}")));
    ring.submitter()
        .register_files(&[data.as_raw_fd()])
        .unwrap_or_else(|e| fail(&format!("registering the file: {e}")));
    let nchunks = total.div_ceil(CHUNK);
    let base = buf.as_mut_ptr();
    let push = |ring: &mut IoUring, c: u64| {
        let j = (c % DEPTH as u64) as usize;
        let off = c * CHUNK;
        let len = (total - off).min(CHUNK) as u32;
        // SAFETY: buffer j lies inside `buf` (DEPTH chunks).
        let ptr = unsafe { base.add(j * CHUNK as usize) };
        let e = opcode::ReadFixed::new(types::Fixed(0), ptr, len, 0)
            .offset(off)
            .build()
            .user_data(c);
        // SAFETY: the buffer stays valid and untouched until the read's CQE is reaped.
        unsafe { ring.submission().push(&e) }.unwrap_or_else(|_| fail("SQ full"));
    };
    let t = Instant::now();
    let mut next = 0u64;
    while next < nchunks.min(DEPTH as u64) {
        push(&mut ring, next);
        next += 1;
    }
    let (mut done, mut sum) = (0u64, 0u64);
    while done < nchunks {
        // A system call only to wait for a completion or to wake the SQ thread: with completions ready and the
        // SQ thread polling, the SQEs pushed last time are already visible to it (the crate stores the SQ tail
        // with release when the submission queue handle is dropped).
        if ring.completion().is_empty() {
            ring.submit_and_wait(1)
        } else if ring.submission().need_wakeup() {
            ring.submit()
        } else {
            Ok(0)
        }
        .unwrap_or_else(|e| fail(&format!("io_uring_enter: {e}")));
        let cqes: Vec<(u64, i32)> = ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (c, res) in cqes {
            let off = c * CHUNK;
            let len = (total - off).min(CHUNK) as usize;
            if res == len as i32 {
                let j = (c % DEPTH as u64) as usize * CHUNK as usize;
                sum = sum.wrapping_add(checksum(off, &buf[j..j + len]));
            } else {
                sum = !sum;
            }
            done += 1;
            if next < nchunks {
                push(&mut ring, next);
                next += 1;
            }
        }
    }
    let el = t.elapsed().as_secs_f64();
    drop(ring);
    (el, sum)
}

/// `Program::Read` on the CPU reference device: `lanes` lanes, `depth` reads in flight each, in subgroups of
/// `subgroup` lanes (one thread each).
fn direct(
    data: &std::fs::File,
    total: u64,
    lanes: u32,
    depth: u32,
    subgroup: u32,
) -> (f64, u64, String) {
    let ring = DeviceRing::new(RingConfig {
        lanes,
        slots_per_lane: depth + 1,
        fixed_buffer_bytes: (lanes * depth) as usize * CHUNK as usize,
        fixed_files: vec![data.as_raw_fd()],
        ..Default::default()
    })
    .unwrap_or_else(|e| fail(&format!("creating the device ring: {e}")));
    let cpu = CpuDevice {
        subgroup_size: subgroup,
        ..CpuDevice::default()
    };
    let rep = cpu
        .run(
            &ring,
            lanes,
            &Program::Read {
                file: 0,
                chunk: CHUNK as u32,
                total,
                depth,
            },
            Duration::from_secs(300),
        )
        .unwrap_or_else(|e| fail(&format!("running Program::Read: {e}")));
    let t = rep.total();
    let sum = if t.failed == 0 {
        t.checksum
    } else {
        !t.checksum
    };
    (rep.elapsed.as_secs_f64(), sum, ring_mode_line(&ring))
}

/// Through the pump: `lanes` queue lanes, `depth` requests in flight each, checksummed in submission order;
/// one thread per subgroup of [`SUBGROUP`] lanes ([`QueueRead`]), or one per lane (`threads`).
fn pump(data: &std::fs::File, total: u64, lanes: u32, depth: u32, threads: bool) -> (f64, u64) {
    let pump = Pump::spawn(PumpConfig {
        slots: (lanes * depth * 2).max(32),
        regions: vec![(lanes * depth) as usize * CHUNK as usize],
        files: vec![
            PumpFile::reader(data).unwrap_or_else(|e| fail(&format!("the pump's file: {e}")))
        ],
        ..Default::default()
    })
    .unwrap_or_else(|e| fail(&format!("starting the pump: {e}")));
    let t = Instant::now();
    let deadline = t + WAIT;
    let sums = if threads {
        run_queue_lanes(&pump, lanes, |lane: &mut QueueLane<'_>| {
            pump_lane(lane, total, lanes, depth)
        })
    } else {
        run_queue_subgroups(
            &pump,
            lanes,
            SUBGROUP,
            |lane| QueueRead::new(lane, total, lanes, depth, deadline),
            |r| r.sum,
        )
    }
    .unwrap_or_else(|e| fail(&e.to_string()));
    let el = t.elapsed().as_secs_f64();
    if let Err(e) = pump.stop() {
        fail(&format!("stopping the pump: {e}"));
    }
    (el, sums.iter().fold(0u64, |a, &b| a.wrapping_add(b)))
}

/// One queue lane of the pump path on a thread of its own: keeps `depth` reads in flight, waits for the oldest.
/// Returns its checksum (complemented if a request failed).
fn pump_lane(lane: &mut QueueLane<'_>, total: u64, lanes: u32, depth: u32) -> u64 {
    let nchunks = total.div_ceil(CHUNK);
    let id = lane.id() as u64;
    let v = lane.view();
    let d = depth as u64;
    let chunk_of = |j: u64| id + j * lanes as u64;
    let buf_of = |j: u64| (id * d + j % d) * CHUNK;
    let mut slots = vec![0u32; depth as usize];
    let (mut sent, mut seen, mut sum) = (0u64, 0u64, 0u64);
    loop {
        if sent - seen < d && chunk_of(sent) < nchunks {
            let off = chunk_of(sent) * CHUNK;
            let len = (total - off).min(CHUNK) as u32;
            let Ok(slot) = lane.alloc(1 << 20) else {
                return !sum;
            };
            lane.publish(slot, &Request::read(0, off, 0, buf_of(sent), len));
            slots[(sent % d) as usize] = slot;
            sent += 1;
            continue;
        }
        if sent == seen {
            return sum;
        }
        let slot = slots[(seen % d) as usize];
        let r = match lane.wait_until(slot, Instant::now() + WAIT) {
            Ok(r) => r,
            Err(_) => return !sum,
        };
        let off = chunk_of(seen) * CHUNK;
        let len = (total - off).min(CHUNK) as usize;
        if r.bytes() == Some(len as u32) {
            // SAFETY: the READ into these bytes is DONE and nothing else writes them until the slot is
            // reused, after this checksum.
            let bytes = unsafe { v.region_slice(0, buf_of(seen), len) };
            sum = sum.wrapping_add(checksum(off, bytes));
        } else {
            sum = !sum;
        }
        lane.free(slot);
        seen += 1;
    }
}

/// The same lane as a state machine, stepped with the other lanes of its subgroup on one thread: the same
/// requests in the same order, the same checksum. A completed chunk is checksummed in its buffer, its slot
/// freed and the buffer's next request published at once (each lane publishes its own, so a lane's checksum
/// holds back no other lane's request). Gives up (complemented sum) when no slot can be allocated for 2^20 of
/// its subgroup's idle waits, or its oldest request is not complete by `deadline`.
struct QueueRead<'p> {
    lane: QueueLane<'p>,
    total: u64,
    nchunks: u64,
    lanes: u64,
    depth: u64,
    deadline: Instant,
    slots: Vec<u32>,
    sent: u64,
    seen: u64,
    sum: u64,
}

impl<'p> QueueRead<'p> {
    fn new(lane: QueueLane<'p>, total: u64, lanes: u32, depth: u32, deadline: Instant) -> Self {
        QueueRead {
            lane,
            total,
            nchunks: total.div_ceil(CHUNK),
            lanes: lanes as u64,
            depth: depth as u64,
            deadline,
            slots: vec![0; depth as usize],
            sent: 0,
            seen: 0,
            sum: 0,
        }
    }

    fn chunk_of(&self, j: u64) -> u64 {
        self.lane.id() as u64 + j * self.lanes
    }

    fn buf_of(&self, j: u64) -> u64 {
        (self.lane.id() as u64 * self.depth + j % self.depth) * CHUNK
    }

    fn fail(&mut self) -> Step {
        self.sum = !self.sum;
        Step::Done
    }

    /// Publishes the next request if one is due: `None` if none is, else `Progress`, `Waiting` (no free slot)
    /// or `Done` (gave up).
    fn publish(&mut self, pauses: u32) -> Option<Step> {
        if self.sent - self.seen >= self.depth || self.chunk_of(self.sent) >= self.nchunks {
            return None;
        }
        let Some(slot) = self.lane.try_alloc() else {
            return Some(if pauses >= 1 << 20 {
                self.fail()
            } else {
                Step::Waiting
            });
        };
        let off = self.chunk_of(self.sent) * CHUNK;
        let len = (self.total - off).min(CHUNK) as u32;
        let req = Request::read(0, off, 0, self.buf_of(self.sent), len);
        self.lane.publish(slot, &req);
        self.slots[(self.sent % self.depth) as usize] = slot;
        self.sent += 1;
        Some(Step::Progress)
    }
}

impl SteppedLane for QueueRead<'_> {
    fn step(&mut self, _: &mut (), pauses: u32) -> Step {
        match self.publish(pauses) {
            None => {}
            Some(Step::Waiting) => return Step::Waiting,
            Some(s) => return s,
        }
        if self.sent == self.seen {
            return Step::Done;
        }
        let slot = self.slots[(self.seen % self.depth) as usize];
        let r = match self.lane.poll(slot) {
            Ok(SlotPoll::Complete(r)) => r,
            Ok(SlotPoll::Pending) => {
                return if pauses % 64 == 63 && Instant::now() >= self.deadline {
                    self.fail()
                } else {
                    Step::Waiting
                };
            }
            Err(_) => return self.fail(),
        };
        let off = self.chunk_of(self.seen) * CHUNK;
        let len = (self.total - off).min(CHUNK) as usize;
        if r.bytes() == Some(len as u32) {
            // SAFETY: the READ into these bytes is DONE and nothing else writes them until the slot is
            // freed, after this checksum.
            let bytes = unsafe {
                self.lane
                    .view()
                    .region_slice(0, self.buf_of(self.seen), len)
            };
            self.sum = self.sum.wrapping_add(checksum(off, bytes));
        } else {
            self.sum = !self.sum;
        }
        self.lane.free(slot);
        self.seen += 1;
        match self.publish(pauses) {
            Some(Step::Done) => Step::Done,
            _ => Step::Progress,
        }
    }
}

/// (CPU seconds, context switches) of this process so far: every thread, the exited ones included.
fn usage() -> (f64, u64) {
    // SAFETY: getrusage writes one `rusage` into the zeroed value it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to a `rusage`.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return (f64::NAN, 0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (
        secs(u.ru_utime) + secs(u.ru_stime),
        (u.ru_nvcsw + u.ru_nivcsw) as u64,
    )
}

fn uptime() -> String {
    std::process::Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| format!("load average {:.2}", loadavg()))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> ExitCode {
    let args = gpu_uring_experiments::cli::parse::<Args>(Devices::CpuOnly);
    let mut exp = Experiment::new("read_throughput", args.common.clone()).without_status_line();
    // Device lanes here are the CPU reference device's threads (the pump's device side exists only there).
    exp.cpu_only();
    let dir = exp.out_dir().to_path_buf();
    let total = args.mib << 20;
    let nchunks = total.div_ceil(CHUNK);
    let data = data_file(&dir, ".read_throughput.data", total)
        .unwrap_or_else(|e| fail(&format!("creating the data file in {}: {e}", dir.display())));
    let expect = host_checksum(&data, total);
    exp.say(&format!(
        "mode: {nchunks} reads of 4 KiB per run at sequential offsets over a {} MiB page-cache-warm file, \
         queue depth {DEPTH}, every chunk checksummed; {} rounds, order rotated each round",
        args.mib, args.rounds
    ));
    exp.say(&format!("uptime before: {}", uptime()));
    let rounds = args.rounds.max(1) as usize;
    let mut rate = vec![Vec::new(); PATHS.len()];
    let mut ratio = vec![Vec::new(); PATHS.len()];
    let mut ok = vec![true; PATHS.len()];
    let mut cpu_us = vec![Vec::new(); PATHS.len()];
    let mut csw = vec![Vec::new(); PATHS.len()];
    let mut mode = String::new();
    let mut unsettled = 0u32;
    let progress = Progress::new("read_throughput rounds", Some(rounds as u64));
    for round in 0..rounds {
        let mut this = [f64::NAN; PATHS.len()];
        for k in 0..PATHS.len() {
            let p = (k + round) % PATHS.len();
            if p != 0 && !args.paths.contains(&p) {
                continue;
            }
            // The last run's SQPOLL thread gone from its core first.
            if !settle_sqpoll(SETTLE) {
                unsettled += 1;
            }
            let (cpu0, csw0) = usage();
            let (el, sum) = match p {
                0 => std::thread::scope(|s| {
                    s.spawn(|| baseline(&data, total))
                        .join()
                        .unwrap_or_else(|_| fail("the baseline's thread panicked"))
                }),
                1 | 2 | 5 => {
                    let (lanes, depth) = if p == 1 { (1, DEPTH) } else { (DEPTH, 1) };
                    let sg = if p == 5 { 1 } else { SUBGROUP };
                    let (el, sum, m) = direct(&data, total, lanes, depth, sg);
                    mode = m;
                    (el, sum)
                }
                3 => pump(&data, total, 1, DEPTH, false),
                4 => pump(&data, total, DEPTH, 1, false),
                _ => pump(&data, total, DEPTH, 1, true),
            };
            let (cpu1, csw1) = usage();
            cpu_us[p].push((cpu1 - cpu0) * 1e6 / nchunks as f64);
            csw[p].push(csw1.saturating_sub(csw0) as f64 / nchunks as f64);
            ok[p] &= sum == expect;
            this[p] = nchunks as f64 / el;
            rate[p].push(this[p]);
        }
        for p in 0..PATHS.len() {
            ratio[p].push(this[p] / this[0]);
        }
        progress.inc(1);
        let line = format!(
            "round {}/{rounds}: {}",
            round + 1,
            PATHS
                .iter()
                .zip(this)
                .filter(|(_, r)| !r.is_nan())
                .map(|(n, r)| format!("{n} {:.0}k/s", r / 1e3))
                .collect::<Vec<_>>()
                .join(", ")
        );
        progress.suspend(|| exp.say(&line));
    }
    drop(progress);
    // Only the paths that ran (`--paths`).
    let ran: Vec<usize> = (0..PATHS.len()).filter(|&p| !rate[p].is_empty()).collect();
    let mut rows = Vec::new();
    for &p in &ran {
        let name = PATHS[p];
        let min = rate[p].iter().copied().fold(f64::INFINITY, f64::min);
        let max = rate[p].iter().copied().fold(0.0, f64::max);
        rows.push(
            Record::new()
                .text("device", "cpu")
                .text("path", name)
                .int("reads", nchunks)
                .int("rounds", rounds)
                .float("median_reads_per_s", median(&rate[p]), 0)
                .float("min_reads_per_s", min, 0)
                .float("max_reads_per_s", max, 0)
                .float("ratio_to_baseline", median(&ratio[p]), 3)
                .float("cpu_us_per_read", median(&cpu_us[p]), 2)
                .float("switches_per_read", median(&csw[p]), 2)
                .float("loadavg_1m", loadavg(), 2)
                .pass("checksum_ok", ok[p]),
        );
    }
    exp.table(
        "throughput",
        "4 KiB READ, queue depth 8 (ratio: median of per-round ratios)",
        &rows,
    );
    exp.say(&format!("direct path {mode}"));
    if unsettled > 0 {
        exp.say(&format!(
            "note: {unsettled} run(s) started with an SQPOLL thread of an earlier ring still alive after {SETTLE:?}"
        ));
    }
    exp.say(&format!("uptime after: {}", uptime()));
    if let Err(e) = bar_chart(
        &dir.join("throughput.svg"),
        "4 KiB READ at queue depth 8 (median reads/s, CPU reference device)",
        "reads/s",
        &ran.iter()
            .map(|&p| PATHS[p].to_string())
            .collect::<Vec<_>>(),
        &[("median", ran.iter().map(|&p| median(&rate[p])).collect())],
    ) {
        eprintln!("warning: {e}");
    }
    if ok.iter().all(|&o| o) {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: a checksum did not match the host's");
        ExitCode::FAILURE
    }
}
