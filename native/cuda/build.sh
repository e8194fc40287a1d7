#!/usr/bin/env bash
# Builds the CUDA addon, build/Release/temper_cuda.node: the kernels in native/cuda/*.cu and the
# Node-API binding shared with the CPU addon (native/src/addon.cc, compiled with TEMPER_CUDA).
#   native/cuda/build.sh                 build; fails naming what is missing
#   native/cuda/build.sh --if-available  build when nvcc and cuBLASLt are found, else say so and exit 0
#   native/cuda/build.sh --check         compile every source without linking (no GPU or cuBLAS
#                                        needed; files that include cuBLASLt are skipped without its headers)
# Finds the toolkit from CUDA_HOME or nvcc on PATH, and cuBLASLt in the toolkit or in the
# nvidia-cublas pip package installed beside PyTorch. TEMPER_CUDA_ARCH picks the GPU
# architecture ("90"); by default the local GPU's, else sm_80 and sm_90.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=build
case "${1:-}" in
  --if-available) mode=optional ;;
  --check) mode=check ;;
  "") ;;
  *) echo "usage: native/cuda/build.sh [--if-available|--check]" >&2; exit 2 ;;
esac

missing() {
  if [ "$mode" = optional ]; then echo "temper: CUDA backend not built ($1)"; exit 0; fi
  echo "temper: cannot build the CUDA backend: $1" >&2
  exit 1
}

nvcc="${CUDA_HOME:+$CUDA_HOME/bin/nvcc}"
[ -n "$nvcc" ] && [ -x "$nvcc" ] || nvcc="$(command -v nvcc || true)"
[ -n "$nvcc" ] || missing "no nvcc (set CUDA_HOME or put nvcc on PATH)"
# The toolkit root holds include/cuda_runtime.h: CUDA_HOME, else the one above nvcc (a wrapper
# script on PATH may sit elsewhere), else /usr/local/cuda.
cuda_home="${CUDA_HOME:-}"
if [ -z "$cuda_home" ]; then
  for d in "$(dirname "$(dirname "$(readlink -f "$nvcc")")")" /usr/local/cuda; do
    [ -f "$d/include/cuda_runtime.h" ] && { cuda_home="$d"; break; }
  done
fi
[ -n "$cuda_home" ] || missing "no CUDA toolkit headers (cuda_runtime.h) beside $nvcc or in /usr/local/cuda; set CUDA_HOME"
cuda_major="$("$nvcc" --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')"

# cuBLASLt: the toolkit's, else the pip package's (site-packages/nvidia/cublas).
cublas_inc="" cublas_lib=""
for root in "${CUBLAS_HOME:-}" "$cuda_home" "$cuda_home/targets/$(uname -m)-linux" \
  "$(python3 -c 'import importlib.util as u; s = u.find_spec("nvidia.cublas"); print(s.submodule_search_locations[0] if s else "")' 2>/dev/null || true)"; do
  [ -n "$root" ] && [ -f "$root/include/cublasLt.h" ] || continue
  [ "$mode" = check ] && { cublas_inc="$root/include"; break; }
  for lib in "$root/lib64" "$root/lib"; do
    if ls "$lib"/libcublasLt.so* >/dev/null 2>&1; then cublas_inc="$root/include" cublas_lib="$lib"; break 2; fi
  done
done

sources=(native/cuda/*.cu)
if [ -z "$cublas_inc" ]; then
  [ "$mode" = check ] || missing "cuBLASLt (cublasLt.h and libcublasLt.so) not found in CUDA_HOME=$cuda_home or the nvidia-cublas pip package"
  echo "temper: cuBLASLt headers not found; checking the sources that do not include them"
  sources=($(grep -L 'cublasLt.h' native/cuda/*.cu))
else
  cublas_major="$(sed -n 's/^#define CUBLAS_VER_MAJOR \([0-9]*\).*/\1/p' "$cublas_inc/cublas_api.h")"
  if [ -n "$cublas_major" ] && [ "$cublas_major" != "$cuda_major" ]; then
    echo "temper: warning: cuBLAS $cublas_major with CUDA toolkit $cuda_major; if linking or loading fails, point CUBLAS_HOME at a matching cuBLAS" >&2
  fi
fi

# Node-API headers: beside the node binary (official builds), Debian's, or node-gyp's cache.
node_inc="${NODE_API_INCLUDE:-}"
if [ -z "$node_inc" ]; then
  for d in "$(dirname "$(dirname "$(readlink -f "$(command -v node || echo /nonexistent)")")")/include/node" /usr/include/node \
    "$HOME/.cache/node-gyp/$(node -v 2>/dev/null | tr -d v)/include/node"; do
    [ -f "$d/node_api.h" ] && { node_inc="$d"; break; }
  done
fi
[ -n "$node_inc" ] || missing "Node-API headers (node_api.h) not found; set NODE_API_INCLUDE"
addon_api="node_modules/node-addon-api"
[ -f "$addon_api/napi.h" ] || missing "node_modules/node-addon-api is not installed (npm ci)"

if [ -n "${TEMPER_CUDA_ARCH:-}" ]; then archs=("$TEMPER_CUDA_ARCH")
elif [ "$mode" = check ]; then archs=(90)
elif command -v nvidia-smi >/dev/null 2>&1 && cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1)" && [ -n "$cap" ]; then
  archs=("${cap/./}")
