"""Wan 2.1 / 2.2: every trainer's LoRA layout, both experts, video Generate, and every feature, checked against
diffusers (frames <= 2/255 in float32) and against the trainers' own merges (relative error <= 1e-3).

The trainer files are tests/fixtures/trainers/wan/ (README there): each ``.expected`` is the trainer's own merge
in its own parameter names; original Wan names are mapped to diffusers' by diffusers' single-file converter
(``convert_wan_transformer_to_diffusers``), not by LoRA Deck's table.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from PIL import Image
from safetensors.torch import load_file, save_file

from helpers import assert_bit_identical
from loradeck.core import Deck, GenerateParams, IncompatibleLoraError, SpecError, StackSpec, generate, run_grid
from loradeck.core.adapters.save import save_stack
from loradeck.core.families import FAMILIES
from loradeck.core.families.wan import tiny
from loradeck.core.families.wan.ftfy_fallback import ensure_ftfy
from loradeck.core.generation.generate import output_images

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "trainers" / "wan"
FAMILY = FAMILIES["wan"]
TOLERANCE = 2 / 255  # frames, float32
MERGE_TOLERANCE = 1e-3  # relative, per parameter, against the trainer's own merge
PARAMS = GenerateParams("a cat", "a photo", seed=3, steps=2, cfg=5.0, width=16, height=16, num_frames=5)
PICTURE = Image.fromarray((np.random.default_rng(7).random((16, 16, 3)) * 255).astype(np.uint8))
IMAGE = torch.from_numpy(np.asarray(PICTURE, dtype=np.float32) / 255)[None]  # the same picture as an IMAGE
EXPERTS = ("transformer", "transformer_2")
HIGH, LOW = "transformer", "transformer_2"


@functools.cache
def _base(variant: str):
    pipe = tiny.build(0, variant)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def fresh(variant: str = "t2v22"):
    return copy.deepcopy(_base(variant))


def fixture(stem: str) -> str:
    return str(FIXTURES / f"{stem}.safetensors")


def call(params: GenerateParams = PARAMS, image=None) -> dict:
    kwargs = FAMILY.call(params, lambda step, total: None)
    return {**kwargs, "image": image} if image is not None else kwargs


def frames(pipe, params: GenerateParams = PARAMS, image=None, **extra) -> torch.Tensor:
    """diffusers' own call (LoRA Deck's generate call's arguments), its frames as images [F, H, W, 3]."""
    with torch.inference_mode():
        return torch.from_numpy(output_images(pipe(**{**call(params, image), **extra})).copy())


def ours(deck: Deck, params: GenerateParams = PARAMS, image=None, stack: StackSpec | None = None) -> torch.Tensor:
    return generate(deck.owner, deck.stack if stack is None else stack, params, image=image)


@functools.cache
def base_frames(variant: str = "t2v22", with_image: bool = False) -> torch.Tensor:
    """The frames of the tiny model without a LoRA (diffusers' call), rendered once."""
    return frames(fresh(variant), image=PICTURE if with_image else None)


# -- the trainers' own merges ---------------------------------------------------------------------------------

# (fixture, tiny variant, where it goes: an expert, or "both" for one file in both experts)
MERGE_CASES = [
    ("wan21_t2v_diffusers", "t2v", HIGH), ("wan21_i2v_diffusers_bf16", "i2v", HIGH),
    ("wan22_t2v_diffusers_high", "t2v22", HIGH), ("wan22_t2v_diffusers_low", "t2v22", LOW),
    ("wan21_t2v_musubi", "t2v", HIGH), ("wan21_i2v_musubi_bf16", "i2v", HIGH),
    ("wan21_t2v_musubi_attn_only", "t2v", HIGH), ("wan21_t2v_musubi_lokr", "t2v", HIGH),
    ("wan21_t2v_musubi_loha", "t2v", HIGH), ("wan21_t2v_musubi", "t2v22", "both"),
    ("wan21_t2v_aitoolkit", "t2v", HIGH), ("wan21_t2v_aitoolkit_lokr", "t2v", HIGH),
    ("wan22_t2v_aitoolkit_high_noise", "t2v22", HIGH), ("wan22_t2v_aitoolkit_low_noise", "t2v22", LOW),
    ("wan21_t2v_lycoris_lokr", "t2v", HIGH), ("wan21_t2v_diffsynth", "t2v", HIGH),
    ("wan22_t2v_lightning_high", "t2v22", HIGH), ("wan22_t2v_lightning_low", "t2v22", LOW),
    ("wan21_i2v_lightx2v", "i2v", HIGH), ("wan22_t2v_lightx2v_high", "t2v22", HIGH),
    ("wan22_t2v_lightx2v_low", "t2v22", LOW),
]


