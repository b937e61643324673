"""LoRA files made by the real trainers' network code load exactly as the trainer meant.

tests/fixtures/trainers/ holds files made by kohya-ss sd-scripts (lora_flux, lora_sd3), LyCORIS, x-flux and peft
for the built-in tiny Flux, SD3 and SD1 models, each with ``.expected.safetensors``: the trainer's own merge into
its own model (merged - original, under the trainer's module names). tools/fixtures/ says how they were made.

The test maps the trainer's names to diffusers modules with its own table, written from diffusers' single-file
converters (``convert_flux_transformer_checkpoint_to_diffusers`` and ``convert_sd3_transformer_checkpoint_to_
diffusers`` in diffusers/loaders/single_file_utils.py), not from LoRA Deck's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from family_fixtures import fresh, render
from helpers import assert_bit_identical
from loradeck.core import Deck, IncompatibleLoraError
from loradeck.core.adapters.save import save_stack
from loradeck.runner import run_workflow

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "trainers"
MANIFEST = json.loads((FIXTURES / "MANIFEST.json").read_text())
WITH_EXPECTED = sorted(p.name.removesuffix(".expected.safetensors") for p in FIXTURES.glob("*.expected.safetensors"))
PEFT_FOLDERS = sorted(p.name for p in FIXTURES.glob("peft_*") if p.is_dir())
TOLERANCE = 1e-3  # relative, per module

# trainer name -> diffusers modules whose weights are its rows, in order ("swap": halves exchanged)
FLUX_DOUBLE = {"img_attn.qkv": ["attn.to_q", "attn.to_k", "attn.to_v"],
               "txt_attn.qkv": ["attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"],
               "img_attn.proj": ["attn.to_out.0"], "txt_attn.proj": ["attn.to_add_out"],
               "img_mlp.0": ["ff.net.0.proj"], "img_mlp.2": ["ff.net.2"], "txt_mlp.0": ["ff_context.net.0.proj"],
               "txt_mlp.2": ["ff_context.net.2"], "img_mod.lin": ["norm1.linear"],
               "txt_mod.lin": ["norm1_context.linear"]}
FLUX_SINGLE = {"linear1": ["attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"], "linear2": ["proj_out"],
               "modulation.lin": ["norm.linear"]}
FLUX_TOP = {"img_in": ["x_embedder"], "txt_in": ["context_embedder"],
            "time_in.in_layer": ["time_text_embed.timestep_embedder.linear_1"],
            "time_in.out_layer": ["time_text_embed.timestep_embedder.linear_2"],
            "vector_in.in_layer": ["time_text_embed.text_embedder.linear_1"],
            "vector_in.out_layer": ["time_text_embed.text_embedder.linear_2"],
            "final_layer.linear": ["proj_out"], "final_layer.adaLN_modulation.1": ["swap", "norm_out.linear"]}
SD3_JOINT = {"x_block.attn.qkv": ["attn.to_q", "attn.to_k", "attn.to_v"],
             "context_block.attn.qkv": ["attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"],
             "x_block.attn.proj": ["attn.to_out.0"], "context_block.attn.proj": ["attn.to_add_out"],
             "x_block.mlp.fc1": ["ff.net.0.proj"], "x_block.mlp.fc2": ["ff.net.2"],
             "context_block.mlp.fc1": ["ff_context.net.0.proj"], "context_block.mlp.fc2": ["ff_context.net.2"],
             "x_block.adaLN_modulation.1": ["norm1.linear"],
             "context_block.adaLN_modulation.1": ["norm1_context.linear"]}
SD3_TOP = {"x_embedder.proj": ["pos_embed.proj"], "context_embedder": ["context_embedder"],
           "t_embedder.mlp.0": ["time_text_embed.timestep_embedder.linear_1"],
           "t_embedder.mlp.2": ["time_text_embed.timestep_embedder.linear_2"],
           "y_embedder.mlp.0": ["time_text_embed.text_embedder.linear_1"],
           "y_embedder.mlp.2": ["time_text_embed.text_embedder.linear_2"],
           "final_layer.linear": ["proj_out"], "final_layer.adaLN_modulation.1": ["swap", "norm_out.linear"]}
TEXT = {"flux": {"te1": "text_encoder", "te3": "text_encoder_2"},
        "sd3": {"te1": "text_encoder", "te2": "text_encoder_2", "te3": "text_encoder_3"}}


def family_of(name: str) -> str:
    return name.split("_", 1)[0]


def diffusers_modules(family: str, key: str, pipe) -> tuple[str, list[str], bool]:
    """(component, diffusers module names in row order, halves swapped?) for one trainer weight name."""
    name = key.removesuffix(".weight")
    head, _, rest = name.partition(".")
    if head in TEXT[family]:
        component = TEXT[family][head]
        model = getattr(pipe, component)
        try:  # transformers 5's CLIPTextModel has no text_model level (its ...WithProjection still has)
            model.get_submodule(rest)
        except AttributeError:
            rest = rest.removeprefix("text_model.")
        return component, [rest], False
    table, prefix = (FLUX_TOP if family == "flux" else SD3_TOP), ""
    match = re.match(r"^(double_blocks|single_blocks|joint_blocks)\.(\d+)\.(.+)$", name)
    if match:
        group, index, name = match.groups()
        table = {"double_blocks": FLUX_DOUBLE, "single_blocks": FLUX_SINGLE, "joint_blocks": SD3_JOINT}[group]
        prefix = {"single_blocks": "single_transformer_blocks"}.get(group, "transformer_blocks") + f".{index}."
    if name not in table:  # already a diffusers name (ai-toolkit, SimpleTuner)
        return "transformer", [name], False
    modules = table[name]
    swap = modules[0] == "swap"
    last = family == "sd3" and match and int(match.group(2)) == len(pipe.transformer.transformer_blocks) - 1
    swap = swap or bool(last and name == "context_block.adaLN_modulation.1")  # the last block's is continuous
    return "transformer", [prefix + m for m in modules if m != "swap"], swap


def weights(pipe, component: str, modules: list[str]) -> torch.Tensor:
    model = getattr(pipe, component)
    found = [model.get_submodule(m) for m in modules]
    return torch.cat([getattr(m, "base_layer", m).weight.detach().float() for m in found])


def assembled(pipe, family: str, key: str, before) -> tuple[torch.Tensor, str]:
    """LoRA Deck's fused delta, assembled into the trainer's layout for ``key``."""
    component, modules, swap = diffusers_modules(family, key, pipe)
    delta = weights(pipe, component, modules) - before[(component, tuple(modules))]
    if swap:
        scale, shift = delta.chunk(2)
        delta = torch.cat([shift, scale])
    return delta, f"{component}:{modules}"


@pytest.mark.parametrize("name", WITH_EXPECTED)
def test_fused_delta_equals_the_trainers_own_merge(name):
    family = family_of(name)
    expected = load_file(str(FIXTURES / f"{name}.expected.safetensors"))
    pipe = fresh(family)
    groups = {key: diffusers_modules(family, key, pipe)[:2] for key in expected}
    before = {(c, tuple(m)): weights(pipe, c, m) for c, m in groups.values()}
    Deck(pipe).add(str(FIXTURES / f"{name}.safetensors")).fuse()
    worst = []
    for key, want in expected.items():
        ours, where = assembled(pipe, family, key, before)
        error = float((ours - want.float().reshape(ours.shape)).norm() / want.float().norm().clamp_min(1e-12))
        worst.append((error, key, where))
    assert max(worst)[0] < TOLERANCE, max(worst)
    changed = {(c, n) for c in ("transformer", "text_encoder", "text_encoder_2")
               for n, m in getattr(pipe, c).named_modules() if hasattr(m, "_loradeck_original")}
    claimed = {(c, m) for c, modules in groups.values() for m in modules}
    assert changed <= claimed, f"modules changed that the trainer did not touch: {sorted(changed - claimed)[:5]}"


def _patched_reference(name: str):
    """A fresh pipeline whose weights were patched with the trainer's own deltas (no LoRA Deck involved)."""
    family = family_of(name)
    pipe = fresh(family)
    with torch.no_grad():
        for key, delta in load_file(str(FIXTURES / f"{name}.expected.safetensors")).items():
            component, modules, swap = diffusers_modules(family, key, pipe)
            delta = delta.float()
            if swap:
                shift, scale = delta.chunk(2)
                delta = torch.cat([scale, shift])
            model, start = getattr(pipe, component), 0
            for module in modules:
                weight = model.get_submodule(module).weight
                weight += delta[start : start + weight.shape[0]].reshape(weight.shape).to(weight.dtype)
                start += weight.shape[0]
    return family, pipe


