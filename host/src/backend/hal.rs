//! The device HAL: everything a backend implements, in one file.
//!
//! A backend (a folder under `backend/` with the same file names as the others: `mod.rs`, `adapter.rs`,
//! `memory.rs`, `kernel.rs`, `run.rs`; CUDA and HIP share those in `backend/gpu/` and keep their driver calls)
//! provides:
//!
//! - a [`Backend`]: enumerates its adapters ([`AdapterInfo`] with [`Capabilities`]) and opens one as a
//!   [`Device`] from a [`DeviceConfig`] (no environment variables are read below this point: binaries read
//!   them and fill the config, [`DeviceConfig::from_env`]);
//! - a [`Device`]: allocates device memory
//!   ([`Device::alloc`]), imports host memory ([`Device::import_host`]; what is imported stays alive while any
//!   launch using it runs), loads kernels from their binary ([`KernelCode`]: SPIR-V today, PTX and AMD code
//!   objects next, Rust closures on the CPU reference device), and launches them ([`Device::launch`]) with
//!   [`KernelArg`]s and a [`Grid`], waiting at most a limit. The built-in programs run on every device through
//!   [`Programs`](super::Programs), written once on top of these calls.
//!
//! Launches also run asynchronously ([`Device::launch_async`]): the [`Submission`] it returns is waited for
//! with a bound ([`Submission::wait`]) or awaited through a pollable descriptor
//! ([`Submission::completion_fd`]) — a `sync_file` the driver exported ([`FenceKind::SyncFile`]), or an
//! eventfd the backend's completion path makes readable ([`FenceKind::Emulated`], counted in
//! [`FenceStats`]). The descriptor becomes readable when the launch ends, however it ends; its result (done,
//! failed, over its limit) is then read from the submission without blocking. Whatever awaits the descriptor
//! (an event loop, the proactor's fence import) needs nothing of this module.
//!
//! Launch arguments are one ordered list that fits both launch styles: a binding-style backend (Vulkan)
//! binds the buffer arguments, in order, to storage-buffer bindings `0..n` and concatenates the byte
//! arguments into its push constants; a kernel-parameter backend (CUDA, HIP) passes argument `i` as kernel
//! parameter `i` (a buffer as its device pointer, bytes by value).
//!
//! Resumable programs (a device with a loop cap or a dispatch time limit) are re-dispatched by one
//! backend-neutral pacer ([`super::redispatch`]); every backend that re-dispatches uses it.

use std::any::Any;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::error::DeviceError;
use super::run_buffer::LaneState;
use crate::protocol::{DeviceRing, LineBuf};

/// What kind of processor an adapter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceType {
    /// A GPU with its own memory.
    DiscreteGpu,
    /// A GPU sharing the host's memory.
    IntegratedGpu,
    /// A virtualised GPU.
    VirtualGpu,
    /// A device that runs on the host's CPU (the CPU reference device, lavapipe).
    Cpu,
    /// Anything else.
    Other,
}

impl DeviceType {
    /// Short name: `discrete`, `integrated`, `virtual`, `cpu`, `other`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceType::DiscreteGpu => "discrete",
            DeviceType::IntegratedGpu => "integrated",
            DeviceType::VirtualGpu => "virtual",
            DeviceType::Cpu => "cpu",
            DeviceType::Other => "other",
        }
    }

    /// Preference when a device is chosen automatically (lower is better).
    pub fn rank(self) -> u32 {
        match self {
            DeviceType::DiscreteGpu => 0,
            DeviceType::IntegratedGpu => 1,
            DeviceType::VirtualGpu => 2,
            DeviceType::Cpu => 3,
            DeviceType::Other => 4,
        }
    }

    /// Whether it is a GPU of any kind.
    pub fn is_gpu(self) -> bool {
        matches!(
            self,
            DeviceType::DiscreteGpu | DeviceType::IntegratedGpu | DeviceType::VirtualGpu
        )
    }
}

