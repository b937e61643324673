"""Detection by key layout, the pure converters, the exact low-rank rewrites, base-model hints."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

import lora_fixtures as fx
from helpers import make_pipe
from loradeck.core import Deck, IncompatibleLoraError, LoraFileError
from loradeck.core.families.sd1 import FAMILY as SD1
from loradeck.core.formats import ANY_COMPONENT, convert
from loradeck.core.formats.lowrank import cheapest, hadamard_pair, identity_split, kron_pair, tucker_down


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _close(a, b):
    return (a - b).norm() / b.norm() < 1e-5


def test_hadamard_pair_is_the_hadamard_product():
    u1, d1, u2, d2 = _rand(6, 2, seed=1), _rand(2, 5, seed=2), _rand(6, 3, seed=3), _rand(3, 5, seed=4)
    up, down = hadamard_pair((u1, d1), (u2, d2))
    assert up.shape == (6, 6) and down.shape == (6, 5)
    assert _close(up @ down, (u1 @ d1) * (u2 @ d2))


def test_kron_pair_is_the_kronecker_product_also_for_conv_kernels():
    u1, d1, u2, d2 = _rand(2, 1, seed=1), _rand(1, 3, seed=2), _rand(4, 2, seed=3), _rand(2, 5, 3, 3, seed=4)
    up, down = kron_pair((u1, d1), (u2, d2))
    expected = torch.kron((u1 @ d1)[:, :, None, None], torch.einsum("or,rikl->oikl", u2, d2))
    assert _close((up @ down).reshape(expected.shape), expected)


def test_tucker_core_folds_into_down():
    core, down, up = _rand(3, 2, 3, 3, seed=1), _rand(2, 7, seed=2), _rand(5, 3, seed=3)
    expected = torch.einsum("oi,ijkl,jc->ockl", up, core, down)
    assert _close((up @ tucker_down(core, down).flatten(1)).reshape(expected.shape), expected)


def test_cheapest_keeps_the_product_and_picks_the_smaller_form():
    up, down = _rand(8, 40, seed=1), _rand(40, 6, seed=2)
    dense_up, dense_down = cheapest((up, down))
    assert dense_down.shape[0] == 6 and _close(dense_up @ dense_down, up @ down)
    small = (_rand(8, 2, seed=3), _rand(2, 6, seed=4))
    assert cheapest(small)[0].shape == (8, 2)
    assert torch.equal(identity_split(_rand(3, 9))[0], torch.eye(3))


LAYOUTS = {
    "kohya": (lambda p: fx.write_kohya_locon(p, 1), "kohya LoRA+LoCon", {"unet", "text_encoder"}),
    "loha": (lambda p: fx.write_loha(p, 1), "LyCORIS LoHa", {"unet", "text_encoder"}),
    "lokr": (lambda p: fx.write_lokr(p, 1), "LyCORIS LoKr", {"unet", "text_encoder"}),
    "dora": (lambda p: fx.write_dora(p, 1), "kohya LoRA+LoCon with DoRA", {"unet", "text_encoder"}),
    "peft": (lambda p: fx.write_peft(p, 1), "PEFT", {ANY_COMPONENT}),
    "old": (lambda p: fx.write_old_diffusers(p, 1), "diffusers (attention processors)", {"unet", "text_encoder"}),
    "old_unprefixed": (lambda p: fx.write_old_diffusers(p, 1, unet_prefix=False), "diffusers (attention processors)",
                       {ANY_COMPONENT}),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_layout_is_detected_by_keys(tmp_path, layout):
    write, label, components = LAYOUTS[layout]
    path = write(str(tmp_path / "f.safetensors"))
    converted = convert(path, load_file(path), {}, SD1)
    assert converted.format == label and set(converted.patches) == components
    assert converted.total > 10 and not converted.ignored


def test_old_processor_names_map_to_attention_modules(tmp_path):
    path = fx.write_old_diffusers(str(tmp_path / "f.safetensors"), 1)
    names = set(convert(path, load_file(path), {}, SD1).patches["unet"])
    assert "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0" in names


def test_alpha_zero_means_rank_and_lokr_full_sides_ignore_alpha(tmp_path):
    sd = {"lora_unet_a.lora_down.weight": _rand(4, 8), "lora_unet_a.lora_up.weight": _rand(8, 4),
          "lora_unet_a.alpha": torch.tensor(0.0), "lora_unet_b.lokr_w1": _rand(2, 2),
          "lora_unet_b.lokr_w2": _rand(4, 4), "lora_unet_b.alpha": torch.tensor(7.0)}
    patches = convert("x.safetensors", sd, {}, SD1).patches["unet"]
    assert patches["a"].scale == 1.0
    assert patches["b"].scale == pytest.approx(1.0)


def _dotted(sd: dict, prefix: str = "diffusion_model.") -> dict:
    """kohya-named LyCORIS modules under dotted names, as ai-toolkit writes its LoKr (``<prefix><module>.lokr_w1``)."""
    return {f"{prefix}{key.split('.', 1)[0].removeprefix('lora_unet_')}.{key.split('.', 1)[1]}": t
            for key, t in sd.items()}


def test_lycoris_under_dotted_names_builds_as_the_kohya_layout_does(tmp_path):
    path = fx.write_lokr(str(tmp_path / "k.safetensors"), 1)
    unet = {k: t for k, t in load_file(path).items() if k.startswith("lora_unet_")}
    kohya = convert(path, unet, {}, SD1).patches["unet"]
    dotted = convert(path, _dotted(unet), {}, SD1)
    assert dotted.format == "original names (diffusion_model.) LoKr" and not dotted.ignored
    assert dotted.patches["unet"].keys() == kohya.keys()
    for name, patch in kohya.items():
        mine, theirs = dotted.patches["unet"][name].build(), patch.build()
        assert torch.equal(mine.up, theirs.up) and torch.equal(mine.down, theirs.down) and mine.alpha == theirs.alpha


def test_an_infinite_alpha_is_ignored_where_lokr_ignores_alpha_and_refused_where_it_scales():
    full = {"diffusion_model.a.lokr_w1": _rand(2, 2), "diffusion_model.a.lokr_w2": _rand(4, 4),
            "diffusion_model.a.alpha": torch.tensor(float("inf"), dtype=torch.float16)}  # ai-toolkit's full rank
    assert convert("x.safetensors", full, {}, SD1).patches["unet"]["a"].scale == 1.0
    decomposed = {"diffusion_model.a.lokr_w1": _rand(2, 2), "diffusion_model.a.lokr_w2_a": _rand(4, 2),
                  "diffusion_model.a.lokr_w2_b": _rand(2, 4), "diffusion_model.a.alpha": torch.tensor(float("inf"))}
    with pytest.raises(LoraFileError, match="alpha is inf"):
        convert("x.safetensors", decomposed, {}, SD1)
    lora = {"lora_unet_a.lora_down.weight": _rand(4, 8), "lora_unet_a.lora_up.weight": _rand(8, 4),
            "lora_unet_a.alpha": torch.tensor(float("inf"))}
    with pytest.raises(LoraFileError, match="alpha is inf"):
        convert("x.safetensors", lora, {}, SD1)


def test_only_a_positive_infinite_alpha_passes_the_file_checks():
    from loradeck.core.files.checks import check_tensor

    assert check_tensor("f", "x.alpha", torch.tensor(float("inf"))).isinf()
    for bad in (float("-inf"), float("nan")):
        with pytest.raises(LoraFileError, match="NaN or infinite"):
            check_tensor("f", "x.alpha", torch.tensor(bad))
    with pytest.raises(LoraFileError, match="NaN or infinite"):
        check_tensor("f", "x.lokr_w1", torch.tensor([[float("inf")]]))


def test_whole_parameter_differences_beside_pairs_become_parameter_patches():
    from loradeck.core.formats import ParamDelta

    sd = {"diffusion_model.a.lora_A.weight": _rand(4, 8), "diffusion_model.a.lora_B.weight": _rand(8, 4),
          "diffusion_model.a.diff_b": _rand(8), "diffusion_model.b.diff": _rand(8, 8),
          "diffusion_model.b.diff_b": _rand(8), "diffusion_model.n.diff": _rand(8), "blocks.0.diff_m": _rand(1, 6, 8)}
    converted = convert("x.safetensors", sd, {}, SD1)
    unet = converted.patches["unet"]
    assert set(unet) == {"a", "a.bias", "b", "b.bias", "n.weight"} and not converted.ignored
    assert converted.patches["*"]["blocks.0.modulation"].param == "modulation"  # lightx2v's Wan modulation
    assert isinstance(unet["a.bias"], ParamDelta) and torch.equal(unet["a.bias"].delta, sd["diffusion_model.a.diff_b"])
    assert not isinstance(unet["b"], ParamDelta)  # a 2-D difference stays an exact pair (a peft layer carries it)


def test_unknown_layout_says_what_it_looks_like():
    sd = {"single_transformer_blocks.0.attn.to_q.weight_x": torch.zeros(2, 2)}
    with pytest.raises(LoraFileError, match="does not recognise.*looks like a LoRA for Flux"):
        convert("flux.safetensors", sd, {}, SD1)


WRONG_BASES = {
    "flux": ({"transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight": (4, 3072),
              "transformer.single_transformer_blocks.0.attn.to_q.lora_B.weight": (3072, 4)}, "Flux"),
    "sd2": ({"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (4, 1024),
             "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": (1024, 4)}, "SD 2.x"),
    "sd1": ({"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 768),
             "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": (320, 4)},
            "SD 1.x (cross-attention width 768"),
}


@pytest.mark.parametrize("base", list(WRONG_BASES))
def test_wrong_base_error_names_the_files_base_and_this_pipeline(tmp_path, base):
    shapes, expected = WRONG_BASES[base]
    path = str(tmp_path / f"{base}.safetensors")
    save_file({k: torch.zeros(*s) for k, s in shapes.items()}, path)
    with pytest.raises(IncompatibleLoraError) as caught:
        Deck(make_pipe()).add(path)
    message = str(caught.value)
    assert f"{base}.safetensors" in message and expected in message, message
    assert "Stable Diffusion 1.x/2.x pipeline (unet cross-attention width 32, text_encoder width 32)" in message
