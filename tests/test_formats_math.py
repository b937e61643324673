"""Each format's fused weight delta equals the reference formula, module by module.

The formulas below are written out here from the algorithms' definitions (LoRA up·down·alpha/rank,
LoHa (w1a·w1b)⊙(w2a·w2b)·alpha/rank, LoKr kron(w1, w2)·scale, DoRA's magnitude renormalisation),
from the file's own tensors; LoRA Deck's converters are not used to compute them.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import lora_fixtures as fx
from helpers import base_weights, make_pipe
from loradeck.core import Deck

RTOL = 1e-3


def _alpha_scale(parts, rank: int) -> float:
    alpha = float(parts["alpha"]) if "alpha" in parts else 0.0
    return alpha / rank if alpha else 1.0


def lora_formula(parts, weight):
    up, down = parts["lora_up.weight"].flatten(1), parts["lora_down.weight"].flatten(1)
    if "lora_mid.weight" in parts:  # CP/Tucker LoCon: W[o,c,k,l] = sum up[o,i] mid[i,j,k,l] down[j,c]
        delta = torch.einsum("oi,ijkl,jc->ockl", up, parts["lora_mid.weight"], down)
    else:
        delta = up @ down
    return delta.reshape(weight.shape) * _alpha_scale(parts, down.shape[0])


def _hada(parts, n: int):
    w_a, w_b = parts[f"hada_w{n}_a"], parts[f"hada_w{n}_b"]
    if f"hada_t{n}" in parts:  # W[p,r,k,l] = sum t[i,j,k,l] w_b[j,r] w_a[i,p]
        return torch.einsum("ijkl,jr,ip->prkl", parts[f"hada_t{n}"], w_b, w_a)
    return w_a @ w_b


def loha_formula(parts, weight):
    delta = (_hada(parts, 1) * _hada(parts, 2)).reshape(weight.shape)
    return delta * _alpha_scale(parts, parts["hada_w1_b"].shape[0])


def _kron_side(parts, n: int):
    if f"lokr_w{n}" in parts:
        return parts[f"lokr_w{n}"], None
    w_a, w_b = parts[f"lokr_w{n}_a"], parts[f"lokr_w{n}_b"]
    if f"lokr_t{n}" in parts:
        return torch.einsum("ijkl,jr,ip->prkl", parts[f"lokr_t{n}"], w_b, w_a), w_b.shape[0]
    return w_a @ w_b, w_b.shape[0]


def lokr_formula(parts, weight):
    (w1, dim1), (w2, dim2) = _kron_side(parts, 1), _kron_side(parts, 2)
    dim = dim2 if dim2 is not None else dim1  # the reference's rule: w2's rank wins, none -> scale 1
    scale = float(parts["alpha"]) / dim if dim is not None and "alpha" in parts else 1.0
    if w2.dim() == 4:
        w1 = w1[:, :, None, None]
    return torch.kron(w1.contiguous(), w2.contiguous()).reshape(weight.shape) * scale


def full_formula(parts, weight):
    return parts["diff"].reshape(weight.shape)


def dora_formula(base_formula):
    def formula(parts, weight):
        merged = weight + base_formula(parts, weight)
        m = parts["dora_scale"]
        axis = 0 if m.shape[0] == weight.shape[0] else 1
        dims = tuple(d for d in range(weight.dim()) if d != axis)
        norm = torch.linalg.vector_norm(merged, dim=dims, keepdim=True)
        return m.reshape([-1 if d == axis else 1 for d in range(weight.dim())]) * merged / norm - weight
    return formula


def kohya_modules(path: str, pipe) -> dict[str, dict]:
    """'unet.<module>.weight' -> that module's tensors in a kohya-named file, by part name."""
    sd = load_file(path)
    found = {}
    for component in ("unet", "text_encoder"):
        for name, _ in getattr(pipe, component).named_modules():
            key = fx.kohya_key(component, name) + "."
            parts = {k[len(key):]: v for k, v in sd.items() if k.startswith(key)}
            if parts:
                found[f"{component}.{name}.weight"] = parts
    assert len({k.split(".")[0] for k in sd}) == len(found), "every module of the file is mapped"
    return found


def fused_deltas(path: str, strength: float = 1.0):
    pipe = make_pipe()
    before = base_weights(pipe)
    Deck(pipe).add(path, model=strength, clip=strength).fuse()
    after = base_weights(pipe)
    return before, {k: after[k] - before[k] for k in before}


def assert_deltas(path: str, formula, strength: float = 1.0) -> int:
    before, deltas = fused_deltas(path, strength)
    expected = kohya_modules(path, make_pipe())
    for key, parts in expected.items():
        want = strength * formula(parts, before[key])
        error = (deltas[key] - want).norm() / want.norm()
        assert error < RTOL, f"{key}: relative error {error:.2e}"
    untouched = [k for k, d in deltas.items() if k not in expected and d.abs().max() > 0]
    assert not untouched, f"weights changed that the file does not name: {untouched[:3]}"
    return len(expected)


