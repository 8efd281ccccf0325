//! Caller-supplied compute shaders: their own set layout, pipeline layout and pipeline.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use ash::vk;

use super::context::{Context, PUSH_CONSTANT_BYTES};
use crate::backend::vulkan::error::VkError;

/// A caller-supplied compute shader: its own set layout (`bindings` storage buffers at bindings
/// 0..bindings), the 128-byte push-constant range, and the pipeline (specialization constant 0 = the
/// subgroup size, for shaders that declare it).
pub(crate) struct Kernel {
    ctx: Arc<Context>,
    pub name: String,
    pub bindings: u32,
    pub(crate) set_layout: vk::DescriptorSetLayout,
    pub(crate) pipeline_layout: vk::PipelineLayout,
    pub(crate) pipeline: vk::Pipeline,
    /// Set by the kernel's first dispatch (`backend::vulkan::run` gives that one a compile allowance).
    pub(crate) dispatched: AtomicBool,
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
    ) -> Result<Kernel, VkError> {
        let d = &ctx.device;
        let mut k = Kernel {
            ctx: ctx.clone(),
            name: name.to_owned(),
            bindings,
            set_layout: vk::DescriptorSetLayout::null(),
            pipeline_layout: vk::PipelineLayout::null(),
            pipeline: vk::Pipeline::null(),
            dispatched: AtomicBool::new(false),
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
            .map_err(VkError::call("vkCreateDescriptorSetLayout"))?;
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
            .map_err(VkError::call("vkCreatePipelineLayout"))?;
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