def expected_deltas(stem: str) -> dict[str, torch.Tensor]:
    """The trainer's merge under diffusers' parameter names (original names through diffusers' own converter)."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
    from safetensors import safe_open

    deltas = load_file(fixture(f"{stem}.expected"))
    with safe_open(fixture(f"{stem}.expected"), "pt") as f:
        original = (f.metadata() or {}).get("key_naming", "").startswith("original")
    return convert_wan_transformer_to_diffusers(dict(deltas)) if original else deltas


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every base parameter by its diffusers name (peft's wrapping and adapters left out), copied."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer):
            continue
        owner = module
        for attr, param in module.named_parameters(recurse=False):
            if "lora_" in name or "lora_" in attr:
                continue
            out[f"{name}.{attr}".removeprefix(".").replace(".base_layer", "")] = param.detach().float().clone()
        del owner
    return out


def worst_merge_error(stem: str, variant: str, into: str) -> tuple[float, str]:
    pipe = fresh(variant)
    experts = [c for c in EXPERTS if getattr(pipe, c, None) is not None]
    before = {c: parameters(getattr(pipe, c)) for c in experts}
    components = [] if into == "both" or variant in ("t2v", "i2v") else [into]
    Deck(pipe).add(fixture(stem), components=components).fuse()
    targets = experts if into == "both" else [into]
    worst = (0.0, "")
    for component in experts:
        after = parameters(getattr(pipe, component))
        assert after.keys() == before[component].keys()
        wanted = expected_deltas(stem) if component in targets else {}
        assert set(wanted) <= set(after), sorted(set(wanted) - set(after))[:3]
        for name, now in after.items():
            change = now - before[component][name]
            if name not in wanted:
                assert torch.equal(now, before[component][name]), f"{component}.{name} changed"
                continue
            want = wanted[name].float().reshape(change.shape)
            error = float((change - want).norm() / want.norm().clamp_min(1e-12))
            worst = max(worst, (error, f"{component}.{name}"))
    return worst


@pytest.mark.parametrize("stem,variant,into", MERGE_CASES, ids=[f"{s}-{i}" for s, _, i in MERGE_CASES])
def test_the_fused_change_equals_the_trainers_own_merge(stem, variant, into):
    """Every parameter the trainer's merge changes (weights, biases, norms, modulation tables) changes by the same
    amount, in the expert(s) it was loaded into; every other parameter is bit-identical."""
    error, where = worst_merge_error(stem, variant, into)
    assert error <= MERGE_TOLERANCE, (error, where)


# -- frames against diffusers -----------------------------------------------------------------------------------

SINGLE_LAYOUTS = [("wan21_t2v_diffusers", "t2v"), ("wan21_i2v_diffusers_bf16", "i2v"), ("wan21_t2v_musubi", "t2v"),
                  ("wan21_i2v_musubi_bf16", "i2v"), ("wan21_t2v_aitoolkit", "t2v")]
PAIRS = ["diffusers", "aitoolkit", "lightning"]
PAIR_FILES = {"diffusers": ("wan22_t2v_diffusers_high", "wan22_t2v_diffusers_low"),
              "aitoolkit": ("wan22_t2v_aitoolkit_high_noise", "wan22_t2v_aitoolkit_low_noise"),
              "lightning": ("wan22_t2v_lightning_high", "wan22_t2v_lightning_low"),
              "lightx2v": ("wan22_t2v_lightx2v_high", "wan22_t2v_lightx2v_low")}
STRONG = 3.0  # the tiny fixtures' factors are small: a strength that makes their change plain in the frames


@pytest.mark.parametrize("stem,variant", SINGLE_LAYOUTS)
def test_a_layout_diffusers_loads_gives_its_frames(stem, variant):
    image = IMAGE if variant == "i2v" else None
    deck = Deck(fresh(variant)).add(fixture(stem), model=STRONG)
    reference = fresh(variant)
    reference.load_lora_weights(fixture(stem), adapter_name="x")
    reference.set_adapters("x", STRONG)
    mine, theirs = ours(deck, image=image), frames(reference, image=PICTURE if image is not None else None)
    assert mine.shape == (5, 16, 16, 3)
    assert (mine - theirs).abs().max() <= TOLERANCE
    assert (theirs - base_frames(variant, image is not None)).abs().max() > TOLERANCE


def diffusers_pair(high: str, low: str, weights) -> object:
    """diffusers' way to a pair with a strength per expert: one adapter name in both experts, set_adapters with
    per-component weights."""
    pipe = fresh("t2v22")
    pipe.load_lora_weights(fixture(high), adapter_name="x")
    pipe.load_lora_weights(fixture(low), adapter_name="x", load_into_transformer_2=True)
    pipe.set_adapters("x", weights)
    return pipe


@pytest.mark.parametrize("layout", PAIRS)
def test_a_high_low_pair_equals_diffusers_set_adapters_per_expert(layout):
    high, low = PAIR_FILES[layout]
    deck = Deck(fresh()).add_pair(fixture(high), fixture(low), "pair", high_noise=STRONG, low_noise=-2.0)
    reference = diffusers_pair(high, low, {HIGH: STRONG, LOW: -2.0})
    mine, theirs = ours(deck), frames(reference)
    assert (mine - theirs).abs().max() <= TOLERANCE
    assert (theirs - base_frames()).abs().max() > TOLERANCE
    (view,) = deck.active()
    assert view.weights == ((HIGH, STRONG), (LOW, -2.0)) and view.part_files == ((LOW, fixture(low)),)
    assert deck.owner.snapshot.labels == ((HIGH, "high noise"), (LOW, "low noise"))


def test_one_file_in_both_experts_takes_strengths_per_expert_as_diffusers_does():
    """A Wan 2.1 / musubi LoRA on Wan 2.2 goes into both experts: strength_model covers both, transformer= /
    transformer_2= set each, equal to diffusers' set_adapters with per-component weights."""
    stem = "wan21_t2v_musubi"
    reference = fresh()
    reference.load_lora_weights(fixture(stem), adapter_name="m")
    reference.load_lora_weights(fixture(stem), adapter_name="m", load_into_transformer_2=True)
    deck = Deck(fresh()).add(fixture(stem), "m", model=STRONG)
    reference.set_adapters("m", STRONG)
    assert (ours(deck) - frames(reference)).abs().max() <= TOLERANCE
    deck.set_weights_text(f"m: transformer={STRONG}, transformer_2=-1.5")
    reference.set_adapters("m", {HIGH: STRONG, LOW: -1.5})
    assert (ours(deck) - frames(reference)).abs().max() <= TOLERANCE
    assert [v.weights for v in deck.active()] == [((HIGH, STRONG), (LOW, -1.5))]


