#!/usr/bin/python3
"""Generate golden op fixtures for temper's TypeScript tests.

Run with Debian's python, which has torch installed:

    /usr/bin/python3 scripts/make_fixtures.py [--out test/fixtures/ops]

Writes one JSON file per op family:

    {"op": "<family>", "generator": "scripts/make_fixtures.py", "torch": "<version>",
     "notes": "...",
     "cases": [{"name": "...", "params": {...},
                "inputs":  {"x": {"shape": [...], "dtype": "f32"|"i32", "data": [...]}, ...},
                "outputs": {"y": {...}, ...},
                "grads":   {"x": {...}, ...}}]}

Conventions
-----------
* Inputs are float32 tensors (generated with torch in float32 from a per-case
  seed) or int32 tensors.  Float values are written as the exact float32 value
  (repr of the Python float), so reading them into a Float32Array is exact.
* Reference outputs and grads are computed in float64 from those same float32
  inputs (cast to double, run, store) and written with full double precision.
  They are tagged "dtype": "f32" because that is the logical dtype of the
  tensor in temper; compare with a float32-appropriate tolerance.
  Exception: adamw.json runs the optimizer in float32 exactly as a torch user
  would, and stores those float32 results.
* Backward: for every output <o> that has an upstream gradient, the case has an
  input "grad_<o>" of <o>'s shape.  "grads" holds d(sum_o sum(o * grad_o))/d(input)
  for each differentiable input, in the input's stored layout and shape.
* Data is flat, row-major (C order).  A shape of [] is a scalar with data [v].
* JSON has no infinities: null in a float data array means -inf (used only
  for attention "lse" rows that have no visible key).
"""

import argparse
import json
import math
import os
import sys
import zlib

import torch
import torch.nn.functional as F

GENERATOR = "scripts/make_fixtures.py"
REFERENCE_NOTE = (
    "inputs are exact float32 values; outputs and grads are float64 references "
    "computed from those inputs (dtype tags give the logical temper dtype). "
    "grads[x] = d(sum over outputs o with an input grad_<o> of sum(o * grad_<o>))/dx. "
    "null in float data means -inf."
)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def tensor_json(t):
    """Serialize a tensor as {"shape", "dtype", "data"} (flat row-major)."""
    t = t.detach().cpu().contiguous()
    shape = list(t.shape)
    if t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.bool, torch.uint8):
        data = [int(v) for v in t.reshape(-1).tolist()]
        for v in data:
            assert -2**31 <= v < 2**31, "value does not fit in int32"
        return {"shape": shape, "dtype": "i32", "data": data}
    data = []
    for v in t.double().reshape(-1).tolist():
        if math.isnan(v) or v == math.inf:
            raise ValueError("NaN or +inf in fixture data")
        data.append(None if v == -math.inf else float(v))
    return {"shape": shape, "dtype": "f32", "data": data}


def case_seed(family, name):
    """Stable per-case seed derived from the family and case name."""
    return zlib.crc32(f"{family}/{name}".encode()) & 0x7FFFFFFF


def seed_case(family, name):
    torch.manual_seed(case_seed(family, name))


def randn(*shape, scale=1.0):
    return (torch.randn(tuple(shape), dtype=torch.float32) * scale).float()


def rand_range(lo, hi, *shape):
    return (torch.rand(tuple(shape), dtype=torch.float32) * (hi - lo) + lo).float()


def reference(fn, inputs, diff, grad_outputs):
    """Run fn in float64 on the float32 inputs; return (outputs, grads).

    fn(**inputs_f64) -> dict of output tensors.
    diff: names of the differentiable inputs.
    grad_outputs: dict output name -> float32 upstream gradient tensor.
    """
    xs = {}
    for k, v in inputs.items():
        if v.is_floating_point():
            v = v.detach().double().clone()
            if k in diff:
                v.requires_grad_(True)
        xs[k] = v
    outs = fn(**xs)
    grads = {}
    if diff:
        total = None
        for o, g in grad_outputs.items():
            term = (outs[o] * g.double()).sum()
            total = term if total is None else total + term
        gs = torch.autograd.grad(total, [xs[k] for k in diff], allow_unused=True)
        for k, g in zip(diff, gs):
            grads[k] = torch.zeros_like(xs[k]) if g is None else g
            assert torch.isfinite(grads[k]).all(), f"non-finite grad for {k}"
    return {k: v.detach() for k, v in outs.items()}, grads


