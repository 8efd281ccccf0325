//! The raw Vulkan layer: every `unsafe` Vulkan call of the backend lives in this module, each with the
//! invariant it relies on. Above it (`mod.rs`) everything is safe: device choice, programs, the re-dispatch
//! loop.
//!
//! Object lifetimes: [`Instance`] owns the loader and the `VkInstance`; a [`Context`] owns a `VkDevice`
//! created from it (and keeps the `Instance` alive through an `Arc`); a [`Run`] owns everything one program
//! run creates (the imported arena, the run buffer, descriptor and command pools, the fence). A `Run` is
//! destroyed only after its fence has signalled; a run whose dispatch outlived its time limit is parked in the
//! context's orphan list, with the ring arena kept alive ([`ArenaKeepAlive`]), until the fence signals.

use std::ffi::{c_void, CStr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ash::vk;

use crate::ring::ArenaKeepAlive;

/// `VK_EXT_external_memory_host`.
const EXT_MEMORY_HOST: &CStr = c"VK_EXT_external_memory_host";
/// Push constants: the RingLayout (Vulkan guarantees at least 128 bytes).
const PUSH_CONSTANT_BYTES: u32 = 128;

/// The loader and a `VkInstance`.
pub(super) struct Instance {
    _entry: ash::Entry,
    instance: ash::Instance,
}

/// What the backend learns about one physical device.
#[derive(Debug, Clone)]
pub(super) struct PhysInfo {
    pub pd: vk::PhysicalDevice,
    pub name: String,
    pub device_type: vk::PhysicalDeviceType,
    pub api_version: u32,
    pub driver: String,
    pub subgroup_size: u32,
    pub min_import_alignment: u64,
    pub queue_family: Option<u32>,
    /// `Err(reason)` when the device lacks something the protocol needs.
    pub usable: Result<(), String>,
}

impl Instance {
    /// Loads the Vulkan loader at run time and creates an instance (API 1.2).
    pub fn load() -> Result<Instance, String> {
        // SAFETY: `Entry::load` dlopens libvulkan; the library's initialisers are trusted like any system
        // library. The returned Entry keeps it loaded for as long as it lives (stored in `Instance`).
        let entry = unsafe { ash::Entry::load() }
            .map_err(|e| format!("no Vulkan loader (libvulkan.so.1): {e}"))?;
        let app = vk::ApplicationInfo::default()
            .application_name(c"gpu-uring")
            .api_version(vk::API_VERSION_1_2);
        let info = vk::InstanceCreateInfo::default().application_info(&app);
        // SAFETY: `info` and what it points to live across the call; no allocator callbacks.
        let instance = unsafe { entry.create_instance(&info, None) }.map_err(|e| {
            format!("vkCreateInstance failed: {e} (no Vulkan driver/ICD installed?)")
        })?;
        Ok(Instance {
            _entry: entry,
            instance,
        })
    }

    /// Every physical device with its properties and whether the protocol can run on it.
    pub fn physical_devices(&self) -> Result<Vec<PhysInfo>, String> {
        let inst = &self.instance;
        // SAFETY: `inst` is a live instance.
        let pds = unsafe { inst.enumerate_physical_devices() }
            .map_err(|e| format!("vkEnumeratePhysicalDevices failed: {e}"))?;
        Ok(pds.into_iter().map(|pd| self.describe(pd)).collect())
    }

    fn describe(&self, pd: vk::PhysicalDevice) -> PhysInfo {
        let inst = &self.instance;
        // SAFETY: `pd` came from this instance (Vulkan 1.0 query, valid for every device).
        let p = unsafe { inst.get_physical_device_properties(pd) };
        let name = p
            .device_name_as_c_str()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // SAFETY: `pd` came from this instance.
        let exts = unsafe { inst.enumerate_device_extension_properties(pd) }.unwrap_or_default();
        let has_host_memory = exts
            .iter()
            .any(|e| e.extension_name_as_c_str() == Ok(EXT_MEMORY_HOST));
        let mut subgroup = vk::PhysicalDeviceSubgroupProperties::default();
        let mut driver = vk::PhysicalDeviceDriverProperties::default();
        let mut host = vk::PhysicalDeviceExternalMemoryHostPropertiesEXT::default();
        if p.api_version >= vk::API_VERSION_1_2 {
            // Only structs this device knows: subgroup (core 1.1), driver (core 1.2), and the host-memory
            // properties only with the extension.
            let mut props2 = vk::PhysicalDeviceProperties2::default()
                .push_next(&mut subgroup)
                .push_next(&mut driver);
            if has_host_memory {
                props2 = props2.push_next(&mut host);
            }
            // SAFETY: `pd` came from this instance, whose API version is 1.2; the pNext chain holds structs
            // valid for this device that live across the call.
            unsafe { inst.get_physical_device_properties2(pd, &mut props2) };
        }
        let drv = format!(
            "{} {}",
            driver
                .driver_name_as_c_str()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            driver
                .driver_info_as_c_str()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        )
        .trim()
        .to_owned();
        // SAFETY: `pd` came from this instance.
        let qfs = unsafe { inst.get_physical_device_queue_family_properties(pd) };
        let queue_family = qfs
            .iter()
            .position(|q| q.queue_flags.contains(vk::QueueFlags::COMPUTE) && q.queue_count > 0)
            .map(|i| i as u32);
        let usable = self.check_usable(
            pd,
            p.api_version,
            queue_family,
            subgroup.subgroup_size,
            has_host_memory,
        );
        PhysInfo {
            pd,
            name,
            device_type: p.device_type,
            api_version: p.api_version,
            driver: drv,
            subgroup_size: subgroup.subgroup_size.max(1),
            min_import_alignment: host.min_imported_host_pointer_alignment,
            queue_family,
            usable,
        }
    }

    fn check_usable(
        &self,
        pd: vk::PhysicalDevice,
        api: u32,
        queue_family: Option<u32>,
        subgroup: u32,
        has_host_memory: bool,
    ) -> Result<(), String> {
        let inst = &self.instance;
        if api < vk::API_VERSION_1_2 {
            return Err(format!(
                "Vulkan {}.{} device; 1.2 or newer is needed",
                vk::api_version_major(api),
                vk::api_version_minor(api)
            ));
        }
        if queue_family.is_none() {
            return Err("no compute queue".into());
        }
        if subgroup == 0 {
            return Err("subgroup size unknown".into());
        }
        if !has_host_memory {
            return Err(
                "missing extension VK_EXT_external_memory_host (the arena is imported host memory)"
                    .into(),
            );
        }
        let mut f12 = vk::PhysicalDeviceVulkan12Features::default();
        let mut f2 = vk::PhysicalDeviceFeatures2::default().push_next(&mut f12);
        // SAFETY: `pd` came from this instance; the chain lives across the call.
        unsafe { inst.get_physical_device_features2(pd, &mut f2) };
        let f = f2.features;
        let mut missing = Vec::new();
        if f.shader_int64 == 0 {
            missing.push("shaderInt64");
        }
        if f.shader_float64 == 0 {
            missing.push("shaderFloat64 (float formatting runs in f64)");
        }
        if f12.shader_buffer_int64_atomics == 0 {
            missing.push("shaderBufferInt64Atomics");
        }
        if f12.vulkan_memory_model == 0 {
            missing.push("vulkanMemoryModel");
        }
        if f12.vulkan_memory_model_device_scope == 0 {
            missing.push("vulkanMemoryModelDeviceScope");
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("missing features: {}", missing.join(", ")))
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: every Context holds an Arc<Instance>, so no device created from it is alive any more.
        unsafe { self.instance.destroy_instance(None) };
    }
}

/// A logical device with the backend's pipeline layout and its pipelines.
pub(super) struct Context {
    instance: Arc<Instance>,
    device: ash::Device,
    host_mem: ash::ext::external_memory_host::Device,
    queue: Mutex<vk::Queue>,
    queue_family: u32,
    mem_props: vk::PhysicalDeviceMemoryProperties,
    pub min_import_alignment: u64,
    pub subgroup_size: u32,
    set_layout: vk::DescriptorSetLayout,
    pipeline_layout: vk::PipelineLayout,
    pipelines: Mutex<Vec<(&'static str, vk::Pipeline)>>,
    orphans: Mutex<Vec<RunObjects>>,
}

// SAFETY: Vulkan handles are plain identifiers usable from any thread; the one object with external
// synchronisation requirements used from several threads, the queue, is behind a Mutex, and the pipeline list
// and orphan list are too. Command pools, descriptor pools and fences belong to one `Run` at a time.
unsafe impl Send for Context {}
// SAFETY: as above.
unsafe impl Sync for Context {}

impl Context {
    /// Creates the logical device: one compute queue, `VK_EXT_external_memory_host`, int64 (atomics),
    /// float64, and the Vulkan memory model with device scope.
    pub fn new(instance: Arc<Instance>, phys: &PhysInfo) -> Result<Context, String> {
        phys.usable.clone()?;
        let qf = phys.queue_family.ok_or("no compute queue")?;
        let inst = &instance.instance;
        let prio = [1.0f32];
        let queues = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(qf)
            .queue_priorities(&prio)];
        let exts = [EXT_MEMORY_HOST.as_ptr()];
        let base = vk::PhysicalDeviceFeatures::default()
            .shader_int64(true)
            .shader_float64(true);
        let mut f12 = vk::PhysicalDeviceVulkan12Features::default()
            .shader_buffer_int64_atomics(true)
            .vulkan_memory_model(true)
            .vulkan_memory_model_device_scope(true);
        let info = vk::DeviceCreateInfo::default()
            .queue_create_infos(&queues)
            .enabled_extension_names(&exts)
            .enabled_features(&base)
            .push_next(&mut f12);
        // SAFETY: `phys.pd` came from this instance; `info` and its chain live across the call; the features
        // and extension were checked as supported (`usable`).
        let device = unsafe { inst.create_device(phys.pd, &info, None) }
            .map_err(|e| format!("vkCreateDevice failed: {e}"))?;
        let host_mem = ash::ext::external_memory_host::Device::new(inst, &device);
        // SAFETY: queue family `qf` with one queue was requested above.
        let queue = unsafe { device.get_device_queue(qf, 0) };
        // SAFETY: `phys.pd` came from this instance.
        let mem_props = unsafe { inst.get_physical_device_memory_properties(phys.pd) };
        let bindings: Vec<_> = (0..3)
            .map(|b| {
                vk::DescriptorSetLayoutBinding::default()
                    .binding(b)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .descriptor_count(1)
                    .stage_flags(vk::ShaderStageFlags::COMPUTE)
            })
            .collect();
        let dsl_info = vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings);
        let mut ctx = Context {
            instance: instance.clone(),
            device,
            host_mem,
            queue: Mutex::new(queue),
            queue_family: qf,
            mem_props,
            min_import_alignment: phys.min_import_alignment.max(1),
            subgroup_size: phys.subgroup_size,
            set_layout: vk::DescriptorSetLayout::null(),
            pipeline_layout: vk::PipelineLayout::null(),
            pipelines: Mutex::new(Vec::new()),
            orphans: Mutex::new(Vec::new()),
        };
        // SAFETY: live device; `dsl_info` lives across the call. On error `ctx` drops and destroys what exists.
        ctx.set_layout = unsafe { ctx.device.create_descriptor_set_layout(&dsl_info, None) }
            .map_err(|e| format!("vkCreateDescriptorSetLayout failed: {e}"))?;
        let ranges = [vk::PushConstantRange::default()
            .stage_flags(vk::ShaderStageFlags::COMPUTE)
            .offset(0)
            .size(PUSH_CONSTANT_BYTES)];
        let layouts = [ctx.set_layout];
        let pl_info = vk::PipelineLayoutCreateInfo::default()
            .set_layouts(&layouts)
            .push_constant_ranges(&ranges);
        // SAFETY: live device and set layout; the info lives across the call.
        ctx.pipeline_layout = unsafe { ctx.device.create_pipeline_layout(&pl_info, None) }
            .map_err(|e| format!("vkCreatePipelineLayout failed: {e}"))?;
        Ok(ctx)
    }

    /// The compute pipeline for `name` (created from `spirv` on first use, with `local_size_x` = the
    /// subgroup size through specialization constant 0).
    pub fn pipeline(&self, name: &'static str, spirv: &[u8]) -> Result<vk::Pipeline, String> {
        let mut cache = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&(_, p)) = cache.iter().find(|(n, _)| *n == name) {
            return Ok(p);
        }
        let words = ash::util::read_spv(&mut std::io::Cursor::new(spirv))
            .map_err(|e| format!("embedded SPIR-V {name} is malformed: {e}"))?;
        let info = vk::ShaderModuleCreateInfo::default().code(&words);
        // SAFETY: live device; `words` is valid SPIR-V built by device-shaders/build.sh (checked in CI).
        let module = unsafe { self.device.create_shader_module(&info, None) }
            .map_err(|e| format!("vkCreateShaderModule({name}) failed: {e}"))?;
        let entries = [vk::SpecializationMapEntry {
            constant_id: 0,
            offset: 0,
            size: 4,
        }];
        let data = self.subgroup_size.to_ne_bytes();
        let spec = vk::SpecializationInfo::default()
            .map_entries(&entries)
            .data(&data);
        let stage = vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::COMPUTE)
            .module(module)
            .name(c"main")
            .specialization_info(&spec);
        let infos = [vk::ComputePipelineCreateInfo::default()
            .stage(stage)
            .layout(self.pipeline_layout)];
        // SAFETY: live device, module and layout; the infos live across the call.
        let r = unsafe {
            self.device
                .create_compute_pipelines(vk::PipelineCache::null(), &infos, None)
        };
        // SAFETY: the module is no longer needed once the pipeline exists (or failed).
        unsafe { self.device.destroy_shader_module(module, None) };
        let p = r.map_err(|(_, e)| format!("vkCreateComputePipelines({name}) failed: {e}"))?[0];
        cache.push((name, p));
        Ok(p)
    }

    fn memory_type(&self, bits: u32, want: vk::MemoryPropertyFlags) -> Option<u32> {
        (0..self.mem_props.memory_type_count).find(|&i| {
            bits & (1 << i) != 0
                && self.mem_props.memory_types[i as usize]
                    .property_flags
                    .contains(want)
        })
    }

    /// Frees orphaned runs whose fence has signalled since.
    pub fn reclaim_orphans(&self) {
        let mut orphans = self.orphans.lock().unwrap_or_else(|p| p.into_inner());
        orphans.retain_mut(|o| {
            // SAFETY: the fence belongs to this device.
            let done = unsafe { self.device.get_fence_status(o.fence) }.unwrap_or(false);
            if done {
                o.destroy(&self.device);
            }
            !done
        });
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // Orphaned dispatches: wait a bounded time for each; one still running after that is leaked (with
        // its arena) rather than freed under the device's feet.
        let orphans = std::mem::take(&mut *self.orphans.lock().unwrap_or_else(|p| p.into_inner()));
        let mut leaked = false;
        for mut o in orphans {
            // SAFETY: the fence belongs to this device.
            let r = unsafe {
                self.device
                    .wait_for_fences(&[o.fence], true, 10_000_000_000)
            };
            if r.is_ok() {
                o.destroy(&self.device);
            } else {
                leaked = true;
                std::mem::forget(o);
            }
        }
        if leaked {
            // The device still runs work: destroying it now would be undefined. Leak it.
            return;
        }
        // SAFETY: no run is alive (each `Run` borrows the context and waits for its own dispatches), every
        // orphan is destroyed, so nothing created from the device is in use. (No vkDeviceWaitIdle: it has no
        // time bound, and there is nothing left to wait for.)
        unsafe {
            for (_, p) in self
                .pipelines
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .drain(..)
            {
                self.device.destroy_pipeline(p, None);
            }
            self.device
                .destroy_pipeline_layout(self.pipeline_layout, None);
            self.device
                .destroy_descriptor_set_layout(self.set_layout, None);
            self.device.destroy_device(None);
        }
        let _ = &self.instance;
    }
}