def test_two_adapters_one_per_expert_equal_diffusers_hi_lo():
    """The Python API's other spelling of a pair (diffusers' own): two adapters, each loaded into one expert."""
    high, low = PAIR_FILES["lightning"]
    deck = Deck(fresh()).add(fixture(high), "hi", components=[HIGH]).add(fixture(low), "lo", components=[LOW])
    deck.set_adapters(["hi", "lo"], [STRONG, 2.0])
    reference = fresh()
    reference.load_lora_weights(fixture(high), adapter_name="hi")
    reference.load_lora_weights(fixture(low), adapter_name="lo", load_into_transformer_2=True)
    reference.set_adapters(["hi", "lo"], [STRONG, 2.0])
    assert (ours(deck) - frames(reference)).abs().max() <= TOLERANCE
    assert [dict(v.weights) for v in deck.active()] == [{HIGH: STRONG}, {LOW: 2.0}]


# -- what diffusers leaves out: the trainer's merge is the reference ------------------------------------------

def patched(variant: str, deltas_per_expert: dict[str, str], strength: float = 1.0):
    """A fresh pipeline whose experts were patched with the trainers' own merges (no LoRA Deck involved)."""
    pipe = fresh(variant)
    with torch.no_grad():
        for component, stem in deltas_per_expert.items():
            model = getattr(pipe, component)
            for name, delta in expected_deltas(stem).items():
                param = model.get_parameter(name)
                param += strength * delta.float().reshape(param.shape).to(param.dtype)
    return pipe


