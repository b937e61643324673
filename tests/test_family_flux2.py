"""FLUX.2: every LoRA layout its trainers write loads exactly, and LoRA Deck's features work on its pipelines.

tests/fixtures/trainers/flux2/ holds files made by the trainers' own network code (musubi-tuner's LoRA, LoKr and
LoHa, LyCORIS, ai-toolkit's LoRA and LoKr, diffusers' FLUX.2 klein training script, DiffSynth-Studio, PEFT on BFL's
model as fal's trainer saves it) for the built-in tiny klein, each with ``.expected.safetensors``: the trainer's own
merge (merged - original, float32, under the trainer's module names). tools/fixtures/generators/flux2/ is how they
were made. The test maps the trainer's names to diffusers modules with its own table, written from diffusers'
``convert_flux2_transformer_checkpoint_to_diffusers`` (loaders/single_file_utils.py), not from LoRA Deck's.

Where diffusers 0.42.1 loads a layout correctly, LoRA Deck's weights and images equal diffusers'; where it loads it
wrongly (fal's final layer: the (shift, scale) halves are not swapped), partly or not at all (DiffSynth, musubi's
LoKr/LoHa, ai-toolkit's old LoKr), the fused change equals the trainer's own.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from family_fixtures import PARAMS, fresh, render
from loradeck.core import Deck

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "trainers" / "flux2"
MANIFEST = json.loads((FIXTURES / "MANIFEST.json").read_text())
NAMES = sorted(p.name.removesuffix(".expected.safetensors") for p in FIXTURES.glob("*.expected.safetensors"))
TOLERANCE = 1e-3  # relative, per module
# musubi merges a bf16 file in bf16 (up @ down, the Hadamard and Kronecker products), so its own merge carries bf16
# rounding: the same products in bf16 give its .expected to 1e-7, LoRA Deck's float32 ones differ by up to 3.5e-3
# (the fp32 twin of the LoRA file meets TOLERANCE)
BF16_MERGED = {"flux2_musubi_lora", "flux2_musubi_loha", "flux2_musubi_lokr"}
BF16_TOLERANCE = 8e-3
IMAGE_TOLERANCE = 2 / 255

# BFL name -> diffusers modules whose weights are its rows, in order ("swap": diffusers stores the halves swapped)
DOUBLE = {"img_attn.qkv": ["attn.to_q", "attn.to_k", "attn.to_v"],
          "txt_attn.qkv": ["attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"],
          "img_attn.proj": ["attn.to_out.0"], "txt_attn.proj": ["attn.to_add_out"],
          "img_mlp.0": ["ff.linear_in"], "img_mlp.2": ["ff.linear_out"],
          "txt_mlp.0": ["ff_context.linear_in"], "txt_mlp.2": ["ff_context.linear_out"]}
SINGLE = {"linear1": ["attn.to_qkv_mlp_proj"], "linear2": ["attn.to_out"]}
TOP = {"img_in": ["x_embedder"], "txt_in": ["context_embedder"],
       "time_in.in_layer": ["time_guidance_embed.timestep_embedder.linear_1"],
       "time_in.out_layer": ["time_guidance_embed.timestep_embedder.linear_2"],
       "double_stream_modulation_img.lin": ["double_stream_modulation_img.linear"],
       "double_stream_modulation_txt.lin": ["double_stream_modulation_txt.linear"],
       "single_stream_modulation.lin": ["single_stream_modulation.linear"],
       "final_layer.linear": ["proj_out"], "final_layer.adaLN_modulation.1": ["swap", "norm_out.linear"]}


def diffusers_modules(key: str) -> tuple[list[str], bool]:
    """(diffusers module names in row order, halves swapped?) for one trainer weight name."""
    name = key.removesuffix(".weight")
    match = re.match(r"^(double_blocks|single_blocks)\.(\d+)\.(.+)$", name)
    if match:
        group, index, rest = match.groups()
        table = DOUBLE if group == "double_blocks" else SINGLE
        prefix = ("transformer_blocks" if group == "double_blocks" else "single_transformer_blocks") + f".{index}."
        return [prefix + m for m in table[rest]], False
    if name not in TOP:  # already a diffusers name (diffusers, DiffSynth, LyCORIS on diffusers' model)
        return [name], False
    modules = TOP[name]
    return [m for m in modules if m != "swap"], modules[0] == "swap"


def weights(model, modules: list[str]) -> torch.Tensor:
    found = [model.get_submodule(m) for m in modules]
    return torch.cat([getattr(m, "base_layer", m).weight.detach().float() for m in found])


def _relative(ours: torch.Tensor, want: torch.Tensor) -> float:
    return float((ours - want).norm() / want.norm().clamp_min(1e-12))


@pytest.mark.parametrize("name", NAMES)
def test_fused_delta_equals_the_trainers_own_merge(name):
    expected = load_file(str(FIXTURES / f"{name}.expected.safetensors"))
    pipe = fresh("flux2")
    model = pipe.transformer
    groups = {key: diffusers_modules(key) for key in expected}
    before = {key: weights(model, modules) for key, (modules, _) in groups.items()}
    deck = Deck(pipe).add(str(FIXTURES / f"{name}.safetensors"))
    report = deck.owner.prepare(str(FIXTURES / f"{name}.safetensors")).report
    assert report.matched == report.total and not report.partial
    deck.fuse()
    worst = (0.0, "")
    for key, want in expected.items():
        modules, swap = groups[key]
        delta = weights(model, modules) - before[key]
        if swap:
            scale, shift = delta.chunk(2)
            delta = torch.cat([shift, scale])
        worst = max(worst, (_relative(delta, want.float().reshape(delta.shape)), key))
    assert worst[0] < (BF16_TOLERANCE if name in BF16_MERGED else TOLERANCE), worst
    changed = {n for n, m in model.named_modules() if hasattr(m, "_loradeck_original")}
    claimed = {m for modules, _ in groups.values() for m in modules}
    assert changed <= claimed, f"modules changed that the trainer did not touch: {sorted(changed - claimed)[:5]}"


# -- against diffusers' own loader, where it loads the layout correctly ------------------------------------------
DIFFUSERS_EXACT = ["flux2_diffusers_peft", "flux2_musubi_lora_fp32", "flux2_musubi_lora", "flux2_aitoolkit_lora",
                   "flux2_aitoolkit_lokr", "flux2_aitoolkit_lokr_rank", "flux2_lycoris_lokr_diffusers"]
FUSED = {"to_qkv": ("to_q", "to_k", "to_v"), "to_added_qkv": ("add_q_proj", "add_k_proj", "add_v_proj")}
SHORT = dataclasses.replace(PARAMS, steps=2)
STRENGTH = 4.0  # the fixtures' factors are small (randn x 0.1): a strength that makes their effect plain


def effective(model) -> dict[str, torch.Tensor]:
    """Linear weights by diffusers module name; a fused projection diffusers made (its LoKr loader fuses q/k/v
    before it injects) is read back as the weights of the modules it replaced."""
    out = {}
    for name, module in model.named_modules():
        base = getattr(module, "base_layer", module)
        if not isinstance(base, torch.nn.Linear) or ".base_layer" in name or ".lora_" in name:
            continue
        attn, _, leaf = name.rpartition(".")
        if leaf in FUSED:
            for part, rows in zip(FUSED[leaf], base.weight.detach().float().chunk(3), strict=True):
                out[f"{attn}.{part}"] = rows
        else:
            out.setdefault(name, base.weight.detach().float())
    return out


@functools.cache
def _base_image() -> torch.Tensor:
    return render("flux2", fresh("flux2"), SHORT)


def _diffusers(name: str, strength: float = 1.0):
    pipe = fresh("flux2")
    pipe.load_lora_weights(str(FIXTURES / f"{name}.safetensors"), adapter_name="x")
    if strength != 1.0:
        pipe.set_adapters(["x"], [strength])
    return pipe


@pytest.mark.parametrize("name", DIFFUSERS_EXACT)
def test_images_and_weights_equal_diffusers_where_it_loads_correctly(name):
    ours, theirs = fresh("flux2"), _diffusers(name, STRENGTH)
    base = effective(ours.transformer)
    deck = Deck(ours).add(str(FIXTURES / f"{name}.safetensors"), model=STRENGTH)
    image = render("flux2", ours, SHORT)
    assert (image - render("flux2", theirs, SHORT)).abs().max() <= IMAGE_TOLERANCE
    assert (image - _base_image()).abs().max() > 0.02  # the LoRA matters
    deck.fuse()
    theirs.fuse_lora()
    mine, reference = effective(ours.transformer), effective(theirs.transformer)
    changed = [n for n in base if not torch.equal(reference[n], base[n])]
    assert changed and {n for n in base if not torch.equal(mine[n], base[n])} == set(changed)
    worst = max(_relative(mine[n] - base[n], reference[n] - base[n]) for n in changed)
    assert worst < 1e-5, worst


def test_diffusers_gets_fals_final_layer_wrong_and_loradeck_right():
    """diffusers' FLUX.2 LoRA converter maps final_layer.adaLN_modulation.1 to norm_out.linear without swapping the
    (shift, scale) halves (its single-file converter does swap): the halves land on each other's rows."""
    name = "flux2_fal_peft"
    want = load_file(str(FIXTURES / f"{name}.expected.safetensors"))["final_layer.adaLN_modulation.1.weight"]
    shift, scale = want.float().chunk(2)
    base = effective(fresh("flux2").transformer)["norm_out.linear"]
    theirs = _diffusers(name)
    theirs.fuse_lora()
    assert _relative(effective(theirs.transformer)["norm_out.linear"] - base, torch.cat([scale, shift])) > 0.5
    ours = fresh("flux2")
    Deck(ours).add(str(FIXTURES / f"{name}.safetensors")).fuse()
    assert _relative(effective(ours.transformer)["norm_out.linear"] - base, torch.cat([scale, shift])) < 1e-6


