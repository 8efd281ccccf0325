//! Writes the device ABI header (`abi/gpu_uring_abi.h`) from `gpu_uring::abi`, or with `--check` fails if the
//! committed header differs from what the Rust definitions produce now.
//!
//! ```text
//! cargo run -p gpu-uring --example gen-abi-header
//! cargo run -p gpu-uring --example gen-abi-header -- --check
//! ```

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!("unknown argument {other:?}; usage: gen-abi-header [--check]");
            return ExitCode::from(2);
        }
    };
    // The header's path is relative to the workspace root, the parent of this package's folder.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = manifest
        .parent()
        .unwrap_or(manifest)
        .join(gpu_uring::abi::header::HEADER_PATH);
    let text = gpu_uring::abi::header::render();
    if check {
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == text => {
                println!("{} is current", gpu_uring::abi::header::HEADER_PATH);
                ExitCode::SUCCESS
            }
            Ok(_) => {
                eprintln!(
                    "{} differs from host/src/abi/: run `cargo run -p gpu-uring --example gen-abi-header` and commit it",
                    path.display()
                );
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("cannot read {}: {e}", path.display());
                ExitCode::FAILURE
            }
        }
    } else {
        match std::fs::write(&path, text) {
            Ok(()) => {
                println!("wrote {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        }
    }
}
