#!/usr/bin/python3
"""PyTorch CPU peer for `temper bench generate`: batched sampling with a preallocated
KV cache on the Llama peer model (bench/torch_llama.py): prefill the prompts, then one
token per step, temperature-1 multinomial sampling, no early stop.

    /usr/bin/python3 bench/torch_generate.py [--batch 64] [--new 128] [--prompt 32] [--threads N]

Prints one JSON line: {"ms", "tokens_per_s", "peer_name", "threads"}.
"""

import argparse
import json
import os
import time

import torch

from torch_llama import SHAPES, Llama
from torch_ops import set_blas_threads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="smollm-135m", choices=sorted(SHAPES))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    set_blas_threads(args.threads)
    torch.manual_seed(0)
    s = SHAPES[args.shape]
    model = Llama(s).eval()
    B, P, N = args.batch, args.prompt, args.new
    D = s["hidden"] // s["heads"]
    ids = torch.randint(0, s["vocab"], (B, P))
    with torch.no_grad():
        t0 = time.perf_counter()
        caches = [(torch.zeros(B, s["kv"], P + N, D), torch.zeros(B, s["kv"], P + N, D)) for _ in range(s["layers"])]
        logits = model(ids, torch.arange(P)[None].expand(B, P), caches, 0, last_only=True)[:, -1]
        for step in range(N):
            probs = torch.softmax(logits, dim=-1)
            tok = torch.multinomial(probs, 1)
            if step == N - 1:
                break
            pos = torch.full((B, 1), P + step)
            logits = model(tok, pos, caches, P + step, last_only=True)[:, -1]
        ms = (time.perf_counter() - t0) * 1e3
    print(json.dumps({"ms": ms, "tokens_per_s": B * N / ms * 1e3, "peer_name": f"torch {torch.__version__} cpu",
                      "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
