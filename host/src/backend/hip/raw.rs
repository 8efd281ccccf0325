//! Every HIP runtime call of the backend, each behind a safe function or type with its invariants beside it.
//! The runtime is `hip-sys` (bindings of the HIP 5.4 headers), linked against `libamdhip64` at build time;
//! Debian's ROCm 5.2 runtime has the same entry points and `hipDeviceProp_t` layout for everything used here.
//!
//! HIP has no context handle: every call is made with the device current on the calling thread
//! ([`Gpu::bind`], `hipSetDevice`).

use std::ffi::{c_uint, c_void};
use std::sync::{Arc, OnceLock};

use hip_sys::hiprt::{self as hip, hipDeviceAttribute_t as Attr, hipError_t};

use super::error::{check, describe, HipError};

type Result<T> = std::result::Result<T, HipError>;

/// The runtime's version (e.g. 50221153 for 5.2.21153), once initialised, or why it cannot be used.
pub(super) fn runtime() -> Result<i32> {
    static RUNTIME: OnceLock<Result<i32>> = OnceLock::new();
    RUNTIME.get_or_init(load).clone()
}

fn load() -> Result<i32> {
    let mut n = 0;
    // SAFETY: `n` is a valid out-pointer. (hipGetDeviceCount initialises the runtime; hipInit reports
    // hipErrorInvalidDevice where there is no device, which says less.)
    let e = unsafe { hip::hipGetDeviceCount(&mut n) };
    match e {
        hipError_t::hipSuccess if n > 0 => {}
        hipError_t::hipSuccess | hipError_t::hipErrorNoDevice => {
            return Err(HipError::NoDevice(describe(e)))
        }
        e => check("hipGetDeviceCount", e)?,
    }
    let mut v = 0;
    // SAFETY: `v` is a valid out-pointer.
    check("hipRuntimeGetVersion", unsafe {
        hip::hipRuntimeGetVersion(&mut v)
    })?;
    Ok(v)
}

/// What the backend needs to know about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Props {
    pub ordinal: i32,
    pub name: String,
    /// The ISA, e.g. `gfx90a` (`gcnArchName` without its feature suffixes).
    pub gfx: String,
    /// `gcnArchName` as the runtime reports it, e.g. `gfx90a:sramecc+:xnack-`.
    pub arch_name: String,
    pub warp: u32,
    pub total_mem: usize,
    pub max_threads_per_block: u32,
    pub integrated: bool,
    pub can_map_host: bool,
    /// `hipDeviceAttributeHostNativeAtomicSupported`: the device's atomics on host memory are atomic with the
    /// host's (PCIe AtomicOps or a coherent link; without them some GPUs turn such atomics into no-ops).
    pub host_native_atomics: bool,
    /// `hipDeviceAttributeCanUseHostPointerForRegisteredMem`.
    pub host_pointer_for_registered: bool,
}

/// How many devices the runtime sees.
pub(super) fn device_count() -> Result<i32> {
    runtime()?;
    let mut n = 0;
    // SAFETY: the runtime is initialised; `n` is a valid out-pointer.
    check("hipGetDeviceCount", unsafe {
        hip::hipGetDeviceCount(&mut n)
    })?;
    Ok(n)
}