impl fmt::Display for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an adapter can do that the protocol cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Lanes per subgroup (warp, wavefront).
    pub subgroup_size: u32,
    /// 64-bit atomics on device-visible memory.
    pub atomics_64: bool,
    /// Alignment host memory must have to be imported (pointer and length), or `None` if the adapter cannot
    /// import host memory.
    pub host_import_alignment: Option<u64>,
    /// Whether the adapter has memory of its own (device-local, not host memory).
    pub device_local_memory: bool,
    /// Whether the device's atomics on imported host memory are atomic with respect to the host's
    /// (coherent host-native atomics: PCIe atomics, a shared cache, or the host itself).
    pub host_native_atomics: bool,
    /// Whether the device's lanes run on host threads (the CPU reference device: a thread per lane, or per
    /// subgroup): host code can then play lanes itself, on the device's own dispatch
    /// ([`crate::backend::cpu::spawn_lanes`], `run_lanes`, `run_queue_lanes`, `run_queue_subgroups`), and read
    /// host clocks inside a dispatch (per-line timestamps). A device whose lanes run elsewhere runs only its
    /// programs and kernels.
    pub lanes_are_host_threads: bool,
}

/// An adapter a backend can open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterInfo {
    /// Backend name.
    pub backend: &'static str,
    /// Index in the backend's enumeration (what `--device BACKEND:INDEX` selects).
    pub index: usize,
    /// Device name.
    pub name: String,
    /// What kind of processor it is.
    pub device_type: DeviceType,
    /// API version, as the backend writes it (e.g. `1.3.255`).
    pub api_version: String,
    /// Driver name and version.
    pub driver: String,
    /// What it can do.
    pub caps: Capabilities,
    /// `Ok` if the protocol can run on it, else why not.
    pub usable: Result<(), String>,
}

/// How an opened device is configured. The library reads no environment variable; binaries that honour
/// `GPU_URING_VULKAN_DEVICE` / `GPU_URING_VULKAN_ITER_BUDGET` build this with [`DeviceConfig::from_env`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// The adapter (index or case-insensitive name substring) when the selector names none.
    pub adapter: Option<String>,
    /// Soft loop budget per lane and dispatch of resumable programs; `None` takes the backend's default
    /// for the adapter's type.
    pub iter_budget: Option<u32>,
    /// Longest a single dispatch may run before the run fails with [`DeviceError::Timeout`].
    pub dispatch_timeout: Duration,
    /// Poll budget of each device-side wait in built-in programs on devices whose lanes are host threads
    /// (the CPU reference device) and on the CUDA/HIP device library; `None` takes the backend's default (on
    /// the device library: derived from each run's timeout).
    pub wait_budget: Option<u32>,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            adapter: None,
            iter_budget: None,
            dispatch_timeout: Duration::from_secs(60),
            wait_budget: None,
        }
    }
}

/// Environment variable naming the adapter (index or name substring) when `--device vulkan` gives none.
pub const ADAPTER_ENV: &str = "GPU_URING_VULKAN_DEVICE";
/// Environment variable overriding the soft loop budget of resumable programs.
pub const ITER_BUDGET_ENV: &str = "GPU_URING_VULKAN_ITER_BUDGET";

impl DeviceConfig {
    /// The default config with [`ADAPTER_ENV`] and [`ITER_BUDGET_ENV`] applied. For binaries and tests: the
    /// library itself never calls it.
    pub fn from_env() -> DeviceConfig {
        DeviceConfig {
            adapter: std::env::var(ADAPTER_ENV).ok().filter(|s| !s.is_empty()),
            iter_budget: std::env::var(ITER_BUDGET_ENV)
                .ok()
                .and_then(|s| s.parse().ok()),
            ..DeviceConfig::default()
        }
    }
}

/// A backend: enumerates adapters and opens devices. One static value per compiled-in backend
/// ([`super::backends`]).
pub trait Backend: Send + Sync {
    /// Backend name (`vulkan`, `cuda`, …).
    fn name(&self) -> &'static str;
    /// Every adapter the backend sees, usable or not (with why).
    fn adapters(&self) -> Result<Vec<AdapterInfo>, DeviceError>;
    /// Opens an adapter: `adapter` is an index or a name substring (`None`: `config.adapter`, else the best
    /// usable one). `gpu_only` refuses CPU-type adapters (what `--device auto` wants).
    fn open(
        &self,
        adapter: Option<&str>,
        gpu_only: bool,
        config: &DeviceConfig,
    ) -> Result<Box<dyn Device>, DeviceError>;
}

