#!/usr/bin/python3
"""Hand-written reference forwards for Hugging Face model architectures.

This module has no dependency on the `transformers` or `safetensors` packages (neither
is available here); it follows the transformers source code by hand, using only torch
(Debian's torch 1.13, CPU) and the standard library:

* a safetensors writer/reader made from the format spec (F32 and BF16, single file or
  sharded with a `model.safetensors.index.json`),
* rotary embeddings (`ROPE_INIT_FUNCTIONS` default / linear / llama3, LlamaRotaryEmbedding,
  rotate_half / apply_rotary_pos_emb),
* the Llama family forward (llama, mistral, qwen2, qwen3; SmolLM is llama) with eager
  attention, GQA via repeat_kv, padding and packed-document masks,
* GPT-2 (Conv1D projections, gelu_new, learned positions),
* LlamaForSequenceClassification pooling, and the shifted causal-LM loss.

Everything is computed in float32 like transformers with float32 weights. Parameters are
passed as a dict {transformers parameter name: tensor}.
"""

import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------
# safetensors (from the format spec)
# ---------------------------------------------------------------------------

DTYPE_SIZE = {"F32": 4, "BF16": 2}


def bf16_round(t):
    """Round a float32 tensor to bfloat16 (nearest even) and return it as float32."""
    return t.detach().float().to(torch.bfloat16).float()


def _tensor_bytes(t, dtype):
    t = t.detach().contiguous().cpu()
    if dtype == "F32":
        return t.float().numpy().astype("<f4").tobytes()
    if dtype == "BF16":
        return t.float().to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
    raise ValueError(f"unsupported dtype {dtype}")