def test_lightx2v_files_apply_all_of_it_biases_norms_and_modulation():
    """LightX2V's distillation LoRAs carry biases (diff_b), norm and patch-embedding weights (diff) and the
    modulation tables (diff_m): diffusers drops the norms and modulation; LoRA Deck applies every one, as
    LightX2V's own loader merges them."""
    high, low = PAIR_FILES["lightx2v"]
    deck = Deck(fresh()).add_pair(fixture(high), fixture(low), "lightx2v")
    assert (ours(deck) - frames(patched("t2v22", {HIGH: high, LOW: low}))).abs().max() <= TOLERANCE
    i2v = Deck(fresh("i2v")).add(fixture("wan21_i2v_lightx2v"))
    reference = patched("i2v", {HIGH: "wan21_i2v_lightx2v"})
    assert (ours(i2v, image=IMAGE) - frames(reference, image=PICTURE)).abs().max() <= TOLERANCE
    report = i2v.owner.prepare(fixture("wan21_i2v_lightx2v")).report
    assert (report.matched, report.total) == (87, 87) and not report.partial


def test_a_wan21_i2v_file_on_wan22_i2v_is_refused_whole():
    """Wan 2.2 I2V has no image cross-attention (k_img / v_img): the file applies only in part, so it is refused
    and nothing is loaded; with allow_partial the rest loads and the report says what was left out."""
    pipe = fresh("i2v22")
    before = parameters(pipe.transformer)
    with pytest.raises(IncompatibleLoraError, match="would apply only in part.*k_img"):
        Deck(pipe).add(fixture("wan21_i2v_musubi_bf16"))
    assert_bit_identical(before, parameters(pipe.transformer))
    report = Deck(pipe).add(fixture("wan21_i2v_musubi_bf16"), allow_partial=True).owner.prepare(
        fixture("wan21_i2v_musubi_bf16")).report
    assert report.partial and "k_img" in report.text()


# -- the pair node and the panel --------------------------------------------------------------------------------

@pytest.fixture
def wan_models(tmp_path, use_models):
    loras = tmp_path / "loras"
    loras.mkdir()
    for stem in (*PAIR_FILES["lightning"], "wan21_t2v_musubi"):
        (loras / f"{stem}.safetensors").write_bytes(Path(fixture(stem)).read_bytes())
    use_models(str(tmp_path))
    return tmp_path


def test_load_lora_pair_node_adds_one_adapter_in_two_experts(wan_models):
    from loradeck.core.api import PipelineHandle
    from loradeck.nodes import NODE_CLASS_MAPPINGS, records

    node = NODE_CLASS_MAPPINGS["LoadLoRAPair|LoRADeck"]
    high, low = (f"{s}.safetensors" for s in PAIR_FILES["lightning"])
    assert node.VALIDATE_INPUTS(high, low) is True
    assert "lora_name_low" in node.VALIDATE_INPUTS(high, "nope.safetensors")
    handle = PipelineHandle(Deck(fresh()).owner)
    out = node().load(handle, high, low, 0.9, 0.4)
    pipeline, info, _words = out["result"]
    (adapter,) = pipeline.stack.adapters
    assert adapter.name == "wan22_t2v_lightning" and dict(adapter.weights)[LOW] == 0.4
    assert [e["name"] for e in out["ui"]["loradeck_models"]] == [high, low]
    assert "40/40" not in info and "(transformer 20/20)" in info and "(transformer_2 20/20)" in info  # one expert each
    reference = diffusers_pair(*PAIR_FILES["lightning"], {HIGH: 0.9, LOW: 0.4})
    assert (generate(pipeline.owner, pipeline.stack, PARAMS) - frames(reference)).abs().max() <= TOLERANCE
    snapshot = pipeline.owner.snapshot.to_dict()
    assert snapshot["labels"] == [[HIGH, "high noise"], [LOW, "low noise"]] or \
        snapshot["labels"] == ((HIGH, "high noise"), (LOW, "low noise"))
    (view,) = snapshot["adapters"]
    assert view["part_files"][0][0] == LOW and view["part_files"][0][1].endswith(low)
    json.dumps(snapshot)  # what the panel route sends
    prompt = {"1": {"class_type": "LoadLoRAPair|LoRADeck", "inputs": {"lora_name_high": f"x/{high}",
                                                                       "lora_name_low": low}}}
    assert records.NAME_INPUT.match("lora_name_high") and records.NAME_INPUT.match("lora_name_low")
    assert "LoadLoRAPair|LoRADeck" in records.LOADERS and isinstance(prompt, dict)


