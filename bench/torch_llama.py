"""The PyTorch peer model for `temper bench train` / `temper bench generate`: a Llama
decoder written the way transformers' LlamaForCausalLM computes it (RMSNorm in float32,
rotate_half rotary, grouped-query heads via repeat_kv, causal softmax attention, SwiGLU
MLP, tied lm_head). transformers itself is not on this machine (no PyPI); on the GPU
machine the peer is transformers. torch 1.13 has no scaled_dot_product_attention, so
attention is matmul -> mask -> softmax -> matmul, as transformers' eager path.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPES = {
    "tiny": dict(hidden=256, inter=688, layers=4, heads=8, kv=4, vocab=8192, theta=1e4, batch=8, seq=256),
    "smollm-135m": dict(hidden=576, inter=1536, layers=30, heads=9, kv=3, vocab=49152, theta=1e5, batch=4, seq=256),
}


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.H, self.Hkv, self.D = s["heads"], s["kv"], s["hidden"] // s["heads"]
        C = s["hidden"]
        self.q_proj = nn.Linear(C, self.H * self.D, bias=False)
        self.k_proj = nn.Linear(C, self.Hkv * self.D, bias=False)
        self.v_proj = nn.Linear(C, self.Hkv * self.D, bias=False)
        self.o_proj = nn.Linear(self.H * self.D, C, bias=False)

    def forward(self, x, cos, sin, mask, cache=None, start=0):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.H, self.D).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.Hkv, self.D).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.Hkv, self.D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            ck, cv = cache
            ck[:, :, start:start + T] = k
            cv[:, :, start:start + T] = v
            k, v = ck[:, :, :start + T], cv[:, :, :start + T]
        rep = self.H // self.Hkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.D)
        if mask is not None:
            att = att + mask
        att = F.softmax(att, dim=-1, dtype=torch.float32)
        y = (att @ v).transpose(1, 2).reshape(B, T, self.H * self.D)
        return self.o_proj(y)


class Layer(nn.Module):
    def __init__(self, s):
        super().__init__()
        C = s["hidden"]
        self.input_layernorm = RMSNorm(C)
        self.self_attn = Attention(s)
        self.post_attention_layernorm = RMSNorm(C)
        self.gate_proj = nn.Linear(C, s["inter"], bias=False)
        self.up_proj = nn.Linear(C, s["inter"], bias=False)
        self.down_proj = nn.Linear(s["inter"], C, bias=False)

    def forward(self, x, cos, sin, mask, cache=None, start=0):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, start)
        y = self.post_attention_layernorm(h)
        return h + self.down_proj(F.silu(self.gate_proj(y)) * self.up_proj(y))


class Llama(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s
        self.embed_tokens = nn.Embedding(s["vocab"], s["hidden"])
        self.layers = nn.ModuleList([Layer(s) for _ in range(s["layers"])])
        self.norm = RMSNorm(s["hidden"])
        D = s["hidden"] // s["heads"]
        self.register_buffer("inv_freq", 1.0 / (s["theta"] ** (torch.arange(0, D, 2).float() / D)), persistent=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids, positions, caches=None, start=0, last_only=False):
        B, T = ids.shape
        freqs = positions[:, :, None].float() * self.inv_freq[None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[:, None], emb.sin()[:, None]
        Tk = start + T
        mask = torch.full((T, Tk), float("-inf")).triu(start + 1) if T > 1 else None
        h = self.embed_tokens(ids)
        for i, layer in enumerate(self.layers):
            h = layer(h, cos, sin, mask, None if caches is None else caches[i], start)
        if last_only:
            h = h[:, -1:]
        return F.linear(self.norm(h), self.embed_tokens.weight)


def train_flops_per_token(s, seq):
    """6 * parameters used in matmuls (tied embedding counted once, as the lm_head) + causal attention."""
    C, L, V, I = s["hidden"], s["layers"], s["vocab"], s["inter"]
    D = C // s["heads"]
    per_layer = C * s["heads"] * D * 2 + C * s["kv"] * D * 2 + 3 * C * I
    matmul_params = L * per_layer + V * C
    return 6 * matmul_params + 6 * L * seq * C
