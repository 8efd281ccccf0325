//! Caller-supplied compute shaders on the backend's Vulkan device: for experiments whose shaders are not
//! built-in programs (memory placement probes, an RPC client) and need their own buffers.
//!
//! - [`VulkanDevice::buffer`] makes a storage buffer in a chosen [`Placement`] (device-local, driver-allocated
//!   host-visible, or host memory imported with `VK_EXT_external_memory_host`, as the ring arena is);
//!   [`VulkanDevice::import_host_memory`] imports memory the caller owns.
//! - [`VulkanDevice::kernel`] builds a pipeline from embedded SPIR-V with `bindings` storage buffers (set 0,
//!   bindings `0..bindings`) and up to 128 bytes of push constants.
//! - [`VulkanDevice::dispatch`] binds each binding to a [`Binding`] (a [`KernelBuffer`], or the arena of a
//!   [`DeviceRing`], imported for the dispatch), records and submits one dispatch and waits at most `limit`:
//!   past it, [`DeviceError::Timeout`], and the dispatch's objects — with the kernel, the buffers and the arena
//!   it uses — are parked until its fence signals, exactly as a built-in program's late dispatch is.
//!
//! A kernel, and a buffer, hold the device's context alive; a dispatch holds what it uses alive.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{raw, run_error, VulkanDevice};
use crate::backend::DeviceError;
use crate::protocol::DeviceRing;

/// Where a [`KernelBuffer`]'s memory lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A `DEVICE_LOCAL` memory type, preferring one that is not host-visible (a GPU's own memory). The host
    /// cannot reach it.
    DeviceLocal,
    /// A `HOST_VISIBLE | HOST_COHERENT` memory type allocated by the driver, mapped for the host.
    HostVisible,
    /// Page-aligned host memory (`mmap`) imported into a `HOST_COHERENT` type: how device rings give the
    /// device their arena.
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

/// A storage buffer for [`VulkanDevice::dispatch`]. Clones share the buffer; it is freed when the last clone
/// and the last dispatch using it are gone.
#[derive(Clone)]
pub struct KernelBuffer {
    inner: Arc<raw::Buffer>,
    placement: Placement,
}

impl std::fmt::Debug for KernelBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelBuffer")
            .field("placement", &self.placement)
            .field("len", &self.inner.len)
            .field("flags", &self.inner.flags)
            .finish()
    }
}

impl KernelBuffer {
    /// Bytes (an imported buffer's size is rounded up to the import alignment).
    pub fn len(&self) -> usize {
        self.inner.len
    }

    /// Whether the buffer has no bytes (never: sizes are at least 4 bytes).
    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// Where the memory lives.
    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// The memory type's property flags, e.g. `DEVICE_LOCAL | HOST_VISIBLE | HOST_COHERENT`.
    pub fn memory_flags(&self) -> String {
        format!("{:?}", self.inner.flags)
    }

    /// Whether the host can read and write the bytes ([`Placement::HostVisible`], [`Placement::ImportedHost`]).
    pub fn host_accessible(&self) -> bool {
        !self.inner.host.is_null()
    }

    fn word(&self, i: usize) -> Option<&AtomicU32> {
        let p = self.inner.host;
        if p.is_null() || (i + 1) * 4 > self.inner.len {
            return None;
        }
        // SAFETY: `p` points to `len` bytes of host-coherent memory that live as long as `self.inner`; it is
        // page- (import) or map-aligned, so word `i` (in bounds, checked) is 4-byte aligned; the device touches
        // the memory concurrently only through its own atomics or plain stores, and the host only through this
        // atomic, so there is no non-atomic host access to race with.
        Some(unsafe { &*(p.add(4 * i) as *const AtomicU32) })
    }

    /// Word `i` as the host sees it (acquire), or `None` if the host cannot reach the buffer or `i` is past
    /// the end.
    pub fn load_u32(&self, i: usize) -> Option<u32> {
        self.word(i).map(|w| w.load(Ordering::Acquire))
    }

    /// Stores word `i` (release); `false` if the host cannot reach the buffer or `i` is past the end.
    pub fn store_u32(&self, i: usize, v: u32) -> bool {
        self.word(i)
            .map(|w| w.store(v, Ordering::Release))
            .is_some()
    }
}

/// A caller-supplied compute shader, built by [`VulkanDevice::kernel`].
pub struct Kernel {
    inner: Arc<raw::Kernel>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("name", &self.inner.name)
            .field("bindings", &self.inner.bindings)
            .finish()
    }
}

