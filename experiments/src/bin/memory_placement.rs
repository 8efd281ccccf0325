//! memory_placement — where should device-visible memory live? Shader write and read latency to host-coherent
//! memory imported from the host (`VK_EXT_external_memory_host`, what device rings use) versus device-local
//! memory, and how soon the host sees a shader's store in each.
//!
//! Needs a GPU-style device (Vulkan): the CPU reference device has only host memory, so there is no placement
//! to choose. `--device auto` without one prints `skip: …` with each backend's reason and exits 0;
//! `--device cpu`, or an unavailable device named explicitly, exits 2 with the reason.
//!
//! State in this build: **not measured.** The Vulkan backend imports the ring's arena (host-coherent) and runs
//! its built-in programs only; it offers neither device-local buffers nor a way to dispatch another shader,
//! both of which this comparison needs. On a Vulkan device this program says so and exits 2. (The imported
//! half alone — host ↔ shader visibility through imported host memory — is what `device_edit_buffer`
//! measures.)

use clap::Parser;
use gpu_uring_experiments::{fail, CommonArgs, Experiment};

/// Shader latency to imported host-coherent memory vs device-local memory (Vulkan only).
#[derive(Parser, Debug)]
#[command(name = "memory_placement", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Dependent accesses per invocation (bounded: lavapipe stops any loop after 65535 iterations).
    #[arg(long, default_value_t = 4096)]
    accesses: u32,
}

fn main() {
    let cli = Cli::parse();
    let mut exp = Experiment::new("memory_placement", cli.common.clone());
    let Some(dev) = exp.gpu_only("device-local memory apart from host memory, and shaders") else {
        return;
    };
    fail(&format!(
        "{}: not measured ({} accesses): this build's {} backend runs only its built-in programs on the \
         imported arena, with no device-local buffers and no dispatch of other shaders; device_edit_buffer \
         measures the imported-memory half",
        dev.info(),
        cli.accesses,
        dev.info().backend
    ));
}
