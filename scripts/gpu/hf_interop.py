#!/usr/bin/env python3
"""temper's Hugging Face interop against the real libraries (transformers, and PEFT if installed).

Three steps, each its own process (scripts/gpu/run.sh stage `hf-interop` runs them in order):

  python3 scripts/gpu/hf_interop.py WORK          # 1. make: transformers builds the models
  node scripts/gpu/hf_interop.mjs WORK            # 2. temper loads, compares, saves, adapts
  python3 scripts/gpu/hf_interop.py --check WORK  # 3. transformers/PEFT load what temper wrote

1 (make) writes, for each architecture temper supports (llama, mistral, qwen2, qwen3, gpt2, and
llama with llama3 rope scaling), a small seeded transformers model: WORK/<arch>/hf (save_pretrained,
safetensors) and WORK/<arch>/hf_logits.json, its f32 eval logits (eager attention, CPU) on the
fixed batch in WORK/inputs.json (2 rows of 12 tokens, row 1 left-padded, with attention mask and
explicit position ids, so neither side has to guess them). Parameters are re-drawn (matrices
N(0, 0.1), norm scales 1 + N(0, 0.1), biases N(0, 0.1)) so that every weight matters.

3 (--check) loads WORK/<arch>/temper_saved (written by temper's saveModel) with
AutoModelForCausalLM and compares its logits with hf_logits.json; and, where
WORK/<arch>/temper_adapter exists and peft imports, loads the hf base + PeftModel.from_pretrained
(temper's saveAdapter output) and compares with WORK/<arch>/temper_lora_logits.json.

Logits are compared at real (unpadded) positions only: max abs diff < 1e-4. One line per check:
`PASS|FAIL|SKIP <arch> <check> maxdiff=<x> [note]`; the exit status is 1 on any FAIL.
Logit files: {"shape": [B, T, V], "data": [flat row-major floats]}.
Needs python3 with torch and transformers; nothing else (numpy and peft optional).
"""
import argparse
import json
import os
import shutil
import sys
import traceback

import torch

TOL = 1e-4
VOCAB = 256
B, T = 2, 12
N_PAD = 3  # row 1 starts with this many pads
PAD_ID = 0

# name -> (model_type, config kwargs, LoRA targets temper uses (for the notes only)).
# Tied and untied heads, GQA (kv 2 of 4 heads) and MQA (1 of 4), qkv bias (qwen2), q/k norm and
# an explicit head_dim != hidden/heads (qwen3), non-default rope_theta everywhere (so a config that
# temper misreads shows up in the logits), llama3 rope scaling.
LLAMA_COMMON = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                    max_position_embeddings=64, rms_norm_eps=1e-5, hidden_act="silu", initializer_range=0.02,
                    attention_dropout=0.0, bos_token_id=1, eos_token_id=2, vocab_size=VOCAB)
ARCHS = {
    "llama": ("llama", dict(LLAMA_COMMON, num_hidden_layers=3, rope_theta=500000.0, tie_word_embeddings=False,
                            attention_bias=False, mlp_bias=False)),
    "llama3rope": ("llama", dict(LLAMA_COMMON, num_hidden_layers=2, rope_theta=500000.0, tie_word_embeddings=True,
                                 rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                               "high_freq_factor": 4.0, "original_max_position_embeddings": 8})),
    "mistral": ("mistral", dict(LLAMA_COMMON, num_hidden_layers=2, num_key_value_heads=1, rope_theta=1000000.0,
                                sliding_window=32, tie_word_embeddings=False)),
    "qwen2": ("qwen2", dict(LLAMA_COMMON, num_hidden_layers=2, rope_theta=1000000.0, tie_word_embeddings=True,
                            use_sliding_window=False, sliding_window=None, max_window_layers=2)),
    "qwen3": ("qwen3", dict(LLAMA_COMMON, num_hidden_layers=4, head_dim=32, rope_theta=1000000.0,
                            tie_word_embeddings=False, attention_bias=False, use_sliding_window=False,
                            sliding_window=None, max_window_layers=4)),
    "gpt2": ("gpt2", dict(n_embd=64, n_layer=2, n_head=4, n_positions=64, n_inner=None, vocab_size=VOCAB,
                          activation_function="gelu_new", layer_norm_epsilon=1e-5, resid_pdrop=0.0,
                          embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True, bos_token_id=1,
                          eos_token_id=2)),
}
# Checkpoint keys that are buffers, never parameters (older transformers save GPT-2's masks).
BENIGN = ("attn.bias", "attn.masked_bias", "rotary_emb.inv_freq")

