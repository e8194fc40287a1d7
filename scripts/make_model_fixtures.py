#!/usr/bin/python3
"""Generate Hugging Face model parity fixtures for temper's TypeScript tests.

    /usr/bin/python3 scripts/make_model_fixtures.py [--out test/fixtures/models]

Writes one folder per case with config.json, generation_config.json, the weights
(model.safetensors, or shards plus model.safetensors.index.json) and expected.json.
The reference forwards live in scripts/hf_reference.py (hand-written after the
transformers source; no transformers package is needed). Everything is deterministic:
each case seeds torch from a fixed per-case seed and runs single-threaded on CPU.

expected.json (float arrays are flat row-major float32 values, written as the shortest
decimal that reads back to the same float32; integer arrays are nested [B][T] lists):

  causal LM cases:
    inv_freq, attention_scaling          (llama family only)
    batch:  input_ids, attention_mask, position_ids, labels, logits_shape, logits, loss,
            grads {param name: flat gradient of loss}
    packed: doc_lengths, input_ids, position_ids, doc_ids, logits_shape, logits
    greedy: prompt_ids, max_new_tokens, tokens, min_margin
  llama_seqcls:
    inv_freq, attention_scaling
    batch:  input_ids, attention_mask, position_ids, logits_shape, logits,
            grad_weights, grads {param name: flat gradient of sum(logits * grad_weights)}
"""

import argparse
import copy
import json
import os
import shutil
import sys
import zlib

import numpy as np
import torch

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as hf  # noqa: E402

GENERATOR = "scripts/make_model_fixtures.py"
PAD_ID = 0
B, T = 2, 8
LEFT_PAD = 3
DOC_LENGTHS = [5, 4, 3]
PROMPT_LEN = 5
MAX_NEW_TOKENS = 8
MIN_MARGIN = 1e-2      # required top-1 minus top-2 logit gap at every greedy step
MIN_DISTINCT = 3       # preferred number of distinct generated tokens per row


# ---------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------

def llama_config(**overrides):
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": 128,
    }
    cfg.update(overrides)
    return dict(sorted(cfg.items()))


