"""LoRA Loader (LoRA Deck) on ComfyUI's MODEL/CLIP, without ComfyUI: its names cover ComfyUI's own key maps.

The key maps in tests/fixtures/comfyui_keymaps/ were recorded from a real ComfyUI 0.8 for each family's
real-size architecture (tools/comfyui/record_keymaps.py; how: that folder's README). The mirror built from them
(nodes/native/mirror.py) must reach every weight ComfyUI's LoRA loading can patch, name every LoRA-able module of
the diffusers model LoRA Deck fits files to (same names, same shapes), and turn fitted patches into ComfyUI patch
keys that keep fused layers' (key, offset) slices, block weights included.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from loradeck.core.adapters.module_index import _targets
from loradeck.core.api import PipelineHandle
from loradeck.core.errors import IncompatibleLoraError
from loradeck.core.families import FAMILIES, SINGLE_FILE_ARCHS
from loradeck.core.stacks import weights_text
from loradeck.nodes.native import patches as native_patches
from loradeck.nodes.native.mirror import Mirror, comfy_names, slot_of
from loradeck.nodes.native.targets import COMFY_FAMILIES, ComfyModels, Target

KEYMAPS = Path(__file__).parent / "fixtures" / "comfyui_keymaps"
ARCHS = {a.key: a for a in SINGLE_FILE_ARCHS}
RECORDED = sorted(p.name.removesuffix(".json.gz") for p in KEYMAPS.glob("*.json.gz"))
# ComfyUI weights its key map names that no diffusers module holds: SD3's positional table is a buffer there
NOT_IN_DIFFUSERS = {"sd3-medium": {"diffusion_model.pos_embed"}, "sd35-large": {"diffusion_model.pos_embed"}}
# parameters of the model itself, not of a module (Z-Image's pad tokens): the mirror holds modules, so a difference
# on them is not fitted there and the file is refused as a partial load, as anything else the mirror lacks
MODEL_PARAMETERS = {"z-image": {"diffusion_model.x_pad_token", "diffusion_model.cap_pad_token"}}
# ComfyUI modules diffusers does not have (CLIP-L's projection, SD 2.x's 24th layer diffusers drops), and diffusers
# modules that are another's weight in ComfyUI (T5's embed_tokens is tied to shared)
EXTRA_IN_COMFYUI = {"text_projection"} | {f"encoder.layers.23.{m}" for m in (
    "layer_norm1", "layer_norm2", "mlp.fc1", "mlp.fc2", "self_attn.k_proj", "self_attn.q_proj", "self_attn.v_proj",
    "self_attn.out_proj")}
# T5's tied embedding; Qwen2.5-VL's lm_head, which ComfyUI's model does not have (its pipelines read hidden states)
TIED_IN_COMFYUI = {"encoder.embed_tokens", "lm_head"}


def swap_scale_shift(weight: torch.Tensor) -> torch.Tensor:  # what ComfyUI's comfy.utils function does
    shift, scale = weight.chunk(2, dim=0)
    return torch.cat([scale, shift], dim=0)


FUNCTIONS = {"swap_scale_shift": swap_scale_shift}


def recorded(key: str) -> dict:
    with gzip.open(KEYMAPS / f"{key}.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


def family_of(key: str):
    return FAMILIES[os.path.basename(os.path.dirname(ARCHS[key].configs))]


def names_of(data: dict, family):
    return comfy_names(family, data["unet_keys"], data["clip_keys"], data["model_shapes"], data["clip_shapes"],
                       FUNCTIONS)


def test_every_family_with_single_file_configs_was_recorded():
    real = {a.key for a in SINGLE_FILE_ARCHS if not a.tiny and family_of(a.key).key in COMFY_FAMILIES.values()}
    # v-prediction, 3.5 Medium and Qwen-Image-Edit (Qwen-Image's model class in ComfyUI): the same names
    assert real - {"sd2-v", "sd35-medium", "qwen-image-edit", "qwen-image-edit-plus"} <= set(RECORDED), real
    for key in RECORDED:
        data = recorded(key)
        assert data["comfyui_commit"] and COMFY_FAMILIES[data["model_config"]] == family_of(key).key


def _rows(names, shapes) -> dict[str, list[tuple[int, int]]]:
    rows: dict[str, list[tuple[int, int]]] = {}
    for table in names.values():
        for params in table.values():
            for slot in params.values():
                size = shapes[slot.key][0] if shapes[slot.key] else 1
                lo, n = (slot.offset[1], slot.offset[2]) if slot.offset else (0, size)
                rows.setdefault(slot.key, []).append((lo, lo + n))
    return rows


def _covered(rows: list[tuple[int, int]], lo: int, hi: int) -> bool:
    pos = lo
    for a, b in sorted(rows):
        if a <= pos < b:
            pos = b
    return pos >= hi


@pytest.mark.parametrize("key", RECORDED)
def test_the_mirror_reaches_every_weight_comfyuis_key_maps_reach(key):
    """Every target of ComfyUI's LoRA key maps (a key, or rows of a fused key) is some mirror module's slot."""
    data = recorded(key)
    names = names_of(data, family_of(key))
    shapes = {**data["model_shapes"], **data["clip_shapes"]}
    rows = _rows(names, shapes)
    missed = set()
    for key_map in (data["unet_keys"], data["clip_keys"]):
        for lora_key, value in key_map.items():
            slot = slot_of(value, FUNCTIONS)
            assert slot is not None, (lora_key, value)
            if slot.key not in shapes:  # ComfyUI names keys a model may lack (SD 1.x has no label_emb)
                continue
            size = shapes[slot.key][0] if shapes[slot.key] else 1
            lo, hi = (slot.offset[1], slot.offset[1] + slot.offset[2]) if slot.offset else (0, size)
            if not _covered(rows.get(slot.key, []), lo, hi):
                missed.add(slot.key)
    assert missed == NOT_IN_DIFFUSERS.get(key, set()) | MODEL_PARAMETERS.get(key, set())
    assert sum(len(t) for t in names.values()) > 300


def _meta_component(arch, name: str):
    from loradeck.core.models.build import meta_component

    return meta_component(arch.config_dir, name)


def _weights(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    def plain(name: str) -> str:
        return name.removeprefix("text_model.")  # transformers 4 nests CLIP under text_model, 5 does not

    found = {}
    for name, module in (_targets(model) if not isinstance(model, Mirror) else ()):
        weight = module._parameters.get("weight")
        if weight is not None:
            found[plain(name)] = tuple(weight.shape)
    return found


@pytest.mark.parametrize("key", [k for k in RECORDED if k in ARCHS])
def test_the_mirror_names_the_diffusers_modules_lora_deck_fits_files_to(key):
    """Same module names and weight shapes as the real-size diffusers/transformers components (built on the meta
    device from the shipped configs): a file LoRA Deck fits to the diffusers model fits the mirror the same way."""
    data, family, arch = recorded(key), family_of(key), ARCHS[key]
    shapes = {**data["model_shapes"], **data["clip_shapes"]}
    mirror = Mirror(family, names_of(data, family), lambda k: torch.empty(shapes[k], device="meta"))
    components = [family.denoiser, *(c for c in family.text_encoders if any(s.component == c for s in arch.encoders))]
    assert set(mirror.models) == set(components)
    for component in components:
        want = _weights(_meta_component(arch, component))
        got = _weights(mirror.models[component])
        assert {n: want[n] for n in set(want) & set(got) if want[n] != got[n]} == {}, component
        assert set(want) - set(got) <= TIED_IN_COMFYUI, (component, sorted(set(want) - set(got))[:5])
        assert set(got) - set(want) <= EXTRA_IN_COMFYUI, (component, sorted(set(got) - set(want))[:5])


def _flux_target(runtime) -> Target:
    """The real-size FLUX.1-dev mirror with meta weights (shapes only) and an owner that fits files to it."""
    data = recorded("flux-dev")
    unet_keys = {k: tuple(v[:2]) + ((swap_scale_shift,) if len(v) > 2 else ()) if isinstance(v, list) else v
                 for k, v in data["unet_keys"].items()}
    meta = lambda shapes: {k: torch.empty(s, device="meta") for k, s in shapes.items()}  # noqa: E731
    return Target(ComfyModels("Flux", unet_keys, data["clip_keys"], meta(data["model_shapes"]),
                              meta(data["clip_shapes"])), runtime, "comfy-test")


def test_a_kohya_flux_lora_on_fused_layers_becomes_slices_and_block_weights_keep_them(tmp_path, runtime):
    """kohya names Flux's fused qkv / linear1; LoRA Deck splits them into diffusers' modules, which ComfyUI holds as
    (key, (0, offset, size)) slices: the patches keep those tuple keys, and a block weight changes the strength of
    a block's slices without dropping them (the Inspire LBW bug)."""
    gen = torch.Generator().manual_seed(0)
    sd = {}
    for module, out, width in (("double_blocks_0_img_attn_qkv", 9216, 3072), ("single_blocks_1_linear1", 21504, 3072),
                               ("double_blocks_3_img_mlp_0", 12288, 3072)):
        sd[f"lora_unet_{module}.lora_down.weight"] = torch.randn(2, width, generator=gen) * 0.01
        sd[f"lora_unet_{module}.lora_up.weight"] = torch.randn(out, 2, generator=gen) * 0.01
        sd[f"lora_unet_{module}.alpha"] = torch.tensor(1.0)
    path = str(tmp_path / "flux-kohya.safetensors")
    save_file(sd, path)
    target = _flux_target(runtime)
    handle = PipelineHandle(target.owner)
    spec, report = target.owner.describe(path, None, 0.8, 1.0)
    assert report.matched == 3
    stack = handle.stack.add(spec)
    stack = weights_text.apply_text(stack, f"{spec.name}: transformer_blocks.0=0.5, transformer_blocks.3=0",
                                    target.family, target.owner.block_rule)
    fitted = [(s, target.owner.prepare(s.path, s.sha256)) for s in stack.adapters]
    groups = native_patches.groups(target.mirror, fitted, target.owner.block_rule)
    by_key = {k: (g.target, g.strength, p) for g in groups for k, p in g.patches.items()}
    qkv = "diffusion_model.double_blocks.0.img_attn.qkv.weight"
    linear1 = "diffusion_model.single_blocks.1.linear1.weight"
    assert {k for k in by_key if k[0] == qkv} == {(qkv, (0, 0, 3072)), (qkv, (0, 3072, 3072)), (qkv, (0, 6144, 3072))}
    assert {k[1] for k in by_key if k[0] == linear1} == {(0, 0, 3072), (0, 3072, 3072), (0, 6144, 3072),
                                                          (0, 9216, 12288)}
    assert {by_key[k][:2] for k in by_key if k[0] == qkv} == {("model", 0.8 * 0.5)}  # strength x block weight
    assert {by_key[k][:2] for k in by_key if k[0] == linear1} == {("model", 0.8)}
    assert not [k for k in by_key if "double_blocks.3." in str(k)]  # block weight 0: nothing added
    # each slice carries the file's down and its rows of up: ComfyUI computes alpha / rank * up[rows] @ down
    q = by_key[(qkv, (0, 3072, 3072))][2]
    assert isinstance(q, native_patches.LoraPatch) and q.alpha == 1.0
    assert torch.equal(q.down, sd["lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight"])
    assert torch.equal(q.up, sd["lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight"][3072:6144])


