"""Z-Image (issue 26): every LoRA layout people download loads exactly, and every feature works on Z-Image.

tests/fixtures/trainers/zimage/ holds files made by the trainers' own code (musubi-tuner, ai-toolkit, LyCORIS,
DiffSynth-Studio, diffusion-pipe, ComfyUI's extraction node, diffusers' own trainer) for the built-in tiny Z-Image,
each with ``.expected.safetensors``: the trainer's own merge (merged - original, under the trainer's module names).
Where diffusers loads a file fully (tools/fixtures/generators/zimage/verify_report.txt), LoRA Deck's images and
weights must equal diffusers'; for every file the fused change must equal the trainer's own delta.

The trainer's ComfyUI names are mapped to diffusers modules by this file's own table, written from diffusers'
``convert_z_image_transformer_checkpoint_to_diffusers`` (loaders/single_file_utils.py), not from LoRA Deck's.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch._dynamo
from safetensors.torch import load_file, save_file
from torch._dynamo.utils import counters

from family_fixtures import PARAMS, fresh, render
from helpers import assert_bit_identical
from loradeck.core import Deck, IncompatibleLoraError, LoraFileError, SpecError, StackSpec, formats, run_grid
from loradeck.core.adapters.save import save_stack
from loradeck.core.families import FAMILIES
from loradeck.core.files.reading import read_metadata
from loradeck.core.generation.generate import generate

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "trainers" / "zimage"
GENERATORS = ROOT / "tools" / "fixtures" / "generators" / "zimage"
MANIFEST = json.loads((FIXTURES / "MANIFEST.json").read_text())
WITH_EXPECTED = sorted(p.name.removesuffix(".expected.safetensors") for p in FIXTURES.glob("*.expected.safetensors"))
# Bias and norm full differences (.diff_b, 1-D .diff, ComfyUI's extraction writes them): refused where LoRA Deck does
# not apply whole-parameter differences (formats.ParamDelta); where it does, their change is checked like the rest.
PARAM_DIFFERENCES = hasattr(formats, "ParamDelta")
REFUSED = {} if PARAM_DIFFERENCES else {"zimage_comfyui_extracted": "diff"}
# diffusers 0.42.1 loads these fully and rightly (verify_report.txt): images and weights must equal diffusers'
DIFFUSERS_FULL = ["zimage_aitoolkit", "zimage_aitoolkit_lokr", "zimage_aitoolkit_lokr_lowrank", "zimage_diffsynth",
                  "zimage_diffusers_peft", "zimage_diffusers_peft_all", "zimage_kohya_redundant_qkv", "zimage_musubi",
                  "zimage_musubi_all", "zimage_musubi_comfy", "zimage_musubi_to_diffusers"]
TOLERANCE = 1e-3  # relative, per trainer module
PIXELS = 2 / 255
# ComfyUI (Lumina 2 NextDiT) name -> diffusers modules whose rows it holds, in order
COMFY_TOP = {"x_embedder": ["all_x_embedder.2-1"], "final_layer.linear": ["all_final_layer.2-1.linear"],
             "final_layer.adaLN_modulation.1": ["all_final_layer.2-1.adaLN_modulation.1"]}
COMFY_ATTENTION = {"attention.qkv": ["attention.to_q", "attention.to_k", "attention.to_v"],
                   "attention.out": ["attention.to_out.0"], "attention.q_norm": ["attention.norm_q"],
                   "attention.k_norm": ["attention.norm_k"]}


def path(name: str) -> str:
    return str(FIXTURES / f"{name}.safetensors")


def modules_of(key: str) -> list[str]:
    """diffusers modules (row order) for one trainer parameter name (``<module>.weight`` / ``.bias``)."""
    name = key.rpartition(".")[0]
    if name in COMFY_TOP:
        return COMFY_TOP[name]
    for comfy, parts in COMFY_ATTENTION.items():
        if name.endswith("." + comfy):
            return [name[: -len(comfy)] + part for part in parts]
    return [name]  # diffusers names (musubi, ai-toolkit, DiffSynth, peft, LyCORIS on diffusers)


def stacked_weight(model, modules: list[str], param: str = "weight") -> torch.Tensor:
    found = [model.get_submodule(m) for m in modules]
    return torch.cat([getattr(getattr(m, "base_layer", m), param).detach().float() for m in found])


def base_weights(model) -> dict:
    """The model's own parameters by their plain names (peft wrappers' base layers, no adapter tensors)."""
    plain = set(fresh("zimage").transformer.state_dict())
    named = {k.replace(".base_layer", ""): v for k, v in model.state_dict().items()}
    assert plain <= set(named)
    return {k: named[k] for k in plain}


def state(pipe) -> dict:
    return {(c, k): v.clone() for c, m in pipe.components.items() if isinstance(m, torch.nn.Module)
            for k, v in m.state_dict().items()}


def _generator_tiny():
    spec = importlib.util.spec_from_file_location("_zimage_fixture_tiny", GENERATORS / "tiny.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_built_in_is_the_model_the_fixtures_were_made_for():
    ours, theirs = fresh("zimage"), _generator_tiny().tiny_pipeline()
    for component in ("transformer", "text_encoder", "vae"):
        assert_bit_identical(getattr(theirs, component).state_dict(), getattr(ours, component).state_dict())
    assert dict(ours.scheduler.config) == dict(theirs.scheduler.config)
    assert ours.tokenizer("a cat").input_ids == theirs.tokenizer("a cat").input_ids
    assert FAMILIES["zimage"].tiny(variant="base").scheduler.config.shift == 6.0  # Z-Image (Base)'s scheduler


# -- every trainer file: the fused change equals the trainer's own delta ------------------------------------

@pytest.mark.parametrize("name", [n for n in WITH_EXPECTED if n not in REFUSED])
def test_fused_delta_equals_the_trainers_own_merge(name):
    expected = load_file(str(FIXTURES / f"{name}.expected.safetensors"))
    pipe = fresh("zimage")
    model = pipe.transformer
    groups = {key: (modules_of(key), key.rpartition(".")[2]) for key in expected}
    before = {key: stacked_weight(model, modules, param) for key, (modules, param) in groups.items()}
    original = base_weights(model)
    Deck(pipe).add(path(name)).fuse()
    worst = []
    for key, want in expected.items():
        ours = stacked_weight(model, *groups[key]) - before[key]
        error = float((ours - want.float().reshape(ours.shape)).norm() / want.float().norm().clamp_min(1e-12))
        worst.append((error, key))
    assert max(worst)[0] < TOLERANCE, max(worst)
    after = base_weights(model)
    changed = {k for k, v in original.items() if not torch.equal(after[k], v)}
    claimed = {f"{m}.{param}" for modules, param in groups.values() for m in modules}
    assert changed == claimed, f"changed but not by the trainer: {sorted(changed - claimed)[:5]}; " \
                               f"not changed: {sorted(claimed - changed)[:5]}"


@pytest.mark.parametrize("name", DIFFUSERS_FULL)
def test_where_diffusers_loads_a_file_our_images_and_weights_equal_diffusers(name):
    ours, theirs = fresh("zimage"), fresh("zimage")
    base = render("zimage", ours)
    deck = Deck(ours).add(path(name), "a", model=0.7)
    theirs.load_lora_weights(path(name), adapter_name="a")
    theirs.set_adapters(["a"], [0.7])
    image = render("zimage", ours)
    assert (image - render("zimage", theirs)).abs().max() <= PIXELS
    assert (image - base).abs().max() > 2 * PIXELS  # the LoRA visibly changes the picture
    deck.set_weights("a", model=1.0).fuse()
    theirs.set_adapters(["a"], [1.0])
    theirs.fuse_lora(components=["transformer"], lora_scale=1.0)
    ours_w, theirs_w = base_weights(ours.transformer), base_weights(theirs.transformer)
    for key, weight in theirs_w.items():
        assert torch.allclose(ours_w[key], weight, rtol=1e-5, atol=1e-6), key


@pytest.mark.parametrize("name,what", sorted(REFUSED.items()))
def test_files_loradeck_cannot_apply_exactly_are_refused_and_change_nothing(name, what):
    pipe = fresh("zimage")
    before = state(pipe)
    for allow_partial in (False, True):
        with pytest.raises(LoraFileError, match=what) as caught:
            Deck(pipe).add(path(name), allow_partial=allow_partial)
        assert Path(path(name)).name in str(caught.value)
    assert_bit_identical(before, state(pipe))


@pytest.mark.parametrize("key,shape,param", [("layers.1.adaLN_modulation.0.diff_b", (128,), "bias"),
                                             ("layers.1.attention_norm1.diff", (32,), "weight"),
                                             ("layers.1.attention.q_norm.diff", (16,), "weight")])
def test_parameter_differences_beside_a_lora(key, shape, param, tmp_path):
    """Bias and norm differences beside a LoRA (ComfyUI's extraction writes them, under its names: ``q_norm`` is
    diffusers' ``norm_q``): summed into the parameter at the strength where LoRA Deck applies whole-parameter
    differences; else the file is refused whole, never half-applied."""
    delta = torch.randn(shape, generator=torch.Generator().manual_seed(3)) * 0.01
    tensors = {**load_file(path("zimage_comfyui_extracted_nobias")), f"diffusion_model.{key}": delta}
    file = str(tmp_path / "with_difference.safetensors")
    save_file(tensors, file)
    pipe = fresh("zimage")
    before = state(pipe)
    if not PARAM_DIFFERENCES:
        with pytest.raises(LoraFileError, match=r"with_difference\.safetensors.*(diff|understand)"):
            Deck(pipe).add(file)
        assert_bit_identical(before, state(pipe))
        return
    module = modules_of(key.rpartition(".")[0] + ".weight")[0]
    original = stacked_weight(pipe.transformer, [module], param)
    deck = Deck(pipe).add(file, "x", model=0.5)
    assert torch.allclose(stacked_weight(pipe.transformer, [module], param) - original, 0.5 * delta, atol=1e-7)
    deck.unload()
    assert_bit_identical(before, state(pipe))


def test_a_fused_and_split_copy_of_one_module_is_applied_once_and_different_copies_are_refused(tmp_path):
    """``zimage_kohya_redundant_qkv`` holds each attention twice (fused ``qkv``/``out`` and split ``to_q/k/v``/
    ``to_out_0``): the same change, applied once (its delta is checked above). Copies that differ are refused."""
    tensors = load_file(path("zimage_kohya_redundant_qkv"))
    report = Deck(fresh("zimage")).add(path("zimage_kohya_redundant_qkv")).owner.prepare(
        path("zimage_kohya_redundant_qkv")).report
    assert report.matched == report.total and not report.partial
    key = "lora_unet_layers_1_attention_qkv.lora_up.weight"
    tensors[key] = tensors[key] * 1.5
    bad = str(tmp_path / "differing_copies.safetensors")
    save_file(tensors, bad)
    pipe = fresh("zimage")
    before = state(pipe)
    with pytest.raises(LoraFileError, match=r"patches transformer module layers\.1\.attention\.to_. twice with "
                                            r"different changes"):
        Deck(pipe).add(bad)
    assert_bit_identical(before, state(pipe))


# -- features on trainer files ---------------------------------------------------------------------------------

def test_trainer_files_take_strengths_blocks_switches_fuse_and_save(tmp_path):
    """Fused-qkv files (ComfyUI names) and LyCORIS go through the plain-LoRA path: strength 0 = base, block weights,
    enable/disable, two adapters, fuse = unfused, exact unfuse, a saved stack that reloads to the same picture."""
    pipe = fresh("zimage")
    base, original = render("zimage", pipe), {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
    deck = Deck(pipe).add(path("zimage_diffusion_pipe"), name="pipe", model=0.0)
    assert torch.equal(render("zimage", pipe), base)
    deck.add(path("zimage_musubi_lycoris_lokr"), name="lokr", model=0.7)
    deck.set_weights("pipe", model=0.8, blocks={"layers.0": 0.0, "noise_refiner.0-1": 0.5})
    stacked = render("zimage", pipe)
    assert (stacked - base).abs().max() > 1e-3
    deck.set_weights("lokr", enabled=False)
    assert not torch.equal(render("zimage", pipe), stacked)
    deck.set_weights("lokr", enabled=True).fuse()
    assert (render("zimage", pipe) - stacked).abs().max() < 1e-4
    report = save_stack(deck.owner, deck.stack, str(tmp_path / "saved.safetensors"))
    assert report.relative_error < 1e-5
    deck.unfuse().unload()
    assert_bit_identical(original, base_weights(pipe.transformer))
    again = fresh("zimage")
    Deck(again).add(report.path)
    assert (render("zimage", again) - stacked).abs().max() < 1e-4


@pytest.mark.parametrize("group", ["layers", "noise_refiner", "context_refiner"])
def test_block_ranges_equal_removing_those_blocks(group, tmp_path):
    source = load_file(path("zimage_musubi_all"))
    stem = f"lora_unet_{group}_1_"
    without = {k: v for k, v in source.items() if not k.startswith(stem)}
    assert len(without) < len(source)
    save_file(without, str(tmp_path / "without.safetensors"), metadata=read_metadata(path("zimage_musubi_all")))
    ranged, removed = fresh("zimage"), fresh("zimage")
    Deck(ranged).add(path("zimage_musubi_all"), "x").set_weights_text(f"x: {group}.1-1=0")
    Deck(removed).add(str(tmp_path / "without.safetensors"), "x")
    assert (render("zimage", ranged) - render("zimage", removed)).abs().max() < 1e-5


def test_block_indexes_are_exact_per_list_and_bad_groups_are_named():
    pipe = fresh("zimage")
    deck = Deck(pipe).add(path("zimage_musubi_all"), "x").set_weights_text("x: layers.0=0")
    layers = {n: m for n, m in pipe.transformer.named_modules() if hasattr(m, "scaling")}
    (key,) = {k for m in layers.values() for k in m.scaling}
    assert layers["layers.0.attention.to_q"].scaling[key] == 0
    assert layers["noise_refiner.0.attention.to_q"].scaling[key] != 0
    assert layers["context_refiner.0.attention.to_q"].scaling[key] != 0
    assert layers["layers.1.attention.to_q"].scaling[key] != 0
    (view,) = deck.active()
    assert view.blocks == "layers.0=0"
    spread = {c: (low, high) for c, low, high in view.layer_strengths}
    assert spread["transformer"] == (0.0, 1.0)
    with pytest.raises(SpecError, match=r"block groups of this transformer are noise_refiner \(0-1\), "
                                        r"context_refiner \(0-1\), layers \(0-1\)"):
        deck.set_weights_text("x: double_blocks.0=0")
    with pytest.raises(SpecError, match="layers has blocks 0-1"):
        deck.set_weights_text("x: layers.0-5=0")


def test_a_text_encoder_part_loads_with_peft_and_follows_strength_clip(tmp_path):
    """diffusers loads Z-Image LoRAs into the transformer only; LoRA Deck also applies a Qwen3 text-encoder part
    (kohya ``lora_te_`` names, ``text_encoder.`` + transformers names, ComfyUI's ``text_encoders.qwen3_4b.transformer.
    model.`` names), exactly, at strength_clip."""
    gen = torch.Generator().manual_seed(5)
    pipe = fresh("zimage")
    q_proj = pipe.text_encoder.layers[0].self_attn.q_proj
    down, up = torch.randn(4, q_proj.in_features, generator=gen), torch.randn(q_proj.out_features, 4, generator=gen)
    unet = {"lora_unet_layers_0_attention_to_q.lora_down.weight": torch.randn(4, 32, generator=gen) * 0.3,
            "lora_unet_layers_0_attention_to_q.lora_up.weight": torch.randn(32, 4, generator=gen) * 0.3,
            "lora_unet_layers_0_attention_to_q.alpha": torch.tensor(2.0)}
    kohya = {**unet, "lora_te_layers_0_self_attn_q_proj.lora_down.weight": down,
             "lora_te_layers_0_self_attn_q_proj.lora_up.weight": up,
             "lora_te_layers_0_self_attn_q_proj.alpha": torch.tensor(2.0)}
    prefixed = {"text_encoder.layers.0.self_attn.q_proj.lora_A.weight": down,
                "text_encoder.layers.0.self_attn.q_proj.lora_B.weight": up * 0.5,  # alpha 2 / rank 4 baked in
                "transformer.layers.0.attention.to_q.lora_A.weight": unet[
                    "lora_unet_layers_0_attention_to_q.lora_down.weight"],
                "transformer.layers.0.attention.to_q.lora_B.weight": unet[
                    "lora_unet_layers_0_attention_to_q.lora_up.weight"] * 0.5}
    comfy = {k.replace("text_encoder.", "text_encoders.qwen3_4b.transformer.model.").replace(
        "transformer.layers.", "diffusion_model.layers."): v for k, v in prefixed.items()}
    original = q_proj.weight.detach().clone()
    for layout, tensors in (("kohya", kohya), ("prefixed", prefixed), ("comfyui", comfy)):
        file = str(tmp_path / f"{layout}.safetensors")
        save_file(tensors, file)
        pipe = fresh("zimage")
        base = render("zimage", pipe)
        deck = Deck(pipe).add(file, "t", model=0.0, clip=0.6)
        report = deck.owner.prepare(file).report
        assert dict((c, (m, t)) for c, m, t in report.components) == {"text_encoder": (1, 1), "transformer": (1, 1)}
        assert (render("zimage", pipe) - base).abs().max() > 1e-3  # the text encoder part alone changes the picture
        deck.fuse()
        weight = pipe.text_encoder.layers[0].self_attn.q_proj.base_layer.weight
        assert torch.allclose(weight - original, 0.6 * 0.5 * up @ down, rtol=1e-4, atol=1e-6), layout
        deck.unfuse().set_weights("t", clip=0.0)
        assert torch.equal(render("zimage", pipe), base)


# -- cross-family refusal with trainer files ---------------------------------------------------------------------

@pytest.mark.parametrize("name,family", [("zimage_musubi", "flux"), ("zimage_diffusion_pipe", "sd3"),
                                         ("zimage_aitoolkit", "flux"), ("zimage_lycoris_simpletuner", "sd1"),
                                         ("zimage_diffsynth", "sdxl")])
def test_a_zimage_file_on_another_family_is_refused_naming_zimage(name, family):
    pipe = fresh(family)
    before = state(pipe)
    with pytest.raises(IncompatibleLoraError, match="Z-Image"):
        Deck(pipe).add(path(name))
    assert_bit_identical(before, state(pipe))


@pytest.mark.parametrize("name,base", [("flux_kohya_default", "Flux"), ("flux_xlabs", "Flux"),
                                       ("flux_lycoris_lokr_simpletuner", "Flux"), ("sd3_kohya", "SD 3"),
                                       ("sd3_sai_prefix", "SD 3")])
def test_another_familys_trainer_file_on_zimage_is_refused_naming_its_base(name, base):
    pipe = fresh("zimage")
    before = state(pipe)
    with pytest.raises(IncompatibleLoraError, match=base):
        Deck(pipe).add(str(FIXTURES.parent / f"{name}.safetensors"))
    assert_bit_identical(before, state(pipe))


# -- generation: cfg, grid, compile, prompt tags -----------------------------------------------------------------

def test_cfg_is_the_usual_cfg_and_one_means_no_guidance():
    """Generate's cfg w runs diffusers' guidance_scale w - 1: cfg 1 is Z-Image Turbo's unguided run (one
    transformer pass per step, negative prompt unused); below 1 is unguided too, as SD pipelines do in diffusers."""
    pipe, owner = fresh("zimage"), Deck(fresh("zimage")).owner
    calls = []
    pipe.transformer.register_forward_pre_hook(lambda module, args: calls.append(len(args[0])))
    for cfg, guidance, passes in ((1.0, 0.0, 1), (0.5, 0.0, 1), (4.5, 3.5, 2)):
        params = dataclasses.replace(PARAMS, cfg=cfg, negative_prompt="blurry")
        calls.clear()
        with torch.inference_mode():
            direct = pipe(prompt=params.prompt, negative_prompt="blurry", num_inference_steps=3,
                          guidance_scale=guidance, width=64, height=64,
                          generator=torch.Generator().manual_seed(params.seed), output_type="np").images
        assert set(calls) == {passes}
        assert torch.equal(generate(owner, StackSpec(), params), torch.from_numpy(direct.copy()))


def test_a_side_off_the_16_pixel_grid_is_rounded_down_as_flux_does(caplog):
    owner = Deck(fresh("zimage")).owner
    with caplog.at_level("WARNING"):
        odd = generate(owner, StackSpec(), dataclasses.replace(PARAMS, width=72, height=88))
    assert odd.shape == (1, 80, 64, 3) and "72x88 becomes 64x80" in caplog.text
    assert torch.equal(odd, generate(owner, StackSpec(), dataclasses.replace(PARAMS, width=64, height=80)))


@pytest.fixture(scope="module")
def grid_deck():
    return Deck(fresh("zimage")).add(path("zimage_diffusion_pipe"), "first", model=0.8).add(
        path("zimage_comfyui_extracted_nobias"), "embedders", model=0.6)


@pytest.mark.parametrize("axis,batched", [("strength first: 0 | 0.6 | 1.2", True),
                                          ("strength embedders: 0 | 1", False)])
def test_grid_cells_equal_their_runs_alone(grid_deck, axis, batched):
    """Cells batch through peft's mixed batch, except where they differ on the patch / caption embedders, whose
    input packs every row's tokens into one sequence: then they run one after another, saying why."""
    params = dataclasses.replace(PARAMS, steps=3, negative_prompt="blurry")
    stack = grid_deck.stack
    result = run_grid(grid_deck.owner, stack, params, axis)
    assert result.batched == batched, result.text
    if not batched:
        assert "all_x_embedder.2-1 takes every row's tokens as one sequence (Z-Image)" in result.text
    name, values = axis.removeprefix("strength ").split(": ")
    for i, value in enumerate(values.split(" | ")):
        alone = generate(grid_deck.owner, grid_deck.set_weights(name, model=float(value)).stack, params)
        grid_deck._set(stack)
        assert (result.cells[i] - alone[0]).abs().max() <= PIXELS, f"cell {i}"