def make_case(name, params, inputs, outputs, grads):
    return {
        "name": name,
        "params": params,
        "inputs": {k: tensor_json(v) for k, v in inputs.items()},
        "outputs": {k: tensor_json(v) for k, v in outputs.items()},
        "grads": {k: tensor_json(v) for k, v in grads.items()},
    }


def ref_case(family, name, params, inputs, diff, fn, out_shapes, grad_outputs=None):
    """Build a case: add random grad_<o> inputs for outputs in grad_outputs
    (default: all outputs in out_shapes), compute the f64 reference."""
    if grad_outputs is None:
        grad_outputs = list(out_shapes)
    gouts = {o: randn(*out_shapes[o]) for o in grad_outputs}
    all_inputs = dict(inputs)
    for o, g in gouts.items():
        all_inputs["grad_" + o] = g
    fn_inputs = {k: v for k, v in inputs.items()}
    outs, grads = reference(fn, fn_inputs, diff, gouts)
    for o, s in out_shapes.items():
        assert list(outs[o].shape) == list(s), (name, o, outs[o].shape, s)
    return make_case(name, params, all_inputs, outs, grads)


def doc(family, cases, notes=None):
    d = {"op": family, "generator": GENERATOR, "torch": torch.__version__,
         "notes": REFERENCE_NOTE + ((" " + notes) if notes else ""),
         "cases": cases}
    return d


# --------------------------------------------------------------------------
# families
# --------------------------------------------------------------------------

def fixtures_matmul():
    fam = "matmul"
    specs = [
        # name, a stored shape, b stored shape, trans_a, trans_b
        ("2d_5x7_7x3", (5, 7), (7, 3), False, False),
        ("batched_2x3", (2, 3, 5, 4), (2, 3, 4, 6), False, False),
        ("broadcast_b_2d", (3, 5, 4), (4, 6), False, False),
        ("broadcast_batch_dims", (2, 1, 5, 4), (3, 4, 2), False, False),
        ("trans_a_2d", (7, 5), (7, 3), True, False),
        ("trans_b_2d", (5, 7), (3, 7), False, True),
        ("trans_ab_2d", (7, 5), (3, 7), True, True),
        ("trans_b_batched", (2, 3, 5, 4), (2, 3, 6, 4), False, True),
        ("trans_a_broadcast", (2, 1, 4, 5), (3, 4, 2), True, False),
        ("trans_ab_broadcast", (3, 9, 5), (6, 9), True, True),
    ]
    cases = []
    for name, sa, sb, ta, tb in specs:
        seed_case(fam, name)
        a, b = randn(*sa), randn(*sb)

        def fn(a, b, ta=ta, tb=tb):
            A = a.transpose(-1, -2) if ta else a
            B = b.transpose(-1, -2) if tb else b
            return {"y": A @ B}

        ya = a.transpose(-1, -2) if ta else a
        yb = b.transpose(-1, -2) if tb else b
        out_shape = list((ya @ yb).shape)
        cases.append(ref_case(fam, name, {"trans_a": ta, "trans_b": tb},
                              {"a": a, "b": b}, ["a", "b"], fn, {"y": out_shape}))
    return doc(fam, cases, "y = op(a) @ op(b), op = transpose of the last two dims when trans_*; "
                           "batch dims broadcast numpy-style.")


