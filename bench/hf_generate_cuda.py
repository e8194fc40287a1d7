#!/usr/bin/env python3
"""transformers peer for `temper bench generate --device cuda[:N]`: batched generation with
`model.generate(..., cache_implementation="static")` on the model transformers builds from
the same config.json temper builds from (random init, weights in bfloat16,
attn_implementation="sdpa"), from the same prompts (read as a JSON list of token-id lists
on stdin, all of one length), no stop token, every row generating exactly --new tokens.
--temperature 0 is greedy; > 0 samples at that temperature with no top-k / top-p.

    python3 bench/hf_generate_cuda.py --device cuda:0 --config '<config.json as JSON>' \
        --new 256 [--temperature 0] [--warmup 1] < prompts.json

The static cache makes generate compile its decoding step on first use (recent
transformers), so --warmup full runs come first (their time is reported as first_ms);
then one run is timed, synchronized before and after.

Prints one JSON line: {"ms", "tokens_per_s", "new_tokens", "first_ms", "peer_name",
"peak_bytes", "device_name", "torch", "transformers"}, or {"error", ...} and exit status 0.
"""

import argparse
import json
import sys
import time

import torch

from hf_train_cuda import build_model, err_line


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--config", required=True, help="config.json contents as a JSON string")
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--warmup", type=int, default=1, help="untimed full runs first (at least 1)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(f"torch {torch.__version__} at {sys.executable} has no CUDA (torch.cuda.is_available() is False)", file=sys.stderr)
        return 3
    prompts = json.load(sys.stdin)
    dev = torch.device(args.device)
    dev = torch.device("cuda", dev.index if dev.index is not None else 0)
    torch.cuda.set_device(dev)
    torch.manual_seed(0)
    meta = {"device_name": torch.cuda.get_device_name(dev), "torch": torch.__version__, "python": sys.executable}

    model, tf_version, attn = build_model(json.loads(args.config), dev)
    model = model.to(torch.bfloat16).eval()
    meta.update(transformers=tf_version, attn_implementation=attn)
    gc = model.generation_config
    gc.eos_token_id = None
    gc.bos_token_id = None
    gc.pad_token_id = 0
    ids = torch.tensor(prompts, dtype=torch.long, device=dev)
    mask = torch.ones_like(ids)
    B, P, N = ids.shape[0], ids.shape[1], args.new
    kw = dict(max_new_tokens=N, cache_implementation="static", pad_token_id=0, eos_token_id=None)
    if args.temperature > 0:
        kw.update(do_sample=True, temperature=args.temperature, top_k=0, top_p=1.0)
    else:
        kw.update(do_sample=False, temperature=None, top_k=None, top_p=None)
    mode = "greedy" if args.temperature <= 0 else f"temperature {args.temperature:g}"
    peer_name = f"transformers {tf_version} + torch {torch.__version__} (generate, static cache, {attn}, bf16, {mode})"

    def run():
        with torch.inference_mode():
            torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            out = model.generate(input_ids=ids, attention_mask=mask, **kw)
            torch.cuda.synchronize(dev)
            return out, (time.perf_counter() - t0) * 1e3

    torch.cuda.reset_peak_memory_stats(dev)
    first_ms = None
    try:
        try:
            _, first_ms = run()
        except Exception as e:  # the automatic torch.compile of the static-cache step failed: go on without it
            if "out of memory" in str(e).lower():
                raise
            print(f"generate failed ({err_line(e)}); retrying with disable_compile=True", file=sys.stderr)
            kw["disable_compile"] = True
            peer_name = peer_name[:-1] + ", not compiled)"
            meta["compile_error"] = err_line(e)
            _, first_ms = run()
        for _ in range(args.warmup - 1):
            run()
        out, ms = run()
    except Exception as e:
        print(json.dumps({"error": err_line(e), "peer_name": peer_name,
                          "peak_bytes": torch.cuda.max_memory_allocated(dev), **meta}), flush=True)
        return 0
    produced = int(out.shape[0]) * (int(out.shape[1]) - P)
    print(json.dumps({
        "ms": ms, "tokens_per_s": produced / ms * 1e3, "new_tokens": produced, "expected_tokens": B * N,
        "first_ms": first_ms, "peer_name": peer_name, "peak_bytes": torch.cuda.max_memory_allocated(dev), **meta,
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