failed = False


def report(status, arch, check, diff=None, note=""):
    global failed
    if status == "FAIL":
        failed = True
    d = "maxdiff=-" if diff is None else f"maxdiff={diff:.3e}"
    print(f"{status} {arch} {check} {d}{(' ' + note) if note else ''}", flush=True)


def make_inputs():
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(3, VOCAB, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    ids[1, :N_PAD] = PAD_ID
    mask[1, :N_PAD] = 0
    # temper's default (src/models/inputs.ts) and transformers' generate: real tokens count from 0,
    # pads get 1. Passed explicitly to both sides.
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    return {"input_ids": ids.tolist(), "attention_mask": mask.tolist(), "position_ids": pos.tolist()}


def forward(model, inputs):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(inputs["input_ids"]), attention_mask=torch.tensor(inputs["attention_mask"]),
                    position_ids=torch.tensor(inputs["position_ids"]), use_cache=False)
    return out.logits.detach().float().cpu()


def write_logits(path, logits):
    with open(path, "w") as f:
        json.dump({"shape": list(logits.shape), "data": logits.reshape(-1).tolist()}, f)


def read_logits(path):
    with open(path) as f:
        j = json.load(f)
    return torch.tensor(j["data"], dtype=torch.float32).reshape(j["shape"])


def max_diff(a, b, inputs):
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"logits shape {list(a.shape)} vs {list(b.shape)}")
    real = torch.tensor(inputs["attention_mask"]).bool()
    d = (a[real] - b[real]).abs().max().item()
    return float("nan") if d != d else d


