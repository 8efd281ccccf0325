//! The CUDA backend end to end without a GPU: a stand-in `libcuda.so` (`tests/cuda_mock/libcuda.cpp`, built
//! here with the system C++ compiler) implements the driver calls the backend makes, with the CPU as the
//! device, and runs the device library's kernels as the very program bodies the CUDA kernels compile
//! (`kernels/src/programs.h`). So the backend's own code — the library and symbol probe, enumeration and the
//! capability query, placement of the device-local block, registration, kernel parameters, events, bounded
//! waits, timeouts and parking — and the library's protocol run against a real ring. What it cannot show is
//! anything about a GPU: memory ordering over PCIe, the JIT, the real driver's semantics (device pointers
//! here are host pointers).
//!
//! The parent test builds the mock and re-runs this binary's `mock_child` test with the mock first on
//! `LD_LIBRARY_PATH` (the loader reads it once, at process start), once per placement: device-local block
//! copied in and out (no host-native atomics, as on PCIe GPUs), and the host copy itself (host-native atomics);
//! and once with a driver that refuses to load the device library (`--device auto` must skip it). The io_queue
//! part (the pump kernels against a real pump) is in `cuda_mock/pump.rs`.
#![cfg(feature = "cuda")]

mod common;
#[path = "cuda_mock/pump.rs"]
mod pump;
mod pump_oracles;
mod pump_util;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};

use gpu_uring::backend::pump::{run_pump, PumpProgram, PumpRunParams};
use gpu_uring::backend::{
    backend, checksum, edit_buffer_host, layout_sqe_expected, open, open_with, Device,
    DeviceConfig, DeviceError, DeviceSelector, FormatCase, Grid, HostileCase, KernelArg,
    KernelCode, KernelLayout, LibraryDevice, Placement, Program, Programs,
};
use gpu_uring::protocol::{DeviceRing, PrintMode, PrintTarget};
use gpu_uring::pump::Pump;
use gpu_uring::ring::{DeviceAccess, RingConfig, RingLayout, Sqe};
use io_uring::{opcode, squeue::Flags, types};

/// Set in the child: the mock is the `libcuda.so` it loads.
const MOCK_ENV: &str = "GPU_URING_CUDA_MOCK";
const TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn cuda_backend_on_a_mock_driver() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("libcuda.so");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cuda_mock/libcuda.cpp");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let built = Command::new(&cxx)
        .args([
            "-std=c++20",
            "-O1",
            "-shared",
            "-fPIC",
            "-pthread",
            "-ffp-contract=off",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-o",
        ])
        .arg(&lib)
        .arg(src)
        .status()
        .unwrap_or_else(|e| panic!("running the C++ compiler {cxx:?}: {e}"));
    assert!(built.success(), "building the mock libcuda failed");
    for (native_atomics, refuse_library) in [("0", "0"), ("1", "0"), ("0", "1")] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "mock_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LD_LIBRARY_PATH", dir.path())
            .env(MOCK_ENV, "1")
            .env("MOCK_CUDA_NATIVE_ATOMICS", native_atomics)
            .env("MOCK_CUDA_REFUSE_LIBRARY", refuse_library)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("1 passed"),
            "host-native atomics {native_atomics}, library refused {refuse_library}: the mock run failed:\n{text}"
        );
        eprintln!(
            "host-native atomics {native_atomics}, library refused {refuse_library}:\n{text}"
        );
    }
}

/// What the mock counts (`mock_stats` in libcuda.cpp).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct MockStats {
    freed_in_use: u32,
    double_registrations: u32,
    unmapped_pointers: u32,
    ptx_modules: u32,
    cubin_modules: u32,
    launches: u32,
    live_registrations: u32,
    live_allocations: u32,
}

