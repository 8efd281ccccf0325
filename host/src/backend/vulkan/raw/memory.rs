//! Device memory: memory-type choice, host memory imported with `VK_EXT_external_memory_host`, driver
//! allocations, and the storage [`Buffer`]s caller-supplied kernels use.

use std::ffi::c_void;
use std::sync::Arc;

use ash::vk;

use super::context::Context;
use crate::backend::vulkan::error::VkError;

impl Context {
    /// A memory type allowed by `bits` with every flag of `want`, preferring one without any of `avoid`.
    pub(crate) fn memory_type_pref(
        &self,
        bits: u32,
        want: vk::MemoryPropertyFlags,
        avoid: vk::MemoryPropertyFlags,
    ) -> Option<u32> {
        let ok = |i: u32| {
            bits & (1 << i) != 0
                && self.mem_props.memory_types[i as usize]
                    .property_flags
                    .contains(want)
        };
        let flags = |i: u32| self.mem_props.memory_types[i as usize].property_flags;
        (0..self.mem_props.memory_type_count)
            .find(|&i| ok(i) && !flags(i).intersects(avoid))
            .or_else(|| (0..self.mem_props.memory_type_count).find(|&i| ok(i)))
    }

    pub(crate) fn memory_flags(&self, mt: u32) -> vk::MemoryPropertyFlags {
        self.mem_props.memory_types[mt as usize].property_flags
    }

    /// A storage buffer over host memory, imported with `VK_EXT_external_memory_host` into a HOST_COHERENT
    /// memory type: (buffer, memory, the type's flags). On error nothing is left behind.
    ///
    /// # Safety
    /// `base` must be a live, writable host allocation of `len` bytes that stays valid until the returned
    /// memory is freed (and, if a dispatch using it outlives its time limit, until the parked run is freed).
    pub(crate) unsafe fn import_host(
        &self,
        base: *mut u8,
        len: usize,
    ) -> Result<(vk::Buffer, vk::DeviceMemory, vk::MemoryPropertyFlags), VkError> {
        let d = &self.device;
        let align = self.min_import_alignment as usize;
        if base as usize % align != 0 || len % align != 0 || len == 0 {
            return Err(VkError::Misaligned {
                ptr: base as usize,
                len,
                align,
            });
        }
        let handle = vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT;
        let mut ext_info = vk::ExternalMemoryBufferCreateInfo::default().handle_types(handle);
        let binfo = vk::BufferCreateInfo::default()
            .size(len as u64)
            .usage(vk::BufferUsageFlags::STORAGE_BUFFER)
            .sharing_mode(vk::SharingMode::EXCLUSIVE)
            .push_next(&mut ext_info);
        // SAFETY: live device; the info chain lives across the call.
        let buffer = unsafe { d.create_buffer(&binfo, None) }
            .map_err(VkError::call("vkCreateBuffer(imported)"))?;
        let fail = |e: VkError| {
            // SAFETY: the buffer was created above, is bound to nothing in use and never submitted.
            unsafe { d.destroy_buffer(buffer, None) };
            e
        };
        let mut hp = vk::MemoryHostPointerPropertiesEXT::default();
        // SAFETY: `base` is a live host allocation of `len` bytes, aligned as checked above (the caller's
        // contract).
        let r = unsafe {
            (self.host_mem.fp().get_memory_host_pointer_properties_ext)(
                d.handle(),
                handle,
                base as *const c_void,
                &mut hp,
            )
        };
        if r != vk::Result::SUCCESS {
            return Err(fail(VkError::Call {
                call: "vkGetMemoryHostPointerPropertiesEXT",
                result: r,
            }));
        }
        // SAFETY: live buffer.
        let req = unsafe { d.get_buffer_memory_requirements(buffer) };
        let bits = hp.memory_type_bits & req.memory_type_bits;
        let Some(mt) = self.memory_type(
            bits,
            vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT,
        ) else {
            return Err(fail(VkError::NoMemoryType(format!(
                "that is HOST_COHERENT can import host memory (type bits {bits:#x})"
            ))));
        };
        let mut import = vk::ImportMemoryHostPointerInfoEXT::default()
            .handle_type(handle)
            .host_pointer(base as *mut c_void);
        let ainfo = vk::MemoryAllocateInfo::default()
            .allocation_size(len as u64)
            .memory_type_index(mt)
            .push_next(&mut import);
        // SAFETY: as for the properties query: `base`/`len` stay valid while the import exists.
        let memory = unsafe { d.allocate_memory(&ainfo, None) }
            .map_err(|e| fail(VkError::call("vkAllocateMemory(import)")(e)))?;
        // SAFETY: fresh buffer and memory of matching size.
        if let Err(e) = unsafe { d.bind_buffer_memory(buffer, memory, 0) } {
            // SAFETY: the memory was allocated above and is bound to nothing.
            unsafe { d.free_memory(memory, None) };
            return Err(fail(VkError::call("vkBindBufferMemory(imported)")(e)));
        }
        Ok((buffer, memory, self.memory_flags(mt)))
    }

