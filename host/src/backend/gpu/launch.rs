//! The launch machinery the kernel-parameter backends (CUDA, HIP) share: the HAL's argument list as kernel
//! parameters ([`resolve`]) and the grid as blocks ([`geometry`]); host ranges registered once and shared by
//! every import of them ([`Registry`]); streams reused by later launches ([`Pool`]); a bounded wait that polls
//! a launch's completion event ([`wait`]); and the parking of launches that outlived their limit together
//! with everything they use (kernel, buffers, registered host memory), freed only once the device reports
//! them ended ([`Parked`], [`finish`], [`finish_async`]).

use std::ffi::c_void;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::backend::error::DeviceError;
use crate::backend::hal::{DeviceBuffer, FenceCounters, Grid, KernelArg, KernelLayout, Submission};
use crate::protocol::DeviceRing;
use crate::ring::layout::page_size;

/// A launch's completion, as its backend queries it (a CUDA/HIP event recorded after the kernel).
pub(crate) trait Completion: Send + Sync + 'static {
    /// Whether the launch has ended; an error if it failed on the device.
    fn ended(&self) -> Result<bool, String>;
}

/// How a bounded wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// The launch ended, this long after it started.
    Done(Duration),
    /// `limit` passed first.
    TimedOut,
}

/// Polls `c` until the launch has ended or `limit` has passed since `start`. The first 100 µs yield between
/// polls (a short kernel's latency matters); then the pause doubles from 10 µs to at most 1 ms, so a long
/// wait costs little host CPU and overshoots its limit by at most a millisecond.
pub(crate) fn wait(c: &dyn Completion, start: Instant, limit: Duration) -> Result<Waited, String> {
    let mut pause = Duration::from_micros(10);
    loop {
        if c.ended()? {
            return Ok(Waited::Done(start.elapsed()));
        }
        let t = start.elapsed();
        if t >= limit {
            return Ok(Waited::TimedOut);
        }
        if t < Duration::from_micros(100) {
            std::thread::yield_now();
        } else {
            std::thread::sleep(pause.min(limit - t));
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }
}

/// A launch and what it uses, kept together until the launch has ended.
pub(crate) struct InFlight<C: Completion> {
    /// Its completion (and the stream it runs on).
    pub completion: C,
    /// Kernel, buffers and registrations the launch uses (held for their `Drop`, never read).
    #[allow(dead_code)]
    pub keep: Vec<Arc<dyn Send + Sync>>,
}

/// Launches that outlived their limit, parked with what they use; each is freed once it has ended
/// ([`Parked::reclaim`], called before every launch). Those still running when the device is dropped are
/// leaked on purpose: freeing memory a kernel may still access is worse than leaking it.
pub(crate) struct Parked<C: Completion> {
    backend: &'static str,
    list: Mutex<Vec<InFlight<C>>>,
}

impl<C: Completion> Parked<C> {
    pub(crate) fn new(backend: &'static str) -> Parked<C> {
        Parked {
            backend,
            list: Mutex::new(Vec::new()),
        }
    }

    /// Keeps `f` until it has ended.
    pub(crate) fn park(&self, f: InFlight<C>) {
        self.lock().push(f);
    }

    /// Frees every parked launch that has ended (or failed).
    pub(crate) fn reclaim(&self) {
        self.lock()
            .retain(|f| matches!(f.completion.ended(), Ok(false)));
    }

    /// Launches still parked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<InFlight<C>>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<C: Completion> Drop for Parked<C> {
    fn drop(&mut self) {
        self.reclaim();
        let left = std::mem::take(&mut *self.lock());
        if !left.is_empty() {
            log::warn!(
                "{}: {} launch(es) past their limit still run as the device closes; their memory is leaked",
                self.backend,
                left.len()
            );
            std::mem::forget(left);
        }
    }
}

/// One kernel parameter's value, 8-byte aligned (what `cuLaunchKernel` / `hipModuleLaunchKernel` read
/// through a pointer).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Param {
    /// A device pointer (a buffer, or the registered ring arena).
    DevicePtr(u64),
    /// A value passed by copy, and its length in bytes.
    Value(Vec<u64>, usize),
}

