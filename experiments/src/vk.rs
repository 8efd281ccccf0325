//! A small Vulkan compute harness for experiments whose shaders the backend does not run.
//!
//! The backend (`gpu_uring::backend::vulkan`) runs its built-in programs on a ring's imported arena, and
//! nothing else. Experiments about memory placement need their own shader on their own buffers — device-local
//! memory, driver-allocated host-visible memory, imported host memory — so this module opens the same kind of
//! device (by the name the backend reported) and offers exactly that: [`Gpu::buffer`] in a chosen
//! [`Placement`], [`Kernel::new`] for one SPIR-V module with one storage buffer (binding 0) and up to 16 bytes
//! of push constants, and [`Kernel::run`], which records one dispatch, submits it and waits at most a given
//! time. If the backend grows a way to run other shaders on other buffers, this module should go.
//!
//! Lifetimes: a [`Buffer`] and a [`Kernel`] borrow their [`Gpu`]. A dispatch that exceeds its time limit
//! poisons the `Gpu`: from then on nothing is destroyed or unmapped (the device may still be using it), so
//! the objects leak instead of being freed under a running shader.

use std::cell::Cell;
use std::ffi::c_void;
use std::time::{Duration, Instant};

use ash::vk;

/// Where a buffer's memory lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A `DEVICE_LOCAL` memory type, preferring one that is not host-visible (a GPU's own memory).
    DeviceLocal,
    /// A `HOST_VISIBLE | HOST_COHERENT` memory type allocated by the driver.
    HostVisible,
    /// Page-aligned host memory from `mmap`, imported with `VK_EXT_external_memory_host` into a
    /// `HOST_COHERENT` type: how device rings give the device their arena.
    Imported,
}

impl Placement {
    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Placement::DeviceLocal => "device-local",
            Placement::HostVisible => "host-visible",
            Placement::Imported => "imported host",
        }
    }
}

/// A logical device with one compute queue.
pub struct Gpu {
    _entry: ash::Entry,
    instance: ash::Instance,
    device: ash::Device,
    host_mem: ash::ext::external_memory_host::Device,
    queue: vk::Queue,
    queue_family: u32,
    mem: vk::PhysicalDeviceMemoryProperties,
    import_align: usize,
    poisoned: Cell<bool>,
    /// The device's name.
    pub name: String,
}

fn vkerr(what: &str) -> impl Fn(vk::Result) -> String + '_ {
    move |e| format!("{what} failed: {e}")
}

