//! A GPU device as a HAL [`Device`], over any [`Driver`]: memory ([`super::memory`]), kernels loaded from the
//! caller's binaries or from the device library, and their launches — the HAL's arguments resolved to device
//! pointers and values ([`launch::resolve`]; a [`KernelArg::RingArena`] registers the ring's arena for the
//! launch, or shares its live registration), the kernel launched on a stream of the device's pool with an
//! event recorded after it, and a bounded wait on that event ([`launch::finish`]). Past its limit a launch
//! fails with [`DeviceError::Timeout`] and is parked with its stream, kernel, buffers and registrations until
//! the event reports it ended; an asynchronous launch hands the same wait to a thread that ends its
//! [`Submission`] ([`launch::finish_async`]). As a [`LibraryDevice`] it runs the built-in programs on the
//! device library's kernels ([`crate::backend::library`]), the library loaded once per device.

use std::any::Any;
use std::ffi::c_void;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::launch::{self, Parked, Pool, Registry, Started};
use super::{memory, Driver};
use crate::backend::hal::{
    AdapterInfo, Device, DeviceBuffer, DeviceConfig, DeviceInfo, FenceCounters, FenceStats, Grid,
    Kernel, KernelArg, KernelCode, KernelFormat, KernelImpl, KernelLayout, LibraryDevice,
    Placement, Submission,
};
use crate::backend::{library, DeviceError};

/// Default soft loop budget per lane and dispatch (the programs of the device library run to the end in one
/// launch; this is what caller-supplied resumable kernels are told).
const ITER_BUDGET: u32 = 30_000;

/// A loaded GPU kernel.
pub(crate) struct GpuKernel<D: Driver> {
    name: String,
    function: D::Function,
}