@pytest.mark.parametrize("name,fails", [("flux2_diffsynth", False), ("flux2_musubi_loha", False),
                                        ("flux2_musubi_lokr", True), ("flux2_musubi_lycoris_lokr", True),
                                        ("flux2_aitoolkit_lokr_old", True)])
def test_layouts_diffusers_cannot_load(name, fails):
    """DiffSynth's bare names with peft's ``.default`` and musubi's LoHa load nothing in diffusers, silently;
    musubi's and LyCORIS' LoKr on lora_unet_ names and ai-toolkit's old LoKr layout raise. LoRA Deck loads them whole
    (their fused change is checked above)."""
    if fails:
        with pytest.raises(Exception):  # noqa: B017 - diffusers' error types differ by layout
            _diffusers(name)
    else:
        assert not any(hasattr(m, "lora_A") for m in _diffusers(name).transformer.modules())


@pytest.mark.parametrize("value,label", [("Flux.2-klein-4b/lora", "FLUX.2 [klein]"),
                                         ("flux2_klein_9b", "FLUX.2 [klein]"), ("Flux.2-dev/lora", "FLUX.2 [dev]"),
                                         ("flux2", "FLUX.2"), ("flux-1-dev/lora", "Flux")])
def test_metadata_names_flux2_apart_from_flux1(value, label):
    from loradeck.core.files.metadata import parse_metadata

    assert parse_metadata({"modelspec.architecture": value}).base_model == label


