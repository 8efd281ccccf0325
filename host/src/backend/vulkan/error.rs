//! The Vulkan backend's errors: [`VkError`] from the raw layer, and the [`DeviceError`]s the layers above map
//! them into (with the variant's message).

use ash::vk;

use crate::backend::DeviceError;

/// What went wrong in the raw Vulkan layer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VkError {
    /// `libvulkan.so.1` could not be loaded.
    #[error("no Vulkan loader (libvulkan.so.1): {0}")]
    NoLoader(String),
    /// The loader has no driver to create an instance with.
    #[error("vkCreateInstance failed: {0} (no Vulkan driver/ICD installed?)")]
    NoDriver(vk::Result),
    /// A Vulkan call failed.
    #[error("{call} failed: {result}")]
    Call {
        /// The call, e.g. `vkCreateBuffer`.
        call: &'static str,
        /// What it returned.
        result: vk::Result,
    },
    /// A Vulkan call creating a kernel's objects failed.
    #[error("{call}({kernel}) failed: {result}")]
    KernelCall {
        /// The call.
        call: &'static str,
        /// The kernel's name.
        kernel: String,
        /// What it returned.
        result: vk::Result,
    },
    /// The physical device lacks something the protocol needs.
    #[error("{0}")]
    Unusable(String),
    /// A SPIR-V module could not be read.
    #[error("SPIR-V {kernel} is malformed: {reason}")]
    MalformedSpirv {
        /// The kernel's name.
        kernel: String,
        /// Why.
        reason: String,
    },
    /// Host memory to import is not aligned as the device requires.
    #[error(
        "host memory at {ptr:#x} ({len} bytes) is not aligned to minImportedHostPointerAlignment {align}"
    )]
    Misaligned {
        /// Its address.
        ptr: usize,
        /// Its length.
        len: usize,
        /// The alignment the device requires.
        align: usize,
    },
    /// No memory type has the properties a buffer needs.
    #[error("no memory type {0}")]
    NoMemoryType(String),
    /// The host could not map memory for a buffer.
    #[error("mmap of {bytes} bytes: {source}")]
    Mmap {
        /// Bytes asked for.
        bytes: usize,
        /// The OS error.
        source: std::io::Error,
    },
    /// A launch gave a kernel another number of buffers than it binds.
    #[error("kernel {kernel} has {bindings} bindings, {given} given")]
    Bindings {
        /// The kernel's name.
        kernel: String,
        /// Bindings it has.
        bindings: u32,
        /// Buffers given.
        given: usize,
    },
    /// A run that imports the ring arena was created without one.
    #[error("no arena to import")]
    NoArena,
    /// Importing the ring arena failed.
    #[error("the ring arena: {0}")]
    Arena(Box<VkError>),
}

impl VkError {
    /// The error of Vulkan call `call` returning `result`.
    pub(crate) fn call(call: &'static str) -> impl FnOnce(vk::Result) -> VkError {
        move |result| VkError::Call { call, result }
    }
}

/// The backend is not usable here (no loader, no driver, no suitable device).
pub(super) fn unavailable(reason: impl std::fmt::Display) -> DeviceError {
    DeviceError::Unavailable {
        backend: "vulkan",
        reason: reason.to_string(),
    }
}

/// A run, launch or allocation failed.
pub(super) fn run_error(message: impl std::fmt::Display) -> DeviceError {
    DeviceError::Run {
        backend: "vulkan",
        message: message.to_string(),
    }
}