fn stats() -> MockStats {
    // SAFETY: dlopen/dlsym with NUL-terminated names; the library is the mock the backend already loaded (the
    // handle is leaked on purpose: it stays loaded for the process); `mock_stats` has the C signature
    // `void mock_stats(MockStats *)` with the layout above.
    unsafe {
        let h = libc::dlopen(c"libcuda.so".as_ptr(), libc::RTLD_NOW);
        assert!(!h.is_null(), "the mock libcuda is loaded");
        let f = libc::dlsym(h, c"mock_stats".as_ptr());
        assert!(!f.is_null(), "libcuda.so is the mock");
        let f: extern "C" fn(*mut MockStats) = std::mem::transmute(f);
        let mut s = MockStats::default();
        f(&mut s);
        s
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two fresh fds we now own.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn assert_clean(ring: &DeviceRing) {
    assert!(ring.quiesce(Duration::from_secs(20)), "ring drained");
    let c = ring.view().local_snapshot();
    assert_eq!(
        (c.ff_errors, c.print_errors, c.foreign_cqes),
        (0, 0, 0),
        "{c:?}"
    );
}

#[test]
#[ignore = "runs in a child process of cuda_backend_on_a_mock_driver, with the mock libcuda on LD_LIBRARY_PATH"]
fn mock_child() {
    if std::env::var_os(MOCK_ENV).is_none() {
        eprintln!("SKIP mock_child: run by cuda_backend_on_a_mock_driver");
        return;
    }
    let native = std::env::var("MOCK_CUDA_NATIVE_ATOMICS").is_ok_and(|v| v == "1");
    if std::env::var("MOCK_CUDA_REFUSE_LIBRARY").is_ok_and(|v| v == "1") {
        return auto_skips_a_device_without_its_library();
    }

    // Enumeration and the capability query.
    let list = backend("cuda").unwrap().adapters().unwrap();
    assert_eq!(list.len(), 1);
    let a = &list[0];
    assert_eq!(
        (a.name.as_str(), a.caps.subgroup_size),
        ("Mock CUDA Device", 32)
    );
    assert!(a.usable.is_ok(), "{:?}", a.usable);
    assert_eq!(a.caps.host_native_atomics, native);
    assert_eq!(a.api_version, "CUDA 12.6");

    // `--device auto` takes the GPU.
    let (dev, _) = open(&DeviceSelector::Auto).unwrap();
    assert_eq!(dev.info().backend, "cuda");
    drop(dev);
    let (dev, _) = open(&DeviceSelector::Cuda).unwrap();
    let dev: &dyn Device = &*dev;

    // Waited and fire-and-forget NOPs through the device library's gu_nop.
    for fire_and_forget in [false, true] {
        let ring = common::ring(RingConfig {
            lanes: 8,
            ..Default::default()
        });
        let rep = dev
            .run(
                &ring,
                8,
                &Program::Nop {
                    ops: 25,
                    fire_and_forget,
                },
                TIMEOUT,
            )
            .unwrap();
        assert_eq!((rep.total().done, rep.total().failed), (200, 0));
        assert_clean(&ring);
    }

    // Prints, offset mode (a file) and stream mode (a pipe): every line exactly once, each lane in order.
    let f = tempfile::tempfile().unwrap();
    let ring = common::ring(RingConfig {
        lanes: 16,
        ..Default::default()
    });
    ring.set_print_target(PrintTarget::Fd(f.as_raw_fd()))
        .unwrap();
    let rep = dev
        .run(&ring, 16, &Program::Print { lines: 60 }, TIMEOUT)
        .unwrap();
    assert_eq!((rep.total().done, rep.total().failed), (960, 0));
    assert_clean(&ring);
    let end = ring.finish_prints().expect("offset mode");
    let out = common::read_fd_file(f.as_raw_fd());
    assert_eq!(end as usize, out.len());
    assert_eq!(common::check_prints(&out, 16, 60), 960);

    let (rd, wr) = pipe();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(rd), &mut out).unwrap();
        out
    });
    let ring = common::ring(RingConfig {
        lanes: 4,
        ..Default::default()
    });
    ring.set_print_target(PrintTarget::Fd(wr.as_raw_fd()))
        .unwrap();
    let rep = dev
        .run(&ring, 4, &Program::Print { lines: 30 }, TIMEOUT)
        .unwrap();
    assert_eq!(rep.total().failed, 0);
    assert_clean(&ring);
    drop((ring, wr));
    assert_eq!(common::check_prints(&reader.join().unwrap(), 4, 30), 120);

    // The §7 formatter through gu_format_probe.
    let cases = FormatCase::probe_cases();
    let ring = common::ring(RingConfig {
        lanes: cases.len() as u32,
        fixed_buffer_bytes: 128 * cases.len(),
        ..Default::default()
    });
    let got = dev.format_probe(&ring, &cases).unwrap();
    for (c, g) in cases.iter().zip(&got) {
        assert_eq!(*g, c.reference(), "{c:?}");
    }

    // Every other built-in program on its library kernel, held to the device suite's oracles.
    programs(dev);
    prints_in_both_modes(dev);
    prints_longer_than_the_ring_lines(dev);
    hostile_rows_match_the_cpu_device(dev);
    pump::pump_stream(dev);
    pump::pump_probe(dev);
    pump::pump_read_by_name(dev);
    refused(dev);
    library_kernel_by_name(dev);

    // One registration per host range, shared by every import of it.
    let before = stats();
    let keep = ring.arena_keepalive();
    let (base, len) = keep.arena();
    let owner: std::sync::Arc<dyn Send + Sync> = std::sync::Arc::new(ring.arena_keepalive());
    // SAFETY: the ring's arena is a page-aligned mapping of `len` bytes kept mapped by `owner`.
    let i1 = unsafe { dev.import_host(base, len, owner.clone()) }.unwrap();
    // SAFETY: as above.
    let i2 = unsafe { dev.import_host(base, len, owner) }.unwrap();
    let s = stats();
    assert_eq!(s.live_registrations, before.live_registrations + 1);
    assert_eq!(s.double_registrations, 0);
    drop((i1, i2, keep));
    assert_eq!(stats().live_registrations, before.live_registrations);

    // A launch naming the ring's arena twice registers it once, for the launch; two rings are refused.
    // SAFETY: the mock's `mock_pair` takes two device pointers and touches neither.
    let pair = unsafe {
        dev.load_kernel(
            "mock_pair",
            KernelCode::Ptx("// mock"),
            KernelLayout {
                buffers: 2,
                value_bytes: 0,
            },
        )
    }
    .unwrap();
    let once = Grid {
        groups: 1,
        group_size: 1,
    };
    let before = stats();
    dev.launch(
        &pair,
        &[KernelArg::RingArena(&ring), KernelArg::RingArena(&ring)],
        once,
        TIMEOUT,
    )
    .unwrap();
    let s = stats();
    assert_eq!(s.launches, before.launches + 1);
    assert_eq!(
        s.live_registrations, before.live_registrations,
        "released after the launch"
    );
    assert_eq!((s.double_registrations, s.unmapped_pointers), (0, 0));
    let other = common::ring(RingConfig::default());
    let e = dev
        .launch(
            &pair,
            &[KernelArg::RingArena(&ring), KernelArg::RingArena(&other)],
            once,
            TIMEOUT,
        )
        .unwrap_err();
    assert!(e.to_string().contains("same ring"), "{e}");

    // Caller-supplied kernels: a launch past its limit times out, and what it uses stays allocated until it
    // has ended (the mock counts frees of memory in use); the next launch reclaims it.
    // SAFETY: the mock's kernels take (u32 *flag, u32 ms) and (), as declared.
    let sleep = unsafe {
        dev.load_kernel(
            "mock_sleep",
            KernelCode::Ptx("// mock"),
            KernelLayout {
                buffers: 1,
                value_bytes: 4,
            },
        )
    }
    .unwrap();
    let one = Grid {
        groups: 1,
        group_size: 1,
    };
    let allocated = stats().live_allocations;
    let flag = dev.alloc(Placement::HostVisible, 4).unwrap();
    let t = Instant::now();
    let e = dev
        .launch(
            &sleep,
            &[
                KernelArg::Buffer(&flag),
                KernelArg::Bytes(&4000u32.to_le_bytes()),
            ],
            one,
            Duration::from_millis(50),
        )
        .unwrap_err();
    assert!(matches!(e, DeviceError::Timeout { .. }), "{e}");
    // The 50 ms wait returned long before the 4 s kernel ended (a wide margin: a loaded machine runs late).
    assert!(
        t.elapsed() < Duration::from_millis(3000),
        "{:?}",
        t.elapsed()
    );
    drop(flag);
    assert_eq!(
        stats().live_allocations,
        allocated + 1,
        "kept while it runs"
    );
    // Every launch first reclaims the parked launches that have ended: launch until the 4 s kernel has ended
    // and its flag is reclaimed (waiting for the condition, not for a time: a loaded machine runs late).
    let reclaimed = pump_util::eventually(Duration::from_secs(60), || {
        let flag = dev.alloc(Placement::HostVisible, 4).unwrap();
        let took = dev
            .launch(
                &sleep,
                &[
                    KernelArg::Buffer(&flag),
                    KernelArg::Bytes(&1u32.to_le_bytes()),
                ],
                one,
                TIMEOUT,
            )
            .unwrap();
        assert!(took >= Duration::from_millis(1));
        assert_eq!(flag.load_u32(0), Some(1), "the kernel wrote its buffer");
        drop(flag);
        let done = stats().live_allocations == allocated;
        if !done {
            std::thread::sleep(Duration::from_millis(20));
        }
        done
    });
    assert!(reclaimed, "reclaimed once ended: {:?}", stats());
    assert_eq!(stats().freed_in_use, 0);

    // Asynchronous launches end their submission; a kernel fault is a run error naming the driver's error.
    let flag = dev.alloc(Placement::HostVisible, 4).unwrap();
    let sub = dev
        .launch_async(
            &sleep,
            &[
                KernelArg::Buffer(&flag),
                KernelArg::Bytes(&20u32.to_le_bytes()),
            ],
            one,
            TIMEOUT,
        )
        .unwrap();
    let fd = sub.completion_fd().unwrap();
    assert!(matches!(sub.wait(TIMEOUT), Some(Ok(_))));
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // The descriptor is made readable just after the result is recorded (a bound, not a fixed wait: poll
    // returns as soon as it is readable).
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut p, 1, 60_000) };
    assert_eq!(ready, 1, "readable once ended");
    assert_eq!(flag.load_u32(0), Some(1));
    // SAFETY: the mock's fault kernel takes no parameter.
    let fault = unsafe {
        dev.load_kernel(
            "mock_fault",
            KernelCode::Ptx("// mock"),
            KernelLayout {
                buffers: 0,
                value_bytes: 0,
            },
        )
    }
    .unwrap();
    let e = dev.launch(&fault, &[], one, TIMEOUT).unwrap_err();
    assert!(e.to_string().contains("ILLEGAL_ADDRESS"), "{e}");

    // The device library was loaded once per device, as the sm_90 cubin (the mock reports compute capability
    // 9.0): by the device `--device auto` opened (which checks it loads), by the one under test and by the
    // one with a fixed wait budget.
    let s = stats();
    assert_eq!(s.cubin_modules, 3, "{s:?}");
    assert_eq!(s.unmapped_pointers, 0, "{s:?}");
    assert_eq!(s.freed_in_use, 0, "{s:?}");
    eprintln!("mock driver: {s:?}");
}

