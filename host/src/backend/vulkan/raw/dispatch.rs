//! Runs: the descriptor set, the recorded command buffer and the fence of one kernel launch, submitted once per
//! dispatch (and again for a later launch with the same kernel and arguments) and waited for with a time limit.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use ash::vk;

use super::context::Context;
use super::kernel::Kernel;
use super::memory::Buffer;
use super::objects::RunObjects;
use crate::backend::vulkan::error::VkError;
use crate::ring::ArenaKeepAlive;

/// One kernel's run: one command buffer that dispatches the kernel with its bindings (the caller's buffers and,
/// optionally, the ring arena, imported by the run) and push constants, recorded once and submittable again
/// once the previous submission has been waited for.
pub(crate) struct Run {
    ctx: Arc<Context>,
    objs: RunObjects,
    cmd: vk::CommandBuffer,
    /// Submitted and not yet seen signalled.
    in_flight: bool,
}

/// How a dispatch ended.
pub(crate) enum Waited {
    Done,
    TimedOut,
}

impl Run {
    fn empty(ctx: &Arc<Context>, arena: Option<ArenaKeepAlive>) -> Run {
        Run {
            ctx: ctx.clone(),
            objs: RunObjects::empty(arena),
            cmd: vk::CommandBuffer::null(),
            in_flight: false,
        }
    }

    /// Imports the arena the run's keep-alive keeps mapped into `objs` (once).
    fn import_arena(&mut self) -> Result<vk::Buffer, VkError> {
        if self.objs.arena_buffer == vk::Buffer::null() {
            let (base, len) = self
                .objs
                .arena
                .as_ref()
                .map(|k| k.arena())
                .ok_or(VkError::NoArena)?;
            // SAFETY: the arena is a live mapping of `len` bytes kept mapped by `objs.arena`, which lives
            // as long as the import (it is dropped only after `destroy`, and parked with the run otherwise).
            let (b, m, _) = unsafe { self.ctx.import_host(base, len) }
                .map_err(|e| VkError::Arena(Box::new(e)))?;
            self.objs.arena_buffer = b;
            self.objs.arena_memory = m;
        }
        Ok(self.objs.arena_buffer)
    }

    /// A run of a caller-supplied kernel: binding `i` is `binds[i]`, the ring arena (imported) where it is
    /// `None`, else the caller's buffer; the run keeps the kernel and the buffers alive until its objects are
    /// destroyed.
    pub fn kernel(
        ctx: &Arc<Context>,
        kernel: &Arc<Kernel>,
        arena: Option<ArenaKeepAlive>,
        binds: &[Option<Arc<Buffer>>],
        push: &[u8; 128],
        groups: u32,
    ) -> Result<Run, VkError> {
        if binds.len() != kernel.bindings as usize {
            return Err(VkError::Bindings {
                kernel: kernel.name.clone(),
                bindings: kernel.bindings,
                given: binds.len(),
            });
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
    ) -> Result<(), VkError> {
        let ctx = &self.ctx;
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
            .map_err(VkError::call("vkCreateDescriptorPool"))?;
        let layouts = [set_layout];
        let sinfo = vk::DescriptorSetAllocateInfo::default()
            .descriptor_pool(self.objs.desc_pool)
            .set_layouts(&layouts);
        // SAFETY: live pool with room for one set of this layout.
        let set = unsafe { d.allocate_descriptor_sets(&sinfo) }
            .map_err(VkError::call("vkAllocateDescriptorSets"))?[0];
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
            .map_err(VkError::call("vkCreateCommandPool"))?;
        let ainfo = vk::CommandBufferAllocateInfo::default()
            .command_pool(self.objs.cmd_pool)
            .level(vk::CommandBufferLevel::PRIMARY)
            .command_buffer_count(1);
        // SAFETY: live pool.
        self.cmd = unsafe { d.allocate_command_buffers(&ainfo) }
            .map_err(VkError::call("vkAllocateCommandBuffers"))?[0];
        let to_host = [vk::MemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::SHADER_WRITE)
            .dst_access_mask(vk::AccessFlags::HOST_READ)];
        let cmd = self.cmd;
        // SAFETY: a fresh command buffer recorded by this thread only; every handle is live; the set layout
        // and the pipeline layout belong to the pipeline; the barrier makes the shader's writes visible to the
        // host after the fence.
        unsafe {
            d.begin_command_buffer(cmd, &vk::CommandBufferBeginInfo::default())
                .map_err(VkError::call("vkBeginCommandBuffer"))?;
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
                .map_err(VkError::call("vkEndCommandBuffer"))?;
        }
        // SAFETY: live device.
        self.objs.fence = unsafe { d.create_fence(&vk::FenceCreateInfo::default(), None) }
            .map_err(VkError::call("vkCreateFence"))?;
        Ok(())
    }

