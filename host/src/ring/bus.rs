//! Bus-traffic instrumentation (PROTOCOL.md §1): lanes reach ring memory only through accessor types per memory
//! class, and every access is counted in lane-private counters.
//!
//! - [`HostShared`]: a word of host-shared memory (the arena). Loads and stores only: the type has **no
//!   read-modify-write methods**, so the rule "no RMW on host-shared memory" holds by construction.
//! - [`DeviceLocal`]: a word of the device-local block, with the RMWs the protocol needs.
//!
//! Each access is counted per region class (a [`RegionClass`]: for a ring, [`RingRegion`]) as an RMW, a
//! *waited* load (a load whose value the lane waits on or polls — every poll iteration counts once, a PCIe
//! round trip each on a discrete GPU), another load, or a store. The counters ([`BusMeter`]) are plain cells
//! owned by one lane: counting costs no atomic and no allocation. [`BusCounters`] is their snapshot, summed
//! over lanes and divided per operation by the experiments.
//!
//! The types are generic over the region class, so any shared-memory protocol of the crate can count its own
//! regions the same way.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use super::layout::{Cqe, Sqe};
use super::view::RingView;

/// The most region classes a [`RegionClass`] may have.
pub const MAX_CLASSES: usize = 8;

/// A set of memory regions counted separately.
pub trait RegionClass: Copy + fmt::Debug + PartialEq + Eq + 'static {
    /// Every class, in index order.
    const ALL: &'static [Self];
    /// This class's index (< [`MAX_CLASSES`]).
    fn index(self) -> usize;
    /// Short name, for reports.
    fn name(self) -> &'static str;
    /// Whether the region is host-shared memory (read-modify-writes forbidden).
    fn host_shared(self) -> bool;
}

/// A ring's memory regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RingRegion {
    /// Host-shared: the kernel's ring header words (SQ head/tail/flags, CQ head/tail).
    Kernel,
    /// Host-shared: the SQE array.
    Sqe,
    /// Host-shared: the CQE array.
    Cqe,
    /// Host-shared: staging lines and the fixed-buffer region.
    Staging,
    /// Host-shared: the `SharedControl` block (print settings and mirrors).
    Mirror,
    /// Device-local: `LocalControl`, completion slots, lane words.
    Local,
}

impl RegionClass for RingRegion {
    const ALL: &'static [Self] = &[
        RingRegion::Kernel,
        RingRegion::Sqe,
        RingRegion::Cqe,
        RingRegion::Staging,
        RingRegion::Mirror,
        RingRegion::Local,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            RingRegion::Kernel => "kernel",
            RingRegion::Sqe => "sqe",
            RingRegion::Cqe => "cqe",
            RingRegion::Staging => "staging",
            RingRegion::Mirror => "mirror",
            RingRegion::Local => "local",
        }
    }

    fn host_shared(self) -> bool {
        self != RingRegion::Local
    }
}

/// Accesses of one region class.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AccessCounts {
    /// Read-modify-writes (CAS, fetch-add, fetch-or, …), failed CAS attempts included.
    pub rmw: u64,
    /// Loads whose value the lane waited on (each poll iteration once).
    pub waited_loads: u64,
    /// Other loads.
    pub loads: u64,
    /// Stores (an SQE or a staging line written is one store).
    pub stores: u64,
}

impl AccessCounts {
    fn add(&mut self, o: &AccessCounts) {
        self.rmw += o.rmw;
        self.waited_loads += o.waited_loads;
        self.loads += o.loads;
        self.stores += o.stores;
    }
}

/// Accesses per region class: a snapshot of one or more [`BusMeter`]s.
pub struct BusCounters<R> {
    counts: [AccessCounts; MAX_CLASSES],
    _r: PhantomData<fn() -> R>,
}

impl<R> Clone for BusCounters<R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for BusCounters<R> {}
impl<R> PartialEq for BusCounters<R> {
    fn eq(&self, o: &Self) -> bool {
        self.counts == o.counts
    }
}
impl<R> Eq for BusCounters<R> {}
impl<R> Default for BusCounters<R> {
    fn default() -> Self {
        BusCounters {
            counts: [AccessCounts::default(); MAX_CLASSES],
            _r: PhantomData,
        }
    }
}