/// Nop, Write (the written bytes: every write once, never torn), Read at depths 1 and 4 (checksum equal to
/// `backend::checksum`), LaneStress on an 8-entry SQ, Exact on a confined ring, Layout, EditBuffer with the
/// host acknowledging: the device suite's checks on gu_nop, gu_write, gu_read, gu_lane_stress, gu_exact,
/// gu_layout and gu_edit_buffer.
fn programs(dev: &dyn Device) {
    // Writes of the lane's first `len` staging bytes ('a' + i mod 26) to an O_APPEND file: each lands once,
    // whole.
    let (lanes, ops, len) = (16u32, 50u32, 100u32);
    let path = tempfile::NamedTempFile::new().unwrap();
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(path.path())
        .unwrap();
    let ring = common::ring(RingConfig {
        lanes,
        fixed_files: vec![f.as_raw_fd()],
        ..Default::default()
    });
    let rep = dev
        .run(&ring, lanes, &Program::Write { file: 0, ops, len }, TIMEOUT)
        .unwrap();
    assert_eq!(
        (rep.total().done, rep.total().failed, rep.total().bytes),
        ((lanes * ops) as u64, 0, (lanes * ops * len) as u64)
    );
    assert_clean(&ring);
    let out = std::fs::read(path.path()).unwrap();
    assert_eq!(out.len(), (lanes * ops * len) as usize);
    let one: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
    assert!(
        out.chunks(len as usize).all(|c| c == one),
        "every write whole"
    );

    // Reads: the sum of the chunks' checksums, one and four reads in flight per lane.
    for (chunk, depth) in [(4096u32, 1u32), (8192, 1), (4096, 4)] {
        let lanes = 8u32;
        let total = (lanes * chunk * 3 + 101) as u64;
        let data: Vec<u8> = (0..total)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, &data).unwrap();
        let ring = common::ring(RingConfig {
            lanes,
            fixed_buffer_bytes: (lanes * chunk * depth) as usize,
            fixed_files: vec![f.as_raw_fd()],
            slots_per_lane: depth + 1,
            ..Default::default()
        });
        let p = Program::Read {
            file: 0,
            chunk,
            total,
            depth,
        };
        let rep = dev.run(&ring, lanes, &p, TIMEOUT).unwrap();
        let want = data
            .chunks(chunk as usize)
            .enumerate()
            .fold(0u64, |acc, (i, c)| {
                acc.wrapping_add(checksum(i as u64 * chunk as u64, c))
            });
        let t = rep.total();
        assert_eq!((t.failed, t.bytes, t.checksum), (0, total, want), "{p:?}");
        assert_eq!(t.done, total.div_ceil(chunk as u64), "{p:?}");
        assert_clean(&ring);
    }

    // LaneStress: 32 lanes on an 8-entry SQ, every NOP completed.
    let ring = common::ring(RingConfig {
        sq_entries: 8,
        lanes: 32,
        ..Default::default()
    });
    let rep = dev
        .run(&ring, 32, &Program::LaneStress { ops: 40 }, TIMEOUT)
        .unwrap();
    assert_eq!((rep.total().done, rep.total().failed), (32 * 40, 0));
    assert_clean(&ring);

    exact_on_a_confined_ring(dev);

    // Layout: the SQE bytes equal the io-uring crate's, and the RingLayout the device received.
    let lanes = 8;
    let ring = common::ring(RingConfig {
        lanes,
        fixed_buffer_bytes: 256 * lanes as usize,
        ..Default::default()
    });
    let rep = dev.run(&ring, lanes, &Program::Layout, TIMEOUT).unwrap();
    assert_eq!(rep.total().done, lanes as u64);
    let (v, l) = (ring.view(), ring.layout());
    for lane in 0..lanes {
        let mut sqe = Sqe::default();
        v.read_bytes(l.fixed + 256 * lane, bytemuck::bytes_of_mut(&mut sqe));
        assert_eq!(sqe, layout_sqe_expected(&l, lane), "lane {lane}: SQE bytes");
        let mut echo = RingLayout::default();
        v.read_bytes(l.fixed + 256 * lane + 64, bytemuck::bytes_of_mut(&mut echo));
        assert_eq!(echo, l, "lane {lane}: the RingLayout the device received");
    }

    // EditBuffer: the host sees every value while the program runs (it cannot finish without the acks).
    let (lanes, steps) = (8, 20);
    let ring = common::ring(RingConfig {
        lanes,
        fixed_buffer_bytes: 4096,
        ..Default::default()
    });
    let stop = AtomicBool::new(false);
    let (rep, changes) = std::thread::scope(|s| {
        let host = s.spawn(|| edit_buffer_host(&ring, lanes, &stop));
        let rep = dev.run(&ring, lanes, &Program::EditBuffer { steps }, TIMEOUT);
        stop.store(true, Ordering::Release);
        (rep, host.join().unwrap())
    });
    assert_eq!(rep.unwrap().total().done, (lanes * steps) as u64);
    assert_eq!(changes, (lanes * steps) as u64);
    // A lane that stops half-way says so: acks for two steps are there, the third never comes, so each lane
    // reports two steps done and one failed (its bounded wait ran out of budget). On a device opened with a
    // fixed poll budget: one derived from a short run timeout could run past that timeout on a loaded machine
    // (the mock's lanes are host threads, whose polls yield the CPU).
    let (budgeted, _) = open_with(
        &DeviceSelector::Cuda,
        &DeviceConfig {
            wait_budget: Some(2000),
            ..Default::default()
        },
    )
    .unwrap();
    let ring = common::ring(RingConfig {
        lanes: 2,
        fixed_buffer_bytes: 4096,
        ..Default::default()
    });
    let (v, l) = (ring.view(), ring.layout());
    for lane in 0..2 {
        v.write_bytes(l.fixed + 8 * lane + 4, &2u32.to_le_bytes());
    }
    let rep = budgeted
        .run(&ring, 2, &Program::EditBuffer { steps: 3 }, TIMEOUT)
        .unwrap();
    for (i, lane) in rep.lanes.iter().enumerate() {
        assert_eq!((lane.done, lane.failed), (2, 1), "lane {i}");
    }
}