def _transformer_out(deck: Deck) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    latents, caption = torch.randn(16, 1, 8, 8, generator=gen), torch.randn(7, 32, generator=gen)
    with torch.inference_mode():
        return deck.pipe.transformer([latents], torch.tensor([0.3]), [caption], return_dict=False)[0][0]


def test_compiled_denoiser_never_recompiles_within_the_envelope():
    torch._dynamo.reset()
    try:
        compiled = Deck(fresh("zimage")).add(path("zimage_musubi"), "a").compile(backend="eager", max_rank=4,
                                                                                  max_adapters=2)
        eager = Deck(fresh("zimage")).add(path("zimage_musubi"), "a")
        assert (_transformer_out(compiled) - _transformer_out(eager)).abs().max() <= 1e-5
        # the RoPE embedder fills its frequency cache on the first call (a guard on ``freqs_cis is None``): the
        # second call compiles that frame once more, whatever the adapters; from then on nothing may recompile
        _transformer_out(compiled)
        frames = int(counters["frames"]["total"])
        assert frames >= 1
        changes = (lambda d: d.set_weights("a", model=0.3), lambda d: d.add(path("zimage_aitoolkit"), "b"),
                   lambda d: d.set_weights("b", enabled=False), lambda d: d.set_weights("b", enabled=True, model=-0.5),
                   lambda d: d.set_weights("a", blocks={"layers.1": 0.2}), lambda d: d.set_adapters(["b"], [0.8]),
                   lambda d: d.remove("a"), lambda d: d.add(path("zimage_diffusion_pipe"), "c"),
                   lambda d: d.fuse(names=["c"]), lambda d: d.unfuse())
        for i, change in enumerate(changes):
            change(compiled)
            change(eager)
            assert (_transformer_out(compiled) - _transformer_out(eager)).abs().max() <= 1e-4, i
            assert int(counters["frames"]["total"]) == frames, f"change {i} recompiled"
    finally:
        torch._dynamo.reset()


