//! Every CUDA driver call of the backend, each behind a safe function or type with its invariants beside it.
//! The driver is cudarc's `driver::sys` with dynamic loading: `libcuda` is opened on first use, so a build
//! with the `cuda` feature runs (and reports why CUDA is unavailable) where no NVIDIA driver is installed.
//!
//! cudarc panics when the library or one of its symbols is missing, so [`driver`] first probes for the
//! library and for every symbol this file calls ([`SYMBOLS`]) and turns their absence into a typed
//! [`CudaError`]; nothing here calls the driver before that probe succeeded. Optional functions of newer
//! drivers (`cuDeviceGetHostAtomicCapabilities`, CUDA 13) are looked up and used only when present.
//!
//! Every call is made with the device's primary context current on the calling thread ([`Context::bind`]).

use std::ffi::{c_uint, c_void, CStr};
use std::sync::{Arc, OnceLock};

use cudarc::driver::sys::{self, CUdevice_attribute as Attr, CUresult};
use cudarc::driver::DriverError;

use super::error::{call, describe, CudaError};

type Result<T> = std::result::Result<T, CudaError>;

/// Every driver function this file calls (their cudarc names: the ABI versions libcuda exports).
const SYMBOLS: &[&str] = &[
    "cuInit",
    "cuDriverGetVersion",
    "cuDeviceGetCount",
    "cuDeviceGet",
    "cuDeviceGetName",
    "cuDeviceGetAttribute",
    "cuDeviceTotalMem_v2",
    "cuDevicePrimaryCtxRetain",
    "cuDevicePrimaryCtxRelease_v2",
    "cuCtxSetCurrent",
    "cuMemAlloc_v2",
    "cuMemFree_v2",
    "cuMemHostAlloc",
    "cuMemFreeHost",
    "cuMemHostRegister_v2",
    "cuMemHostUnregister",
    "cuMemHostGetDevicePointer_v2",
    "cuMemcpyHtoD_v2",
    "cuMemcpyDtoH_v2",
    "cuStreamSynchronize",
    "cuModuleLoadDataEx",
    "cuModuleUnload",
    "cuModuleGetFunction",
    "cuLaunchKernel",
    "cuStreamCreate",
    "cuStreamDestroy_v2",
    "cuEventCreate",
    "cuEventRecord",
    "cuEventQuery",
    "cuEventDestroy_v2",
    "cuGetErrorName",
    "cuGetErrorString",
];

/// `cuDeviceGetHostAtomicCapabilities` (CUDA 13): capability bits for each atomic operation on host memory.
type HostAtomicCaps =
    unsafe extern "C" fn(*mut c_uint, *const c_uint, c_uint, sys::CUdevice) -> CUresult;
/// `CU_ATOMIC_OPERATION_INTEGER_ADD` and `CU_ATOMIC_OPERATION_CAS` (CUDA 13 `CUatomicOperation`).
const ATOMIC_OPS: [c_uint; 2] = [0, 9];
/// `CU_ATOMIC_CAPABILITY_SCALAR_32 | CU_ATOMIC_CAPABILITY_SCALAR_64`: what the protocol's words need.
const ATOMIC_SCALAR_32_64: c_uint = 8 | 16;

/// The loaded, initialised driver: its CUDA API version (e.g. 12040), or why it cannot be used.
pub(super) fn driver() -> Result<i32> {
    static DRIVER: OnceLock<Result<i32>> = OnceLock::new();
    DRIVER.get_or_init(load).clone()
}

