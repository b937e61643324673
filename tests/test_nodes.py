"""Node contract (frozen public API) and node behaviour without ComfyUI."""

from __future__ import annotations

import importlib
import os
import sys

import pytest
import torch

import loradeck
from helpers import make_pipe, render
from loradeck.core import Deck, LoraFileError, SpecError
from loradeck.core.api import PipelineHandle
from loradeck.core.errors import LoraDeckError, PipelineLoadError
from loradeck.nodes import NODE_CLASS_MAPPINGS, host
from loradeck.runner.registry import CONTROL, widget_names

# Saved workflows store widget values by position: these lists may only ever grow at the end.
FROZEN = {
    "LoadPipeline|LoRADeck": ["model_name", "dtype"],
    "LoadLoRA|LoRADeck": ["pipeline", "lora_name", "strength_model", "strength_clip", "adapter_name"],
    "StackLoRA|LoRADeck": ["pipeline"] + [f"{k}_{i}" for i in range(1, 5) for k in
                                          ("enabled", "lora_name", "strength_model", "strength_clip")] + ["lora_stack"],
    "SetAdapterWeights|LoRADeck": ["pipeline", "weights"],
    "FuseLoRA|LoRADeck": ["pipeline", "lora_scale", "safe_fusing", "adapter_names", "components"],
    "UnfuseLoRA|LoRADeck": ["pipeline"],
    "Generate|LoRADeck": ["pipeline", "prompt", "negative_prompt", "seed", "steps", "cfg", "width", "height",
                          "batch_size", "scheduler", "image", "denoise", "mask",  # optional from 0.2.0 on
                          "num_frames"],  # video families (after 0.2.0)
    "SaveLoRA|LoRADeck": ["pipeline", "filename_prefix", "mode", "rank"],
    "CompilePipeline|LoRADeck": ["pipeline", "mode", "backend", "max_rank", "max_adapters", "targets"],
    "LoRAGrid|LoRADeck": ["pipeline", "prompt", "negative_prompt", "seed", "steps", "cfg", "width", "height",
                          "x_axis", "y_axis", "scheduler"],  # new in 0.2.0
    "SaveImage|LoRADeck": ["images", "filename_prefix", "parameters"],  # new in 0.2.0
    "LoRAList|LoRADeck": ["pipeline", "loras", "lora_stack"],
    "LoadLoRAPair|LoRADeck": ["pipeline", "lora_name_high", "lora_name_low", "strength_high", "strength_low",
                              "adapter_name"],  # after 0.2.0
    "LoRALoader|LoRADeck": ["model", "clip", "loras", "lora_stack", "weights"],  # new: ComfyUI's MODEL and CLIP
    "LoadDiffusionModel|LoRADeck": ["unet_name", "dtype", "text_encoder_1", "text_encoder_2", "text_encoder_3",
                                    "vae", "second_denoiser"],  # new with the split-file loader (issue 24)
}
# Outputs are linked by slot number: they may only ever grow at the end too.
FROZEN_OUTPUTS = {
    "LoadLoRA|LoRADeck": ["pipeline", "info", "trigger_words"],
    "StackLoRA|LoRADeck": ["pipeline", "lora_stack", "trigger_words"],
    "LoRAList|LoRADeck": ["pipeline", "lora_stack", "trigger_words"],
    "LoadLoRAPair|LoRADeck": ["pipeline", "info", "trigger_words"],
    "LoRALoader|LoRADeck": ["model", "clip", "trigger_words"],
}


def _inputs(cls) -> dict:
    types = cls.INPUT_TYPES()
    return {**types.get("required", {}), **types.get("optional", {})}


def test_node_ids_and_input_order_are_frozen():
    assert {k: list(_inputs(v)) for k, v in NODE_CLASS_MAPPINGS.items()} == FROZEN
    for node_id, names in FROZEN_OUTPUTS.items():
        assert list(NODE_CLASS_MAPPINGS[node_id].RETURN_NAMES) == names


def test_every_node_is_documented():
    for node_id, cls in NODE_CLASS_MAPPINGS.items():
        assert cls.CATEGORY == "LoRA Deck" and cls.DESCRIPTION, node_id
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES), node_id
        for name, spec in _inputs(cls).items():
            assert len(spec) > 1 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    assert loradeck.NODE_DISPLAY_NAME_MAPPINGS["LoadLoRA|LoRADeck"] == "Load LoRA (LoRA Deck)"


def test_seed_gets_the_control_after_generate_slot():
    names = widget_names(NODE_CLASS_MAPPINGS["Generate|LoRADeck"])
    assert names[names.index("seed") + 1] is CONTROL


