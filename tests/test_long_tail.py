"""The long tail (issue 26): every other image family diffusers 0.42.1 has a LoRA loader for and whose pipeline
builds offline at tiny size, one row each, checked against diffusers' own loader.

Per row, two LoRA files saved by diffusers' own ``save_lora_weights`` on the family's tiny model (peft adapters on
the row's target modules, made by ``lora_fixtures.save_family_lora``):

* load with separate strengths: LoRA Deck's stack equals ``load_lora_weights`` + ``set_adapters`` (images
  <= 2/255 in fp32; every LoRA layer's weight change within float rounding);
* fuse equals diffusers' ``fuse_lora`` (fused weights and images); unfuse gives the original weights bit for bit;
* cross-family refusal: a file of the row on SD 1.x, and an SD 1.x file on the row's model, is refused naming the
  base it was made for, and changes nothing.

Each family's loader in diffusers takes the transformer only, except Bria FIBO's (FLUX.1's: the transformer and
the text encoder), whose files carry both, weighted separately (model and clip strengths). Families diffusers has
a loader for that are not rows here, and why: the long-tail branch's report lists them.
"""

from __future__ import annotations

import pytest
import torch

from family_fixtures import DENOISER_TARGETS, PARAMS, SAVED_TEXT_ENCODERS, fresh, render
from helpers import assert_bit_identical
from lora_fixtures import save_family_lora
from loradeck.core import Deck, IncompatibleLoraError
from loradeck.core.families import FAMILIES

TOLERANCE = 2 / 255  # images, fp32
WEIGHT_TOLERANCE = 1e-5  # relative, per layer: the same sums in another order
STRENGTHS = {"first": (0.7, 0.4), "second": (-0.5, 1.3)}  # model, clip
# key: (diffusers pipeline class, components in the pipeline, modules the files adapt)
TABLE = {
    "auraflow": ("AuraFlowPipeline", "transformer; UMT5",
                 "joint + single blocks: attention, add_q_proj, out_projection"),
    "lumina2": ("Lumina2Pipeline", "transformer; Gemma 2", "refiners + layers: attention, SwiGLU linear_1/2"),
    "sana": ("SanaPipeline", "transformer; Gemma 2", "self/cross attention, Mix-FFN 1x1 convs"),
    "sanasprint": ("SanaSprintPipeline", "transformer; Gemma 2", "as Sana: self/cross attention, Mix-FFN 1x1 convs"),
    "cogview4": ("CogView4Pipeline", "transformer; GLM-4", "attention, feed-forward, text projection"),
    "hidream": ("HiDreamImagePipeline", "transformer; CLIP-L, CLIP-G, T5, Llama 3",
                "double/single stream: image and text attention, shared expert"),
    "kandinsky5": ("Kandinsky5T2IPipeline", "transformer; Qwen2.5-VL, CLIP-L",
                   "text and visual blocks: self/cross attention, feed-forward"),
    "ideogram4": ("Ideogram4Pipeline", "transformer (not the unconditional one); Qwen3-VL",
                  "attention, SwiGLU w1, adaLN modulation"),
    "ernieimage": ("ErnieImagePipeline", "transformer; Ministral 3", "attention, MLP linear_fc2"),
    "briafibo": ("BriaFiboPipeline", "transformer, text encoder (SmolLM3)",
                 "joint + single blocks: attention, add_q_proj, caption projection; SmolLM3 q/k/v"),
}
KEYS = list(TABLE)
NAMED_AS = {"sanasprint": "Sana"}  # a Sana Sprint file has Sana's modules: it names Sana (and loads on it)


def test_the_table_is_the_registered_long_tail():
    for key, (pipeline, _, _) in TABLE.items():
        family = FAMILIES[key]
        assert family.pipeline_classes == (pipeline,) and family.denoiser == "transformer"
        assert not family.inpaint and key in DENOISER_TARGETS
        assert family.img2img == ("SanaSprintImg2ImgPipeline" if key == "sanasprint" else "")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("long_tail")
    made = {key: {name: save_family_lora(key, str(root / f"{key}_{name}.safetensors"), seed=i + 1)
                  for i, name in enumerate(STRENGTHS)} for key in KEYS}
    made["sd1"] = {"first": save_family_lora("sd1", str(root / "sd1.safetensors"), seed=1)}
    return made


def _components(key: str) -> tuple[str, ...]:
    """The components diffusers' loader of the family takes (and the files carry)."""
    return (FAMILIES[key].denoiser, *SAVED_TEXT_ENCODERS[key])


def _base_weights(pipe, key: str) -> dict[str, torch.Tensor]:
    return {f"{c}.{n.replace('.base_layer', '')}": p.detach().clone() for c in _components(key)
            for n, p in getattr(pipe, c).named_parameters() if "lora_" not in n}


def _lora_changes(pipe, key: str) -> dict[str, torch.Tensor]:
    """Per LoRA layer: the weight change its active adapters add (peft's own delta, scaled by each strength)."""
    from peft.tuners.lora import LoraLayer

    out = {}
    for component in _components(key):
        for name, layer in getattr(pipe, component).named_modules():
            if isinstance(layer, LoraLayer):
                active = [a for a in layer.active_adapters if a in layer.lora_A]
                if active:
                    out[f"{component}.{name}"] = sum(layer.get_delta_weight(a) for a in active)
    return out


def _diffusers(key: str, files: dict):
    """The tiny pipeline with both files loaded and weighted by diffusers' own methods."""
    pipe, (denoiser, *encoders) = fresh(key), _components(key)
    for name in STRENGTHS:
        pipe.load_lora_weights(files[name], adapter_name=name)
    pipe.set_adapters(list(STRENGTHS), [{denoiser: model, **dict.fromkeys(encoders, clip)}
                                        for model, clip in STRENGTHS.values()])
    return pipe


