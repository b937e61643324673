"""Test helpers: tiny seeded pipelines, rendering, weight snapshots, LoRA file writers."""

from __future__ import annotations

import logging
import os

import torch
from peft import LoraConfig, get_peft_model_state_dict
from safetensors.torch import save_file

from loradeck.core.tiny import tiny_sd_pipeline

logging.getLogger("transformers").setLevel(logging.ERROR)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def make_pipe(dtype=torch.float32):
    pipe = tiny_sd_pipeline()
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module) and dtype != torch.float32:
            component.to(dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def render(pipe, seed: int = 1, steps: int = 3, prompt: str = "a lighthouse") -> torch.Tensor:
    with torch.inference_mode():
        return pipe(prompt, num_inference_steps=steps, generator=torch.Generator("cpu").manual_seed(seed),
                    height=64, width=64, output_type="pt").images


def base_weights(pipe) -> dict[str, torch.Tensor]:
    """Every base parameter of the LoRA-able components, by its name without peft's wrapping."""
    out = {}
    for component in ("unet", "text_encoder"):
        for name, param in getattr(pipe, component).named_parameters():
            if "lora_" in name:
                continue
            out[f"{component}.{name.replace('.base_layer', '')}"] = param.detach().clone()
    return out


def assert_bit_identical(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"{len(changed)} tensors changed, e.g. {changed[:3]}"


def save_diffusers_lora(path: str, seed: int, unet_targets=UNET_TARGETS, te_targets=TE_TARGETS,
                        rank: int = 4, alpha: float = 2.0) -> str:
    """A LoRA file written by diffusers' own save_lora_weights (peft layers with random weights)."""
    from diffusers import StableDiffusionPipeline

    pipe = tiny_sd_pipeline()
    torch.manual_seed(seed)
    layers, metadata = {}, {}
    for component, targets in (("unet", unet_targets), ("text_encoder", te_targets)):
        if not targets:
            continue
        model = getattr(pipe, component)
        config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, init_lora_weights=False)
        model.add_adapter(config)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.mul_(3.0)  # peft's random init is small; make the effect clearly visible
        layers[f"{component}_lora_layers"] = get_peft_model_state_dict(model)
        metadata[f"{component}_lora_adapter_metadata"] = config.to_dict()
    folder, weight_name = os.path.split(path)
    StableDiffusionPipeline.save_lora_weights(folder, weight_name=weight_name, **layers, **metadata)
    return path


def save_kohya_lora(path: str, seed: int, rank: int = 4, alpha: float = 2.0, unet_width_scale: int = 1) -> str:
    """A kohya-format file: lora_unet_* / lora_te_text_model_* with lora_down/lora_up/alpha."""
    pipe = tiny_sd_pipeline()
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for prefix, model, suffixes in (("lora_unet_", pipe.unet, ("to_q", "to_v", "ff.net.2")),
                                    ("lora_te_text_model_", pipe.text_encoder, ("q_proj", "fc1"))):
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and name.endswith(suffixes):
                key = prefix + name.replace(".", "_")
                width = module.in_features * (unet_width_scale if prefix == "lora_unet_" else 1)
                sd[f"{key}.lora_down.weight"] = torch.randn(rank, width, generator=gen) * 0.3
                sd[f"{key}.lora_up.weight"] = torch.randn(module.out_features, rank, generator=gen) * 0.3
                sd[f"{key}.alpha"] = torch.tensor(alpha)
    save_file(sd, path, metadata={"ss_base_model_version": "sd_v1"})
    return path