impl<R: RegionClass> fmt::Debug for BusCounters<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for &r in R::ALL {
            m.entry(&r.name(), &self.get(r));
        }
        m.finish()
    }
}

impl<R: RegionClass> BusCounters<R> {
    /// The accesses of class `r`.
    pub fn get(&self, r: R) -> AccessCounts {
        self.counts.get(r.index()).copied().unwrap_or_default()
    }

    /// The accesses of every host-shared class together.
    pub fn host_shared(&self) -> AccessCounts {
        self.sum(|r| r.host_shared())
    }

    /// The accesses of every device-local class together.
    pub fn device_local(&self) -> AccessCounts {
        self.sum(|r| !r.host_shared())
    }

    fn sum(&self, which: impl Fn(R) -> bool) -> AccessCounts {
        let mut t = AccessCounts::default();
        for &r in R::ALL.iter().filter(|&&r| which(r)) {
            t.add(&self.get(r));
        }
        t
    }

    /// Adds `o`'s counts.
    pub fn add(&mut self, o: &BusCounters<R>) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            a.add(b);
        }
    }

    /// Subtracts an earlier snapshot `o` (wrapping), leaving the accesses made since.
    pub fn sub(&mut self, o: &BusCounters<R>) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            a.rmw = a.rmw.wrapping_sub(b.rmw);
            a.waited_loads = a.waited_loads.wrapping_sub(b.waited_loads);
            a.loads = a.loads.wrapping_sub(b.loads);
            a.stores = a.stores.wrapping_sub(b.stores);
        }
    }

    /// The sum of many snapshots.
    pub fn total<'b>(all: impl IntoIterator<Item = &'b BusCounters<R>>) -> BusCounters<R> {
        let mut t = BusCounters::default();
        for c in all {
            t.add(c);
        }
        t
    }

    /// The counts per operation, for reports: (`host_rmw`, `host_waited_loads`, `host_loads`, `host_stores`,
    /// `local_rmw`, `local_loads` (waited and other)), each divided by `ops` (0 when `ops` is 0).
    pub fn per_op(&self, ops: u64) -> PerOp {
        let h = self.host_shared();
        let l = self.device_local();
        let d = |x: u64| if ops == 0 { 0.0 } else { x as f64 / ops as f64 };
        PerOp {
            host_rmw: d(h.rmw),
            host_waited_loads: d(h.waited_loads),
            host_loads: d(h.loads),
            host_stores: d(h.stores),
            local_rmw: d(l.rmw),
            local_loads: d(l.waited_loads + l.loads),
            local_stores: d(l.stores),
        }
    }
}

/// Bus accesses per operation ([`BusCounters::per_op`]).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct PerOp {
    /// RMWs on host-shared memory (the protocol makes none).
    pub host_rmw: f64,
    /// Waited loads of host-shared memory (a bus round trip each on a discrete GPU).
    pub host_waited_loads: f64,
    /// Other loads of host-shared memory.
    pub host_loads: f64,
    /// Stores to host-shared memory.
    pub host_stores: f64,
    /// RMWs on device-local memory.
    pub local_rmw: f64,
    /// Loads of device-local memory.
    pub local_loads: f64,
    /// Stores to device-local memory.
    pub local_stores: f64,
}

impl fmt::Display for PerOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host rmw {:.2} waited {:.2} loads {:.2} stores {:.2}; local rmw {:.2} loads {:.2} stores {:.2}",
            self.host_rmw,
            self.host_waited_loads,
            self.host_loads,
            self.host_stores,
            self.local_rmw,
            self.local_loads,
            self.local_stores
        )
    }
}

impl PerOp {
    /// The figures as JSON object members (no braces), e.g. `"host_rmw_per_op":0.00,…`.
    pub fn json_members(&self) -> String {
        format!(
            "\"host_rmw_per_op\":{:.3},\"host_waited_loads_per_op\":{:.3},\"host_loads_per_op\":{:.3},\
             \"host_stores_per_op\":{:.3},\"local_rmw_per_op\":{:.3},\"local_loads_per_op\":{:.3},\
             \"local_stores_per_op\":{:.3}",
            self.host_rmw,
            self.host_waited_loads,
            self.host_loads,
            self.host_stores,
            self.local_rmw,
            self.local_loads,
            self.local_stores
        )
    }
}