    /// A storage buffer of `len` bytes in a memory type with `want` (preferring one without `avoid`):
    /// (buffer, memory, the type's flags). On error nothing is left behind.
    pub(crate) fn allocate_buffer(
        &self,
        len: usize,
        want: vk::MemoryPropertyFlags,
        avoid: vk::MemoryPropertyFlags,
    ) -> Result<(vk::Buffer, vk::DeviceMemory, vk::MemoryPropertyFlags), VkError> {
        self.allocate_buffer_in(len, want, |bits| self.memory_type_pref(bits, want, avoid))
    }

    /// A storage buffer of `len` bytes in a memory type with `want`, preferring one that also has `prefer`.
    pub(crate) fn allocate_buffer_pref(
        &self,
        len: usize,
        want: vk::MemoryPropertyFlags,
        prefer: vk::MemoryPropertyFlags,
    ) -> Result<(vk::Buffer, vk::DeviceMemory, vk::MemoryPropertyFlags), VkError> {
        self.allocate_buffer_in(len, want, |bits| {
            self.memory_type(bits, want | prefer)
                .or_else(|| self.memory_type(bits, want))
        })
    }

    /// A storage buffer of `len` bytes in the memory type `choose` picks
    /// from the allowed type bits.
    fn allocate_buffer_in(
        &self,
        len: usize,
        want: vk::MemoryPropertyFlags,
        choose: impl FnOnce(u32) -> Option<u32>,
    ) -> Result<(vk::Buffer, vk::DeviceMemory, vk::MemoryPropertyFlags), VkError> {
        let d = &self.device;
        let binfo = vk::BufferCreateInfo::default()
            .size(len.max(4) as u64)
            .usage(vk::BufferUsageFlags::STORAGE_BUFFER)
            .sharing_mode(vk::SharingMode::EXCLUSIVE);
        // SAFETY: live device; info lives across the call.
        let buffer =
            unsafe { d.create_buffer(&binfo, None) }.map_err(VkError::call("vkCreateBuffer"))?;
        let fail = |e: VkError| {
            // SAFETY: the buffer was created above and never used.
            unsafe { d.destroy_buffer(buffer, None) };
            e
        };
        // SAFETY: live buffer.
        let req = unsafe { d.get_buffer_memory_requirements(buffer) };
        let Some(mt) = choose(req.memory_type_bits) else {
            return Err(fail(VkError::NoMemoryType(format!(
                "with {want:?} for a buffer"
            ))));
        };
        let ainfo = vk::MemoryAllocateInfo::default()
            .allocation_size(req.size)
            .memory_type_index(mt);
        // SAFETY: live device; info lives across the call.
        let memory = unsafe { d.allocate_memory(&ainfo, None) }
            .map_err(|e| fail(VkError::call("vkAllocateMemory")(e)))?;
        // SAFETY: fresh buffer and memory of sufficient size.
        if let Err(e) = unsafe { d.bind_buffer_memory(buffer, memory, 0) } {
            // SAFETY: the memory was allocated above and is bound to nothing.
            unsafe { d.free_memory(memory, None) };
            return Err(fail(VkError::call("vkBindBufferMemory")(e)));
        }
        Ok((buffer, memory, self.memory_flags(mt)))
    }
}

/// Where a [`Buffer`]'s memory comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BufferKind {
    /// A DEVICE_LOCAL memory type, preferring one that is also HOST_VISIBLE | HOST_COHERENT (lavapipe's only
    /// type; resizable-BAR memory on a discrete GPU), mapped when it is: a ring's device-local block is filled
    /// and read back through the mapping.
    DeviceLocal,
    /// A HOST_VISIBLE | HOST_COHERENT memory type allocated by the driver, mapped.
    HostVisible,
    /// A fresh anonymous `mmap` of this buffer's own, imported with `VK_EXT_external_memory_host`.
    Imported,
}

/// A storage buffer for caller-supplied kernels, with its memory. Shared through an `Arc`: a run that uses it
/// holds a clone, so a run parked after a timeout keeps it alive.
pub(crate) struct Buffer {
    pub(super) ctx: Arc<Context>,
    pub buffer: vk::Buffer,
    memory: vk::DeviceMemory,
    /// The memory type's flags.
    pub flags: vk::MemoryPropertyFlags,
    /// Where the host reaches the bytes (mapped or imported), null when it cannot.
    pub host: *mut u8,
    /// Bytes.
    pub len: usize,
    /// `host` is `vkMapMemory`'s (unmapped before the memory is freed).
    vk_mapped: bool,
    /// `host` is this buffer's own `mmap` (unmapped after the memory is freed).
    own_map: bool,
    /// Keeps caller-owned imported memory alive while the import exists.
    _owner: Option<Arc<dyn Send + Sync>>,
}

