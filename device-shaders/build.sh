#!/usr/bin/env bash
# Compiles device-shaders/src/*.comp to device-shaders/spirv/*.spv (committed, so building gpu-uring needs no
# shader compiler). `build.sh --check` compiles into a temporary folder and fails if any committed file differs
# from a fresh compile, or is missing or stale.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
check=0
[ "${1:-}" = "--check" ] && check=1
compiler=$(command -v glslangValidator || true)
if [ -z "$compiler" ]; then
  echo "glslangValidator not found (Debian: apt-get install glslang-tools)" >&2
  exit 1
fi
out="$here/spirv"
if [ $check = 1 ]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
for src in "$here"/src/*.comp; do
  name="$(basename "$src" .comp)"
  # -V: Vulkan SPIR-V; no -g, so the output carries no paths and is the same on every machine.
  (cd "$here/src" && "$compiler" --quiet --target-env vulkan1.2 -V "$name.comp" -o "$out/$name.spv")
  if command -v spirv-val >/dev/null 2>&1; then
    spirv-val --target-env vulkan1.2 "$out/$name.spv"
  fi
done
if [ $check = 1 ]; then
  status=0
  for f in "$out"/*.spv; do
    name="$(basename "$f")"
    if ! cmp -s "$f" "$here/spirv/$name"; then
      echo "device-shaders/spirv/$name differs from a fresh compile: run device-shaders/build.sh and commit" >&2
      status=1
    fi
  done
  for f in "$here"/spirv/*.spv; do
    [ -e "$out/$(basename "$f")" ] || { echo "stale $f (no source)" >&2; status=1; }
  done
  [ $status = 0 ] && echo "committed SPIR-V matches a fresh compile ($(ls "$out" | wc -l) shaders)"
  exit $status
fi
echo "built $(ls "$out"/*.spv | wc -l) shaders into $out"