/// The properties of device `ordinal` (below [`device_count`]).
pub(super) fn props(ordinal: i32) -> Result<Props> {
    runtime()?;
    let attr = |a: Attr| -> Result<i32> {
        let mut v = 0;
        // SAFETY: `ordinal` is a device index below the count; `v` is a valid out-pointer.
        check("hipDeviceGetAttribute", unsafe {
            hip::hipDeviceGetAttribute(&mut v, a, ordinal)
        })?;
        Ok(v)
    };
    // SAFETY: hipDeviceProp_t is plain C data (integers, arrays, pointers): all zeroes is a valid value.
    let mut p: Box<hip::hipDeviceProp_t> = Box::new(unsafe { std::mem::zeroed() });
    // SAFETY: `p` is a valid out-pointer to a hipDeviceProp_t of the layout the linked runtime writes
    // (hip-sys's 5.4 struct has ROCm 5.2's size and gcnArchName offset).
    check("hipGetDeviceProperties", unsafe {
        hip::hipGetDeviceProperties(&mut *p, ordinal)
    })?;
    let text = |s: &[std::ffi::c_char]| {
        let bytes: Vec<u8> = s.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let arch_name = text(&p.gcnArchName);
    Ok(Props {
        ordinal,
        name: text(&p.name),
        gfx: arch_name.split(':').next().unwrap_or("").to_owned(),
        arch_name,
        warp: attr(Attr::hipDeviceAttributeWarpSize)?.max(1) as u32,
        total_mem: p.totalGlobalMem,
        max_threads_per_block: attr(Attr::hipDeviceAttributeMaxThreadsPerBlock)?.max(1) as u32,
        integrated: attr(Attr::hipDeviceAttributeIntegrated)? != 0,
        can_map_host: attr(Attr::hipDeviceAttributeCanMapHostMemory)? != 0,
        host_native_atomics: attr(Attr::hipDeviceAttributeHostNativeAtomicSupported)? != 0,
        host_pointer_for_registered: attr(
            Attr::hipDeviceAttributeCanUseHostPointerForRegisteredMem,
        )? != 0,
    })
}

/// A device in use: every object made on it holds an `Arc` of this value.
pub(super) struct Gpu {
    pub props: Props,
}

impl Gpu {
    pub(super) fn new(props: Props) -> Result<Arc<Gpu>> {
        runtime()?;
        let g = Arc::new(Gpu { props });
        g.bind()?;
        Ok(g)
    }

    /// Makes the device current on the calling thread (every runtime call below needs it).
    pub(super) fn bind(&self) -> Result<()> {
        // SAFETY: takes a device index (below the count: it came from `props`).
        check("hipSetDevice", unsafe {
            hip::hipSetDevice(self.props.ordinal)
        })
    }
}

/// Device memory (`hipMalloc`): the host reaches it only by copies ([`DevMem::write`], [`DevMem::read`]).
pub(super) struct DevMem {
    gpu: Arc<Gpu>,
    pub ptr: *mut c_void,
    pub len: usize,
}

// SAFETY: a device allocation may be used (copied, freed) from any thread with its device current.
unsafe impl Send for DevMem {}
// SAFETY: as above.
unsafe impl Sync for DevMem {}

impl DevMem {
    pub(super) fn new(gpu: &Arc<Gpu>, len: usize) -> Result<DevMem> {
        gpu.bind()?;
        let mut ptr = std::ptr::null_mut();
        // SAFETY: the device is current; `ptr` is a valid out-pointer. Freed in Drop.
        check("hipMalloc", unsafe { hip::hipMalloc(&mut ptr, len.max(4)) })?;
        Ok(DevMem {
            gpu: gpu.clone(),
            ptr,
            len,
        })
    }

    /// Copies `src` to byte `at`, complete when this returns (the null stream is synchronised after the copy,
    /// as on CUDA: launches run on non-blocking streams).
    pub(super) fn write(&self, at: usize, src: &[u8]) -> Result<()> {
        self.check(at, src.len())?;
        self.gpu.bind()?;
        // SAFETY: `at + src.len()` is inside the allocation (checked); `src` is readable for its length (the
        // runtime only reads through its `*mut` source).
        check("hipMemcpyHtoD", unsafe {
            hip::hipMemcpyHtoD(
                self.ptr.cast::<u8>().add(at).cast(),
                src.as_ptr() as *mut c_void,
                src.len(),
            )
        })?;
        // SAFETY: the null stream is the device's default stream; synchronising it touches no memory.
        check("hipStreamSynchronize", unsafe {
            hip::hipStreamSynchronize(std::ptr::null_mut())
        })
    }

    /// Copies from byte `at` into `dst` (synchronous).
    pub(super) fn read(&self, at: usize, dst: &mut [u8]) -> Result<()> {
        self.check(at, dst.len())?;
        self.gpu.bind()?;
        // SAFETY: `at + dst.len()` is inside the allocation (checked); `dst` is writable for its length.
        check("hipMemcpyDtoH", unsafe {
            hip::hipMemcpyDtoH(
                dst.as_mut_ptr().cast(),
                self.ptr.cast::<u8>().add(at).cast(),
                dst.len(),
            )
        })
    }

    fn check(&self, at: usize, n: usize) -> Result<()> {
        match at.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(HipError::Invalid(format!(
                "a copy of {n} bytes at {at} is outside a {}-byte device buffer",
                self.len
            ))),
        }
    }
}

impl Drop for DevMem {
    fn drop(&mut self) {
        if self.gpu.bind().is_ok() {
            // SAFETY: frees what `new` allocated; a launch using it holds it alive until the launch has ended.
            let _ = unsafe { hip::hipFree(self.ptr) };
        }
    }
}

/// Pinned host memory the runtime allocated and mapped for the device (`hipHostMalloc`, mapped, coherent).
pub(super) struct HostMem {
    gpu: Arc<Gpu>,
    pub host: *mut u8,
    pub dev: *mut c_void,
    pub len: usize,
}

