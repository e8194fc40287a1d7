#!/usr/bin/env python3
"""Writes test/fixtures/io/reference.safetensors and its expected values, with a writer
made from the format spec alone (struct + json; no safetensors package, no temper code),
so temper's reader is checked against an independent implementation.

Layout: u64 LE header size, JSON header padded with spaces to a multiple of 8, data.
Tensors in HF writer order (descending dtype size, then name); BF16 is f32 rounded to
nearest even; F16 uses Python's own IEEE half packing (struct 'e').
"""
import json
import os
import struct

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "io")


def bf16_bits(x):
    u = struct.unpack("<I", struct.pack("<f", x))[0]
    u += 0x7FFF + ((u >> 16) & 1)
    return (u >> 16) & 0xFFFF


def bf16_value(bits):
    return struct.unpack("<f", struct.pack("<I", bits << 16))[0]


tensors = {
    "a.f32": ("F32", [2, 3], [1.5, -2.0, 3.25, 0.0, 1e-8, -7.0]),
    "b.bf16": ("BF16", [5], [1.0, 1.00390625, 1.01171875, -2.5, 3.140625]),
    "c.f16": ("F16", [2, 2], [1.0, 65504.0, 5.960464477539063e-08, -0.333251953125]),
    "d.i64": ("I64", [3], [1, -5, 2**31 - 1]),
    "e.bool": ("BOOL", [3], [1, 0, 1]),
}
size = {"F32": 4, "I64": 8, "BF16": 2, "F16": 2, "BOOL": 1}


def encode(dtype, vals):
    if dtype == "F32":
        return struct.pack(f"<{len(vals)}f", *vals)
    if dtype == "BF16":
        return struct.pack(f"<{len(vals)}H", *[bf16_bits(v) for v in vals])
    if dtype == "F16":
        return struct.pack(f"<{len(vals)}e", *vals)
    if dtype == "I64":
        return struct.pack(f"<{len(vals)}q", *vals)
    return bytes(vals)


order = sorted(tensors, key=lambda n: (-size[tensors[n][0]], n))
header = {"__metadata__": {"format": "pt", "made_by": "make_safetensors_fixture.py"}}
data = b""
for name in order:
    dtype, shape, vals = tensors[name]
    blob = encode(dtype, vals)
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
    data += blob
text = json.dumps(header, separators=(",", ":"))
text += " " * ((8 - len(text.encode()) % 8) % 8)
os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "reference.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text.encode())) + text.encode() + data)

expected = {}
for name, (dtype, shape, vals) in tensors.items():
    if dtype == "F32":
        vals = [struct.unpack("<f", struct.pack("<f", v))[0] for v in vals]
    elif dtype == "BF16":
        vals = [bf16_value(bf16_bits(v)) for v in vals]
    elif dtype == "F16":
        vals = [struct.unpack("<e", struct.pack("<e", v))[0] for v in vals]
    expected[name] = {"dtype": dtype, "shape": shape, "values": vals}
with open(os.path.join(OUT, "reference.expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
print("wrote", OUT)
