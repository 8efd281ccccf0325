//! Compiling your own GLSL compute shaders to the SPIR-V a [`RingKernel`](super::RingKernel) loads, the way
//! `device-shaders/build.sh` compiles the built-in programs:
//!
//! ```sh
//! glslangValidator --quiet --target-env vulkan1.2 -V -Idevice-shaders/include my_kernel.comp -o my_kernel.spv
//! ```
//!
//! (Debian/Ubuntu: `apt-get install glslang-tools`). [`compile`] runs exactly that, with [`INCLUDE_DIR`] as the
//! include path, so a program can compile its shader when it starts (or a build script before the build).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The folder holding `gpu_uring_print.glsl` and `gpu_uring.glsl` (the include path of [`compile`]).
pub const INCLUDE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../device-shaders/include");

/// The compiler [`compile`] runs.
pub const COMPILER: &str = "glslangValidator";

/// How long [`compile`] lets the compiler run.
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a shader did not compile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GlslError {
    /// The compiler is not installed (or not on `PATH`).
    #[error(
        "{COMPILER} not found ({0}): install it (Debian/Ubuntu: apt-get install glslang-tools)"
    )]
    CompilerMissing(std::io::Error),
    /// The shader has errors: the compiler's messages.
    #[error("{}: {messages}", path.display())]
    Compile {
        /// The shader.
        path: PathBuf,
        /// What the compiler said.
        messages: String,
    },
    /// The compiler ran longer than [`COMPILE_TIMEOUT`] (it was killed).
    #[error("{}: {COMPILER} ran longer than {COMPILE_TIMEOUT:?}", path.display())]
    Timeout {
        /// The shader.
        path: PathBuf,
    },
    /// Reading or writing a file, or starting the compiler, failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// The command [`compile`] runs to compile `shader` into `out` (for build scripts that run it themselves).
pub fn command(shader: &Path, out: &Path) -> Command {
    let mut c = Command::new(COMPILER);
    c.arg("--quiet")
        .args(["--target-env", "vulkan1.2", "-V"])
        .arg(format!("-I{INCLUDE_DIR}"))
        .arg(shader)
        .arg("-o")
        .arg(out);
    c
}

/// Compiles the GLSL compute shader at `path` (which `#include`s `gpu_uring_print.glsl` or `gpu_uring.glsl`)
/// and returns its SPIR-V. Waits at most [`COMPILE_TIMEOUT`].
pub fn compile(path: impl AsRef<Path>) -> Result<Vec<u8>, GlslError> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let path = path.as_ref();
    let io = |what: String| move |source| GlslError::Io { what, source };
    // Relaxed: only makes the temporary names unique within the process.
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let stem = std::env::temp_dir().join(format!("gpu-uring-glsl-{}-{n}", std::process::id()));
    let (out, log) = (stem.with_extension("spv"), stem.with_extension("log"));
    let r = run(path, &out, &log)
        .and_then(|()| std::fs::read(&out).map_err(io(format!("reading {}", out.display()))));
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&log);
    r
}

fn run(path: &Path, out: &Path, log: &Path) -> Result<(), GlslError> {
    let io = |what: String| move |source| GlslError::Io { what, source };
    let messages = std::fs::File::create(log).map_err(io(format!("creating {}", log.display())))?;
    let stderr = messages
        .try_clone()
        .map_err(io(format!("duplicating {}", log.display())))?;
    let mut child = command(path, out)
        .stdin(Stdio::null())
        .stdout(messages)
        .stderr(stderr)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => GlslError::CompilerMissing(e),
            _ => GlslError::Io {
                what: format!("starting {COMPILER}"),
                source: e,
            },
        })?;
    let deadline = Instant::now() + COMPILE_TIMEOUT;
    let status = loop {
        if let Some(s) = child
            .try_wait()
            .map_err(io(format!("waiting for {COMPILER}")))?
        {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(GlslError::Timeout {
                path: path.to_owned(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if status.success() {
        return Ok(());
    }
    let said = std::fs::read_to_string(log).unwrap_or_default();
    Err(GlslError::Compile {
        path: path.to_owned(),
        messages: format!("{COMPILER} failed ({status}):\n{}", said.trim_end()),
    })
}
