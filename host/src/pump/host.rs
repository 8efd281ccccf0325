//! The public pump handle: [`Pump`] builds the arena and the ring, registers regions and files, and runs the
//! pump thread (`engine.rs`) between [`Pump::start`] and [`Pump::stop`].

#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use io_uring::IoUring;

use super::config::{PumpConfig, PumpError, PumpFile, PumpStats};
use super::engine::{Counters, Engine};
use super::queue::*;
use super::wake::LaneWake;

enum Run {
    Ready(Box<Engine>),
    Running(JoinHandle<Result<(), PumpError>>),
    Finished(Result<(), PumpError>),
}

/// The megakernel io_queue pump: an arena with the io_queue and buffer regions, a ring with those regions
/// and the files registered, and (after [`start`](Pump::start)) the thread serving them.
pub struct Pump {
    arena: Arc<PumpArena>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    wake: Arc<LaneWake>,
    run: Mutex<Run>,
    thread: Mutex<Option<libc::pthread_t>>,
    files: Vec<PumpFile>,
}

fn setup_err(context: &'static str, e: io::Error, entries: u32) -> PumpError {
    let errno = e.raw_os_error().unwrap_or(0);
    let fix = match errno {
        libc::EPERM | libc::ENOSYS | libc::EINVAL if context == "io_uring_setup" => {
            crate::ring::error::classify_setup_error(
                e,
                0,
                entries,
                &crate::ring::error::kernel_release(),
            )
            .to_string()
        }
        libc::ENOMEM => format!(
            "registered buffers are pinned against RLIMIT_MEMLOCK (now {}): raise it (`ulimit -l`) or run \
             with CAP_IPC_LOCK",
            crate::ring::error::memlock_limit_text()
        ),
        libc::EBADF => "a PumpFile's fd is not open".into(),
        _ => e.to_string(),
    };
    PumpError::Setup {
        context,
        errno,
        fix,
    }
}

impl Pump {
    /// Builds the arena and the ring and registers regions and files. The pump does not serve until
    /// [`start`](Pump::start); lanes may publish before that.
    pub fn new(cfg: PumpConfig) -> Result<Pump, PumpError> {
        if !cfg.sq_entries.is_power_of_two() || !(1..=4096).contains(&cfg.sq_entries) {
            return Err(PumpError::Config(format!(
                "sq_entries must be a power of two in 1..=4096, got {}",
                cfg.sq_entries
            )));
        }
        let cq = cfg.cq_entries.unwrap_or(cfg.sq_entries * 2);
        if !cq.is_power_of_two() || cq < cfg.sq_entries || cq > 65536 {
            return Err(PumpError::Config(format!(
                "cq_entries must be a power of two in sq_entries..=65536, got {cq}"
            )));
        }
        if cfg.regions.len() > u16::MAX as usize + 1 {
            return Err(PumpError::Config("at most 65536 buffer regions".into()));
        }
        let plan = QueueArenaPlan::new(cfg.slots, &cfg.regions, cfg.files.len() as u32)?;
        let arena = Arc::new(PumpArena::new(plan).map_err(|e| setup_err("mmap", e, 0))?);

        let build = |coop: bool| {
            let mut b = IoUring::builder();
            b.dontfork().setup_cqsize(cq);
            if coop {
                // Task work runs only when the pump enters the kernel (it checks IORING_SQ_TASKRUN), instead
                // of interrupting it with IPIs.
                b.setup_coop_taskrun().setup_taskrun_flag();
            }
            b.build(cfg.sq_entries)
        };
        let ring = match build(true) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => build(false),
            r => r,
        }
        .map_err(|e| setup_err("io_uring_setup", e, cfg.sq_entries))?;
        if ring.params().cq_entries() != cq {
            return Err(PumpError::Config(format!(
                "the kernel made the CQ {} entries (asked {cq})",
                ring.params().cq_entries()
            )));
        }