def fixtures_softmax():
    fam = "softmax"
    specs = [
        ("softmax_3x7", (3, 7), False, 1.0),
        ("log_softmax_3x7", (3, 7), True, 1.0),
        ("softmax_2x5x33", (2, 5, 33), False, 2.0),
        ("log_softmax_2x5x33", (2, 5, 33), True, 2.0),
        ("softmax_large_4x9", (4, 9), False, None),
        ("log_softmax_large_4x9", (4, 9), True, None),
    ]
    cases = []
    for name, shape, log, scale in specs:
        seed_case(fam, name)
        x = randn(*shape, scale=scale) if scale is not None else rand_range(-50.0, 50.0, *shape)

        def fn(x, log=log):
            return {"y": F.log_softmax(x, dim=-1) if log else F.softmax(x, dim=-1)}

        cases.append(ref_case(fam, name, {"log": log, "dim": -1}, {"x": x}, ["x"], fn,
                              {"y": list(shape)}))
    return doc(fam, cases, "softmax / log_softmax over the last dim.")


def fixtures_rms_norm():
    fam = "rms_norm"
    specs = [("x_2x5x37", (2, 5, 37), 1e-6), ("x_3x129", (3, 129), 1e-5)]
    cases = []
    for name, shape, eps in specs:
        seed_case(fam, name)
        x = randn(*shape, scale=1.5)
        w = (1.0 + randn(shape[-1], scale=0.2)).float()

        def fn(x, w, eps=eps):
            rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
            return {"y": w * (x * rstd)}

        cases.append(ref_case(fam, name, {"eps": eps}, {"x": x, "w": w}, ["x", "w"], fn,
                              {"y": list(shape)}))
    return doc(fam, cases, "y = w * (x * rsqrt(mean(x^2, -1) + eps)).")


def fixtures_layer_norm():
    fam = "layer_norm"
    specs = [("x_2x5x37", (2, 5, 37)), ("x_4x129", (4, 129))]
    cases = []
    for name, shape in specs:
        seed_case(fam, name)
        eps = 1e-5
        x = (randn(*shape, scale=2.0) + 0.5).float()
        w = (1.0 + randn(shape[-1], scale=0.2)).float()
        b = randn(shape[-1], scale=0.1)

        def fn(x, w, b, eps=eps):
            return {"y": F.layer_norm(x, (x.shape[-1],), w, b, eps)}

        cases.append(ref_case(fam, name, {"eps": eps}, {"x": x, "w": w, "b": b},
                              ["x", "w", "b"], fn, {"y": list(shape)}))
    return doc(fam, cases, "torch.nn.functional.layer_norm over the last dim (biased variance).")


def rotate_half(x):
    d = x.shape[-1] // 2
    return torch.cat((-x[..., d:], x[..., :d]), dim=-1)


def fixtures_rotary():
    fam = "rotary"
    specs = [
        ("b2_t5_h3_d8", (2, 5, 3, 8), 10000.0, [[0, 1, 2, 3, 4], [3, 4, 5, 6, 7]]),
        ("b1_t7_h2_d64_theta1e6_pos100", (1, 7, 2, 64), 1000000.0, [list(range(100, 107))]),
        ("b1_t3_h1_d96_far_positions", (1, 3, 1, 96), 10000.0, [[7, 2048, 4095]]),
    ]
    cases = []
    for name, shape, theta, pos in specs:
        seed_case(fam, name)
        B, T, H, D = shape
        x = randn(*shape)
        positions = torch.tensor(pos, dtype=torch.int32)
        # HF (LlamaRotaryEmbedding), all float32:
        inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
        assert inv_freq.dtype == torch.float32
        freqs = positions.float()[:, :, None] * inv_freq[None, None, :]   # (B,T,D/2) f32
        emb = torch.cat((freqs, freqs), dim=-1)                             # (B,T,D) f32
        cos, sin = emb.cos(), emb.sin()                                     # f32
        assert cos.dtype == torch.float32

        def fn(x, positions, inv_freq, cos=cos, sin=sin):
            c = cos.double()[:, :, None, :]   # broadcast over heads
            s = sin.double()[:, :, None, :]
            return {"out": x * c + rotate_half(x) * s}

        case = ref_case(fam, name, {"theta": theta},
                        {"x": x, "positions": positions, "inv_freq": inv_freq},
                        ["x"], fn, {"out": list(shape)})
        # cos/sin as computed by HF in float32, (B,T,D): for debugging, no grad
        case["outputs"]["cos"] = tensor_json(cos)
        case["outputs"]["sin"] = tensor_json(sin)
        cases.append(case)
    return doc(fam, cases,
               "HF rotate_half rotary. x (B,T,H,D); positions (B,T) int32; "
               "inv_freq = 1/(theta ** (arange(0,D,2)/D)) in float32 (stored input, not "
               "differentiable); freqs = float32(pos) * inv_freq in float32; "
               "emb = cat(freqs, freqs); cos/sin of emb in float32 (also stored as outputs "
               "cos/sin, shape (B,T,D), no grads); out = x*cos + rotate_half(x)*sin with "
               "rotate_half(x) = cat(-x[..., D/2:], x[..., :D/2]), evaluated in float64 from "
               "the float32 cos/sin. Only out has an upstream grad (grad_out).")