impl Param {
    fn value(bytes: &[u8]) -> Param {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Param::Value(words, bytes.len())
    }

    /// The pointer the driver reads the value through (valid while `self` lives, unmoved).
    pub(crate) fn as_ptr(&mut self) -> *mut c_void {
        match self {
            Param::DevicePtr(p) => (p as *mut u64).cast(),
            Param::Value(w, _) => w.as_mut_ptr().cast(),
        }
    }
}

/// A launch's kernel parameters and what the launch must keep alive until it has ended.
pub(crate) struct Resolved {
    /// One value per kernel parameter, in order.
    pub values: Vec<Param>,
    /// The buffers and registrations behind the device pointers among them.
    pub keep: Vec<Arc<dyn Send + Sync>>,
}

/// Something a launch keeps alive, with the device pointer it stands for.
pub(crate) type Pointer = (u64, Arc<dyn Send + Sync>);

/// The HAL's arguments as kernel parameters — argument `i` is parameter `i`, a buffer (or the ring arena) as
/// its device pointer, bytes by value — checked against the kernel's layout (its number of buffers and bytes
/// of by-value arguments). `buffer` gives a buffer's device pointer; `register` registers a ring's arena: it
/// is called only with a ring arena's base and length (one page-aligned, writable mapping) and the keep-alive
/// that keeps it mapped, which the registration must hold.
pub(crate) fn resolve(
    backend: &'static str,
    args: &[KernelArg<'_>],
    layout: KernelLayout,
    mut buffer: impl FnMut(&DeviceBuffer) -> Result<Pointer, DeviceError>,
    mut register: impl FnMut(*mut u8, usize, Arc<dyn Send + Sync>) -> Result<Pointer, DeviceError>,
) -> Result<Resolved, DeviceError> {
    let run_error = |message: String| DeviceError::Run { backend, message };
    let buffers = args
        .iter()
        .filter(|a| !matches!(a, KernelArg::Bytes(_)))
        .count();
    let bytes: usize = args
        .iter()
        .map(|a| match a {
            KernelArg::Bytes(v) => v.len(),
            _ => 0,
        })
        .sum();
    if buffers != layout.buffers as usize || bytes != layout.value_bytes as usize {
        return Err(run_error(format!(
            "the kernel takes {} buffers and {} bytes by value; the launch gave {buffers} and {bytes}",
            layout.buffers, layout.value_bytes
        )));
    }
    let mut keep = Vec::new();
    let mut ring: Option<&DeviceRing> = None;
    let mut arena: Option<u64> = None;
    let mut values = Vec::with_capacity(args.len());
    for a in args {
        let (ptr, held) = match *a {
            KernelArg::Bytes(v) => {
                values.push(Param::value(v));
                continue;
            }
            KernelArg::Buffer(b) => buffer(b)?,
            KernelArg::RingArena(r) => {
                if ring.is_some_and(|x| !std::ptr::eq(x, r)) {
                    return Err(run_error(
                        "every RingArena argument of a launch must name the same ring".into(),
                    ));
                }
                ring = Some(r);
                if let Some(p) = arena {
                    values.push(Param::DevicePtr(p));
                    continue;
                }
                let alive = r.arena_keepalive();
                let (base, len) = alive.arena();
                let (p, reg) = register(base, len, Arc::new(alive))?;
                arena = Some(p);
                (p, reg)
            }
        };
        values.push(Param::DevicePtr(ptr));
        keep.push(held);
    }
    Ok(Resolved { values, keep })
}

/// The launch geometry: (blocks, threads per block); a group size of 0 is one subgroup of `warp` threads.
pub(crate) fn geometry(
    backend: &'static str,
    grid: Grid,
    warp: u32,
    max_block: u32,
) -> Result<(u32, u32), DeviceError> {
    let block = if grid.group_size == 0 {
        warp
    } else {
        grid.group_size
    };
    if grid.groups == 0 || block > max_block {
        return Err(DeviceError::Run {
            backend,
            message: format!(
                "a grid of {} groups of {block} threads (1.. groups of at most {max_block} threads)",
                grid.groups
            ),
        });
    }
    Ok((grid.groups, block))
}

/// Host ranges registered with the driver, shared by every import of the same range while one lives (drivers
/// refuse to register memory twice).
pub(crate) struct Registry<R> {
    ranges: Mutex<Vec<(usize, usize, Weak<R>)>>,
}

impl<R> Default for Registry<R> {
    fn default() -> Self {
        Registry {
            ranges: Mutex::new(Vec::new()),
        }
    }
}

impl<R> Registry<R> {
    /// The registration of `ptr..ptr + len`: the live one, or the one `register` makes.
    pub(crate) fn get_or_register<E>(
        &self,
        ptr: *mut u8,
        len: usize,
        register: impl FnOnce() -> Result<R, E>,
    ) -> Result<Arc<R>, E> {
        let mut ranges = self.ranges.lock().unwrap_or_else(|p| p.into_inner());
        ranges.retain(|r| r.2.strong_count() > 0);
        if let Some(r) = ranges
            .iter()
            .find(|r| r.0 == ptr as usize && r.1 == len)
            .and_then(|r| r.2.upgrade())
        {
            return Ok(r);
        }
        let r = Arc::new(register()?);
        ranges.push((ptr as usize, len, Arc::downgrade(&r)));
        Ok(r)
    }
}

/// Streams that have no launch in flight, reused by the next launches.
pub(crate) struct Pool<S> {
    free: Mutex<Vec<S>>,
}

impl<S> Default for Pool<S> {
    fn default() -> Self {
        Pool {
            free: Mutex::new(Vec::new()),
        }
    }
}

impl<S> Pool<S> {
    /// A free stream, or a new one from `make`.
    pub(crate) fn take<E>(&self, make: impl FnOnce() -> Result<S, E>) -> Result<S, E> {
        let free = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match free {
            Some(s) => Ok(s),
            None => make(),
        }
    }

    /// Returns a stream whose launch has ended.
    pub(crate) fn give(&self, s: S) {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).push(s);
    }
}