/// One lane's counters: plain cells, touched only by the lane that owns them (not `Sync`).
pub struct BusMeter<R> {
    cells: [[Cell<u64>; 4]; MAX_CLASSES],
    _r: PhantomData<fn() -> R>,
}

impl<R> Default for BusMeter<R> {
    fn default() -> Self {
        BusMeter {
            cells: Default::default(),
            _r: PhantomData,
        }
    }
}

impl<R: RegionClass> fmt::Debug for BusMeter<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.snapshot().fmt(f)
    }
}

const RMW: usize = 0;
const WAITED: usize = 1;
const LOAD: usize = 2;
const STORE: usize = 3;

impl<R: RegionClass> BusMeter<R> {
    #[inline]
    fn bump(&self, r: R, kind: usize) {
        if let Some(c) = self.cells.get(r.index()).and_then(|row| row.get(kind)) {
            c.set(c.get().wrapping_add(1));
        }
    }

    /// Counts an RMW on `r`.
    #[inline]
    pub fn rmw(&self, r: R) {
        self.bump(r, RMW)
    }

    /// Counts a waited load of `r`.
    #[inline]
    pub fn waited_load(&self, r: R) {
        self.bump(r, WAITED)
    }

    /// Counts a load of `r`.
    #[inline]
    pub fn load(&self, r: R) {
        self.bump(r, LOAD)
    }

    /// Counts a store to `r`.
    #[inline]
    pub fn store(&self, r: R) {
        self.bump(r, STORE)
    }

    /// The counts so far.
    pub fn snapshot(&self) -> BusCounters<R> {
        let mut c = BusCounters::default();
        for (out, row) in c.counts.iter_mut().zip(self.cells.iter()) {
            *out = AccessCounts {
                rmw: row[RMW].get(),
                waited_loads: row[WAITED].get(),
                loads: row[LOAD].get(),
                stores: row[STORE].get(),
            };
        }
        c
    }
}

/// An atomic word type the accessors wrap.
pub trait AtomicWord {
    /// Its value type.
    type V: Copy;
    /// `load`.
    fn load_(&self, o: Ordering) -> Self::V;
    /// `store`.
    fn store_(&self, v: Self::V, o: Ordering);
}

/// An atomic word with the RMWs device-local accessors offer.
pub trait AtomicRmw: AtomicWord {
    /// `fetch_add` (wrapping).
    fn fetch_add_(&self, v: Self::V, o: Ordering) -> Self::V;
    /// `fetch_sub` (wrapping).
    fn fetch_sub_(&self, v: Self::V, o: Ordering) -> Self::V;
    /// `fetch_or`.
    fn fetch_or_(&self, v: Self::V, o: Ordering) -> Self::V;
    /// `fetch_and`.
    fn fetch_and_(&self, v: Self::V, o: Ordering) -> Self::V;
    /// `compare_exchange`.
    fn cas_(
        &self,
        cur: Self::V,
        new: Self::V,
        s: Ordering,
        f: Ordering,
    ) -> Result<Self::V, Self::V>;
    /// `compare_exchange_weak`.
    fn cas_weak_(
        &self,
        cur: Self::V,
        new: Self::V,
        s: Ordering,
        f: Ordering,
    ) -> Result<Self::V, Self::V>;
}

macro_rules! atomic_word {
    ($a:ty, $v:ty) => {
        impl AtomicWord for $a {
            type V = $v;
            #[inline]
            fn load_(&self, o: Ordering) -> $v {
                self.load(o)
            }
            #[inline]
            fn store_(&self, v: $v, o: Ordering) {
                self.store(v, o)
            }
        }
        impl AtomicRmw for $a {
            #[inline]
            fn fetch_add_(&self, v: $v, o: Ordering) -> $v {
                self.fetch_add(v, o)
            }
            #[inline]
            fn fetch_sub_(&self, v: $v, o: Ordering) -> $v {
                self.fetch_sub(v, o)
            }
            #[inline]
            fn fetch_or_(&self, v: $v, o: Ordering) -> $v {
                self.fetch_or(v, o)
            }
            #[inline]
            fn fetch_and_(&self, v: $v, o: Ordering) -> $v {
                self.fetch_and(v, o)
            }
            #[inline]
            fn cas_(&self, c: $v, n: $v, s: Ordering, f: Ordering) -> Result<$v, $v> {
                self.compare_exchange(c, n, s, f)
            }
            #[inline]
            fn cas_weak_(&self, c: $v, n: $v, s: Ordering, f: Ordering) -> Result<$v, $v> {
                self.compare_exchange_weak(c, n, s, f)
            }
        }
    };
}
atomic_word!(AtomicU32, u32);
atomic_word!(AtomicU64, u64);
atomic_word!(AtomicI32, i32);