CASES = {
    "kohya LoCon (3x3 convs, conv alpha/rank != linear)": (lambda p: fx.write_kohya_locon(p, 1), lora_formula),
    "LoCon Tucker (lora_mid)": (lambda p: fx.write_kohya_locon(p, 2, tucker=True), lora_formula),
    "LoHa": (lambda p: fx.write_loha(p, 3), loha_formula),
    "LoHa Tucker": (lambda p: fx.write_loha(p, 4, tucker=True), loha_formula),
    "LoHa rank 6 (dense pair)": (lambda p: fx.write_loha(p, 5, rank=6), loha_formula),
    "LoKr w1 full, w2 decomposed (Tucker on convs)": (lambda p: fx.write_lokr(p, 6), lokr_formula),
    "LoKr w1 full, w2 decomposed (flattened convs)": (lambda p: fx.write_lokr(p, 6, tucker=False), lokr_formula),
    "LoKr both full": (lambda p: fx.write_lokr(p, 7, w2_decomposed=False), lokr_formula),
    "LoKr both decomposed": (lambda p: fx.write_lokr(p, 8, w1_decomposed=True), lokr_formula),
    "LyCORIS full (diff)": (lambda p: fx.write_full(p, 13), full_formula),
    "DoRA on LoCon, input axis": (lambda p: fx.write_dora(p, 9, "lora", axis=1), dora_formula(lora_formula)),
    "DoRA on LoCon, output axis": (lambda p: fx.write_dora(p, 10, "lora", axis=0), dora_formula(lora_formula)),
    "DoRA on LoHa": (lambda p: fx.write_dora(p, 11, "loha", axis=1), dora_formula(loha_formula)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fused_delta_equals_the_formula(case, tmp_path):
    write, formula = CASES[case]
    assert assert_deltas(write(str(tmp_path / "f.safetensors")), formula) >= 10


@pytest.mark.parametrize("case", ["LoHa", "LoKr both decomposed", "DoRA on LoCon, input axis"])
def test_strength_scales_the_delta_linearly(case, tmp_path):
    """Strength 0.5 fuses half the delta (for DoRA: ComfyUI's W + s·(DoRA(W) − W))."""
    write, formula = CASES[case]
    assert_deltas(write(str(tmp_path / "f.safetensors")), formula, strength=0.5)


def _diffusers_parts(path: str, pipe, to_module) -> dict[str, dict]:
    found = {}
    for key, tensor in load_file(path).items():
        module, part = to_module(key)
        found.setdefault(module, {})[part] = tensor
    return found


def _peft_key(key: str):
    stem, part = key.rsplit(".lora_", 1) if ".lora_" in key else (key, "")
    module = "unet." + stem.removeprefix("base_model.model.") + ".weight"
    return module, {"A.weight": "down", "B.weight": "up", "magnitude_vector": "m"}[part]


@pytest.mark.parametrize("dora", [False, True])
def test_peft_file_delta(dora, tmp_path):
    """PEFT base_model.model.* files have no alpha: up·down at scale 1; lora_magnitude_vector is DoRA."""
    path = fx.write_peft(str(tmp_path / "peft.safetensors"), seed=12, dora=dora)
    before, deltas = fused_deltas(path)
    parts = _diffusers_parts(path, None, _peft_key)
    for key, p in parts.items():
        want = p["up"] @ p["down"]
        if dora:
            merged = before[key] + want
            want = p["m"][:, None] * merged / merged.norm(dim=1, keepdim=True) - before[key]
        assert (deltas[key] - want).norm() / want.norm() < RTOL, key
    assert len(parts) == len(fx.modules(make_pipe(), "unet", fx.UNET_LINEAR)) > 10


def test_block_weights_scale_lycoris_modules_like_lora_ones(tmp_path):
    """Per-block weights reach every module of a LoHa file (attention, resnet convs, samplers)."""
    path = fx.write_loha(str(tmp_path / "f.safetensors"), 14)
    pipe = make_pipe()
    before = base_weights(pipe)
    Deck(pipe).add(path, name="x").set_weights("x", blocks={"down": 0.5, "mid": 1.0, "up": 0.0}).fuse()
    after = base_weights(pipe)
    for key, parts in kohya_modules(path, make_pipe()).items():
        block = key.split(".")[1].split("_")[0] if key.startswith("unet.") else "text"
        strength = {"down": 0.5, "mid": 1.0, "up": 0.0, "text": 1.0}[block]
        want = strength * loha_formula(parts, before[key])
        assert (after[key] - before[key] - want).norm() <= RTOL * max(want.norm(), 1e-6), key


def test_peft_dora_on_convolutions_equals_peft_merge(tmp_path):
    """peft keeps a conv layer's DoRA magnitude as [1, out, 1, 1] (per output channel, transposed): a file saved by
    diffusers from a peft DoRA adapter on resnet convolutions fuses to peft's own merge of it."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = make_pipe()
    unet = pipe.unet
    targets = ["conv1", "conv2", "to_q"]
    config = LoraConfig(r=2, lora_alpha=4, target_modules=targets, init_lora_weights=False, use_dora=True)
    unet.add_adapter(config)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_magnitude_vector" in name:
                assert param.dim() == 1 or tuple(param.shape[:1]) == (1,)  # conv: [1, out, 1, 1]
                param.mul_(1 + 0.1 * torch.randn(param.shape, generator=gen))
    StableDiffusionPipeline.save_lora_weights(str(tmp_path), weight_name="dora.safetensors",
                                              unet_lora_layers=get_peft_model_state_dict(unet),
                                              unet_lora_adapter_metadata=config.to_dict())
    unet.fuse_lora()
    merged = {k.replace(".base_layer", ""): v.detach().clone() for k, v in unet.state_dict().items()
              if k.endswith("base_layer.weight")}
    fresh = make_pipe()
    deck = Deck(fresh)
    deck.add(str(tmp_path / "dora.safetensors"), name="d")
    deck.fuse()
    convs = 0
    for key, want in merged.items():
        got = fresh.unet.get_parameter(key)
        assert (got - want).norm() <= 1e-5 * want.norm(), key
        convs += want.dim() == 4
    assert convs >= 4
