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
//! copied in and out (no host-native atomics, as on PCIe GPUs), and the host copy itself (host-native atomics).
#![cfg(feature = "cuda")]

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use gpu_uring::backend::{
    backend, open, Device, DeviceError, DeviceSelector, FormatCase, Grid, KernelArg, KernelCode,
    KernelLayout, Placement, Program, Programs,
};
use gpu_uring::protocol::PrintTarget;
use gpu_uring::ring::RingConfig;

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
    for native_atomics in ["0", "1"] {
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
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("1 passed"),
            "host-native atomics {native_atomics}: the mock run failed:\n{text}"
        );
        eprintln!("host-native atomics {native_atomics}:\n{text}");
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

fn assert_clean(ring: &gpu_uring::protocol::DeviceRing) {
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

    // A program the library does not implement yet is refused by name.
    let e = dev
        .run(&ring, 1, &Program::LaneStress { ops: 1 }, TIMEOUT)
        .unwrap_err();
    assert!(
        matches!(e, DeviceError::Unsupported { .. }) && e.to_string().contains("LaneStress"),
        "{e}"
    );

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
                KernelArg::Bytes(&2000u32.to_le_bytes()),
            ],
            one,
            Duration::from_millis(50),
        )
        .unwrap_err();
    assert!(matches!(e, DeviceError::Timeout { .. }), "{e}");
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    drop(flag);
    assert_eq!(
        stats().live_allocations,
        allocated + 1,
        "kept while it runs"
    );
    std::thread::sleep(
        Duration::from_millis(2000).saturating_sub(t.elapsed()) + Duration::from_millis(300),
    );
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
    assert_eq!(stats().live_allocations, allocated, "reclaimed once ended");
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
    // The descriptor is made readable just after the result is recorded.
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut p, 1, 5000) };
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

    // The device library was loaded once, as the sm_90 cubin (the mock reports compute capability 9.0).
    let s = stats();
    assert_eq!(s.cubin_modules, 1, "{s:?}");
    assert_eq!(s.unmapped_pointers, 0, "{s:?}");
    assert_eq!(s.freed_in_use, 0, "{s:?}");
    eprintln!("mock driver: {s:?}");
}