/// A host-shared word: loads and stores, counted; no RMW exists on this type.
pub struct HostShared<'a, A, R: RegionClass> {
    w: &'a A,
    class: R,
    meter: &'a BusMeter<R>,
}

impl<'a, A: AtomicWord, R: RegionClass> HostShared<'a, A, R> {
    /// Wraps `w`, a word of host-shared region `class`, counting into `meter`.
    pub fn new(w: &'a A, class: R, meter: &'a BusMeter<R>) -> Self {
        debug_assert!(class.host_shared());
        HostShared { w, class, meter }
    }

    /// A load whose value the caller acts on but does not wait for.
    #[inline]
    pub fn load(&self, o: Ordering) -> A::V {
        self.meter.load(self.class);
        self.w.load_(o)
    }

    /// A load the caller waits on (one poll iteration).
    #[inline]
    pub fn load_waited(&self, o: Ordering) -> A::V {
        self.meter.waited_load(self.class);
        self.w.load_(o)
    }

    /// A store (the caller is the word's one writer at this time, PROTOCOL.md §1).
    #[inline]
    pub fn store(&self, v: A::V, o: Ordering) {
        self.meter.store(self.class);
        self.w.store_(v, o)
    }
}

/// A device-local word: loads, stores and RMWs, counted.
pub struct DeviceLocal<'a, A, R: RegionClass> {
    w: &'a A,
    class: R,
    meter: &'a BusMeter<R>,
}

impl<'a, A: AtomicRmw, R: RegionClass> DeviceLocal<'a, A, R> {
    /// Wraps `w`, a word of device-local region `class`, counting into `meter`.
    pub fn new(w: &'a A, class: R, meter: &'a BusMeter<R>) -> Self {
        debug_assert!(!class.host_shared());
        DeviceLocal { w, class, meter }
    }

    /// A load whose value the caller acts on but does not wait for.
    #[inline]
    pub fn load(&self, o: Ordering) -> A::V {
        self.meter.load(self.class);
        self.w.load_(o)
    }

    /// A load the caller waits on (one poll iteration).
    #[inline]
    pub fn load_waited(&self, o: Ordering) -> A::V {
        self.meter.waited_load(self.class);
        self.w.load_(o)
    }

    /// A store.
    #[inline]
    pub fn store(&self, v: A::V, o: Ordering) {
        self.meter.store(self.class);
        self.w.store_(v, o)
    }

    /// `fetch_add`.
    #[inline]
    pub fn fetch_add(&self, v: A::V, o: Ordering) -> A::V {
        self.meter.rmw(self.class);
        self.w.fetch_add_(v, o)
    }

    /// `fetch_sub`.
    #[inline]
    pub fn fetch_sub(&self, v: A::V, o: Ordering) -> A::V {
        self.meter.rmw(self.class);
        self.w.fetch_sub_(v, o)
    }

    /// `fetch_or`.
    #[inline]
    pub fn fetch_or(&self, v: A::V, o: Ordering) -> A::V {
        self.meter.rmw(self.class);
        self.w.fetch_or_(v, o)
    }

    /// `fetch_and`.
    #[inline]
    pub fn fetch_and(&self, v: A::V, o: Ordering) -> A::V {
        self.meter.rmw(self.class);
        self.w.fetch_and_(v, o)
    }

    /// `compare_exchange`.
    #[inline]
    pub fn compare_exchange(
        &self,
        cur: A::V,
        new: A::V,
        s: Ordering,
        f: Ordering,
    ) -> Result<A::V, A::V> {
        self.meter.rmw(self.class);
        self.w.cas_(cur, new, s, f)
    }

