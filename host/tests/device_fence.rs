//! Device launches awaited through their completion descriptor ([`Submission::completion_fd`]) imported into
//! a proactor ([`Proactor::import_fence`]): on the CPU reference device (always) and on Vulkan (lavapipe in CI:
//! `CI=true` makes a missing Vulkan device a failure; elsewhere the Vulkan tests print `SKIP vulkan: <reason>`).
//!
//! Each test: a launch that takes a while is awaited by a semaphore wait operation; when it completes the
//! launch has ended and its output is in its buffer; a failed or timed-out launch still makes the
//! descriptor readable and reports its failure (no hang); descriptors are closed afterwards (the process's
//! descriptor count returns to where it was). lavapipe (Mesa 22.3) exports no `sync_file` (no
//! `VK_KHR_external_semaphore_fd` / `_fence_fd`), so CI runs the emulated descriptor; the `sync_file` test
//! runs wherever a driver exports one and says why it skips otherwise. The tests run one at a time (they
//! count the process's descriptors).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use gpu_uring::backend::{
    open, open_with, Device, DeviceBuffer, DeviceConfig, DeviceError, DeviceSelector, FenceKind,
    Grid, Kernel, KernelArg, KernelCode, KernelLayout, NativeArg, Placement, Submission,
};
use gpu_uring::proactor::{Completion, Operation, Options, Outcome, Proactor, Semaphore};

const LIMIT: Duration = Duration::from_secs(20);

/// One test at a time: they count the process's open descriptors.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn cpu() -> Arc<dyn Device> {
    let (dev, _) = open(&DeviceSelector::Cpu).expect("the CPU reference device always opens");
    Arc::from(dev)
}

/// The file's one Vulkan device, or `None` (a skip, with the reason) where there is none outside CI.
fn vulkan() -> Option<Arc<dyn Device>> {
    static DEV: OnceLock<Result<Arc<dyn Device>, DeviceError>> = OnceLock::new();
    let r = DEV.get_or_init(|| {
        open_with(&DeviceSelector::Vulkan(None), &DeviceConfig::from_env())
            .map(|(d, _)| Arc::from(d))
    });
    match r {
        Ok(d) => Some(d.clone()),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI needs a Vulkan device (lavapipe: mesa-vulkan-drivers): {e}");
            }
            eprintln!("SKIP vulkan: {e}");
            None
        }
    }
}

/// The process's open descriptors with what each names, less those a driver opens and closes on its own
/// schedule, which say nothing about a launch's own: the on-disk shader caches' files (Mesa's
/// `mesa_shader_cache`, NVIDIA's `GLCache`), written by their threads after a cold compile, and NVIDIA's
/// device nodes (`/dev/nvidia*`; its driver opened one more during a dispatch that ran past its limit).
fn fd_targets() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd").map_or_else(
        |_| Vec::new(),
        |d| {
            d.flatten()
                .map(|e| {
                    std::fs::read_link(e.path())
                        .map_or_else(|_| "?".to_string(), |t| t.to_string_lossy().into_owned())
                })
                .filter(|t| {
                    !t.contains("mesa_shader_cache")
                        && !t.contains("/GLCache/")
                        && !t.starts_with("/dev/nvidia")
                })
                .collect()
        },
    )
}

/// The descriptors open now, as [`fd_targets`] names them (sorted, so two snapshots compare).
fn open_fds() -> Vec<String> {
    let mut v = fd_targets();
    v.sort();
    v
}

/// The entries of sorted `a` that sorted `b` lacks, counting repeats.
fn minus(a: &[String], b: &[String]) -> Vec<String> {
    let mut rest = b.to_vec();
    a.iter()
        .filter(|t| match rest.iter().position(|r| r == *t) {
            Some(i) => {
                rest.remove(i);
                false
            }
            None => true,
        })
        .cloned()
        .collect()
}

