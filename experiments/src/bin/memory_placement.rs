//! memory_placement — where should device-visible memory live? Shader write and read latency to host-coherent
//! memory imported from the host (`VK_EXT_external_memory_host`, what device rings use) versus device-local
//! memory, and how soon the host sees a shader's store in each.
//!
//! Needs a GPU-style device (Vulkan): the CPU reference device has only host memory, so there is no placement
//! to choose. `--device auto` without one prints `skip: …` with each backend's reason and exits 0;
//! `--device cpu`, or an unavailable device named explicitly, exits 2 with the reason.
//!
//! State in this build: the Vulkan backend (branch `vulkan`) has not landed its memory import and shader
//! dispatch yet, so on a Vulkan device this program reports that and exits 2 instead of measuring anything.

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
        "{}: this build's {} backend has no memory import and shader dispatch yet ({} accesses not measured)",
        dev.info(),
        dev.info().backend,
        cli.accesses
    ));
}