def test_prompt_tags_equal_load_lora_nodes(tmp_path, use_models):
    from loradeck.core.api import PipelineHandle
    from loradeck.nodes import NODE_CLASS_MAPPINGS

    loras = tmp_path / "loras"
    loras.mkdir()
    (loras / "musubi.safetensors").write_bytes(Path(path("zimage_musubi")).read_bytes())
    use_models(str(tmp_path))
    handle = PipelineHandle(Deck(fresh("zimage")).owner)
    node = NODE_CLASS_MAPPINGS["Generate|LoRADeck"]()

    def run(stack_handle, prompt):
        return node.generate(stack_handle, prompt, "blurry", 5, 3, 4.0, 64, 64, 1)[0]

    tagged = run(handle, "a lighthouse <lora:musubi:0.7>")
    loaded = NODE_CLASS_MAPPINGS["LoadLoRA|LoRADeck"]().load(handle, "musubi.safetensors", 0.7, 1.0)["result"][0]
    plain = run(handle, "a lighthouse")
    assert torch.equal((tagged * 255).round(), (run(loaded, "a lighthouse") * 255).round())
    assert not torch.equal((tagged * 255).round(), (plain * 255).round())


def test_the_built_in_is_listed_by_load_pipeline():
    from loradeck.nodes import host

    assert "tiny-zimage (built-in)" in host.diffusers_models()