# -- LoRA Deck's features on FLUX.2 files ---------------------------------------------------------------------
def _fused_deltas(pipe, *files_and_strengths) -> dict[str, torch.Tensor]:
    base = effective(pipe.transformer)
    deck = Deck(pipe)
    for i, (name, strength) in enumerate(files_and_strengths):
        deck.add(str(FIXTURES / f"{name}.safetensors"), name=f"a{i}", model=strength)
    deck.fuse()
    return {n: w - base[n] for n, w in effective(pipe.transformer).items()}


def test_a_lokr_on_fused_qkv_stacks_with_a_lora_on_the_same_rows():
    """diffusers maps a LoKr on BFL's fused qkv onto a fused to_qkv and then ignores (or refuses) any LoRA on
    to_q/to_k/to_v loaded with it. LoRA Deck splits both into the same rows, so the two changes simply add up."""
    both = _fused_deltas(fresh("flux2"), ("flux2_aitoolkit_lokr", 0.7), ("flux2_musubi_lora_fp32", -1.3))
    lokr = load_file(str(FIXTURES / "flux2_aitoolkit_lokr.expected.safetensors"))
    lora = load_file(str(FIXTURES / "flux2_musubi_lora_fp32.expected.safetensors"))
    for block in range(2):
        key = f"double_blocks.{block}.img_attn.qkv.weight"
        want = 0.7 * lokr[key].float() - 1.3 * lora[key].float()
        ours = torch.cat([both[f"transformer_blocks.{block}.attn.to_{x}"] for x in "qkv"])
        assert _relative(ours, want) < TOLERANCE