def _recorded_target(key: str, kind: str, runtime) -> Target:
    """The real-size mirror of a recorded architecture with meta weights (shapes only), fitting files to it."""
    data = recorded(key)
    unet_keys = {k: tuple(v[:2]) + ((swap_scale_shift,) if len(v) > 2 else ()) if isinstance(v, list) else v
                 for k, v in data["unet_keys"].items()}
    meta = lambda shapes: {k: torch.empty(s, device="meta") for k, s in shapes.items()}  # noqa: E731
    return Target(ComfyModels(kind, unet_keys, data["clip_keys"], meta(data["model_shapes"]),
                              meta(data["clip_shapes"])), runtime, f"comfy-test-{key}")


def _pair(sd: dict, name: str, out: int, width: int, gen, kohya: bool) -> None:
    down, up = torch.randn(2, width, generator=gen) * 0.01, torch.randn(out, 2, generator=gen) * 0.01
    if kohya:
        sd.update({f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up, f"{name}.alpha": torch.tensor(2.0)})
    else:
        sd.update({f"{name}.lora_A.weight": down, f"{name}.lora_B.weight": up})


def _patch_keys(target: Target, path: str, model: float, clip: float) -> dict:
    spec, report = target.owner.describe(path, None, model, clip)
    stack = PipelineHandle(target.owner).stack.add(spec)
    fitted = [(s, target.owner.prepare(s.path, s.sha256)) for s in stack.adapters]
    groups = native_patches.groups(target.mirror, fitted, target.owner.block_rule)
    return report, {k: (g.target, g.strength) for g in groups for k in g.patches}