# -- single files: ComfyUI's z_image_turbo file + qwen_3_4b + ae, and what is not one -------------------------

def _marker_file(path: Path, shapes: dict) -> str:
    save_file({k: torch.zeros(s) for k, s in shapes.items()}, str(path))
    return str(path)


Z_IMAGE = {"layers.0.attention.qkv.weight": (11520, 3840), "x_embedder.weight": (3840, 64), "cap_pad_token": (1, 3840)}


def test_a_real_size_file_without_its_parts_says_what_to_put_where(tmp_path):
    from loradeck.core import PipelineLoadError
    from loradeck.core.models.single_file import LocalFiles, load_single_file

    path = _marker_file(tmp_path / "z_image_turbo_bf16.safetensors", Z_IMAGE)
    with pytest.raises(PipelineLoadError) as caught:
        load_single_file(path, torch.float32, torch.device("cpu"), LocalFiles())
    message = str(caught.value)
    for words in ("is a Z-Image (Turbo) checkpoint", "Qwen tokenizer (vocab.json + merges.txt",
                  "comfy/text_encoders/qwen25_tokenizer", "Qwen3-4B text encoder (text_encoder: width 2560, 36 layers",
                  "put qwen_3_4b.safetensors in models/text_encoders", "ae.safetensors (the FLUX.1 VAE) in models/vae"):
        assert words in message, (words, message)