def test_a_pair_needs_two_experts():
    high, low = (fixture(s) for s in PAIR_FILES["lightning"])
    with pytest.raises(SpecError, match="one denoiser.*two experts.*Load LoRA instead"):
        Deck(fresh("t2v")).add_pair(high, low)
    with pytest.raises(SpecError, match="Stable Diffusion 1.x/2.x pipelines have one denoiser"):
        Deck(FAMILIES["sd1"].tiny()).add_pair(high, low)


# -- every feature on the two experts ---------------------------------------------------------------------------

def without_blocks(stem: str, tmp_path, block: int) -> str:
    state = load_file(fixture(stem))
    kept = {k: v for k, v in state.items() if f"blocks.{block}." not in k}
    assert len(kept) < len(state)
    path = str(tmp_path / f"{stem}-without-{block}.safetensors")
    save_file(kept, path)
    return path


def test_block_weights_name_blocks_in_both_experts(tmp_path):
    high, low = PAIR_FILES["lightning"]
    ranged = Deck(fresh()).add_pair(fixture(high), fixture(low), "p", STRONG, STRONG)
    ranged.set_weights_text("p: blocks.0-0=0")
    removed = Deck(fresh()).add_pair(without_blocks(high, tmp_path, 0), without_blocks(low, tmp_path, 0), "p",
                                     STRONG, STRONG)
    assert (ours(ranged) - ours(removed)).abs().max() <= 1e-5
    layers = {c: {n: m for n, m in getattr(ranged.pipe, c).named_modules() if hasattr(m, "scaling")} for c in EXPERTS}
    for component in EXPERTS:
        (key,) = {k for m in layers[component].values() for k in m.scaling}
        assert layers[component]["blocks.0.attn1.to_q"].scaling[key] == 0
        assert layers[component]["blocks.1.attn1.to_q"].scaling[key] != 0
    with pytest.raises(SpecError, match="blocks has blocks 0-1"):
        ranged.set_weights_text("p: blocks.2=0")


def test_switches_several_adapters_fuse_unfuse_and_save(tmp_path):
    """A lightx2v pair (biases, norms, modulation) and a musubi file in both experts: switching one off equals it
    absent; fused frames equal unfused; unfuse and unload restore both experts bit for bit; the saved stack
    (two experts, diff_b / diff / diff_m parts) reloads to the same frames."""
    pipe = fresh()
    original = {c: parameters(getattr(pipe, c)) for c in EXPERTS}
    high, low = PAIR_FILES["lightx2v"]
    deck = Deck(pipe).add_pair(fixture(high), fixture(low), "distill", 1.0, 0.7)
    deck.add(fixture("wan21_t2v_musubi"), "style", model=STRONG)
    deck.set_weights("style", transformer_2=-1.0)
    stacked = ours(deck)
    distill_only = ours(Deck(fresh()).add_pair(fixture(high), fixture(low), "distill", 1.0, 0.7))
    assert (ours(deck.set_weights("style", enabled=False)) - distill_only).abs().max() <= 1e-5
    deck.set_weights("style", enabled=True).set_weights("distill", enabled=False)
    assert (ours(deck) - stacked).abs().max() > TOLERANCE
    deck.set_weights("distill", enabled=True)
    assert (ours(deck) - stacked).abs().max() <= 1e-6
    report = save_stack(deck.owner, deck.stack, str(tmp_path / "saved.safetensors"))
    saved = load_file(report.path)
    assert any(k.startswith("transformer_2.") for k in saved) and "transformer.blocks.0.diff_m" in saved
    assert "transformer_2.head.diff_m" in saved and "transformer.blocks.0.norm2.diff" in saved
    again = Deck(fresh()).add(report.path)
    assert (ours(again) - stacked).abs().max() <= 1e-4
    deck.fuse()
    assert [v.state for v in deck.active()] == ["fused", "fused"]
    assert (ours(deck) - stacked).abs().max() <= TOLERANCE
    deck.unfuse().unload()
    assert_bit_identical({f"{c}.{k}": v for c in EXPERTS for k, v in original[c].items()},
                         {f"{c}.{k}": v for c in EXPERTS for k, v in parameters(getattr(pipe, c)).items()})