impl Gpu {
    /// Opens the first physical device whose name contains `name` (case-insensitive), with one compute queue
    /// and `VK_EXT_external_memory_host`.
    pub fn open(name: &str) -> Result<Gpu, String> {
        // SAFETY: dlopens the system's Vulkan loader; the Entry keeps it loaded while `Gpu` lives.
        let entry = unsafe { ash::Entry::load() }.map_err(|e| format!("no Vulkan loader: {e}"))?;
        let app = vk::ApplicationInfo::default()
            .application_name(c"gpu-uring-experiments")
            .api_version(vk::API_VERSION_1_2);
        let info = vk::InstanceCreateInfo::default().application_info(&app);
        // SAFETY: `info` lives across the call; no allocator callbacks.
        let instance =
            unsafe { entry.create_instance(&info, None) }.map_err(vkerr("vkCreateInstance"))?;
        let fail = |msg: String| {
            // SAFETY: the instance was created above and nothing made from it survives this error path.
            unsafe { instance.destroy_instance(None) };
            msg
        };
        // SAFETY: live instance.
        let pds = unsafe { instance.enumerate_physical_devices() }
            .map_err(|e| fail(format!("vkEnumeratePhysicalDevices failed: {e}")))?;
        let want = name.to_lowercase();
        let mut chosen = None;
        for pd in pds {
            // SAFETY: `pd` came from this instance.
            let props = unsafe { instance.get_physical_device_properties(pd) };
            let n = props
                .device_name_as_c_str()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if n.to_lowercase().contains(&want) {
                chosen = Some((pd, n));
                break;
            }
        }
        let (pd, name) =
            chosen.ok_or_else(|| fail(format!("no Vulkan device named like {name:?}")))?;
        // SAFETY: `pd` came from this instance.
        let qfs = unsafe { instance.get_physical_device_queue_family_properties(pd) };
        let queue_family =
            qfs.iter()
                .position(|q| q.queue_flags.contains(vk::QueueFlags::COMPUTE) && q.queue_count > 0)
                .ok_or_else(|| fail(format!("{name}: no compute queue")))? as u32;
        // SAFETY: `pd` came from this instance.
        let exts = unsafe { instance.enumerate_device_extension_properties(pd) }
            .map_err(|e| fail(format!("vkEnumerateDeviceExtensionProperties failed: {e}")))?;
        if !exts
            .iter()
            .any(|e| e.extension_name_as_c_str() == Ok(ash::ext::external_memory_host::NAME))
        {
            return Err(fail(format!(
                "{name} lacks VK_EXT_external_memory_host (host memory cannot be imported)"
            )));
        }
        // Chained only now that the extension is known to be there.
        let mut host = vk::PhysicalDeviceExternalMemoryHostPropertiesEXT::default();
        let mut props2 = vk::PhysicalDeviceProperties2::default().push_next(&mut host);
        // SAFETY: `pd` came from this instance; the chained struct lives across the call.
        unsafe { instance.get_physical_device_properties2(pd, &mut props2) };
        let import_align = host.min_imported_host_pointer_alignment.max(1) as usize;
        let prio = [1.0f32];
        let queues = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(queue_family)
            .queue_priorities(&prio)];
        let exts = [ash::ext::external_memory_host::NAME.as_ptr()];
        // The Vulkan memory model with device scope: shaders that hand data to the host (rpc_print.comp) use
        // acquire/release atomics at device scope. Every device the backend accepts has both (it checks).
        let mut f12 = vk::PhysicalDeviceVulkan12Features::default()
            .vulkan_memory_model(true)
            .vulkan_memory_model_device_scope(true);
        let dinfo = vk::DeviceCreateInfo::default()
            .queue_create_infos(&queues)
            .enabled_extension_names(&exts)
            .push_next(&mut f12);
        // SAFETY: `pd` came from this instance; `dinfo` and what it points to live across the call.
        let device = unsafe { instance.create_device(pd, &dinfo, None) }.map_err(|e| {
            fail(format!(
                "vkCreateDevice({name}) with VK_EXT_external_memory_host failed: {e}"
            ))
        })?;
        let host_mem = ash::ext::external_memory_host::Device::new(&instance, &device);
        // SAFETY: one queue of `queue_family` was requested.
        let queue = unsafe { device.get_device_queue(queue_family, 0) };
        // SAFETY: `pd` came from this instance.
        let mem = unsafe { instance.get_physical_device_memory_properties(pd) };
        Ok(Gpu {
            _entry: entry,
            instance,
            device,
            host_mem,
            queue,
            queue_family,
            mem,
            import_align,
            poisoned: Cell::new(false),
            name,
        })
    }

    /// A memory type allowed by `bits` with every flag of `want`, preferring one without `avoid`.
    fn memory_type(
        &self,
        bits: u32,
        want: vk::MemoryPropertyFlags,
        avoid: vk::MemoryPropertyFlags,
    ) -> Option<(u32, vk::MemoryPropertyFlags)> {
        let types = &self.mem.memory_types[..self.mem.memory_type_count as usize];
        let ok = |i: usize| bits & (1 << i) != 0 && types[i].property_flags.contains(want);
        (0..types.len())
            .find(|&i| ok(i) && !types[i].property_flags.intersects(avoid))
            .or_else(|| (0..types.len()).find(|&i| ok(i)))
            .map(|i| (i as u32, types[i].property_flags))
    }

    /// A storage buffer over caller-owned host memory (`VK_EXT_external_memory_host`), e.g. an RPC mailbox
    /// arena.
    ///
    /// # Safety
    /// `ptr` must be a live, writable mapping of `len` bytes, aligned to the device's
    /// `minImportedHostPointerAlignment` (page alignment suffices on the devices seen so far) with `len` a
    /// multiple of it, and must stay mapped until the returned buffer is dropped, and beyond it if a dispatch
    /// timed out (the `Gpu` is then poisoned and never frees the import).
    pub unsafe fn import(&self, ptr: *mut u8, len: usize) -> Result<Buffer<'_>, String> {
        // The alignment is a power of two (Vulkan requires it).
        if (ptr as usize | len) & (self.import_align - 1) != 0 {
            return Err(format!(
                "{ptr:p} ({len} bytes) is not aligned to minImportedHostPointerAlignment {}",
                self.import_align
            ));
        }
        self.make(Placement::Imported, len, Some((ptr.cast(), false)))
    }

    /// A storage buffer of `bytes` (rounded up to the import alignment) in `place`.
    pub fn buffer(&self, place: Placement, bytes: usize) -> Result<Buffer<'_>, String> {
        let len = bytes.div_ceil(self.import_align) * self.import_align;
        self.make(place, len, None)
    }

    /// `host`: for an import, memory the caller owns (`false`) instead of a fresh mapping this buffer owns.
    fn make(
        &self,
        place: Placement,
        len: usize,
        host: Option<(*mut c_void, bool)>,
    ) -> Result<Buffer<'_>, String> {
        let d = &self.device;
        let handle = vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT;
        let mut ext = vk::ExternalMemoryBufferCreateInfo::default().handle_types(handle);
        let mut binfo = vk::BufferCreateInfo::default()
            .size(len as u64)
            .usage(vk::BufferUsageFlags::STORAGE_BUFFER)
            .sharing_mode(vk::SharingMode::EXCLUSIVE);
        if place == Placement::Imported {
            binfo = binfo.push_next(&mut ext);
        }
        // SAFETY: live device; the info chain lives across the call.
        let buf = unsafe { d.create_buffer(&binfo, None) }.map_err(vkerr("vkCreateBuffer"))?;
        let mut b = Buffer {
            gpu: self,
            buf,
            mem: vk::DeviceMemory::null(),
            host: None,
            owns_host: false,
            flags: vk::MemoryPropertyFlags::empty(),
            len,
        };
        // SAFETY: live buffer.
        let req = unsafe { d.get_buffer_memory_requirements(buf) };
        use vk::MemoryPropertyFlags as F;
        let (mt, flags, host) = match place {
            Placement::DeviceLocal => {
                let (mt, f) = self
                    .memory_type(req.memory_type_bits, F::DEVICE_LOCAL, F::HOST_VISIBLE)
                    .ok_or("no DEVICE_LOCAL memory type")?;
                (mt, f, None)
            }
            Placement::HostVisible => {
                let (mt, f) = self
                    .memory_type(
                        req.memory_type_bits,
                        F::HOST_VISIBLE | F::HOST_COHERENT,
                        F::empty(),
                    )
                    .ok_or("no HOST_VISIBLE | HOST_COHERENT memory type")?;
                (mt, f, None)
            }
            Placement::Imported => {
                let p = match host {
                    Some((p, _)) => p,
                    // SAFETY: an anonymous private mapping with no address hint; checked below.
                    None => unsafe {
                        libc::mmap(
                            std::ptr::null_mut(),
                            len,
                            libc::PROT_READ | libc::PROT_WRITE,
                            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                            -1,
                            0,
                        )
                    },
                };
                if p == libc::MAP_FAILED {
                    return Err(format!(
                        "mmap of {len} bytes: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                b.host = Some(p);
                b.owns_host = host.is_none_or(|(_, owned)| owned);
                let mut hp = vk::MemoryHostPointerPropertiesEXT::default();
                // SAFETY: `p` is a live, aligned mapping of `len` bytes (a multiple of the import alignment):
                // ours, unmapped only after the imported memory is freed, or the caller's under `import`'s
                // contract.
                let r = unsafe {
                    (self.host_mem.fp().get_memory_host_pointer_properties_ext)(
                        d.handle(),
                        handle,
                        p as *const c_void,
                        &mut hp,
                    )
                };
                if r != vk::Result::SUCCESS {
                    return Err(format!("vkGetMemoryHostPointerPropertiesEXT failed: {r}"));
                }
                let (mt, f) = self
                    .memory_type(
                        hp.memory_type_bits & req.memory_type_bits,
                        F::HOST_COHERENT,
                        F::empty(),
                    )
                    .ok_or("no HOST_COHERENT memory type can import host memory")?;
                (mt, f, Some(p))
            }
        };
        b.flags = flags;
        let mut import = vk::ImportMemoryHostPointerInfoEXT::default()
            .handle_type(handle)
            .host_pointer(host.unwrap_or(std::ptr::null_mut()));
        let mut ainfo = vk::MemoryAllocateInfo::default()
            .allocation_size(if host.is_some() { len as u64 } else { req.size })
            .memory_type_index(mt);
        if host.is_some() {
            ainfo = ainfo.push_next(&mut import);
        }
        // SAFETY: live device; for an import, the mapping outlives the allocation (see `Buffer::drop`).
        b.mem = unsafe { d.allocate_memory(&ainfo, None) }.map_err(vkerr("vkAllocateMemory"))?;
        // SAFETY: fresh buffer and memory of sufficient size.
        unsafe { d.bind_buffer_memory(b.buf, b.mem, 0) }.map_err(vkerr("vkBindBufferMemory"))?;
        Ok(b)
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        if self.poisoned.get() {
            return;
        }
        // SAFETY: every Buffer and Kernel borrowed `self` and is gone; no work is pending (each dispatch was
        // waited for, or the Gpu is poisoned and leaks instead).
        unsafe {
            self.device.destroy_device(None);
            self.instance.destroy_instance(None);
        }
    }
}

/// A storage buffer.
pub struct Buffer<'g> {
    gpu: &'g Gpu,
    buf: vk::Buffer,
    mem: vk::DeviceMemory,
    host: Option<*mut c_void>,
    /// Whether `host` is this buffer's own mapping (unmapped on drop) rather than the caller's.
    owns_host: bool,
    flags: vk::MemoryPropertyFlags,
    len: usize,
}

