#!/usr/bin/python3
"""PyTorch CPU peer for `temper bench ops`.

    /usr/bin/python3 bench/torch_ops.py [--threads N] [--repeats R] [--cases a,b,...]

Prints one JSON object per line.  The first line is
    {"case": "_meta", "torch": ..., "threads": N, "blas": ..., "adamw_impl": ...}
then, per case,
    {"case": name, "ms": median_ms, "peer_name": "torch <version> cpu"}

Every case except adamw_10M times FORWARD + BACKWARD: the forward, then
y.backward(grad_y) with a fixed random upstream gradient grad_y of y's shape
(i.e. the gradient of sum(y * grad_y)).  Inputs are float32; .grad is reset to
None before each run (outside the timed region).  Each case is warmed up twice
and then timed R times; the median is reported.  adamw_10M times
optimizer.step() only.
"""

import argparse
import json
import math
import os
import re
import statistics
import sys
import time

import torch
import torch.nn.functional as F

PEER_NAME = f"torch {torch.__version__} cpu"


# --------------------------------------------------------------------------
# cases: each returns (run, params) where run() executes one timed iteration
# --------------------------------------------------------------------------

def fwd_bwd(fn, leaves, grad_y):
    """Timed body: forward fn(), then backward with a fixed upstream gradient."""
    def run():
        y = fn()
        y.backward(grad_y)
    return run, leaves


def case_matmul_1024():
    a = torch.randn(1024, 1024, requires_grad=True)
    b = torch.randn(1024, 1024, requires_grad=True)
    gy = torch.randn(1024, 1024)
    return fwd_bwd(lambda: a @ b, [a, b], gy)


def make_attention(T):
    def case():
        B, Hq, Hkv, D = 4, 9, 3, 64
        g = Hq // Hkv
        scale = 1.0 / math.sqrt(D)
        q = torch.randn(B, Hq, T, D, requires_grad=True)
        k = torch.randn(B, Hkv, T, D, requires_grad=True)
        v = torch.randn(B, Hkv, T, D, requires_grad=True)
        # causal mask built once, outside the timed region (as HF builds it once per forward)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        gy = torch.randn(B, Hq, T, D)

        def fn():
            kk = k.repeat_interleave(g, dim=1)
            vv = v.repeat_interleave(g, dim=1)
            scores = (q @ kk.transpose(-1, -2)) * scale
            scores = scores.masked_fill(mask, float("-inf"))
            p = torch.softmax(scores, dim=-1)
            return p @ vv

        return fwd_bwd(fn, [q, k, v], gy)
    return case