    /// Whether the run imported the ring arena itself (it then keeps the ring's arena mapped while it lives).
    pub fn holds_arena(&self) -> bool {
        self.objs.arena.is_some()
    }

    /// Replaces what the run keeps alive besides its own objects (its kernel and buffers): a run kept for
    /// re-submission holds none, and gets them back before it is submitted again.
    pub fn set_keep(&mut self, keep: Vec<Arc<dyn Send + Sync>>) {
        self.objs.keep = keep;
    }

    /// Submits one dispatch and waits at most `limit` for it. Every kernel and buffer the recorded commands use
    /// must be alive (held by the run's keep list while it may be pending).
    pub fn dispatch(&mut self, limit: Duration) -> Result<Waited, VkError> {
        self.submit(false)?;
        self.wait(limit)
    }

    /// Submits one dispatch without waiting. With `export` (and a device that exports `SYNC_FD` semaphores),
    /// the submission also signals a semaphore of the run's, exported as a `sync_file` that becomes readable
    /// when the dispatch completes: `Ok(Some(fd))`; `Ok(None)` without one. The same contract as
    /// [`dispatch`](Self::dispatch); [`wait`](Self::wait) for it before submitting again.
    pub fn submit(&mut self, export: bool) -> Result<Option<OwnedFd>, VkError> {
        let d = &self.ctx.device;
        let sem_fd = self.ctx.sem_fd.as_ref().filter(|_| export);
        if sem_fd.is_some() && self.objs.semaphore == vk::Semaphore::null() {
            let mut ex = vk::ExportSemaphoreCreateInfo::default()
                .handle_types(vk::ExternalSemaphoreHandleTypeFlags::SYNC_FD);
            let info = vk::SemaphoreCreateInfo::default().push_next(&mut ex);
            // SAFETY: live device with VK_KHR_external_semaphore_fd enabled (`sem_fd` is set only then); the
            // info and its chain live across the call. Stored in `objs` at once (destroyed with the run).
            self.objs.semaphore = unsafe { d.create_semaphore(&info, None) }
                .map_err(VkError::call("vkCreateSemaphore"))?;
        }
        let cmds = [self.cmd];
        let sems = [self.objs.semaphore];
        let mut submit = vk::SubmitInfo::default().command_buffers(&cmds);
        if sem_fd.is_some() {
            submit = submit.signal_semaphores(&sems);
        }
        {
            let q = self.ctx.queue.lock().unwrap_or_else(|p| p.into_inner());
            // SAFETY: the queue is externally synchronised by the mutex; the command buffer is executable and
            // not pending (the previous submission's fence was waited for and reset); the fence is unsignalled;
            // the semaphore, if signalled, is unsignalled with no pending signal (a SYNC_FD export, below,
            // left it so, and the previous submission that signalled it has completed).
            unsafe { d.queue_submit(*q, &[submit], self.objs.fence) }
                .map_err(VkError::call("vkQueueSubmit"))?;
        }
        self.in_flight = true;
        let Some(sem_fd) = sem_fd else {
            return Ok(None);
        };
        let info = vk::SemaphoreGetFdInfoKHR::default()
            .semaphore(self.objs.semaphore)
            .handle_type(vk::ExternalSemaphoreHandleTypeFlags::SYNC_FD);
        // SAFETY: the semaphore was created exportable as SYNC_FD and has a signal operation pending (the
        // submission above), as a SYNC_FD export requires; the export resets it to unsignalled (copy
        // transference), which nothing else here observes.
        let fd = unsafe { sem_fd.get_semaphore_fd(&info) }
            .map_err(VkError::call("vkGetSemaphoreFdKHR"))?;
        // -1: already signalled (no descriptor to wait on).
        // SAFETY: a non-negative result is a new descriptor the caller owns.
        Ok((fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Waits at most `limit` for the submitted dispatch (resets its fence once it has signalled).
    pub fn wait(&mut self, limit: Duration) -> Result<Waited, VkError> {
        let d = &self.ctx.device;
        let ns = limit.as_nanos().min(u64::MAX as u128) as u64;
        // SAFETY: the fence belongs to this device.
        match unsafe { d.wait_for_fences(&[self.objs.fence], true, ns) } {
            Ok(()) => {
                self.in_flight = false;
                // SAFETY: the fence is signalled and no longer used by a pending submission.
                unsafe { d.reset_fences(&[self.objs.fence]) }
                    .map_err(VkError::call("vkResetFences"))?;
                Ok(Waited::Done)
            }
            Err(vk::Result::TIMEOUT) => Ok(Waited::TimedOut),
            Err(result) => Err(VkError::Call {
                call: "vkWaitForFences",
                result,
            }),
        }
    }
}

impl Drop for Run {
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
