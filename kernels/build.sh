#!/usr/bin/env bash
# Compiles the CUDA/HIP device library's kernels (src/gpu_uring_kernels.cu) into the committed binaries under
# kernels/bin/:
#   gpu_uring_kernels.compute_75.ptx   NVRTC, PTX for every NVIDIA GPU from Turing on (JIT by the driver)
#   gpu_uring_kernels.sm_90.cubin      NVRTC, Hopper machine code (no JIT there)
#   gpu_uring_kernels.<gfx>.co         hipcc --genco, one AMD code object bundle per target (HIP_TARGETS)
# usage: kernels/build.sh           rebuild bin/
#        kernels/build.sh --check   rebuild into a temporary folder and fail if anything differs from bin/
#                                   (PTX header lines naming the compiler build are ignored); a compile error
#                                   or warning fails either way.
# Toolchain (pinned; kernels/README.md): NVRTC and headers from the Python package registry, installed once
# into $GU_KERNELS_TOOLS (default ~/.cache/gpu-uring/nvrtc-<version>); Debian's hipcc (ROCm 5.2):
#   apt-get install -y --no-install-recommends hipcc libamdhip64-dev
set -euo pipefail
cd "$(dirname "$0")/.."

NVRTC_WHEEL=nvidia-cuda-nvrtc-cu12==12.9.86
CCCL_WHEEL=nvidia-cuda-cccl-cu12==12.9.27
CUDART_WHEEL=nvidia-cuda-runtime-cu12==12.9.79
NV_ARCHS="compute_75 sm_90"
# gfx90a and gfx1030, and every newer target hipcc 5.2 (clang 15 + ROCm 5.2 device libraries) builds.
HIP_TARGETS="gfx90a gfx90c gfx940 gfx1030 gfx1031 gfx1032 gfx1033 gfx1034 gfx1035 gfx1036"
SRC=kernels/src/gpu_uring_kernels.cu
NAME=gpu_uring_kernels

check=0
case "${1:-}" in
--check) check=1 ;;
"") ;;
*)
  echo "usage: $0 [--check]" >&2
  exit 2
  ;;
esac

tools="${GU_KERNELS_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/gpu-uring/nvrtc-12.9.86}"
stamp="$tools/.installed"
wheels="$NVRTC_WHEEL $CCCL_WHEEL $CUDART_WHEEL"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wheels" ]; then
  rm -rf "$tools"
  mkdir -p "$tools"
  # shellcheck disable=SC2086 # the wheel list splits on purpose
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps --no-compile --target "$tools" $wheels
  echo "$wheels" >"$stamp"
fi
nvrtc_lib="$tools/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"

if ! command -v hipcc >/dev/null 2>&1; then
  echo "kernels/build.sh: hipcc not found: apt-get install -y --no-install-recommends hipcc libamdhip64-dev" >&2
  exit 1
fi

out="kernels/bin"
if [ "$check" = 1 ]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

# Paths are relative to the repository root, so the outputs do not depend on where the clone lives.
nvrtc() {
  LD_LIBRARY_PATH="$tools/nvidia/cuda_nvrtc/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    python3 kernels/tools/nvrtc.py --lib "$nvrtc_lib" --arch "$1" \
    -I kernels/include/gpu_uring/nvrtc \
    -I "$tools/nvidia/cuda_cccl/include" -I "$tools/nvidia/cuda_runtime/include" \
    "$SRC" "$2"
}
hip() {
  # -ffp-contract=off: the §7 formatter needs every f64 operation rounded on its own (format.h also says so
  # in the source). -Werror: the library compiles clean for every target. hipcc 5.2 inlines every function
  # into every kernel (-amdgpu-early-inline-all, -amdgpu-function-calls=false); the two -mllvm options turn
  # that off so GU_OUTLINE's __noinline__ holds on AMD as on NVIDIA (a third of the code, half the compile
  # time).
  nice -n 19 hipcc --genco --offload-arch="$1" -x hip -std=c++17 -O3 -ffp-contract=off -Wall -Wextra -Werror \
    -mllvm -amdgpu-early-inline-all=false -mllvm -amdgpu-function-calls=true "$SRC" -o "$2"
}
export -f hip
export SRC

for arch in $NV_ARCHS; do
  case "$arch" in
  compute_*) nvrtc "$arch" "$out/$NAME.$arch.ptx" ;;
  *) nvrtc "$arch" "$out/$NAME.$arch.cubin" ;;
  esac
done
# Two at a time (CI has two cores).
# shellcheck disable=SC2016 # expanded by the inner shell
printf '%s\n' $HIP_TARGETS | xargs -P 2 -I{} bash -c 'hip "$1" "$2/'"$NAME"'.$1.co"' _ {} "$out"

if [ "$check" = 1 ]; then
  status=0
  expected="$(cd kernels/bin && ls)"
  fresh="$(cd "$out" && ls)"
  if [ "$expected" != "$fresh" ]; then
    echo "kernels/bin lists other files than a fresh build:" >&2
    diff <(echo "$expected") <(echo "$fresh") >&2 || true
    status=1
  fi
  for f in $fresh; do
    [ -f "kernels/bin/$f" ] || continue
    case "$f" in
    *.ptx)
      # The PTX header names the compiler build; everything else must match.
      strip='^// (Compiler Build ID|Cuda compilation tools|Based on NVVM)'
      if ! diff -q <(grep -Ev "$strip" "kernels/bin/$f") <(grep -Ev "$strip" "$out/$f") >/dev/null; then
        echo "kernels/bin/$f differs from a fresh build:" >&2
        diff <(grep -Ev "$strip" "kernels/bin/$f") <(grep -Ev "$strip" "$out/$f") | head -20 >&2 || true
        status=1
      fi
      ;;
    *)
      if ! cmp -s "kernels/bin/$f" "$out/$f"; then
        echo "kernels/bin/$f differs from a fresh build" >&2
        status=1
      fi
      ;;
    esac
  done
  if [ "$status" != 0 ]; then
    echo "run kernels/build.sh and commit kernels/bin/" >&2
    exit 1
  fi
  echo "kernels/bin matches a fresh build ($(echo "$fresh" | wc -w) files)"
fi
