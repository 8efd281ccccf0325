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
pub(super) const PUSH_CONSTANT_BYTES: u32 = 128;

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
        // SAFETY: the built-in programs are valid SPIR-V built by device-shaders/build.sh (checked in CI) for
        // this context's pipeline layout.
        let p = unsafe { self.create_pipeline(self.pipeline_layout, name, spirv) }?;
        cache.push((name, p));
        Ok(p)
    }

    /// A compute pipeline from `spirv` (entry point `main`) with `layout`, and the subgroup size as
    /// specialization constant 0 (`local_size_x_id = 0`; ignored by a shader that declares no such constant).
    ///
    /// # Safety
    /// `spirv` must be a valid SPIR-V compute module for Vulkan 1.2 whose interface matches `layout`.
    unsafe fn create_pipeline(
        &self,
        layout: vk::PipelineLayout,
        name: &str,
        spirv: &[u8],
    ) -> Result<vk::Pipeline, String> {
        let words = ash::util::read_spv(&mut std::io::Cursor::new(spirv))
            .map_err(|e| format!("SPIR-V {name} is malformed: {e}"))?;
        let info = vk::ShaderModuleCreateInfo::default().code(&words);
        // SAFETY: live device; `words` is valid SPIR-V (the caller's contract).
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
            .layout(layout)];
        // SAFETY: live device, module and layout; the infos live across the call; the module's interface
        // matches the layout (the caller's contract).
        let r = unsafe {
            self.device
                .create_compute_pipelines(vk::PipelineCache::null(), &infos, None)
        };
        // SAFETY: the module is no longer needed once the pipeline exists (or failed).
        unsafe { self.device.destroy_shader_module(module, None) };
        Ok(r.map_err(|(_, e)| format!("vkCreateComputePipelines({name}) failed: {e}"))?[0])
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
    /// The ring arena stays mapped while the import exists.
    _arena: Option<ArenaKeepAlive>,
    /// What a caller-supplied kernel's run uses and does not own (its pipeline, its buffers): kept alive
    /// until the objects above are destroyed.
    keep: Vec<Arc<dyn Send + Sync>>,
}