/// The exact program on a confined ring: allowed WRITE_FIXED and NOP complete, a forbidden opcode, a raw fd
/// and an address outside the registered buffer are refused, and the file holds the allowed write only.
fn exact_on_a_confined_ring(dev: &dyn Device) {
    let out = tempfile::tempfile().unwrap();
    let ring = common::ring(RingConfig {
        lanes: 1,
        fixed_buffer_bytes: 8192,
        fixed_files: vec![out.as_raw_fd()],
        access: DeviceAccess::default(),
        ..Default::default()
    });
    let (l, v) = (ring.layout(), ring.view());
    let data = l.fixed + 4096;
    v.write_bytes(data, b"allowed fixed write\n");
    let addr = v.host_addr(data) as *const u8;
    let buf = l.fixed_buf_index as u16;
    let images = [
        opcode::WriteFixed::new(types::Fixed(0), addr, 20, buf)
            .offset(0)
            .build(),
        opcode::Nop::new().build().flags(Flags::FIXED_FILE),
        opcode::Write::new(types::Fixed(0), addr, 5)
            .offset(0)
            .build(),
        opcode::WriteFixed::new(types::Fd(out.as_raw_fd()), addr, 5, buf)
            .offset(0)
            .build(),
        opcode::WriteFixed::new(types::Fixed(0), v.host_addr(l.sqes) as *const u8, 64, buf)
            .offset(0)
            .build()
            .flags(Flags::FIXED_FILE),
    ];
    for (i, e) in images.iter().enumerate() {
        v.write_bytes(
            l.fixed + 64 * i as u32,
            bytemuck::bytes_of(&Sqe::from_entry(e)),
        );
    }
    let n = images.len() as u32;
    let rep = dev
        .run(&ring, 1, &Program::Exact { count: n }, TIMEOUT)
        .unwrap();
    assert_eq!(rep.total().done, n as u64);
    let mut res = [0u8; 20];
    v.read_bytes(l.fixed + 64 * n, &mut res);
    let res: Vec<i32> = res
        .chunks(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(
        res,
        [20, 0, -libc::EACCES, -libc::EACCES, -libc::EFAULT],
        "allowed write, NOP; forbidden opcode, raw fd, address outside the buffer"
    );
    assert!(ring.quiesce(Duration::from_secs(20)));
    assert_eq!(
        common::read_fd_file(out.as_raw_fd()),
        b"allowed fixed write\n"
    );
}

/// Prints by group commit through the print log and one write per line, to a file, a pipe and a fixed file
/// of a confined ring: every line exactly once, each lane's in order.
fn prints_in_both_modes(dev: &dyn Device) {
    let (lanes, lines) = (16u32, 150u32);
    for mode in [PrintMode::GroupCommit, PrintMode::LinePerWrite] {
        let f = tempfile::tempfile().unwrap();
        let ring = common::ring(RingConfig {
            lanes,
            ..Default::default()
        });
        ring.set_print_mode(mode);
        ring.set_print_target(PrintTarget::Fd(f.as_raw_fd()))
            .unwrap();
        let rep = dev
            .run(&ring, lanes, &Program::Print { lines }, TIMEOUT)
            .unwrap();
        assert_eq!(
            (rep.total().done, rep.total().failed),
            ((lanes * lines) as u64, 0)
        );
        assert_clean(&ring);
        let r = ring.print_log_report();
        assert_eq!(
            (r.incomplete_ranges, r.host_errors, r.violations),
            (0, 0, 0)
        );
        match mode {
            PrintMode::GroupCommit => assert!(r.device_writes > 0, "{mode:?}: {r:?}"),
            PrintMode::LinePerWrite => assert_eq!(r.device_writes, 0, "{mode:?}"),
        }
        let end = ring.finish_prints().expect("offset mode");
        let out = common::read_fd_file(f.as_raw_fd());
        assert_eq!(end as usize, out.len());
        assert_eq!(
            common::check_prints(&out, lanes, lines),
            (lanes * lines) as usize,
            "{mode:?}"
        );
    }
    let out = tempfile::tempfile().unwrap();
    let ring = common::ring(RingConfig {
        lanes: 8,
        fixed_files: vec![out.as_raw_fd()],
        access: DeviceAccess::default(),
        ..Default::default()
    });
    ring.set_print_target(PrintTarget::Fixed(0)).unwrap();
    let rep = dev
        .run(&ring, 8, &Program::Print { lines: 50 }, TIMEOUT)
        .unwrap();
    assert_eq!(rep.total().failed, 0);
    assert_clean(&ring);
    ring.finish_prints();
    assert_eq!(
        common::check_prints(&common::read_fd_file(out.as_raw_fd()), 8, 50),
        400
    );
}

/// device_suite.rs's `print_log_refuses_lines_longer_than_the_ring_lines` on gu_print: lines longer than the
/// ring's 48-byte lines are refused (LINE_TOO_LONG, nothing printed), the rest printed exactly once in order,
/// and each lane's `report` counts only its refused lines failed.
fn prints_longer_than_the_ring_lines(dev: &dyn Device) {
    use gpu_uring::backend::format_print_line;
    use gpu_uring::protocol::LineBuf;
    let (lanes, lines, line_bytes) = (8u32, 40u32, 48u32);
    let (rd, wr) = pipe();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(rd), &mut out).unwrap();
        out
    });
    let ring = common::ring(RingConfig {
        lanes,
        line_bytes,
        ..Default::default()
    });
    ring.set_print_mode(PrintMode::GroupCommit);
    ring.set_print_target(PrintTarget::Fd(wr.as_raw_fd()))
        .unwrap();
    let rep = dev
        .run(&ring, lanes, &Program::Print { lines }, TIMEOUT)
        .unwrap();
    assert_clean(&ring);
    drop((ring, wr));
    let out = reader.join().unwrap();
    let mut per_lane = vec![Vec::new(); lanes as usize];
    let mut long = vec![0u64; lanes as usize];
    for lane in 0..lanes {
        for seq in 0..lines {
            let mut b = LineBuf::with_capacity(256);
            format_print_line(&mut b, lane, seq);
            let mut l = b.as_bytes().to_vec();
            l.push(b'\n');
            if l.len() > line_bytes as usize {
                long[lane as usize] += 1;
            } else {
                per_lane[lane as usize].extend_from_slice(&l);
            }
        }
    }
    let total_long: u64 = long.iter().sum();
    assert!(
        total_long > 0 && total_long < (lanes * lines) as u64,
        "some lines are too long"
    );
    for (i, r) in rep.lanes.iter().enumerate() {
        assert_eq!(
            (r.done, r.failed),
            (lines as u64 - long[i], long[i]),
            "lane {i}: only its refused lines failed"
        );
    }
    let mut got = vec![Vec::new(); lanes as usize];
    for l in out.split_inclusive(|&c| c == b'\n') {
        let lane: usize = std::str::from_utf8(l).unwrap()[5..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        got[lane].extend_from_slice(l);
    }
    assert_eq!(got, per_lane, "each lane's printable lines once, in order");
}

