#!/usr/bin/env bash
# Builds and runs the standalone C++ checks of the fused kernels against their naive
# double-precision references (native/test). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${TMPDIR:-/tmp}/temper-native-checks"
mkdir -p "$out"
flags=(-std=c++17 -O3 -fopenmp -fno-math-errno -Inative/src)
g++ "${flags[@]}" native/src/norm.cc native/src/rotary.cc native/src/cross_entropy.cc native/src/optim.cc \
  native/test/fused_check.cc -o "$out/fused_check"
g++ "${flags[@]}" native/src/attention.cc native/test/attention_check.cc -o "$out/attention_check"
"$out/fused_check" > "$out/fused_check.log" || { cat "$out/fused_check.log"; exit 1; }
tail -1 "$out/fused_check.log"
"$out/attention_check" > "$out/attention_check.log" || { cat "$out/attention_check.log"; exit 1; }
grep -E '^(PASSED|FAILED)' "$out/attention_check.log"
# The CUDA sources compile wherever nvcc is installed, GPU or not (the build itself needs cuBLAS).
if command -v nvcc >/dev/null 2>&1 || [ -n "${CUDA_HOME:-}" ]; then
  bash native/cuda/build.sh --check | tail -1
fi
