"""diffusers -> Wan-AI's original layout (what ComfyUI's Wan files hold), for test files: the transformer, the
Wan 2.1 VAE and the UMT5 encoder. Inverses of what LoRA Deck loads them with (diffusers'
``convert_wan_transformer_to_diffusers``, and ``convert_wan_vae_to_diffusers`` through ``core.models.wan_vae``); the
tests check each round trip, and the fixture generator (tools/fixtures/generators/model_files/make_wan_fixtures.py)
loads these files with ComfyUI's own Wan model, VAE and UMT5 classes (strict) and compares their outputs with
diffusers'."""

from __future__ import annotations

import re

from loradeck.core.families.wan.names import BLOCK, PARAMETERS, TOP

_BLOCK = re.compile(r"blocks\.(\d+)\.(.*)")


def wan_to_original(sd: dict, prefix: str = "") -> dict:
    """A ``WanTransformer3DModel`` state dict in the original names (``model.diffusion_model.`` with ``prefix``)."""
    top = {d: o for o, d in TOP} | {d: o for o, d in PARAMETERS}
    block = {d: o for o, d in BLOCK} | {"scale_shift_table": "modulation"}
    out = {}
    for key, value in sd.items():
        module, _, leaf = key.rpartition(".")
        m = _BLOCK.match(key)
        if m:
            inner, _, leaf = m.group(2).rpartition(".")
            name = f"blocks.{m.group(1)}.{block[inner]}.{leaf}" if inner else f"blocks.{m.group(1)}.{block[leaf]}"
        elif key in top:
            name = top[key]
        else:
            name = f"{top[module]}.{leaf}"
        out[prefix + name] = value
    return out


def _resnet(rest: str) -> str:
    names = {"norm1.gamma": "residual.0.gamma", "conv1.weight": "residual.2.weight", "conv1.bias": "residual.2.bias",
             "norm2.gamma": "residual.3.gamma", "conv2.weight": "residual.6.weight", "conv2.bias": "residual.6.bias",
             "conv_shortcut.weight": "shortcut.weight", "conv_shortcut.bias": "shortcut.bias"}
    return names[rest]


def _wan22_vae_to_original(sd: dict, prefix: str) -> dict:
    """The Wan 2.2 VAE (``is_residual``): stages nested as ``encoder.downsamples.N.downsamples.M``, the re-sampler
    after the stage's residual blocks, as ``wan2.2_vae.safetensors``."""
    stage = re.compile(r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(resnets\.(\d+)|downsampler|upsampler)\.(.*)")
    count: dict = {}
    for key in sd:
        if (m := stage.match(key)) and m.group(5) is not None:
            count[(m.group(1), m.group(3))] = max(count.get((m.group(1), m.group(3)), 0), int(m.group(5)) + 1)
    rest = {}
    out = {}
    for key, value in sd.items():
        m = stage.match(key)
        if not m:
            rest[key] = value
            continue
        part, direction, i, slot, j, leaf = m.groups()
        entry = j if j is not None else count[(part, i)]
        name = leaf if j is None else _resnet(leaf)
        out[f"{prefix}{part}.{direction}samples.{i}.{direction}samples.{entry}.{name}"] = value
    out.update(wan_vae_to_original(rest, prefix, resnets=0))
    return out


def wan_vae_to_original(sd: dict, prefix: str = "", resnets: int | None = None) -> dict:
    """An ``AutoencoderKLWan`` state dict in Wan-AI's names, as ``wan_2.1_vae.safetensors`` (or, for the Wan 2.2 VAE,
    ``wan2.2_vae.safetensors``)."""
    if resnets is None and any(".downsampler." in k for k in sd):
        return _wan22_vae_to_original(sd, prefix)
    if resnets is None:
        pattern = re.compile(r"decoder\.up_blocks\.0\.resnets\.(\d+)\.")
        resnets = 1 + max(int(m.group(1)) for m in map(pattern.match, sd) if m)
    out = {}
    for key, value in sd.items():
        name = key
        if m := re.match(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d)\.(.*)", key):
            part, kind, i, rest = m.groups()
            index = {"resnets": {"0": 0, "1": 2}, "attentions": {"0": 1}}[kind][i]
            name = f"{part}.middle.{index}.{_resnet(rest) if kind == 'resnets' else rest}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.(.*)", key):
            i, rest = m.groups()
            name = f"encoder.downsamples.{i}.{rest if rest.startswith(('resample', 'time_conv')) else _resnet(rest)}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            s, j, rest = m.groups()
            name = f"decoder.upsamples.{int(s) * (resnets + 1) + int(j)}.{_resnet(rest)}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
            s, rest = m.groups()
            name = f"decoder.upsamples.{int(s) * (resnets + 1) + resnets}.{rest}"
        else:
            for d, o in (("encoder.conv_in.", "encoder.conv1."), ("decoder.conv_in.", "decoder.conv1."),
                         ("encoder.norm_out.", "encoder.head.0."), ("encoder.conv_out.", "encoder.head.2."),
                         ("decoder.norm_out.", "decoder.head.0."), ("decoder.conv_out.", "decoder.head.2."),
                         ("quant_conv.", "conv1."), ("post_quant_conv.", "conv2.")):
                if key.startswith(d):
                    name = o + key[len(d):]
                    break
            else:
                raise KeyError(key)
        out[prefix + name] = value
    return out


def umt5_to_comfy(sd: dict, spiece: bytes | None = None) -> dict:
    """A ``UMT5EncoderModel`` state dict as ComfyUI's ``umt5_xxl_*.safetensors``: transformers' names without the tied
    ``encoder.embed_tokens``, plus the tokenizer's sentencepiece model as the uint8 tensor ``spiece_model``."""
    import torch

    out = {k: v for k, v in sd.items() if k != "encoder.embed_tokens.weight"}
    if spiece is not None:
        out["spiece_model"] = torch.frombuffer(bytearray(spiece), dtype=torch.uint8)
    return out
