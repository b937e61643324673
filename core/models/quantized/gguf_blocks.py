"""GGML block types: their sizes and exact float32 dequantization, torch ports of gguf-py 0.19.0's ``quants.py``
(same operation order, float32 throughout), bit-identical to ``gguf.quants.dequantize`` for every non-NaN value.

Each block holds ``block_size`` values in ``type_size`` bytes along a row: rows are independent, so a tensor's raw
bytes can be split by rows (as diffusers' converters split fused layers) and each part still dequantizes exactly.
"""

from __future__ import annotations

import torch

QK_K = 256

# type id -> (name, block_size, type_size)   (gguf constants.GGML_QUANT_SIZES, gguf 0.19.0)
GGML_TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}
TYPE_IDS = {v[0]: k for k, v in GGML_TYPES.items()}


def _f16(b):
    return b.contiguous().view(torch.float16).to(torch.float32)


def _u32(b):
    b = b.to(torch.int64)
    return b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)


def _nibbles(qs, n_blocks, half):
    q = qs.reshape(n_blocks, -1, 1, half) >> torch.tensor([0, 4], dtype=torch.uint8).reshape(1, 1, 2, 1)
    return (q & 0x0F).reshape(n_blocks, -1)


def _scale_min_k4(scales):
    n = scales.shape[0]
    s = scales.reshape(n, 3, 4)
    d, m, m_d = s[:, 0:1], s[:, 1:2], s[:, 2:3]
    sc = torch.cat([d & 0x3F, (m_d & 0x0F) | ((d >> 2) & 0x30)], dim=-1)
    mn = torch.cat([m & 0x3F, (m_d >> 4) | ((m >> 2) & 0x30)], dim=-1)
    return sc.reshape(n, 8), mn.reshape(n, 8)


def _q4_0(b):
    n = b.shape[0]
    d = _f16(b[:, :2])
    q = _nibbles(b[:, 2:], n, 16).to(torch.int8) - 8
    return d * q.to(torch.float32)


def _q4_1(b):
    n = b.shape[0]
    d, m = _f16(b[:, :2]), _f16(b[:, 2:4])
    q = _nibbles(b[:, 4:], n, 16).to(torch.float32)
    return (d * q) + m


def _q5(b, with_min):
    n = b.shape[0]
    d = _f16(b[:, :2])
    o = 2
    if with_min:
        m = _f16(b[:, 2:4])
        o = 4
    qh = _u32(b[:, o:o + 4]).reshape(n, 1) >> torch.arange(32, dtype=torch.int64).reshape(1, 32)
    qh = (qh & 1).to(torch.uint8)
    ql = _nibbles(b[:, o + 4:], n, 16)
    q = ql | (qh << 4)
    if with_min:
        return (d * q.to(torch.float32)) + m
    return d * (q.to(torch.int8) - 16).to(torch.float32)


def _q8_0(b):
    d = _f16(b[:, :2])
    x = b[:, 2:].contiguous().view(torch.int8).to(torch.float32)
    return x * d


def _q2_k(b):
    n = b.shape[0]
    scales, qs = b[:, :16], b[:, 16:80]
    d, dmin = _f16(b[:, 80:82]), _f16(b[:, 82:84])
    dl = (d * (scales & 0xF).to(torch.float32)).reshape(n, 16, 1)
    ml = (dmin * (scales >> 4).to(torch.float32)).reshape(n, 16, 1)
    shift = torch.tensor([0, 2, 4, 6], dtype=torch.uint8).reshape(1, 1, 4, 1)
    q = (qs.reshape(n, -1, 1, 32) >> shift) & 3
    q = q.reshape(n, 16, 16).to(torch.float32)
    return (dl * q - ml).reshape(n, -1)


def _q3_k(b):
    n = b.shape[0]
    hmask, qs, scales = b[:, :32], b[:, 32:96], b[:, 96:108]
    d = _f16(b[:, 108:110])
    ls, hs = scales[:, :8], scales[:, 8:]
    ls = (ls.reshape(n, 1, 8) >> torch.tensor([0, 4], dtype=torch.uint8).reshape(1, 2, 1)).reshape(n, 16)
    hs = (hs.reshape(n, 1, 4) >> torch.tensor([0, 2, 4, 6], dtype=torch.uint8).reshape(1, 4, 1)).reshape(n, 16)
    sc = (ls & 0x0F) | ((hs & 0x03) << 4)
    sc = (sc.to(torch.int8) - 32).to(torch.float32)
    dl = (d * sc).reshape(n, 16, 1)
    ql = qs.reshape(n, -1, 1, 32) >> torch.tensor([0, 2, 4, 6], dtype=torch.uint8).reshape(1, 1, 4, 1)
    qh = hmask.reshape(n, -1, 1, 32) >> torch.arange(8, dtype=torch.uint8).reshape(1, 1, 8, 1)
    ql = ql.reshape(n, 16, 16) & 3
    qh = (qh.reshape(n, 16, 16) & 1) ^ 1
    q = (ql.to(torch.int8) - (qh << 2).to(torch.int8)).to(torch.float32)
    return (dl * q).reshape(n, QK_K)


