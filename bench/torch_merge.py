#!/usr/bin/python3
"""PyTorch peer for `temper bench merge`: dare_ties of fine-tunes onto a base, done the
straightforward way (every tensor of every model loaded into memory first, then merged
tensor by tensor, the output written as one safetensors file). The formula is
mergekit's generalized task arithmetic with DARE's exact 1/density rescale:
delta_i = x_i - base; keep with probability density, kept /= density; times weight;
sign consensus (majority = sign(sum w*delta), >= 0 -> +1); mixed = sum of agreeing;
result = base + mixed, cast to the output dtype.

    /usr/bin/python3 bench/torch_merge.py --base DIR --models D1,D2,D3 --out DIR
        [--density 0.5] [--weight 0.33] [--seed 1] [--threads N]

Prints one JSON line: {"ms", "max_rss_mb", "tensors", "peer_name"}. No safetensors
package on Debian: the reader and writer below follow the format spec.
"""

import argparse
import json
import os
import resource
import struct
import time

import torch

DT = {"F32": (torch.float32, 4), "BF16": (torch.bfloat16, 2), "F16": (torch.float16, 2)}


def read_folder(d):
    """Every tensor of a model folder (single file or shards), as float32."""
    files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    out = {}
    for f in files:
        with open(os.path.join(d, f), "rb") as fh:
            raw = fh.read()
        n = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8:8 + n])
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype, _ = DT[info["dtype"]]
            b, e = info["data_offsets"]
            t = torch.frombuffer(bytearray(raw[base + b:base + e]), dtype=dtype).reshape(info["shape"])
            out[name] = t.float()
    return out


def write_file(path, tensors, dtype="BF16"):
    tdt, size = DT[dtype]
    header, blobs, at = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        b = tensors[name].to(tdt).contiguous().view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(tensors[name].shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(h)))
        fh.write(h)
        for b in blobs:
            fh.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--density", type=float, default=0.5)
    ap.add_argument("--weight", type=float, default=0.33)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    base = read_folder(args.base)
    models = [read_folder(d) for d in args.models.split(",")]
    gen = torch.Generator().manual_seed(args.seed)
    out = {}
    with torch.no_grad():
        for name, b in base.items():
            deltas = []
            for m in models:
                d = m[name] - b
                keep = torch.bernoulli(torch.full_like(d, args.density), generator=gen)
                deltas.append(d * keep / args.density * args.weight)
            stacked = torch.stack(deltas)
            majority = torch.where(stacked.sum(0) >= 0, 1.0, -1.0)
            agree = torch.sign(stacked) == majority
            out[name] = b + (stacked * agree).sum(0)
    os.makedirs(args.out, exist_ok=True)
    write_file(os.path.join(args.out, "model.safetensors"), out)
    ms = (time.perf_counter() - t0) * 1e3
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"ms": ms, "max_rss_mb": rss, "tensors": len(out), "peer_name": f"torch {torch.__version__} cpu"}), flush=True)


if __name__ == "__main__":
    main()