def test_pack_imports_without_comfyui():
    assert "folder_paths" not in sys.modules
    module = importlib.import_module("loradeck")
    assert module.WEB_DIRECTORY == "./web" and len(module.NODE_CLASS_MAPPINGS) == len(FROZEN)
    assert not host.IN_COMFYUI


@pytest.fixture
def node_env(lora_dir, use_models):
    use_models(str(lora_dir))
    return PipelineHandle(Deck(make_pipe()).owner), lambda name: NODE_CLASS_MAPPINGS[f"{name}|LoRADeck"]()


def _generate(node, handle):
    return node("Generate").generate(handle, "a lighthouse", "", 3, 3, 7.0, 64, 64, 1)[0]


def test_node_chain_produces_comfy_images(node_env):
    handle, node = node_env
    base = _generate(node, handle)
    loaded = node("LoadLoRA").load(handle, "a.safetensors", 1.0, 0.5)
    assert "modules matched" in loaded["result"][1] and loaded["ui"]["loradeck_info"]
    with_lora = _generate(node, loaded["result"][0])
    assert base.shape == (1, 64, 64, 3) and base.dtype == torch.float32 and 0 <= base.min() <= base.max() <= 1
    assert not torch.equal(base, with_lora)
    assert handle.stack.adapters == ()  # the input handle was not mutated


def test_stack_node_merges_an_incoming_lora_stack(node_env):
    handle, node = node_env
    slots = {f"{k}_{i}": v for i in range(1, 5) for k, v in
             (("enabled", i != 2), ("lora_name", "sub/b.safetensors" if i == 1 else "k.safetensors" if i == 2
                                    else "None"), ("strength_model", 0.5), ("strength_clip", 1.0))}
    out, entries, words = node("StackLoRA").stack(handle, lora_stack=[("a.safetensors", 0.3, 0.2)], **slots)["result"]
    assert entries == [("a.safetensors", 0.3, 0.2), ("sub/b.safetensors", 0.5, 1.0)]
    assert out.stack.names == ("a", "b") and words == ""  # these fixtures name no trigger words


def test_trigger_words_output(tmp_path, files, use_models):
    """Load LoRA and Stack LoRAs give the files' trigger words as an extra STRING output, appended."""
    from safetensors.torch import load_file, save_file

    (tmp_path / "loras").mkdir()
    save_file(load_file(files["k"]), str(tmp_path / "loras" / "w.safetensors"),
              metadata={"modelspec.trigger_phrase": "sks hero, red cape"})
    use_models(str(tmp_path))
    handle, node = PipelineHandle(Deck(make_pipe()).owner), lambda name: NODE_CLASS_MAPPINGS[f"{name}|LoRADeck"]()
    pipeline, info, words = node("LoadLoRA").load(handle, "w.safetensors", 1.0, 1.0)["result"]
    assert words == "sks hero, red cape" and f"trigger words: {words}" in info
    slots = {f"{k}_{i}": v for i in range(1, 5) for k, v in (("enabled", True), ("lora_name", "w.safetensors"
             if i < 3 else "None"), ("strength_model", 1.0), ("strength_clip", 1.0))}
    assert node("StackLoRA").stack(handle, **slots)["result"][2] == words  # each word once


def test_stack_node_names_the_slot_that_fails_once(node_env, monkeypatch):
    from loradeck.nodes import host

    handle, node = node_env
    slots = {f"{k}_{i}": v for i in range(1, 5) for k, v in (("enabled", True), ("lora_name", "nope.safetensors"
             if i == 3 else "None"), ("strength_model", 1.0), ("strength_clip", 1.0))}
    names = {k: v for k, v in slots.items() if k.startswith("lora_name")}
    validate = NODE_CLASS_MAPPINGS["StackLoRA|LoRADeck"].VALIDATE_INPUTS
    assert validate(**names).startswith("lora_name_3: LoRA file 'nope.safetensors'")  # headless: before running
    monkeypatch.setattr(host, "IN_COMFYUI", True)
    assert validate(**names) is True  # ComfyUI would repeat it per input: said once, when the node runs
    with pytest.raises(LoraDeckError) as failed:
        node("StackLoRA").stack(handle, **slots)
    assert str(failed.value).startswith("slot 3: LoRA file 'nope.safetensors'") and str(failed.value).count("slot") == 1