def test_a_chroma_file_reaches_the_approximator_and_the_t5_comfyui_holds(tmp_path, runtime):
    """Chroma on ComfyUI's Chroma MODEL: the approximator (which ComfyUI's own diffusers map lacks, reached through
    its original names) and the T5 (ComfyUI's only text encoder there) get their patches, at the model / clip
    strengths."""
    gen, sd = torch.Generator().manual_seed(1), {}
    _pair(sd, "transformer.distilled_guidance_layer.layers.0.linear_1", 5120, 5120, gen, kohya=False)
    _pair(sd, "transformer.single_transformer_blocks.0.proj_out", 3072, 15360, gen, kohya=False)
    _pair(sd, "text_encoder.encoder.block.0.layer.0.SelfAttention.q", 4096, 4096, gen, kohya=False)
    path = str(tmp_path / "chroma-peft.safetensors")
    save_file(sd, path)
    report, keys = _patch_keys(_recorded_target("chroma1-hd", "Chroma", runtime), path, 0.7, 0.4)
    assert report.matched == 3
    assert keys == {"diffusion_model.distilled_guidance_layer.layers.0.in_layer.weight": ("model", 0.7),
                    "diffusion_model.single_blocks.0.linear2.weight": ("model", 0.7),
                    "t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q.weight": ("clip", 0.4)}


