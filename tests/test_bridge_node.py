"""The LoRA Loader (LoRA Deck) node without ComfyUI: ComfyUI's side (its key maps and model objects, its
add_patches) is replaced by the key maps recorded from ComfyUI 0.8 (real-size SD 1.5, meta weights) and a
recorder of the patches the node hands over. What ComfyUI then computes is checked live
(test_comfyui_bridge_live.py)."""

from __future__ import annotations

import json
import os

import a1111_parser
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from test_bridge_keymaps import recorded

from helpers import a1111_shorthash
from loradeck.core.errors import LoraDeckError, SpecError
from loradeck.nodes import NODE_CLASS_MAPPINGS, host
from loradeck.nodes.lora_list import rows_text
from loradeck.nodes.native import patches as native_patches
from loradeck.nodes.native.targets import ComfyModels

LOADER = "LoRALoader|LoRADeck"
MODULES = {"down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": (320, 320),
           "up_blocks_3_attentions_2_transformer_blocks_0_attn2_to_k": (320, 768),
           "mid_block_attentions_0_transformer_blocks_0_ff_net_2": (1280, 5120)}
TEXT = {"text_model_encoder_layers_0_self_attn_q_proj": (768, 768)}


class Handle:  # ComfyUI's model objects are only identities to the node (held weakly)
    pass


def _comfy_models() -> ComfyModels:
    data = recorded("sd15")
    meta = lambda shapes: {k: torch.empty(s, device="meta") for k, s in shapes.items()}  # noqa: E731
    return ComfyModels("SD15", data["unet_keys"], data["clip_keys"], meta(data["model_shapes"]),
                       meta(data["clip_shapes"]))


@pytest.fixture
def comfy(monkeypatch, use_models, tmp_path):
    """A models folder with one kohya LoRA for SD 1.5's real modules, and ComfyUI's side replaced."""
    loras = tmp_path / "models" / "loras"
    loras.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    sd = {}
    for prefix, table in (("lora_unet_", MODULES), ("lora_te_", TEXT)):
        for name, (out, width) in table.items():
            sd[f"{prefix}{name}.lora_down.weight"] = torch.randn(2, width, generator=gen) * 0.01
            sd[f"{prefix}{name}.lora_up.weight"] = torch.randn(out, 2, generator=gen) * 0.01
            sd[f"{prefix}{name}.alpha"] = torch.tensor(1.0)
    save_file(sd, str(loras / "style.safetensors"), metadata={"ss_tag_frequency": json.dumps({"x": {"red disc": 3}})})
    use_models(str(tmp_path / "models"), str(tmp_path / "output"))
    monkeypatch.setattr(host, "comfy_models", lambda model, clip: _comfy_models())
    handed = []

    def add(model, clip, groups):
        handed.append(groups)
        return ("patched model", groups), ("patched clip", groups)

    monkeypatch.setattr(host, "add_comfy_patches", add)
    model, clip = type("Model", (), {"model": Handle()})(), type("Clip", (), {"cond_stage_model": Handle()})()
    return {"file": str(loras / "style.safetensors"), "tensors": sd, "handed": handed, "model": model, "clip": clip}


def _prompt(rows: str, weights: str = "") -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sub/sd15-random.safetensors"}},
        "2": {"class_type": LOADER, "inputs": {"model": ["1", 0], "clip": ["1", 1], "loras": rows, "weights": weights}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["2", 1]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["2", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "positive": ["3", 0], "negative": ["4", 0],
                                                    "latent_image": ["5", 0], "seed": 42, "steps": 20, "cfg": 7.0,
                                                    "sampler_name": "euler_ancestral", "scheduler": "karras",
                                                    "denoise": 1.0}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "SaveImage|LoRADeck", "inputs": {"images": ["7", 0], "filename_prefix": "native"}},
    }


def _run(comfy, rows: str, weights: str = "", prompt: dict | None = None):
    prompt = prompt or _prompt(rows, weights)
    node = NODE_CLASS_MAPPINGS[LOADER]()
    return node.load(comfy["model"], comfy["clip"], rows, None, weights, unique_id="2", api_prompt=prompt), prompt