def test_block_weights_by_bfl_and_diffusers_names_are_the_same():
    """double_blocks / single_blocks (ComfyUI, musubi, ai-toolkit) name diffusers' transformer_blocks /
    single_transformer_blocks; the shared modulation layers, embedders and final layer are in no block."""
    name = "flux2_fal_peft"  # every Linear: blocks and the layers outside them
    scalings = []
    for text in ("x: double_blocks.0=0, single_blocks.1-1=0.5",
                 "x: transformer_blocks.0=0, single_transformer_blocks.1-1=0.5"):
        pipe = fresh("flux2")
        Deck(pipe).add(str(FIXTURES / f"{name}.safetensors"), "x").set_weights_text(text)
        scalings.append({n: dict(m.scaling) for n, m in pipe.transformer.named_modules() if hasattr(m, "scaling")})
    assert scalings[0] == scalings[1]
    layers = {n: next(iter(s.values())) for n, s in scalings[0].items()}
    assert layers["transformer_blocks.0.attn.to_q"] == 0 and layers["transformer_blocks.1.attn.to_q"] == 1
    assert layers["single_transformer_blocks.1.attn.to_qkv_mlp_proj"] == 0.5
    assert layers["single_transformer_blocks.0.attn.to_qkv_mlp_proj"] == 1
    assert layers["double_stream_modulation_img.linear"] == layers["norm_out.linear"] == 1
    with pytest.raises(Exception, match="double_blocks.5.*transformer_blocks has blocks 0-1"):
        Deck(fresh("flux2")).add(str(FIXTURES / f"{name}.safetensors"), "x").set_weights_text("x: double_blocks.5=0")