/// What a device is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Backend name: `cpu`, `vulkan`, `hip`, `cuda`.
    pub backend: &'static str,
    /// Human-readable device name.
    pub name: String,
    /// Driver / API details.
    pub driver: String,
    /// Lanes per subgroup (equals `caps.subgroup_size`).
    pub subgroup_size: u32,
    /// What kind of processor it is.
    pub device_type: DeviceType,
    /// What it can do.
    pub caps: Capabilities,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}; {}; subgroup {})",
            self.name, self.backend, self.driver, self.subgroup_size
        )
    }
}

/// Where a [`DeviceBuffer`]'s memory lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The device's own memory. Backends map it for the host where the device offers device-local memory that is
    /// also host-visible (Vulkan on lavapipe, resizable-BAR GPUs); otherwise the host cannot reach it.
    DeviceLocal,
    /// Driver-allocated memory the host can map (coherent).
    HostVisible,
    /// Page-aligned host memory imported into the device: how device rings give the device their arena.
    ImportedHost,
}

impl Placement {
    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Placement::DeviceLocal => "device-local",
            Placement::HostVisible => "host-visible",
            Placement::ImportedHost => "imported host",
        }
    }
}

/// A backend's buffer object behind a [`DeviceBuffer`].
pub trait BufferImpl: Send + Sync + 'static {
    /// Bytes.
    fn len(&self) -> usize;
    /// Whether it has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Where the host reaches the bytes, or null when it cannot. Must stay valid (and 4-byte aligned) for as
    /// long as the object lives.
    fn host_ptr(&self) -> *mut u8;
    /// The memory's properties, as the backend names them (for tables).
    fn memory_flags(&self) -> String;
    /// For the backend that made it (the only code that looks behind the trait).
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// Device memory usable as a kernel argument. Clones share the memory; it is freed when the last clone and
/// the last launch using it are gone.
#[derive(Clone)]
pub struct DeviceBuffer {
    inner: Arc<dyn BufferImpl>,
    placement: Placement,
}

impl fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceBuffer")
            .field("placement", &self.placement)
            .field("len", &self.inner.len())
            .field("flags", &self.inner.memory_flags())
            .finish()
    }
}

impl DeviceBuffer {
    /// Wraps a backend's buffer (backends only).
    pub fn new(inner: Arc<dyn BufferImpl>, placement: Placement) -> DeviceBuffer {
        DeviceBuffer { inner, placement }
    }

    /// The backend's object (backends only: each downcasts to its own type).
    pub fn backend_object(&self) -> &Arc<dyn BufferImpl> {
        &self.inner
    }

    /// Bytes (an imported buffer's size is rounded up to the import alignment).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the buffer has no bytes (never: sizes are at least 4 bytes).
    pub fn is_empty(&self) -> bool {
        self.inner.len() == 0
    }

    /// Where the memory lives.
    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// The memory's property flags, e.g. `DEVICE_LOCAL | HOST_VISIBLE | HOST_COHERENT`.
    pub fn memory_flags(&self) -> String {
        self.inner.memory_flags()
    }

    /// Whether the host can read and write the bytes ([`Placement::HostVisible`], [`Placement::ImportedHost`]).
    pub fn host_accessible(&self) -> bool {
        !self.inner.host_ptr().is_null()
    }

    fn word(&self, i: usize) -> Option<&AtomicU32> {
        let p = self.inner.host_ptr();
        if p.is_null() || i.checked_add(1)?.checked_mul(4)? > self.inner.len() {
            return None;
        }
        // SAFETY: `p` points to `len` bytes of host-coherent memory that live as long as `self.inner`
        // (`BufferImpl::host_ptr`'s contract) and is at least 4-byte aligned, so word `i` (in bounds, checked)
        // is an aligned u32; the device touches the memory concurrently only through its own atomics or plain
        // stores, and the host only through this atomic, so there is no non-atomic host access to race with.
        Some(unsafe { &*(p.add(4 * i) as *const AtomicU32) })
    }

    /// Word `i` as the host sees it (acquire), or `None` if the host cannot reach the buffer or `i` is past
    /// the end.
    pub fn load_u32(&self, i: usize) -> Option<u32> {
        // Acquire: pairs with the device's (or another host thread's) release of what it wrote before.
        self.word(i).map(|w| w.load(Ordering::Acquire))
    }

    /// Stores word `i` (release); `false` if the host cannot reach the buffer or `i` is past the end.
    pub fn store_u32(&self, i: usize, v: u32) -> bool {
        // Release: the device's acquire of this word sees the host's earlier stores.
        self.word(i)
            .map(|w| w.store(v, Ordering::Release))
            .is_some()
    }
}

