#!/usr/bin/python3
"""Generate a PEFT LoRA adapter fixture for the tiny llama model fixture.

    /usr/bin/python3 scripts/make_peft_fixture.py [--out test/fixtures/peft/llama_lora]

Writes, as PEFT's save_pretrained lays an adapter out (no peft package is needed or used):
  adapter_config.json        PEFT 0.17 LoraConfig.to_dict() fields, json.dumps(indent=2, sort_keys=True)
  adapter_model.safetensors  base_model.model.<module path>.lora_A.weight (r, in) and
                             .lora_B.weight (out, r), F32, metadata {"format": "pt"}
  expected.json              input_ids (B, T), position_ids, logits (flat row-major float32)

The adapter targets q_proj and v_proj of test/fixtures/models/llama with r=4, lora_alpha=8 and
random nonzero A and B. Expected logits come from scripts/hf_reference.py's llama forward with
every adapted weight replaced by W + (alpha / r) * B @ A (PEFT's merged form); the script checks
that this equals the unmerged form base(x) + (alpha / r) * B(A(x)) on one projection.
Deterministic: fixed seed, single-threaded CPU float32.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as hf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = os.path.join(ROOT, "test", "fixtures", "models", "llama")
R, ALPHA = 4, 8
TARGETS = ["q_proj", "v_proj"]
SEED = 20240611
B, T = 2, 8


def adapter_config():
    """LoraConfig(r=4, lora_alpha=8, target_modules=[q_proj, v_proj], task_type=CAUSAL_LM).to_dict()
    as PEFT 0.17 saves it (inference_mode set True on save; sets written as sorted lists)."""
    return {
        "alpha_pattern": {},
        "auto_mapping": None,
        "base_model_name_or_path": "test/fixtures/models/llama",
        "bias": "none",
        "corda_config": None,
        "eva_config": None,
        "exclude_modules": None,
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layer_replication": None,
        "layers_pattern": None,
        "layers_to_transform": None,
        "loftq_config": {},
        "lora_alpha": ALPHA,
        "lora_bias": False,
        "lora_dropout": 0.05,
        "megatron_config": None,
        "megatron_core": "megatron.core",
        "modules_to_save": None,
        "peft_type": "LORA",
        "qalora_group_size": 16,
        "r": R,
        "rank_pattern": {},
        "revision": None,
        "target_modules": sorted(TARGETS),
        "target_parameters": None,
        "task_type": "CAUSAL_LM",
        "trainable_token_indices": None,
        "use_dora": False,
        "use_qalora": False,
        "use_rslora": False,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "peft", "llama_lora"))
    args = ap.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)

    with open(os.path.join(BASE, "config.json")) as f:
        config = json.load(f)
    params = hf.read_model_dir(BASE)
    scale = ALPHA / R

    adapter = {}
    merged = dict(params)
    for i in range(config["num_hidden_layers"]):
        for name in TARGETS:
            path = f"model.layers.{i}.self_attn.{name}"
            w = params[path + ".weight"]  # (out, in)
            out_f, in_f = w.shape
            a = (torch.rand(R, in_f) * 2 - 1) / in_f ** 0.5  # like kaiming_uniform(a=sqrt(5))
            b = torch.randn(out_f, R) * 0.1  # nonzero, as after training
            adapter[f"base_model.model.{path}.lora_A.weight"] = a
            adapter[f"base_model.model.{path}.lora_B.weight"] = b
            merged[path + ".weight"] = w + scale * (b @ a)

    # Merged equals unmerged on one projection: x W'^T == x W^T + s * (x A^T) B^T.
    x = torch.randn(3, config["hidden_size"])
    p = "model.layers.0.self_attn.q_proj"
    lhs = F.linear(x, merged[p + ".weight"])
    a, b = adapter[f"base_model.model.{p}.lora_A.weight"], adapter[f"base_model.model.{p}.lora_B.weight"]
    rhs = F.linear(x, params[p + ".weight"]) + scale * F.linear(F.linear(x, a), b)
    assert torch.allclose(lhs, rhs, atol=1e-5), (lhs - rhs).abs().max()

    gen = torch.Generator().manual_seed(SEED + 1)
    input_ids = torch.randint(3, config["vocab_size"], (B, T), generator=gen)
    position_ids = torch.arange(T)[None].expand(B, T)
    with torch.no_grad():
        logits = hf.llama_causal_lm(config, merged, input_ids, position_ids)
        base_logits = hf.llama_causal_lm(config, params, input_ids, position_ids)
    assert (logits - base_logits).abs().max() > 1e-2, "the adapter should change the logits"

    os.makedirs(args.out, exist_ok=True)
    hf.write_safetensors(os.path.join(args.out, "adapter_model.safetensors"), adapter)
    with open(os.path.join(args.out, "adapter_config.json"), "w") as f:
        json.dump(adapter_config(), f, indent=2, sort_keys=True)
    expected = {
        "generator": "scripts/make_peft_fixture.py",
        "torch": torch.__version__,
        "base": "test/fixtures/models/llama",
        "input_ids": input_ids.tolist(),
        "position_ids": position_ids.tolist(),
        "logits_shape": list(logits.shape),
        "logits": [float(np.float32(v)) for v in logits.reshape(-1).tolist()],
    }
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out}: {len(adapter)} adapter tensors, max |logits - base| "
          f"{float((logits - base_logits).abs().max()):.3f}")


if __name__ == "__main__":
    main()