def test_fuse_in_one_expert_only():
    high, low = PAIR_FILES["lightning"]
    deck = Deck(fresh()).add_pair(fixture(high), fixture(low), "p", STRONG, STRONG)
    unfused = ours(deck)
    deck.fuse(components=[LOW])
    layers = {c: [m for m in getattr(deck.pipe, c).modules() if hasattr(m, "_loradeck_original")] for c in EXPERTS}
    assert not layers[HIGH] and layers[LOW]
    assert (ours(deck) - unfused).abs().max() <= TOLERANCE
    with pytest.raises(SpecError, match="no component 'transformer_3'"):
        deck.fuse(components=["transformer_3"])


def test_a_strength_schedule_runs_in_both_experts_as_diffusers_set_adapters_between_steps():
    steps, values = 4, [STRONG, 2.0, 1.0, 0.0]  # ramp(3, 0) at steps 0..3: 2 high-noise steps, 2 low-noise
    params = dataclasses.replace(PARAMS, steps=steps)
    stem = "wan21_t2v_musubi"
    deck = Deck(fresh()).add(fixture(stem), "s")
    deck.set_weights("s", model=f"ramp({STRONG}, 0)")
    assert [v.schedule for v in deck.active()] == [((HIGH, f"ramp({STRONG:g}, 0)"), (LOW, f"ramp({STRONG:g}, 0)"))]
    reference = fresh()
    reference.load_lora_weights(fixture(stem), adapter_name="s")
    reference.load_lora_weights(fixture(stem), adapter_name="s", load_into_transformer_2=True)
    reference.set_adapters("s", values[0])

    def step_end(pipe, step, timestep, kwargs):
        if step + 1 < steps:
            pipe.set_adapters("s", values[step + 1])
        return kwargs

    mine = ours(deck, params)
    assert (mine - frames(reference, params, callback_on_step_end=step_end)).abs().max() <= TOLERANCE
    constant = ours(Deck(fresh()).add(fixture(stem), "s", model=STRONG), params)
    assert (mine - constant).abs().max() > TOLERANCE


def test_the_grid_runs_its_cells_in_one_batch_on_both_experts():
    high, low = PAIR_FILES["lightning"]
    deck = Deck(fresh()).add_pair(fixture(high), fixture(low), "p", STRONG, STRONG)
    deck.add(fixture("wan21_t2v_musubi"), "m", model=2.0)
    x, y = f"strength p: 0 | {STRONG} | transformer=0, transformer_2={STRONG}", "adapters: none | m"
    result = run_grid(deck.owner, deck.stack, dataclasses.replace(PARAMS, num_frames=None), x, y)
    assert result.batched, result.text
    assert result.cells.shape == (6, 16, 16, 3)  # a video family's grid compares stills (one frame per cell)
    weights = [{"model": 0.0}, {"model": STRONG}, {HIGH: 0.0, LOW: STRONG}]
    still = dataclasses.replace(PARAMS, num_frames=1)
    for row, m_on in enumerate((False, True)):
        for column, changes in enumerate(weights):
            alone = Deck(fresh()).add_pair(fixture(high), fixture(low), "p", STRONG, STRONG)
            alone.add(fixture("wan21_t2v_musubi"), "m", model=2.0).set_weights("p", **changes)
            alone.set_weights("m", enabled=m_on)
            cell = result.cells[row * 3 + column]
            assert (cell - ours(alone, still)[0]).abs().max() <= TOLERANCE, (row, column)


