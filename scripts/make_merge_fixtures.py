#!/usr/bin/python3
"""Generate model-merging fixtures: one tiny llama base, three fine-tunes, expected merges.

    /usr/bin/python3 scripts/make_merge_fixtures.py [--out test/fixtures/merge]

Writes (F32 safetensors via scripts/hf_reference.py's writer; no mergekit is needed or used):
  base/   config.json (llama, hidden 16, 2 layers, vocab 32), generation_config.json,
          tokenizer_config.json, special_tokens_map.json, model.safetensors
  ft_a/   base + large deltas (std 0.2 on matrices: exercises the real SLERP branch)
  ft_b/   base + small deltas (std 0.02)
  ft_c/   base + small deltas (std 0.02)
  expected.json  {case: {config: <mergekit YAML as a dict, model paths relative to this
                  folder>, tensors: {name: flat row-major float32 values}}}

Expected values are a straightforward float32 torch reference of mergekit's formulas
(mergekit a6e4028, docs/merging.md): linear (normalize),
task_arithmetic (lambda 0.7), ties (density 0.5, a layer-gradient weight list and a filter
list) and slerp (t 0.3 and a filter list with a gradient). DARE is random and is checked
statistically in test/merge.test.ts instead. Deterministic: fixed seed, CPU float32.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as hf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 20250101
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 16,
    "initializer_range": 0.02,
    "intermediate_size": 32,
    "max_position_embeddings": 64,
    "model_type": "llama",
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "num_key_value_heads": 1,
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "vocab_size": 32,
}
CHECK = [
    "model.embed_tokens.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.1.self_attn.q_proj.weight",
    "model.layers.0.mlp.down_proj.weight",
    "model.layers.1.mlp.up_proj.weight",
    "model.layers.1.input_layernorm.weight",
    "model.norm.weight",
    "lm_head.weight",
]
N_LAYERS = CONFIG["num_hidden_layers"]


# ---------------------------------------------------------------------------
# parameters as mergekit reads them
# ---------------------------------------------------------------------------

def layer_index(name):
    for part in (".layers.", ".h."):
        i = name.find(part)
        if i >= 0:
            return int(name[i + len(part):].split(".")[0])
    return None


def resolve(value, name):
    """Scalar, layer gradient (t = layer/(n-1), np.interp over the list; non-layer -> first
    element) or [{filter, value}] (substring, first match wins, no filter = fallback)."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        for e in value:
            if "filter" not in e or e["filter"] in name:
                return resolve(e["value"], name)
        raise KeyError(name)
    if isinstance(value, list):
        li = layer_index(name)
        if li is None:
            return float(value[0])
        t = li / (N_LAYERS - 1)
        return float(np.interp(t, np.linspace(0, 1, len(value)), value))
    return value


# ---------------------------------------------------------------------------
# reference formulas (float32 torch)
# ---------------------------------------------------------------------------

def linear(xs, ws, normalize=True):
    w = torch.tensor(ws, dtype=torch.float32).view(-1, *([1] * xs[0].dim()))
    res = (torch.stack(xs) * w).sum(0)
    return res / w.sum(0) if normalize else res


def magnitude(delta, density):
    if density >= 1:
        return delta
    k = int(density * delta.numel())
    assert k > 0
    flat = delta.reshape(-1)
    idx = torch.argsort(flat.abs(), descending=True)[:k]
    mask = torch.zeros_like(flat)
    mask[idx] = 1
    return (flat * mask).view_as(delta)


def task_arith(base, xs, ws, densities, consensus, normalize, lam):
    """Steps 1-6 of the generalized task-arithmetic algorithm."""
    tvs = [magnitude(x - base, d) for x, d in zip(xs, densities)]
    deltas = torch.stack(tvs)
    w = torch.tensor(ws, dtype=torch.float32).view(-1, *([1] * base.dim()))
    wd = deltas * w
    if consensus:
        majority = torch.where(wd.sum(0) >= 0, 1.0, -1.0)
        mask = (torch.sign(wd) == majority).float()
        mixed = (wd * mask).sum(0)
        div = (w * mask).sum(0)
        div[div == 0] = 1
    else:
        mixed = wd.sum(0)
        div = w.sum(0).expand_as(mixed).clone()
        div[div.abs() < 1e-8] = 1
    if normalize:
        mixed = mixed / div
    return base + lam * mixed