fn load() -> Result<i32> {
    // SAFETY: only opens candidate libraries with dlopen and closes them again (no driver function runs).
    if !unsafe { sys::is_culib_present() } {
        return Err(CudaError::NoLibrary(
            "libcuda.so, libcuda.so.1 and cudarc's other names".into(),
        ));
    }
    // SAFETY: the library is present (checked above), so `culib` returns it instead of panicking; looking up a
    // symbol's address calls nothing.
    let lib = unsafe { sys::culib() };
    for name in SYMBOLS {
        // SAFETY: as above; the address is only tested, never called through this type.
        if unsafe { lib.get::<*const c_void>(name.as_bytes()) }.is_err() {
            return Err(CudaError::MissingSymbol(name));
        }
    }
    // SAFETY: cuInit is present (checked) and takes a flags word.
    let r = unsafe { sys::cuInit(0) };
    if r != CUresult::CUDA_SUCCESS {
        return Err(match r {
            CUresult::CUDA_ERROR_NO_DEVICE => CudaError::NoDevice,
            _ => CudaError::Init(describe(r)),
        });
    }
    let mut v = 0;
    // SAFETY: `v` is a valid out-pointer.
    unsafe { sys::cuDriverGetVersion(&mut v) }
        .result()
        .map_err(call("cuDriverGetVersion"))?;
    Ok(v)
}

/// What the backend needs to know about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Props {
    pub ordinal: i32,
    pub name: String,
    pub compute: (i32, i32),
    pub warp: u32,
    pub total_mem: usize,
    pub max_threads_per_block: u32,
    pub integrated: bool,
    pub can_map_host: bool,
    pub unified_addressing: bool,
    /// `CU_DEVICE_ATTRIBUTE_HOST_NATIVE_ATOMIC_SUPPORTED`: the device's atomics on host memory are atomic
    /// with the host's (a coherent link such as NVLink-C2C; 0 over PCIe).
    pub host_native_atomics: bool,
    /// `CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM`: registered host memory has the same
    /// address on the device as on the host.
    pub host_pointer_for_registered: bool,
    /// `cuDeviceGetHostAtomicCapabilities` for 32- and 64-bit integer add and CAS on host memory, where the
    /// driver has that function (CUDA 13): `Some(true)` when both are supported at both widths.
    pub host_atomic_caps: Option<bool>,
}

/// How many devices the driver sees.
pub(super) fn device_count() -> Result<i32> {
    driver()?;
    let mut n = 0;
    // SAFETY: the driver is initialised; `n` is a valid out-pointer.
    unsafe { sys::cuDeviceGetCount(&mut n) }
        .result()
        .map_err(call("cuDeviceGetCount"))?;
    Ok(n)
}