def test_a_zimage_file_on_the_fused_qkv_becomes_slices_and_reaches_qwen3(tmp_path, runtime):
    """Z-Image on ComfyUI's Lumina 2 MODEL: a kohya file on the original fused attention.qkv becomes the three
    (key, (0, offset, 3840)) slices ComfyUI keeps for to_q / to_k / to_v, and a Qwen3 part reaches qwen3_4b."""
    gen, sd = torch.Generator().manual_seed(2), {}
    _pair(sd, "lora_unet_layers_0_attention_qkv", 11520, 3840, gen, kohya=True)
    _pair(sd, "lora_te_layers_0_self_attn_q_proj", 4096, 2560, gen, kohya=True)
    path = str(tmp_path / "zimage-kohya.safetensors")
    save_file(sd, path)
    report, keys = _patch_keys(_recorded_target("z-image", "ZImage", runtime), path, 0.9, 0.5)
    qkv = "diffusion_model.layers.0.attention.qkv.weight"
    assert keys == {(qkv, (0, 0, 3840)): ("model", 0.9), (qkv, (0, 3840, 3840)): ("model", 0.9),
                    (qkv, (0, 7680, 3840)): ("model", 0.9),
                    "qwen3_4b.transformer.model.layers.0.self_attn.q_proj.weight": ("clip", 0.5)}


def _pattern(name: str) -> str:
    return ".".join("N" if part.isdigit() else part for part in name.split("."))


def test_qwen_image_mirror_names_diffusers_modules_and_a_file_reaches_them(tmp_path, runtime):
    """Qwen-Image (recorded from diffusers' class defaults, the released sizes): the mirror's transformer has
    QwenImageTransformer2DModel's module names and weight shapes; its Qwen2.5-VL modules are named as transformers'
    Qwen2_5_VLForConditionalGeneration names them (the built-in's, layer numbers aside); a PEFT file reaches
    ComfyUI's keys at its strength."""
    import diffusers

    from loradeck.core.families import tiny_pipeline

    data, family = recorded("qwen-image"), FAMILIES["qwenimage"]
    shapes = {**data["model_shapes"], **data["clip_shapes"]}
    mirror = Mirror(family, names_of(data, family), lambda k: torch.empty(shapes[k], device="meta"))
    assert set(mirror.models) == {"transformer", "text_encoder"}
    with torch.device("meta"):
        want = _weights(diffusers.QwenImageTransformer2DModel())
    assert _weights(mirror.models["transformer"]) == want
    tiny = {_pattern(n) for n in _weights(tiny_pipeline("qwenimage").text_encoder)}
    got = {_pattern(n) for n in _weights(mirror.models["text_encoder"])}
    assert got - tiny == set() and len(got) > 20, sorted(got - tiny)[:5]

    gen, sd = torch.Generator().manual_seed(3), {}
    _pair(sd, "transformer.transformer_blocks.0.attn.to_q", 3072, 3072, gen, kohya=False)
    _pair(sd, "transformer.transformer_blocks.59.img_mlp.net.2", 3072, 12288, gen, kohya=False)
    path = str(tmp_path / "qwen-peft.safetensors")
    save_file(sd, path)
    report, keys = _patch_keys(_recorded_target("qwen-image", "QwenImage", runtime), path, 0.75, 1.0)
    assert report.matched == 2
    assert keys == {"diffusion_model.transformer_blocks.0.attn.to_q.weight": ("model", 0.75),
                    "diffusion_model.transformer_blocks.59.img_mlp.net.2.weight": ("model", 0.75)}


def test_a_zimage_pad_token_difference_is_refused_not_dropped(tmp_path, runtime):
    """Z-Image's pad tokens are parameters of the model itself, which the mirror does not hold: a file that changes
    one (ComfyUI's extraction writes such differences) is refused whole, naming it, rather than loaded without it."""
    gen, sd = torch.Generator().manual_seed(4), {}
    _pair(sd, "lora_unet_layers_0_attention_out", 3840, 3840, gen, kohya=True)
    sd["diffusion_model.x_pad_token.diff"] = torch.randn(1, 3840, generator=gen) * 0.01
    path = str(tmp_path / "zimage-pad.safetensors")
    save_file(sd, path)
    target = _recorded_target("z-image", "ZImage", runtime)
    with pytest.raises(IncompatibleLoraError, match="x_pad_token"):
        target.owner.describe(path, None, 1.0, 1.0)