def attention_reference(q, k, v, causal, key_mask, doc_ids, scale):
    """Masked attention in the temper layout, float64. Returns out, lse."""
    B, Tq, Hq, D = q.shape
    Tk, Hkv = k.shape[1], k.shape[2]
    g = Hq // Hkv
    qh = q.permute(0, 2, 1, 3)                                   # B,Hq,Tq,D
    kh = k.permute(0, 2, 1, 3).repeat_interleave(g, dim=1)       # B,Hq,Tk,D
    vh = v.permute(0, 2, 1, 3).repeat_interleave(g, dim=1)
    s = (qh @ kh.transpose(-1, -2)) * scale                      # B,Hq,Tq,Tk
    qpos = Tk - Tq + torch.arange(Tq)
    kpos = torch.arange(Tk)
    vis = torch.ones(B, Tq, Tk, dtype=torch.bool)
    if causal:
        vis &= (kpos[None, :] <= qpos[:, None])[None]
    if key_mask is not None:
        vis &= key_mask.bool()[:, None, :]
    if doc_ids is not None:
        vis &= doc_ids[:, None, :] == doc_ids[:, qpos][:, :, None]
    vis = vis[:, None]                                           # B,1,Tq,Tk
    has = vis.any(-1)                                            # B,1,Tq
    s = s.masked_fill(~vis, -math.inf)
    s_safe = torch.where(has[..., None], s, torch.zeros_like(s))  # rows with no key: all 0
    lse_safe = torch.logsumexp(s_safe, dim=-1)                   # B,Hq,Tq
    p = torch.exp(s_safe - lse_safe[..., None]) * vis            # empty rows -> 0
    out = (p @ vh).permute(0, 2, 1, 3)                           # B,Tq,Hq,D
    lse = torch.where(has, lse_safe, torch.full_like(lse_safe, -math.inf))
    return out, lse


