#!/usr/bin/env bash
# On the GPU machine (see DEVELOPERS.md): unpacks what scripts/gpu/pack.sh carried, builds the
# CUDA addon, runs the CUDA tests (every kernel against the CPU backend, the model-level
# training and generation checks, the op test suite with cuda as the default device) and the
# benchmarks against PyTorch / transformers on the same GPU. Logs go to OUTDIR; summary.txt
# collects the results. One device call runs at most 10 minutes, so the work comes in stages:
#   scripts/gpu/run.sh OUTDIR [build] [test] [hf-interop] [bench-ops] [bench-train] [bench-generate]
# (no stage: all of them, in that order; a warm machine keeps the build between calls).
# hf-interop: temper against the real transformers / PEFT (scripts/gpu/hf_interop.py and .mjs).
set -uo pipefail
out="${1:?usage: scripts/gpu/run.sh OUTDIR [build] [test] [hf-interop] [bench-ops] [bench-train] [bench-generate]}"
shift
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(build test hf-interop bench-ops bench-train bench-generate)
cd "$(dirname "$0")/../.."
mkdir -p "$out"
summary="$out/summary.txt"
note() { echo "$*" | tee -a "$summary"; }

if ! command -v node >/dev/null 2>&1; then
  [ -f .gpu/node.xz ] || { note "no node and no .gpu/node.xz: run scripts/gpu/pack.sh here and carry .gpu"; exit 1; }
  mkdir -p /tmp/temper-node/bin
  [ -x /tmp/temper-node/bin/node ] || { xz -dc .gpu/node.xz > /tmp/temper-node/bin/node && chmod +x /tmp/temper-node/bin/node; }
  export PATH="/tmp/temper-node/bin:$PATH"
fi
if [ -f .gpu/bundle.tar.xz ]; then
  if [ ! -f .gpu/unpacked/stamp ] || [ .gpu/bundle.tar.xz -nt .gpu/unpacked/stamp ]; then
    mkdir -p .gpu/unpacked
    tar -xJf .gpu/bundle.tar.xz --exclude=include --exclude=lib
    tar -xJf .gpu/bundle.tar.xz -C .gpu/unpacked include lib
    touch .gpu/unpacked/stamp
  fi
  export NODE_API_INCLUDE="$PWD/.gpu/unpacked/include"
  export LD_LIBRARY_PATH="$PWD/.gpu/unpacked/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

run_tests() {  # name, env assignment or "", test files...
  local name="$1" env="$2"
  shift 2
  local t0=$SECONDS
  env $env node --test --test-concurrency=1 "$@" > "$out/$name.log" 2>&1
  local rc=$?
  note "$name: rc=$rc $(grep -E '^# (pass|fail|skipped)' "$out/$name.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
  grep -E '^not ok|error:|Error:' "$out/$name.log" | head -40 >> "$summary"
}
bench() {  # name, temper bench arguments...
  local name="$1"
  shift
  local t0=$SECONDS
  node bin/temper.js bench "$@" > "$out/$name.txt" 2>&1
  note "bench $*: rc=$? ($((SECONDS - t0)) s)"
  cat "$out/$name.txt" >> "$summary"
}

for stage in "${stages[@]}"; do
  case "$stage" in
    build)
      note "node $(node -v); $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
      nvidia-smi > "$out/nvidia-smi.txt" 2>&1
      python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' \
        >> "$summary" 2>&1
      t0=$SECONDS
      if ! bash native/cuda/build.sh > "$out/build.log" 2>&1; then
        note "CUDA build FAILED (build.log):"
        tail -40 "$out/build.log" | tee -a "$summary"
        exit 1
      fi
      note "CUDA build ok in $((SECONDS - t0)) s"
      ;;
    test)
      # Synchronized launches: a kernel that faults is named by its own error, not by a later call.
      run_tests cuda_tests "TEMPER_CUDA_SYNC=1" dist/test/cuda_parity.test.js dist/test/cuda_train.test.js
      run_tests op_suite_on_cuda "TEMPER_DEVICE=cuda:0" dist/test/ops.test.js dist/test/autograd.test.js dist/test/gradcheck.test.js \
        dist/test/fixtures.test.js dist/test/memory.test.js dist/test/bf16.test.js dist/test/models.test.js dist/test/generate.test.js \
        dist/test/checkpoint.test.js dist/test/linear_cross_entropy.test.js dist/test/optim_multi.test.js
      ;;
    hf-interop)  # transformers makes models, temper loads/compares/saves/adapts them, transformers+PEFT load temper's output
      # (PYTHON overrides the python3 that has torch + transformers)
      work="$out/hf_interop"
      rm -rf "$work"
      mkdir -p "$work"
      t0=$SECONDS
      {
        "${PYTHON:-python3}" scripts/gpu/hf_interop.py "$work"; rc_make=$?
        node scripts/gpu/hf_interop.mjs "$work"; rc_temper=$?
        "${PYTHON:-python3}" scripts/gpu/hf_interop.py --check "$work"; rc_check=$?
        echo "rc: make=$rc_make temper=$rc_temper check=$rc_check"
      } > "$out/hf_interop.log" 2>&1
      note "hf-interop: $(tail -1 "$out/hf_interop.log"); $(grep -c '^PASS' "$out/hf_interop.log") PASS, $(grep -c '^FAIL' "$out/hf_interop.log") FAIL, $(grep -c '^SKIP' "$out/hf_interop.log") SKIP ($((SECONDS - t0)) s)"
      grep -E '^(# |FAIL|SKIP)|Error' "$out/hf_interop.log" | head -40 >> "$summary"
      ;;
    bench-ops) bench bench_ops_cuda ops --device cuda ;;
    bench-train)
      bench bench_train_cuda train --device cuda --shape qwen2.5-0.5b
      grep -qi "out of memory" "$out/bench_train_cuda.txt" && bench bench_train_cuda_ckpt train --device cuda --shape qwen2.5-0.5b --gradient_checkpointing
      ;;
    bench-generate) bench bench_generate_cuda generate --device cuda ;;
    *) note "unknown stage '$stage'"; exit 2 ;;
  esac
done