/// A launch started on its stream, with what it uses, kept until it has ended.
pub(crate) struct Started<S> {
    pub stream: S,
    pub keep: Vec<Arc<dyn Send + Sync>>,
    pub at: Instant,
}

/// Waits at most `limit` for a started launch and disposes of it: its stream back to `pool` when it ended,
/// everything parked when it ran past the limit ([`DeviceError::Timeout`]), the stream dropped when the
/// launch failed on the device.
pub(crate) fn finish<S: Completion>(
    backend: &'static str,
    pool: &Pool<S>,
    parked: &Parked<S>,
    s: Started<S>,
    limit: Duration,
) -> Result<Duration, DeviceError> {
    match wait(&s.stream, s.at, limit) {
        Ok(Waited::Done(t)) => {
            drop(s.keep);
            pool.give(s.stream);
            Ok(t)
        }
        Ok(Waited::TimedOut) => {
            parked.park(InFlight {
                completion: s.stream,
                keep: s.keep,
            });
            Err(DeviceError::Timeout { backend, limit })
        }
        Err(message) => Err(DeviceError::Run { backend, message }),
    }
}

/// A started launch as a [`Submission`], ended by a waiter thread running [`finish`] (an emulated completion
/// descriptor: neither driver exports a `sync_file`). If no thread can be spawned, the caller's thread waits.
pub(crate) fn finish_async<S: Completion>(
    backend: &'static str,
    name: &str,
    counters: &Arc<FenceCounters>,
    pool: &Arc<Pool<S>>,
    parked: &Arc<Parked<S>>,
    s: Started<S>,
    limit: Duration,
) -> Result<Submission, DeviceError> {
    let (submission, completer) = match Submission::start(backend, counters.clone(), None) {
        Ok(x) => x,
        Err(e) => {
            // Parked, not dropped: the kernel may still use what the launch holds.
            let _ = finish(backend, pool, parked, s, Duration::ZERO);
            return Err(e);
        }
    };
    let job = Arc::new(Mutex::new(Some((s, completer))));
    let run = {
        let (job, pool, parked) = (job.clone(), pool.clone(), parked.clone());
        move || {
            let taken = job.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some((s, completer)) = taken {
                completer.complete(finish(backend, &pool, &parked, s, limit));
            }
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name(format!("launch-{name}"))
        .spawn(run)
    {
        // The waiter never ran: wait here instead (bounded by the limit), so nothing the kernel uses is
        // freed while it may run.
        log::warn!(
            "{backend}: spawning a launch's waiter thread: {e}; waiting on the caller's thread"
        );
        let taken = job.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((s, completer)) = taken {
            completer.complete(finish(backend, pool, parked, s, limit));
        }
    }
    Ok(submission)
}

/// A fresh anonymous mapping of at least `bytes` bytes (whole pages), for `Placement::ImportedHost`
/// buffers a backend allocates itself: its address, length, and the owner that keeps it mapped.
pub(crate) fn anonymous(
    backend: &'static str,
    bytes: usize,
) -> Result<(*mut u8, usize, Arc<dyn Send + Sync>), DeviceError> {
    let page = page_size();
    let len = bytes.div_ceil(page) * page;
    let mut map = memmap2::MmapMut::map_anon(len).map_err(|e| DeviceError::Run {
        backend,
        message: format!("mmap of {len} bytes: {e}"),
    })?;
    let ptr = map.as_mut_ptr();
    Ok((ptr, len, Arc::new(map)))
}

/// Checks that host memory to import is page-aligned, in address and length (what registration needs).
pub(crate) fn check_import(
    backend: &'static str,
    ptr: *mut u8,
    len: usize,
) -> Result<(), DeviceError> {
    let page = page_size();
    if ptr as usize % page != 0 || len % page != 0 || len == 0 {
        return Err(DeviceError::Run {
            backend,
            message: format!(
                "host memory at {ptr:p} ({len} bytes) is not aligned to the page size {page}"
            ),
        });
    }
    Ok(())
}

/// Copies `src` into the host mapping of `buf` from byte `at` (a buffer the host can reach).
pub(crate) fn host_write(
    backend: &'static str,
    buf: &DeviceBuffer,
    at: usize,
    src: &[u8],
) -> Result<(), DeviceError> {
    let p = host_range(backend, buf, at, src.len())?;
    // SAFETY: `p..p + src.len()` is inside the buffer's host mapping (checked by `host_range`), which lives
    // while `buf` does; the device's concurrent accesses, if any, are its own business (no launch is
    // expected to use the buffer while the host copies).
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), p, src.len()) };
    Ok(())
}