def fixtures_attention():
    fam = "attention"
    # name, B, Tq, Tk, Hq, Hkv, D, causal, mask kind
    specs = [
        ("gqa1_d8_t7_causal", 2, 7, 7, 2, 2, 8, True, None),
        ("gqa2_d16_t70_causal", 1, 70, 70, 2, 1, 16, True, None),
        ("gqa3_d64_t7_causal", 1, 7, 7, 3, 1, 64, True, None),
        ("gqa3_d16_t1_causal", 2, 1, 1, 3, 1, 16, True, None),
        ("gqa2_d16_t11_causal_left_pad3", 2, 11, 11, 2, 1, 16, True, "left_pad"),
        ("gqa3_d8_t37_causal_doc_ids_10_20_7", 1, 37, 37, 3, 1, 8, True, "doc_ids"),
        ("gqa1_d8_t9_noncausal", 2, 9, 9, 2, 2, 8, False, None),
        ("gqa3_d8_t9_noncausal_key_mask", 2, 9, 9, 3, 1, 8, False, "key_mask_mixed"),
        ("gqa2_d16_tq5_tk20_causal", 1, 5, 20, 2, 1, 16, True, None),
    ]
    cases = []
    for name, B, Tq, Tk, Hq, Hkv, D, causal, mask in specs:
        seed_case(fam, name)
        q = randn(B, Tq, Hq, D)
        k = randn(B, Tk, Hkv, D)
        v = randn(B, Tk, Hkv, D)
        scale = 1.0 / math.sqrt(D)
        inputs = {"q": q, "k": k, "v": v}
        key_mask = doc_ids = None
        if mask == "left_pad":
            key_mask = torch.ones(B, Tk, dtype=torch.int32)
            key_mask[1, :3] = 0
            inputs["key_mask"] = key_mask
        elif mask == "key_mask_mixed":
            key_mask = torch.ones(B, Tk, dtype=torch.int32)
            key_mask[0, -2:] = 0        # right padding in item 0
            key_mask[1, [0, 4]] = 0     # holes in item 1
            inputs["key_mask"] = key_mask
        elif mask == "doc_ids":
            lens = [10, 20, 7]
            assert sum(lens) == Tk
            doc_ids = torch.cat([torch.full((n,), i, dtype=torch.int32)
                                 for i, n in enumerate(lens)])[None].repeat(B, 1)
            inputs["doc_ids"] = doc_ids

        def fn(q, k, v, key_mask=None, doc_ids=None, causal=causal, scale=scale):
            out, lse = attention_reference(q, k, v, causal, key_mask, doc_ids, scale)
            return {"out": out, "lse": lse}

        params = {"causal": causal, "scale": scale, "gqa_ratio": Hq // Hkv}
        case = ref_case(fam, name, params, inputs, ["q", "k", "v"], fn,
                        {"out": [B, Tq, Hq, D], "lse": [B, Hq, Tq]}, grad_outputs=["out"])
        # sanity: unmasked-row results agree with a plain float32 torch computation
        with torch.no_grad():
            o32, _ = attention_reference(q, k, v, causal, key_mask, doc_ids, scale)
            o64 = torch.tensor(case["outputs"]["out"]["data"], dtype=torch.float64).reshape(o32.shape)
            assert torch.allclose(o32.double(), o64, atol=1e-5), name
        cases.append(case)
    return doc(fam, cases,
               "Scaled dot-product attention, temper layout: q (B,Tq,Hq,D), k/v (B,Tk,Hkv,D), "
               "out (B,Tq,Hq,D); query head h uses kv head h // (Hq/Hkv); params.scale = 1/sqrt(D). "
               "Query i sits at absolute position Tk-Tq+i. Key s is visible to query i iff "
               "(not causal or s <= Tk-Tq+i) and key_mask[b,s] == 1 (if given) and "
               "doc_ids[b,s] == doc_ids[b,Tk-Tq+i] (if given). Rows with no visible key: "
               "out = 0, lse = -inf (stored as null), and they contribute no gradient. "
               "lse (B,Hq,Tq) = logsumexp over visible keys of the scaled scores (natural log). "
               "Only out has an upstream gradient (grad_out); lse is forward-only.")


def fixtures_cross_entropy():
    fam = "cross_entropy"
    specs = [
        # name, N, V, eps, number of ignored labels
        ("n7_v1000", 7, 1000, 0.0, 0),
        ("n9_v4099_smooth0.1_ignore2", 9, 4099, 0.1, 2),
        ("n3_v33_smooth0.05", 3, 33, 0.05, 0),
    ]
    cases = []
    for name, N, V, eps, n_ign in specs:
        seed_case(fam, name)
        logits = randn(N, V, scale=2.0)
        labels = torch.randint(0, V, (N,), dtype=torch.int64)
        if n_ign:
            idx = torch.randperm(N)[:n_ign]
            labels[idx] = -100
        labels = labels.to(torch.int32)

        def fn(logits, labels, eps=eps):
            lab = labels.long()
            rows = F.cross_entropy(logits, lab, ignore_index=-100, label_smoothing=eps,
                                   reduction="none")
            mean = F.cross_entropy(logits, lab, ignore_index=-100, label_smoothing=eps,
                                   reduction="mean")
            # cross-check the documented formula
            logp = F.log_softmax(logits, dim=-1)
            valid = lab != -100
            nll = -logp.gather(1, lab.clamp(min=0)[:, None])[:, 0]
            smooth = -logp.mean(-1)
            manual = torch.where(valid, (1 - eps) * nll + eps * smooth, torch.zeros_like(nll))
            assert torch.allclose(manual, rows, rtol=1e-12, atol=1e-12)
            assert torch.allclose(manual.sum() / valid.sum(), mean, rtol=1e-12, atol=1e-12)
            return {"loss_rows": rows, "loss_mean": mean}

        params = {"ignore_index": -100, "label_smoothing": eps}
        case = ref_case(fam, name, params, {"logits": logits, "labels": labels}, ["logits"], fn,
                        {"loss_rows": [N], "loss_mean": []}, grad_outputs=["loss_mean"])
        cases.append(case)
    return doc(fam, cases,
               "torch.nn.functional.cross_entropy(logits (N,V), labels (N) int32, "
               "ignore_index=-100, label_smoothing=eps). loss_rows: reduction='none' "
               "(0 for ignored rows) = (1-eps)*(-logp[label]) + eps*mean_v(-logp[v]); "
               "loss_mean: reduction='mean' = sum(loss_rows)/count(non-ignored). "
               "grads.logits is the backward of loss_mean only, with upstream grad_loss_mean "
               "(shape []).")


def fixtures_adamw():
    fam = "adamw"
    cases = []

    # case 1: single param, 5 steps
    name = "p37_5steps"
    seed_case(fam, name)
    hp = {"lr": 1e-3, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1}
    p0 = randn(37)
    grads = randn(5, 37, scale=0.5)
    p = p0.clone().requires_grad_(True)
    opt = torch.optim.AdamW([p], lr=hp["lr"], betas=tuple(hp["betas"]), eps=hp["eps"],
                            weight_decay=hp["weight_decay"])
    after = []
    for i in range(5):
        p.grad = grads[i].clone()
        opt.step()
        after.append(p.detach().clone())
    st = opt.state[p]
    impl = "foreach" if opt.defaults.get("foreach") else "single_tensor"
    cases.append(make_case(
        name, dict(hp, steps=5, amsgrad=False, maximize=False, torch_impl=impl),
        {"param": p0, "grads": grads},
        {"param_after": torch.stack(after), "exp_avg": st["exp_avg"],
         "exp_avg_sq": st["exp_avg_sq"]},
        {}))

    # case 2: two params, clip_grad_norm_(0.5) before each step
    name = "two_params_clip0.5_5steps"
    seed_case(fam, name)
    hp2 = dict(hp)
    a0, b0 = randn(4, 3), randn(7)
    # vary the grad scale per step so some steps clip and some do not
    scales = torch.tensor([0.05, 1.0, 0.1, 3.0, 0.02])
    ga = randn(5, 4, 3) * scales[:, None, None]
    gb = randn(5, 7) * scales[:, None]
    a = a0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    opt = torch.optim.AdamW([a, b], lr=hp2["lr"], betas=tuple(hp2["betas"]), eps=hp2["eps"],
                            weight_decay=hp2["weight_decay"])
    tot, post, a_after, b_after = [], [], [], []
    for i in range(5):
        a.grad = ga[i].clone()
        b.grad = gb[i].clone()
        n = torch.nn.utils.clip_grad_norm_([a, b], max_norm=0.5)
        tot.append(n.detach().clone())
        post.append(torch.linalg.vector_norm(torch.cat([a.grad.reshape(-1), b.grad.reshape(-1)])))
        opt.step()
        a_after.append(a.detach().clone())
        b_after.append(b.detach().clone())
    clipped = [bool(t > 0.5) for t in tot]
    assert any(clipped) and not all(clipped)
    cases.append(make_case(
        name, dict(hp2, steps=5, max_norm=0.5, norm_type=2.0, torch_impl=impl,
                   clipped_steps=clipped),
        {"param0": a0, "param1": b0, "grads0": ga, "grads1": gb},
        {"total_norm": torch.stack(tot), "grad_norm_after_clip": torch.stack(post),
         "param0_after": torch.stack(a_after), "param1_after": torch.stack(b_after),
         "exp_avg0": opt.state[a]["exp_avg"], "exp_avg_sq0": opt.state[a]["exp_avg_sq"],
         "exp_avg1": opt.state[b]["exp_avg"], "exp_avg_sq1": opt.state[b]["exp_avg_sq"]},
        {}))
    return doc(fam, cases,
               "EXCEPTION to the float64 rule: torch.optim.AdamW run in float32 exactly as a "
               "torch user would; outputs are those float32 values. Per step i: grad = grads[i] "
               "(step counter starts at 1); decoupled decay p *= 1 - lr*wd; m = b1*m + (1-b1)*g; "
               "v = b2*v + (1-b2)*g^2; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). "
               "param_after[i] is the parameter after step i. Case 2 calls "
               "torch.nn.utils.clip_grad_norm_([param0, param1], max_norm=0.5) before each "
               "step: total_norm[i] is the returned pre-clip global L2 norm; grads are "
               "multiplied by min(1, max_norm/(total_norm + 1e-6)); grad_norm_after_clip[i] "
               "is the global norm after clipping. No grads section.")


UNARY = {
    "neg": (lambda x: -x, "any"),
    "exp": (torch.exp, "any"),
    "log": (torch.log, "pos"),
    "sqrt": (torch.sqrt, "pos"),
    "rsqrt": (torch.rsqrt, "pos"),
    "abs": (torch.abs, "any"),
    "silu": (F.silu, "any"),
    "gelu": (lambda x: F.gelu(x), "any"),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), "any"),
    "sigmoid": (torch.sigmoid, "any"),
    "tanh": (torch.tanh, "any"),
    "softplus": (lambda x: F.softplus(x), "any"),
    "relu": (F.relu, "any"),
    "square": (lambda x: x * x, "any"),
    "reciprocal": (torch.reciprocal, "pos"),
}

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: torch.pow(a, b),
    "maximum": torch.maximum,
    "minimum": torch.minimum,
}