else archs=(80 90)
fi
gencode=()
for a in "${archs[@]}"; do gencode+=(-gencode "arch=compute_$a,code=sm_$a"); done

if [ "$mode" = check ]; then  # objects of a check are thrown away; keep them out of build/
  obj="$(mktemp -d)"
  trap 'rm -rf "$obj"' EXIT
else
  obj=build/cuda
  mkdir -p "$obj" build/Release
fi
nvflags=(-std=c++17 -O3 --expt-relaxed-constexpr -Xcompiler -fPIC,-Wall "${gencode[@]}")
[ -n "$cublas_inc" ] && nvflags+=(-I"$cublas_inc")
echo "temper: compiling ${#sources[@]} CUDA sources for sm_${archs[*]} with $nvcc (CUDA $cuda_major)"
printf '%s\n' "${sources[@]}" | xargs -P "$(nproc)" -I{} sh -c \
  'f="{}"; "$0" "$@" -c "$f" -o "'"$obj"'/$(basename "$f" .cu).o"' "$nvcc" "${nvflags[@]}"
g++ -std=c++17 -O2 -fPIC -Wall -DTEMPER_CUDA -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DNODE_ADDON_API_CPP_EXCEPTIONS_ALL \
  -DNODE_ADDON_API_DISABLE_DEPRECATED -I"$node_inc" -I"$addon_api" -c native/src/addon.cc -o "$obj/addon.o"
if [ "$mode" = check ]; then
  # Without the libraries there is no link, so check that every temper:: function the objects
  # use is defined by one of them (a kernel missing from native/cuda would fail only at load).
  objs=("$obj"/addon.o)
  for f in "${sources[@]}"; do objs+=("$obj/$(basename "$f" .cu).o"); done
  missing_syms="$(comm -23 <(nm --undefined-only "${objs[@]}" | awk '$1 == "U" && /6temper/ { print $2 }' | sort -u) \
    <(nm --defined-only "${objs[@]}" | awk '/6temper/ { print $3 }' | sort -u) | c++filt)"
  if [ ${#sources[@]} -lt "$(ls native/cuda/*.cu | wc -l)" ]; then  # matmul.cu skipped: its functions are expected
    missing_syms="$(grep -v 'matmul' <<< "$missing_syms" || true)"
  fi
  if [ -n "$missing_syms" ]; then echo "temper: undefined in the CUDA objects:"; echo "$missing_syms"; exit 1; fi
  echo "temper: CUDA sources compile and define every kernel the binding calls"
  exit 0
fi

cudart_lib="$cuda_home/lib64"
[ -d "$cudart_lib" ] || cudart_lib="$cuda_home/targets/$(uname -m)-linux/lib"
# pip wheels ship only the versioned name (libcublasLt.so.12), which -lcublasLt does not find.
cublas_link=-lcublasLt
[ -e "$cublas_lib/libcublasLt.so" ] || cublas_link="-l:$(basename "$(ls "$cublas_lib"/libcublasLt.so.* | head -1)")"
g++ -shared -o build/Release/temper_cuda.node "$obj"/*.o -L"$cudart_lib" -lcudart -L"$cublas_lib" "$cublas_link" \
  -Wl,-rpath,"$cudart_lib" -Wl,-rpath,"$cublas_lib"
echo "temper: built build/Release/temper_cuda.node"