/// The properties of device `ordinal` (below [`device_count`]).
pub(super) fn props(ordinal: i32) -> Result<Props> {
    driver()?;
    let mut dev = 0;
    // SAFETY: the driver is initialised; `dev` is a valid out-pointer.
    unsafe { sys::cuDeviceGet(&mut dev, ordinal) }
        .result()
        .map_err(call("cuDeviceGet"))?;
    let attr = |a: Attr| -> Result<i32> {
        let mut v = 0;
        // SAFETY: `dev` was returned by cuDeviceGet; `v` is a valid out-pointer.
        unsafe { sys::cuDeviceGetAttribute(&mut v, a, dev) }
            .result()
            .map_err(call("cuDeviceGetAttribute"))?;
        Ok(v)
    };
    let mut name = [0u8; 256];
    // SAFETY: `name` has 256 writable bytes, the length passed.
    unsafe { sys::cuDeviceGetName(name.as_mut_ptr().cast(), name.len() as i32, dev) }
        .result()
        .map_err(call("cuDeviceGetName"))?;
    let name = CStr::from_bytes_until_nul(&name)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(&name).into_owned());
    let mut total_mem = 0usize;
    // SAFETY: `dev` is valid; `total_mem` is a valid out-pointer.
    unsafe { sys::cuDeviceTotalMem_v2(&mut total_mem, dev) }
        .result()
        .map_err(call("cuDeviceTotalMem"))?;
    Ok(Props {
        ordinal,
        name,
        compute: (
            attr(Attr::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
            attr(Attr::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
        ),
        warp: attr(Attr::CU_DEVICE_ATTRIBUTE_WARP_SIZE)?.max(1) as u32,
        total_mem,
        max_threads_per_block: attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?.max(1) as u32,
        integrated: attr(Attr::CU_DEVICE_ATTRIBUTE_INTEGRATED)? != 0,
        can_map_host: attr(Attr::CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY)? != 0,
        unified_addressing: attr(Attr::CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING)? != 0,
        host_native_atomics: attr(Attr::CU_DEVICE_ATTRIBUTE_HOST_NATIVE_ATOMIC_SUPPORTED)? != 0,
        host_pointer_for_registered: attr(
            Attr::CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM,
        )? != 0,
        host_atomic_caps: host_atomic_caps(dev),
    })
}

/// `cuDeviceGetHostAtomicCapabilities`, where the driver has it.
fn host_atomic_caps(dev: sys::CUdevice) -> Option<bool> {
    // SAFETY: `driver()` succeeded before any caller gets here, so the library is loaded; the symbol's type is
    // the CUDA 13 prototype (`CUresult (unsigned *caps, const CUatomicOperation *ops, unsigned n, CUdevice)`).
    let f =
        unsafe { sys::culib().get::<HostAtomicCaps>(b"cuDeviceGetHostAtomicCapabilities") }.ok()?;
    let mut caps = [0 as c_uint; ATOMIC_OPS.len()];
    // SAFETY: `caps` and `ATOMIC_OPS` both hold `ATOMIC_OPS.len()` elements, the count passed.
    let r = unsafe {
        f(
            caps.as_mut_ptr(),
            ATOMIC_OPS.as_ptr(),
            ATOMIC_OPS.len() as c_uint,
            dev,
        )
    };
    (r == CUresult::CUDA_SUCCESS).then(|| {
        caps.iter()
            .all(|c| c & ATOMIC_SCALAR_32_64 == ATOMIC_SCALAR_32_64)
    })
}

/// A device's primary context, retained while this value lives.
pub(super) struct Context {
    dev: sys::CUdevice,
    ctx: sys::CUcontext,
    pub props: Props,
}

// SAFETY: a CUDA context handle may be used from any thread (each thread makes it current before use, as
// `bind` does); the driver synchronises its own state.
unsafe impl Send for Context {}
// SAFETY: as above.
unsafe impl Sync for Context {}

impl Context {
    /// Retains the primary context of the device `props` describes.
    pub(super) fn new(props: Props) -> Result<Arc<Context>> {
        driver()?;
        let mut dev = 0;
        // SAFETY: the driver is initialised; `dev` is a valid out-pointer.
        unsafe { sys::cuDeviceGet(&mut dev, props.ordinal) }
            .result()
            .map_err(call("cuDeviceGet"))?;
        let mut ctx = std::ptr::null_mut();
        // SAFETY: `dev` is valid; `ctx` is a valid out-pointer. Released in Drop.
        unsafe { sys::cuDevicePrimaryCtxRetain(&mut ctx, dev) }
            .result()
            .map_err(call("cuDevicePrimaryCtxRetain"))?;
        Ok(Arc::new(Context { dev, ctx, props }))
    }

    /// Makes the context current on the calling thread (every driver call below needs it).
    pub(super) fn bind(&self) -> Result<()> {
        // SAFETY: `ctx` is retained for as long as `self` lives.
        unsafe { sys::cuCtxSetCurrent(self.ctx) }
            .result()
            .map_err(call("cuCtxSetCurrent"))
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: releases the retain of `new`; every object made in the context holds an `Arc` of it, so none
        // is left.
        let _ = unsafe { sys::cuDevicePrimaryCtxRelease_v2(self.dev) };
    }
}

/// Device memory (`cuMemAlloc`): the host cannot reach it except by copies ([`DevMem::write`], [`DevMem::read`]).
pub(super) struct DevMem {
    ctx: Arc<Context>,
    pub ptr: sys::CUdeviceptr,
    pub len: usize,
}

impl DevMem {
    pub(super) fn new(ctx: &Arc<Context>, len: usize) -> Result<DevMem> {
        ctx.bind()?;
        let mut ptr = 0;
        // SAFETY: the context is current; `ptr` is a valid out-pointer. Freed in Drop.
        unsafe { sys::cuMemAlloc_v2(&mut ptr, len.max(4)) }
            .result()
            .map_err(call("cuMemAlloc"))?;
        Ok(DevMem {
            ctx: ctx.clone(),
            ptr,
            len,
        })
    }

    /// Copies `src` to byte `at`, complete when this returns: from pageable memory `cuMemcpyHtoD` may return
    /// before its DMA has landed, and the launches run on non-blocking streams that do not wait for the legacy
    /// stream, so the legacy stream is synchronised (it waits for no launch of this backend).
    pub(super) fn write(&self, at: usize, src: &[u8]) -> Result<()> {
        self.check(at, src.len())?;
        self.ctx.bind()?;
        // SAFETY: `at + src.len()` is inside the allocation (checked); `src` is readable for its length.
        unsafe { sys::cuMemcpyHtoD_v2(self.ptr + at as u64, src.as_ptr().cast(), src.len()) }
            .result()
            .map_err(call("cuMemcpyHtoD"))?;
        // SAFETY: the null stream is the context's legacy stream; synchronising it touches no memory.
        unsafe { sys::cuStreamSynchronize(std::ptr::null_mut()) }
            .result()
            .map_err(call("cuStreamSynchronize"))
    }

    /// Copies from byte `at` into `dst` (device to host returns once the copy has completed).
    pub(super) fn read(&self, at: usize, dst: &mut [u8]) -> Result<()> {
        self.check(at, dst.len())?;
        self.ctx.bind()?;
        // SAFETY: `at + dst.len()` is inside the allocation (checked); `dst` is writable for its length.
        unsafe { sys::cuMemcpyDtoH_v2(dst.as_mut_ptr().cast(), self.ptr + at as u64, dst.len()) }
            .result()
            .map_err(call("cuMemcpyDtoH"))
    }

    fn check(&self, at: usize, n: usize) -> Result<()> {
        match at.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(CudaError::Invalid(format!(
                "a copy of {n} bytes at {at} is outside a {}-byte device buffer",
                self.len
            ))),
        }
    }
}

