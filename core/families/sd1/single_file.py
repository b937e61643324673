"""SD 1.x / 2.x single-file checkpoints (LDM layout): which rows detect them, which text encoder each has.

Config folders: ``configs/<key>/`` (sources in core/families/README.md).
"""

from __future__ import annotations

import os

from ...models.arch import Arch, Encoder, Header

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

_SD1_TE = (Encoder("text_encoder", "clip_l", ("cond_stage_model.transformer.",)),)
_SD2_TE = (Encoder("text_encoder", "clip_h", ("cond_stage_model.model.",)),)
_SD_ATTN = "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
_CONV_IN = "input_blocks.0.0.weight"


def v_prediction(header: Header, arch: Arch) -> bool:
    """SD 2.x v-prediction: a ``v_pred`` key or an A1111 sidecar .yaml says so; else ComfyUI's test
    (supported_models.SD20.model_type): std of one norm bias > 0.09 means v-prediction."""
    if "v_pred" in header.shapes:
        return True
    sidecar = _sidecar_parameterization(header.path)
    if sidecar is not None:
        return sidecar == "v"
    key = header.denoiser_prefix + "output_blocks.11.1.transformer_blocks.0.norm1.bias"
    if key not in header.shapes:
        return False
    bias = header.read_tensor(key).float()
    return bool(bias.std(unbiased=False) > 0.09)


def _sidecar_parameterization(path: str) -> str | None:
    """``model.params.parameterization`` of ``<checkpoint>.yaml`` beside the file (A1111's convention)."""
    yaml_path = os.path.splitext(path)[0] + ".yaml"
    if not os.path.isfile(yaml_path) or os.path.getsize(yaml_path) > 1 << 20:
        return None
    import yaml

    try:
        with open(yaml_path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
        return str(data["model"]["params"].get("parameterization", "eps"))
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return None


ARCHS = (
    Arch("sd2-v", "Stable Diffusion 2.x (768, v-prediction)", ((_SD_ATTN, (320, 1024)), (_CONV_IN, (320, 4, 3, 3))),
         _SD2_TE, CONFIGS, rule=v_prediction),
    Arch("sd2-base", "Stable Diffusion 2.x (512, epsilon)", ((_SD_ATTN, (320, 1024)), (_CONV_IN, (320, 4, 3, 3))),
         _SD2_TE, CONFIGS),
    Arch("sd15", "Stable Diffusion 1.x", ((_SD_ATTN, (320, 768)), (_CONV_IN, (320, 4, 3, 3))), _SD1_TE, CONFIGS,
         absent=("label_emb.0.0.weight",)),
    Arch("tiny-sd", "tiny SD 1.x (built-in)", ((_SD_ATTN, (16, 32)), (_CONV_IN, (16, 4, 3, 3))), _SD1_TE, CONFIGS,
         tiny=True),
)
# UNets diffusers knows but LoRA Deck does not load from single files: (marker, shape test, what it is)
OTHER_VARIANTS = (
    (_CONV_IN, lambda s: len(s) == 4 and s[1] in (8, 9), "an inpainting / instruct-pix2pix UNet"),
)
