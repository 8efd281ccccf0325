//! A logical device (`VkDevice`) with one compute queue, and the orphan list of dispatches that outlived their
//! time limit.

use std::sync::{Arc, Mutex};

use ash::vk;

use super::instance::{Instance, PhysInfo, EXT_MEMORY_HOST, EXT_SEMAPHORE_FD};
use super::objects::RunObjects;
use crate::backend::vulkan::error::VkError;

/// Push-constant bytes of every kernel (Vulkan guarantees at least 128).
pub(crate) const PUSH_CONSTANT_BYTES: u32 = 128;

/// A logical device.
pub(crate) struct Context {
    instance: Arc<Instance>,
    pub(crate) device: ash::Device,
    pub(crate) host_mem: ash::ext::external_memory_host::Device,
    /// `VK_KHR_external_semaphore_fd`, enabled where `SYNC_FD` semaphores are exportable.
    pub(crate) sem_fd: Option<ash::khr::external_semaphore_fd::Device>,
    pub(crate) queue: Mutex<vk::Queue>,
    pub(crate) queue_family: u32,
    pub(crate) mem_props: vk::PhysicalDeviceMemoryProperties,
    pub min_import_alignment: u64,
    pub subgroup_size: u32,
    pub(crate) orphans: Mutex<Vec<RunObjects>>,
}

// SAFETY: Vulkan handles are plain identifiers usable from any thread; the one object with external
// synchronisation requirements used from several threads, the queue, is behind a Mutex, and the orphan list
// is too. Command pools, descriptor pools and fences belong to one `Run` at a time.
unsafe impl Send for Context {}
// SAFETY: as above.
unsafe impl Sync for Context {}

impl Context {
    /// Creates the logical device: one compute queue, `VK_EXT_external_memory_host`, int64 (atomics),
    /// float64, 8-bit storage-buffer access, and the Vulkan memory model with device scope.
    pub fn new(instance: Arc<Instance>, phys: &PhysInfo) -> Result<Context, VkError> {
        phys.usable.clone().map_err(VkError::Unusable)?;
        let qf = phys
            .queue_family
            .ok_or_else(|| VkError::Unusable("no compute queue".into()))?;
        let inst = &instance.instance;
        let prio = [1.0f32];
        let queues = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(qf)
            .queue_priorities(&prio)];
        let mut exts = vec![EXT_MEMORY_HOST.as_ptr()];
        if phys.sync_fd_export.is_ok() {
            exts.push(EXT_SEMAPHORE_FD.as_ptr());
        }
        let base = vk::PhysicalDeviceFeatures::default()
            .shader_int64(true)
            .shader_float64(true);
        let mut f12 = vk::PhysicalDeviceVulkan12Features::default()
            .shader_buffer_int64_atomics(true)
            .storage_buffer8_bit_access(true)
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
            .map_err(VkError::call("vkCreateDevice"))?;
        let host_mem = ash::ext::external_memory_host::Device::new(inst, &device);
        let sem_fd = phys
            .sync_fd_export
            .is_ok()
            .then(|| ash::khr::external_semaphore_fd::Device::new(inst, &device));
        // SAFETY: queue family `qf` with one queue was requested above.
        let queue = unsafe { device.get_device_queue(qf, 0) };
        // SAFETY: `phys.pd` came from this instance.
        let mem_props = unsafe { inst.get_physical_device_memory_properties(phys.pd) };
        let ctx = Context {
            instance: instance.clone(),
            device,
            host_mem,
            sem_fd,
            queue: Mutex::new(queue),
            queue_family: qf,
            mem_props,
            min_import_alignment: phys.min_import_alignment.max(1),
            subgroup_size: phys.subgroup_size,
            orphans: Mutex::new(Vec::new()),
        };
        Ok(ctx)
    }

    /// A compute pipeline from `spirv` (entry point `main`) with `layout`, and the subgroup size as
    /// specialization constant 0 (`local_size_x_id = 0`; ignored by a shader that declares no such constant).
    ///
    /// # Safety
    /// `spirv` must be a valid SPIR-V compute module for Vulkan 1.2 whose interface matches `layout`.
    pub(crate) unsafe fn create_pipeline(
        &self,
        layout: vk::PipelineLayout,
        name: &str,
        spirv: &[u8],
    ) -> Result<vk::Pipeline, VkError> {
        let words = ash::util::read_spv(&mut std::io::Cursor::new(spirv)).map_err(|e| {
            VkError::MalformedSpirv {
                kernel: name.to_owned(),
                reason: e.to_string(),
            }
        })?;
        let info = vk::ShaderModuleCreateInfo::default().code(&words);
        // SAFETY: live device; `words` is valid SPIR-V (the caller's contract).
        let module =
            unsafe { self.device.create_shader_module(&info, None) }.map_err(|result| {
                VkError::KernelCall {
                    call: "vkCreateShaderModule",
                    kernel: name.to_owned(),
                    result,
                }
            })?;
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
        let pipelines = r.map_err(|(_, result)| VkError::KernelCall {
            call: "vkCreateComputePipelines",
            kernel: name.to_owned(),
            result,
        })?;
        pipelines.first().copied().ok_or(VkError::KernelCall {
            call: "vkCreateComputePipelines",
            kernel: name.to_owned(),
            result: vk::Result::ERROR_UNKNOWN,
        })
    }

    pub(crate) fn memory_type(&self, bits: u32, want: vk::MemoryPropertyFlags) -> Option<u32> {
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
        // SAFETY: no run, kernel or buffer is alive (each holds an `Arc` of the context), every orphan is
        // destroyed, so nothing created from the device is in use. (No vkDeviceWaitIdle: it has no time bound,
        // and there is nothing left to wait for.)
        unsafe {
            self.device.destroy_device(None);
        }
        let _ = &self.instance;
    }
}