def _close(ours: dict, theirs: dict) -> float:
    """The worst relative difference over the layers (both sides must have the same ones)."""
    assert ours.keys() == theirs.keys() and ours
    return max(float((ours[k] - theirs[k]).abs().max() / theirs[k].abs().max().clamp_min(1e-12)) for k in ours)


@pytest.mark.parametrize("key", KEYS)
def test_load_strengths_fuse_and_unfuse_equal_diffusers(key, files):
    ours = fresh(key)
    original, base = _base_weights(ours, key), render(key, ours)
    deck = Deck(ours)
    for name, (model, clip) in STRENGTHS.items():
        deck.add(files[key][name], name, model=model, clip=clip)
        report = deck.owner.prepare(files[key][name]).report
        assert {c for c, _, _ in report.components} == set(_components(key)) and not report.partial
    theirs = _diffusers(key, files[key])

    # load with separate strengths: the pictures and every layer's weight change
    loaded = render(key, ours)
    assert (loaded - base).abs().max() > 1e-2  # the stack changes the picture
    assert (loaded - render(key, theirs)).abs().max() <= TOLERANCE
    assert _close(_lora_changes(ours, key), _lora_changes(theirs, key)) < WEIGHT_TOLERANCE

    # fuse: the fused weights and pictures equal diffusers' fuse_lora
    deck.fuse()
    theirs.fuse_lora(components=list(_components(key)), adapter_names=list(STRENGTHS))
    fused, their_fused = _base_weights(ours, key), _base_weights(theirs, key)
    changed = {k: fused[k] - original[k] for k in original if not torch.equal(fused[k], original[k])}
    assert changed and _close(changed, {k: their_fused[k] - original[k] for k in changed}) < WEIGHT_TOLERANCE
    assert all(torch.equal(their_fused[k], original[k]) for k in original if k not in changed)
    assert (render(key, ours) - render(key, theirs)).abs().max() <= TOLERANCE

    # unfuse: the original weights, bit for bit
    deck.unfuse()
    deck.unload()
    assert_bit_identical(original, _base_weights(ours, key))


@pytest.mark.parametrize("key", KEYS)
def test_files_of_another_family_are_refused_both_ways_and_change_nothing(key, files):
    title = NAMED_AS.get(key, FAMILIES[key].title)
    for pipe, path, made_for in ((fresh("sd1"), files[key]["first"], title),
                                 (fresh(key), files["sd1"]["first"], "SD 1.x")):
        before = {(c, k): v.clone() for c, m in pipe.components.items() if isinstance(m, torch.nn.Module)
                  for k, v in m.state_dict().items()}
        with pytest.raises(IncompatibleLoraError, match=made_for):
            Deck(pipe).add(path)
        assert_bit_identical(before, {(c, k): v for c, m in pipe.components.items() if isinstance(m, torch.nn.Module)
                                      for k, v in m.state_dict().items()})


def test_ideogram4_text_length_leaves_the_picture_as_at_diffusers_default():
    """The call's max_sequence_length (the smallest multiple of 256 that holds the prompt) gives the picture of
    diffusers' default 2048: the text is left-padded and the padding masked out."""
    from loradeck.core.families.ideogram4.generate import sequence_length

    pipe = fresh("ideogram4")
    kwargs = FAMILIES["ideogram4"].call(PARAMS, lambda step, total: None)
    assert kwargs["max_sequence_length"] == sequence_length(PARAMS.prompt) == 256
    assert sequence_length("x" * 5000) == 2048
    with torch.inference_mode():
        at_default = pipe(**{**kwargs, "max_sequence_length": 2048})[0]
    assert (render("ideogram4", pipe) - torch.from_numpy(at_default)).abs().max() < 1e-5


def test_a_variant_pipeline_keeps_the_family_pipeline_attributes():
    """HiDream renders at the area of default_sample_size (an __init__ attribute the tiny built-in sets to 32): a
    run with another scheduler (a from_pipe variant) keeps it, so its picture has the size asked."""
    from loradeck.core import GenerateParams, StackSpec, generate

    owner = Deck(fresh("hidream")).owner
    params = GenerateParams(**{**vars(PARAMS), "scheduler": "UniPC"})
    assert generate(owner, StackSpec(), params).shape == (1, 64, 64, 3)
    assert owner.pipe.default_sample_size == 32


def test_sana_sprint_runs_its_two_step_schedule_at_two_steps_only():
    """Generate at 2 steps is diffusers' default call (its sCM intermediate timestep 1.3); at other counts, which
    diffusers refuses with that timestep, the scheduler's own spacing (intermediate_timesteps=None)."""
    from loradeck.core import GenerateParams, StackSpec, generate

    pipe = fresh("sanasprint")
    owner = Deck(pipe).owner
    for steps, extra in ((2, {}), (3, {"intermediate_timesteps": None})):
        params = GenerateParams(**{**vars(PARAMS), "steps": steps})
        with torch.inference_mode():
            theirs = pipe(prompt=params.prompt, num_inference_steps=steps, guidance_scale=params.cfg, height=64,
                          width=64, generator=torch.Generator("cpu").manual_seed(params.seed), output_type="np",
                          use_resolution_binning=False, **extra).images
        assert torch.equal(generate(owner, StackSpec(), params), torch.from_numpy(theirs.copy())), steps
    # why other counts cannot take diffusers' default
    with pytest.raises(ValueError, match="Intermediate timesteps for SCM is not supported"):
        pipe(prompt=PARAMS.prompt, num_inference_steps=3, height=64, width=64, use_resolution_binning=False)
