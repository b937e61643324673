"""Writes the two demo LoRA files for the built-in tiny SD model (run once; the files are shipped).

    python -m loradeck.demo.make_loras

One file is in diffusers' format (``unet.*.lora_A.weight``), the other in kohya's
(``lora_unet_*.lora_down.weight`` with ``.alpha``), with kohya-style metadata.
"""

from __future__ import annotations

import json
import logging
import os

import torch
from safetensors.torch import save

from ..core.atomic import write_atomic
from ..core.tiny import tiny_sd_pipeline

log = logging.getLogger(__name__)
OUT = os.path.join(os.path.dirname(__file__), "models", "loras")
STYLE = "loradeck-demo-style.safetensors"
KOHYA = "loradeck-demo-kohya.safetensors"


def _targets(model, suffixes):
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and n.endswith(suffixes)]


def _pair(module, rank, gen, gain):
    down = torch.randn(rank, module.in_features, generator=gen) / module.in_features**0.5
    up = torch.randn(module.out_features, rank, generator=gen) * gain
    return down, up


def diffusers_style(pipe, gen) -> dict:
    sd = {}
    for prefix, model, suffixes, gain in (("unet", pipe.unet, ("to_k", "to_v", "to_out.0"), 0.6),
                                          ("text_encoder", pipe.text_encoder, ("q_proj", "v_proj"), 0.5)):
        for name, module in _targets(model, suffixes):
            down, up = _pair(module, 4, gen, gain)
            sd[f"{prefix}.{name}.lora_A.weight"], sd[f"{prefix}.{name}.lora_B.weight"] = down, up
    return sd


def kohya_detail(pipe, gen) -> dict:
    sd = {}
    for prefix, model, suffixes, gain in (("lora_unet_", pipe.unet, ("to_q", "ff.net.2", "proj_out"), 0.8),
                                          ("lora_te_text_model_", pipe.text_encoder, ("fc1", "out_proj"), 0.5)):
        for name, module in _targets(model, suffixes):
            key = prefix + name.replace(".", "_")
            down, up = _pair(module, 8, gen, gain)
            sd[f"{key}.lora_down.weight"], sd[f"{key}.lora_up.weight"] = down, up
            sd[f"{key}.alpha"] = torch.tensor(4.0)
    return sd


KOHYA_METADATA = {
    "ss_base_model_version": "sd_v1",
    "ss_network_module": "networks.lora",
    "ss_network_dim": "8",
    "ss_network_alpha": "4.0",
    "ss_output_name": "loradeck-demo-kohya",
    "ss_tag_frequency": json.dumps({"img": {"loradeck detail": 12, "sharp": 4}}),
    "modelspec.architecture": "stable-diffusion-v1/lora",
    "modelspec.title": "LoRA Deck demo (kohya)",
    "modelspec.trigger_phrase": "loradeck detail",
}


def family_loras(family_key: str, folder: str) -> list[str]:
    """Demo LoRAs (diffusers format, same names as the shipped ones) for another family's tiny model."""
    from ..core.families import FAMILIES
    from ..core.pipelines import _builtin_builders

    family = FAMILIES[family_key]
    pipe = _builtin_builders()[family.builtin]()
    gen = torch.Generator().manual_seed(1234)
    paths = []
    for name, suffixes, gain in ((STYLE, ("to_k", "to_v", "q_proj", "v_proj"), 0.6),
                                 (KOHYA, ("to_q", "to_out.0", "fc1", "out_proj"), 0.8)):
        sd = {}
        for component in family.components:
            model = getattr(pipe, component, None)
            for module_name, module in _targets(model, suffixes) if model is not None else ():
                down, up = _pair(module, 4, gen, gain)
                sd[f"{component}.{module_name}.lora_A.weight"] = down.contiguous()
                sd[f"{component}.{module_name}.lora_B.weight"] = up.contiguous()
        paths.append(os.path.join(folder, name))
        write_atomic(paths[-1], save(sd, metadata={"format": "pt", "modelspec.architecture": family.key}))
    return paths


def main() -> None:
    pipe = tiny_sd_pipeline()
    gen = torch.Generator().manual_seed(1234)
    style = {k: v.contiguous() for k, v in diffusers_style(pipe, gen).items()}
    kohya = {k: v.contiguous() for k, v in kohya_detail(pipe, gen).items()}
    write_atomic(os.path.join(OUT, STYLE), save(style, metadata={"format": "pt"}))
    write_atomic(os.path.join(OUT, KOHYA), save(kohya, metadata=KOHYA_METADATA))
    log.info("wrote %s and %s", STYLE, KOHYA)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