/// Everything one run creates. Destroyed only when its fence has signalled (or it never was submitted).
struct RunObjects {
    arena_buffer: vk::Buffer,
    arena_memory: vk::DeviceMemory,
    run_buffer: vk::Buffer,
    run_memory: vk::DeviceMemory,
    desc_pool: vk::DescriptorPool,
    cmd_pool: vk::CommandPool,
    fence: vk::Fence,
    /// The imported host memory (ring arena or pump arena) stays mapped while the import exists.
    _arena: Option<HostMemory>,
}

/// Page-aligned host memory a run imports (`VK_EXT_external_memory_host`), and what keeps it mapped for as
/// long as the import exists: a ring's [`ArenaKeepAlive`], or an `Arc` of a pump arena.
pub(super) struct HostMemory {
    base: *mut u8,
    len: usize,
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

// SAFETY: the pointer is only an address handed to Vulkan; the memory it names is owned by `_keep` (Send + Sync).
unsafe impl Send for HostMemory {}
// SAFETY: as above.
unsafe impl Sync for HostMemory {}

impl HostMemory {
    /// `base`/`len` must lie inside memory that `keep` keeps mapped for as long as it lives.
    pub fn new(
        base: *mut u8,
        len: usize,
        keep: Box<dyn std::any::Any + Send + Sync>,
    ) -> HostMemory {
        HostMemory {
            base,
            len,
            _keep: keep,
        }
    }
}

impl From<ArenaKeepAlive> for HostMemory {
    fn from(keep: ArenaKeepAlive) -> HostMemory {
        let (base, len) = keep.arena();
        HostMemory::new(base, len, Box::new(keep))
    }
}

impl RunObjects {
    fn destroy(&mut self, d: &ash::Device) {
        // SAFETY: called only when no submitted work uses these objects (fence signalled, or never
        // submitted); null handles are ignored by vkDestroy*/vkFreeMemory.
        unsafe {
            d.destroy_command_pool(self.cmd_pool, None);
            d.destroy_descriptor_pool(self.desc_pool, None);
            d.destroy_buffer(self.arena_buffer, None);
            d.free_memory(self.arena_memory, None);
            d.unmap_memory_if(self.run_memory);
            d.destroy_buffer(self.run_buffer, None);
            d.free_memory(self.run_memory, None);
            d.destroy_fence(self.fence, None);
        }
        self._arena = None;
    }
}

trait UnmapIf {
    /// # Safety
    /// `m` must be null or memory of this device that is mapped and not in use by the host.
    unsafe fn unmap_memory_if(&self, m: vk::DeviceMemory);
}
impl UnmapIf for ash::Device {
    unsafe fn unmap_memory_if(&self, m: vk::DeviceMemory) {
        if m != vk::DeviceMemory::null() {
            // SAFETY: the caller's contract.
            unsafe { self.unmap_memory(m) };
        }
    }
}

/// One program run: the arena imported, a host-visible run buffer mapped, one command buffer that dispatches
/// the program over every lane (recorded once, submitted once per dispatch).
pub(super) struct Run<'c> {
    ctx: &'c Context,
    objs: RunObjects,
    run_ptr: *mut u8,
    run_len: usize,
    cmd: vk::CommandBuffer,
    /// Submitted and not yet seen signalled.
    in_flight: bool,
}