        let (base, _) = arena.raw();
        if !cfg.regions.is_empty() {
            let iovs: Vec<libc::iovec> = arena
                .regions()
                .iter()
                .map(|r| libc::iovec {
                    // SAFETY: the region lies inside the mapping (planned so).
                    iov_base: unsafe { base.add(r.offset as usize) }.cast(),
                    iov_len: r.size as usize,
                })
                .collect();
            // SAFETY: every iovec is arena memory that outlives the ring: the engine owns an Arc of the arena
            // and drops the ring first; the kernel also pins the pages until the ring is gone.
            unsafe { ring.submitter().register_buffers(&iovs) }
                .map_err(|e| setup_err("IORING_REGISTER_BUFFERS", e, 0))?;
        }
        if !cfg.files.is_empty() {
            let fds: Vec<RawFd> = cfg.files.iter().map(|f| f.fd).collect();
            ring.submitter()
                .register_files(&fds)
                .map_err(|e| setup_err("IORING_REGISTER_FILES", e, 0))?;
        }

        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (local, _) = arena.local_raw();
        // SAFETY: the view points into `arena` and its device-local block, which the engine keeps alive (Arc)
        // for longer than the view. (The pump never touches the device-local block.)
        let q: QueueView<'static> = unsafe { QueueView::new(base, local, arena.layout()) };
        let engine = Engine::new(
            ring,
            q,
            arena.clone(),
            &cfg,
            cq,
            counters.clone(),
            stop.clone(),
        );
        let wake = engine.lane_wake();
        Ok(Pump {
            arena,
            counters,
            stop,
            wake,
            run: Mutex::new(Run::Ready(Box::new(engine))),
            thread: Mutex::new(None),
            files: cfg.files,
        })
    }

    /// [`new`](Pump::new) then [`start`](Pump::start).
    pub fn spawn(cfg: PumpConfig) -> Result<Pump, PumpError> {
        let p = Pump::new(cfg)?;
        p.start()?;
        Ok(p)
    }

    /// Starts the pump thread.
    pub fn start(&self) -> Result<(), PumpError> {
        let mut run = self.run.lock().unwrap_or_else(|e| e.into_inner());
        let engine = match std::mem::replace(&mut *run, Run::Finished(Ok(()))) {
            Run::Ready(e) => e,
            other => {
                *run = other;
                return Err(PumpError::AlreadyStarted);
            }
        };
        let handle = std::thread::Builder::new()
            .name("gpu-uring-pump".into())
            .spawn(move || engine.run())
            .map_err(|e| setup_err("spawning the pump thread", e, 0))?;
        {
            use std::os::unix::thread::JoinHandleExt;
            *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle.as_pthread_t());
        }
        *run = Run::Running(handle);
        Ok(())
    }

    /// The device's view of the io_queue and regions.
    pub fn view(&self) -> QueueView<'_> {
        self.arena.view()
    }

    /// The layout descriptor to hand to a device.
    pub fn layout(&self) -> PumpLayout {
        self.arena.layout()
    }

    /// The arena (base and size for importing into a GPU API, regions, guard check).
    pub fn arena(&self) -> &PumpArena {
        &self.arena
    }

    /// A shared handle on the arena, for a GPU API that imports it and must keep it mapped for as long as the
    /// import exists (even past the pump, e.g. a dispatch that outlived its time limit).
    pub fn arena_shared(&self) -> Arc<PumpArena> {
        self.arena.clone()
    }

    /// The registered files (handle = index).
    pub fn files(&self) -> &[PumpFile] {
        &self.files
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PumpStats {
        self.counters.snapshot()
    }

    /// The word the pump thread bumps after completing requests, for lanes that are OS threads to park on
    /// between polls ([`LaneWake`]; the CPU reference device's `run_queue_lanes` uses it).
    pub fn lane_wake(&self) -> Arc<LaneWake> {
        self.wake.clone()
    }

    /// Wakes a parked pump now (host code that knows work was published can cut the idle latency): rings its
    /// bell ([`LaneWake`]).
    pub fn kick(&self) {
        self.wake.ring();
    }

    /// CPU time the pump thread has used so far (`None` before start or after stop).
    pub fn cpu_time(&self) -> Option<Duration> {
        let run = self.run.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*run, Run::Running(_)) {
            return None;
        }
        let pt = self
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .copied()?;
        let mut clock: libc::clockid_t = 0;
        // SAFETY: `pt` names a thread that has not been joined (we hold the run lock and it is Running), and
        // `clock` is a valid out-parameter.
        if unsafe { libc::pthread_getcpuclockid(pt, &mut clock) } != 0 {
            return None;
        }
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-parameter.
        if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
            return None;
        }
        Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    /// Stops the pump (PROTOCOL.md §Q7) and returns its counters, or the error that stopped it. Idempotent.
    /// A pump that never started is stopped too: requests published to it fail `ERR_STOPPED`.
    pub fn stop(&self) -> Result<PumpStats, PumpError> {
        let mut run = self.run.lock().unwrap_or_else(|e| e.into_inner());
        // SeqCst (a release at least: pairs with the pump's acquire load of the flag): in the one order with
        // the ring below and a parking pump's look at the flag after its snapshot of the bell, so a pump that
        // missed the flag is woken.
        self.stop.store(true, SeqCst);
        let outcome = match std::mem::replace(&mut *run, Run::Finished(Ok(()))) {
            Run::Ready(engine) => engine.shutdown(None),
            Run::Running(h) => {
                self.wake.ring();
                match h.join() {
                    Ok(r) => r,
                    Err(_) => Err(PumpError::Panicked),
                }
            }
            Run::Finished(r) => r,
        };
        *run = Run::Finished(outcome.clone());
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = None;
        outcome.map(|()| self.stats())
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