/// A native (Rust) kernel of the CPU reference device: called once per invocation with its global id, the
/// launch's arguments and the instant the launch's time limit ends (a kernel that waits gives up there, as a
/// GPU's watchdog would end it).
pub type NativeKernel = Arc<dyn Fn(u32, &[NativeArg<'_>], Instant) + Send + Sync>;

/// An argument as a native kernel sees it.
pub enum NativeArg<'a> {
    /// A buffer's host bytes, as 32-bit atomic words.
    Words(&'a [AtomicU32]),
    /// Bytes passed by value.
    Bytes(&'a [u8]),
}

/// A kernel's binary, in the form its backend loads.
#[derive(Clone)]
pub enum KernelCode<'a> {
    /// A SPIR-V compute module, entry point `main` (Vulkan).
    SpirV(&'a [u8]),
    /// PTX text, entry point named by the kernel's name (CUDA).
    Ptx(&'a str),
    /// An AMD code object (HIP).
    AmdCodeObject(&'a [u8]),
    /// A Rust closure (the CPU reference device).
    Native(NativeKernel),
}

impl KernelCode<'_> {
    /// The format's name, for errors.
    pub fn format(&self) -> &'static str {
        match self {
            KernelCode::SpirV(_) => "SPIR-V",
            KernelCode::Ptx(_) => "PTX",
            KernelCode::AmdCodeObject(_) => "AMD code object",
            KernelCode::Native(_) => "native closure",
        }
    }
}

/// The binary formats kernels come in ([`KernelCode`] without the code), for [`Device::kernel_formats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelFormat {
    /// [`KernelCode::SpirV`].
    SpirV,
    /// [`KernelCode::Ptx`].
    Ptx,
    /// [`KernelCode::AmdCodeObject`].
    AmdCodeObject,
    /// [`KernelCode::Native`].
    Native,
}

impl KernelCode<'_> {
    /// Its format.
    pub fn kind(&self) -> KernelFormat {
        match self {
            KernelCode::SpirV(_) => KernelFormat::SpirV,
            KernelCode::Ptx(_) => KernelFormat::Ptx,
            KernelCode::AmdCodeObject(_) => KernelFormat::AmdCodeObject,
            KernelCode::Native(_) => KernelFormat::Native,
        }
    }
}

impl fmt::Debug for KernelCode<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KernelCode::{}", self.format())
    }
}

/// A kernel's interface: how many buffer arguments it takes and how many bytes of by-value arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelLayout {
    /// Buffer arguments (Vulkan: storage buffers at set 0, bindings `0..buffers`).
    pub buffers: u32,
    /// Bytes of by-value arguments, at most 128 (Vulkan: the push-constant range).
    pub value_bytes: u32,
}

/// A backend's kernel object behind a [`Kernel`].
pub trait KernelImpl: Send + Sync + 'static {
    /// The kernel's name.
    fn name(&self) -> &str;
    /// For the backend that made it.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// A loaded kernel. Clones share it; it is freed when the last clone and the last launch using it are gone.
#[derive(Clone)]
pub struct Kernel {
    inner: Arc<dyn KernelImpl>,
    layout: KernelLayout,
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel")
            .field("name", &self.inner.name())
            .field("layout", &self.layout)
            .finish()
    }
}

impl Kernel {
    /// Wraps a backend's kernel (backends only).
    pub fn new(inner: Arc<dyn KernelImpl>, layout: KernelLayout) -> Kernel {
        Kernel { inner, layout }
    }
    /// The backend's object (backends only: each downcasts to its own type).
    pub fn backend_object(&self) -> &Arc<dyn KernelImpl> {
        &self.inner
    }
    /// The kernel's name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }
    /// Its interface.
    pub fn layout(&self) -> KernelLayout {
        self.layout
    }
}

/// Kernels a device keeps loaded by name (the built-in programs' kernels, loaded on first use): a device that
/// has one returns it from [`Device::kernel_cache`].
#[derive(Default)]
pub struct KernelCache {
    kernels: Mutex<Vec<(&'static str, Kernel)>>,
}

impl fmt::Debug for KernelCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.kernels.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_list().entries(k.iter().map(|(n, _)| n)).finish()
    }
}