/// What a hostile row leaves: the row's status and result, and the counters it moved.
fn hostile_outcome(dev: &dyn Device, case: HostileCase) -> (u64, u64, [u32; 4], i32) {
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let ring = common::ring(RingConfig {
        lanes: 1,
        sq_entries: 64,
        fixed_files: vec![null.as_raw_fd()],
        fixed_buffer_bytes: 4096,
        access: DeviceAccess::default(),
        ..Default::default()
    });
    let b = ring.view().local_snapshot();
    let rep = dev
        .run(&ring, 1, &Program::Hostile { case }, TIMEOUT)
        .unwrap();
    let a = ring.view().local_snapshot();
    let lane = rep.lanes[0];
    assert_eq!(lane.done, 1, "{case:?} ran");
    let deltas = [
        a.protocol_violations.wrapping_sub(b.protocol_violations),
        a.foreign_cqes.wrapping_sub(b.foreign_cqes),
        a.ff_errors.wrapping_sub(b.ff_errors),
        a.skip_failures.wrapping_sub(b.skip_failures),
    ];
    (lane.checksum, lane.bytes, deltas, a.ff_last_error)
}

/// Every ring row of the hostile-input table on gu_hostile: the same status, result and counter deltas as
/// the CPU reference device (which host/tests/hostile_input.rs holds to the table).
fn hostile_rows_match_the_cpu_device(dev: &dyn Device) {
    let cpu = common::cpu();
    for case in HostileCase::ALL {
        let want = hostile_outcome(&*cpu, case);
        let got = hostile_outcome(dev, case);
        assert_eq!(got, want, "{case:?}: cuda (left) vs the CPU device (right)");
    }
}