def test_the_compile_envelope_covers_both_experts_without_recompiles():
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    high, low = PAIR_FILES["lightning"]
    compiled = Deck(fresh()).add_pair(fixture(high), fixture(low), "p").compile(backend="eager", max_rank=8,
                                                                               max_adapters=2)
    eager = Deck(fresh()).add_pair(fixture(high), fixture(low), "p")
    assert (ours(compiled) - ours(eager)).abs().max() <= 1e-5
    assert all(getattr(compiled.pipe, c)._compiled_call_impl is not None for c in EXPERTS)
    frames_before = int(counters["frames"]["total"])
    for change in (lambda d: d.set_weights("p", transformer=0.5, transformer_2=2.0),  # each expert its strength
                   lambda d: d.add(fixture("wan21_t2v_musubi"), "m", model=1.5),  # another adapter, both experts
                   lambda d: d.set_weights("m", enabled=False).fuse(names=["p"])):  # switch off, fuse
        change(compiled)
        change(eager)
        assert (ours(compiled) - ours(eager)).abs().max() <= 1e-5
    assert int(counters["frames"]["total"]) == frames_before, "a change within the envelope recompiled"
    compiled.uncompile()
    assert all(getattr(compiled.pipe, c)._compiled_call_impl is None for c in EXPERTS)
    torch._dynamo.reset()


def test_cross_family_files_are_refused_with_their_base():
    """A Wan file on Flux and SD names Wan; Flux's and SD's files on Wan name theirs; nothing changes."""
    for family, stem in (("flux", "wan21_t2v_musubi"), ("sd1", "wan22_t2v_lightx2v_high"),
                         ("flux", "wan21_t2v_diffusers")):
        pipe = FAMILIES[family].tiny()
        with pytest.raises(IncompatibleLoraError, match="Wan"):
            Deck(pipe).add(fixture(stem))
    flux = str(Path(__file__).parent / "fixtures" / "trainers" / "flux_kohya_default.safetensors")
    pipe = fresh()
    before = parameters(pipe.transformer)
    with pytest.raises(IncompatibleLoraError, match="Flux"):
        Deck(pipe).add(flux)
    with pytest.raises(IncompatibleLoraError, match="Flux"):
        Deck(pipe).add_pair(flux, fixture(PAIR_FILES["lightning"][1]))
    assert_bit_identical(before, parameters(pipe.transformer))
    assert not any(isinstance(m, BaseTunerLayer) for c in EXPERTS for m in getattr(pipe, c).modules())


# -- Generate: video, image-to-video ----------------------------------------------------------------------------

def test_frames_come_out_as_one_image_batch_video_after_video():
    deck = Deck(fresh("t2v"))
    two = ours(deck, dataclasses.replace(PARAMS, batch_size=2))
    assert two.shape == (10, 16, 16, 3) and two.dtype == torch.float32
    direct = frames(fresh("t2v"), dataclasses.replace(PARAMS, batch_size=2))
    assert (two - direct).abs().max() <= TOLERANCE
    assert (two[:5] - two[5:]).abs().max() > TOLERANCE  # two videos, one after the other
    one = ours(deck, dataclasses.replace(PARAMS, num_frames=1))
    assert one.shape == (1, 16, 16, 3)
    with pytest.raises(SpecError, match=r"num_frames 6: Wan makes 4k \+ 1 frames .*choose 5 or 9"):
        ours(deck, dataclasses.replace(PARAMS, num_frames=6))
    with pytest.raises(SpecError, match="make images, not videos"):
        generate(Deck(FAMILIES["sd1"].tiny()).owner, StackSpec(), dataclasses.replace(PARAMS, width=64, height=64))
    with pytest.raises(SpecError, match="num_frames must be a whole number"):
        dataclasses.replace(PARAMS, num_frames=0)


@pytest.mark.parametrize("variant", ["i2v", "i2v22"])
def test_image_to_video_starts_from_the_image_as_diffusers_does(variant):
    high, low = PAIR_FILES["lightning"]
    deck = Deck(fresh(variant))
    reference = fresh(variant)
    if variant == "i2v22":
        deck.add_pair(fixture(high), fixture(low), "p", STRONG, 1.0)
        reference.load_lora_weights(fixture(high), adapter_name="p")
        reference.load_lora_weights(fixture(low), adapter_name="p", load_into_transformer_2=True)
        reference.set_adapters("p", {HIGH: STRONG, LOW: 1.0})
    mine = ours(deck, image=IMAGE)
    assert mine.shape == (5, 16, 16, 3)
    assert (mine - frames(reference, image=PICTURE)).abs().max() <= TOLERANCE
    with pytest.raises(SpecError, match="image-to-video: it starts from an image"):
        ours(deck)


