#!/usr/bin/env python3
"""Compiles one CUDA source with NVRTC (no nvcc): PTX for a virtual architecture (compute_XY) or a cubin
for a real one (sm_XY). Driven by kernels/build.sh; the NVRTC library comes from the pinned
nvidia-cuda-nvrtc-cu12 wheel, the headers from the nvidia-cuda-cccl-cu12 / nvidia-cuda-runtime-cu12 wheels.

usage: nvrtc.py --lib LIBNVRTC --arch compute_75|sm_90 [-I DIR]... [-D NAME[=V]]... SOURCE OUTPUT
A compile error prints NVRTC's log and exits 1."""
import argparse
import ctypes
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--arch", required=True)
    ap.add_argument("-I", dest="include", action="append", default=[])
    ap.add_argument("-D", dest="define", action="append", default=[])
    ap.add_argument("source")
    ap.add_argument("output")
    a = ap.parse_args()

    nvrtc = ctypes.CDLL(a.lib)
    nvrtc.nvrtcGetErrorString.restype = ctypes.c_char_p

    def check(status: int, what: str) -> None:
        if status != 0:
            msg = nvrtc.nvrtcGetErrorString(status).decode()
            raise SystemExit(f"nvrtc.py: {what}: {msg}")

    with open(a.source, "rb") as f:
        src = f.read()
    prog = ctypes.c_void_p()
    check(
        nvrtc.nvrtcCreateProgram(
            ctypes.byref(prog), src, a.source.encode(), 0, None, None
        ),
        "nvrtcCreateProgram",
    )
    # Every option that decides the bytes of the output is here, so a rebuild is reproducible.
    opts = [
        f"--gpu-architecture={a.arch}",
        "--std=c++17",
        # §7 number formatting needs every f64 step correctly rounded: no contraction into FMAs.
        "--fmad=false",
    ]
    opts += [f"-I{d}" for d in a.include]
    opts += [f"-D{d}" for d in a.define]
    copts = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    status = nvrtc.nvrtcCompileProgram(prog, len(opts), copts)

    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(prog, log)
    text = log.value.decode(errors="replace").strip()
    if status != 0:
        sys.stderr.write(f"{a.source} ({a.arch}):\n{text}\n")
        return 1
    if text:
        # Warnings fail the build too: the library compiles clean on every target.
        sys.stderr.write(f"{a.source} ({a.arch}): warnings:\n{text}\n")
        return 1

    cubin = a.arch.startswith("sm_")
    get_size = nvrtc.nvrtcGetCUBINSize if cubin else nvrtc.nvrtcGetPTXSize
    get = nvrtc.nvrtcGetCUBIN if cubin else nvrtc.nvrtcGetPTX
    check(get_size(prog, ctypes.byref(size)), "get size")
    out = ctypes.create_string_buffer(size.value)
    check(get(prog, out), "get output")
    data = out.raw[: size.value]
    if not cubin:
        data = data.rstrip(b"\0")
    with open(a.output, "wb") as f:
        f.write(data)
    nvrtc.nvrtcDestroyProgram(ctypes.byref(prog))
    return 0


if __name__ == "__main__":
    sys.exit(main())