/// Copies from byte `at` of the host mapping of `buf` into `dst`.
pub(crate) fn host_read(
    backend: &'static str,
    buf: &DeviceBuffer,
    at: usize,
    dst: &mut [u8],
) -> Result<(), DeviceError> {
    let p = host_range(backend, buf, at, dst.len())?;
    // SAFETY: as in `host_write`.
    unsafe { std::ptr::copy_nonoverlapping(p, dst.as_mut_ptr(), dst.len()) };
    Ok(())
}

/// The host address of bytes `at..at + n` of `buf`, checked to be inside its host mapping.
fn host_range(
    backend: &'static str,
    buf: &DeviceBuffer,
    at: usize,
    n: usize,
) -> Result<*mut u8, DeviceError> {
    let p = buf.backend_object().host_ptr();
    match at.checked_add(n) {
        // SAFETY: `at` is inside the mapping (checked on this line).
        Some(end) if end <= buf.len() && !p.is_null() => Ok(unsafe { p.add(at) }),
        _ => Err(DeviceError::Run {
            backend,
            message: format!(
                "a copy of {n} bytes at {at} is outside a {}-byte host-reachable buffer",
                buf.len()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    struct Flag(Arc<AtomicBool>);
    impl Completion for Flag {
        fn ended(&self) -> Result<bool, String> {
            // Acquire: pairs with the test's release store.
            Ok(self.0.load(Ordering::Acquire))
        }
    }

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            // Relaxed: a test counter.
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn arguments_map_onto_kernel_parameters() {
        let layout = KernelLayout {
            buffers: 0,
            value_bytes: 5,
        };
        let no_buffer = |_: &DeviceBuffer| -> Result<Pointer, DeviceError> { unreachable!() };
        let no_ring = |_: *mut u8,
                       _: usize,
                       _: Arc<dyn Send + Sync>|
         -> Result<Pointer, DeviceError> { unreachable!() };
        let mut r = resolve(
            "test",
            &[KernelArg::Bytes(&[1, 2, 3, 4]), KernelArg::Bytes(&[9])],
            layout,
            no_buffer,
            no_ring,
        )
        .unwrap();
        assert_eq!(
            r.values,
            vec![Param::Value(vec![0x0403_0201], 4), Param::Value(vec![9], 1)]
        );
        assert!(r.keep.is_empty());
        let first = r.values[0].as_ptr().cast::<u8>();
        // SAFETY: the parameter holds 8 bytes at its pointer.
        assert_eq!(unsafe { *first.add(3) }, 4);
        let wrong = resolve(
            "test",
            &[KernelArg::Bytes(&[1])],
            layout,
            no_buffer,
            no_ring,
        );
        assert!(matches!(wrong, Err(DeviceError::Run { .. })));
    }

    #[test]
    fn grids_map_onto_blocks() {
        let g = |groups, group_size| geometry("test", Grid { groups, group_size }, 32, 1024);
        assert_eq!(g(3, 0).unwrap(), (3, 32));
        assert_eq!(g(2, 128).unwrap(), (2, 128));
        assert!(g(0, 0).is_err());
        assert!(g(1, 2048).is_err());
    }

    #[test]
    fn a_range_is_registered_once_while_it_lives() {
        let reg: Registry<u32> = Registry::default();
        let mut made = 0;
        let p = 0x1000 as *mut u8;
        let a = reg
            .get_or_register::<()>(p, 4096, || {
                made += 1;
                Ok(1)
            })
            .unwrap();
        let b = reg.get_or_register::<()>(p, 4096, || Ok(2)).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        assert_eq!(*reg.get_or_register::<()>(p, 4096, || Ok(3)).unwrap(), 3);
        assert_eq!(made, 1);
    }

    #[test]
    fn a_wait_is_bounded_and_sees_the_end() {
        let flag = Arc::new(AtomicBool::new(false));
        let c = Flag(flag.clone());
        let t = Instant::now();
        assert_eq!(wait(&c, t, Duration::from_millis(20)), Ok(Waited::TimedOut));
        assert!(t.elapsed() >= Duration::from_millis(20));
        assert!(t.elapsed() < Duration::from_secs(2));
        flag.store(true, Ordering::Release);
        assert!(matches!(
            wait(&c, Instant::now(), Duration::from_secs(1)),
            Ok(Waited::Done(_))
        ));
    }

    #[test]
    fn parked_launches_keep_what_they_use_until_they_end() {
        let flag = Arc::new(AtomicBool::new(false));
        let freed = Arc::new(AtomicUsize::new(0));
        let parked = Parked::new("test");
        parked.park(InFlight {
            completion: Flag(flag.clone()),
            keep: vec![Arc::new(Counted(freed.clone()))],
        });
        parked.reclaim();
        assert_eq!((parked.len(), freed.load(Ordering::Relaxed)), (1, 0));
        flag.store(true, Ordering::Release);
        parked.reclaim();
        assert_eq!((parked.len(), freed.load(Ordering::Relaxed)), (0, 1));
    }

    #[test]
    fn a_launch_still_running_at_close_is_leaked_not_freed() {
        let freed = Arc::new(AtomicUsize::new(0));
        let parked = Parked::new("test");
        parked.park(InFlight {
            completion: Flag(Arc::new(AtomicBool::new(false))),
            keep: vec![Arc::new(Counted(freed.clone()))],
        });
        drop(parked);
        assert_eq!(freed.load(Ordering::Relaxed), 0);
    }
}