def mistral_config():
    return dict(sorted({
        "architectures": ["MistralForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        "model_type": "mistral",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": 128,
    }.items()))


def qwen2_config():
    return dict(sorted({
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        "max_window_layers": 2,
        "model_type": "qwen2",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 128,
    }.items()))


def qwen3_config():
    return dict(sorted({
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": 16,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        "max_window_layers": 2,
        "model_type": "qwen3",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 128,
    }.items()))


def gpt2_config():
    return dict(sorted({
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 1,
        "embd_pdrop": 0.1,
        "eos_token_id": 2,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": 64,
        "n_embd": 32,
        "n_head": 4,
        "n_inner": None,
        "n_layer": 2,
        "n_positions": 64,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": 128,
    }.items()))


def seqcls_config():
    return llama_config(
        architectures=["LlamaForSequenceClassification"],
        id2label={"0": "LABEL_0", "1": "LABEL_1"},
        label2id={"LABEL_0": 0, "LABEL_1": 1},
        num_labels=2,
        pad_token_id=PAD_ID,
    )


# name -> (config, weight storage {"dtype", "sharded"}, extra grad params)
CASES = {
    "llama": (llama_config(), {"dtype": "F32", "sharded": False}, []),
    "smollm": (llama_config(num_key_value_heads=1, rope_theta=100000.0, tie_word_embeddings=True),
               {"dtype": "F32", "sharded": False}, []),
    "llama3": (llama_config(head_dim=16, rope_theta=500000.0, rope_scaling={
        "factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
        "original_max_position_embeddings": 16, "rope_type": "llama3"}),
        {"dtype": "F32", "sharded": False}, []),
    "mistral": (mistral_config(), {"dtype": "F32", "sharded": False}, []),
    "qwen2": (qwen2_config(), {"dtype": "F32", "sharded": True},
              ["model.layers.0.self_attn.q_proj.bias"]),
    "qwen3": (qwen3_config(), {"dtype": "BF16", "sharded": False},
              ["model.layers.0.self_attn.q_norm.weight"]),
    "gpt2": (gpt2_config(), {"dtype": "F32", "sharded": False}, []),
    "llama_seqcls": (seqcls_config(), {"dtype": "F32", "sharded": False}, []),
}


def case_seed(name):
    return zlib.crc32(f"model-fixture/{name}".encode()) & 0x7FFFFFFF


# ---------------------------------------------------------------------------
# JSON with exact float32 numbers
# ---------------------------------------------------------------------------

class F32Array:
    def __init__(self, t):
        self.values = t.detach().float().contiguous().reshape(-1).numpy().copy()
        assert np.isfinite(self.values).all(), "non-finite value in fixture"

    def text(self):
        # str(np.float32) is the shortest decimal that round-trips to the same float32.
        return "[" + ",".join(str(v) for v in self.values) + "]"


def f32(x):
    return float(np.float32(x))


def dump_json(obj, path):
    arrays = []

    def prep(o):
        if isinstance(o, F32Array):
            arrays.append(o)
            return f"@@F32_{len(arrays) - 1}@@"
        if isinstance(o, dict):
            return {k: prep(v) for k, v in o.items()}
        if isinstance(o, list) and all(isinstance(v, (int, float, list)) for v in o):
            arrays.append(json.dumps(o, separators=(",", ":")))  # small int arrays, one line
            return f"@@F32_{len(arrays) - 1}@@"
        if isinstance(o, list):
            return [prep(v) for v in o]
        return o

    text = json.dumps(prep(obj), indent=1)
    for i, a in enumerate(arrays):
        text = text.replace(f'"@@F32_{i}@@"', a if isinstance(a, str) else a.text(), 1)
    with open(path, "w") as f:
        f.write(text + "\n")
    # Read back and check every float32 array is bit-exact.
    back = json.load(open(path))

    def check(orig, got):
        if isinstance(orig, F32Array):
            g = np.array(got, dtype=np.float64).astype(np.float32)
            assert g.shape == orig.values.shape and (g.view(np.uint32) == orig.values.view(np.uint32)).all()
        elif isinstance(orig, dict):
            for k in orig:
                check(orig[k], got[k])
        elif isinstance(orig, list):
            for a, b in zip(orig, got):
                check(a, b)

    check(obj, back)


def ints(t):
    return t.tolist()


# ---------------------------------------------------------------------------
# case generation
# ---------------------------------------------------------------------------

def write_weights(directory, config, params, storage):
    if storage["sharded"]:
        files = hf.write_sharded_safetensors(directory, params, storage["dtype"], max_shard_bytes=40_000)
        assert len(files) >= 2, "expected several shards"
    else:
        hf.write_safetensors(os.path.join(directory, "model.safetensors"), params, storage["dtype"])
    loaded = hf.read_model_dir(directory)
    assert set(loaded) == set(params)
    for name, t in params.items():
        want = hf.bf16_round(t) if storage["dtype"] == "BF16" else t
        assert loaded[name].shape == t.shape, name
        assert torch.equal(loaded[name], want), name
    return loaded


def random_ids(n, gen):
    return torch.randint(3, 128, (n,), generator=gen)


def grad_names(config, extra):
    if config["model_type"] == "gpt2":
        return ["transformer.wte.weight", "transformer.wpe.weight",
                "transformer.h.0.attn.c_attn.weight", "transformer.h.1.mlp.c_proj.weight",
                "transformer.ln_f.weight"]
    names = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
             "model.layers.1.mlp.down_proj.weight", "model.norm.weight"]
    if not hf.tie_word_embeddings(config):
        names.append("lm_head.weight")
    return names + extra


def with_grad(params):
    return {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}