/// What the library cannot run is refused with the reason: a caller's pump program (SPIR-V) and a ring without
/// SQPOLL.
fn refused(dev: &dyn Device) {
    let data = pump_util::pattern_file(4096);
    let pump = Pump::spawn(pump_util::probe_config(&data)).unwrap();
    let p = PumpRunParams {
        chunk: 64,
        total: 4096,
        ..Default::default()
    };
    // SAFETY: the built-in stream module, valid SPIR-V for run_pump's argument scheme (never loaded here).
    let caller =
        unsafe { PumpProgram::new("caller_stream", gpu_uring::backend::spirv::PUMP_STREAM) };
    let e = run_pump(dev, &pump, 1, caller, p, TIMEOUT).unwrap_err();
    assert!(
        matches!(e, DeviceError::Unsupported { .. }) && e.to_string().contains("caller_stream"),
        "{e}"
    );
    pump.stop().unwrap();
    let ring = common::ring(RingConfig {
        lanes: 1,
        sqpoll: false,
        ..Default::default()
    });
    let nop = Program::Nop {
        ops: 1,
        fire_and_forget: false,
    };
    let e = dev.run(&ring, 1, &nop, TIMEOUT).unwrap_err();
    assert!(
        matches!(e, DeviceError::Unsupported { .. }) && e.to_string().contains("SQPOLL"),
        "{e}"
    );
}

