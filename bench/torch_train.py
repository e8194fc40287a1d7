#!/usr/bin/python3
"""PyTorch CPU peer for `temper bench train`: one full fine-tuning step (forward, loss,
backward, AdamW) of the Llama peer model (bench/torch_llama.py) at a named shape.

    /usr/bin/python3 bench/torch_train.py --shape tiny|smollm-135m [--threads N] [--repeats R]

Prints one JSON line: {"shape", "ms" (median step), "tokens_per_s", "peer_name", "threads"}.
"""

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F

from torch_llama import SHAPES, Llama
from torch_ops import set_blas_threads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="tiny", choices=sorted(SHAPES))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    set_blas_threads(args.threads)
    torch.manual_seed(0)
    s = SHAPES[args.shape]
    model = Llama(s)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    B, T = s["batch"], s["seq"]
    ids = torch.randint(0, s["vocab"], (B, T))
    positions = torch.arange(T)[None].expand(B, T)
    labels = torch.cat([ids[:, 1:], torch.full((B, 1), -100)], dim=1)

    def step():
        logits = model(ids, positions)
        loss = F.cross_entropy(logits.view(-1, s["vocab"]), labels.reshape(-1), ignore_index=-100)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = []
    for i in range(1 + args.repeats):
        t0 = time.perf_counter()
        step()
        if i >= 1:
            times.append((time.perf_counter() - t0) * 1e3)
    ms = statistics.median(times)
    print(json.dumps({"shape": args.shape, "ms": ms, "tokens_per_s": B * T / ms * 1e3,
                      "peer_name": f"torch {torch.__version__} cpu", "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