def _q4_k(b):
    n = b.shape[0]
    d, dmin = _f16(b[:, :2]), _f16(b[:, 2:4])
    sc, m = _scale_min_k4(b[:, 4:16])
    d = (d * sc.to(torch.float32)).reshape(n, -1, 1)
    dm = (dmin * m.to(torch.float32)).reshape(n, -1, 1)
    qs = b[:, 16:].reshape(n, -1, 1, 32) >> torch.tensor([0, 4], dtype=torch.uint8).reshape(1, 1, 2, 1)
    qs = (qs & 0x0F).reshape(n, -1, 32).to(torch.float32)
    return (d * qs - dm).reshape(n, QK_K)


def _q5_k(b):
    n = b.shape[0]
    d, dmin = _f16(b[:, :2]), _f16(b[:, 2:4])
    sc, m = _scale_min_k4(b[:, 4:16])
    qh, qs = b[:, 16:48], b[:, 48:]
    d = (d * sc.to(torch.float32)).reshape(n, -1, 1)
    dm = (dmin * m.to(torch.float32)).reshape(n, -1, 1)
    ql = qs.reshape(n, -1, 1, 32) >> torch.tensor([0, 4], dtype=torch.uint8).reshape(1, 1, 2, 1)
    qh = qh.reshape(n, -1, 1, 32) >> torch.arange(8, dtype=torch.uint8).reshape(1, 1, 8, 1)
    ql = (ql & 0x0F).reshape(n, -1, 32)
    qh = (qh & 0x01).reshape(n, -1, 32)
    q = (ql | (qh << 4)).to(torch.float32)
    return (d * q - dm).reshape(n, QK_K)


def _q6_k(b):
    n = b.shape[0]
    ql, qh, scales = b[:, :128], b[:, 128:192], b[:, 192:208]
    sc = scales.contiguous().view(torch.int8).to(torch.float32)
    d = _f16(b[:, 208:210])
    d = (d * sc).reshape(n, 16, 1)
    ql = ql.reshape(n, -1, 1, 64) >> torch.tensor([0, 4], dtype=torch.uint8).reshape(1, 1, 2, 1)
    ql = (ql & 0x0F).reshape(n, -1, 32)
    qh = qh.reshape(n, -1, 1, 32) >> torch.tensor([0, 2, 4, 6], dtype=torch.uint8).reshape(1, 1, 4, 1)
    qh = (qh & 0x03).reshape(n, -1, 32)
    q = (ql | (qh << 4)).to(torch.int8) - 32
    q = q.reshape(n, 16, -1).to(torch.float32)
    return (d * q).reshape(n, QK_K)


_BLOCK_FUNCS = {2: _q4_0, 3: _q4_1, 6: lambda b: _q5(b, False), 7: lambda b: _q5(b, True), 8: _q8_0,
                10: _q2_k, 11: _q3_k, 12: _q4_k, 13: _q5_k, 14: _q6_k}
DEQUANT_TYPES = tuple(GGML_TYPES[t][0] for t in (0, 1, 28, 30, *_BLOCK_FUNCS))


def dequantize_raw(raw: torch.Tensor, type_id: int, shape) -> torch.Tensor:
    """raw: uint8 tensor of exactly the tensor's bytes. Returns float32 of `shape`."""
    if type_id not in GGML_TYPES:
        raise ValueError(f"unknown GGML type {type_id}")
    tname, bs, ts = GGML_TYPES[type_id]
    n_el = 1
    for s in shape:
        n_el *= int(s)
    raw = raw.reshape(-1).contiguous()
    if n_el % bs or raw.numel() != n_el // bs * ts:
        raise ValueError(f"{tname}: {raw.numel()} bytes do not hold {tuple(shape)}")
    if type_id == 0:
        out = raw.view(torch.float32)
    elif type_id == 1:
        out = raw.view(torch.float16).to(torch.float32)
    elif type_id == 28:
        out = raw.view(torch.float64).to(torch.float32)
    elif type_id == 30:
        out = (raw.view(torch.int16).to(torch.int32) << 16).view(torch.float32)
    elif type_id in _BLOCK_FUNCS:
        n_blocks = n_el // bs
        out = _BLOCK_FUNCS[type_id](raw.reshape(n_blocks, ts)) if n_blocks else torch.empty(0)
    else:
        raise NotImplementedError(f"dequantization of {tname} is not implemented")
    return out.reshape(tuple(shape))