/// How a dispatch ended.
pub(super) enum Waited {
    Done,
    TimedOut,
}

impl<'c> Run<'c> {
    /// Imports the host memory `keep` names and keeps mapped (bound at bindings 0 and 1), creates the run
    /// buffer (`run_len` bytes, binding 2) and records `groups` workgroups of `pipeline` with `push` as push
    /// constants.
    pub fn new(
        ctx: &'c Context,
        keep: HostMemory,
        run_len: usize,
        pipeline: vk::Pipeline,
        push: &[u8; 128],
        groups: u32,
    ) -> Result<Run<'c>, String> {
        let d = &ctx.device;
        let (base, len) = (keep.base, keep.len);
        let align = ctx.min_import_alignment as usize;
        if base as usize % align != 0 || len % align != 0 {
            return Err(format!(
                "arena at {base:p} ({len} bytes) is not aligned to minImportedHostPointerAlignment {align}"
            ));
        }
        let mut run = Run {
            ctx,
            objs: RunObjects {
                arena_buffer: vk::Buffer::null(),
                arena_memory: vk::DeviceMemory::null(),
                run_buffer: vk::Buffer::null(),
                run_memory: vk::DeviceMemory::null(),
                desc_pool: vk::DescriptorPool::null(),
                cmd_pool: vk::CommandPool::null(),
                fence: vk::Fence::null(),
                _arena: Some(keep),
            },
            run_ptr: std::ptr::null_mut(),
            run_len,
            cmd: vk::CommandBuffer::null(),
            in_flight: false,
        };
        let handle = vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT;
        // -- the arena: a storage buffer over imported host memory
        let mut ext_info = vk::ExternalMemoryBufferCreateInfo::default().handle_types(handle);
        let binfo = vk::BufferCreateInfo::default()
            .size(len as u64)
            .usage(vk::BufferUsageFlags::STORAGE_BUFFER)
            .sharing_mode(vk::SharingMode::EXCLUSIVE)
            .push_next(&mut ext_info);
        // SAFETY: live device; the info chain lives across the call. Each created object is stored in
        // `run.objs` at once, so an early return destroys it (never submitted).
        run.objs.arena_buffer = unsafe { d.create_buffer(&binfo, None) }
            .map_err(|e| format!("vkCreateBuffer(arena) failed: {e}"))?;
        let mut hp = vk::MemoryHostPointerPropertiesEXT::default();
        // SAFETY: `base` is a live host allocation of `len` bytes (a ring or pump arena, kept mapped by `keep`
        // for as long as this run or its orphan exists), aligned as checked above.
        let r = unsafe {
            (ctx.host_mem.fp().get_memory_host_pointer_properties_ext)(
                d.handle(),
                handle,
                base as *const c_void,
                &mut hp,
            )
        };
        if r != vk::Result::SUCCESS {
            return Err(format!("vkGetMemoryHostPointerPropertiesEXT failed: {r}"));
        }
        // SAFETY: live buffer.
        let req = unsafe { d.get_buffer_memory_requirements(run.objs.arena_buffer) };
        let bits = hp.memory_type_bits & req.memory_type_bits;
        let mt = ctx
            .memory_type(
                bits,
                vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT,
            )
            .ok_or_else(|| {
                format!("no HOST_COHERENT memory type can import host memory (type bits {bits:#x})")
            })?;
        let mut import = vk::ImportMemoryHostPointerInfoEXT::default()
            .handle_type(handle)
            .host_pointer(base as *mut c_void);
        let ainfo = vk::MemoryAllocateInfo::default()
            .allocation_size(len as u64)
            .memory_type_index(mt)
            .push_next(&mut import);
        // SAFETY: as for the properties query: `base`/`len` stay valid while the import exists.
        run.objs.arena_memory = unsafe { d.allocate_memory(&ainfo, None) }
            .map_err(|e| format!("importing the arena (vkAllocateMemory) failed: {e}"))?;
        // SAFETY: fresh buffer and memory of matching size.
        unsafe { d.bind_buffer_memory(run.objs.arena_buffer, run.objs.arena_memory, 0) }
            .map_err(|e| format!("vkBindBufferMemory(arena) failed: {e}"))?;