// SAFETY: plain memory owned by this value; the host reaches it only through atomics, the device through its
// own accesses.
unsafe impl Send for HostMem {}
// SAFETY: as above.
unsafe impl Sync for HostMem {}

impl HostMem {
    pub(super) fn new(gpu: &Arc<Gpu>, len: usize) -> Result<HostMem> {
        gpu.bind()?;
        let mut host = std::ptr::null_mut();
        let flags =
            hip::hipHostMallocMapped | hip::hipHostMallocPortable | hip::hipHostMallocCoherent;
        // SAFETY: the device is current; `host` is a valid out-pointer. Freed in Drop.
        check("hipHostMalloc", unsafe {
            hip::hipHostMalloc(&mut host, len.max(4), flags)
        })?;
        let mut mem = HostMem {
            gpu: gpu.clone(),
            host: host.cast(),
            dev: std::ptr::null_mut(),
            len,
        };
        mem.dev = device_pointer(mem.host)?;
        // SAFETY: the allocation has `len` writable bytes; zeroed so that the host never reads garbage.
        unsafe { std::ptr::write_bytes(mem.host, 0, len) };
        Ok(mem)
    }
}

impl Drop for HostMem {
    fn drop(&mut self) {
        if self.gpu.bind().is_ok() {
            // SAFETY: frees what `new` allocated; a launch using it holds it alive until the launch has ended.
            let _ = unsafe { hip::hipHostFree(self.host.cast()) };
        }
    }
}

/// The device address of mapped host memory at `host`.
fn device_pointer(host: *mut u8) -> Result<*mut c_void> {
    let mut dev = std::ptr::null_mut();
    // SAFETY: `host` is inside memory registered or allocated as mapped; `dev` is a valid out-pointer.
    check("hipHostGetDevicePointer", unsafe {
        hip::hipHostGetDevicePointer(&mut dev, host.cast(), 0)
    })?;
    Ok(dev)
}

/// Host memory the caller owns, page-locked and mapped for the device (`hipHostRegister`, Mapped);
/// unregistered when this value is dropped, and `owner` (which keeps the memory mapped) dropped after.
pub(super) struct Registered {
    gpu: Arc<Gpu>,
    pub host: *mut u8,
    pub dev: *mut c_void,
    pub len: usize,
    _owner: Arc<dyn Send + Sync>,
}

// SAFETY: see `HostMem`; the memory is the owner's, kept mapped by `_owner`.
unsafe impl Send for Registered {}
// SAFETY: as above.
unsafe impl Sync for Registered {}

impl Registered {
    /// # Safety
    /// `host` must be a live, writable mapping of `len` bytes that stays mapped while `owner` lives.
    pub(super) unsafe fn new(
        gpu: &Arc<Gpu>,
        host: *mut u8,
        len: usize,
        owner: Arc<dyn Send + Sync>,
    ) -> Result<Registered> {
        gpu.bind()?;
        let flags = hip::hipHostRegisterMapped | hip::hipHostRegisterPortable;
        // SAFETY: the caller's contract: `host..host + len` is mapped and stays so while `owner` (kept in the
        // value) lives; unregistered in Drop, before `owner` goes.
        check("hipHostRegister", unsafe {
            hip::hipHostRegister(host.cast(), len, flags)
        })?;
        // Unregistered by Drop if the device pointer cannot be had.
        let mut reg = Registered {
            gpu: gpu.clone(),
            host,
            dev: std::ptr::null_mut(),
            len,
            _owner: owner,
        };
        reg.dev = device_pointer(host)?;
        Ok(reg)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if self.gpu.bind().is_ok() {
            // SAFETY: undoes the registration of `new`; a launch using it holds it alive until it has ended.
            let _ = unsafe { hip::hipHostUnregister(self.host.cast()) };
        }
    }
}

/// A loaded code object (`hipModuleLoadData`).
pub(super) struct Module {
    gpu: Arc<Gpu>,
    module: hip::hipModule_t,
}

// SAFETY: module handles may be used from any thread with the device current.
unsafe impl Send for Module {}
// SAFETY: as above.
unsafe impl Sync for Module {}

impl Module {
    /// Loads `image`, a code object (or an offload bundle) for the device's ISA.
    ///
    /// # Safety
    /// `image` must be a valid code object (the runtime parses it; its kernels run with the device's full
    /// access to the memory they are given).
    pub(super) unsafe fn load(gpu: &Arc<Gpu>, image: &[u8]) -> Result<Arc<Module>> {
        gpu.bind()?;
        let mut module = std::ptr::null_mut();
        // SAFETY: the caller's contract; `module` is a valid out-pointer. Unloaded in Drop.
        check("hipModuleLoadData", unsafe {
            hip::hipModuleLoadData(&mut module, image.as_ptr().cast())
        })?;
        Ok(Arc::new(Module {
            gpu: gpu.clone(),
            module,
        }))
    }

