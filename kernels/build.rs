//! Compiles the host C++ target of the device library (`host/host_target.cpp` with `include/` and `src/`)
//! with the system C++ compiler, for the tests to call through `extern "C"`.

fn main() {
    for dir in ["host", "include", "src", "../abi"] {
        println!("cargo:rerun-if-changed={dir}");
    }
    cc::Build::new()
        .cpp(true)
        .std("c++20")
        .file("host/host_target.cpp")
        // §7 formatting: no FMA contraction (format.h).
        .flag_if_supported("-ffp-contract=off")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("gpu_uring_kernels_host");
}