/// A driver that cannot load the device library: `--device auto` skips the device with the reason (it could
/// run no built-in program), `--device cuda` still opens it, and a program there fails naming the load.
fn auto_skips_a_device_without_its_library() {
    let (dev, skipped) = open(&DeviceSelector::Auto).unwrap();
    assert_ne!(dev.info().backend, "cuda");
    let why: Vec<String> = skipped.iter().map(|e| e.to_string()).collect();
    assert!(
        why.iter()
            .any(|w| w.starts_with("cuda") && w.contains("device library does not load")),
        "{why:?}"
    );
    let (dev, _) = open(&DeviceSelector::Cuda).unwrap();
    let ring = common::ring(RingConfig {
        lanes: 1,
        ..Default::default()
    });
    let nop = Program::Nop {
        ops: 1,
        fire_and_forget: false,
    };
    let e = dev.run(&ring, 1, &nop, TIMEOUT).unwrap_err();
    assert!(e.to_string().contains("cuModuleLoadData"), "{e}");
}

/// A kernel of the device library launched by name, as an experiment would (`gu_memory_placement`: build the
/// LCG chain over the buffer, then chase it), in every placement: the chase ends where the host's does.
fn library_kernel_by_name(dev: &dyn Device) {
    let lib: &dyn LibraryDevice = dev.library().expect("CUDA runs the device library");
    let k = lib.library_kernel("gu_memory_placement").unwrap();
    let (mask, steps, seed) = (1023u32, 5000u32, 7u32);
    let next = |i: u32| 1664525u32.wrapping_mul(i).wrapping_add(1013904223) & mask;
    let want = (0..steps).fold(seed & mask, |i, _| next(i));
    for place in [
        Placement::DeviceLocal,
        Placement::HostVisible,
        Placement::ImportedHost,
    ] {
        let buf = dev.alloc(place, 4 * (mask as usize + 2)).unwrap();
        let run = |mode: u32, n: u32, groups: u32| {
            let v = [mode, n, mask, seed];
            let b: Vec<[u8; 4]> = v.iter().map(|x| x.to_le_bytes()).collect();
            let mut args = vec![KernelArg::Buffer(&buf)];
            args.extend(b.iter().map(|x| KernelArg::Bytes(x)));
            let grid = Grid {
                groups,
                group_size: 64,
            };
            dev.launch(&k, &args, grid, TIMEOUT).unwrap();
        };
        run(0, 1024, 4);
        run(1, steps, 1);
        let mut sink = [0u8; 4];
        lib.read_buffer(&buf, 4 * (mask as usize + 1), &mut sink)
            .unwrap();
        assert_eq!(u32::from_le_bytes(sink), want, "{place:?}");
    }
}