def test_a_text_to_video_model_refuses_an_image_and_ti2v_5b_takes_one():
    with pytest.raises(SpecError, match="text-to-video .*16 latent channels.*cannot start from an image"):
        ours(Deck(fresh("t2v")), image=IMAGE)
    from diffusers import WanImageToVideoPipeline

    params = dataclasses.replace(PARAMS, width=32, height=32)
    big = torch.from_numpy(np.asarray(PICTURE.resize((32, 32)), dtype=np.float32) / 255)[None]
    deck = Deck(fresh("ti2v5b"))
    variant = WanImageToVideoPipeline.from_pipe(fresh("ti2v5b"))
    variant.set_progress_bar_config(disable=True)
    mine = ours(deck, params, image=big)
    assert mine.shape == (5, 32, 32, 3)
    picture = Image.fromarray((big[0].numpy() * 255).round().astype(np.uint8))
    assert (mine - frames(variant, params, image=picture)).abs().max() <= TOLERANCE
    assert (ours(deck, params) - mine).abs().max() > TOLERANCE  # text-to-video on the same model


def test_the_ftfy_stand_in_keeps_prompts_as_they_are():
    import importlib

    ensure_ftfy()
    module = importlib.import_module("diffusers.pipelines.wan.pipeline_wan_i2v")
    assert module.ftfy.fix_text("a cat, café") == "a cat, café"


def test_the_python_api_takes_the_i2v_class_and_generate_params():
    from diffusers import WanImageToVideoPipeline

    pipe = fresh("i2v22")
    assert isinstance(pipe, WanImageToVideoPipeline) and Deck(pipe).owner.family is FAMILY
    assert FAMILY.mode("img2img", "WanImageToVideoPipeline") == "edit"
    assert FAMILY.variant("edit", "WanPipeline") == "WanImageToVideoPipeline"


# -- the headless runner: video outputs -------------------------------------------------------------------------

def test_the_video_example_runs_headless_and_its_frames_reach_the_video_nodes(tmp_path, caplog):
    from loradeck.runner import Workflow, load, run_workflow
    from loradeck.runner.video_nodes import have_av

    workflow = load(str(Path(__file__).resolve().parents[1] / "example_workflows" / "loradeck-video.json"))
    quick = copy.deepcopy(workflow.prompt)  # the graph as it ships, with 2 steps per Generate (the frames are 17)
    for node in quick.values():
        if node["class_type"] == "Generate|LoRADeck":
            node["inputs"]["steps"] = 2
    with caplog.at_level(logging.WARNING):
        saved = run_workflow(Workflow(quick, workflow.ui, workflow.source), str(tmp_path)).saved
    webps = sorted(p for p in saved if p.endswith(".webp"))
    assert [Path(p).name for p in webps] == ["i2v_00001_.webp", "t2v_00001_.webp"]
    t2v, i2v = Image.open(webps[1]), Image.open(webps[0])
    assert (t2v.n_frames, t2v.size, i2v.n_frames, i2v.size) == (17, (64, 64), 17, (128, 128))
    assert t2v.getexif()[0x0110].startswith("prompt:")  # ComfyUI's place for the prompt
    mp4s = [p for p in saved if p.endswith(".mp4")]
    if have_av():
        import av

        (mp4,) = mp4s
        with av.open(mp4) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            assert len(decoded) == 17 and decoded[0].shape == (64, 64, 3)
            assert "prompt" in container.metadata
    else:
        assert not mp4s and "PyAV is not installed" in caplog.text


def test_save_video_without_pyav_writes_nothing_and_says_how(tmp_path, monkeypatch, caplog):
    from loradeck.runner import video_nodes
    from loradeck.runner.context import RunContext

    monkeypatch.setattr(video_nodes, "have_av", lambda: False)
    context = RunContext(str(tmp_path), {}, None)
    video = video_nodes.CreateVideo().create(torch.rand(5, 16, 16, 3), 16.0)[0]
    with caplog.at_level(logging.WARNING):
        assert video_nodes.SaveVideo(context).save_video(video) == {"ui": {}}
    assert "pip install av" in caplog.text and not list(tmp_path.rglob("*.mp4"))
