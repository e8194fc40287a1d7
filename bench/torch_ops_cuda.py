#!/usr/bin/env python3
"""PyTorch CUDA peer for `temper bench ops --device cuda[:N]`.

    python3 bench/torch_ops_cuda.py --device cuda:0 [--repeats R] [--warmup W] [--cases a,b,...]

Prints one JSON object per line.  The first line is
    {"case": "_meta", "torch": ..., "cuda": ..., "device": "cuda:0", "device_name": ..., ...}
then, per case,
    {"case": name, "ms": median_ms, "peer_name": "torch <version> cuda:0"}
or, when that case failed in this torch,
    {"case": name, "error": "..."}

The cases mirror bench/ops_cuda.ts (same shapes, same dtypes).  Every case except the
matmuls and adamw_500M times FORWARD + BACKWARD: the forward, then y.backward(grad_y)
with a fixed random upstream gradient of y's shape.  The matmuls time the forward only
(`inner` products per timed sample, reported per product) so that TFLOP/s is the GEMM's.
adamw_500M times optimizer.step() of torch.optim.AdamW(fused=True) only.

Timing: .grad is reset to None, torch.cuda.synchronize(), clock, run, synchronize, clock;
W warm-ups, then R timed runs; the median is reported.  TF32 is off (torch's default for
matmuls) except in matmul_4096_tf32.
"""

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

# case -> (shape description, inner products per timed sample); keep in step with bench/ops_cuda.ts
MM = 4096


def fwd_bwd(fn, leaves, grad_y):
    def run():
        y = fn()
        y.backward(grad_y)
    return run, leaves, 1


def matmul_case(dtype, tf32, inner=10):
    def case(dev):
        a = torch.randn(MM, MM, device=dev).to(dtype)
        b = torch.randn(MM, MM, device=dev).to(dtype)

        def run():
            prev = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
            try:
                with torch.no_grad():
                    for _ in range(inner):
                        a @ b
            finally:
                torch.backends.cuda.matmul.allow_tf32 = prev

        return run, [], inner
    return case


def case_attention(dev):
    B, H, T, D = 8, 16, 2048, 64
    q = torch.randn(B, H, T, D, device=dev, requires_grad=True)
    k = torch.randn(B, H, T, D, device=dev, requires_grad=True)
    v = torch.randn(B, H, T, D, device=dev, requires_grad=True)
    gy = torch.randn(B, H, T, D, device=dev)
    return fwd_bwd(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), [q, k, v], gy)


def case_cross_entropy(dev):
    N, V = 8192, 151936
    logits = torch.randn(N, V, device=dev, requires_grad=True)
    labels = torch.randint(0, V, (N,), device=dev)
    gy = torch.ones((), device=dev)
    return fwd_bwd(lambda: F.cross_entropy(logits, labels), [logits], gy)


def case_adamw(dev):
    n = 500_000_000
    p = torch.nn.Parameter(torch.randn(n, device=dev))
    p.grad = torch.randn(n, device=dev)
    opt = torch.optim.AdamW([p], lr=1e-3, weight_decay=0.01, fused=True)

    def run():
        opt.step()

    return run, [], 1


def case_rms_norm(dev):
    N, C = 16384, 4096
    x = torch.randn(N, C, device=dev, requires_grad=True)
    w = (1.0 + 0.1 * torch.randn(C, device=dev)).requires_grad_(True)
    eps = 1e-6
    gy = torch.randn(N, C, device=dev)

    def fn():
        # HF LlamaRMSNorm
        variance = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(variance + eps))

    return fwd_bwd(fn, [x, w], gy)