def serialize_safetensors(tensors, dtype="F32", metadata=None):
    """Bytes of a safetensors file holding `tensors` ({name: tensor}), data sorted by name.

    Layout: u64 little-endian header length N, N bytes of JSON header (padded with spaces to a
    multiple of 8), then the raw little-endian tensor data. `dtype` is one dtype for all
    tensors or a {name: dtype} dict.
    """
    header = {"__metadata__": dict(metadata or {"format": "pt"})}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        dt = dtype[name] if isinstance(dtype, dict) else dtype
        blob = _tensor_bytes(tensors[name], dt)
        header[name] = {
            "dtype": dt,
            "shape": list(tensors[name].shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write_safetensors(path, tensors, dtype="F32", metadata=None):
    with open(path, "wb") as f:
        f.write(serialize_safetensors(tensors, dtype, metadata))


def tensor_nbytes(t, dtype):
    dt = dtype
    return t.numel() * DTYPE_SIZE[dt]


def write_sharded_safetensors(directory, tensors, dtype="F32", max_shard_bytes=40_000,
                              prefix="model"):
    """Write `tensors` into model-0000i-of-0000n.safetensors shards plus the index JSON.

    Tensors are taken in name order and packed greedily: a new shard starts when adding the
    next tensor would exceed `max_shard_bytes` (a tensor larger than the limit gets its own
    shard), like huggingface_hub's split_torch_state_dict_into_shards. Returns the list of
    shard file names. Index: {"metadata": {"total_size": N}, "weight_map": {name: file}}
    with total_size the sum of the tensors' byte sizes.
    """
    shards = []
    current, current_size = [], 0
    for name in sorted(tensors):
        dt = dtype[name] if isinstance(dtype, dict) else dtype
        size = tensor_nbytes(tensors[name], dt)
        if current and current_size + size > max_shard_bytes:
            shards.append(current)
            current, current_size = [], 0
        current.append(name)
        current_size += size
    if current:
        shards.append(current)
    n = len(shards)
    files = []
    weight_map = {}
    total = 0
    for i, names in enumerate(shards):
        fname = f"{prefix}-{i + 1:05d}-of-{n:05d}.safetensors"
        sub = {k: tensors[k] for k in names}
        sub_dtype = {k: (dtype[k] if isinstance(dtype, dict) else dtype) for k in names}
        write_safetensors(os.path.join(directory, fname), sub, sub_dtype)
        for k in names:
            weight_map[k] = fname
            total += tensor_nbytes(tensors[k], sub_dtype[k])
        files.append(fname)
    index = {"metadata": {"total_size": total},
             "weight_map": {k: weight_map[k] for k in sorted(weight_map)}}
    with open(os.path.join(directory, f"{prefix}.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    return files


def read_safetensors(path):
    """Independent reader: {name: (dtype, shape, float32 tensor)} (F32 and BF16 only)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0, "header length not a multiple of 8"
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    out = {}
    end_max = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        end_max = max(end_max, b)
        buf = data[a:b]
        shape = info["shape"]
        if info["dtype"] == "F32":
            arr = np.frombuffer(buf, dtype="<f4").astype(np.float32)
        elif info["dtype"] == "BF16":
            bits = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            raise ValueError(info["dtype"])
        assert arr.size == int(np.prod(shape)) if shape else arr.size == 1
        out[name] = (info["dtype"], shape, torch.from_numpy(arr.copy()).reshape(shape))
    assert end_max == len(data), "data section size mismatch"
    return out


def read_model_dir(directory):
    """Load every tensor of a model folder (single file or sharded) as float32."""
    index_path = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
        files = sorted(set(index["weight_map"].values()))
    else:
        index = None
        files = ["model.safetensors"]
    out = {}
    for fname in files:
        for name, (dt, shape, t) in read_safetensors(os.path.join(directory, fname)).items():
            assert name not in out, f"duplicate tensor {name}"
            if index is not None:
                assert index["weight_map"][name] == fname, name
            out[name] = t
    if index is not None:
        assert set(index["weight_map"]) == set(out), "index/weight_map mismatch"
    return out


# ---------------------------------------------------------------------------
# rotary embeddings
# ---------------------------------------------------------------------------

def head_dim(config):
    hd = config.get("head_dim")
    return hd if hd is not None else config["hidden_size"] // config["num_attention_heads"]


def rope_type(config):
    rs = config.get("rope_scaling")
    if rs is None:
        return "default"
    return rs.get("rope_type", rs.get("type", "default"))


def _default_inv_freq(config):
    base = float(config.get("rope_theta", 10000.0))
    prf = config.get("partial_rotary_factor", 1.0)
    dim = int(head_dim(config) * prf)
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def inv_freq(config):
    """transformers ROPE_INIT_FUNCTIONS[rope_type](config)[0] (default, linear, llama3)."""
    kind = rope_type(config)
    inv = _default_inv_freq(config)
    if kind == "default":
        return inv
    rs = config["rope_scaling"]
    if kind == "linear":
        return inv / rs["factor"]
    if kind == "llama3":
        factor = rs["factor"]
        low_freq_factor = rs["low_freq_factor"]
        high_freq_factor = rs["high_freq_factor"]
        old_context_len = rs["original_max_position_embeddings"]
        low_freq_wavelen = old_context_len / low_freq_factor
        high_freq_wavelen = old_context_len / high_freq_factor
        wavelen = 2 * math.pi / inv
        inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv / factor, inv)
        smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
        smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
        is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
        return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
    raise ValueError(f"rope_type {kind!r}: the reference covers default, linear and llama3 (what temper implements)")


def attention_scaling(config):
    kind = rope_type(config)
    if kind in ("default", "linear", "llama3"):
        return 1.0
    raise ValueError(f"rope_type {kind!r}: the reference covers default, linear and llama3 (what temper implements)")


def rotary_cos_sin(inv, position_ids, scaling=1.0):
    """LlamaRotaryEmbedding.forward: cos/sin of shape (B, T, dim)."""
    inv_expanded = inv[None, :, None].float().expand(position_ids.shape[0], -1, 1)
    pos_expanded = position_ids[:, None, :].float()
    freqs = (inv_expanded.float() @ pos_expanded.float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * scaling, emb.sin() * scaling


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


# ---------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------

def attention_bias(batch, seq, attention_mask=None, doc_ids=None, dtype=torch.float32):
    """Additive (B, 1, T, T) mask: 0 where query i may see key j, finfo.min elsewhere.

    Allowed: j <= i, attention_mask[b, j] == 1 and (when doc_ids is given)
    doc_ids[b, j] == doc_ids[b, i]. A query row with no allowed key (a left-pad row) is
    allowed to see itself only, so it stays finite; its outputs are not meaningful.
    """
    i = torch.arange(seq)
    allowed = (i[None, :] <= i[:, None])[None].expand(batch, seq, seq).clone()
    if attention_mask is not None:
        allowed &= attention_mask[:, None, :].bool()
    if doc_ids is not None:
        allowed &= doc_ids[:, :, None] == doc_ids[:, None, :]
    empty = ~allowed.any(-1, keepdim=True)
    allowed |= torch.eye(seq, dtype=torch.bool)[None] & empty
    bias = torch.zeros(batch, seq, seq, dtype=dtype)
    bias = bias.masked_fill(~allowed, torch.finfo(dtype).min)
    return bias[:, None]


def default_position_ids(attention_mask):
    """Positions as transformers' generate() makes them: cumsum(mask) - 1, pads set to 1."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.masked_fill(attention_mask == 0, 1)


# ---------------------------------------------------------------------------
# Llama family (llama, mistral, qwen2, qwen3)
# ---------------------------------------------------------------------------

LLAMA_FAMILY = ("llama", "mistral", "qwen2", "qwen3")


def rms_norm(x, weight, eps):
    input_dtype = x.dtype
    h = x.to(torch.float32)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    return weight * h.to(input_dtype)


def repeat_kv(hidden, n_rep):
    b, kvh, slen, hd = hidden.shape
    if n_rep == 1:
        return hidden
    hidden = hidden[:, :, None, :, :].expand(b, kvh, n_rep, slen, hd)
    return hidden.reshape(b, kvh * n_rep, slen, hd)


def qkv_bias(config):
    mt = config["model_type"]
    if mt == "qwen2":
        return True
    if mt == "mistral":
        return False
    return bool(config.get("attention_bias", False))


def tie_word_embeddings(config):
    default = config["model_type"] == "gpt2"  # PretrainedConfig default True; Llama/Mistral/Qwen set False
    return bool(config.get("tie_word_embeddings", default))


def llama_param_shapes(config, with_lm_head=True):
    """{name: shape} of a Llama-family causal LM (lm_head only when untied)."""
    h = config["hidden_size"]
    inter = config["intermediate_size"]
    nh = config["num_attention_heads"]
    nkv = config.get("num_key_value_heads") or nh
    hd = head_dim(config)
    v = config["vocab_size"]
    bias = qkv_bias(config)
    shapes = {"model.embed_tokens.weight": (v, h)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (h,)
        shapes[p + "self_attn.q_proj.weight"] = (nh * hd, h)
        shapes[p + "self_attn.k_proj.weight"] = (nkv * hd, h)
        shapes[p + "self_attn.v_proj.weight"] = (nkv * hd, h)
        if bias:
            shapes[p + "self_attn.q_proj.bias"] = (nh * hd,)
            shapes[p + "self_attn.k_proj.bias"] = (nkv * hd,)
            shapes[p + "self_attn.v_proj.bias"] = (nkv * hd,)
        shapes[p + "self_attn.o_proj.weight"] = (h, nh * hd)
        if config["model_type"] == "qwen3":
            shapes[p + "self_attn.q_norm.weight"] = (hd,)
            shapes[p + "self_attn.k_norm.weight"] = (hd,)
        shapes[p + "post_attention_layernorm.weight"] = (h,)
        shapes[p + "mlp.gate_proj.weight"] = (inter, h)
        shapes[p + "mlp.up_proj.weight"] = (inter, h)
        shapes[p + "mlp.down_proj.weight"] = (h, inter)
    shapes["model.norm.weight"] = (h,)
    if with_lm_head and not tie_word_embeddings(config):
        shapes["lm_head.weight"] = (v, h)
    return shapes


def init_params(shapes, matrix_std=0.2):
    """Deterministic init from torch's global RNG, in name order: matrices N(0, std),
    norm weights (1-D '.weight') 1 + 0.1 N(0,1), biases 0.1 N(0,1)."""
    params = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if len(shape) >= 2:
            params[name] = torch.randn(shape) * matrix_std
        elif name.endswith(".bias"):
            params[name] = torch.randn(shape) * 0.1
        else:
            params[name] = 1.0 + 0.1 * torch.randn(shape)
    return params


def llama_model(config, params, input_ids, position_ids, attention_mask=None, doc_ids=None):
    """LlamaModel / MistralModel / Qwen2Model / Qwen3Model forward: final hidden states."""
    mt = config["model_type"]
    assert mt in LLAMA_FAMILY, mt
    assert not config.get("mlp_bias", False)
    eps = config["rms_norm_eps"]
    nh = config["num_attention_heads"]
    nkv = config.get("num_key_value_heads") or nh
    hd = head_dim(config)
    bsz, seq = input_ids.shape
    scaling = hd ** -0.5
    bias = qkv_bias(config)

    hidden = F.embedding(input_ids, params["model.embed_tokens.weight"])
    cos, sin = rotary_cos_sin(inv_freq(config), position_ids, attention_scaling(config))
    cos, sin = cos.to(hidden.dtype), sin.to(hidden.dtype)
    mask = attention_bias(bsz, seq, attention_mask, doc_ids, hidden.dtype)

    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        residual = hidden
        x = rms_norm(hidden, params[p + "input_layernorm.weight"], eps)

        def proj(n):
            return F.linear(x, params[p + f"self_attn.{n}_proj.weight"],
                            params[p + f"self_attn.{n}_proj.bias"] if bias else None)

        q = proj("q").view(bsz, seq, -1, hd)
        k = proj("k").view(bsz, seq, -1, hd)
        v = proj("v").view(bsz, seq, -1, hd)
        if mt == "qwen3":
            q = rms_norm(q, params[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, params[p + "self_attn.k_norm.weight"], eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)

        # eager_attention_forward
        k = repeat_kv(k, nh // nkv)
        v = repeat_kv(v, nh // nkv)
        w = torch.matmul(q, k.transpose(2, 3)) * scaling
        w = w + mask
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(w, v).transpose(1, 2).contiguous().reshape(bsz, seq, -1)
        o = F.linear(o, params[p + "self_attn.o_proj.weight"])
        hidden = residual + o

        residual = hidden
        x = rms_norm(hidden, params[p + "post_attention_layernorm.weight"], eps)
        gate = F.linear(x, params[p + "mlp.gate_proj.weight"])
        up = F.linear(x, params[p + "mlp.up_proj.weight"])
        hidden = residual + F.linear(F.silu(gate) * up, params[p + "mlp.down_proj.weight"])

    return rms_norm(hidden, params["model.norm.weight"], eps)


def llama_lm_head_weight(config, params):
    if tie_word_embeddings(config):
        return params["model.embed_tokens.weight"]
    return params["lm_head.weight"]


def llama_causal_lm(config, params, input_ids, position_ids, attention_mask=None, doc_ids=None):
    """*ForCausalLM forward: logits (B, T, V) in float32."""
    hidden = llama_model(config, params, input_ids, position_ids, attention_mask, doc_ids)
    return F.linear(hidden, llama_lm_head_weight(config, params)).float()


def llama_seqcls_param_shapes(config):
    shapes = llama_param_shapes(config, with_lm_head=False)
    shapes["score.weight"] = (len(config["id2label"]), config["hidden_size"])
    return shapes


def llama_seqcls(config, params, input_ids, position_ids=None, attention_mask=None):
    """LlamaForSequenceClassification: pooled logits (B, num_labels) at the last non-pad token."""
    bsz, seq = input_ids.shape
    if position_ids is None:
        position_ids = torch.arange(seq)[None].expand(bsz, seq)
    hidden = llama_model(config, params, input_ids, position_ids, attention_mask)
    logits = F.linear(hidden, params["score.weight"])
    non_pad_mask = (input_ids != config["pad_token_id"]).to(torch.int32)
    token_indices = torch.arange(seq, dtype=torch.int32)
    last_non_pad_token = (token_indices * non_pad_mask).argmax(-1)
    return logits[torch.arange(bsz), last_non_pad_token]


# ---------------------------------------------------------------------------
# GPT-2
# ---------------------------------------------------------------------------

def gpt2_param_shapes(config):
    e = config["n_embd"]
    inner = config.get("n_inner") or 4 * e
    shapes = {
        "transformer.wte.weight": (config["vocab_size"], e),
        "transformer.wpe.weight": (config["n_positions"], e),
        "transformer.ln_f.weight": (e,),
        "transformer.ln_f.bias": (e,),
    }
    for i in range(config["n_layer"]):
        p = f"transformer.h.{i}."
        shapes[p + "ln_1.weight"] = (e,)
        shapes[p + "ln_1.bias"] = (e,)
        shapes[p + "attn.c_attn.weight"] = (e, 3 * e)
        shapes[p + "attn.c_attn.bias"] = (3 * e,)
        shapes[p + "attn.c_proj.weight"] = (e, e)
        shapes[p + "attn.c_proj.bias"] = (e,)
        shapes[p + "ln_2.weight"] = (e,)
        shapes[p + "ln_2.bias"] = (e,)
        shapes[p + "mlp.c_fc.weight"] = (e, inner)
        shapes[p + "mlp.c_fc.bias"] = (inner,)
        shapes[p + "mlp.c_proj.weight"] = (inner, e)
        shapes[p + "mlp.c_proj.bias"] = (e,)
    return shapes


def conv1d(x, weight, bias):
    """transformers Conv1D: weight (in, out); y = x @ W + b."""
    size_out = x.shape[:-1] + (weight.shape[-1],)
    y = torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight)
    return y.view(size_out)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gpt2_lm(config, params, input_ids, position_ids, attention_mask=None, doc_ids=None):
    """GPT2LMHeadModel forward (eager attention): logits (B, T, V); lm_head tied to wte."""
    assert config.get("activation_function", "gelu_new") == "gelu_new"
    assert config.get("scale_attn_weights", True)
    assert not config.get("scale_attn_by_inverse_layer_idx", False)
    e = config["n_embd"]
    nh = config["n_head"]
    hd = e // nh
    eps = config.get("layer_norm_epsilon", 1e-5)
    bsz, seq = input_ids.shape

    def ln(x, name):
        return F.layer_norm(x, (e,), params[name + ".weight"], params[name + ".bias"], eps)

    hidden = F.embedding(input_ids, params["transformer.wte.weight"]) + \
        F.embedding(position_ids, params["transformer.wpe.weight"])
    mask = attention_bias(bsz, seq, attention_mask, doc_ids, hidden.dtype)

    def split_heads(t):
        return t.view(bsz, seq, nh, hd).transpose(1, 2)

    for i in range(config["n_layer"]):
        p = f"transformer.h.{i}."
        residual = hidden
        x = ln(hidden, p + "ln_1")
        qkv = conv1d(x, params[p + "attn.c_attn.weight"], params[p + "attn.c_attn.bias"])
        q, k, v = (split_heads(t) for t in qkv.split(e, dim=2))
        w = torch.matmul(q, k.transpose(-1, -2))
        w = w / torch.full([], v.size(-1) ** 0.5, dtype=w.dtype)
        w = w + mask
        w = F.softmax(w, dim=-1).type(v.dtype)
        o = torch.matmul(w, v).transpose(1, 2).contiguous().reshape(bsz, seq, e)
        o = conv1d(o, params[p + "attn.c_proj.weight"], params[p + "attn.c_proj.bias"])
        hidden = residual + o

        residual = hidden
        x = ln(hidden, p + "ln_2")
        x = gelu_new(conv1d(x, params[p + "mlp.c_fc.weight"], params[p + "mlp.c_fc.bias"]))
        x = conv1d(x, params[p + "mlp.c_proj.weight"], params[p + "mlp.c_proj.bias"])
        hidden = residual + x

    hidden = ln(hidden, "transformer.ln_f")
    return F.linear(hidden, params["transformer.wte.weight"]).float()


# ---------------------------------------------------------------------------
# dispatch and loss
# ---------------------------------------------------------------------------

def param_shapes(config):
    if config["model_type"] == "gpt2":
        return gpt2_param_shapes(config)
    if config.get("architectures", [""])[0].endswith("ForSequenceClassification"):
        return llama_seqcls_param_shapes(config)
    return llama_param_shapes(config)


def causal_lm_logits(config, params, input_ids, position_ids, attention_mask=None, doc_ids=None):
    if config["model_type"] == "gpt2":
        return gpt2_lm(config, params, input_ids, position_ids, attention_mask, doc_ids)
    return llama_causal_lm(config, params, input_ids, position_ids, attention_mask, doc_ids)


def causal_lm_loss(logits, labels, ignore_index=-100):
    """transformers ForCausalLMLoss: predict labels[t+1] from logits[t], mean over kept labels."""
    logits = logits.float()
    labels = F.pad(labels, (0, 1), value=ignore_index)
    shift_labels = labels[..., 1:].contiguous()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), shift_labels.reshape(-1),
                           ignore_index=ignore_index, reduction="mean")


def greedy_generate(config, params, prompt_ids, max_new_tokens):
    """Greedy decoding with a full recompute per step (no cache, no eos stop).

    Returns (new tokens (B, max_new_tokens), smallest top-1/top-2 logit margin seen)."""
    ids = prompt_ids.clone()
    min_margin = math.inf
    for _ in range(max_new_tokens):
        bsz, seq = ids.shape
        pos = torch.arange(seq)[None].expand(bsz, seq)
        last = causal_lm_logits(config, params, ids, pos)[:, -1]
        top2 = last.topk(2, dim=-1).values
        min_margin = min(min_margin, float((top2[:, 0] - top2[:, 1]).min()))
        ids = torch.cat([ids, last.argmax(-1, keepdim=True)], dim=1)
    return ids[:, prompt_ids.shape[1]:], min_margin