impl Drop for DevMem {
    fn drop(&mut self) {
        if self.ctx.bind().is_ok() {
            // SAFETY: frees what `new` allocated; a launch using it holds it alive until the launch has ended.
            let _ = unsafe { sys::cuMemFree_v2(self.ptr) };
        }
    }
}

/// Pinned host memory the driver allocated and mapped for the device (`cuMemHostAlloc`, DEVICEMAP).
pub(super) struct HostMem {
    ctx: Arc<Context>,
    pub host: *mut u8,
    pub dev: sys::CUdeviceptr,
    pub len: usize,
}

// SAFETY: the allocation is plain memory owned by this value; the host reaches it only through atomics
// (`DeviceBuffer::load_u32`/`store_u32`), the device through its own accesses.
unsafe impl Send for HostMem {}
// SAFETY: as above.
unsafe impl Sync for HostMem {}

impl HostMem {
    pub(super) fn new(ctx: &Arc<Context>, len: usize) -> Result<HostMem> {
        ctx.bind()?;
        let mut host = std::ptr::null_mut();
        let flags = sys::CU_MEMHOSTALLOC_DEVICEMAP | sys::CU_MEMHOSTALLOC_PORTABLE;
        // SAFETY: the context is current; `host` is a valid out-pointer. Freed in Drop.
        unsafe { sys::cuMemHostAlloc(&mut host, len.max(4), flags) }
            .result()
            .map_err(call("cuMemHostAlloc"))?;
        let mut mem = HostMem {
            ctx: ctx.clone(),
            host: host.cast(),
            dev: 0,
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
        if self.ctx.bind().is_ok() {
            // SAFETY: frees what `new` allocated; a launch using it holds it alive until the launch has ended.
            let _ = unsafe { sys::cuMemFreeHost(self.host.cast()) };
        }
    }
}

/// The device address of mapped host memory at `host`.
fn device_pointer(host: *mut u8) -> Result<sys::CUdeviceptr> {
    let mut dev = 0;
    // SAFETY: `host` is inside memory registered or allocated with DEVICEMAP in the current context; `dev`
    // is a valid out-pointer.
    unsafe { sys::cuMemHostGetDevicePointer_v2(&mut dev, host.cast(), 0) }
        .result()
        .map_err(call("cuMemHostGetDevicePointer"))?;
    Ok(dev)
}

/// Host memory the caller owns, page-locked and mapped for the device (`cuMemHostRegister`, DEVICEMAP);
/// unregistered when this value is dropped, and `owner` (which keeps the memory mapped) dropped after.
pub(super) struct Registered {
    ctx: Arc<Context>,
    pub host: *mut u8,
    pub dev: sys::CUdeviceptr,
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
        ctx: &Arc<Context>,
        host: *mut u8,
        len: usize,
        owner: Arc<dyn Send + Sync>,
    ) -> Result<Registered> {
        ctx.bind()?;
        let flags = sys::CU_MEMHOSTREGISTER_DEVICEMAP | sys::CU_MEMHOSTREGISTER_PORTABLE;
        // SAFETY: the caller's contract: `host..host + len` is mapped and stays so while `owner` (kept in the
        // value) lives; unregistered in Drop, before `owner` goes.
        unsafe { sys::cuMemHostRegister_v2(host.cast(), len, flags) }
            .result()
            .map_err(call("cuMemHostRegister"))?;
        // Unregistered by Drop if the device pointer cannot be had.
        let mut reg = Registered {
            ctx: ctx.clone(),
            host,
            dev: 0,
            len,
            _owner: owner,
        };
        reg.dev = device_pointer(host)?;
        Ok(reg)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if self.ctx.bind().is_ok() {
            // SAFETY: undoes the registration of `new`; a launch using it holds it alive until the launch ended.
            let _ = unsafe { sys::cuMemHostUnregister(self.host.cast()) };
        }
    }
}