    /// `compare_exchange_weak`.
    #[inline]
    pub fn compare_exchange_weak(
        &self,
        cur: A::V,
        new: A::V,
        s: Ordering,
        f: Ordering,
    ) -> Result<A::V, A::V> {
        self.meter.rmw(self.class);
        self.w.cas_weak_(cur, new, s, f)
    }
}

/// A ring's memory as one lane reaches it: every word through a counted accessor of its class. `Copy`; made
/// per call from the lane's view and meter.
#[derive(Clone, Copy)]
pub struct RingBus<'a, 'm> {
    view: RingView<'a>,
    meter: &'m BusMeter<RingRegion>,
}

/// The bus counters of every device lane of this process whose [`crate::protocol::Lane`] has been dropped
/// (the host's own lane excluded): what experiments read before and after a run and divide by its operations.
/// Lanes add their counts once, when dropped; nothing is added per operation.
pub fn ring_totals() -> BusCounters<RingRegion> {
    let mut c = BusCounters::default();
    for (out, row) in c.counts.iter_mut().zip(RING_TOTALS.iter()) {
        *out = AccessCounts {
            rmw: row[RMW].load(Ordering::Relaxed),
            waited_loads: row[WAITED].load(Ordering::Relaxed),
            loads: row[LOAD].load(Ordering::Relaxed),
            stores: row[STORE].load(Ordering::Relaxed),
        };
    }
    c
}