// SAFETY: Vulkan handles are plain identifiers usable from any thread; `host` points to memory this buffer
// keeps alive, and what the host does through it is the (safe, atomic) accessors' business.
unsafe impl Send for Buffer {}
// SAFETY: as above; the buffer has no interior mutability of its own.
unsafe impl Sync for Buffer {}

impl Buffer {
    /// A buffer of `len` bytes (an import rounds it up to the import alignment).
    pub fn new(ctx: &Arc<Context>, kind: BufferKind, len: usize) -> Result<Buffer, VkError> {
        use vk::MemoryPropertyFlags as F;
        let mut b = Buffer {
            ctx: ctx.clone(),
            buffer: vk::Buffer::null(),
            memory: vk::DeviceMemory::null(),
            flags: F::empty(),
            host: std::ptr::null_mut(),
            len,
            vk_mapped: false,
            own_map: false,
            _owner: None,
        };
        match kind {
            BufferKind::DeviceLocal => {
                (b.buffer, b.memory, b.flags) = ctx.allocate_buffer_pref(
                    len,
                    F::DEVICE_LOCAL,
                    F::HOST_VISIBLE | F::HOST_COHERENT,
                )?;
                if b.flags.contains(F::HOST_VISIBLE | F::HOST_COHERENT) {
                    // SAFETY: host-visible memory of this device, not mapped yet; unmapped in `drop`.
                    b.host = unsafe {
                        ctx.device.map_memory(
                            b.memory,
                            0,
                            vk::WHOLE_SIZE,
                            vk::MemoryMapFlags::empty(),
                        )
                    }
                    .map_err(VkError::call("vkMapMemory"))? as *mut u8;
                    b.vk_mapped = true;
                }
            }
            BufferKind::HostVisible => {
                (b.buffer, b.memory, b.flags) =
                    ctx.allocate_buffer(len, F::HOST_VISIBLE | F::HOST_COHERENT, F::empty())?;
                // SAFETY: host-visible memory of this device, not mapped yet; unmapped in `drop`.
                b.host = unsafe {
                    ctx.device
                        .map_memory(b.memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty())
                }
                .map_err(VkError::call("vkMapMemory"))? as *mut u8;
                b.vk_mapped = true;
            }
            BufferKind::Imported => {
                let align = (ctx.min_import_alignment as usize).max(4096);
                b.len = len.max(1).next_multiple_of(align);
                // SAFETY: an anonymous private mapping with no address hint; the result is checked below.
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        b.len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                        -1,
                        0,
                    )
                };
                if p == libc::MAP_FAILED {
                    return Err(VkError::Mmap {
                        bytes: b.len,
                        source: std::io::Error::last_os_error(),
                    });
                }
                b.host = p as *mut u8;
                b.own_map = true;
                // SAFETY: `p` is our own page-aligned mapping of `b.len` bytes (a multiple of the import
                // alignment), unmapped only in `drop`, after the imported memory is freed.
                (b.buffer, b.memory, b.flags) = unsafe { ctx.import_host(b.host, b.len) }?;
            }
        }
        Ok(b)
    }

    /// A buffer over caller-owned host memory.
    ///
    /// # Safety
    /// `ptr` must be a live, writable mapping of `len` bytes, aligned to the device's
    /// `minImportedHostPointerAlignment` with `len` a multiple of it, that stays mapped for as long as
    /// `owner` lives.
    pub unsafe fn import(
        ctx: &Arc<Context>,
        ptr: *mut u8,
        len: usize,
        owner: Arc<dyn Send + Sync>,
    ) -> Result<Buffer, VkError> {
        // SAFETY: the caller's contract; `owner` is stored in the buffer, so the memory outlives the import.
        let (buffer, memory, flags) = unsafe { ctx.import_host(ptr, len) }?;
        Ok(Buffer {
            ctx: ctx.clone(),
            buffer,
            memory,
            flags,
            host: ptr,
            len,
            vk_mapped: false,
            own_map: false,
            _owner: Some(owner),
        })
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let d = &self.ctx.device;
        // SAFETY: no run uses the buffer any more (every run holds an `Arc` of it until its fence signalled);
        // the mapping is undone before the memory is freed, and our own host mapping is unmapped only after
        // the imported memory that points into it is freed. Null handles are ignored.
        unsafe {
            if self.vk_mapped {
                d.unmap_memory(self.memory);
            }
            d.destroy_buffer(self.buffer, None);
            d.free_memory(self.memory, None);
            if self.own_map {
                libc::munmap(self.host as *mut c_void, self.len);
            }
        }
    }
}