impl RunObjects {
    fn empty(arena: Option<ArenaKeepAlive>) -> RunObjects {
        RunObjects {
            arena_buffer: vk::Buffer::null(),
            arena_memory: vk::DeviceMemory::null(),
            run_buffer: vk::Buffer::null(),
            run_memory: vk::DeviceMemory::null(),
            desc_pool: vk::DescriptorPool::null(),
            cmd_pool: vk::CommandPool::null(),
            fence: vk::Fence::null(),
            _arena: arena,
            keep: Vec::new(),
        }
    }

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
        *self = RunObjects::empty(None);
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

impl Context {
    /// A memory type allowed by `bits` with every flag of `want`, preferring one without any of `avoid`.
    fn memory_type_pref(
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

    fn memory_flags(&self, mt: u32) -> vk::MemoryPropertyFlags {
        self.mem_props.memory_types[mt as usize].property_flags
    }

    /// A storage buffer over host memory, imported with `VK_EXT_external_memory_host` into a HOST_COHERENT
    /// memory type: (buffer, memory, the type's flags). On error nothing is left behind.
    ///
    /// # Safety
    /// `base` must be a live, writable host allocation of `len` bytes that stays valid until the returned
    /// memory is freed (and, if a dispatch using it outlives its time limit, until the parked run is freed).
    unsafe fn import_host(
        &self,
        base: *mut u8,
        len: usize,
    ) -> Result<(vk::Buffer, vk::DeviceMemory, vk::MemoryPropertyFlags), String> {
        let d = &self.device;
        let align = self.min_import_alignment as usize;
        if base as usize % align != 0 || len % align != 0 || len == 0 {
            return Err(format!(
                "host memory at {base:p} ({len} bytes) is not aligned to minImportedHostPointerAlignment {align}"
            ));
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
            .map_err(|e| format!("vkCreateBuffer(imported) failed: {e}"))?;
        let fail = |msg: String| {
            // SAFETY: the buffer was created above, is bound to nothing in use and never submitted.
            unsafe { d.destroy_buffer(buffer, None) };
            msg
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
            return Err(fail(format!(
                "vkGetMemoryHostPointerPropertiesEXT failed: {r}"
            )));
        }
        // SAFETY: live buffer.
        let req = unsafe { d.get_buffer_memory_requirements(buffer) };
        let bits = hp.memory_type_bits & req.memory_type_bits;
        let Some(mt) = self.memory_type(
            bits,
            vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT,
        ) else {
            return Err(fail(format!(
                "no HOST_COHERENT memory type can import host memory (type bits {bits:#x})"
            )));
        };
        let mut import = vk::ImportMemoryHostPointerInfoEXT::default()
            .handle_type(handle)
            .host_pointer(base as *mut c_void);
        let ainfo = vk::MemoryAllocateInfo::default()
            .allocation_size(len as u64)
            .memory_type_index(mt)
            .push_next(&mut import);
        // SAFETY: as for the properties query: `base`/`len` stay valid while the import exists.
        let memory = unsafe { d.allocate_memory(&ainfo, None) }.map_err(|e| {
            fail(format!(
                "importing host memory (vkAllocateMemory) failed: {e}"
            ))
        })?;
        // SAFETY: fresh buffer and memory of matching size.
        if let Err(e) = unsafe { d.bind_buffer_memory(buffer, memory, 0) } {
            // SAFETY: the memory was allocated above and is bound to nothing.
            unsafe { d.free_memory(memory, None) };
            return Err(fail(format!("vkBindBufferMemory(imported) failed: {e}")));
        }
        Ok((buffer, memory, self.memory_flags(mt)))
    }

    /// A storage buffer of `len` bytes in a memory type with `want` (preferring one without `avoid`):
    /// (buffer, memory, the type's flags). On error nothing is left behind.
    fn allocate_buffer(
        &self,
        len: usize,
        want: vk::MemoryPropertyFlags,
        avoid: vk::MemoryPropertyFlags,
    ) -> Result<(vk::Buffer, vk::DeviceMemory, vk::MemoryPropertyFlags), String> {
        let d = &self.device;
        let binfo = vk::BufferCreateInfo::default()
            .size(len.max(4) as u64)
            .usage(vk::BufferUsageFlags::STORAGE_BUFFER)
            .sharing_mode(vk::SharingMode::EXCLUSIVE);
        // SAFETY: live device; info lives across the call.
        let buffer = unsafe { d.create_buffer(&binfo, None) }
            .map_err(|e| format!("vkCreateBuffer failed: {e}"))?;
        let fail = |msg: String| {
            // SAFETY: the buffer was created above and never used.
            unsafe { d.destroy_buffer(buffer, None) };
            msg
        };
        // SAFETY: live buffer.
        let req = unsafe { d.get_buffer_memory_requirements(buffer) };
        let Some(mt) = self.memory_type_pref(req.memory_type_bits, want, avoid) else {
            return Err(fail(format!("no memory type with {want:?} for a buffer")));
        };
        let ainfo = vk::MemoryAllocateInfo::default()
            .allocation_size(req.size)
            .memory_type_index(mt);
        // SAFETY: live device; info lives across the call.
        let memory = unsafe { d.allocate_memory(&ainfo, None) }
            .map_err(|e| fail(format!("vkAllocateMemory({} bytes) failed: {e}", req.size)))?;
        // SAFETY: fresh buffer and memory of sufficient size.
        if let Err(e) = unsafe { d.bind_buffer_memory(buffer, memory, 0) } {
            // SAFETY: the memory was allocated above and is bound to nothing.
            unsafe { d.free_memory(memory, None) };
            return Err(fail(format!("vkBindBufferMemory failed: {e}")));
        }
        Ok((buffer, memory, self.memory_flags(mt)))
    }
}

/// One program run: the arena imported, a host-visible run buffer mapped, one command buffer that dispatches
/// the program over every lane (recorded once, submitted once per dispatch). A caller-supplied kernel's run
/// ([`Run::kernel`]) has no run buffer; its bindings are the caller's buffers and, optionally, the arena.
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
    fn empty(ctx: &'c Context, arena: Option<ArenaKeepAlive>) -> Run<'c> {
        Run {
            ctx,
            objs: RunObjects::empty(arena),
            run_ptr: std::ptr::null_mut(),
            run_len: 0,
            cmd: vk::CommandBuffer::null(),
            in_flight: false,
        }
    }

    /// Imports the arena the run's keep-alive keeps mapped into `objs` (once).
    fn import_arena(&mut self) -> Result<vk::Buffer, String> {
        if self.objs.arena_buffer == vk::Buffer::null() {
            let (base, len) = self
                .objs
                ._arena
                .as_ref()
                .map(|k| k.arena())
                .ok_or("no arena to import")?;
            // SAFETY: the arena is a live mapping of `len` bytes kept mapped by `objs._arena`, which lives
            // as long as the import (it is dropped only after `destroy`, and parked with the run otherwise).
            let (b, m, _) = unsafe { self.ctx.import_host(base, len) }
                .map_err(|e| format!("the ring arena: {e}"))?;
            self.objs.arena_buffer = b;
            self.objs.arena_memory = m;
        }
        Ok(self.objs.arena_buffer)
    }

    /// Imports the arena `keep` keeps mapped, creates the run buffer (`run_len` bytes) and records `groups`
    /// workgroups of `pipeline` with `push` as push constants.
    pub fn new(
        ctx: &'c Context,
        keep: ArenaKeepAlive,
        run_len: usize,
        pipeline: vk::Pipeline,
        push: &[u8; 128],
        groups: u32,
    ) -> Result<Run<'c>, String> {
        let d = &ctx.device;
        let mut run = Run::empty(ctx, Some(keep));
        run.run_len = run_len;
        // -- the arena: a storage buffer over imported host memory
        let arena = run.import_arena()?;
        // -- the run buffer: ordinary host-visible memory
        let (b, m, _) = ctx.allocate_buffer(
            run_len,
            vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT,
            vk::MemoryPropertyFlags::empty(),
        )?;
        run.objs.run_buffer = b;
        run.objs.run_memory = m;
        // SAFETY: host-visible memory, not mapped yet; unmapped in `destroy`.
        run.run_ptr = unsafe { d.map_memory(m, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty()) }
            .map_err(|e| format!("vkMapMemory(run) failed: {e}"))? as *mut u8;
        // -- descriptors: 0 and 1 = the arena (32- and 64-bit views), 2 = the run buffer
        run.record(
            ctx.set_layout,
            ctx.pipeline_layout,
            pipeline,
            &[arena, arena, b],
            push,
            groups,
        )?;
        Ok(run)
    }

    /// A run of a caller-supplied kernel: binding `i` is `binds[i]`, the ring arena (imported) where it is
    /// `None`, else the caller's buffer; the run keeps the kernel and the buffers alive until its objects are
    /// destroyed.
    pub fn kernel(
        ctx: &'c Context,
        kernel: &Arc<Kernel>,
        arena: Option<ArenaKeepAlive>,
        binds: &[Option<Arc<Buffer>>],
        push: &[u8; 128],
        groups: u32,
    ) -> Result<Run<'c>, String> {
        if binds.len() != kernel.bindings as usize {
            return Err(format!(
                "kernel {} has {} bindings, {} given",
                kernel.name,
                kernel.bindings,
                binds.len()
            ));
        }
        let mut run = Run::empty(ctx, arena);
        run.objs.keep.push(kernel.clone());
        let mut buffers = Vec::with_capacity(binds.len());
        for b in binds {
            match b {
                None => buffers.push(run.import_arena()?),
                Some(b) => {
                    buffers.push(b.buffer);
                    run.objs.keep.push(b.clone());
                }
            }
        }
        run.record(
            kernel.set_layout,
            kernel.pipeline_layout,
            kernel.pipeline,
            &buffers,
            push,
            groups,
        )?;
        Ok(run)
    }

