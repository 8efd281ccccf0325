//! device_edit_buffer — a shader edits a host buffer in place, with no copy: the host fills a buffer in memory
//! it shares with the device (imported with `VK_EXT_external_memory_host`), one dispatch of the `edit_buffer`
//! shader rewrites every element, and the host checks the result in the same memory right after the dispatch.
//!
//! Needs a GPU-style device (Vulkan): the CPU reference device has no device memory apart from the host's, so
//! there is nothing to compare. `--device auto` without one prints `skip: …` with each backend's reason and
//! exits 0; `--device cpu`, or an unavailable device named explicitly, exits 2 with the reason.
//!
//! State in this build: the Vulkan backend (branch `vulkan`) has not landed its buffer import and shader
//! dispatch yet, so on a Vulkan device this program reports that and exits 2 instead of measuring anything.

use clap::Parser;
use gpu_uring_experiments::{fail, CommonArgs, Experiment};

/// A shader edits a host-shared buffer in place; the host verifies it without a copy (Vulkan only).
#[derive(Parser, Debug)]
#[command(name = "device_edit_buffer", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Elements (u32) in the buffer.
    #[arg(long, default_value_t = 1 << 20)]
    elements: u32,
}

fn main() {
    let cli = Cli::parse();
    let mut exp = Experiment::new("device_edit_buffer", cli.common.clone());
    let Some(dev) = exp.gpu_only("a shader editing host memory imported into the device") else {
        return;
    };
    fail(&format!(
        "{}: this build's {} backend has no host-memory import and edit_buffer dispatch yet ({} elements \
         not edited)",
        dev.info(),
        dev.info().backend,
        cli.elements
    ));
}