/// A loaded module (`cuModuleLoadDataEx`).
pub(super) struct Module {
    ctx: Arc<Context>,
    module: sys::CUmodule,
}

// SAFETY: module handles may be used from any thread with the context current.
unsafe impl Send for Module {}
// SAFETY: as above.
unsafe impl Sync for Module {}

/// Bytes of the JIT error log kept for an error message.
const JIT_LOG: usize = 8192;

impl Module {
    /// Loads `image`: PTX text (NUL-terminated), a cubin or a fatbin.
    ///
    /// # Safety
    /// `image` must be a valid PTX, cubin or fatbin image (the driver parses it; a malformed image is an
    /// error, but its kernels run with the device's full access to the memory they are given).
    pub(super) unsafe fn load(ctx: &Arc<Context>, image: &[u8]) -> Result<Arc<Module>> {
        ctx.bind()?;
        let mut log = vec![0u8; JIT_LOG];
        let mut opts = [
            sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER,
            sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
        ];
        // The driver reads each option's value from the pointer-sized slot (the size by value).
        let mut vals = [log.as_mut_ptr().cast::<c_void>(), JIT_LOG as *mut c_void];
        let mut module = std::ptr::null_mut();
        // SAFETY: `image` is a valid image (the caller's contract; PTX is NUL-terminated by the caller);
        // `opts`/`vals` have 2 entries, the count passed; the log buffer has `JIT_LOG` writable bytes.
        let r = unsafe {
            sys::cuModuleLoadDataEx(
                &mut module,
                image.as_ptr().cast(),
                opts.len() as c_uint,
                opts.as_mut_ptr(),
                vals.as_mut_ptr(),
            )
        };
        if r != CUresult::CUDA_SUCCESS {
            let text = CStr::from_bytes_until_nul(&log)
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Err(CudaError::Call {
                call: "cuModuleLoadData",
                error: if text.is_empty() {
                    describe(r)
                } else {
                    format!("{}; JIT log: {}", describe(r), text.trim())
                },
            });
        }
        Ok(Arc::new(Module {
            ctx: ctx.clone(),
            module,
        }))
    }

