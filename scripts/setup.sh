#!/usr/bin/env bash
# One-step install on a fresh machine: system packages (OpenBLAS for GEMM, in its OpenMP
# build so BLAS threads and temper's kernels share one pool instead of spinning against
# each other; Debian's PyTorch as the benchmark peer and fixture generator), npm
# dependencies, the native addon and the TypeScript build. Safe to re-run: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1; then
  need=()
  dpkg -s libopenblas-openmp-dev >/dev/null 2>&1 || need+=(libopenblas-openmp-dev)
  if [ "${TEMPER_SKIP_TORCH:-0}" != 1 ]; then
    dpkg -s python3-torch >/dev/null 2>&1 || need+=(python3-torch)
  fi
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    echo "temper setup: installing ${need[*]} (apt)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
elif [ "$(uname)" = Darwin ]; then
  # Accelerate provides the BLAS; OpenMP comes from Homebrew's libomp.
  command -v brew >/dev/null 2>&1 && { brew list libomp >/dev/null 2>&1 || brew install libomp; }
else
  echo "temper setup: no apt-get; install OpenBLAS built with OpenMP (cblas.h, libopenblas) yourself" >&2
fi

echo "temper setup: npm dependencies and native addon"
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
echo "temper setup: CUDA addon (when a CUDA toolkit and cuBLAS are present)"
bash native/cuda/build.sh --if-available
echo "temper setup: TypeScript build"
npm run build --silent
echo "temper setup: done"