/// What a kernel's binding is bound to in [`VulkanDevice::dispatch`].
#[derive(Clone, Copy)]
pub enum Binding<'a> {
    /// The whole arena of a device ring (imported for the dispatch, kept mapped until it ends). Every
    /// `RingArena` binding of one dispatch must name the same ring.
    RingArena(&'a DeviceRing),
    /// A caller's buffer.
    Buffer(&'a KernelBuffer),
}

impl VulkanDevice {
    /// A storage buffer of `bytes` bytes in `placement`, for [`VulkanDevice::dispatch`].
    pub fn buffer(&self, placement: Placement, bytes: usize) -> Result<KernelBuffer, DeviceError> {
        let kind = match placement {
            Placement::DeviceLocal => raw::BufferKind::DeviceLocal,
            Placement::HostVisible => raw::BufferKind::HostVisible,
            Placement::ImportedHost => raw::BufferKind::Imported,
        };
        let b = raw::Buffer::new(&self.ctx, kind, bytes)
            .map_err(|e| run_error(format!("{} buffer: {e}", placement.name())))?;
        Ok(KernelBuffer {
            inner: Arc::new(b),
            placement,
        })
    }

    /// A storage buffer over host memory the caller owns ([`Placement::ImportedHost`]), e.g. an RPC mailbox
    /// arena; `owner` is kept alive as long as the import (and any dispatch using it) exists.
    ///
    /// # Safety
    /// `ptr` must be a live, writable mapping of `len` bytes, aligned to the device's
    /// `minImportedHostPointerAlignment` (page alignment suffices on every device seen so far) with `len` a
    /// multiple of it, that stays mapped for as long as `owner` lives.
    pub unsafe fn import_host_memory(
        &self,
        ptr: *mut u8,
        len: usize,
        owner: Arc<dyn Send + Sync>,
    ) -> Result<KernelBuffer, DeviceError> {
        // SAFETY: the caller's contract.
        let b = unsafe { raw::Buffer::import(&self.ctx, ptr, len, owner) }
            .map_err(|e| run_error(format!("importing host memory: {e}")))?;
        Ok(KernelBuffer {
            inner: Arc::new(b),
            placement: Placement::ImportedHost,
        })
    }

    /// A compute pipeline for `spirv` (entry point `main`) with `bindings` storage buffers at set 0, bindings
    /// `0..bindings`, and a 128-byte push-constant range. Specialization constant 0 is the subgroup size (for
    /// shaders with `local_size_x_id = 0`; a fixed `local_size_x` is kept).
    ///
    /// # Safety
    /// `spirv` must be a valid SPIR-V compute module for Vulkan 1.2 whose interface matches: only storage
    /// buffers at set 0 bindings `0..bindings`, push constants within 128 bytes. Like any shader, it must not
    /// access its buffers out of bounds (the device is created without robust buffer access).
    pub unsafe fn kernel(
        &self,
        name: &str,
        spirv: &[u8],
        bindings: u32,
    ) -> Result<Kernel, DeviceError> {
        // SAFETY: the caller's contract.
        let k = unsafe { raw::Kernel::new(&self.ctx, name, spirv, bindings) }.map_err(run_error)?;
        Ok(Kernel { inner: Arc::new(k) })
    }

    /// Runs `groups` workgroups of `kernel` once, binding `bindings[i]` at binding `i`, with `push` (at most
    /// 128 bytes, zero-padded) as push constants, and waits at most `limit`. Returns the time from submission
    /// to the fence seen signalled. Over the limit: [`DeviceError::Timeout`]; the dispatch's objects and what
    /// it uses stay alive (parked) until it ends.
    pub fn dispatch(
        &self,
        kernel: &Kernel,
        bindings: &[Binding<'_>],
        push: &[u8],
        groups: u32,
        limit: Duration,
    ) -> Result<Duration, DeviceError> {
        if push.len() > 128 {
            return Err(run_error(format!(
                "{} bytes of push constants; at most 128",
                push.len()
            )));
        }
        let mut push_bytes = [0u8; 128];
        push_bytes[..push.len()].copy_from_slice(push);
        let mut ring: Option<&DeviceRing> = None;
        let mut binds = Vec::with_capacity(bindings.len());
        for b in bindings {
            match *b {
                Binding::RingArena(r) => {
                    if ring.is_some_and(|x| !std::ptr::eq(x, r)) {
                        return Err(run_error(
                            "every RingArena binding of a dispatch must name the same ring",
                        ));
                    }
                    ring = Some(r);
                    binds.push(None);
                }
                Binding::Buffer(k) => binds.push(Some(k.inner.clone())),
            }
        }
        self.ctx.reclaim_orphans();
        let mut run = raw::Run::kernel(
            &self.ctx,
            &kernel.inner,
            ring.map(|r| r.arena_keepalive()),
            &binds,
            &push_bytes,
            groups,
        )
        .map_err(run_error)?;
        let t = Instant::now();
        match run
            .dispatch(limit.max(Duration::from_millis(1)))
            .map_err(run_error)?
        {
            raw::Waited::Done => Ok(t.elapsed()),
            // Dropping `run` parks it (with the kernel, the buffers and the arena) until its fence signals.
            raw::Waited::TimedOut => Err(DeviceError::Timeout {
                backend: "vulkan",
                limit,
            }),
        }
    }
}
