"""LyCORIS formats on the tiny SDXL model: lora_te1_/lora_te2_ prefixes and SGM (input_blocks) names."""

from __future__ import annotations

import torch
from safetensors.torch import save_file
from test_formats_math import RTOL, dora_formula, loha_formula, lokr_formula, lora_formula

from loradeck.core import Deck
from loradeck.core.families import tiny_pipeline

# kohya key -> (pipeline weight, algorithm): SDXL files name UNet modules as the original model does
MODULES = {
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q":
        ("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight", "loha"),
    "lora_unet_input_blocks_4_0_in_layers_2": ("unet.down_blocks.1.resnets.0.conv1.weight", "lokr"),
    "lora_unet_output_blocks_1_0_in_layers_2": ("unet.up_blocks.0.resnets.1.conv1.weight", "locon"),
    "lora_te1_text_model_encoder_layers_0_self_attn_q_proj":  # transformers 5: no text_model level here
        ("text_encoder.encoder.layers.0.self_attn.q_proj.weight", "dora"),
    "lora_te2_text_model_encoder_layers_1_mlp_fc1":
        ("text_encoder_2.text_model.encoder.layers.1.mlp.fc1.weight", "loha"),
}
FORMULAS = {"loha": loha_formula, "lokr": lokr_formula, "locon": lora_formula, "dora": dora_formula(lora_formula)}


def _parts(algo: str, weight: torch.Tensor, gen) -> dict:
    out, inp, *kernel = weight.shape
    rand = lambda *s: torch.randn(*s, generator=gen) * 0.3  # noqa: E731
    if algo == "loha":
        return {"hada_w1_a": rand(out, 2), "hada_w1_b": rand(2, inp), "hada_w2_a": rand(out, 3),
                "hada_w2_b": rand(3, inp), "alpha": torch.tensor(2.0)}
    if algo == "lokr":  # out 32 = 4 * 8, in 16 = 2 * 8; w2 Tucker on the 3x3 kernel
        return {"lokr_w1": rand(4, 2), "lokr_w2_a": rand(2, 8), "lokr_w2_b": rand(2, 8),
                "lokr_t2": rand(2, 2, *kernel), "alpha": torch.tensor(1.0)}
    if algo == "locon":
        return {"lora_down.weight": rand(2, inp, 1, 1), "lora_mid.weight": rand(2, 2, *kernel),
                "lora_up.weight": rand(out, 2, 1, 1), "alpha": torch.tensor(1.0)}
    norm = weight.norm(dim=0, keepdim=True)
    return {"lora_down.weight": rand(4, inp), "lora_up.weight": rand(out, 4), "alpha": torch.tensor(4.0),
            "dora_scale": norm * (1 + 0.1 * torch.randn(norm.shape, generator=gen))}


def _weights(pipe) -> dict[str, torch.Tensor]:
    return {f"{c}.{n.replace('.base_layer', '')}": p.detach().clone()
            for c in ("unet", "text_encoder", "text_encoder_2")
            for n, p in getattr(pipe, c).named_parameters() if "lora_" not in n}


def test_mixed_lycoris_file_on_sdxl_matches_the_formulas(tmp_path):
    pipe = tiny_pipeline("sdxl")
    before, gen, sd, expected = _weights(pipe), torch.Generator().manual_seed(0), {}, {}
    for key, (weight, algo) in MODULES.items():
        parts = _parts(algo, before[weight], gen)
        sd.update({f"{key}.{part}": t for part, t in parts.items()})
        expected[weight] = FORMULAS[algo](parts, before[weight])
    path = str(tmp_path / "sdxl_mixed.safetensors")
    save_file(sd, path)
    deck = Deck(pipe).add(path)
    report = deck.owner.prepare(path).report
    assert report.matched == report.total == 5 and report.format == "LyCORIS LoRA+LoCon+LoHa+LoKr with DoRA"
    assert {c for c, m, _ in report.components if m} == {"unet", "text_encoder", "text_encoder_2"}
    deck.fuse()
    after = _weights(pipe)
    for weight, want in expected.items():
        assert (after[weight] - before[weight] - want).norm() / want.norm() < RTOL, weight
    deck.unfuse().unload()
    assert all(torch.equal(before[k], v) for k, v in _weights(pipe).items())