def test_the_node_hands_comfyui_the_files_own_tensors_at_its_strengths(comfy):
    rows = rows_text([{"enabled": True, "lora_name": "style.safetensors", "strength_model": 0.8, "strength_clip": 0.5}])
    out, _ = _run(comfy, rows)
    model, clip, words = out["result"]
    assert model[0] == "patched model" and clip[0] == "patched clip" and words == "red disc"
    (groups,) = comfy["handed"]
    by_key = {k: (g.target, g.strength, p) for g in groups for k, p in g.patches.items()}
    q = "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
    te = "clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight"
    assert len(by_key) == 4 and by_key[q][:2] == ("model", 0.8) and by_key[te][:2] == ("clip", 0.5)
    patch = by_key[q][2]
    assert isinstance(patch, native_patches.LoraPatch) and patch.alpha == 1.0
    assert torch.equal(patch.up, comfy["tensors"][f"lora_unet_{next(iter(MODULES))}.lora_up.weight"])
    assert out["ui"]["loradeck_models"][0]["sha256"] and out["ui"]["loradeck_info"]


def test_block_weights_and_switched_off_rows(comfy):
    rows = rows_text([{"enabled": True, "lora_name": "style.safetensors", "strength_model": 1.0, "strength_clip": 1.0},
                      {"enabled": False, "lora_name": "style.safetensors"}])
    _run(comfy, rows, "style: lbw=0,1,1,1,1,1,1,0,1,1,1,1,1,1,1,1,0.5")
    (groups,) = comfy["handed"]
    strengths = {str(k): g.strength for g in groups for k in g.patches}
    assert strengths == {"diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight": 1.0,  # IN01
                         "diffusion_model.output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight": 0.5,  # OUT11
                         # M00 is 0: nothing added; BASE (the text encoder) is 0 too
                         }


def test_schedules_and_partial_files_are_refused(comfy, tmp_path):
    rows = rows_text([{"enabled": True, "lora_name": "style.safetensors"}])
    with pytest.raises(SpecError, match="schedules over the steps need LoRA Deck's Generate"):
        _run(comfy, rows, "style: model=ramp(1, 0)")
    partial = dict(comfy["tensors"])
    partial["lora_unet_not_a_module.lora_down.weight"] = torch.zeros(2, 8)
    partial["lora_unet_not_a_module.lora_up.weight"] = torch.zeros(8, 2)
    save_file(partial, os.path.join(os.path.dirname(comfy["file"]), "partial.safetensors"))
    with pytest.raises(LoraDeckError, match="would apply only in part"):
        _run(comfy, rows_text([{"enabled": True, "lora_name": "partial.safetensors"}]))
    assert comfy["handed"] == []


def test_save_image_writes_a1111_parameters_for_a_native_graph(comfy, tmp_path):
    rows = rows_text([{"enabled": True, "lora_name": "style.safetensors", "strength_model": 0.7, "strength_clip": 0.7}])
    _, prompt = _run(comfy, rows)
    save = NODE_CLASS_MAPPINGS["SaveImage|LoRADeck"]()
    images = torch.rand(1, 64, 48, 3)  # made by ComfyUI's VAE Decode: nothing recorded with the tensor
    result = save.save_images(images, "native", prompt=prompt, unique_id="8")
    (saved,) = result["ui"]["images"]
    text = Image.open(tmp_path / "output" / saved["filename"]).text["parameters"]
    meta = a1111_parser.parse(text)
    assert meta["prompt"] == "a lighthouse <lora:style:0.7>" and meta["negativePrompt"] == "blurry"
    assert (meta["steps"], meta["sampler"], meta["Schedule type"], meta["cfgScale"], meta["seed"]) == (
        20, "Euler a", "Karras", 7.0, 42)
    assert (meta["width"], meta["height"], meta["Model"]) == (48, 64, "sd15-random")
    loras = [r for r in meta["resources"] if r["type"] == "lora"]
    assert loras == [{"type": "lora", "name": "style", "hash": a1111_shorthash(comfy["file"]), "weight": 0.7}]
    # a cached LoRA Loader (not run again) is found by its signature in the next prompt of the same graph
    again = dict(prompt, **{"6": dict(prompt["6"], inputs=dict(prompt["6"]["inputs"], seed=43))})
    save.save_images(images, "native", prompt=again, unique_id="8")
    assert "Lora hashes" in Image.open(tmp_path / "output" / "native_00002_.png").text["parameters"]