impl KernelCache {
    /// The kernel named `name`, loaded with `load` if it is not there yet (an error is returned, not kept).
    pub fn get_or_load(
        &self,
        name: &'static str,
        load: impl FnOnce() -> Result<Kernel, DeviceError>,
    ) -> Result<Kernel, DeviceError> {
        let mut k = self.kernels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, kernel)) = k.iter().find(|(n, _)| *n == name) {
            return Ok(kernel.clone());
        }
        let kernel = load()?;
        k.push((name, kernel.clone()));
        Ok(kernel)
    }
}

/// One argument of a launch, in kernel-parameter order.
#[derive(Clone, Copy)]
pub enum KernelArg<'a> {
    /// A buffer.
    Buffer(&'a DeviceBuffer),
    /// The whole arena of a device ring (imported for the launch, kept mapped until it ends). Every
    /// `RingArena` argument of one launch must name the same ring.
    RingArena(&'a DeviceRing),
    /// Bytes by value (Vulkan: appended to the push constants).
    Bytes(&'a [u8]),
}

/// How many invocations a launch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Workgroups (blocks).
    pub groups: u32,
    /// Invocations per group; 0 means one subgroup (the device's subgroup size).
    pub group_size: u32,
}

impl Grid {
    /// `groups` groups of one subgroup each.
    pub fn groups(groups: u32) -> Grid {
        Grid {
            groups,
            group_size: 0,
        }
    }
}

/// The host callback of [`Programs::run_with`](super::Programs::run_with): called with the index of the dispatch that has just completed
/// and every lane's state after it.
pub type BetweenDispatches<'a> = dyn FnMut(u32, &[LaneState]) -> Result<(), DeviceError> + 'a;

/// One value for [`Programs::format_probe`](super::Programs::format_probe).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FormatCase {
    /// Unsigned decimal ([`crate::protocol::LineBuf::u64`]).
    U64(u64),
    /// Signed decimal ([`crate::protocol::LineBuf::i64`]).
    I64(i64),
    /// Lowercase hex ([`crate::protocol::LineBuf::hex`]).
    Hex(u64),
    /// A float with a precision ([`crate::protocol::LineBuf::f32`]).
    F32(f32, u32),
}

impl FormatCase {
    /// The case as the format program's input record reads it: kind (0 unsigned, 1 signed, 2 hex, 3 float),
    /// precision, and the value's 64 bits (a float's bit pattern).
    pub fn record(&self) -> (u32, u32, u64) {
        match *self {
            FormatCase::U64(x) => (0, 0, x),
            FormatCase::I64(x) => (1, 0, x as u64),
            FormatCase::Hex(x) => (2, 0, x),
            FormatCase::F32(x, p) => (3, p, x.to_bits() as u64),
        }
    }

    /// The bytes the reference formatter ([`LineBuf`]) gives for this case: what every device must print.
    pub fn reference(&self) -> Vec<u8> {
        let mut l = LineBuf::with_capacity(256);
        match *self {
            FormatCase::U64(x) => l.u64(x),
            FormatCase::I64(x) => l.i64(x),
            FormatCase::Hex(x) => l.hex(x),
            FormatCase::F32(x, p) => l.f32(x, p),
        };
        l.as_bytes().to_vec()
    }

    /// The cases every device implementation of the formatter is held to: integer extremes, NaN and
    /// infinities, halves at precision 0 and 2 (round half to even), tiny and huge floats, and five ordinary
    /// values at precisions 0, 1, 3, 6 and 9.
    pub fn probe_cases() -> Vec<FormatCase> {
        use FormatCase::*;
        let mut cases = vec![
            U64(0),
            U64(9),
            U64(10),
            U64(u64::MAX),
            I64(0),
            I64(-1),
            I64(-42),
            I64(i64::MIN),
            I64(i64::MAX),
            Hex(0),
            Hex(0xdead_beef),
            Hex(u64::MAX),
            F32(f32::NAN, 3),
            F32(f32::INFINITY, 3),
            F32(f32::NEG_INFINITY, 3),
            F32(f32::MAX, 6),
            F32(f32::MIN_POSITIVE, 9),
            F32(-0.0, 6),
            F32(0.5, 0),
            F32(1.5, 0),
            F32(2.5, 0),
            F32(0.125, 2),
            F32(0.375, 2),
            F32(1e-7, 9),
            F32(9.3e9, 9),
            F32(1e19, 0),
            F32(-3.0e38, 1),
        ];
        for p in [0, 1, 3, 6, 9] {
            for x in [1.234_56f32, 123_456.79, 0.1, 2.5e9, -7.875] {
                cases.push(F32(x, p));
            }
        }
        cases
    }
}