def slerp(t, v0, v1, thresh=0.9995, eps=1e-8):
    a = v0.reshape(-1).double().numpy().astype(np.float32)
    b = v1.reshape(-1).double().numpy().astype(np.float32)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    an = a / na if na > eps else a
    bn = b / nb if nb > eps else b
    dot = np.sum(an * bn)
    if abs(dot) > thresh:
        res = (1 - t) * a + t * b
    else:
        th0 = np.arccos(dot)
        s0 = np.sin(th0 - th0 * t) / np.sin(th0)
        s1 = np.sin(th0 * t) / np.sin(th0)
        res = s0 * a + s1 * b
    return torch.from_numpy(np.asarray(res, dtype=np.float32)).view_as(v0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "merge"))
    out = ap.parse_args().out
    torch.manual_seed(SEED)
    shapes = hf.llama_param_shapes(CONFIG)
    base = hf.init_params(shapes)

    def finetune(std):
        return {n: p + (torch.randn(p.shape) * (std if p.dim() >= 2 else std / 2)) for n, p in base.items()}

    models = {"base": base, "ft_a": finetune(0.2), "ft_b": finetune(0.02), "ft_c": finetune(0.02)}
    for name, params in models.items():
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        hf.write_safetensors(os.path.join(d, "model.safetensors"), params)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(CONFIG, f, indent=2)
            f.write("\n")
        with open(os.path.join(d, "generation_config.json"), "w") as f:
            json.dump({"bos_token_id": 1, "eos_token_id": 2}, f, indent=2)
            f.write("\n")
        if name == "base":
            with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
                json.dump({"model_max_length": 64, "bos_token": "<s>", "eos_token": "</s>"}, f, indent=2)
                f.write("\n")
            with open(os.path.join(d, "special_tokens_map.json"), "w") as f:
                json.dump({"bos_token": "<s>", "eos_token": "</s>"}, f, indent=2)
                f.write("\n")

    fts = ["ft_a", "ft_b", "ft_c"]
    cases = {}

    # linear, normalize (default): weights 1, 2, 0.5 -> divided by 3.5
    lin = {"merge_method": "linear", "models": [{"model": m, "parameters": {"weight": w}} for m, w in zip(fts, [1.0, 2.0, 0.5])], "dtype": "float32"}
    cases["linear"] = (lin, lambda n: linear([models[m][n] for m in fts], [1.0, 2.0, 0.5]))

    # task_arithmetic, lambda 0.7, normalize false (default)
    ta_w = [0.5, 0.3, 0.9]
    ta = {"merge_method": "task_arithmetic", "base_model": "base", "parameters": {"lambda": 0.7},
          "models": [{"model": m, "parameters": {"weight": w}} for m, w in zip(fts, ta_w)], "dtype": "float32"}
    cases["task_arithmetic"] = (ta, lambda n: task_arith(base[n], [models[m][n] for m in fts], ta_w, [1, 1, 1], False, False, 0.7))

    # ties: density 0.5 (global), a layer-gradient weight, a filter-list weight, own density for ft_c
    ties_w = [[1.0, 0.4], [{"filter": "mlp", "value": 0.8}, {"filter": "self_attn", "value": [0.2, 0.6]}, {"value": 0.3}], 0.6]
    ties = {"merge_method": "ties", "base_model": "base", "parameters": {"density": 0.5, "int8_mask": True},
            "models": [{"model": "ft_a", "parameters": {"weight": ties_w[0]}},
                       {"model": "ft_b", "parameters": {"weight": ties_w[1]}},
                       {"model": "ft_c", "parameters": {"weight": ties_w[2], "density": 0.7}}],
            "dtype": "float32"}
    cases["ties"] = (ties, lambda n: task_arith(base[n], [models[m][n] for m in fts], [resolve(w, n) for w in ties_w], [0.5, 0.5, 0.7], True, True, 1.0))

    # slerp between base (t=0) and ft_a: t 0.3 with a per-module gradient filter
    t_param = [{"filter": "self_attn", "value": [0.0, 0.5]}, {"filter": "mlp", "value": [1.0, 0.5]}, {"value": 0.3}]
    sl = {"merge_method": "slerp", "base_model": "base", "models": [{"model": "base"}, {"model": "ft_a"}],
          "parameters": {"t": t_param}, "dtype": "float32"}
    cases["slerp"] = (sl, lambda n: slerp(resolve(t_param, n), base[n], models["ft_a"][n]))

    expected = {}
    for case, (cfg, fn) in cases.items():
        expected[case] = {"config": cfg, "tensors": {n: [float(v) for v in fn(n).reshape(-1).tolist()] for n in CHECK}}
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)
        f.write("\n")
    print(f"wrote {out}: {len(models)} models, cases {', '.join(expected)}")


if __name__ == "__main__":
    main()
