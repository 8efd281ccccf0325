//! Your own kernel: `pi.comp` (next to this file) estimates pi on every lane and prints its progress through
//! the ring; this program compiles it, loads it on a Vulkan device and runs it until every lane has finished.
//!
//!     cargo run --example user_kernel
//!
//! Needs glslangValidator (Debian/Ubuntu: `apt-get install glslang-tools`) and a Vulkan device (Mesa's lavapipe
//! will do: `apt-get install mesa-vulkan-drivers`).

use std::error::Error;
use std::process::ExitCode;

use gpu_uring::backend::{glsl, open, DeviceSelector, RingKernel, RunConfig, RunReport};
use gpu_uring::protocol::{DeviceRing, PrintTarget};
use gpu_uring::ring::RingConfig;

/// Runs pi.comp on `lanes` lanes, each drawing `points` points and printing a line every `every` of them to
/// `to`; returns every lane's report (`checksum`: the points inside the quarter circle).
pub fn run(
    to: PrintTarget,
    lanes: u32,
    points: u32,
    every: u32,
) -> Result<RunReport, Box<dyn Error>> {
    // glslangValidator --target-env vulkan1.2 -V -Idevice-shaders/include pi.comp
    let spirv = glsl::compile(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/user_kernel/pi.comp"
    ))?;
    let (dev, _) = open(&DeviceSelector::Vulkan(None))?;
    let ring = DeviceRing::new(RingConfig {
        lanes,
        ..RingConfig::default()
    })?;
    ring.set_print_target(to)?;
    // SAFETY: glslang compiled pi.comp, which indexes no array of its own (the library checks its indices).
    let kernel = unsafe { RingKernel::spirv(&*dev, "pi", &spirv)? }.with_texts(&[
        "lane ",
        ": ",
        " points, ",
        " inside, diff ",
        ", last ",
        ", pi ~ ",
    ])?;
    let report = kernel.run(
        &ring,
        &RunConfig {
            count: points,
            arg0: every,
            ..RunConfig::lanes(lanes)
        },
    )?;
    ring.finish_prints();
    Ok(report)
}

fn main() -> ExitCode {
    let (lanes, points) = (8, 100_000);
    match run(PrintTarget::Fd(1), lanes, points, 25_000) {
        Ok(report) => {
            let inside: u64 = report.lanes.iter().map(|l| l.checksum).sum();
            let pi = 4.0 * inside as f64 / (lanes * points) as f64;
            eprintln!(
                "{} dispatches in {:.1?}; all lanes: pi ~ {pi:.5}",
                report.dispatches, report.elapsed
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("user_kernel: {e}");
            ExitCode::FAILURE
        }
    }
}