impl Buffer<'_> {
    /// The memory type's property flags, e.g. `DEVICE_LOCAL | HOST_VISIBLE | HOST_COHERENT`.
    pub fn flags(&self) -> String {
        format!("{:?}", self.flags)
    }

    /// Bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Word `i` as the host sees it, for an [`Placement::Imported`] buffer (`None` for the others, or past the
    /// end). Call only while no dispatch runs.
    pub fn host_word(&self, i: usize) -> Option<u32> {
        let p = self.host?;
        if (i + 1) * 4 > self.len {
            return None;
        }
        // SAFETY: `p` maps `len` bytes for as long as `self` lives; `i` is in bounds and 4-byte aligned (the
        // mapping is page-aligned); no dispatch writes it concurrently (the caller's contract).
        Some(unsafe { std::ptr::read_volatile((p as *const u32).add(i)) })
    }

    /// Whether the buffer is empty (never: sizes round up to the import alignment).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Buffer<'_> {
    fn drop(&mut self) {
        if self.gpu.poisoned.get() {
            return;
        }
        let d = &self.gpu.device;
        // SAFETY: no dispatch using the buffer is pending (each was waited for); the imported memory is freed
        // before its host mapping is unmapped.
        unsafe {
            d.destroy_buffer(self.buf, None);
            if self.mem != vk::DeviceMemory::null() {
                d.free_memory(self.mem, None);
            }
            if let (Some(p), true) = (self.host, self.owns_host) {
                libc::munmap(p, self.len);
            }
        }
    }
}

