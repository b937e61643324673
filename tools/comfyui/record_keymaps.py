"""Record ComfyUI's own LoRA key maps for each family's real-size architecture (run with ComfyUI's Python).

    /path/to/comfy-venv/bin/python tools/comfyui/record_keymaps.py --comfyui /path/to/ComfyUI \
        --out tests/fixtures/comfyui_keymaps

For every real architecture LoRA Deck ships configs for (``core/families/<family>/configs/``) it builds the
checkpoint's keys and shapes in the original layout on the meta device (no weights: tests/original_layout.py,
as test_single_file does), lets ComfyUI detect the model from those shapes (``model_detection``), builds
ComfyUI's own diffusion model and text encoders on the meta device, and writes what
``comfy.lora.model_lora_keys_unet`` / ``model_lora_keys_clip`` return for them, with every weight's shape in
ComfyUI's state dicts. One gzipped JSON per architecture; the tests read them without ComfyUI
(tests/test_bridge_keymaps.py). Nothing is downloaded and no weight is allocated.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
PACK = os.path.dirname(os.path.dirname(HERE))
V_PREDICTION_PROBE = "output_blocks.11.1.transformer_blocks.0.norm1.bias"  # SD 2.x: supported_models.SD20
ARCH_KEYS = ("sd15", "sd2-base", "sdxl-base", "sd3-medium", "sd35-large", "flux-dev", "flux-schnell", "chroma1-hd",
             "z-image", "qwen-image")


def _target(value):
    """A key map value as JSON: a key, [key, [dim, offset, size]], or [key, null, function name]."""
    if isinstance(value, str):
        return value
    key, offset, *rest = value
    return [key, None if offset is None else list(offset), *(f.__name__ for f in rest)]


def _shapes(state_dict) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in state_dict.items()}


def _meta_component(arch, name: str):
    from loradeck.core.models.build import meta_component

    return meta_component(arch.config_dir, name)


def original_layout(arch) -> dict:
    """A meta-tensor checkpoint of ``arch`` in its original layout (tests/original_layout.py's writers)."""
    sys.path.insert(0, os.path.join(PACK, "tests"))
    from original_layout import clip_to_ldm, clip_to_open_clip, qwen3_to_comfy, t5_to_ldm, vae_to_ldm
    from single_file_fixtures import denoiser

    family = os.path.basename(os.path.dirname(arch.configs))  # core/families/<family>/configs
    names = ["unet" if family in ("sd1", "sdxl") else "transformer", "vae", *(s.component for s in arch.encoders)]
    models = {n: _meta_component(arch, n) for n in names}
    tensors = {**denoiser(family, type("Pipe", (), models)), **vae_to_ldm(models["vae"].state_dict())}
    for slot in arch.encoders:
        sd, prefix = models[slot.component].state_dict(), slot.prefixes[0]
        if slot.kind.startswith("qwen3"):  # Z-Image: transformers' Qwen3 names under the prefix
            writer = qwen3_to_comfy
        elif slot.kind == "t5xxl":
            writer = t5_to_ldm
        else:
            writer = clip_to_open_clip if prefix.endswith(".model.") else clip_to_ldm
        tensors.update(writer(sd, prefix))
    return tensors


# Real-size architectures LoRA Deck ships no single-file configs for, whose diffusers class defaults are the real
# model and whose original (ComfyUI) state-dict names are diffusers' own: key -> (family, transformer class)
DIFFUSERS_NAMED = {"qwen-image": ("qwenimage", "QwenImageTransformer2DModel")}


def diffusers_named_layout(key: str) -> dict:
    """A meta-tensor checkpoint of the denoiser alone (ComfyUI builds its default text encoders beside it)."""
    import diffusers

    family, cls = DIFFUSERS_NAMED[key]
    with torch.device("meta"):
        model = getattr(diffusers, cls)()  # the defaults are the released model's sizes
    return {"model.diffusion_model." + k: v for k, v in model.state_dict().items()}


def record(arch, comfy_root: str) -> dict:
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # before model_management is imported: it picks its device then
    import comfy.lora
    import comfy.model_detection
    import comfy.sd
    import comfy.utils

    sd = diffusers_named_layout(arch) if isinstance(arch, str) else original_layout(arch)
    for key in [k for k in sd if k.endswith(V_PREDICTION_PROBE)]:  # the one value ComfyUI's detection reads
        sd[key] = torch.zeros(sd[key].shape)  # std 0: epsilon prediction (sd2-base, not sd2-v)
    prefix = comfy.model_detection.unet_prefix_from_state_dict(sd)
    config = comfy.model_detection.model_config_from_unet(sd, prefix)
    if config is None:
        raise SystemExit(f"{arch.key}: ComfyUI did not recognise the checkpoint")
    with torch.device("meta"):
        model = config.get_model(sd, prefix)
    unet_map = comfy.lora.model_lora_keys_unet(model, {})
    clip_target = config.clip_target(state_dict=sd)
    params = dict(clip_target.params, device=torch.device("meta"), dtype=torch.float32, model_options={})
    with torch.device("meta"):
        encoders = clip_target.clip(**params)
    clip_map = comfy.lora.model_lora_keys_clip(encoders, {})
    with open(os.path.join(comfy_root, ".snapshot-commit"), encoding="utf-8") as f:
        commit = f.read().strip()
    return {
        "arch": arch if isinstance(arch, str) else arch.key,
        "comfyui_commit": commit,
        "model_config": type(config).__name__,
        "model_class": type(model).__name__,
        "unet_config": {k: v for k, v in config.unet_config.items() if isinstance(v, (int, float, str, bool))},
        "unet_keys": {k: _target(v) for k, v in unet_map.items()},
        "clip_keys": {k: _target(v) for k, v in clip_map.items()},
        "model_shapes": _shapes(model.state_dict()),
        "clip_shapes": _shapes(encoders.state_dict()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", required=True, help="the ComfyUI checkout (its folder goes on sys.path)")
    parser.add_argument("--out", default=os.path.join(PACK, "tests", "fixtures", "comfyui_keymaps"))
    parser.add_argument("arch", nargs="*", default=list(ARCH_KEYS))
    args = parser.parse_args()
    comfy_root = os.path.abspath(args.comfyui)
    sys.path.insert(0, comfy_root)
    torch.set_num_threads(1)
    from loradeck.core.families import SINGLE_FILE_ARCHS

    by_key = {a.key: a for a in SINGLE_FILE_ARCHS}
    os.makedirs(args.out, exist_ok=True)
    for key in args.arch:
        data = record(key if key in DIFFUSERS_NAMED else by_key[key], comfy_root)
        path = os.path.join(args.out, f"{key}.json.gz")
        text = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
            f.write(text)
        counts = f"{len(data['unet_keys'])} unet keys, {len(data['clip_keys'])} clip keys"
        print(f"{path}: {data['model_config']} ({data['model_class']}), {counts}")  # noqa: T201 - what it wrote


if __name__ == "__main__":
    main()