def fixtures_elementwise():
    fam = "elementwise"
    cases = []
    shape = (3, 11)
    for op, (f, domain) in UNARY.items():
        name = "unary_" + op
        seed_case(fam, name)
        if domain == "pos":
            x = rand_range(0.1, 4.0, *shape)
        else:
            x = randn(*shape, scale=2.0)
            # keep away from the kinks of abs/relu at 0
            x = torch.where(x.abs() < 0.05, x.sign() * 0.05 + x, x).float()
            x = torch.where(x == 0, torch.full_like(x, 0.25), x).float()

        def fn(x, f=f):
            return {"y": f(x)}

        cases.append(ref_case(fam, name, {"op": op, "kind": "unary"}, {"x": x}, ["x"], fn,
                              {"y": list(shape)}))

    sa, sb = (3, 1, 5), (4, 1)
    out_shape = [3, 4, 5]
    for op, f in BINARY.items():
        name = "binary_" + op
        seed_case(fam, name)
        if op == "pow":
            a = rand_range(0.5, 2.5, *sa)
            b = randn(*sb, scale=1.5)
        elif op == "div":
            a = randn(*sa)
            b = rand_range(0.5, 2.0, *sb) * torch.where(torch.rand(*sb) < 0.5, -1.0, 1.0)
            b = b.float()
        else:
            a = randn(*sa)
            b = randn(*sb)
        if op in ("maximum", "minimum"):
            assert (a.reshape(3, 1, 5) != b.reshape(1, 4, 1)).all()

        def fn(a, b, f=f):
            return {"y": f(a, b)}

        cases.append(ref_case(fam, name, {"op": op, "kind": "binary"}, {"a": a, "b": b},
                              ["a", "b"], fn, {"y": out_shape}))
    return doc(fam, cases,
               "Unary ops on x (3,11): neg exp log sqrt rsqrt abs silu gelu (erf) gelu_tanh "
               "(approximate='tanh') sigmoid tanh softplus (beta=1, threshold=20) relu square "
               "reciprocal. Binary ops on a (3,1,5), b (4,1) broadcasting to (3,4,5): add sub "
               "mul div pow (a > 0) maximum minimum (no ties); grads are reduced to the input "
               "shapes.")