/// A device that runs caller-supplied kernels on its memory. Object-safe: the device suite and the
/// experiments hold `&dyn Device`. The built-in programs run on every device through
/// [`Programs`](super::Programs), implemented once for all of them.
pub trait Device: Send + Sync {
    /// What the device is.
    fn info(&self) -> DeviceInfo;

    /// The loop iterations one lane may spend per dispatch of a resumable program (what the device's
    /// programs are told in their run parameters).
    fn lane_iter_budget(&self) -> u32;

    /// The kernel formats [`Device::load_kernel`] accepts, preferred first.
    fn kernel_formats(&self) -> &'static [KernelFormat];

    /// Where the device keeps the built-in programs' kernels once loaded, or `None` to load them for every run
    /// (a device whose loads cost nothing).
    fn kernel_cache(&self) -> Option<&KernelCache> {
        None
    }

    /// The longest one dispatch of a built-in program may run (the run's own timeout bounds it too).
    fn dispatch_limit(&self) -> Duration {
        Duration::MAX
    }

    /// A buffer of `bytes` bytes in `placement`.
    fn alloc(&self, placement: Placement, bytes: usize) -> Result<DeviceBuffer, DeviceError>;

    /// A buffer over host memory the caller owns ([`Placement::ImportedHost`]); `owner` is kept alive as long
    /// as the import (and any launch using it) exists.
    ///
    /// # Safety
    /// `ptr` must be a live, writable mapping of `len` bytes, aligned to the adapter's
    /// [`Capabilities::host_import_alignment`] with `len` a multiple of it, that stays mapped for as long as
    /// `owner` lives.
    unsafe fn import_host(
        &self,
        ptr: *mut u8,
        len: usize,
        owner: Arc<dyn Send + Sync>,
    ) -> Result<DeviceBuffer, DeviceError>;

    /// Loads a kernel from its binary.
    ///
    /// # Safety
    /// `code` must be a valid kernel for this device whose interface matches `layout`, and, like any kernel,
    /// must not access its buffers out of bounds (devices are created without robust buffer access).
    unsafe fn load_kernel(
        &self,
        name: &str,
        code: KernelCode<'_>,
        layout: KernelLayout,
    ) -> Result<Kernel, DeviceError>;