def causal_case(name, config, params, extra, seed):
    gen = torch.Generator().manual_seed(seed + 1)
    out = {"case": name, "generator": GENERATOR, "torch": torch.__version__}
    if config["model_type"] != "gpt2":
        out["inv_freq"] = F32Array(hf.inv_freq(config))
        out["attention_scaling"] = hf.attention_scaling(config)

    # --- batch: row 0 full, row 1 left-padded by LEFT_PAD ---
    input_ids = torch.stack([random_ids(T, gen),
                             torch.cat([torch.full((LEFT_PAD,), PAD_ID), random_ids(T - LEFT_PAD, gen)])])
    attention_mask = (torch.arange(T)[None] >= torch.tensor([[0], [LEFT_PAD]])).long()
    position_ids = hf.default_position_ids(attention_mask)
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    # The first real token of a left-padded row would be predicted from a pad position,
    # whose logits are implementation-defined (fully masked query row); drop it.
    labels[1, LEFT_PAD] = -100
    p = with_grad(params)
    logits = hf.causal_lm_logits(config, p, input_ids, position_ids, attention_mask)
    loss = hf.causal_lm_loss(logits, labels)
    names = grad_names(config, extra)
    grads = torch.autograd.grad(loss, [p[n] for n in names])
    # Sanity: pad positions must not influence real positions.
    alt = input_ids.clone()
    alt[1, :LEFT_PAD] = 5
    logits_alt = hf.causal_lm_logits(config, params, alt, position_ids, attention_mask)
    assert torch.equal(logits_alt[attention_mask.bool()], logits.detach()[attention_mask.bool()])
    # Sanity: the left-padded row equals the same tokens run unpadded at positions 0..n-1.
    n_real = T - LEFT_PAD
    solo = hf.causal_lm_logits(config, params, input_ids[1:, LEFT_PAD:], torch.arange(n_real)[None])
    diff = (solo - logits.detach()[1:, LEFT_PAD:]).abs().max().item()
    assert diff < 1e-5, f"{name}: padded vs unpadded diff {diff}"
    out["batch"] = {
        "input_ids": ints(input_ids),
        "attention_mask": ints(attention_mask),
        "position_ids": ints(position_ids),
        "labels": ints(labels),
        "logits_shape": list(logits.shape),
        "logits": F32Array(logits),
        "loss": f32(loss.item()),
        "grads": {n: F32Array(g) for n, g in zip(names, grads)},
    }

    # --- packed: one row holding three documents ---
    packed_ids = random_ids(sum(DOC_LENGTHS), gen)[None]
    packed_pos = torch.cat([torch.arange(n) for n in DOC_LENGTHS])[None]
    doc_ids = torch.cat([torch.full((n,), i) for i, n in enumerate(DOC_LENGTHS)])[None]
    packed_logits = hf.causal_lm_logits(config, params, packed_ids, packed_pos, doc_ids=doc_ids)
    start = 0
    for n in DOC_LENGTHS:
        sep = hf.causal_lm_logits(config, params, packed_ids[:, start:start + n], torch.arange(n)[None])
        diff = (sep - packed_logits[:, start:start + n]).abs().max().item()
        assert diff < 1e-5, f"{name}: packed vs separate diff {diff}"
        start += n
    out["packed"] = {
        "doc_lengths": DOC_LENGTHS,
        "input_ids": ints(packed_ids),
        "position_ids": ints(packed_pos),
        "doc_ids": ints(doc_ids),
        "logits_shape": list(packed_logits.shape),
        "logits": F32Array(packed_logits),
    }

    # --- greedy: pick prompts whose every step has a clear top-1 (and, if possible,
    # outputs that are not one repeated token) ---
    best = None
    for attempt in range(200):
        pgen = torch.Generator().manual_seed(seed * 1000 + attempt)
        prompt = torch.randint(3, 128, (B, PROMPT_LEN), generator=pgen)
        tokens, margin = hf.greedy_generate(config, params, prompt, MAX_NEW_TOKENS)
        if margin <= MIN_MARGIN:
            continue
        if best is None:
            best = (prompt, tokens, margin)
        if min(len(set(r)) for r in tokens.tolist()) >= MIN_DISTINCT:
            best = (prompt, tokens, margin)
            break
    if best is None:
        raise RuntimeError(f"{name}: no prompt with a clear greedy margin")
    prompt, tokens, margin = best
    # The prefix-consistency check: logits of the full sequence reproduce each choice.
    full = torch.cat([prompt, tokens], 1)
    lg = hf.causal_lm_logits(config, params, full, torch.arange(full.shape[1])[None].expand(B, -1))
    assert torch.equal(lg[:, PROMPT_LEN - 1:-1].argmax(-1), tokens)
    out["greedy"] = {
        "prompt_ids": ints(prompt),
        "max_new_tokens": MAX_NEW_TOKENS,
        "tokens": ints(tokens),
        "min_margin": f32(margin),
    }
    return out