/// One compute pipeline: binding 0 = a storage buffer, up to 16 bytes of push constants.
pub struct Kernel<'g> {
    gpu: &'g Gpu,
    dsl: vk::DescriptorSetLayout,
    layout: vk::PipelineLayout,
    pipeline: vk::Pipeline,
    dpool: vk::DescriptorPool,
    set: vk::DescriptorSet,
    cpool: vk::CommandPool,
    cmd: vk::CommandBuffer,
    fence: vk::Fence,
}

/// Push-constant bytes a [`Kernel`] takes.
pub const PUSH_BYTES: u32 = 16;

impl<'g> Kernel<'g> {
    /// A pipeline for `spirv` (entry point `main`).
    pub fn new(gpu: &'g Gpu, spirv: &[u8]) -> Result<Kernel<'g>, String> {
        let d = &gpu.device;
        let mut k = Kernel {
            gpu,
            dsl: vk::DescriptorSetLayout::null(),
            layout: vk::PipelineLayout::null(),
            pipeline: vk::Pipeline::null(),
            dpool: vk::DescriptorPool::null(),
            set: vk::DescriptorSet::null(),
            cpool: vk::CommandPool::null(),
            cmd: vk::CommandBuffer::null(),
            fence: vk::Fence::null(),
        };
        let bindings = [vk::DescriptorSetLayoutBinding::default()
            .binding(0)
            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
            .descriptor_count(1)
            .stage_flags(vk::ShaderStageFlags::COMPUTE)];
        let info = vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings);
        // SAFETY: live device; each info lives across its call (here and in the calls below); every object is
        // stored in `k` at once, so an error return destroys what exists (`Kernel::drop`).
        k.dsl = unsafe { d.create_descriptor_set_layout(&info, None) }
            .map_err(vkerr("vkCreateDescriptorSetLayout"))?;
        let ranges = [vk::PushConstantRange::default()
            .stage_flags(vk::ShaderStageFlags::COMPUTE)
            .size(PUSH_BYTES)];
        let dsls = [k.dsl];
        let info = vk::PipelineLayoutCreateInfo::default()
            .set_layouts(&dsls)
            .push_constant_ranges(&ranges);
        // SAFETY: as above.
        k.layout = unsafe { d.create_pipeline_layout(&info, None) }
            .map_err(vkerr("vkCreatePipelineLayout"))?;
        let words = ash::util::read_spv(&mut std::io::Cursor::new(spirv))
            .map_err(|e| format!("malformed SPIR-V: {e}"))?;
        let info = vk::ShaderModuleCreateInfo::default().code(&words);
        // SAFETY: as above; `words` is SPIR-V built by device-shaders/build.sh.
        let module = unsafe { d.create_shader_module(&info, None) }
            .map_err(vkerr("vkCreateShaderModule"))?;
        let stage = vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::COMPUTE)
            .module(module)
            .name(c"main");
        let infos = [vk::ComputePipelineCreateInfo::default()
            .stage(stage)
            .layout(k.layout)];
        // SAFETY: as above.
        let r = unsafe { d.create_compute_pipelines(vk::PipelineCache::null(), &infos, None) };
        // SAFETY: the module is not needed once the pipeline exists (or failed).
        unsafe { d.destroy_shader_module(module, None) };
        k.pipeline = r.map_err(|(_, e)| format!("vkCreateComputePipelines failed: {e}"))?[0];
        let sizes = [vk::DescriptorPoolSize {
            ty: vk::DescriptorType::STORAGE_BUFFER,
            descriptor_count: 1,
        }];
        let info = vk::DescriptorPoolCreateInfo::default()
            .max_sets(1)
            .pool_sizes(&sizes);
        // SAFETY: as above.
        k.dpool = unsafe { d.create_descriptor_pool(&info, None) }
            .map_err(vkerr("vkCreateDescriptorPool"))?;
        let info = vk::DescriptorSetAllocateInfo::default()
            .descriptor_pool(k.dpool)
            .set_layouts(&dsls);
        // SAFETY: as above.
        k.set = unsafe { d.allocate_descriptor_sets(&info) }
            .map_err(vkerr("vkAllocateDescriptorSets"))?[0];
        let info = vk::CommandPoolCreateInfo::default()
            .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER)
            .queue_family_index(gpu.queue_family);
        // SAFETY: as above.
        k.cpool =
            unsafe { d.create_command_pool(&info, None) }.map_err(vkerr("vkCreateCommandPool"))?;
        let info = vk::CommandBufferAllocateInfo::default()
            .command_pool(k.cpool)
            .level(vk::CommandBufferLevel::PRIMARY)
            .command_buffer_count(1);
        // SAFETY: as above.
        k.cmd = unsafe { d.allocate_command_buffers(&info) }
            .map_err(vkerr("vkAllocateCommandBuffers"))?[0];
        // SAFETY: as above.
        k.fence = unsafe { d.create_fence(&vk::FenceCreateInfo::default(), None) }
            .map_err(vkerr("vkCreateFence"))?;
        Ok(k)
    }

    /// Runs `groups` workgroups on `buf` with `push` (zero-padded to [`PUSH_BYTES`]) and waits at most
    /// `limit`. Returns the wall time from submission to the fence being seen signalled. Over the limit, the
    /// `Gpu` is poisoned (see the module docs) and an error returned.
    pub fn run(
        &mut self,
        buf: &Buffer<'_>,
        push: &[u32],
        groups: u32,
        limit: Duration,
    ) -> Result<Duration, String> {
        let g = self.gpu;
        if g.poisoned.get() {
            return Err(
                "an earlier dispatch did not finish in time; the device is unusable".into(),
            );
        }
        let d = &g.device;
        let mut bytes = [0u8; PUSH_BYTES as usize];
        for (i, w) in push.iter().take(4).enumerate() {
            bytes[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
        }
        let binfo = [vk::DescriptorBufferInfo {
            buffer: buf.buf,
            offset: 0,
            range: vk::WHOLE_SIZE,
        }];
        let write = [vk::WriteDescriptorSet::default()
            .dst_set(self.set)
            .dst_binding(0)
            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
            .buffer_info(&binfo)];
        // SAFETY: no dispatch is pending (the previous one was waited for), so the set, the command buffer
        // and the fence are free to update, re-record and reuse; every handle is live.
        unsafe {
            d.update_descriptor_sets(&write, &[]);
            d.reset_command_buffer(self.cmd, vk::CommandBufferResetFlags::empty())
                .map_err(vkerr("vkResetCommandBuffer"))?;
            d.begin_command_buffer(self.cmd, &vk::CommandBufferBeginInfo::default())
                .map_err(vkerr("vkBeginCommandBuffer"))?;
            d.cmd_bind_pipeline(self.cmd, vk::PipelineBindPoint::COMPUTE, self.pipeline);
            d.cmd_bind_descriptor_sets(
                self.cmd,
                vk::PipelineBindPoint::COMPUTE,
                self.layout,
                0,
                &[self.set],
                &[],
            );
            d.cmd_push_constants(
                self.cmd,
                self.layout,
                vk::ShaderStageFlags::COMPUTE,
                0,
                &bytes,
            );
            d.cmd_dispatch(self.cmd, groups.max(1), 1, 1);
            d.end_command_buffer(self.cmd)
                .map_err(vkerr("vkEndCommandBuffer"))?;
        }
        let cmds = [self.cmd];
        let submit = [vk::SubmitInfo::default().command_buffers(&cmds)];
        let t = Instant::now();
        // SAFETY: the queue is used by this thread only (Gpu is not Sync); the command buffer is recorded and
        // not pending; the fence is unsignalled.
        unsafe { d.queue_submit(g.queue, &submit, self.fence) }.map_err(vkerr("vkQueueSubmit"))?;
        let ns = limit.as_nanos().min(u64::MAX as u128) as u64;
        // SAFETY: the fence belongs to this device.
        match unsafe { d.wait_for_fences(&[self.fence], true, ns) } {
            Ok(()) => {
                let el = t.elapsed();
                // SAFETY: the fence is signalled and no submission uses it any more.
                unsafe { d.reset_fences(&[self.fence]) }.map_err(vkerr("vkResetFences"))?;
                Ok(el)
            }
            Err(vk::Result::TIMEOUT) => {
                g.poisoned.set(true);
                Err(format!("the dispatch did not finish within {limit:?}"))
            }
            Err(e) => {
                g.poisoned.set(true);
                Err(format!("vkWaitForFences failed: {e}"))
            }
        }
    }
}

impl Drop for Kernel<'_> {
    fn drop(&mut self) {
        if self.gpu.poisoned.get() {
            return;
        }
        let d = &self.gpu.device;
        // SAFETY: no dispatch is pending; destroying null handles is allowed.
        unsafe {
            d.destroy_fence(self.fence, None);
            d.destroy_command_pool(self.cpool, None);
            d.destroy_descriptor_pool(self.dpool, None);
            d.destroy_pipeline(self.pipeline, None);
            d.destroy_pipeline_layout(self.layout, None);
            d.destroy_descriptor_set_layout(self.dsl, None);
        }
    }
}