def case_softmax(dev):
    N, C = 16384, 8192
    x = torch.randn(N, C, device=dev, requires_grad=True)
    gy = torch.randn(N, C, device=dev)
    return fwd_bwd(lambda: torch.softmax(x, dim=-1), [x], gy)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def case_rotary(dev):
    B, T, H, D = 8, 2048, 16, 64
    x = torch.randn(B, T, H, D, device=dev, requires_grad=True)
    # cos/sin precomputed outside the timed region (HF computes them once per forward)
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, D, 2, dtype=torch.int64, device=dev).float() / D))
    pos = torch.arange(T, device=dev).float()[None, :].expand(B, T)
    freqs = pos[:, :, None] * inv_freq[None, None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = emb.cos().unsqueeze(2)
    sin = emb.sin().unsqueeze(2)
    gy = torch.randn(B, T, H, D, device=dev)
    return fwd_bwd(lambda: (x * cos) + (rotate_half(x) * sin), [x], gy)


def case_silu_mul(dev):
    N, C = 16384, 8192
    a = torch.randn(N, C, device=dev, requires_grad=True)
    b = torch.randn(N, C, device=dev, requires_grad=True)
    gy = torch.randn(N, C, device=dev)
    return fwd_bwd(lambda: F.silu(a) * b, [a, b], gy)


def case_add_bcast(dev):
    N, C = 16384, 8192
    a = torch.randn(N, C, device=dev, requires_grad=True)
    b = torch.randn(C, device=dev, requires_grad=True)
    gy = torch.randn(N, C, device=dev)
    return fwd_bwd(lambda: a + b, [a, b], gy)


def case_sum_rows(dev):
    N, C = 16384, 8192
    x = torch.randn(N, C, device=dev, requires_grad=True)
    gy = torch.randn(N, device=dev)
    return fwd_bwd(lambda: x.sum(-1), [x], gy)


CASES = {
    "matmul_4096_bf16": matmul_case(torch.bfloat16, False),
    "matmul_4096_f32": matmul_case(torch.float32, False),
    "matmul_4096_tf32": matmul_case(torch.float32, True),
    "attention_T2048": case_attention,
    "cross_entropy_152k": case_cross_entropy,
    "adamw_500M": case_adamw,
    "rms_norm": case_rms_norm,
    "softmax": case_softmax,
    "rotary": case_rotary,
    "silu_mul": case_silu_mul,
    "add_bcast": case_add_bcast,
    "sum_rows": case_sum_rows,
}


def time_case(name, dev, repeats, warmup):
    torch.manual_seed(0)
    run, leaves, inner = CASES[name](dev)
    try:
        times = []
        for i in range(warmup + repeats):
            for t in leaves:
                t.grad = None
            torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            run()
            torch.cuda.synchronize(dev)
            dt = time.perf_counter() - t0
            if i >= warmup:
                times.append(dt * 1e3 / inner)
        return statistics.median(times)
    finally:
        del run, leaves
        torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description="PyTorch CUDA peer for `temper bench ops --device cuda`")
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    args = ap.parse_args()

    names = [c for c in args.cases.split(",") if c] or list(CASES)
    unknown = [c for c in names if c not in CASES]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(CASES)}", file=sys.stderr)
        return 2
    if args.repeats < 1 or args.warmup < 0:
        print("--repeats must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print(f"torch {torch.__version__} at {sys.executable} has no CUDA (torch.cuda.is_available() is False)",
              file=sys.stderr)
        return 3
    dev = torch.device(args.device)
    if dev.type != "cuda":
        print(f"--device must be cuda or cuda:N, got {args.device}", file=sys.stderr)
        return 2
    idx = dev.index if dev.index is not None else 0
    if idx >= torch.cuda.device_count():
        print(f"{args.device}: torch sees {torch.cuda.device_count()} CUDA device(s)", file=sys.stderr)
        return 3
    dev = torch.device("cuda", idx)
    torch.cuda.set_device(dev)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_grad_enabled(True)
    peer_name = f"torch {torch.__version__} {dev}"
    cap = torch.cuda.get_device_capability(dev)
    print(json.dumps({
        "case": "_meta", "torch": torch.__version__, "cuda": torch.version.cuda, "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev), "capability": f"sm_{cap[0]}{cap[1]}",
        "python": sys.executable,
        "bf16_reduced_precision_reduction": getattr(torch.backends.cuda.matmul,
                                                    "allow_bf16_reduced_precision_reduction", None),
    }), flush=True)
    for name in names:
        try:
            ms = time_case(name, dev, args.repeats, args.warmup)
        except Exception as e:  # one case unsupported in this torch (or out of memory): report, go on
            msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            print(json.dumps({"case": name, "error": msg[:300]}), flush=True)
            torch.cuda.empty_cache()
            continue
        print(json.dumps({"case": name, "ms": round(ms, 4), "peer_name": peer_name}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