def case_rms_norm():
    x = torch.randn(4, 1024, 576, requires_grad=True)
    w = (1.0 + 0.1 * torch.randn(576)).requires_grad_(True)
    eps = 1e-6
    gy = torch.randn(4, 1024, 576)

    def fn():
        # HF LlamaRMSNorm
        variance = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(variance + eps))

    return fwd_bwd(fn, [x, w], gy)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def case_rotary():
    B, T, H, D = 4, 1024, 9, 64
    x = torch.randn(B, T, H, D, requires_grad=True)
    # cos/sin precomputed outside the timed region (HF computes them once per forward)
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    pos = torch.arange(T).float()[None, :].expand(B, T)
    freqs = pos[:, :, None] * inv_freq[None, None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = emb.cos().unsqueeze(2)   # (B,T,1,D): broadcast over heads
    sin = emb.sin().unsqueeze(2)
    gy = torch.randn(B, T, H, D)

    def fn():
        # HF apply_rotary_pos_emb
        return (x * cos) + (rotate_half(x) * sin)

    return fwd_bwd(fn, [x], gy)


def case_cross_entropy():
    N, V = 1024, 49152
    logits = torch.randn(N, V, requires_grad=True)
    labels = torch.randint(0, V, (N,))
    gy = torch.randn(())
    return fwd_bwd(lambda: F.cross_entropy(logits, labels), [logits], gy)


def case_adamw_10M():
    n = 10_000_000
    p = torch.nn.Parameter(torch.randn(n))
    p.grad = torch.randn(n)
    opt = torch.optim.AdamW([p], lr=1e-3, weight_decay=0.01)

    def run():
        opt.step()

    return run, []


CASES = {
    "matmul_1024": case_matmul_1024,
    "attention_T256": make_attention(256),
    "attention_T1024": make_attention(1024),
    "rms_norm": case_rms_norm,
    "rotary": case_rotary,
    "cross_entropy": case_cross_entropy,
    "adamw_10M": case_adamw_10M,
}


# --------------------------------------------------------------------------

def blas_info():
    """Short BLAS description: BLAS_INFO from the build config, plus the BLAS
    library actually mapped into this process when it can be seen."""
    cfg = torch.__config__.show()
    parts = []
    m = re.search(r"BLAS_INFO=([^,\s]+)", cfg)
    if m:
        parts.append(f"BLAS_INFO={m.group(1)}")
    if "MKL" in cfg and re.search(r"Intel\(R\) (oneAPI )?Math Kernel Library", cfg):
        parts.append("MKL")
    libs = set()
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                base = os.path.basename(path)
                if re.search(r"(openblas|blis|mkl_rt|mkl_core|libblas|accelerate)", base, re.I):
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    if libs:
        parts.append("loaded: " + ", ".join(sorted(libs)))
    return "; ".join(parts) if parts else "unknown"


def set_blas_threads(n):
    """torch.set_num_threads does not reach an external OpenBLAS/BLIS (this
    Debian build has BLAS_INFO=generic and links the pthread OpenBLAS, which
    by default uses every core regardless).  Set the BLAS thread count to N
    too, so that --threads N means N threads for the whole peer.  Returns the
    BLAS thread count afterwards, or None if no such library is loaded."""
    import ctypes
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if len(line.split()) >= 6}
    except OSError:
        return None
    for path in sorted(paths):
        if not re.search(r"(openblas|blis|libblas)", os.path.basename(path), re.I):
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for setter, getter in (("openblas_set_num_threads", "openblas_get_num_threads"),
                               ("bli_thread_set_num_threads", None)):
            fset = getattr(lib, setter, None)
            if fset is None:
                continue
            fset.argtypes = [ctypes.c_int]
            fset(int(n))
            fget = getattr(lib, getter, None) if getter else None
            return int(fget()) if fget is not None else int(n)
    return None


def adamw_impl():
    """Which AdamW implementation the default constructor picks in this torch."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])
    foreach = opt.defaults.get("foreach")
    if foreach is None:
        # torch 1.13: foreach=None falls back to the single-tensor loop
        # (torch >= 2.0 picks foreach by device); report what this version does.
        major_minor = tuple(int(x) for x in re.findall(r"\d+", torch.__version__)[:2])
        if major_minor < (2, 0):
            return "single_tensor (foreach=None -> False in this torch)"
        return "default (foreach=None: torch picks; foreach on CUDA only)"
    return "foreach" if foreach else "single_tensor"


def time_case(name, repeats, warmup=2):
    torch.manual_seed(0)
    run, leaves = CASES[name]()
    times = []
    for i in range(warmup + repeats):
        for t in leaves:
            t.grad = None
        t0 = time.perf_counter()
        run()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description="PyTorch CPU peer for `temper bench ops`")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    args = ap.parse_args()

    names = [c for c in args.cases.split(",") if c] or list(CASES)
    unknown = [c for c in names if c not in CASES]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(CASES)}", file=sys.stderr)
        return 2
    if args.repeats < 1 or args.threads < 1:
        print("--repeats and --threads must be >= 1", file=sys.stderr)
        return 2

    torch.set_num_threads(args.threads)
    blas_threads = set_blas_threads(args.threads)
    torch.set_grad_enabled(True)
    print(json.dumps({"case": "_meta", "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "blas": blas_info(),
                      "blas_threads": blas_threads, "adamw_impl": adamw_impl()}), flush=True)
    for name in names:
        ms = time_case(name, args.repeats)
        print(json.dumps({"case": name, "ms": round(ms, 4), "peer_name": PEER_NAME}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