def fixtures_reduce():
    fam = "reduce"
    cases = []
    shape = (3, 4, 5)
    ops = {
        "sum": lambda x, d, k: x.sum(dim=d, keepdim=k),
        "mean": lambda x, d, k: x.mean(dim=d, keepdim=k),
        "max": lambda x, d, k: torch.amax(x, dim=d, keepdim=k),
        "min": lambda x, d, k: torch.amin(x, dim=d, keepdim=k),
        "logsumexp": lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k),
        "var": lambda x, d, k: torch.var(x, dim=d, unbiased=True, keepdim=k),
    }
    for op, f in ops.items():
        for axes in ([1], [0, 2], [-1]):
            for keepdim in (True, False):
                name = f"{op}_axes{'_'.join(str(a) for a in axes)}_keepdim{int(keepdim)}"
                seed_case(fam, name)
                # distinct values (a permutation plus small noise) so max/min are unique
                x = ((torch.randperm(60).float() - 30.0) / 8.0 + torch.rand(60) * 0.05)
                x = x.reshape(shape).float()
                out_shape = list(f(x, axes, keepdim).shape)

                def fn(x, f=f, axes=axes, keepdim=keepdim):
                    return {"y": f(x, axes, keepdim)}

                cases.append(ref_case(fam, name, {"op": op, "axes": axes, "keepdim": keepdim},
                                      {"x": x}, ["x"], fn, {"y": out_shape}))
    for keepdim in (False, True):
        name = f"argmax_axes1_keepdim{int(keepdim)}"
        seed_case(fam, name)
        x = ((torch.randperm(60).float() - 30.0) / 8.0).reshape(shape).float()
        y = torch.argmax(x, dim=1, keepdim=keepdim).to(torch.int32)
        cases.append(make_case(name, {"op": "argmax", "axes": [1], "keepdim": keepdim},
                               {"x": x}, {"y": y}, {}))
    return doc(fam, cases,
               "Reductions of x (3,4,5) over params.axes with params.keepdim: sum mean max "
               "(amax) min (amin) logsumexp var (unbiased, correction=1); argmax over axis 1 "
               "(int32 indices, no grads). Values are distinct so max/min/argmax are unique.")


