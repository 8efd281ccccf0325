//! The CPU reference device: one OS thread per lane, lanes grouped into subgroups of `subgroup_size`
//! (lane `l` is lane `l % subgroup_size` of subgroup `l / subgroup_size`). Each thread runs the Rust protocol
//! implementation ([`crate::protocol::Lane`]) exactly as PROTOCOL.md says, so this device runs everywhere and
//! is the oracle every GPU backend is compared with. Its kernels ([`crate::backend::KernelCode::Native`]) are
//! Rust closures, one call per invocation, each invocation a thread.

mod adapter;
mod kernel;
mod memory;
mod run;

use std::sync::Arc;
use std::time::Duration;

use super::{
    BetweenDispatches, Device, DeviceBuffer, DeviceError, DeviceInfo, FormatCase, Grid, Kernel,
    KernelArg, KernelCode, KernelLayout, Placement, Program, RunReport,
};
use crate::protocol::DeviceRing;
use crate::protocol::{Lane, DEFAULT_BUDGET};

/// The CPU reference device.
#[derive(Debug, Clone)]
pub struct CpuDevice {
    /// Lanes per subgroup (8, like lavapipe's SIMD width).
    pub subgroup_size: u32,
    /// Spin budget for each device-side wait.
    pub budget: u32,
}

impl Default for CpuDevice {
    fn default() -> Self {
        CpuDevice {
            subgroup_size: 8,
            budget: DEFAULT_BUDGET,
        }
    }
}

/// The reference device's threads: runs `f(id)` for `id` in `0..lanes`, each on its own scoped thread named
/// `{name}-{id}`, and returns the results in lane order. Every CPU-side dispatch (device rings here, the
/// io_queue in [`crate::pump::device::run_lanes`], experiments with lanes of their own) spawns its lanes
/// through this one function. A panicking lane panics the caller once every lane has been joined.
pub fn spawn_lanes<R: Send>(lanes: u32, name: &str, f: impl Fn(u32) -> R + Sync) -> Vec<R> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..lanes)
            .map(|id| {
                let f = &f;
                std::thread::Builder::new()
                    .name(format!("{name}-{id}"))
                    .spawn_scoped(s, move || f(id))
                    .expect("spawning a lane thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a lane panicked"))
            .collect()
    })
}

/// Runs `f` on `lanes` lanes, one thread each, then flushes every lane. Returns each lane's result in lane
/// order. This is the reference device's dispatch.
pub fn run_lanes<R: Send>(
    ring: &DeviceRing,
    lanes: u32,
    f: impl Fn(&mut Lane<'_>) -> R + Sync,
) -> Vec<R> {
    let view = ring.view();
    assert!(
        lanes <= view.layout().lanes,
        "{lanes} lanes but the ring was sized for {}",
        view.layout().lanes
    );
    spawn_lanes(lanes, "lane", |id| {
        let mut lane = Lane::new(view, id);
        let r = f(&mut lane);
        let _ = lane.flush(DEFAULT_BUDGET);
        r
    })
}

impl Device for CpuDevice {
    fn info(&self) -> DeviceInfo {
        adapter::info(self)
    }

    fn run_with(
        &self,
        ring: &DeviceRing,
        lanes: u32,
        program: &Program,
        timeout: Duration,
        between: &mut BetweenDispatches<'_>,
    ) -> Result<RunReport, DeviceError> {
        let rep = run::run(self, ring, lanes, program, timeout)?;
        between(0, &rep.states)?;
        Ok(rep)
    }

    fn format_probe(
        &self,
        _ring: &DeviceRing,
        cases: &[FormatCase],
    ) -> Result<Vec<Vec<u8>>, DeviceError> {
        Ok(run::format_cases(cases))
    }

    fn lane_iter_budget(&self) -> u32 {
        self.budget
    }

    fn alloc(&self, placement: Placement, bytes: usize) -> Result<DeviceBuffer, DeviceError> {
        memory::alloc(placement, bytes)
    }

    unsafe fn import_host(
        &self,
        ptr: *mut u8,
        len: usize,
        owner: Arc<dyn Send + Sync>,
    ) -> Result<DeviceBuffer, DeviceError> {
        // SAFETY: the caller's contract (the trait's).
        unsafe { memory::import(ptr, len, owner) }
    }

    unsafe fn load_kernel(
        &self,
        name: &str,
        code: KernelCode<'_>,
        layout: KernelLayout,
    ) -> Result<Kernel, DeviceError> {
        kernel::load(name, code, layout)
    }

    fn launch(
        &self,
        kernel: &Kernel,
        args: &[KernelArg<'_>],
        grid: Grid,
        limit: Duration,
    ) -> Result<Duration, DeviceError> {
        kernel::launch(self, kernel, args, grid, limit)
    }
}