    /// Creates the descriptor set (binding `i` = `buffers[i]`, whole-size storage buffers), the command
    /// buffer (bind, push constants, dispatch `groups`, barrier to the host) and the fence.
    fn record(
        &mut self,
        set_layout: vk::DescriptorSetLayout,
        pipeline_layout: vk::PipelineLayout,
        pipeline: vk::Pipeline,
        buffers: &[vk::Buffer],
        push: &[u8; 128],
        groups: u32,
    ) -> Result<(), String> {
        let ctx = self.ctx;
        let d = &ctx.device;
        let sizes = [vk::DescriptorPoolSize {
            ty: vk::DescriptorType::STORAGE_BUFFER,
            descriptor_count: buffers.len().max(1) as u32,
        }];
        let pinfo = vk::DescriptorPoolCreateInfo::default()
            .max_sets(1)
            .pool_sizes(&sizes);
        // SAFETY: live device; info lives across the call. Each created object is stored in `self.objs` at
        // once, so an early return destroys it (never submitted).
        self.objs.desc_pool = unsafe { d.create_descriptor_pool(&pinfo, None) }
            .map_err(|e| format!("vkCreateDescriptorPool failed: {e}"))?;
        let layouts = [set_layout];
        let sinfo = vk::DescriptorSetAllocateInfo::default()
            .descriptor_pool(self.objs.desc_pool)
            .set_layouts(&layouts);
        // SAFETY: live pool with room for one set of this layout.
        let set = unsafe { d.allocate_descriptor_sets(&sinfo) }
            .map_err(|e| format!("vkAllocateDescriptorSets failed: {e}"))?[0];
        let infos: Vec<[vk::DescriptorBufferInfo; 1]> = buffers
            .iter()
            .map(|&buffer| {
                [vk::DescriptorBufferInfo {
                    buffer,
                    offset: 0,
                    range: vk::WHOLE_SIZE,
                }]
            })
            .collect();
        let writes: Vec<_> = infos
            .iter()
            .enumerate()
            .map(|(i, info)| {
                vk::WriteDescriptorSet::default()
                    .dst_set(set)
                    .dst_binding(i as u32)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .buffer_info(info)
            })
            .collect();
        // SAFETY: the set and buffers are live; nothing uses the set yet.
        unsafe { d.update_descriptor_sets(&writes, &[]) };

        let cinfo = vk::CommandPoolCreateInfo::default().queue_family_index(ctx.queue_family);
        // SAFETY: live device; info lives across the call.
        self.objs.cmd_pool = unsafe { d.create_command_pool(&cinfo, None) }
            .map_err(|e| format!("vkCreateCommandPool failed: {e}"))?;
        let ainfo = vk::CommandBufferAllocateInfo::default()
            .command_pool(self.objs.cmd_pool)
            .level(vk::CommandBufferLevel::PRIMARY)
            .command_buffer_count(1);
        // SAFETY: live pool.
        self.cmd = unsafe { d.allocate_command_buffers(&ainfo) }
            .map_err(|e| format!("vkAllocateCommandBuffers failed: {e}"))?[0];
        let to_host = [vk::MemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::SHADER_WRITE)
            .dst_access_mask(vk::AccessFlags::HOST_READ)];
        let cmd = self.cmd;
        // SAFETY: a fresh command buffer recorded by this thread only; every handle is live; the set layout
        // and the pipeline layout belong to the pipeline; the barrier makes the shader's writes visible to the
        // host after the fence.
        unsafe {
            d.begin_command_buffer(cmd, &vk::CommandBufferBeginInfo::default())
                .map_err(|e| format!("vkBeginCommandBuffer failed: {e}"))?;
            d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::COMPUTE, pipeline);
            d.cmd_bind_descriptor_sets(
                cmd,
                vk::PipelineBindPoint::COMPUTE,
                pipeline_layout,
                0,
                &[set],
                &[],
            );
            d.cmd_push_constants(cmd, pipeline_layout, vk::ShaderStageFlags::COMPUTE, 0, push);
            d.cmd_dispatch(cmd, groups.max(1), 1, 1);
            d.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::COMPUTE_SHADER,
                vk::PipelineStageFlags::HOST,
                vk::DependencyFlags::empty(),
                &to_host,
                &[],
                &[],
            );
            d.end_command_buffer(cmd)
                .map_err(|e| format!("vkEndCommandBuffer failed: {e}"))?;
        }
        // SAFETY: live device.
        self.objs.fence = unsafe { d.create_fence(&vk::FenceCreateInfo::default(), None) }
            .map_err(|e| format!("vkCreateFence failed: {e}"))?;
        Ok(())
    }

    /// The mapped run buffer (empty for a kernel run). Only valid to touch while no dispatch is in flight
    /// (between `dispatch` calls), except for words the program treats as host-shared.
    pub fn run_bytes(&mut self) -> &mut [u8] {
        assert!(!self.in_flight, "run buffer touched while a dispatch runs");
        if self.run_ptr.is_null() {
            return &mut [];
        }
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
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        let d = &self.ctx.device;
        if self.in_flight {
            // SAFETY: the fence belongs to this device.
            let done = unsafe { d.get_fence_status(self.objs.fence) }.unwrap_or(false);
            if !done {
                // Still running: park everything (with the arena) until the fence signals.
                let objs = std::mem::replace(&mut self.objs, RunObjects::empty(None));
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

/// Where a [`Buffer`]'s memory comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BufferKind {
    /// A DEVICE_LOCAL memory type, preferring one that is not host-visible; not mapped.
    DeviceLocal,
    /// A HOST_VISIBLE | HOST_COHERENT memory type allocated by the driver, mapped.
    HostVisible,
    /// A fresh anonymous `mmap` of this buffer's own, imported with `VK_EXT_external_memory_host`.
    Imported,
}

/// A storage buffer for caller-supplied kernels, with its memory. Shared through an `Arc`: a run that uses it
/// holds a clone, so a run parked after a timeout keeps it alive.
pub(super) struct Buffer {
    ctx: Arc<Context>,
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
    pub fn new(ctx: &Arc<Context>, kind: BufferKind, len: usize) -> Result<Buffer, String> {
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
                (b.buffer, b.memory, b.flags) =
                    ctx.allocate_buffer(len, F::DEVICE_LOCAL, F::HOST_VISIBLE)?;
            }
            BufferKind::HostVisible => {
                (b.buffer, b.memory, b.flags) =
                    ctx.allocate_buffer(len, F::HOST_VISIBLE | F::HOST_COHERENT, F::empty())?;
                // SAFETY: host-visible memory of this device, not mapped yet; unmapped in `drop`.
                b.host = unsafe {
                    ctx.device
                        .map_memory(b.memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty())
                }
                .map_err(|e| format!("vkMapMemory failed: {e}"))?
                    as *mut u8;
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
                    return Err(format!(
                        "mmap of {} bytes: {}",
                        b.len,
                        std::io::Error::last_os_error()
                    ));
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
    ) -> Result<Buffer, String> {
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

/// A caller-supplied compute shader: its own set layout (`bindings` storage buffers at bindings
/// 0..bindings), the 128-byte push-constant range, and the pipeline (specialization constant 0 = the
/// subgroup size, for shaders that declare it).
pub(super) struct Kernel {
    ctx: Arc<Context>,
    pub name: String,
    pub bindings: u32,
    set_layout: vk::DescriptorSetLayout,
    pipeline_layout: vk::PipelineLayout,
    pipeline: vk::Pipeline,
}

// SAFETY: Vulkan handles are plain identifiers usable from any thread; the kernel is immutable after creation.
unsafe impl Send for Kernel {}
// SAFETY: as above.
unsafe impl Sync for Kernel {}

impl Kernel {
    /// # Safety
    /// `spirv` must be a valid SPIR-V compute module for Vulkan 1.2 (entry point `main`) whose descriptor
    /// bindings are `bindings` storage buffers in set 0 and whose push constants fit 128 bytes.
    pub unsafe fn new(
        ctx: &Arc<Context>,
        name: &str,
        spirv: &[u8],
        bindings: u32,
    ) -> Result<Kernel, String> {
        let d = &ctx.device;
        let mut k = Kernel {
            ctx: ctx.clone(),
            name: name.to_owned(),
            bindings,
            set_layout: vk::DescriptorSetLayout::null(),
            pipeline_layout: vk::PipelineLayout::null(),
            pipeline: vk::Pipeline::null(),
        };
        let b: Vec<_> = (0..bindings)
            .map(|i| {
                vk::DescriptorSetLayoutBinding::default()
                    .binding(i)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .descriptor_count(1)
                    .stage_flags(vk::ShaderStageFlags::COMPUTE)
            })
            .collect();
        let info = vk::DescriptorSetLayoutCreateInfo::default().bindings(&b);
        // SAFETY: live device; the info lives across the call; stored in `k` at once, so an error return
        // destroys it (`Kernel::drop`).
        k.set_layout = unsafe { d.create_descriptor_set_layout(&info, None) }
            .map_err(|e| format!("vkCreateDescriptorSetLayout failed: {e}"))?;
        let ranges = [vk::PushConstantRange::default()
            .stage_flags(vk::ShaderStageFlags::COMPUTE)
            .offset(0)
            .size(PUSH_CONSTANT_BYTES)];
        let layouts = [k.set_layout];
        let info = vk::PipelineLayoutCreateInfo::default()
            .set_layouts(&layouts)
            .push_constant_ranges(&ranges);
        // SAFETY: as above.
        k.pipeline_layout = unsafe { d.create_pipeline_layout(&info, None) }
            .map_err(|e| format!("vkCreatePipelineLayout failed: {e}"))?;
        // SAFETY: the caller's contract (valid SPIR-V matching this layout).
        k.pipeline = unsafe { ctx.create_pipeline(k.pipeline_layout, name, spirv) }?;
        Ok(k)
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        let d = &self.ctx.device;
        // SAFETY: no run uses the kernel any more (every run holds an `Arc` of it until its fence signalled);
        // null handles are ignored.
        unsafe {
            d.destroy_pipeline(self.pipeline, None);
            d.destroy_pipeline_layout(self.pipeline_layout, None);
            d.destroy_descriptor_set_layout(self.set_layout, None);
        }
    }
}
