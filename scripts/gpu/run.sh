#!/usr/bin/env bash
# On the GPU machine (see DEVELOPERS.md): unpacks what scripts/gpu/pack.sh carried, builds the
# CUDA addon, runs the CUDA tests (every kernel against the CPU backend, the model-level
# training and generation checks, the op test suite with cuda as the default device) and the
# ops benchmark against PyTorch on the same GPU. Logs go to the folder given as argument;
# summary.txt collects the results. Usage: scripts/gpu/run.sh OUTDIR
set -uo pipefail
out="${1:?usage: scripts/gpu/run.sh OUTDIR}"
cd "$(dirname "$0")/../.."
mkdir -p "$out"
summary="$out/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }

if ! command -v node >/dev/null 2>&1; then
  [ -f .gpu/node.xz ] || { note "no node and no .gpu/node.xz: run scripts/gpu/pack.sh here and carry .gpu"; exit 1; }
  mkdir -p /tmp/temper-node/bin
  xz -dc .gpu/node.xz > /tmp/temper-node/bin/node && chmod +x /tmp/temper-node/bin/node
  export PATH="/tmp/temper-node/bin:$PATH"
fi
if [ -f .gpu/bundle.tar.xz ]; then
  mkdir -p .gpu/unpacked
  tar -xJf .gpu/bundle.tar.xz --exclude=include --exclude=lib
  tar -xJf .gpu/bundle.tar.xz -C .gpu/unpacked include lib
  export NODE_API_INCLUDE="$PWD/.gpu/unpacked/include"
  export LD_LIBRARY_PATH="$PWD/.gpu/unpacked/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
note "node $(node -v); $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' \
  >> "$summary" 2>&1

start=$SECONDS
if ! bash native/cuda/build.sh > "$out/build.log" 2>&1; then
  note "CUDA build FAILED (build.log):"
  tail -40 "$out/build.log" | tee -a "$summary"
  exit 1
fi
note "CUDA build ok in $((SECONDS - start)) s"

run_tests() {  # name, env assignment or "", test files...
  local name="$1" env="$2"
  shift 2
  local t0=$SECONDS
  env $env node --test --test-concurrency=1 "$@" > "$out/$name.log" 2>&1
  local rc=$?
  note "$name: rc=$rc $(grep -E '^# (pass|fail|skipped)' "$out/$name.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
  grep -E '^not ok|error:|Error:' "$out/$name.log" | head -30 >> "$summary"
}
run_tests cuda_tests "" dist/test/cuda_parity.test.js dist/test/cuda_train.test.js
run_tests op_suite_on_cuda "TEMPER_DEVICE=cuda:0" dist/test/ops.test.js dist/test/autograd.test.js dist/test/gradcheck.test.js \
  dist/test/fixtures.test.js dist/test/memory.test.js dist/test/bf16.test.js dist/test/models.test.js dist/test/generate.test.js

start=$SECONDS
node bin/temper.js bench ops --device cuda > "$out/bench_ops_cuda.txt" 2>&1
note "bench ops --device cuda: rc=$? ($((SECONDS - start)) s)"
cat "$out/bench_ops_cuda.txt" >> "$summary"
