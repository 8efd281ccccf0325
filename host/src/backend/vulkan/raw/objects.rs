//! The Vulkan objects one run creates, destroyed together once no submitted work uses them.

use std::sync::Arc;

use ash::vk;

use crate::ring::ArenaKeepAlive;

/// Everything one run creates. Destroyed only when its fence has signalled (or it never was submitted).
pub(crate) struct RunObjects {
    pub(crate) arena_buffer: vk::Buffer,
    pub(crate) arena_memory: vk::DeviceMemory,
    pub(crate) desc_pool: vk::DescriptorPool,
    pub(crate) cmd_pool: vk::CommandPool,
    pub(crate) fence: vk::Fence,
    /// Signalled by an exported dispatch with the fence (its `sync_file`), or null.
    pub(crate) semaphore: vk::Semaphore,
    /// The ring arena stays mapped while the import exists.
    pub(crate) arena: Option<ArenaKeepAlive>,
    /// What a caller-supplied kernel's run uses and does not own (its pipeline, its buffers): kept alive
    /// until the objects above are destroyed.
    pub(crate) keep: Vec<Arc<dyn Send + Sync>>,
}

impl RunObjects {
    pub(crate) fn empty(arena: Option<ArenaKeepAlive>) -> RunObjects {
        RunObjects {
            arena_buffer: vk::Buffer::null(),
            arena_memory: vk::DeviceMemory::null(),
            desc_pool: vk::DescriptorPool::null(),
            cmd_pool: vk::CommandPool::null(),
            fence: vk::Fence::null(),
            semaphore: vk::Semaphore::null(),
            arena,
            keep: Vec::new(),
        }
    }

    pub(crate) fn destroy(&mut self, d: &ash::Device) {
        // SAFETY: called only when no submitted work uses these objects (fence signalled, or never
        // submitted); null handles are ignored by vkDestroy*/vkFreeMemory.
        unsafe {
            d.destroy_command_pool(self.cmd_pool, None);
            d.destroy_descriptor_pool(self.desc_pool, None);
            d.destroy_buffer(self.arena_buffer, None);
            d.free_memory(self.arena_memory, None);
            d.destroy_fence(self.fence, None);
            d.destroy_semaphore(self.semaphore, None);
        }
        *self = RunObjects::empty(None);
    }
}