    /// The kernel named `name`.
    pub(super) fn function(self: &Arc<Self>, name: &str) -> Result<Function> {
        let c = std::ffi::CString::new(name)
            .map_err(|_| HipError::Invalid(format!("kernel name {name:?} contains NUL")))?;
        self.gpu.bind()?;
        let mut f = std::ptr::null_mut();
        // SAFETY: the module is loaded while `self` lives; `c` is NUL-terminated; `f` a valid out-pointer.
        check("hipModuleGetFunction", unsafe {
            hip::hipModuleGetFunction(&mut f, self.module, c.as_ptr())
        })?;
        Ok(Function {
            _module: self.clone(),
            f,
        })
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        if self.gpu.bind().is_ok() {
            // SAFETY: every function of the module holds it alive, and every launch holds its function.
            let _ = unsafe { hip::hipModuleUnload(self.module) };
        }
    }
}

/// A kernel of a loaded module (which it keeps loaded).
pub(super) struct Function {
    _module: Arc<Module>,
    f: hip::hipFunction_t,
}

// SAFETY: function handles may be used from any thread with the device current.
unsafe impl Send for Function {}
// SAFETY: as above.
unsafe impl Sync for Function {}

/// A stream with an event recorded after each launch on it: one launch in flight at a time.
pub(super) struct Stream {
    gpu: Arc<Gpu>,
    stream: hip::hipStream_t,
    done: hip::hipEvent_t,
}

// SAFETY: stream and event handles may be used from any thread with the device current; one launch at a time
// owns a `Stream`.
unsafe impl Send for Stream {}
// SAFETY: as above.
unsafe impl Sync for Stream {}

impl Stream {
    pub(super) fn new(gpu: &Arc<Gpu>) -> Result<Stream> {
        gpu.bind()?;
        let mut stream = std::ptr::null_mut();
        // SAFETY: the device is current; `stream` is a valid out-pointer. Destroyed in Drop.
        check("hipStreamCreateWithFlags", unsafe {
            hip::hipStreamCreateWithFlags(&mut stream, hip::hipStreamNonBlocking)
        })?;
        let mut done = std::ptr::null_mut();
        // SAFETY: as above. Destroyed in Drop.
        let e = unsafe { hip::hipEventCreateWithFlags(&mut done, hip::hipEventDisableTiming) };
        if let Err(err) = check("hipEventCreateWithFlags", e) {
            // SAFETY: created above, used by nothing.
            let _ = unsafe { hip::hipStreamDestroy(stream) };
            return Err(err);
        }
        Ok(Stream {
            gpu: gpu.clone(),
            stream,
            done,
        })
    }

    /// Launches `f` on the stream with `params` (one pointer to each parameter's value, in order) and
    /// records the stream's event after it.
    ///
    /// # Safety
    /// `params` must match the kernel's parameter list in number, order and size; every device pointer
    /// among them must stay valid until [`Stream::query`] reports the launch done.
    pub(super) unsafe fn launch(
        &self,
        f: &Function,
        grid: (u32, u32),
        params: &mut [*mut c_void],
    ) -> Result<()> {
        self.gpu.bind()?;
        // SAFETY: the caller's contract; the runtime copies the parameter values before returning.
        check("hipModuleLaunchKernel", unsafe {
            hip::hipModuleLaunchKernel(
                f.f,
                grid.0 as c_uint,
                1,
                1,
                grid.1 as c_uint,
                1,
                1,
                0,
                self.stream,
                params.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        })?;
        // SAFETY: both handles live while `self` does.
        check("hipEventRecord", unsafe {
            hip::hipEventRecord(self.done, self.stream)
        })
    }

    /// Whether everything launched on the stream has ended (an error: a launch failed on the device).
    pub(super) fn query(&self) -> Result<bool> {
        self.gpu.bind()?;
        // SAFETY: the event lives while `self` does.
        match unsafe { hip::hipEventQuery(self.done) } {
            hipError_t::hipSuccess => Ok(true),
            hipError_t::hipErrorNotReady => Ok(false),
            e => check("the launch (hipEventQuery)", e).map(|_| false),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.gpu.bind().is_ok() {
            // SAFETY: destroys what `new` created; a stream is dropped only once its launch has ended (or never:
            // parked launches still running are leaked).
            let _ = unsafe { hip::hipEventDestroy(self.done) };
            // SAFETY: as above.
            let _ = unsafe { hip::hipStreamDestroy(self.stream) };
        }
    }
}