/// Waits (bounded) until the process has as many descriptors open as `before` again: a launch's waiter
/// thread closes its eventfd just after it ends the submission. A failure names what was opened or closed.
fn fds_back_to(before: Vec<String>) {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let now = open_fds();
        if now.len() == before.len() {
            return;
        }
        if Instant::now() >= end {
            let (opened, closed) = (minus(&now, &before), minus(&before, &now));
            panic!(
                "descriptors leaked: {} open, {} before; new names {opened:?}, gone {closed:?}, now {now:?}",
                now.len(),
                before.len()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Imports `s`'s completion descriptor into `p` ("`sem` reaches 1 when it is readable") and awaits the
/// semaphore with a wait operation. Returns how long the await took and the wait's completion.
fn await_launch(p: &Proactor, s: &Submission) -> (Duration, Completion) {
    let t = Instant::now();
    let sem = Semaphore::new(0);
    p.import_fence(s.completion_fd().expect("completion fd"), &sem, 1)
        .expect("import_fence");
    p.submit(Operation::semaphore_wait(&sem, 1).user_data(7))
        .expect("submit the wait");
    let mut got = None;
    while got.is_none() {
        assert!(
            t.elapsed() < LIMIT,
            "the launch's descriptor never became readable"
        );
        p.poll(Some(Duration::from_millis(20)), |c| got = Some(c))
            .expect("poll");
    }
    let c = got.expect("a completion");
    assert_eq!(c.user_data, 7);
    assert_eq!(sem.value(), 1, "the semaphore reached the fence's value");
    // The import closes its descriptor once it has fired.
    let end = Instant::now() + Duration::from_secs(2);
    while p.in_flight() != 0 {
        assert!(Instant::now() < end, "the import is still in flight");
        p.poll(Some(Duration::from_millis(5)), |_| {})
            .expect("poll");
    }
    (t.elapsed(), c)
}

fn proactor() -> Proactor {
    Proactor::new(Options::default()).expect("a proactor")
}

// ---------------------------------------------------------------------------------
// CPU reference device

/// Native kernel: each invocation sleeps `ms` (given as bytes) then writes `id + 1` into word `id`.
fn cpu_slow_kernel(dev: &dyn Device) -> Kernel {
    let f: gpu_uring::backend::NativeKernel = Arc::new(|id, args, _deadline| {
        let (Some(NativeArg::Words(w)), Some(NativeArg::Bytes(ms))) = (args.first(), args.get(1))
        else {
            return;
        };
        let ms = ms
            .get(..4)
            .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        std::thread::sleep(Duration::from_millis(ms.into()));
        if let Some(x) = w.get(id as usize) {
            x.store(id + 1, Ordering::Release);
        }
    });
    let layout = KernelLayout {
        buffers: 1,
        value_bytes: 4,
    };
    // SAFETY: a native kernel that touches only the words it is given, in bounds.
    unsafe { dev.load_kernel("slow", KernelCode::Native(f), layout) }.expect("load")
}

#[test]
fn cpu_launch_awaited_through_its_descriptor() {
    let _g = serial();
    let dev = cpu();
    let p = proactor();
    let k = cpu_slow_kernel(&*dev);
    let buf = dev.alloc(Placement::HostVisible, 4 * 64).expect("alloc");
    let before = open_fds();
    let stats0 = dev.fence_stats();
    let ms = 150u32.to_ne_bytes();
    let s = dev
        .launch_async(
            &k,
            &[KernelArg::Buffer(&buf), KernelArg::Bytes(&ms)],
            Grid::groups(2),
            LIMIT,
        )
        .expect("launch_async");
    assert_eq!(s.kind(), FenceKind::Emulated);
    assert_eq!(dev.fence_kind(), FenceKind::Emulated);
    assert!(s.result().is_none(), "returned before the lanes finished");
    let (took, c) = await_launch(&p, &s);
    assert_eq!(c.outcome, Outcome::Ok(0));
    assert!(
        took >= Duration::from_millis(100),
        "resolved early: {took:?}"
    );
    assert!(matches!(s.result(), Some(Ok(_))), "{:?}", s.result());
    for i in 0..16 {
        assert_eq!(buf.load_u32(i), Some(i as u32 + 1), "word {i}");
    }
    let st = dev.fence_stats();
    assert_eq!(st.emulated_fds, stats0.emulated_fds + 1);
    assert_eq!(st.emulated_signals, stats0.emulated_signals + 1);
    assert_eq!(st.sync_files, 0);
    drop(s);
    fds_back_to(before);
}

#[test]
fn cpu_launch_that_panics_delivers_failure() {
    let _g = serial();
    let dev = cpu();
    let p = proactor();
    let f: gpu_uring::backend::NativeKernel = Arc::new(|id, _, _| {
        std::thread::sleep(Duration::from_millis(20));
        if id == 3 {
            panic!("lane 3 fails (on purpose)");
        }
    });
    let layout = KernelLayout {
        buffers: 0,
        value_bytes: 0,
    };
    // SAFETY: touches nothing.
    let k = unsafe { dev.load_kernel("fails", KernelCode::Native(f), layout) }.expect("load");
    let before = open_fds();
    let s = dev
        .launch_async(&k, &[], Grid::groups(1), LIMIT)
        .expect("launch_async");
    let (_, c) = await_launch(&p, &s);
    assert_eq!(c.outcome, Outcome::Ok(0));
    match s.result() {
        Some(Err(DeviceError::Run { message, .. })) => {
            assert!(message.contains("without a result"), "{message}")
        }
        r => panic!("a failed launch reported {r:?}"),
    }
    drop(s);
    fds_back_to(before);
}

#[test]
fn cpu_launch_past_its_limit_delivers_timeout() {
    let _g = serial();
    let dev = cpu();
    let p = proactor();
    // Spins until its deadline and gives up there, as a GPU watchdog would end it.
    let done = Arc::new(AtomicU32::new(0));
    let d2 = done.clone();
    let f: gpu_uring::backend::NativeKernel = Arc::new(move |_, _, deadline| {
        while Instant::now() < deadline + Duration::from_millis(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
        d2.fetch_add(1, Ordering::SeqCst);
    });
    let layout = KernelLayout {
        buffers: 0,
        value_bytes: 0,
    };
    // SAFETY: touches nothing.
    let k = unsafe { dev.load_kernel("spins", KernelCode::Native(f), layout) }.expect("load");
    let before = open_fds();
    let limit = Duration::from_millis(30);
    let s = dev
        .launch_async(&k, &[], Grid::groups(1), limit)
        .expect("launch_async");
    let (took, _) = await_launch(&p, &s);
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        matches!(s.result(), Some(Err(DeviceError::Timeout { .. }))),
        "{:?}",
        s.result()
    );
    assert_eq!(done.load(Ordering::SeqCst), 8, "every lane had returned");
    // A bounded wait on a submission that has ended returns at once.
    assert!(s.wait(Duration::ZERO).is_some());
    drop(s);
    fds_back_to(before);
}

#[test]
fn cpu_bad_arguments_fail_at_launch() {
    let _g = serial();
    let dev = cpu();
    let k = cpu_slow_kernel(&*dev);
    let before = open_fds();
    let r = dev.launch_async(&k, &[], Grid::groups(1), LIMIT);
    assert!(matches!(r, Err(DeviceError::Run { .. })), "{r:?}");
    assert_eq!(open_fds().len(), before.len());
}

// ---------------------------------------------------------------------------------
// Vulkan

static SHADER: &[u8] = include_bytes!("../../device-shaders/spirv/memory_placement.spv");
const PLACEMENT_LAYOUT: KernelLayout = KernelLayout {
    buffers: 1,
    value_bytes: 16,
};

fn push(w: [u32; 4]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

fn next(i: u32, mask: u32) -> u32 {
    1664525u32.wrapping_mul(i).wrapping_add(1013904223) & mask
}

fn placement_kernel(dev: &dyn Device) -> Kernel {
    // SAFETY: memory_placement.spv (device-shaders/build.sh): one storage buffer at binding 0, 16 bytes of
    // push constants; it touches words 0..=mask + 1 only, and every buffer below holds more.
    unsafe {
        dev.load_kernel(
            "memory_placement",
            KernelCode::SpirV(SHADER),
            PLACEMENT_LAYOUT,
        )
    }
    .expect("load memory_placement")
}

/// A buffer of `mask + 1` chain words and the sink, initialised by a synchronous launch.
fn chain(dev: &dyn Device, k: &Kernel, mask: u32) -> DeviceBuffer {
    let buf = dev
        .alloc(Placement::HostVisible, 4 * (mask as usize + 16))
        .expect("alloc");
    let per = (mask + 1).div_ceil(64 * 16);
    dev.launch(
        k,
        &[
            KernelArg::Buffer(&buf),
            KernelArg::Bytes(&push([0, per, mask, 0])),
        ],
        Grid::groups(16),
        LIMIT,
    )
    .expect("init launch");
    buf
}

#[test]
fn vulkan_dispatch_awaited_through_its_descriptor() {
    let _g = serial();
    let Some(dev) = vulkan() else {
        return;
    };
    let p = proactor();
    let k = placement_kernel(&*dev);
    let (mask, seed, n) = ((1u32 << 18) - 1, 777u32, 60_000u32);
    let buf = chain(&*dev, &k, mask);
    let mut want = seed & mask;
    for _ in 0..n {
        want = next(want, mask);
    }
    let before = open_fds();
    let stats0 = dev.fence_stats();
    let p1 = push([1, n, mask, seed]);
    let s = dev
        .launch_async(
            &k,
            &[KernelArg::Buffer(&buf), KernelArg::Bytes(&p1)],
            Grid::groups(1),
            LIMIT,
        )
        .expect("launch_async");
    assert_eq!(s.kind(), dev.fence_kind());
    let (took, c) = await_launch(&p, &s);
    assert_eq!(c.outcome, Outcome::Ok(0));
    // The descriptor was readable: the dispatch has completed, and its output is there.
    let r = s.wait(Duration::from_secs(5));
    assert!(matches!(r, Some(Ok(_))), "{r:?}");
    assert_eq!(
        buf.load_u32(mask as usize + 1),
        Some(want),
        "the chase's sink"
    );
    let st = dev.fence_stats();
    match s.kind() {
        FenceKind::Emulated => {
            assert_eq!(st.emulated_fds, stats0.emulated_fds + 1);
            assert_eq!(st.emulated_signals, stats0.emulated_signals + 1);
        }
        FenceKind::SyncFile => assert_eq!(st.sync_files, stats0.sync_files + 1),
    }
    eprintln!(
        "vulkan dispatch awaited in {took:?} ({} descriptor)",
        s.kind().name()
    );
    drop(s);
    fds_back_to(before);
}

#[test]
fn vulkan_dispatch_past_its_limit_delivers_timeout() {
    let _g = serial();
    let Some(dev) = vulkan() else {
        return;
    };
    let p = proactor();
    let k = placement_kernel(&*dev);
    // 16 Mi words written by 16 384 invocations: far longer than the 1 ms limit on any device.
    let mask = (1u32 << 24) - 1;
    let buf = dev
        .alloc(Placement::HostVisible, 4 * (mask as usize + 16))
        .expect("alloc");
    let before = open_fds();
    let p0 = push([0, 1024, mask, 0]);
    let t = Instant::now();
    let s = dev
        .launch_async(
            &k,
            &[KernelArg::Buffer(&buf), KernelArg::Bytes(&p0)],
            Grid::groups(256),
            Duration::from_millis(1),
        )
        .expect("launch_async");
    let (took, _) = await_launch(&p, &s);
    let r = s.result();
    assert!(
        matches!(r, Some(Err(DeviceError::Timeout { .. }))),
        "{r:?} after {took:?}"
    );
    if s.kind() == FenceKind::Emulated {
        assert!(
            took < Duration::from_secs(2),
            "the limit did not end the wait: {took:?}"
        );
    }
    drop(s);
    // The dispatch runs on, parked; the next launch frees it once its fence has signalled.
    let end = t + LIMIT;
    while buf.load_u32(mask as usize).unwrap_or(0) == 0 {
        assert!(
            Instant::now() < end,
            "the timed-out dispatch never finished"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(50));
    fds_back_to(before);
}

#[test]
fn vulkan_bad_arguments_fail_at_launch() {
    let _g = serial();
    let Some(dev) = vulkan() else {
        return;
    };
    let k = placement_kernel(&*dev);
    let before = open_fds();
    let r = dev.launch_async(&k, &[], Grid::groups(1), LIMIT);
    assert!(r.is_err(), "{r:?}");
    assert_eq!(open_fds().len(), before.len());
}

#[test]
fn vulkan_sync_file_import_where_exported() {
    let _g = serial();
    let Some(dev) = vulkan() else {
        return;
    };
    if dev.fence_kind() != FenceKind::SyncFile {
        eprintln!(
            "SKIP sync_file: {} exports no sync_file (no exportable SYNC_FD semaphore; the reason is logged \
             at debug level when the adapter is listed); its launches use the emulated descriptor",
            dev.info().name
        );
        return;
    }
    let p = proactor();
    let k = placement_kernel(&*dev);
    let (mask, seed, n) = ((1u32 << 16) - 1, 5u32, 30_000u32);
    let buf = chain(&*dev, &k, mask);
    let mut want = seed & mask;
    for _ in 0..n {
        want = next(want, mask);
    }
    let before = open_fds();
    let p1 = push([1, n, mask, seed]);
    let s = dev
        .launch_async(
            &k,
            &[KernelArg::Buffer(&buf), KernelArg::Bytes(&p1)],
            Grid::groups(1),
            LIMIT,
        )
        .expect("launch_async");
    // -1 from the driver (already signalled) falls back to the eventfd: then there is nothing to check.
    if s.kind() == FenceKind::SyncFile {
        let fd = s.completion_fd().expect("fd");
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(link.contains("sync_file"), "not a sync_file: {link}");
    }
    let (_, c) = await_launch(&p, &s);
    assert_eq!(c.outcome, Outcome::Ok(0));
    let r = s.wait(Duration::from_secs(5));
    assert!(matches!(r, Some(Ok(_))), "{r:?}");
    assert_eq!(buf.load_u32(mask as usize + 1), Some(want));
    drop(s);
    fds_back_to(before);
}
