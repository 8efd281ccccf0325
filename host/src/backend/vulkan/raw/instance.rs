//! The loader, the `VkInstance`, and what the backend learns about each physical device.

use std::ffi::CStr;

use ash::vk;

use crate::backend::vulkan::error::VkError;

/// `VK_EXT_external_memory_host`.
pub(crate) const EXT_MEMORY_HOST: &CStr = c"VK_EXT_external_memory_host";
/// `VK_KHR_external_semaphore_fd` (a dispatch's completion exported as a `sync_file`).
pub(crate) const EXT_SEMAPHORE_FD: &CStr = c"VK_KHR_external_semaphore_fd";

/// The loader and a `VkInstance`.
pub(crate) struct Instance {
    _entry: ash::Entry,
    pub(crate) instance: ash::Instance,
}

/// What the backend learns about one physical device.
#[derive(Debug, Clone)]
pub(crate) struct PhysInfo {
    pub pd: vk::PhysicalDevice,
    pub name: String,
    pub device_type: vk::PhysicalDeviceType,
    pub api_version: u32,
    pub driver: String,
    pub subgroup_size: u32,
    pub min_import_alignment: u64,
    pub queue_family: Option<u32>,
    /// `Ok` if a binary semaphore can be exported as a `sync_file` (`VK_KHR_external_semaphore_fd`, handle
    /// type `SYNC_FD`, exportable), else why not.
    pub sync_fd_export: Result<(), String>,
    /// `Err(reason)` when the device lacks something the protocol needs.
    pub usable: Result<(), String>,
}

impl Instance {
    /// Loads the Vulkan loader at run time and creates an instance (API 1.2).
    pub fn load() -> Result<Instance, VkError> {
        // SAFETY: `Entry::load` dlopens libvulkan; the library's initialisers are trusted like any system
        // library. The returned Entry keeps it loaded for as long as it lives (stored in `Instance`).
        let entry = unsafe { ash::Entry::load() }.map_err(|e| VkError::NoLoader(e.to_string()))?;
        let app = vk::ApplicationInfo::default()
            .application_name(c"gpu-uring")
            .api_version(vk::API_VERSION_1_2);
        let info = vk::InstanceCreateInfo::default().application_info(&app);
        // SAFETY: `info` and what it points to live across the call; no allocator callbacks.
        let instance = unsafe { entry.create_instance(&info, None) }.map_err(VkError::NoDriver)?;
        Ok(Instance {
            _entry: entry,
            instance,
        })
    }

    /// Every physical device with its properties and whether the protocol can run on it.
    pub fn physical_devices(&self) -> Result<Vec<PhysInfo>, VkError> {
        let inst = &self.instance;
        // SAFETY: `inst` is a live instance.
        let pds = unsafe { inst.enumerate_physical_devices() }
            .map_err(VkError::call("vkEnumeratePhysicalDevices"))?;
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
        let usable = self.check_usable(pd, p.api_version, queue_family, &subgroup, has_host_memory);
        let has_sem_fd = exts
            .iter()
            .any(|e| e.extension_name_as_c_str() == Ok(EXT_SEMAPHORE_FD));
        let sync_fd_export = if !has_sem_fd {
            Err("no VK_KHR_external_semaphore_fd".into())
        } else if p.api_version < vk::API_VERSION_1_1 {
            Err("Vulkan 1.0 device".into())
        } else {
            let info = vk::PhysicalDeviceExternalSemaphoreInfo::default()
                .handle_type(vk::ExternalSemaphoreHandleTypeFlags::SYNC_FD);
            let mut props = vk::ExternalSemaphoreProperties::default();
            // SAFETY: `pd` came from this instance, whose devices are 1.1 or newer here (core query); the
            // structs live across the call.
            unsafe {
                inst.get_physical_device_external_semaphore_properties(pd, &info, &mut props)
            };
            if props
                .external_semaphore_features
                .contains(vk::ExternalSemaphoreFeatureFlags::EXPORTABLE)
            {
                Ok(())
            } else {
                Err(format!(
                    "SYNC_FD semaphores not exportable (features {:?})",
                    props.external_semaphore_features
                ))
            }
        };
        if let Err(why) = &sync_fd_export {
            log::debug!("vulkan: {name}: launches get emulated completion descriptors: {why}");
        }
        PhysInfo {
            pd,
            name,
            device_type: p.device_type,
            api_version: p.api_version,
            driver: drv,
            subgroup_size: subgroup.subgroup_size.max(1),
            min_import_alignment: host.min_imported_host_pointer_alignment,
            queue_family,
            sync_fd_export,
            usable,
        }
    }

    fn check_usable(
        &self,
        pd: vk::PhysicalDevice,
        api: u32,
        queue_family: Option<u32>,
        subgroup: &vk::PhysicalDeviceSubgroupProperties<'_>,
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
        if subgroup.subgroup_size == 0 {
            return Err("subgroup size unknown".into());
        }
        // The ring library aggregates per subgroup (elect, ballot, broadcast) in compute shaders.
        let ops = vk::SubgroupFeatureFlags::BASIC | vk::SubgroupFeatureFlags::BALLOT;
        if !subgroup.supported_operations.contains(ops)
            || !subgroup
                .supported_stages
                .contains(vk::ShaderStageFlags::COMPUTE)
        {
            return Err(format!(
                "subgroup operations {:?} in {:?}; basic and ballot in compute shaders are needed",
                subgroup.supported_operations, subgroup.supported_stages
            ));
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
        if f12.storage_buffer8_bit_access == 0 {
            missing.push("storageBuffer8BitAccess (print-log lines start and end inside words)");
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
