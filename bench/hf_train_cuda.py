#!/usr/bin/env python3
"""transformers peer for `temper bench train --device cuda[:N]`: one full fine-tuning step of
the model transformers builds from the same config.json temper builds from (random init,
float32 weights, attn_implementation="sdpa"), under torch.autocast("cuda", bfloat16), with
clip_grad_norm_(1.0) and torch.optim.AdamW(fused=True); random tokens, labels = inputs.

    python3 bench/hf_train_cuda.py --device cuda:0 --config '<config.json as JSON>' \
        --batch 8 --seq 2048 [--repeats 10] [--warmup 2] [--checkpointing]

Timing: torch.cuda.synchronize(), clock, step, synchronize, clock; W warm-ups, then the
median of R steps. Before the model is built it also times its own bf16 GEMM peak
(8192^3, f32 accumulation). Peak memory is torch.cuda.max_memory_allocated() over the
warm-ups and timed steps (weights, gradients and AdamW state included).

Prints one JSON line: {"ms", "tokens_per_s", "peer_name", "gemm_tflops", "peak_bytes",
"loss", "device_name", "torch", "transformers", "attn_implementation"}, or, when a step
failed (out of memory, say), {"error", "gemm_tflops", "peak_bytes", ...} and exit status 0.
"""

import argparse
import json
import statistics
import sys
import time

import torch

GEMM_N = 8192


def gemm_tflops(dev, n=GEMM_N, inner=10, repeats=5, warmup=3):
    """Median TFLOP/s of an n^3 bf16 matmul (keep in step with bench/models_cuda.ts)."""
    g = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(n, n, device=dev, generator=g).to(torch.bfloat16)
    b = torch.randn(n, n, device=dev, generator=g).to(torch.bfloat16)
    with torch.no_grad():
        for _ in range(warmup):
            a @ b
        times = []
        for _ in range(repeats):
            torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            for _ in range(inner):
                a @ b
            torch.cuda.synchronize(dev)
            times.append((time.perf_counter() - t0) / inner)
    del a, b
    torch.cuda.empty_cache()
    return 2 * n ** 3 / statistics.median(times) / 1e12


def build_model(raw, dev):
    """AutoModelForCausalLM from a config.json dict, random init on the device, float32, SDPA."""
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    raw = dict(raw)
    model_type = raw.pop("model_type")
    raw.pop("architectures", None)
    cfg = AutoConfig.for_model(model_type, **raw)
    with torch.device(dev):
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    model.float()
    attn = getattr(model.config, "_attn_implementation", None)
    return model, transformers.__version__, attn


def err_line(e):
    s = str(e).strip()
    return f"{type(e).__name__}: {s.splitlines()[0] if s else ''}"[:300]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--config", required=True, help="config.json contents as a JSON string")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--checkpointing", action="store_true")
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(f"torch {torch.__version__} at {sys.executable} has no CUDA (torch.cuda.is_available() is False)", file=sys.stderr)
        return 3
    dev = torch.device(args.device)
    dev = torch.device("cuda", dev.index if dev.index is not None else 0)
    torch.cuda.set_device(dev)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    meta = {"device_name": torch.cuda.get_device_name(dev), "torch": torch.__version__, "python": sys.executable}

    gemm = gemm_tflops(dev)
    meta["gemm_tflops"] = gemm

    model, tf_version, attn = build_model(json.loads(args.config), dev)
    meta.update(transformers=tf_version, attn_implementation=attn)
    model.config.use_cache = False
    model.train()
    if args.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0, fused=True)
    B, T = args.batch, args.seq
    ids = torch.randint(0, model.config.vocab_size, (B, T), device=dev, generator=torch.Generator(device=dev).manual_seed(1))
    peer_name = f"transformers {tf_version} + torch {torch.__version__} ({attn}, fused AdamW)"

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(input_ids=ids, labels=ids, use_cache=False)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out.loss.detach()

    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    times, loss = [], None
    try:
        for i in range(args.warmup + args.repeats):
            torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            loss = step()
            torch.cuda.synchronize(dev)
            if i >= args.warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    except Exception as e:  # out of memory, most likely: report it as the peer's result
        peak = torch.cuda.max_memory_allocated(dev)
        print(json.dumps({"error": err_line(e), "peer_name": peer_name, "peak_bytes": peak, **meta}), flush=True)
        return 0
    ms = statistics.median(times)
    print(json.dumps({
        "ms": ms, "tokens_per_s": B * T / ms * 1e3, "peer_name": peer_name,
        "peak_bytes": torch.cuda.max_memory_allocated(dev), "loss": float(loss), **meta,
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
