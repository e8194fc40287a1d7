#!/usr/bin/env bash
# One-step install on a fresh machine: what the build needs from the system (a C++ compiler,
# make, python3 for node-gyp, OpenBLAS in its OpenMP build so BLAS threads and temper's kernels
# share one pool), Debian's PyTorch as the benchmark peer and fixture generator (skip it with
# TEMPER_SKIP_TORCH=1), the npm dependencies, the native addon, the TypeScript build, and the
# `temper` command on PATH. Works as root, with sudo, or says exactly what to install when it
# can do neither. Safe to re-run: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "temper setup: $*"; }

if command -v apt-get >/dev/null 2>&1; then
  need=()
  command -v g++ >/dev/null 2>&1 || need+=(g++)
  command -v make >/dev/null 2>&1 || need+=(make)
  command -v python3 >/dev/null 2>&1 || need+=(python3)
  dpkg -s libopenblas-openmp-dev >/dev/null 2>&1 || need+=(libopenblas-openmp-dev)
  optional=()
  if [ "${TEMPER_SKIP_TORCH:-0}" != 1 ]; then
    dpkg -s python3-torch >/dev/null 2>&1 || optional+=(python3-torch)
  fi
  wanted=("${need[@]}" "${optional[@]}")
  if [ ${#wanted[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo
      elif command -v sudo >/dev/null 2>&1 && [ -t 0 ]; then SUDO=sudo   # sudo will ask for the password
      else SUDO=none
      fi
    fi
    if [ "$SUDO" = none ]; then
      if [ ${#need[@]} -gt 0 ]; then
        say "needs these Debian packages, and cannot install them (not root, no sudo): ${need[*]}" >&2
        say "install them with:  apt-get install -y ${wanted[*]}   (as root), then run npm run setup again" >&2
        exit 1
      fi
      say "skipping ${optional[*]} (not root, no sudo): the PyTorch benchmark peers will not run; TEMPER_SKIP_TORCH=1 silences this" >&2
    else
      say "installing ${wanted[*]} (apt)"
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
    fi
  fi
elif [ "$(uname)" = Darwin ]; then
  # Accelerate provides the BLAS; the compiler comes with the Xcode command line tools; OpenMP from Homebrew's libomp.
  xcode-select -p >/dev/null 2>&1 || { say "needs the Xcode command line tools: xcode-select --install" >&2; exit 1; }
  command -v brew >/dev/null 2>&1 && { brew list libomp >/dev/null 2>&1 || brew install libomp; }
else
  for tool in g++ make python3; do
    command -v "$tool" >/dev/null 2>&1 || { say "needs $tool (and OpenBLAS built with OpenMP: cblas.h, libopenblas); install them with your package manager" >&2; exit 1; }
  done
  say "no apt-get: make sure OpenBLAS built with OpenMP (cblas.h, libopenblas) is installed"
fi

say "npm dependencies and native addon"
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
say "CUDA addon (when a CUDA toolkit and cuBLAS are present)"
bash native/cuda/build.sh --if-available
say "TypeScript build"
npm run build --silent

# The `temper` command: linked into npm's global bin when that folder is writable.
prefix="$(npm prefix -g 2>/dev/null || true)"
if [ -n "$prefix" ] && [ -w "$prefix/bin" ] && { [ -w "$prefix/lib/node_modules" ] || [ -w "$prefix/lib" ]; }; then
  npm link --ignore-scripts --no-audit --no-fund >/dev/null 2>&1 && say "linked the temper command: $(command -v temper || echo "$prefix/bin/temper")"
fi
if ! command -v temper >/dev/null 2>&1; then
  say "to run temper from the shell: npx temper … in this folder, ./bin/temper.js …, or sudo npm link --ignore-scripts"
fi
say "done"