impl<D: Driver> KernelImpl for GpuKernel<D> {
    fn name(&self) -> &str {
        &self.name
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// A GPU device.
pub(crate) struct GpuDevice<D: Driver> {
    drv: Arc<D>,
    adapter: AdapterInfo,
    dispatch_timeout: Duration,
    iter_budget: u32,
    wait_budget: Option<u32>,
    registry: Registry<D::Registered>,
    streams: Arc<Pool<D::Stream>>,
    parked: Arc<Parked<D::Stream>>,
    fences: Arc<FenceCounters>,
    /// The device library's module, loaded on first use (or why it could not be).
    library: OnceLock<Result<Arc<D::Module>, DeviceError>>,
}

impl<D: Driver> GpuDevice<D> {
    pub(crate) fn new(drv: Arc<D>, adapter: AdapterInfo, config: &DeviceConfig) -> GpuDevice<D> {
        GpuDevice {
            drv,
            adapter,
            dispatch_timeout: config.dispatch_timeout,
            iter_budget: config.iter_budget.unwrap_or(ITER_BUDGET).max(64),
            wait_budget: config.wait_budget,
            registry: Registry::default(),
            streams: Arc::default(),
            parked: Arc::new(Parked::new(D::BACKEND)),
            fences: Arc::default(),
            library: OnceLock::new(),
        }
    }

    fn kernel(
        module: &Arc<D::Module>,
        name: &str,
        layout: KernelLayout,
    ) -> Result<Kernel, DeviceError> {
        let function = D::function(module, name)?;
        Ok(Kernel::new(
            Arc::new(GpuKernel::<D> {
                name: name.to_owned(),
                function,
            }),
            layout,
        ))
    }

    /// Checks and starts a launch.
    fn start(
        &self,
        kernel: &Kernel,
        args: &[KernelArg<'_>],
        grid: Grid,
    ) -> Result<Started<D::Stream>, DeviceError> {
        self.parked.reclaim();
        let k: Arc<GpuKernel<D>> = kernel
            .backend_object()
            .clone()
            .into_any()
            .downcast::<GpuKernel<D>>()
            .map_err(|_| DeviceError::Run {
                backend: D::BACKEND,
                message: format!(
                    "a kernel from another backend was passed to a {} launch",
                    D::BACKEND
                ),
            })?;
        let (warp, max_block) = self.drv.limits();
        let (blocks, threads) = launch::geometry(D::BACKEND, grid, warp, max_block)?;
        let launch::Resolved {
            mut values,
            mut keep,
        } = launch::resolve(
            D::BACKEND,
            args,
            kernel.layout(),
            |b| {
                let held = memory::gpu_buffer::<D>(b)?;
                Ok((held.device_ptr(), held))
            },
            |base, len, owner| {
                // SAFETY: `resolve` passes a ring arena: one page-aligned, writable mapping of `len` bytes kept
                // mapped by `owner`, which the registration holds.
                let reg = unsafe { memory::register(&self.drv, &self.registry, base, len, owner) }?;
                Ok((super::HostMapping::device_ptr(&*reg), reg))
            },
        )?;
        keep.push(k.clone());
        let mut ptrs: Vec<*mut c_void> = values.iter_mut().map(|v| v.as_ptr()).collect();
        let stream = self.streams.take(|| self.drv.stream())?;
        let at = Instant::now();
        // SAFETY: `ptrs` point at `values`, which live across the call, one per kernel parameter in order and
        // of the kernel's sizes (the kernel's layout, checked by `resolve`, is the loader's contract); every
        // device pointer among them belongs to a buffer or registration in `keep`, which the launch holds
        // until it has ended (returned, or parked on timeout).
        match unsafe { D::launch(&stream, &k.function, blocks, threads, &mut ptrs) } {
            Ok(()) => Ok(Started { stream, keep, at }),
            Err(e) => {
                self.streams.give(stream);
                Err(e)
            }
        }
    }
}

impl<D: Driver> Device for GpuDevice<D> {
    fn info(&self) -> DeviceInfo {
        let a = &self.adapter;
        DeviceInfo {
            backend: D::BACKEND,
            name: a.name.clone(),
            driver: format!("{}; {}", a.driver, a.api_version),
            subgroup_size: a.caps.subgroup_size,
            device_type: a.device_type,
            caps: a.caps,
        }
    }

    fn lane_iter_budget(&self) -> u32 {
        self.iter_budget
    }

    fn kernel_formats(&self) -> &'static [KernelFormat] {
        D::FORMATS
    }

    fn dispatch_limit(&self) -> Duration {
        self.dispatch_timeout
    }

    fn alloc(&self, placement: Placement, bytes: usize) -> Result<DeviceBuffer, DeviceError> {
        memory::alloc(&self.drv, &self.registry, placement, bytes)
    }

    unsafe fn import_host(
        &self,
        ptr: *mut u8,
        len: usize,
        owner: Arc<dyn Send + Sync>,
    ) -> Result<DeviceBuffer, DeviceError> {
        // SAFETY: the caller's contract (the trait's).
        unsafe { memory::import(&self.drv, &self.registry, ptr, len, owner) }
    }

    unsafe fn load_kernel(
        &self,
        name: &str,
        code: KernelCode<'_>,
        layout: KernelLayout,
    ) -> Result<Kernel, DeviceError> {
        // SAFETY: the caller's contract (the trait's).
        let module = unsafe { self.drv.load_module(code) }?;
        Self::kernel(&module, name, layout)
    }

    fn launch(
        &self,
        kernel: &Kernel,
        args: &[KernelArg<'_>],
        grid: Grid,
        limit: Duration,
    ) -> Result<Duration, DeviceError> {
        let s = self.start(kernel, args, grid)?;
        launch::finish(D::BACKEND, &self.streams, &self.parked, s, limit)
    }

    fn launch_async(
        &self,
        kernel: &Kernel,
        args: &[KernelArg<'_>],
        grid: Grid,
        limit: Duration,
    ) -> Result<Submission, DeviceError> {
        let s = self.start(kernel, args, grid)?;
        launch::finish_async(
            D::BACKEND,
            kernel.name(),
            &self.fences,
            &self.streams,
            &self.parked,
            s,
            limit,
        )
    }

    fn fence_stats(&self) -> FenceStats {
        self.fences.stats()
    }

    fn library(&self) -> Option<&dyn LibraryDevice> {
        Some(self)
    }
}

impl<D: Driver> LibraryDevice for GpuDevice<D> {
    fn library_kernel(&self, name: &'static str) -> Result<Kernel, DeviceError> {
        let layout = library::kernel_layout(D::BACKEND, name)?;
        let module = self
            .library
            .get_or_init(|| self.drv.load_library())
            .clone()?;
        Self::kernel(&module, name, layout)
    }

    fn write_buffer(&self, buf: &DeviceBuffer, at: usize, src: &[u8]) -> Result<(), DeviceError> {
        memory::write::<D>(buf, at, src)
    }

    fn read_buffer(
        &self,
        buf: &DeviceBuffer,
        at: usize,
        dst: &mut [u8],
    ) -> Result<(), DeviceError> {
        memory::read::<D>(buf, at, dst)
    }

    fn wait_budget(&self) -> Option<u32> {
        self.wait_budget
    }
}
