"""Chroma (lodestones' Chroma1-HD / Base / Flash): every LoRA layout its trainers write loads exactly, diffusers'
Chroma pipelines run as the model was trained (Family.fix), single files load, and the features work on it.

References, none of them LoRA Deck's own code:
- ``tests/fixtures/trainers/chroma/``: files made by sd-scripts, LyCORIS, ai-toolkit and peft for the tiny Chroma,
  each with the trainer's own merge (``.expected``); the trainer's names are mapped to diffusers modules here with
  tables written from diffusers' ``convert_chroma_transformer_checkpoint_to_diffusers``;
- diffusers' own ``load_lora_weights`` where it loads a layout correctly (PEFT files: transformer only);
- sd-scripts' own Chroma model: its state dict and one forward pass, for the single-file name map and the mask.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_formats_trainers import FLUX_DOUBLE, FLUX_SINGLE

from family_fixtures import PARAMS, fresh, render
from helpers import assert_bit_identical, check_parameter_difference
from loradeck.core import Deck, GenerateParams, IncompatibleLoraError, SpecError, StackSpec, generate
from loradeck.core.families import FAMILIES
from loradeck.core.families.chroma.fixes import boolean_attention_mask

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "trainers" / "chroma"
NAMES = sorted(p.name.removesuffix(".expected.safetensors") for p in FIXTURES.glob("*.expected.safetensors"))
TOLERANCE = 1e-3  # relative, per module
# Chroma's own original names, from convert_chroma_transformer_checkpoint_to_diffusers (Flux's blocks: imported)
TOP = {"img_in": "x_embedder", "txt_in": "context_embedder", "final_layer.linear": "proj_out"}
APPROXIMATOR = {"in_layer": "linear_1", "out_layer": "linear_2"}
PREFIXES = {"te3.": "text_encoder", "text_encoder.": "text_encoder", "transformer.": "transformer"}


def family():
    return FAMILIES["chroma"]


def trainer_modules(key: str) -> tuple[str, list[str]]:
    """(component, diffusers modules in row order) of one ``.expected`` key (a trainer's module weight name)."""
    name = key.removesuffix(".weight")
    for prefix, component in PREFIXES.items():
        if name.startswith(prefix):
            return component, [name[len(prefix):]]
    match = re.match(r"^(double_blocks|single_blocks)\.(\d+)\.(.+)$", name)
    if match:
        group, index, rest = match.groups()
        table, block = ((FLUX_DOUBLE, "transformer_blocks") if group == "double_blocks"
                        else (FLUX_SINGLE, "single_transformer_blocks"))
        return "transformer", [f"{block}.{index}.{m}" for m in table[rest]]
    match = re.match(r"^distilled_guidance_layer\.layers\.(\d+)\.(in_layer|out_layer)$", name)
    if match:
        return "transformer", [f"distilled_guidance_layer.layers.{match.group(1)}.{APPROXIMATOR[match.group(2)]}"]
    return "transformer", [TOP.get(name, name)]  # diffusers names (SimpleTuner's LyCORIS)


def weights(pipe, component: str, modules: list[str]) -> torch.Tensor:
    model = getattr(pipe, component)
    return torch.cat([getattr(m, "base_layer", m).weight.detach().float()
                      for m in (model.get_submodule(n) for n in modules)])


def linear_weights(pipe) -> dict[tuple[str, str], torch.Tensor]:
    out = {}
    for component in family().components:
        for name, module in getattr(pipe, component).named_modules():
            if isinstance(module, torch.nn.Linear) and ".lora_" not in name:  # a peft layer's base: its name
                out[component, name.removesuffix(".base_layer")] = module.weight.detach().float().clone()
    return out


def state(pipe) -> dict:
    return {(c, k): v.clone() for c in ("transformer", "text_encoder", "vae")
            for k, v in getattr(pipe, c).state_dict().items()}


# -- every trainer's file: the fused change equals the trainer's own merge ------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_fused_change_equals_the_trainers_own_merge(name):
    expected = load_file(str(FIXTURES / f"{name}.expected.safetensors"))
    pipe = fresh("chroma")
    before = linear_weights(pipe)
    deck = Deck(pipe).add(str(FIXTURES / f"{name}.safetensors"))
    report = deck.owner.prepare(str(FIXTURES / f"{name}.safetensors")).report
    assert report.matched == report.total and not report.partial, report.text()
    deck.fuse()
    worst, touched = 0.0, set()
    for key, delta in expected.items():
        component, modules = trainer_modules(key)
        ours = weights(pipe, component, modules) - torch.cat([before[component, m] for m in modules])
        error = float((ours - delta).norm() / delta.norm())
        assert error <= TOLERANCE, (name, key, error)
        worst = max(worst, error)
        touched.update((component, m) for m in modules)
    after = linear_weights(pipe)
    extra = [k for k, w in before.items() if k not in touched and not torch.equal(w, after[k])]
    assert not extra, f"{name}: modules the trainer never touched changed: {extra[:3]}"
    print(f"{name}: {len(expected)} modules, worst relative error {worst:.1e}")  # noqa: T201 - the report's table


def test_a_peft_file_diffusers_loads_gives_diffusers_images_and_weights():
    """The one layout diffusers 0.42.1 loads fully on Chroma (PEFT, transformer only): same images, same fused
    weights, at a strength other than 1."""
    path = str(FIXTURES / "chroma_peft_default.safetensors")
    ours = fresh("chroma")
    Deck(ours).add(path, "x", model=0.7)
    theirs = fresh("chroma")
    theirs.load_lora_weights(path, adapter_name="x")
    theirs.set_adapters(["x"], [0.7])
    assert (render("chroma", ours) - render("chroma", theirs)).abs().max() <= 2 / 255
    deck = Deck(fresh("chroma")).add(path, "x", model=0.7).fuse()
    theirs.fuse_lora(components=["transformer"], lora_scale=1.0, adapter_names=["x"])
    mine, reference = linear_weights(deck.pipe), linear_weights(theirs)
    worst = max(float((mine[k] - reference[k]).abs().max()) for k in mine)
    assert worst < 1e-6, worst


def test_text_encoder_strength_scales_the_t5_change():
    """Chroma's T5 (``text_encoder``, no CLIP) takes a LoRA's clip strength: sd-scripts' ``lora_te3_`` part at
    clip 0.5 is half the trainer's merge; the transformer part keeps model 1.0."""
    name = "chroma_kohya_t5xxl"
    expected = load_file(str(FIXTURES / f"{name}.expected.safetensors"))
    pipe = fresh("chroma")
    before = linear_weights(pipe)
    Deck(pipe).add(str(FIXTURES / f"{name}.safetensors"), model=1.0, clip=0.5).fuse()
    for key, delta in expected.items():
        component, modules = trainer_modules(key)
        ours = weights(pipe, component, modules) - torch.cat([before[component, m] for m in modules])
        want = delta * (0.5 if component == "text_encoder" else 1.0)
        assert float((ours - want).norm() / want.norm()) <= TOLERANCE, key


# -- the pipeline fixes: attention mask and inpainting config -------------------------------------------------------

def _plain_pipeline():
    """A ChromaPipeline as diffusers builds it from the tiny model's parts: no fix applied."""
    from diffusers import ChromaPipeline, ChromaTransformer2DModel

    from loradeck.core.families.chroma.tiny import TRANSFORMER

    pipe = fresh("chroma")
    transformer = ChromaTransformer2DModel(**TRANSFORMER).eval()
    transformer.load_state_dict(pipe.transformer.state_dict())
    parts = {k: v for k, v in pipe.components.items() if k != "transformer"}
    plain = ChromaPipeline(transformer=transformer, **parts)
    plain.set_progress_bar_config(disable=True)
    return plain


def test_deck_fixes_a_plain_pipeline_once_and_the_fix_is_diffusers_own_boolean_mask():
    """Deck on a pipeline diffusers built: the mask hook is installed once (again: still once), inpainting runs,
    and text-to-image equals diffusers called with its own boolean masks (prompt_embeds + bool masks, the one path
    on which diffusers 0.42.1 masks the padding)."""
    plain = _plain_pipeline()
    assert "guidance_embeds" not in plain.transformer.config
    kwargs = family().call(PARAMS, lambda step, total: None)
    with torch.inference_mode():
        embeds, _, mask, negative, _, negative_mask = plain.encode_prompt(PARAMS.prompt, "", device="cpu",
                                                                          do_classifier_free_guidance=True)
        kwargs.update(prompt=None, negative_prompt=None, prompt_embeds=embeds, prompt_attention_mask=mask.bool(),
                      negative_prompt_embeds=negative, negative_prompt_attention_mask=negative_mask.bool())
        boolean = torch.from_numpy(plain(**kwargs).images.copy())
    floating = render("chroma", plain)
    assert (floating - boolean).abs().max() > 2 / 255  # diffusers' float mask changes the picture
    deck = Deck(plain)
    Deck(plain)  # a second owner of the same pipeline: the fix is idempotent
    hooks = [h for h in plain.transformer._forward_pre_hooks.values() if h is boolean_attention_mask]
    assert len(hooks) == 1 and plain.transformer.config.guidance_embeds is False
    assert (render("chroma", plain) - boolean).abs().max() <= 1e-5
    image, mask = torch.rand(1, 64, 64, 3), torch.zeros(1, 64, 64)
    mask[:, 16:48, 16:48] = 1
    out = generate(deck.owner, StackSpec(), GenerateParams(**{**vars(PARAMS), "denoise": 0.8}), image=image, mask=mask)
    assert out.shape == (1, 64, 64, 3)


def test_unfixed_diffusers_inpainting_fails_as_reported():
    from diffusers import ChromaInpaintPipeline

    inpaint = ChromaInpaintPipeline.from_pipe(_plain_pipeline())
    with pytest.raises(AttributeError, match="guidance_embeds"):
        inpaint("a cat", image=torch.rand(1, 3, 64, 64), mask_image=torch.ones(1, 1, 64, 64), height=64, width=64,
                num_inference_steps=2, output_type="np")


@functools.cache
def _sdscripts() -> dict:
    return load_file(str(FIXTURES / "sdscripts_chroma_tiny.safetensors"))


def _sdscripts_forward(transformer) -> torch.Tensor:
    """sd-scripts' recorded call (3 prompt tokens of 8, attn_padding=1) as diffusers' pipelines make it: the prompt
    tokens + one padding token, then every image token, as a float 0/1 mask."""
    io = {k.removeprefix("io."): v for k, v in _sdscripts().items() if k.startswith("io.")}
    img, txt = io["img"], io["txt"]
    keep = (torch.arange(txt.shape[1]) <= int(io["mask"].sum())).float()
    mask = torch.cat([keep[None], torch.ones(1, img.shape[1])], 1)
    side = int(img.shape[1] ** 0.5)
    ids = torch.zeros(side, side, 3)
    ids[..., 1] += torch.arange(side)[:, None]
    ids[..., 2] += torch.arange(side)[None, :]
    with torch.inference_mode():
        return transformer(hidden_states=img, encoder_hidden_states=txt, timestep=io["t"], img_ids=ids.reshape(-1, 3),
                           txt_ids=torch.zeros(txt.shape[1], 3), attention_mask=mask, return_dict=False)[0]


def _checkpoint_dir(tmp_path, tensors: dict, pipe, prefix: str = "") -> Path:
    """ComfyUI's folders: the transformer-only file in models/checkpoints, T5 in text_encoders, ae in vae."""
    from original_layout import t5_to_ldm, vae_to_ldm

    models = tmp_path / "models"
    for folder in ("checkpoints", "text_encoders", "vae"):
        (models / folder).mkdir(parents=True, exist_ok=True)
    path = models / "checkpoints" / "chroma.safetensors"
    save_file({prefix + k: v.contiguous() for k, v in tensors.items()}, str(path))
    save_file(t5_to_ldm(pipe.text_encoder.state_dict(), ""), str(models / "text_encoders" / "t5xxl_tiny.safetensors"))
    save_file(vae_to_ldm(pipe.vae.state_dict(), ""), str(models / "vae" / "ae.safetensors"))
    return path


def test_sd_scripts_chroma_checkpoint_loads_and_the_pipelines_mask_gives_its_forward(tmp_path):
    """sd-scripts' own Chroma model, saved in lodestones' layout (model.diffusion_model.-prefixed, as ComfyUI saves
    it), loads as a single file with every weight, and the fixed transformer fed the mask exactly as diffusers'
    pipelines make it (float) reproduces sd-scripts' forward; without the fix it does not."""
    from loradeck.core.models.single_file import load_single_file

    bfl = {k.removeprefix("model."): v for k, v in _sdscripts().items() if k.startswith("model.")}
    path = _checkpoint_dir(tmp_path, bfl, fresh("chroma"), prefix="model.diffusion_model.")
    pipe = load_single_file(str(path), torch.float32, torch.device("cpu"))
    assert type(pipe).__name__ == "ChromaPipeline"
    Deck(pipe)
    reference = _sdscripts()["io.out"]
    error = float((_sdscripts_forward(pipe.transformer) - reference).abs().max() / reference.abs().max())
    assert error < 1e-5, error
    pipe.transformer._forward_pre_hooks.clear()  # diffusers as it is
    error = float((_sdscripts_forward(pipe.transformer) - reference).abs().max() / reference.abs().max())
    assert error > 1e-3, error


# -- single files ---------------------------------------------------------------------------------------------------

def test_single_files_load_with_every_weight_and_the_same_images(tmp_path, use_models):
    """A transformer-only file (lodestones' unprefixed keys) with T5 and ae.safetensors beside it, through the Load
    Pipeline node; an all-in-one file; a Chroma file is never taken for FLUX.1 schnell (it has every marker of it);
    Chroma1-Radiance is named and refused."""
    from loradeck.core import PipelineLoadError
    from loradeck.core.models.single_file import load_single_file
    from loradeck.nodes import NODE_CLASS_MAPPINGS
    from original_layout import chroma_to_original, t5_to_ldm, vae_to_ldm

    original = fresh("chroma")
    path = _checkpoint_dir(tmp_path / "split", chroma_to_original(original.transformer.state_dict()), original)
    use_models(str(path.parent.parent))
    handle = NODE_CLASS_MAPPINGS["LoadPipeline|LoRADeck"]().load("chroma.safetensors", "float32")[0]
    assert handle.owner.family.key == "chroma"
    loaded = handle.owner.pipe
    want = state(original)
    assert_bit_identical(want, state(loaded))
    assert (render("chroma", loaded) - render("chroma", original)).abs().max() <= 2 / 255
    whole = {**chroma_to_original(original.transformer.state_dict(), "model.diffusion_model."),
             **t5_to_ldm(original.text_encoder.state_dict(), "text_encoders.t5xxl.transformer."),
             **vae_to_ldm(original.vae.state_dict(), "vae.")}
    save_file({k: v.contiguous() for k, v in whole.items()}, str(tmp_path / "all_in_one.safetensors"))
    assert_bit_identical(want, state(load_single_file(str(tmp_path / "all_in_one.safetensors"), torch.float32,
                                                      torch.device("cpu"))))
    radiance = {"nerf_blocks.0.norm.scale": torch.ones(4), "distilled_guidance_layer.in_proj.bias": torch.ones(4)}
    save_file(radiance, str(tmp_path / "radiance.safetensors"))
    with pytest.raises(PipelineLoadError, match="Chroma1-Radiance"):
        load_single_file(str(tmp_path / "radiance.safetensors"), torch.float32, torch.device("cpu"))


# -- block weights by the names Chroma's users know ------------------------------------------------------------------

def _without(path: str, tmp_path, keep) -> str:
    state_dict = load_file(path)
    from loradeck.core.files.reading import read_metadata

    out = str(tmp_path / "without.safetensors")
    save_file({k: v for k, v in state_dict.items() if keep(k)}, out, metadata=read_metadata(path))
    return out


@pytest.mark.parametrize("blocks,drops", [
    ("double_blocks.1-1=0", "lora_unet_double_blocks_1_"),
    ("single_blocks.0=0", "lora_unet_single_blocks_0_"),
])
def test_original_block_names_equal_removing_those_blocks(blocks, drops, tmp_path):
    path = str(FIXTURES / "chroma_kohya_default.safetensors")
    ranged, removed = fresh("chroma"), fresh("chroma")
    Deck(ranged).add(path, "x").set_weights_text(f"x: {blocks}")
    Deck(removed).add(_without(path, tmp_path, lambda k: not k.startswith(drops)), "x")
    assert (render("chroma", ranged) - render("chroma", removed)).abs().max() < 1e-5


def test_the_approximator_is_a_block_group_and_bad_groups_are_named(tmp_path):
    path = str(FIXTURES / "chroma_peft_full_te.safetensors")
    ranged, removed = fresh("chroma"), fresh("chroma")
    deck = Deck(ranged).add(path, "x")
    deck.set_weights_text("x: distilled_guidance_layer=0, distilled_guidance_layer.0-0=0.5")
    layers = {n: m for n, m in ranged.transformer.named_modules() if hasattr(m, "scaling")}
    (key,) = {k for m in layers.values() for k in m.scaling}
    scale = layers["transformer_blocks.0.attn.to_q"].scaling[key]
    assert layers["distilled_guidance_layer.in_proj"].scaling[key] == 0
    assert layers["distilled_guidance_layer.layers.0.linear_1"].scaling[key] == pytest.approx(scale * 0.5)
    assert layers["distilled_guidance_layer.layers.1.linear_2"].scaling[key] == 0
    Deck(removed).add(_without(path, tmp_path, lambda k: "distilled_guidance_layer" not in k), "x")
    deck.set_weights_text("x: distilled_guidance_layer=0")
    assert (render("chroma", ranged) - render("chroma", removed)).abs().max() < 1e-5
    deck = Deck(fresh("chroma")).add(path, "y")
    with pytest.raises(SpecError, match=r"double_blocks / transformer_blocks \(0-1\).*distilled_guidance_layer"):
        deck.set_weights_text("y: down=0")
    with pytest.raises(SpecError, match=r"single_blocks has blocks 0-1"):
        deck.set_weights_text("y: single_blocks.0-2=0")


# -- generation: size, schedulers --------------------------------------------------------------------------------------

def test_img2img_keeps_the_images_size():
    """diffusers' Chroma img2img/inpainting make 1024x1024 (the tiny one: 256x256) unless told the size; Generate
    passes the image's, as diffusers called with it does."""
    from diffusers import ChromaImg2ImgPipeline

    owner = Deck(fresh("chroma")).owner
    image = torch.rand(1, 48, 64, 3, generator=torch.Generator().manual_seed(1))
    params = GenerateParams(**{**vars(PARAMS), "denoise": 0.7})
    ours = generate(owner, StackSpec(), params, image=image)
    direct = ChromaImg2ImgPipeline.from_pipe(fresh("chroma"))
    with torch.inference_mode():
        theirs = direct(PARAMS.prompt, image=image.permute(0, 3, 1, 2), strength=0.7, height=48, width=64,
                        num_inference_steps=PARAMS.steps, guidance_scale=PARAMS.cfg, output_type="np",
                        generator=torch.Generator("cpu").manual_seed(PARAMS.seed)).images
    assert ours.shape == (1, 48, 64, 3)
    assert (ours - torch.from_numpy(theirs.copy())).abs().max() <= 2 / 255


def test_flowmatch_lcm_is_not_offered_it_ignores_the_seed():
    """Why FlowMatch LCM is not in Chroma's table: the pipelines do not pass the run's generator to
    scheduler.step, so LCM's per-step noise comes from torch's global generator and one seed gives two images."""
    from diffusers import FlowMatchLCMScheduler

    assert "FlowMatch LCM" not in family().schedulers
    pipe = fresh("chroma")
    pipe.scheduler = FlowMatchLCMScheduler.from_config(pipe.scheduler.config)
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        runs.append(render("chroma", pipe, GenerateParams(**{**vars(PARAMS), "steps": 2})))
    assert not torch.equal(*runs)


# -- features on Chroma: compile envelope, saved stacks, prompt tags, the panel's snapshot ---------------------------

def _transformer_run(deck: Deck) -> torch.Tensor:
    """One forward of the (possibly compiled) transformer, fed as Chroma's pipelines feed it (float mask)."""
    gen = torch.Generator().manual_seed(0)
    img, txt = torch.randn(1, 16, 4, generator=gen), torch.randn(1, 8, 32, generator=gen)
    mask = torch.cat([(torch.arange(8) < 4).float()[None], torch.ones(1, 16)], 1)
    ids = torch.stack(torch.meshgrid(torch.zeros(1), torch.arange(4.0), torch.arange(4.0), indexing="ij"), -1)
    with torch.inference_mode():
        return deck.pipe.transformer(hidden_states=img, encoder_hidden_states=txt, timestep=torch.tensor([0.5]),
                                     img_ids=ids.reshape(-1, 3), txt_ids=torch.zeros(8, 3), attention_mask=mask,
                                     return_dict=False)[0]


def test_compiled_transformer_takes_stack_changes_without_recompiling():
    """Deck.compile on Chroma (the mask hook runs inside the compiled call): reweighting, adding a LyCORIS file,
    disabling, block weights by Chroma's names, fusing one adapter and unfusing cost 0 recompiles, and every
    output equals the eager pipeline's."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    first, second = (str(FIXTURES / f"{n}.safetensors") for n in ("chroma_kohya_default", "chroma_lycoris_lokr_kohya"))
    torch._dynamo.reset()
    try:
        compiled = Deck(fresh("chroma")).add(first, "a").compile(backend="eager", max_rank=32, max_adapters=2)
        eager = Deck(fresh("chroma")).add(first, "a")
        assert (_transformer_run(compiled) - _transformer_run(eager)).abs().max() <= 1e-5
        frames = int(counters["frames"]["total"])
        for what, change in (("reweight", lambda d: d.set_weights("a", model=0.4)),
                             ("add", lambda d: d.add(second, "b", model=0.7)),
                             ("disable", lambda d: d.set_weights("a", enabled=False)),
                             ("blocks", lambda d: d.set_weights_text("b: double_blocks.0=0.3, single_blocks.1=0")),
                             ("enable", lambda d: d.set_weights("a", enabled=True)),
                             ("fuse one", lambda d: d.fuse(names=["b"])),
                             ("unfuse", lambda d: d.unfuse())):
            change(compiled)
            change(eager)
            assert (_transformer_run(compiled) - _transformer_run(eager)).abs().max() <= 1e-4, what
            assert int(counters["frames"]["total"]) == frames, f"{what} recompiled"
    finally:
        torch._dynamo.reset()


def test_a_saved_stack_of_original_named_files_with_a_t5_part_round_trips(tmp_path):
    """Save LoRA Stack on sd-scripts' file (BFL names, T5 part) + ai-toolkit's LoKr at other strengths: the saved
    file loads back to the same images, separate and merged."""
    from loradeck.core.adapters.save import save_stack

    deck = Deck(fresh("chroma")).add(str(FIXTURES / "chroma_kohya_t5xxl.safetensors"), "k", model=0.8, clip=0.6)
    deck.add(str(FIXTURES / "chroma_aitoolkit_lokr.safetensors"), "l", model=-0.4)
    deck.set_weights_text("l: single_blocks.0-1=0.5")
    expected = render("chroma", deck.pipe)
    for mode, rank, tolerance in (("separate", 0, 1e-4), ("merged", 4096, 1e-3)):
        report = save_stack(deck.owner, deck.stack, str(tmp_path / f"{mode}.safetensors"), mode, rank)
        assert report.relative_error < 1e-5
        again = Deck(fresh("chroma")).add(report.path)
        assert {c for c, _, _ in again.owner.prepare(report.path).report.components} == {"transformer",
                                                                                         "text_encoder"}
        assert (render("chroma", again.pipe) - expected).abs().max() < tolerance, mode


def test_prompt_tags_equal_the_same_stack(tmp_path, use_models):
    import shutil

    (tmp_path / "loras").mkdir()
    path = tmp_path / "loras" / "chroma_style.safetensors"
    shutil.copy(FIXTURES / "chroma_kohya_t5xxl.safetensors", path)
    use_models(str(tmp_path))
    tagged = generate(Deck(fresh("chroma")).owner, StackSpec(),
                      GenerateParams(**{**vars(PARAMS), "prompt": "a cat <lora:chroma_style:0.7:0.4>"}))
    deck = Deck(fresh("chroma")).add(str(path), "chroma_style", 0.7, 0.4)
    plain = generate(deck.owner, deck.stack, GenerateParams(**{**vars(PARAMS), "prompt": "a cat"}))
    assert torch.equal(tagged, plain)
    assert not torch.equal(plain, generate(Deck(fresh("chroma")).owner, StackSpec(),
                                           GenerateParams(**{**vars(PARAMS), "prompt": "a cat"})))


def test_the_panel_snapshot_shows_chromas_blocks_strengths_and_base():
    deck = Deck(fresh("chroma")).add(str(FIXTURES / "chroma_kohya_t5xxl.safetensors"), "k", model=0.8, clip=0.5)
    deck.set_weights_text("k: double_blocks.0-1=0.5")
    snapshot = deck.owner.snapshot.to_dict()
    (view,) = snapshot["adapters"]
    assert snapshot["family"] == "chroma" and view["blocks"] == "double_blocks.0-1=0.5"
    assert dict((c, (lo, hi)) for c, lo, hi in view["layer_strengths"]) == {"transformer": (0.4, 0.8),
                                                                            "text_encoder": (0.5, 0.5)}
    assert view["report"]["matched"] == view["report"]["total"] == 34
    assert deck.owner.read_back().adapters == deck.owner.snapshot.adapters


def test_whole_parameter_differences_load_exactly_beside_the_pairs(tmp_path):
    """A bias difference (ComfyUI's extraction writes them by default) sums into the bias at the strength."""
    lora = load_file(str(FIXTURES / "chroma_kohya_default.safetensors"))
    extra = {"lora_unet_double_blocks_0_img_attn_proj.diff_b": torch.linspace(-0.01, 0.01, 32)}
    check_parameter_difference(fresh("chroma"), lora, extra, ("transformer", "transformer_blocks.0.attn.to_out.0.bias"),
                               0.6, tmp_path)


@pytest.mark.parametrize("key,tensor", [
    ("lora_unet_double_blocks_0_img_attn_norm_query_norm.diff", torch.full((16,), 0.01)),  # no such module here
    ("lora_unet_double_blocks_0_img_attn_qkv.diff_m", torch.full((96,), 0.01)),  # a linear has no modulation table
])
def test_parameter_differences_that_fit_nothing_are_refused_whole(key, tensor, tmp_path):
    from loradeck.core import LoraDeckError

    path = tmp_path / "with_diff.safetensors"
    save_file({**load_file(str(FIXTURES / "chroma_kohya_default.safetensors")), key: tensor}, str(path))
    pipe = fresh("chroma")
    before = state(pipe)
    with pytest.raises(LoraDeckError):
        Deck(pipe).add(str(path))
    assert_bit_identical(before, state(pipe))


# -- Chroma and Flux: the same module names and shapes, other weights -------------------------------------------------

TRAINERS = FIXTURES.parent  # the Flux fixtures


@pytest.mark.parametrize("path,on,base,why", [
    (FIXTURES / "chroma_kohya_default.safetensors", "flux", "Chroma", "metadata"),  # every module fits Flux
    (FIXTURES / "chroma_peft_full_te.safetensors", "flux", "Chroma", "approximator"),  # no metadata
    (TRAINERS / "flux_kohya_default.safetensors", "chroma", "Flux", "metadata"),
    (TRAINERS / "flux_bfl_prefix.safetensors", "chroma", "Flux", "modulation"),  # no metadata
])
def test_chroma_and_flux_files_are_refused_on_each_other_naming_their_base(path, on, base, why):
    """The rule: a file is refused on the other family when its metadata names that family's model, or when it
    has modules the pipeline lacks (Chroma's approximator; Flux's modulation, embedders, CLIP), and the message
    names the base it was made for; nothing changes."""
    pipe = fresh(on)
    before = {(c, k): v.clone() for c in ("transformer", "text_encoder") for k, v in
              getattr(pipe, c).state_dict().items()}
    with pytest.raises(IncompatibleLoraError) as caught:
        Deck(pipe).add(str(path))
    message = str(caught.value)
    assert base in message, message
    expected = {"metadata": f"was made for {base}", "approximator": "distilled_guidance_layer",
                "modulation": "mod.lin"}[why]
    assert expected in message, message
    assert_bit_identical(before, {(c, k): v for c in ("transformer", "text_encoder")
                                  for k, v in getattr(pipe, c).state_dict().items()})


def test_a_flux_lora_allowed_on_chroma_loads_exactly_where_it_fits():
    """With partial loads allowed, sd-scripts' Flux LoRA applies on Chroma exactly its modules Chroma has (double
    and single blocks: same names, same shapes) and nothing else: its modulation and CLIP modules are reported."""
    path = TRAINERS / "flux_kohya_default.safetensors"
    expected = load_file(str(TRAINERS / "flux_kohya_default.expected.safetensors"))
    pipe = fresh("chroma")
    before = linear_weights(pipe)
    deck = Deck(pipe).add(str(path), allow_partial=True)
    report = deck.owner.prepare(str(path)).report
    unmatched = {u.split(":")[0] + ":" + ("mod" if "_mod_lin" in u or "modulation" in u else u.split(":")[1][:10])
                 for u in report.unmatched}
    assert unmatched == {"transformer:mod", "text_encoder:text_model"}, report.unmatched
    deck.fuse()
    after, touched = linear_weights(pipe), set()
    for key, delta in expected.items():
        component, modules = trainer_modules(key)
        if key.startswith("te1.") or any((component, m) not in before for m in modules):
            continue  # CLIP, modulation: not in Chroma
        ours = torch.cat([after[component, m] - before[component, m] for m in modules])
        assert float((ours - delta).norm() / delta.norm()) <= TOLERANCE, key
        touched.update((component, m) for m in modules)
    blocks = {".".join(m.split(".")[:2]) for _, m in touched}
    assert blocks == {f"{g}.{i}" for g in ("transformer_blocks", "single_transformer_blocks") for i in (0, 1)}
    assert not [k for k in before if k not in touched and not torch.equal(before[k], after[k])]


@pytest.mark.parametrize("path,on", [(FIXTURES / "chroma_aitoolkit_lora.safetensors", "flux"),
                                     (TRAINERS / "flux_xlabs.safetensors", "chroma")])
def test_a_file_nothing_tells_apart_loads_where_it_fits(path, on):
    """The limit of the rule: no metadata and only modules both models have (ai-toolkit's Chroma LoRA, x-flux's
    Flux LoRA). No key or shape says which it was made for; it loads, every module exactly."""
    report = Deck(fresh(on)).add(str(path)).owner.prepare(str(path)).report
    assert report.matched == report.total and not report.partial