def test_set_weights_fuse_unfuse_nodes(node_env):
    handle, node = node_env
    loaded = node("LoadLoRA").load(handle, "a.safetensors", 1.0, 1.0, "style")["result"][0]
    weighted = node("SetAdapterWeights").set_weights(loaded, "style: model=0.5, clip=0.25")[0]
    assert weighted.stack.get("style").weight_map == {"model": 0.5, "clip": 0.25}
    fused = node("FuseLoRA").fuse(weighted, 1.0, True, "")[0]
    unfused = node("UnfuseLoRA").unfuse(fused)[0]
    assert (_generate(node, fused) - _generate(node, unfused)).abs().max() < 1e-3
    with pytest.raises(SpecError, match="line 1: no adapter named 'nope'"):
        node("SetAdapterWeights").set_weights(loaded, "nope: 1")
    with pytest.raises(SpecError, match="no adapter named 'nope'"):
        node("FuseLoRA").fuse(weighted, 1.0, True, "nope")


def test_missing_lora_is_a_clear_error(node_env):
    handle, node = node_env
    with pytest.raises(LoraFileError, match="not found.*Closest names: 'sub/b.safetensors'"):
        node("LoadLoRA").load(handle, "bb.safetensors", 1.0, 1.0)
    with pytest.raises(LoraFileError, match="not a .safetensors file name.*Closest names: 'sub/b.safetensors'"):
        node("LoadLoRA").load(handle, "sub/b.safetensor", 1.0, 1.0)


def test_builtin_pipeline_loads_by_name(lora_dir, use_models):
    use_models(str(lora_dir))
    assert "tiny-sd (built-in)" in host.diffusers_models()
    handle = NODE_CLASS_MAPPINGS["LoadPipeline|LoRADeck"]().load("tiny-sd (built-in)", "auto")[0]
    again = NODE_CLASS_MAPPINGS["LoadPipeline|LoRADeck"]().load("tiny-sd (built-in)", "auto")[0]
    assert handle.owner is again.owner and handle.owner.family.key == "sd1"


def test_saved_diffusers_folder_loads_from_models_dir(tmp_path, use_models):
    pipe = make_pipe()
    (tmp_path / "diffusers").mkdir()
    pipe.save_pretrained(str(tmp_path / "diffusers" / "my-sd"))
    use_models(str(tmp_path))
    assert "my-sd" in host.diffusers_models()
    handle = NODE_CLASS_MAPPINGS["LoadPipeline|LoRADeck"]().load("my-sd", "float32")[0]
    assert torch.equal(render(handle.owner.pipe), render(pipe))


def test_symlinked_diffusers_folders_are_listed_and_load(tmp_path, use_models):
    """A model folder kept elsewhere and linked into models/diffusers (directly or in a linked group folder) loads
    as ComfyUI lists it; a name with '..' does not climb out."""
    pipe = make_pipe()
    pipe.save_pretrained(str(tmp_path / "elsewhere" / "tiny-sd15"))
    (tmp_path / "models" / "diffusers").mkdir(parents=True)
    (tmp_path / "models" / "diffusers" / "tiny-sd15").symlink_to(tmp_path / "elsewhere" / "tiny-sd15")
    (tmp_path / "models" / "diffusers" / "group").symlink_to(tmp_path / "elsewhere")
    use_models(str(tmp_path / "models"))
    assert {"tiny-sd15", "group/tiny-sd15"} <= set(host.diffusers_models())
    for name in ("tiny-sd15", "group/tiny-sd15"):
        assert host.model_path(name) == str(tmp_path / "models" / "diffusers" / name)
    handle = NODE_CLASS_MAPPINGS["LoadPipeline|LoRADeck"]().load("tiny-sd15", "float32")[0]
    assert torch.equal(render(handle.owner.pipe), render(pipe))
    with pytest.raises(PipelineLoadError, match="was not found"):
        host.model_path("../elsewhere/tiny-sd15")


def test_save_lora_node_writes_a_reloadable_file(lora_dir, tmp_path, use_models):
    use_models(str(lora_dir), str(tmp_path))
    handle, node = PipelineHandle(Deck(make_pipe()).owner), lambda name: NODE_CLASS_MAPPINGS[f"{name}|LoRADeck"]()
    loaded = node("LoadLoRA").load(handle, "a.safetensors", 0.8, 0.5)["result"][0]
    out = node("SaveLoRA").save(loaded, "mine/stack", "separate", 32)
    path = str(tmp_path / "loras" / "mine" / "stack_00001_.safetensors")
    assert path in out["result"][1] and os.path.isfile(path)
    again = node("SaveLoRA").save(loaded, "mine/stack", "merged", 2)
    assert "stack_00002_.safetensors" in again["result"][1] and "relative error" in again["result"][1]
    expected = _generate(node, loaded)
    fresh = PipelineHandle(Deck(make_pipe()).owner)
    reloaded = fresh.with_stack(fresh.stack.add(fresh.owner.describe(path)[0]))
    assert (_generate(node, reloaded) - expected).abs().max() < 1e-4