    /// Runs `grid` of `kernel` once with `args` and waits at most `limit`. Returns the time from submission to
    /// completion. Over the limit: [`DeviceError::Timeout`]; the launch and what it uses (kernel, buffers,
    /// arena) stay alive until it ends.
    fn launch(
        &self,
        kernel: &Kernel,
        args: &[KernelArg<'_>],
        grid: Grid,
        limit: Duration,
    ) -> Result<Duration, DeviceError>;

    /// Starts `grid` of `kernel` with `args` and returns at once (arguments are checked first: a bad one is
    /// an error here). The launch ends when it completes, fails, or runs past `limit` (its result is then
    /// [`DeviceError::Timeout`], and the launch and what it uses stay alive until it ends, as with
    /// [`launch`](Device::launch)). The default runs [`launch`](Device::launch) on the calling thread and
    /// returns a submission that has ended already.
    fn launch_async(
        &self,
        kernel: &Kernel,
        args: &[KernelArg<'_>],
        grid: Grid,
        limit: Duration,
    ) -> Result<Submission, DeviceError> {
        let r = self.launch(kernel, args, grid, limit);
        Submission::finished(self.info().backend, r)
    }

    /// What [`Submission::completion_fd`] hands out for this device's launches: [`FenceKind::SyncFile`] where
    /// the driver exports one, else [`FenceKind::Emulated`].
    fn fence_kind(&self) -> FenceKind {
        FenceKind::Emulated
    }

    /// How many completion descriptors of each kind this device handed out, and the fallback's signals.
    fn fence_stats(&self) -> FenceStats {
        FenceStats::default()
    }

    /// The CUDA/HIP device library's kernels, where this device runs the built-in programs on them
    /// ([`super::library`]); `None` elsewhere.
    fn library(&self) -> Option<&dyn LibraryDevice> {
        None
    }
}

/// What a device that runs the CUDA/HIP device library offers the built-in programs ([`super::library`]).
pub trait LibraryDevice: Send + Sync {
    /// The library's kernel `name` (e.g. `gu_print`) from the committed binary this device loads, loaded once.
    fn library_kernel(&self, name: &'static str) -> Result<Kernel, DeviceError>;
    /// Copies `src` into `buf` from byte `at` (the driver copies into device memory the host cannot map).
    fn write_buffer(&self, buf: &DeviceBuffer, at: usize, src: &[u8]) -> Result<(), DeviceError>;
    /// Copies from byte `at` of `buf` into `dst`.
    fn read_buffer(&self, buf: &DeviceBuffer, at: usize, dst: &mut [u8])
        -> Result<(), DeviceError>;
    /// The poll budget of each device wait the device was opened with ([`DeviceConfig::wait_budget`]);
    /// `None`: derived from each run's timeout.
    fn wait_budget(&self) -> Option<u32>;
}

/// What a [`Submission`]'s completion descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FenceKind {
    /// A `sync_file` exported by the driver (Vulkan: a semaphore the dispatch signals, exported with
    /// `VK_KHR_external_semaphore_fd` as `SYNC_FD`). The kernel makes it readable when the device has
    /// finished the work — no host thread involved — and not before, even past the launch's limit (pair the
    /// wait with a timeout of your own; [`Submission::wait`] reports the limit).
    SyncFile,
    /// An eventfd the backend makes readable when the launch ends (completed, failed or past its limit):
    /// a host thread waits for the device's own completion (the Vulkan fence; the CPU device's lane
    /// threads). The counted fallback ([`FenceStats::emulated_signals`]).
    Emulated,
}

impl FenceKind {
    /// `sync_file` or `emulated`.
    pub fn name(self) -> &'static str {
        match self {
            FenceKind::SyncFile => "sync_file",
            FenceKind::Emulated => "emulated",
        }
    }
}

/// Completion descriptors a device handed out, and the fallback's signals (snapshots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FenceStats {
    /// `sync_file`s handed out by [`Submission::completion_fd`].
    pub sync_files: u64,
    /// Emulated descriptors (eventfds) handed out by [`Submission::completion_fd`].
    pub emulated_fds: u64,
    /// Launch ends signalled through an eventfd by a host thread.
    pub emulated_signals: u64,
}

/// A device's [`FenceStats`] counters, shared with its submissions (backends only).
#[derive(Debug, Default)]
pub struct FenceCounters {
    sync_files: AtomicU64,
    emulated_fds: AtomicU64,
    emulated_signals: AtomicU64,
}

impl FenceCounters {
    /// A snapshot.
    pub fn stats(&self) -> FenceStats {
        // Relaxed: statistics.
        FenceStats {
            sync_files: self.sync_files.load(Ordering::Relaxed),
            emulated_fds: self.emulated_fds.load(Ordering::Relaxed),
            emulated_signals: self.emulated_signals.load(Ordering::Relaxed),
        }
    }
}

/// How a launch ended: shared by its [`Submission`] and the [`Completer`] of its backend.
struct LaunchEnd {
    backend: &'static str,
    result: Mutex<Option<Result<Duration, DeviceError>>>,
    ended: Condvar,
    /// Readable once `result` is set (never read: every descriptor handed out is a duplicate).
    event: OwnedFd,
    counters: Arc<FenceCounters>,
    /// Its descriptor is the eventfd (no `sync_file`): its end is a fallback signal.
    emulated: bool,
}