def _api_workflow(family: str, lora: str) -> dict:
    return {
        "1": {"class_type": "LoadPipeline|LoRADeck", "inputs": {"model_name": f"tiny-{family} (built-in)",
                                                               "dtype": "float32"}},
        "2": {"class_type": "LoadLoRA|LoRADeck", "inputs": {"pipeline": ["1", 0], "lora_name": lora,
                                                           "strength_model": 1.0, "strength_clip": 1.0}},
        "3": {"class_type": "Generate|LoRADeck", "inputs": {"pipeline": ["2", 0], "prompt": "a photo of a cat",
                                                           "negative_prompt": "", "seed": 3, "steps": 3, "cfg": 4.0,
                                                           "width": 64, "height": 64, "batch_size": 1}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "trainer"}},
    }


@pytest.mark.parametrize("name", ["flux_kohya_t5xxl", "flux_xlabs", "flux_lycoris_lokr_kohya", "sd3_kohya"])
def test_loradeck_run_equals_a_pipeline_patched_with_the_trainers_deltas(name, tmp_path):
    import numpy as np
    from PIL import Image

    from family_fixtures import PARAMS
    from loradeck.runner import Workflow

    loras = tmp_path / "models" / "loras"
    loras.mkdir(parents=True)
    (loras / f"{name}.safetensors").write_bytes((FIXTURES / f"{name}.safetensors").read_bytes())
    family, reference = _patched_reference(name)
    assert (PARAMS.prompt, PARAMS.seed, PARAMS.steps, PARAMS.cfg) == ("a photo of a cat", 3, 3, 4.0)
    workflow = Workflow(_api_workflow(family, f"{name}.safetensors"), None, "test")
    context = run_workflow(workflow, str(tmp_path / "out"), str(tmp_path / "models"))
    ours = np.asarray(Image.open(context.saved[0]), dtype=np.int16)
    theirs = (render(family, reference)[0].numpy() * 255).round().astype(np.int16)
    base = (render(family, fresh(family))[0].numpy() * 255).round().astype(np.int16)
    assert np.abs(ours - theirs).max() <= 2
    assert np.abs(theirs - base).max() > 2  # the LoRA visibly changes the picture