def test_trainer_files_take_strengths_blocks_switches_fuse_and_save(tmp_path):
    """Files only LoRA Deck loads go through the plain-LoRA path: strength 0 = base, block weights, enable/disable,
    two adapters, exact unfuse, and a saved stack that reloads to the same picture."""
    from helpers import assert_bit_identical
    from loradeck.core.adapters.save import save_stack

    pipe = fresh("flux2")
    base, original = render("flux2", pipe, SHORT), {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
    deck = Deck(pipe).add(str(FIXTURES / "flux2_musubi_loha.safetensors"), name="loha", model=0.0)
    assert torch.equal(render("flux2", pipe, SHORT), base)
    deck.add(str(FIXTURES / "flux2_diffsynth.safetensors"), name="diffsynth", model=STRENGTH)
    deck.set_weights("loha", model=STRENGTH, blocks={"double_blocks.0": 0.0})
    stacked = render("flux2", pipe, SHORT)
    assert (stacked - base).abs().max() > 0.02
    deck.set_weights("diffsynth", enabled=False)
    assert not torch.equal(render("flux2", pipe, SHORT), stacked)
    deck.set_weights("diffsynth", enabled=True).fuse()
    assert (render("flux2", pipe, SHORT) - stacked).abs().max() < 1e-4
    report = save_stack(deck.owner, deck.stack, str(tmp_path / "saved.safetensors"))
    deck.unfuse().unload()
    assert_bit_identical(original, {k.replace(".base_layer", ""): v for k, v in pipe.transformer.state_dict().items()
                                    if "lora_" not in k})
    again = fresh("flux2")
    Deck(again).add(report.path)
    assert (render("flux2", again, SHORT) - stacked).abs().max() < 1e-4


# Whole-parameter differences (diff_b, a 1-D diff, diff_m) load where the core has them (formats-generic's
# adapters/param_deltas.py); before that they are refused whole
PARAM_DELTAS = importlib.util.find_spec("loradeck.core.adapters.param_deltas") is not None


def _with_differences(tmp_path, extra: dict) -> tuple[str, dict]:
    from safetensors.torch import save_file

    state = load_file(str(FIXTURES / "flux2_aitoolkit_lora.safetensors"))
    gen = torch.Generator().manual_seed(0)
    added = {key: torch.randn(shape, generator=gen) * 0.01 for key, shape in extra.items()}
    path = tmp_path / "with_differences.safetensors"
    save_file({**state, **added}, str(path))
    return str(path), added


@pytest.mark.parametrize("extra,match", [
    ({"diffusion_model.double_blocks.0.img_attn.proj.diff": (32, 32),
      "diffusion_model.double_blocks.0.img_attn.proj.diff_b": (32,)}, "bias-difference module skipped|has no bias"),
    ({"diffusion_model.double_stream_modulation_img.diff_m": (192,)},
     "1 key LoRA Deck does not understand|not in this pipeline"),
])
def test_differences_of_parameters_flux2_lacks_are_refused_whole(extra, match, tmp_path):
    """FLUX.2 has no bias and no modulation table (its modulations are Linear layers): such differences are refused,
    the file never half-loaded."""
    from loradeck.core import LoraDeckError

    path, _ = _with_differences(tmp_path, extra)
    pipe = fresh("flux2")
    before = {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
    with pytest.raises(LoraDeckError, match=match):
        Deck(pipe).add(path)
    after = pipe.transformer.state_dict()
    assert set(after) == set(before) and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("key,target", [
    ("diffusion_model.double_blocks.0.img_attn.norm.query_norm.diff", "transformer_blocks.0.attn.norm_q.weight"),
    ("diffusion_model.single_blocks.1.norm.key_norm.diff", "single_transformer_blocks.1.attn.norm_k.weight"),
])
def test_a_norm_difference_under_bfl_names(key, target, tmp_path):
    """A 1-D difference of a q/k RMSNorm under BFL's names lands on diffusers' norm_q/norm_k/norm_added_* weight
    where the core applies whole-parameter differences, and is refused whole before that."""
    from loradeck.core import LoraDeckError

    path, added = _with_differences(tmp_path, {key: (16,)})
    pipe = fresh("flux2")
    before = {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
    if not PARAM_DELTAS:
        with pytest.raises(LoraDeckError, match="a diff is 2-D or 4-D"):
            Deck(pipe).add(path)
        assert all(torch.equal(before[k], v) for k, v in pipe.transformer.state_dict().items())
        return
    Deck(pipe).add(path, model=0.5).fuse()
    after = {k.replace(".base_layer", ""): v for k, v in pipe.transformer.state_dict().items()}
    assert torch.allclose(after[target] - before[target], 0.5 * added[key], atol=1e-6)


def _workflow(lora: str, prompt: str) -> dict:
    return {
        "1": {"class_type": "LoadPipeline|LoRADeck", "inputs": {"model_name": "tiny-flux2 (built-in)",
                                                               "dtype": "float32"}},
        "2": {"class_type": "LoadLoRA|LoRADeck", "inputs": {"pipeline": ["1", 0], "lora_name": lora,
                                                           "strength_model": STRENGTH, "strength_clip": 1.0}},
        "3": {"class_type": "SetAdapterWeights|LoRADeck", "inputs": {"pipeline": ["2", 0],
                                                                    "weights": "flux2_musubi_lora_fp32: "
                                                                               "double_blocks.1=0.5"}},
        "4": {"class_type": "Generate|LoRADeck", "inputs": {"pipeline": ["3", 0], "prompt": prompt,
                                                           "negative_prompt": "", "seed": SHORT.seed,
                                                           "steps": SHORT.steps, "cfg": SHORT.cfg, "width": 64,
                                                           "height": 64, "batch_size": 1}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "flux2"}},
    }


def test_a_workflow_on_the_built_in_with_a_trainer_file_a_prompt_tag_and_block_weights(tmp_path):
    """The built-in loads by its name in Load Pipeline's list; Load LoRA, Set Adapter Weights with BFL block names
    and a <lora:...> tag give the picture of the same stack made with the Python API."""
    import numpy as np
    from PIL import Image

    from loradeck.core import generate
    from loradeck.core.families import BUILTIN_NAMES
    from loradeck.runner import Workflow, run_workflow

    assert "tiny-flux2 (built-in)" in BUILTIN_NAMES and "tiny-flux2dev (built-in)" in BUILTIN_NAMES
    loras = tmp_path / "models" / "loras"
    loras.mkdir(parents=True)
    for name in ("flux2_musubi_lora_fp32", "flux2_aitoolkit_lokr"):
        (loras / f"{name}.safetensors").write_bytes((FIXTURES / f"{name}.safetensors").read_bytes())
    prompt = "a photo of a cat <lora:flux2_aitoolkit_lokr:3>"
    workflow = Workflow(_workflow("flux2_musubi_lora_fp32.safetensors", prompt), None, "test")
    context = run_workflow(workflow, str(tmp_path / "out"), str(tmp_path / "models"))
    ours = np.asarray(Image.open(context.saved[0]), dtype=np.int16)
    deck = Deck(fresh("flux2")).add(str(loras / "flux2_musubi_lora_fp32.safetensors"), model=STRENGTH)
    deck.set_weights("flux2_musubi_lora_fp32", blocks={"double_blocks.1": 0.5})
    deck.add(str(loras / "flux2_aitoolkit_lokr.safetensors"), model=3.0)
    api = generate(deck.owner, deck.stack, dataclasses.replace(SHORT, prompt="a photo of a cat"))
    assert np.abs(ours - (api[0].numpy() * 255).round().astype(np.int16)).max() <= 2
    view = {v.name: v for v in deck.active()}["flux2_musubi_lora_fp32"]  # the panel's snapshot
    assert view.blocks == "double_blocks.1=0.5" and view.state == "active"
    assert dict((c, (lo, hi)) for c, lo, hi in view.layer_strengths)["transformer"] == (STRENGTH / 2, STRENGTH)


def _transformer_inputs(pipe):
    gen = torch.Generator().manual_seed(0)
    tokens, text = 16, 12
    img_ids = torch.zeros(tokens, 4)
    img_ids[:, 1], img_ids[:, 2] = torch.arange(tokens) // 4, torch.arange(tokens) % 4
    txt_ids = torch.zeros(text, 4)
    txt_ids[:, 3] = torch.arange(text)
    return dict(hidden_states=torch.randn(2, tokens, 16, generator=gen),
                encoder_hidden_states=torch.randn(2, text, 48, generator=gen), timestep=torch.tensor([0.5, 0.5]),
                img_ids=img_ids, txt_ids=txt_ids, return_dict=False)


def _denoise(deck) -> torch.Tensor:
    with torch.inference_mode():
        return deck.pipe.transformer(**_transformer_inputs(deck.pipe))[0]


def test_compiled_transformer_takes_stack_changes_without_recompiling():
    import torch._dynamo
    from torch._dynamo.utils import counters

    files = {n: str(FIXTURES / f"{n}.safetensors") for n in ("flux2_musubi_lora_fp32", "flux2_aitoolkit_lora",
                                                               "flux2_diffsynth")}
    ops = (("reweight", lambda d: d.set_weights("a", model=0.3)),
           ("add", lambda d: d.add(files["flux2_aitoolkit_lora"], name="b")),
           ("block weights", lambda d: d.set_weights("b", blocks={"double_blocks.0": 0.0, "single_blocks.1": 2.0})),
           ("disable", lambda d: d.set_weights("a", enabled=False)),
           ("switch", lambda d: d.set_adapters(["a"], [0.8])),
           ("fuse one", lambda d: d.fuse(names=["a"])),
           ("unfuse", lambda d: d.unfuse()),
           ("remove and add another", lambda d: d.remove("b").add(files["flux2_diffsynth"], name="c")))
    torch._dynamo.reset()
    try:
        compiled = Deck(fresh("flux2")).add(files["flux2_musubi_lora_fp32"], name="a")
        compiled.compile(backend="eager", max_rank=8, max_adapters=2)  # dynamo as inductor; fast
        eager = Deck(fresh("flux2")).add(files["flux2_musubi_lora_fp32"], name="a")
        compiled.owner.apply(compiled.stack)
        assert (_denoise(compiled) - _denoise(eager)).abs().max() <= 1e-5
        frames = int(counters["frames"]["total"])
        assert frames >= 1
        for what, change in ops:
            change(compiled)
            change(eager)
            compiled.owner.apply(compiled.stack)
            assert (_denoise(compiled) - _denoise(eager)).abs().max() <= 1e-4, what
            assert int(counters["frames"]["total"]) == frames, f"{what} recompiled"
    finally:
        torch._dynamo.reset()


def test_a_text_encoder_part_loads_into_qwen3_with_its_own_strength(tmp_path):
    """diffusers' FLUX.2 loader takes the transformer only; LoRA Deck also applies a file's text-encoder part (its
    Qwen3), at strength_clip: the same picture as the weights patched by hand."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(7)
    encoder = fresh("flux2").text_encoder
    part, patched = {}, {}
    for name, module in encoder.named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(("self_attn.q_proj", "mlp.down_proj")):
            down, up = torch.randn(4, module.in_features, generator=gen), torch.randn(module.out_features, 4,
                                                                                        generator=gen) * 0.5
            part[f"text_encoder.{name}.lora_A.weight"], part[f"text_encoder.{name}.lora_B.weight"] = down, up
            part[f"text_encoder.{name}.alpha"] = torch.tensor(2.0)
            patched[name] = up @ down * (2.0 / 4)
    transformer = load_file(str(FIXTURES / "flux2_diffusers_peft.safetensors"))
    path = tmp_path / "with_text_encoder.safetensors"
    save_file({**transformer, **part}, str(path), metadata={"lora_adapter_metadata": json.dumps(
        {"transformer.r": 4, "transformer.lora_alpha": 8, "transformer.target_modules": ["to_q"]})})
    ours = fresh("flux2")
    deck = Deck(ours).add(str(path), model=2.0, clip=0.5)
    report = deck.owner.prepare(str(path)).report
    assert dict((c, (m, t)) for c, m, t in report.components) == {"transformer": (12, 12), "text_encoder": (56, 56)}
    reference = _diffusers("flux2_diffusers_peft", 2.0)
    with torch.no_grad():
        for name, delta in patched.items():
            reference.text_encoder.get_submodule(name).weight += 0.5 * delta
    image = render("flux2", ours, SHORT)
    assert (image - render("flux2", reference, SHORT)).abs().max() <= IMAGE_TOLERANCE
    without = render("flux2", Deck(fresh("flux2")).add(str(path), model=2.0, clip=0.0).pipe, SHORT)
    assert (image - without).abs().max() > 1e-3  # the text-encoder part matters


def test_pipeline_classes_it_does_not_run_and_single_files_are_named():
    """Flux2KleinKVPipeline (no guidance argument, cached reference K/V) is not a family class: refused by name.
    FLUX.2 single files are FLUX.2 klein 4B / 9B or dev by their shapes (any other size: the nearest FLUX.2 row, its
    config read off the weights), never the FLUX.1 Fill / Depth their 128-wide img_in would suggest."""
    import diffusers

    from loradeck.core import PipelineLoadError
    from loradeck.core.models.arch import Header
    from loradeck.core.models.single_file import identify

    base = fresh("flux2")
    kv = diffusers.Flux2KleinKVPipeline(**{k: v for k, v in base.components.items() if k != "is_distilled"})
    with pytest.raises(PipelineLoadError, match=r"'Flux2KleinKVPipeline' pipelines are not supported.*FLUX.2 \[kl"):
        Deck(kv)
    for width, guidance, row in ((3072, False, "klein-4b"), (4096, False, "klein-9b"), (6144, True, "dev"),
                                 (2048, False, "klein-4b"), (32, False, "tiny-flux2")):
        shapes = {"img_in.weight": (width, 128), "single_stream_modulation.lin.weight": (3 * width, width),
                  "double_stream_modulation_img.lin.weight": (6 * width, width),
                  "double_blocks.0.img_attn.qkv.weight": (3 * width, width)}
        if guidance:
            shapes["guidance_in.in_layer.weight"] = (width, 256)
        header = Header(f"flux-2-{width}.safetensors", shapes, {k: "BF16" for k in shapes}, {}, lambda key: None)
        assert identify(header).key == row
    fill = {"img_in.weight": (3072, 384), "vector_in.in_layer.weight": (3072, 768),
            "double_blocks.0.img_attn.qkv.weight": (9216, 3072)}
    with pytest.raises(PipelineLoadError, match="looks like a FLUX.1 Fill or Depth model"):
        identify(Header("flux1-fill-dev.safetensors", fill, {k: "BF16" for k in fill}, {}, lambda key: None))


FLUX1 = FIXTURES.parent  # FLUX.1's trainer files


@pytest.mark.parametrize("path,family,base", [
    (FLUX1 / "flux_kohya_default.safetensors", "flux2", "Flux"),
    (FLUX1 / "flux_xlabs.safetensors", "flux2", "Flux"),
    (FLUX1 / "flux_lycoris_lokr_simpletuner.safetensors", "flux2dev", "Flux"),
    (FIXTURES / "flux2_musubi_lora.safetensors", "flux", "FLUX.2 [klein]"),
    (FIXTURES / "flux2_aitoolkit_lokr.safetensors", "flux", "FLUX.2 [klein]"),
    (FIXTURES / "flux2_diffsynth.safetensors", "flux", "FLUX.2"),
    (FIXTURES / "flux2_fal_peft.safetensors", "sd3", "FLUX.2"),
    (FIXTURES / "flux2_musubi_lokr.safetensors", "flux2dev", "FLUX.2 [klein]"),
])
def test_trainer_files_across_flux_generations_are_refused_with_their_base(path, family, base):
    """FLUX.1 and FLUX.2 files share the BFL block names: each is refused on the other (and FLUX.2 klein's on dev),
    naming the base it was made for, with the pipeline bit-identical."""
    from helpers import assert_bit_identical
    from loradeck.core import IncompatibleLoraError

    pipe = fresh(family)
    before = {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
    with pytest.raises(IncompatibleLoraError) as caught:
        Deck(pipe).add(str(path))
    assert base in str(caught.value), str(caught.value)
    assert_bit_identical(before, pipe.transformer.state_dict())


def test_a_dev_folder_whose_processor_needs_torchvision_says_so(tmp_path):
    """FLUX.2 [dev]'s tokenizer component is a PixtralProcessor, which transformers 5 makes only with torchvision
    installed (the built-in uses a plain tokenizer with Mistral's chat template: prompts encode the same way)."""
    import importlib.util

    from loradeck.core import PipelineLoadError
    from loradeck.core.models.pipelines import load_folder

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed: the processor loads")
    folder = tmp_path / "flux2-dev"
    fresh("flux2dev").save_pretrained(str(folder))
    index = json.loads((folder / "model_index.json").read_text())
    index["tokenizer"] = ["transformers", "PixtralProcessor"]
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(PipelineLoadError, match=r"tokenizer \(PixtralProcessor\) needs torchvision, which is not "
                                                r"installed.*install the torchvision build that matches your torch"):
        load_folder(str(folder), torch.float32, torch.device("cpu"))