impl LaunchEnd {
    fn new(
        backend: &'static str,
        counters: Arc<FenceCounters>,
        emulated: bool,
    ) -> Result<LaunchEnd, DeviceError> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a descriptor this process now owns.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(DeviceError::Run {
                backend,
                message: format!(
                    "eventfd for a completion descriptor: {}",
                    std::io::Error::last_os_error()
                ),
            });
        }
        Ok(LaunchEnd {
            backend,
            result: Mutex::new(None),
            ended: Condvar::new(),
            // SAFETY: `fd` was just created and is owned by nothing else.
            event: unsafe { OwnedFd::from_raw_fd(fd) },
            counters,
            emulated,
        })
    }

    /// Records the result (the first one wins), wakes waiters and makes the descriptor readable.
    fn end(&self, r: Result<Duration, DeviceError>) {
        {
            let mut slot = self.result.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_some() {
                return;
            }
            *slot = Some(r);
        }
        if self.emulated {
            // Relaxed: a statistic (counted before the descriptor becomes readable, so that whoever
            // awaited it sees the count).
            self.counters
                .emulated_signals
                .fetch_add(1, Ordering::Relaxed);
        }
        self.ended.notify_all();
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live local buffer to an eventfd this value owns. It cannot fail but
        // by overflowing the counter, which one write per launch never does.
        unsafe { libc::write(self.event.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }
}

/// The backend's side of a [`Submission`]: ends it once, with the launch's result. Dropped without
/// [`complete`](Completer::complete) (the completion path failed or panicked), it ends the submission with a
/// [`DeviceError::Run`], so no waiter hangs.
pub struct Completer {
    end: Option<Arc<LaunchEnd>>,
}

impl Completer {
    /// Ends the submission with `r`.
    pub fn complete(mut self, r: Result<Duration, DeviceError>) {
        if let Some(e) = self.end.take() {
            e.end(r);
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(e) = self.end.take() {
            let backend = e.backend;
            e.end(Err(DeviceError::Run {
                backend,
                message: "the launch's completion path ended without a result".into(),
            }));
        }
    }
}

impl fmt::Debug for Completer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Completer")
    }
}

/// A launch started by [`Device::launch_async`]. Dropping it neither waits for nor cancels the launch (which
/// keeps what it uses alive until it ends).
pub struct Submission {
    end: Arc<LaunchEnd>,
    sync_file: Option<OwnedFd>,
}

impl fmt::Debug for Submission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Submission")
            .field("backend", &self.end.backend)
            .field("kind", &self.kind())
            .field("result", &self.result())
            .finish()
    }
}

impl Submission {
    /// A running submission and the completer its backend ends it with (backends only). `sync_file`: the
    /// descriptor the driver exported for the launch, if any; `counters`: the device's.
    pub fn start(
        backend: &'static str,
        counters: Arc<FenceCounters>,
        sync_file: Option<OwnedFd>,
    ) -> Result<(Submission, Completer), DeviceError> {
        let end = Arc::new(LaunchEnd::new(backend, counters, sync_file.is_none())?);
        Ok((
            Submission {
                end: end.clone(),
                sync_file,
            },
            Completer { end: Some(end) },
        ))
    }

    /// A submission that has ended with `r` (a launch run synchronously).
    pub fn finished(
        backend: &'static str,
        r: Result<Duration, DeviceError>,
    ) -> Result<Submission, DeviceError> {
        let (s, c) = Submission::start(backend, Arc::default(), None)?;
        c.complete(r);
        Ok(s)
    }

    /// What [`completion_fd`](Self::completion_fd) hands out.
    pub fn kind(&self) -> FenceKind {
        if self.sync_file.is_some() {
            FenceKind::SyncFile
        } else {
            FenceKind::Emulated
        }
    }

    /// A new descriptor (the caller owns it) that becomes readable when the launch ends: a duplicate of the
    /// driver's `sync_file`, or of the submission's eventfd ([`FenceKind`]). Never read from it: it stays
    /// readable. Callable any number of times, also after the launch ended.
    pub fn completion_fd(&self) -> Result<OwnedFd, DeviceError> {
        let (fd, counter) = match &self.sync_file {
            Some(f) => (f.as_fd(), &self.end.counters.sync_files),
            None => (self.end.event.as_fd(), &self.end.counters.emulated_fds),
        };
        let dup = fd.try_clone_to_owned().map_err(|e| DeviceError::Run {
            backend: self.end.backend,
            message: format!("duplicating a completion descriptor: {e}"),
        })?;
        // Relaxed: a statistic.
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(dup)
    }

    /// The launch's result once it has ended (the time from submission to completion, or why it failed:
    /// [`DeviceError::Timeout`] past its limit), `None` while it runs. Never blocks.
    pub fn result(&self) -> Option<Result<Duration, DeviceError>> {
        self.end
            .result
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits at most `limit` for the launch to end: its result, or `None` if it still runs.
    pub fn wait(&self, limit: Duration) -> Option<Result<Duration, DeviceError>> {
        let deadline = Instant::now().checked_add(limit);
        let mut slot = self.end.result.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = slot.as_ref() {
                return Some(r.clone());
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return None;
            }
            slot = self
                .end
                .ended
                .wait_timeout(slot, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl fmt::Debug for dyn Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Device({})", self.info())
    }
}
