"""diffusers UNet module names <-> the original (SGM / LDM) names kohya files and block-weight
vectors use: ``down_blocks.1.attentions.0`` is ``input_blocks.4.1`` and block ``IN04``.

Pure functions of the name and ``layers_per_block`` (2 for SD 1.x/2.x and SDXL).
"""

from __future__ import annotations

import re

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
           "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_TOP = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2", "add_embedding.linear_1": "label_emb.0.0",
        "add_embedding.linear_2": "label_emb.0.2", "conv_norm_out": "out.0", "conv_out": "out.2"}
_BLOCK = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.(attentions|resnets|downsamplers|upsamplers)\.(\d+)(\..+)?$")
_MID = re.compile(r"^mid_block\.(attentions|resnets)\.(\d+)(\..+)?$")


def _resnet_tail(tail: str) -> str:
    # ".conv1" -> ".in_layers.2"; attention tails are unchanged
    head, _, rest = tail.lstrip(".").partition(".")
    mapped = _RESNET.get(head)
    return tail if mapped is None else "." + mapped + ("." + rest if rest else "")


def block_of(name: str, layers_per_block: int) -> tuple[str, int, str] | None:
    """('input_blocks'|'middle_block'|'output_blocks', index, rest-of-name) for a diffusers UNet name."""
    if name in _TOP or name.startswith(tuple(k + "." for k in _TOP)):
        return None
    per = layers_per_block + 1
    match = _BLOCK.match(name)
    if match:
        kind, i, part, j, tail = match.group(1), int(match.group(2)), match.group(3), int(match.group(4)), \
            match.group(5) or ""
        if kind == "down_blocks":
            if part == "downsamplers":
                return "input_blocks", per * (i + 1), ".0.op" + tail.replace(".conv", "", 1)
            sub = ".1" if part == "attentions" else ".0"
            return "input_blocks", per * i + j + 1, sub + (tail if part == "attentions" else _resnet_tail(tail))
        if part == "upsamplers":
            return "output_blocks", per * i + layers_per_block, ".upsampler" + tail
        sub = ".1" if part == "attentions" else ".0"
        return "output_blocks", per * i + j, sub + (tail if part == "attentions" else _resnet_tail(tail))
    match = _MID.match(name)
    if match:
        part, j, tail = match.group(1), int(match.group(2)), match.group(3) or ""
        index = 1 if part == "attentions" else 2 * j
        return "middle_block", index, tail if part == "attentions" else _resnet_tail(tail)
    return None


def sgm_name(name: str, layers_per_block: int, upsampler_index: int | None = None) -> str | None:
    """The original-model name of a diffusers UNet module, or None if it has none."""
    for key, value in _TOP.items():
        if name == key or name.startswith(key + "."):
            return value + name[len(key) :]
    found = block_of(name, layers_per_block)
    if found is None:
        return None
    kind, index, rest = found
    if kind == "middle_block":
        return f"middle_block.{index}{rest}"
    if rest.startswith(".upsampler"):
        # the upsampler sits after the resnet (and the attention, when the block has one)
        return f"output_blocks.{index}.{upsampler_index or 1}.conv"
    return f"{kind}.{index}{rest}"


def block_id(name: str, layers_per_block: int) -> str | None:
    """A1111 block-weight id of a diffusers UNet module: ``IN04``, ``M00``, ``OUT05`` (None outside blocks)."""
    if name == "conv_in" or name.startswith("conv_in."):
        return "IN00"
    found = block_of(name, layers_per_block)
    if found is None:
        return None
    kind, index, _ = found
    return {"input_blocks": f"IN{index:02d}", "middle_block": "M00", "output_blocks": f"OUT{index:02d}"}[kind]


def aliases(family, component: str, model):
    """``Family.aliases`` of SD-style UNets: the original SGM name of each UNet module (kohya files of SDXL name
    ``input_blocks.4.1...``); None for the text encoders."""
    if component != family.denoiser:
        return None
    layers = int(getattr(model.config, "layers_per_block", 2))
    with_attention = {n.split(".")[1] for n, _ in model.named_modules()
                      if n.startswith("up_blocks.") and ".attentions." in n}

    def extra(name: str):
        index = name.split(".")[1] if name.startswith("up_blocks.") else None
        sgm = sgm_name(name, layers, 2 if index in with_attention else 1)
        return (sgm,) if sgm else ()

    return extra