def _forward(model, seed: int = 0):
    """One forward pass of a UNet or a text encoder on fixed random inputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if hasattr(model, "conv_in"):
            sample = torch.randn(1, 4, 8, 8, generator=gen)
            context = torch.randn(1, 5, model.config.cross_attention_dim, generator=gen)
            return model(sample, torch.tensor([10]), context).sample
        return model(torch.randint(0, 500, (1, 7), generator=gen)).last_hidden_state


@pytest.mark.parametrize("folder", PEFT_FOLDERS)
def test_a_peft_folder_equals_peft_from_pretrained(folder):
    from peft import PeftModel

    component = "text_encoder" if "clip" in folder else "unet"
    ours, theirs = fresh("sd1"), fresh("sd1")
    Deck(ours).add(str(FIXTURES / folder))
    reference = PeftModel.from_pretrained(getattr(theirs, component), str(FIXTURES / folder)).eval()
    expected, got = _forward(reference), _forward(getattr(ours, component))
    assert (got - expected).abs().max() <= 1e-5 * max(1.0, float(expected.abs().max()))
    assert (expected - _forward(getattr(fresh("sd1"), component))).abs().max() > 1e-3  # the adapter matters


def test_a_peft_config_changes_the_strength_as_peft_does(tmp_path):
    """alpha 8 over r 4 doubles the delta of the same tensors read without their config."""
    with_config = fresh("sd1")
    Deck(with_config).add(str(FIXTURES / "peft_sd1_alpha")).fuse()
    bare = tmp_path / "bare.safetensors"
    bare.write_bytes((FIXTURES / "peft_sd1_alpha" / "adapter_model.safetensors").read_bytes())
    without = fresh("sd1")
    Deck(without).add(str(bare)).fuse()
    base = fresh("sd1").unet.state_dict()
    name = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"
    doubled = with_config.unet.state_dict()[name.replace(".weight", ".base_layer.weight")] - base[name]
    single = without.unet.state_dict()[name.replace(".weight", ".base_layer.weight")] - base[name]
    assert torch.allclose(doubled, 2 * single, rtol=1e-4, atol=1e-7)


def test_new_formats_take_strengths_blocks_switches_fuse_and_save(tmp_path):
    """Trainer files go through the plain-LoRA path: strength 0 = base, block weights, enable/disable, two
    adapters, exact unfuse, and a saved stack that reloads to the same picture."""
    pipe = fresh("flux")
    base, original = render("flux", pipe), {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
    deck = Deck(pipe).add(str(FIXTURES / "flux_kohya_default.safetensors"), name="kohya", model=0.0, clip=0.0)
    assert torch.equal(render("flux", pipe), base)
    deck.add(str(FIXTURES / "flux_xlabs.safetensors"), name="xlabs", model=0.7)
    deck.set_weights("kohya", model=0.8, clip=0.5, blocks={"transformer_blocks.0": 0.0})
    stacked = render("flux", pipe)
    assert (stacked - base).abs().max() > 1e-3
    deck.set_weights("xlabs", enabled=False)
    assert not torch.equal(render("flux", pipe), stacked)
    deck.set_weights("xlabs", enabled=True).fuse()
    assert (render("flux", pipe) - stacked).abs().max() < 1e-4
    report = save_stack(deck.owner, deck.stack, str(tmp_path / "saved.safetensors"))
    deck.unfuse().unload()
    assert_bit_identical(original, {k.replace(".base_layer", ""): v for k, v in pipe.transformer.state_dict().items()
                                    if "lora_" not in k})
    again = fresh("flux")
    Deck(again).add(report.path)
    assert (render("flux", again) - stacked).abs().max() < 1e-4


@pytest.mark.parametrize("name,family", [("flux_kohya_default", "sd1"), ("flux_kohya_default", "sdxl"),
                                         ("flux_kohya_default", "sd3"), ("sd3_kohya", "flux"), ("sd3_kohya", "sd1"),
                                         ("flux_xlabs", "sd3"), ("flux_lycoris_lokr_simpletuner", "sd3")])
def test_a_trainer_file_on_another_family_is_refused_with_its_base(name, family):
    pipe = fresh(family)
    state = lambda: {(c, k): v.clone() for c, m in pipe.components.items() if isinstance(m, torch.nn.Module)  # noqa: E731
                     for k, v in m.state_dict().items()}
    before = state()
    with pytest.raises(IncompatibleLoraError) as caught:
        Deck(pipe).add(str(FIXTURES / f"{name}.safetensors"))
    assert {"flux": "Flux", "sd3": "SD 3"}[family_of(name)] in str(caught.value)
    assert_bit_identical(before, state())


FAMILIES = ["sd1", "sdxl", "sd3", "flux", "amused", "chroma", "krea2", "qwenimage", "zimage", "flux2", "flux2dev"]
BASE_NAMES = {"sd1": "SD 1.x", "sdxl": "SDXL", "sd3": "SD 3", "flux": "Flux", "amused": "aMUSEd", "chroma": "Chroma",
              "krea2": "Krea 2", "qwenimage": "Qwen-Image", "zimage": "Z-Image", "flux2": "FLUX.2",
              "flux2dev": "FLUX.2"}
# pairs with the same module names and other widths: refused for their shapes (FLUX.2 klein and dev, as SD 1.x and
# SDXL: the same key layout, other widths)
SAME_NAMES = ({"sd1", "sdxl"}, {"flux2", "flux2dev"})


@pytest.fixture(scope="module")
def family_files(tmp_path_factory):
    from lora_fixtures import save_family_lora

    root = tmp_path_factory.mktemp("cross")
    return {key: save_family_lora(key, str(root / f"{key}.safetensors"), seed=1) for key in FAMILIES}


def _state(pipe) -> dict:
    return {(c, k): v.clone() for c, m in pipe.components.items() if isinstance(m, torch.nn.Module)
            for k, v in m.state_dict().items()}


@pytest.mark.parametrize("made_for", FAMILIES)
def test_every_cross_family_pair_is_refused_with_its_base_and_changes_nothing(made_for, family_files):
    """A file saved by diffusers for one tiny family, on each of the others: refused (never a partial
    load), the base it was made for named, the pipeline bit-identical. On its own family it loads fully."""
    for family in FAMILIES:
        pipe = fresh(family)
        if family == made_for:
            deck = Deck(pipe).add(family_files[made_for])
            report = deck.owner.prepare(family_files[made_for]).report
            assert report.matched == report.total and not report.partial
            continue
        before = _state(pipe)
        with pytest.raises(IncompatibleLoraError) as caught:
            Deck(pipe).add(family_files[made_for])
        message = str(caught.value)
        shapes_only = {made_for, family} in SAME_NAMES
        assert "other shapes" in message if shapes_only else BASE_NAMES[made_for] in message, (family, message)
        assert not re.search(r"(?<!\.)\.\.(?!\.)", message)  # no ".." (an ellipsis is fine)
        assert_bit_identical(before, _state(pipe))


def test_a_kohya_sd1_file_on_flux_is_refused_not_half_loaded(files):
    pipe = fresh("flux")
    with pytest.raises(IncompatibleLoraError, match="matched none of its .*denoiser modules"):
        Deck(pipe).add(files["k"])


def test_a_text_encoder_only_lora_still_loads(tmp_path):
    from safetensors.torch import save_file

    source = load_file(str(FIXTURES / "flux_kohya_default.safetensors"))
    text_only = {k: v for k, v in source.items() if k.startswith("lora_te1_")}
    path = tmp_path / "te_only.safetensors"
    save_file(text_only, str(path))
    pipe = fresh("flux")
    base = render("flux", pipe)
    report = Deck(pipe).add(str(path)).owner.prepare(str(path)).report
    assert report.components == (("text_encoder", 12, 12),) and not report.partial
    assert (render("flux", pipe) - base).abs().max() > 1e-3


def test_the_report_counts_keys_nobody_understood(tmp_path):
    from safetensors.torch import save_file

    source = load_file(str(FIXTURES / "flux_kohya_default.safetensors"))
    source["lora_unet_double_blocks_0_img_attn_qkv.weird_part"] = torch.zeros(2)
    source["something_else.weight"] = torch.zeros(2)
    path = tmp_path / "odd.safetensors"
    save_file(source, str(path))
    with pytest.raises(IncompatibleLoraError, match="2 keys LoRA Deck does not understand"):
        Deck(fresh("flux")).add(str(path))
    report = Deck(fresh("flux")).add(str(path), allow_partial=True).owner.prepare(str(path)).report
    assert (report.matched, report.total, report.unknown) == (38, 39, 1)  # the odd part belongs to a known module
    assert "38/39 modules matched" in report.text() and "1 not understood" in report.text()