/// Adds one lane's counts to [`ring_totals`].
pub(crate) fn add_to_ring_totals(c: &BusCounters<RingRegion>) {
    for (row, a) in RING_TOTALS.iter().zip(c.counts.iter()) {
        // Relaxed: statistics, read after the lanes have been joined.
        row[RMW].fetch_add(a.rmw, Ordering::Relaxed);
        row[WAITED].fetch_add(a.waited_loads, Ordering::Relaxed);
        row[LOAD].fetch_add(a.loads, Ordering::Relaxed);
        row[STORE].fetch_add(a.stores, Ordering::Relaxed);
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO_ROW: [AtomicU64; 4] = [ZERO; 4];
static RING_TOTALS: [[AtomicU64; 4]; MAX_CLASSES] = [ZERO_ROW; MAX_CLASSES];

/// A counted host-shared ring word.
pub type Shared<'m, A> = HostShared<'m, A, RingRegion>;
/// A counted device-local ring word.
pub type Local<'m, A> = DeviceLocal<'m, A, RingRegion>;

impl<'a: 'm, 'm> RingBus<'a, 'm> {
    /// The bus of `view`, counting into `meter`.
    pub fn new(view: RingView<'a>, meter: &'m BusMeter<RingRegion>) -> Self {
        RingBus { view, meter }
    }

    /// The view underneath (for offsets and the layout).
    #[inline]
    pub fn view(&self) -> &RingView<'a> {
        &self.view
    }

    /// The meter.
    #[inline]
    pub fn meter(&self) -> &'m BusMeter<RingRegion> {
        self.meter
    }

    /// A kernel ring word at arena offset `off` (host-shared).
    #[inline]
    pub fn kernel(&self, off: u32) -> Shared<'m, AtomicU32> {
        HostShared::new(self.view.u32_at(off), RingRegion::Kernel, self.meter)
    }

    /// A `SharedControl` word (`shared_off!(field)`, host-shared).
    #[inline]
    pub fn mirror(&self, field_off: u32) -> Shared<'m, AtomicU32> {
        HostShared::new(
            self.view.shared32(field_off),
            RingRegion::Mirror,
            self.meter,
        )
    }

    /// A signed `SharedControl` word.
    #[inline]
    pub fn mirror_i32(&self, field_off: u32) -> Shared<'m, AtomicI32> {
        HostShared::new(
            self.view.shared_i32(field_off),
            RingRegion::Mirror,
            self.meter,
        )
    }

    /// A 64-bit `SharedControl` word.
    #[inline]
    pub fn mirror64(&self, field_off: u32) -> Shared<'m, AtomicU64> {
        HostShared::new(
            self.view.shared64(field_off),
            RingRegion::Mirror,
            self.meter,
        )
    }

    /// A device-local word (`local_off!(field)` for a `LocalControl` field).
    #[inline]
    pub fn local(&self, off: u32) -> Local<'m, AtomicU32> {
        DeviceLocal::new(self.view.local32(off), RingRegion::Local, self.meter)
    }

    /// A signed device-local word.
    #[inline]
    pub fn local_i32(&self, off: u32) -> Local<'m, AtomicI32> {
        DeviceLocal::new(self.view.local_i32(off), RingRegion::Local, self.meter)
    }

    /// A 64-bit device-local word.
    #[inline]
    pub fn local64(&self, off: u32) -> Local<'m, AtomicU64> {
        DeviceLocal::new(self.view.local64(off), RingRegion::Local, self.meter)
    }

    /// Completion slot `i`'s words (device-local): (state, result, flags, owner).
    #[inline]
    pub fn slot(
        &self,
        i: u32,
    ) -> (
        Local<'m, AtomicU32>,
        Local<'m, AtomicI32>,
        Local<'m, AtomicU32>,
        Local<'m, AtomicU32>,
    ) {
        let (s, r, f, o) = self.view.slot(i);
        let m = self.meter;
        (
            DeviceLocal::new(s, RingRegion::Local, m),
            DeviceLocal::new(r, RingRegion::Local, m),
            DeviceLocal::new(f, RingRegion::Local, m),
            DeviceLocal::new(o, RingRegion::Local, m),
        )
    }

    /// Lane word `line` of `lane` (device-local).
    #[inline]
    pub fn lane_word(&self, lane: u32, line: u32) -> Local<'m, AtomicU32> {
        DeviceLocal::new(
            self.view.lane_word(lane, line),
            RingRegion::Local,
            self.meter,
        )
    }

    /// Writes SQE `index` (one store; see [`RingView::write_sqe`] for who may).
    #[inline]
    pub fn write_sqe(&self, index: u32, sqe: &Sqe) {
        self.meter.store(RingRegion::Sqe);
        self.view.write_sqe(index, sqe)
    }

    /// Hints that SQE `index` is written next ([`RingView::prefetch_sqe`]). Not an access: nothing is counted.
    #[inline]
    pub fn prefetch_sqe(&self, index: u32) {
        self.view.prefetch_sqe(index)
    }

    /// Hints that SQE `index`, filled, is read next by the kernel ([`RingView::demote_sqe`]). Not an
    /// access: nothing is counted.
    #[inline]
    pub fn demote_sqe(&self, index: u32) {
        self.view.demote_sqe(index)
    }

    /// Reads CQE `index` (one load; see [`RingView::read_cqe`]).
    #[inline]
    pub fn read_cqe(&self, index: u32) -> Cqe {
        self.meter.load(RingRegion::Cqe);
        self.view.read_cqe(index)
    }

    /// Copies bytes into the staging or fixed region (one store; see [`RingView::write_bytes`]).
    #[inline]
    pub fn write_staging(&self, off: u32, bytes: &[u8]) {
        self.meter.store(RingRegion::Staging);
        self.view.write_bytes(off, bytes)
    }

    /// Copies bytes out of the staging or fixed region (one load; see [`RingView::read_bytes`]).
    #[inline]
    pub fn read_staging(&self, off: u32, out: &mut [u8]) {
        self.meter.load(RingRegion::Staging);
        self.view.read_bytes(off, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_by_class() {
        let m = BusMeter::<RingRegion>::default();
        let w = AtomicU32::new(0);
        let l = DeviceLocal::new(&w, RingRegion::Local, &m);
        l.fetch_add(1, Ordering::Relaxed);
        let _ = l.compare_exchange(0, 1, Ordering::Relaxed, Ordering::Relaxed);
        let h = HostShared::new(&w, RingRegion::Kernel, &m);
        h.store(3, Ordering::Release);
        h.load_waited(Ordering::Acquire);
        let c = m.snapshot();
        assert_eq!(c.device_local().rmw, 2);
        assert_eq!(c.host_shared().rmw, 0);
        assert_eq!(c.get(RingRegion::Kernel).stores, 1);
        assert_eq!(c.get(RingRegion::Kernel).waited_loads, 1);
        let p = BusCounters::total([&c, &c]).per_op(2);
        assert_eq!(p.local_rmw, 2.0);
        assert!(p.json_members().contains("\"host_rmw_per_op\":0.000"));
    }
}