@pytest.mark.parametrize("shapes,what", [
    ({**Z_IMAGE, "siglip_embedder.1.weight": (3840, 1152)}, "a Z-Image Omni model"),
    ({"control_all_x_embedder.2-1.weight": (3840, 64)}, "a Z-Image ControlNet"),
    # Lumina 2 files load as Lumina 2 (tests/test_model_files_lumina2.py); NewBie, a Lumina 2 with a pooled CLIP input,
    # is named
    ({"layers.0.attention.qkv.weight": (3840, 2304), "x_embedder.weight": (2304, 64),
      "cap_embedder.1.weight": (2304, 2304), "layers.0.adaLN_modulation.1.weight": (9216, 1024),
      "clip_text_pooled_proj.0.weight": (1024,)}, "a NewBie image model"),
])
def test_other_z_image_files_are_named(shapes, what, tmp_path):
    from loradeck.core import PipelineLoadError
    from loradeck.core.models.single_file import LocalFiles, load_single_file

    path = _marker_file(tmp_path / "other.safetensors", shapes)
    with pytest.raises(PipelineLoadError, match=f"looks like {what}.*, which LoRA Deck does not load"):
        load_single_file(path, torch.float32, torch.device("cpu"), LocalFiles())


def test_a_qwen_tokenizer_folder_is_told_from_clip_and_gets_qwen3s_chat_template(tmp_path):
    """ComfyUI bundles Qwen2.5's tokenizer files (comfy/text_encoders/qwen25_tokenizer) for Qwen3 encoders: the same
    vocab.json + merges.txt layout as CLIP's, told apart by tokenizer_config.json; its chat template (Qwen2.5's adds
    a system prompt) is replaced by Qwen3's, which is what the Z-Image pipelines' prompts need."""
    from loradeck.core.models import tokenizers
    from loradeck.core.models.tiny_parts import _bytes_to_unicode, tiny_clip_tokenizer, tiny_qwen_tokenizer

    comfy = tmp_path / "ComfyUI"
    folder = comfy / "comfy" / "text_encoders" / "qwen25_tokenizer"  # its layout: no tokenizer.json
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(_bytes_to_unicode())}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    special = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "add_bos_token": False, "bos_token": None, "unk_token": None,
        "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "model_max_length": 131072,
        "added_tokens_decoder": {str(256 + i): {"content": t, "special": True, "normalized": False, "lstrip": False,
                                                "rstrip": False, "single_word": False} for i, t in enumerate(special)},
        "chat_template": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% for m in messages %}"
                         "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                         "<|im_start|>assistant\n"}))
    tiny_clip_tokenizer().save_pretrained(str(comfy / "comfy" / "sd1_tokenizer"))
    assert tokenizers.find("qwen", [str(comfy)]) == str(folder)
    assert tokenizers.find("clip", [str(comfy)]) == str(comfy / "comfy" / "sd1_tokenizer")
    loaded = tokenizers.load("qwen", str(folder), None)
    text = loaded.apply_chat_template([{"role": "user", "content": "a cat"}], tokenize=False,
                                      add_generation_prompt=True, enable_thinking=True)
    assert text == "<|im_start|>user\na cat<|im_end|>\n<|im_start|>assistant\n"  # as ComfyUI's llama_template
    assert loaded("a cat").input_ids == tiny_qwen_tokenizer()("a cat").input_ids