    /// The kernel named `name`.
    pub(super) fn function(self: &Arc<Self>, name: &str) -> Result<Function> {
        let c = std::ffi::CString::new(name)
            .map_err(|_| CudaError::Invalid(format!("kernel name {name:?} contains NUL")))?;
        self.ctx.bind()?;
        let mut f = std::ptr::null_mut();
        // SAFETY: the module is loaded while `self` lives; `c` is NUL-terminated; `f` a valid out-pointer.
        unsafe { sys::cuModuleGetFunction(&mut f, self.module, c.as_ptr()) }
            .result()
            .map_err(call("cuModuleGetFunction"))?;
        Ok(Function {
            _module: self.clone(),
            f,
        })
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        if self.ctx.bind().is_ok() {
            // SAFETY: every function of the module holds it alive, and every launch holds its function.
            let _ = unsafe { sys::cuModuleUnload(self.module) };
        }
    }
}

/// A kernel of a loaded module (which it keeps loaded).
pub(super) struct Function {
    _module: Arc<Module>,
    f: sys::CUfunction,
}

// SAFETY: function handles may be used from any thread with the context current.
unsafe impl Send for Function {}
// SAFETY: as above.
unsafe impl Sync for Function {}

/// A stream with an event recorded after each launch on it: one launch in flight at a time.
pub(super) struct Stream {
    ctx: Arc<Context>,
    stream: sys::CUstream,
    done: sys::CUevent,
}

// SAFETY: stream and event handles may be used from any thread with the context current; one thread at a
// time uses a `Stream` (it is owned by one launch while in use).
unsafe impl Send for Stream {}
// SAFETY: as above.
unsafe impl Sync for Stream {}

impl Stream {
    pub(super) fn new(ctx: &Arc<Context>) -> Result<Stream> {
        ctx.bind()?;
        let mut stream = std::ptr::null_mut();
        // SAFETY: the context is current; `stream` is a valid out-pointer. Destroyed in Drop.
        unsafe {
            sys::cuStreamCreate(
                &mut stream,
                sys::CUstream_flags::CU_STREAM_NON_BLOCKING as c_uint,
            )
        }
        .result()
        .map_err(call("cuStreamCreate"))?;
        let mut done = std::ptr::null_mut();
        // SAFETY: as above. Destroyed in Drop.
        let r = unsafe {
            sys::cuEventCreate(
                &mut done,
                sys::CUevent_flags::CU_EVENT_DISABLE_TIMING as c_uint,
            )
        };
        if r != CUresult::CUDA_SUCCESS {
            // SAFETY: created above, used by nothing.
            let _ = unsafe { sys::cuStreamDestroy_v2(stream) };
            return Err(call("cuEventCreate")(DriverError(r)));
        }
        Ok(Stream {
            ctx: ctx.clone(),
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
        self.ctx.bind()?;
        // SAFETY: the caller's contract; the driver copies the parameter values before returning.
        unsafe {
            sys::cuLaunchKernel(
                f.f,
                grid.0,
                1,
                1,
                grid.1,
                1,
                1,
                0,
                self.stream,
                params.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        }
        .result()
        .map_err(call("cuLaunchKernel"))?;
        // SAFETY: both handles live while `self` does.
        unsafe { sys::cuEventRecord(self.done, self.stream) }
            .result()
            .map_err(call("cuEventRecord"))
    }

    /// Whether everything launched on the stream has ended (an error: a launch failed on the device, e.g.
    /// an illegal address, which also leaves the context unusable).
    pub(super) fn query(&self) -> Result<bool> {
        self.ctx.bind()?;
        // SAFETY: the event lives while `self` does.
        match unsafe { sys::cuEventQuery(self.done) } {
            CUresult::CUDA_SUCCESS => Ok(true),
            CUresult::CUDA_ERROR_NOT_READY => Ok(false),
            r => Err(call("the launch (cuEventQuery)")(DriverError(r))),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.ctx.bind().is_ok() {
            // SAFETY: destroys what `new` created; the driver defers freeing a stream with work still queued.
            let _ = unsafe { sys::cuEventDestroy_v2(self.done) };
            // SAFETY: as above.
            let _ = unsafe { sys::cuStreamDestroy_v2(self.stream) };
        }
    }
}