        // -- the run buffer: ordinary host-visible memory
        let binfo = vk::BufferCreateInfo::default()
            .size(run_len as u64)
            .usage(vk::BufferUsageFlags::STORAGE_BUFFER)
            .sharing_mode(vk::SharingMode::EXCLUSIVE);
        // SAFETY: live device; info lives across the call.
        run.objs.run_buffer = unsafe { d.create_buffer(&binfo, None) }
            .map_err(|e| format!("vkCreateBuffer(run) failed: {e}"))?;
        // SAFETY: live buffer.
        let req = unsafe { d.get_buffer_memory_requirements(run.objs.run_buffer) };
        let mt = ctx
            .memory_type(
                req.memory_type_bits,
                vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT,
            )
            .ok_or("no HOST_VISIBLE | HOST_COHERENT memory type for the run buffer")?;
        let ainfo = vk::MemoryAllocateInfo::default()
            .allocation_size(req.size)
            .memory_type_index(mt);
        // SAFETY: live device; info lives across the call.
        run.objs.run_memory = unsafe { d.allocate_memory(&ainfo, None) }
            .map_err(|e| format!("vkAllocateMemory(run) failed: {e}"))?;
        // SAFETY: fresh buffer and memory of sufficient size.
        unsafe { d.bind_buffer_memory(run.objs.run_buffer, run.objs.run_memory, 0) }
            .map_err(|e| format!("vkBindBufferMemory(run) failed: {e}"))?;
        // SAFETY: host-visible memory, not mapped yet; unmapped in `destroy`.
        run.run_ptr = unsafe {
            d.map_memory(
                run.objs.run_memory,
                0,
                vk::WHOLE_SIZE,
                vk::MemoryMapFlags::empty(),
            )
        }
        .map_err(|e| format!("vkMapMemory(run) failed: {e}"))? as *mut u8;