FAMILIES = {
    "matmul": fixtures_matmul,
    "softmax": fixtures_softmax,
    "rms_norm": fixtures_rms_norm,
    "layer_norm": fixtures_layer_norm,
    "rotary": fixtures_rotary,
    "attention": fixtures_attention,
    "cross_entropy": fixtures_cross_entropy,
    "adamw": fixtures_adamw,
    "elementwise": fixtures_elementwise,
    "reduce": fixtures_reduce,
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "test", "fixtures", "ops"))
    ap.add_argument("--only", default="", help="comma-separated families (default: all)")
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(1)  # deterministic reductions
    os.makedirs(args.out, exist_ok=True)
    only = [s for s in args.only.split(",") if s]
    total = 0
    for fam, fn in FAMILIES.items():
        if only and fam not in only:
            continue
        d = fn()
        text = json.dumps(d, separators=(",", ":"), allow_nan=False)
        path = os.path.join(args.out, fam + ".json")
        with open(path, "w") as fh:
            fh.write(text)
            fh.write("\n")
        size = os.path.getsize(path)
        total += size
        print(f"{os.path.relpath(path)}  {size:>9,d} bytes  {len(d['cases']):>3d} cases")
    print(f"total {total:,d} bytes")


if __name__ == "__main__":
    sys.exit(main())