def redraw(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied weights appear once
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if p.ndim >= 2:
                p.copy_(r * 0.1)
            elif name.endswith("weight"):  # RMSNorm / LayerNorm scales, q/k norms
                p.copy_(1.0 + 0.1 * r)
            else:
                p.copy_(0.1 * r)


def load_pretrained(path):
    import transformers
    kw = dict(output_loading_info=True)
    try:
        model, info = transformers.AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager", **kw)
    except TypeError:  # transformers < 4.36
        model, info = transformers.AutoModelForCausalLM.from_pretrained(path, **kw)
    return model.float().eval(), info


def loading_problems(info, model):
    notes = []
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        bad = [k if isinstance(k, str) else str(k[0] if isinstance(k, (tuple, list)) else k) for k in (info.get(key) or [])]
        bad = [k for k in bad if not k.endswith(BENIGN) and not (tied and key == "missing_keys" and k == "lm_head.weight")]
        if bad:
            notes.append(f"{key}={bad[:4]}{'…' if len(bad) > 4 else ''}")
    return notes


def make(work, archs):
    import transformers
    os.makedirs(work, exist_ok=True)
    inputs = make_inputs()
    with open(os.path.join(work, "inputs.json"), "w") as f:
        json.dump(inputs, f)
    for i, name in enumerate(archs):
        model_type, kw = ARCHS[name]
        d = os.path.join(work, name)
        shutil.rmtree(d, ignore_errors=True)  # stale temper outputs of an earlier run
        try:
            config = transformers.AutoConfig.for_model(model_type, **kw)
        except (ValueError, KeyError) as e:
            report("SKIP", name, "make", note=f"this transformers ({transformers.__version__}) lacks {model_type}: {e}")
            continue
        try:
            torch.manual_seed(100 + i)
            try:
                model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
            except TypeError:
                config._attn_implementation = "eager"
                model = transformers.AutoModelForCausalLM.from_config(config)
            model = model.float().eval()
            redraw(model, 200 + i)
            hf = os.path.join(d, "hf")
            try:
                model.save_pretrained(hf, safe_serialization=True)
            except TypeError:
                model.save_pretrained(hf)
            logits = forward(model, inputs)
            write_logits(os.path.join(d, "hf_logits.json"), logits)
            # The folder as saved gives the same logits (a sanity check of this script, not of temper).
            again, info = load_pretrained(hf)
            diff = max_diff(forward(again, inputs), logits, inputs)
            notes = loading_problems(info, again)
            ok = diff < TOL and not notes
            report("PASS" if ok else "FAIL", name, "make(hf-reload)", diff,
                   f"{type(model).__name__} {sum(p.numel() for p in model.parameters())} params tied={config.tie_word_embeddings} {' '.join(notes)}".strip())
        except Exception as e:
            traceback.print_exc()
            report("FAIL", name, "make", note=f"{type(e).__name__}: {e}")


def check(work, archs):
    import transformers
    try:
        import peft
        from peft import PeftModel
    except Exception as e:
        peft = None
        print(f"SKIP peft checks: peft does not import ({type(e).__name__}: {e})", flush=True)
    with open(os.path.join(work, "inputs.json")) as f:
        inputs = json.load(f)
    ran = 0
    for name in archs:
        d = os.path.join(work, name)
        if not os.path.isfile(os.path.join(d, "hf_logits.json")):
            continue  # skipped by make
        ran += 1
        ref = read_logits(os.path.join(d, "hf_logits.json"))
        saved = os.path.join(d, "temper_saved")
        if not os.path.isfile(os.path.join(saved, "config.json")):
            report("FAIL", name, "transformers-loads-temper_saved", note="temper_saved not written (did hf_interop.mjs run?)")
        else:
            try:
                model, info = load_pretrained(saved)
                diff = max_diff(forward(model, inputs), ref, inputs)
                notes = loading_problems(info, model)
                report("PASS" if diff < TOL and not notes else "FAIL", name, "transformers-loads-temper_saved", diff,
                       " ".join([type(model).__name__] + notes))
            except Exception as e:
                traceback.print_exc()
                report("FAIL", name, "transformers-loads-temper_saved", note=f"{type(e).__name__}: {e}")
        adapter = os.path.join(d, "temper_adapter")
        if not os.path.isdir(adapter):
            report("FAIL", name, "peft-loads-temper_adapter", note="temper_adapter not written (did hf_interop.mjs run?)")
            continue
        if peft is None:
            report("SKIP", name, "peft-loads-temper_adapter", note="no peft")
            continue
        try:
            lora_ref = read_logits(os.path.join(d, "temper_lora_logits.json"))
            base, _ = load_pretrained(os.path.join(d, "hf"))
            pm = PeftModel.from_pretrained(base, adapter).eval()
            logits = forward(pm, inputs)
            diff = max_diff(logits, lora_ref, inputs)
            effect = max_diff(logits, ref, inputs)  # the adapter must change the output
            ok = diff < TOL and effect > 1e-3
            report("PASS" if ok else "FAIL", name, "peft-loads-temper_adapter", diff,
                   f"peft {peft.__version__}, adapter effect {effect:.3e}{'' if effect > 1e-3 else ' (too small: adapter not applied?)'}")
        except Exception as e:
            traceback.print_exc()
            report("FAIL", name, "peft-loads-temper_adapter", note=f"{type(e).__name__}: {e}")
    if ran == 0:
        report("FAIL", "-", "check", note=f"no WORK/<arch>/hf_logits.json under {work} (run the make step first)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work", help="work folder (created by the make step)")
    ap.add_argument("--check", action="store_true", help="check what temper wrote instead of making the models")
    ap.add_argument("--archs", default=",".join(ARCHS), help=f"comma-separated subset of {','.join(ARCHS)}")
    args = ap.parse_args()
    archs = [a for a in args.archs.split(",") if a]
    unknown = [a for a in archs if a not in ARCHS]
    if unknown:
        ap.error(f"unknown arch(es) {unknown}; known: {list(ARCHS)}")
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    try:
        import transformers
    except Exception as e:
        print(f"FAIL - import maxdiff=- transformers does not import: {e}")
        return 1
    print(f"# torch {torch.__version__}, transformers {transformers.__version__}, mode {'check' if args.check else 'make'}, "
          f"work {args.work}, tolerance {TOL}", flush=True)
    (check if args.check else make)(args.work, archs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