def seqcls_case(name, config, params, seed):
    gen = torch.Generator().manual_seed(seed + 1)
    out = {"case": name, "generator": GENERATOR, "torch": torch.__version__,
           "inv_freq": F32Array(hf.inv_freq(config)),
           "attention_scaling": hf.attention_scaling(config)}
    n_real = T - LEFT_PAD
    input_ids = torch.stack([random_ids(T, gen),
                             torch.cat([random_ids(n_real, gen), torch.full((LEFT_PAD,), PAD_ID)])])
    attention_mask = (input_ids != PAD_ID).long()
    position_ids = torch.arange(T)[None].expand(B, T)
    weights = torch.tensor([[1.0, -1.0], [0.5, 2.0]])
    p = with_grad(params)
    pooled = hf.llama_seqcls(config, p, input_ids, position_ids, attention_mask)
    names = ["score.weight", "model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight"]
    grads = torch.autograd.grad((pooled * weights).sum(), [p[n] for n in names])
    # Sanity: row 1 pooled at its last real token equals running it unpadded.
    solo = hf.llama_seqcls(config, params, input_ids[1:, :n_real])
    assert (solo - pooled[1:].detach()).abs().max().item() < 1e-5
    out["batch"] = {
        "input_ids": ints(input_ids),
        "attention_mask": ints(attention_mask),
        "position_ids": ints(position_ids),
        "logits_shape": list(pooled.shape),
        "logits": F32Array(pooled),
        "grad_weights": weights.tolist(),
        "grads": {n: F32Array(g) for n, g in zip(names, grads)},
    }
    return out


def make_case(root, name):
    config, storage, extra = CASES[name]
    config = copy.deepcopy(config)
    seed = case_seed(name)
    torch.manual_seed(seed)
    params = hf.init_params(hf.param_shapes(config))
    directory = os.path.join(root, name)
    if os.path.isdir(directory):
        shutil.rmtree(directory)
    os.makedirs(directory)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    gen_cfg = {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2}
    if "pad_token_id" in config:
        gen_cfg["pad_token_id"] = config["pad_token_id"]
    with open(os.path.join(directory, "generation_config.json"), "w") as f:
        json.dump(gen_cfg, f, indent=2)
        f.write("\n")
    # The reference runs on exactly what a loader reads back (BF16-rounded for qwen3).
    params = write_weights(directory, config, params, storage)
    if name == "llama_seqcls":
        expected = seqcls_case(name, config, params, seed)
    else:
        expected = causal_case(name, config, params, extra, seed)
    dump_json(expected, os.path.join(directory, "expected.json"))
    return expected


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "test", "fixtures", "models"))
    ap.add_argument("cases", nargs="*", default=list(CASES))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    for name in args.cases:
        exp = make_case(args.out, name)
        extra = ""
        if "greedy" in exp:
            extra = f" greedy={exp['greedy']['tokens']} margin={exp['greedy']['min_margin']:.4f}"
            extra += f" loss={exp['batch']['loss']:.4f}"
        print(f"{name}: ok{extra}")


if __name__ == "__main__":
    main()