        // -- descriptors: 0 and 1 = the arena (32- and 64-bit views), 2 = the run buffer
        let sizes = [vk::DescriptorPoolSize {
            ty: vk::DescriptorType::STORAGE_BUFFER,
            descriptor_count: 3,
        }];
        let pinfo = vk::DescriptorPoolCreateInfo::default()
            .max_sets(1)
            .pool_sizes(&sizes);
        // SAFETY: live device; info lives across the call.
        run.objs.desc_pool = unsafe { d.create_descriptor_pool(&pinfo, None) }
            .map_err(|e| format!("vkCreateDescriptorPool failed: {e}"))?;
        let layouts = [ctx.set_layout];
        let sinfo = vk::DescriptorSetAllocateInfo::default()
            .descriptor_pool(run.objs.desc_pool)
            .set_layouts(&layouts);
        // SAFETY: live pool with room for one set of this layout.
        let set = unsafe { d.allocate_descriptor_sets(&sinfo) }
            .map_err(|e| format!("vkAllocateDescriptorSets failed: {e}"))?[0];
        let arena_info = [vk::DescriptorBufferInfo {
            buffer: run.objs.arena_buffer,
            offset: 0,
            range: vk::WHOLE_SIZE,
        }];
        let run_info = [vk::DescriptorBufferInfo {
            buffer: run.objs.run_buffer,
            offset: 0,
            range: vk::WHOLE_SIZE,
        }];
        let writes = [
            vk::WriteDescriptorSet::default()
                .dst_set(set)
                .dst_binding(0)
                .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                .buffer_info(&arena_info),
            vk::WriteDescriptorSet::default()
                .dst_set(set)
                .dst_binding(1)
                .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                .buffer_info(&arena_info),
            vk::WriteDescriptorSet::default()
                .dst_set(set)
                .dst_binding(2)
                .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                .buffer_info(&run_info),
        ];
        // SAFETY: the set and buffers are live; nothing uses the set yet.
        unsafe { d.update_descriptor_sets(&writes, &[]) };

        // -- the command buffer
        let cinfo = vk::CommandPoolCreateInfo::default().queue_family_index(ctx.queue_family);
        // SAFETY: live device; info lives across the call.
        run.objs.cmd_pool = unsafe { d.create_command_pool(&cinfo, None) }
            .map_err(|e| format!("vkCreateCommandPool failed: {e}"))?;
        let ainfo = vk::CommandBufferAllocateInfo::default()
            .command_pool(run.objs.cmd_pool)
            .level(vk::CommandBufferLevel::PRIMARY)
            .command_buffer_count(1);
        // SAFETY: live pool.
        run.cmd = unsafe { d.allocate_command_buffers(&ainfo) }
            .map_err(|e| format!("vkAllocateCommandBuffers failed: {e}"))?[0];
        let to_host = [vk::MemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::SHADER_WRITE)
            .dst_access_mask(vk::AccessFlags::HOST_READ)];
        // SAFETY: a fresh command buffer recorded by this thread only; every handle is live; the barrier makes
        // the run buffer's shader writes visible to the host after the fence.
        unsafe {
            d.begin_command_buffer(run.cmd, &vk::CommandBufferBeginInfo::default())
                .map_err(|e| format!("vkBeginCommandBuffer failed: {e}"))?;
            d.cmd_bind_pipeline(run.cmd, vk::PipelineBindPoint::COMPUTE, pipeline);
            d.cmd_bind_descriptor_sets(
                run.cmd,
                vk::PipelineBindPoint::COMPUTE,
                ctx.pipeline_layout,
                0,
                &[set],
                &[],
            );
            d.cmd_push_constants(
                run.cmd,
                ctx.pipeline_layout,
                vk::ShaderStageFlags::COMPUTE,
                0,
                push,
            );
            d.cmd_dispatch(run.cmd, groups, 1, 1);
            d.cmd_pipeline_barrier(
                run.cmd,
                vk::PipelineStageFlags::COMPUTE_SHADER,
                vk::PipelineStageFlags::HOST,
                vk::DependencyFlags::empty(),
                &to_host,
                &[],
                &[],
            );
            d.end_command_buffer(run.cmd)
                .map_err(|e| format!("vkEndCommandBuffer failed: {e}"))?;
        }
        // SAFETY: live device.
        run.objs.fence = unsafe { d.create_fence(&vk::FenceCreateInfo::default(), None) }
            .map_err(|e| format!("vkCreateFence failed: {e}"))?;
        Ok(run)
    }

    /// The mapped run buffer. Only valid to touch while no dispatch is in flight (between `dispatch` calls),
    /// except for words the program treats as host-shared.
    pub fn run_bytes(&mut self) -> &mut [u8] {
        assert!(!self.in_flight, "run buffer touched while a dispatch runs");
        // SAFETY: `run_ptr` maps `run_len` bytes of host-coherent memory for as long as `self` lives; no
        // dispatch is in flight (asserted), so the device does not access it concurrently.
        unsafe { std::slice::from_raw_parts_mut(self.run_ptr, self.run_len) }
    }

    /// Submits one dispatch and waits at most `limit` for it.
    pub fn dispatch(&mut self, limit: Duration) -> Result<Waited, String> {
        let d = &self.ctx.device;
        let cmds = [self.cmd];
        let submit = [vk::SubmitInfo::default().command_buffers(&cmds)];
        {
            let q = self.ctx.queue.lock().unwrap_or_else(|p| p.into_inner());
            // SAFETY: the queue is externally synchronised by the mutex; the command buffer is executable and
            // not pending (the previous submission's fence was waited for and reset); the fence is unsignalled.
            unsafe { d.queue_submit(*q, &submit, self.objs.fence) }
                .map_err(|e| format!("vkQueueSubmit failed: {e}"))?;
        }
        self.in_flight = true;
        let ns = limit.as_nanos().min(u64::MAX as u128) as u64;
        // SAFETY: the fence belongs to this device.
        match unsafe { d.wait_for_fences(&[self.objs.fence], true, ns) } {
            Ok(()) => {
                self.in_flight = false;
                // SAFETY: the fence is signalled and no longer used by a pending submission.
                unsafe { d.reset_fences(&[self.objs.fence]) }
                    .map_err(|e| format!("vkResetFences failed: {e}"))?;
                Ok(Waited::Done)
            }
            Err(vk::Result::TIMEOUT) => Ok(Waited::TimedOut),
            Err(e) => Err(format!("vkWaitForFences failed: {e}")),
        }
    }

    /// Whether a dispatch is still running (only after a `TimedOut`).
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        let d = &self.ctx.device;
        if self.in_flight {
            // SAFETY: the fence belongs to this device.
            let done = unsafe { d.get_fence_status(self.objs.fence) }.unwrap_or(false);
            if !done {
                // Still running: park everything (with the arena) until the fence signals.
                let objs = std::mem::replace(
                    &mut self.objs,
                    RunObjects {
                        arena_buffer: vk::Buffer::null(),
                        arena_memory: vk::DeviceMemory::null(),
                        run_buffer: vk::Buffer::null(),
                        run_memory: vk::DeviceMemory::null(),
                        desc_pool: vk::DescriptorPool::null(),
                        cmd_pool: vk::CommandPool::null(),
                        fence: vk::Fence::null(),
                        _arena: None,
                    },
                );
                self.ctx
                    .orphans
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(objs);
                return;
            }
        }
        self.objs.destroy(d);
    }
}
