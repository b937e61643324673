"""Every LoRA file writer of the tests: each real-world key layout for the tiny SD 1.x model, files saved by
diffusers' own save_lora_weights (SD1 and per family), and plain kohya files.

Each writer takes a path and a seed and writes random tensors under the key names and shapes
the original trainer uses (kohya-ss sd-scripts, LyCORIS, peft, old diffusers). Nothing here
uses LoRA Deck's converters: the tests compare what LoRA Deck applies with formulas of their own.
"""

from __future__ import annotations

import json
import os

import torch
from peft import LoraConfig, get_peft_model_state_dict
from safetensors.torch import save_file

from family_fixtures import DENOISER_TARGETS, SAVED_TEXT_ENCODERS, TEXT_TARGETS, fresh
from loradeck.core.families import FAMILIES, tiny_pipeline

UNET_LINEAR = ("attn1.to_q", "attn2.to_k", "ff.net.2")
UNET_CONV = ("resnets.0.conv1", "resnets.1.conv2", "conv_shortcut", "attentions.0.proj_in", "downsamplers.0.conv")
TE_LINEAR = ("self_attn.q_proj", "mlp.fc1")
KOHYA_PREFIX = {"unet": "lora_unet_", "text_encoder": "lora_te_text_model_"}
KOHYA_METADATA = {
    "ss_base_model_version": "sd_v1", "ss_network_module": "networks.lora", "ss_network_dim": "4",
    "ss_network_alpha": "2", "ss_output_name": "fixture", "ss_network_args": json.dumps({"conv_dim": "2"}),
    "ss_tag_frequency": json.dumps({"10_sks": {"sks style": 12, "cat": 10, "outdoors": 3},
                                    "5_more": {"cat": 4, "night": 1}}),
}


def _pipe():
    return tiny_pipeline("sd1")


def modules(pipe, component: str, suffixes) -> list[tuple[str, torch.nn.Module]]:
    """(name, module) of the Linear/Conv2d modules of ``component`` whose names end with ``suffixes``."""
    model = getattr(pipe, component)
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and n.endswith(suffixes)]


def kohya_key(component: str, name: str) -> str:
    return KOHYA_PREFIX[component] + name.replace(".", "_")


def _targets(pipe, convs: bool = True):
    """(component, name, module) for the modules the LyCORIS-style fixtures patch."""
    chosen = [("unet", n, m) for n, m in modules(pipe, "unet", UNET_LINEAR)]
    if convs:
        chosen += [("unet", n, m) for n, m in modules(pipe, "unet", UNET_CONV)]
    return chosen + [("text_encoder", n, m) for n, m in modules(pipe, "text_encoder", TE_LINEAR)]


def _shape(module) -> tuple[int, int, tuple[int, ...]]:
    """(out, in, kernel) of a Linear (kernel ()) or Conv2d."""
    if isinstance(module, torch.nn.Linear):
        return module.out_features, module.in_features, ()
    return module.out_channels, module.in_channels, tuple(module.kernel_size)


class _Random:
    def __init__(self, seed: int):
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, *shape, scale: float = 0.3) -> torch.Tensor:
        return torch.randn(*shape, generator=self.gen) * scale


def _save(path: str, sd: dict, metadata: dict | None = None) -> str:
    save_file({k: v.contiguous() for k, v in sd.items()}, path, metadata=metadata)
    return path


def write_kohya_locon(path: str, seed: int, tucker: bool = False) -> str:
    """kohya LoCon: linear rank 4 / alpha 2, convs rank 2 / alpha 1 (3x3 kernels on resnets); with
    ``tucker`` the 3x3 convs carry ``lora_mid`` (LyCORIS' CP/Tucker LoCon)."""
    rand, sd = _Random(seed), {}
    for component, name, module in _targets(_pipe()):
        out, inp, kernel = _shape(module)
        key = kohya_key(component, name)
        rank, alpha = (2, 1.0) if kernel else (4, 2.0)
        if tucker and kernel == (3, 3):
            sd[f"{key}.lora_down.weight"] = rand(rank, inp, 1, 1)
            sd[f"{key}.lora_mid.weight"] = rand(rank, rank, *kernel)
        else:
            sd[f"{key}.lora_down.weight"] = rand(rank, inp, *kernel)
        sd[f"{key}.lora_up.weight"] = rand(out, rank, *((1, 1) if kernel else ()))
        sd[f"{key}.alpha"] = torch.tensor(alpha)
    return _save(path, sd, KOHYA_METADATA)


def write_loha(path: str, seed: int, tucker: bool = False, rank: int = 2, alpha: float = 3.0) -> str:
    """LyCORIS LoHa; with ``tucker`` the 3x3 convs use ``hada_t1/t2`` (then ``hada_w*_a`` is [rank, out])."""
    rand, sd = _Random(seed), {}
    for component, name, module in _targets(_pipe()):
        out, inp, kernel = _shape(module)
        key = kohya_key(component, name)
        for n, r in ((1, rank), (2, rank + 1)):  # unequal ranks: the scale uses w1's (as the reference does)
            if tucker and kernel == (3, 3):
                sd[f"{key}.hada_w{n}_a"] = rand(r, out)
                sd[f"{key}.hada_w{n}_b"] = rand(r, inp)
                sd[f"{key}.hada_t{n}"] = rand(r, r, *kernel)
            else:
                sd[f"{key}.hada_w{n}_a"] = rand(out, r)
                sd[f"{key}.hada_w{n}_b"] = rand(r, inp * (kernel[0] * kernel[1] if kernel else 1))
        sd[f"{key}.alpha"] = torch.tensor(alpha)
    meta = {**KOHYA_METADATA, "ss_network_module": "lycoris.kohya", "ss_network_args": json.dumps({"algo": "loha"})}
    return _save(path, sd, meta)


def split(dim: int) -> tuple[int, int]:
    """dim -> (a, b) with a * b == dim, a small (LyCORIS' factor)."""
    a = 4 if dim % 4 == 0 and dim > 4 else 1
    return a, dim // a


def _lokr_side(rand, sd, key: str, n: int, shape: tuple, decomposed: bool, rank: int, tucker: bool):
    rows, cols, *kernel = shape
    if not decomposed:
        sd[f"{key}.lokr_w{n}"] = rand(*shape)
    elif kernel and tucker:  # Tucker w2 on a conv: w_a is [rank, rows]
        sd[f"{key}.lokr_w{n}_a"] = rand(rank, rows)
        sd[f"{key}.lokr_w{n}_b"] = rand(rank, cols)
        sd[f"{key}.lokr_t{n}"] = rand(rank, rank, *kernel)
    else:  # a conv kernel without Tucker is flattened into w_b: [rank, cols*kh*kw]
        sd[f"{key}.lokr_w{n}_a"] = rand(rows, rank)
        sd[f"{key}.lokr_w{n}_b"] = rand(rank, cols * (kernel[0] * kernel[1] if kernel else 1))


def write_lokr(path: str, seed: int, w1_decomposed: bool = False, w2_decomposed: bool = True,
               tucker: bool = True, rank: int = 2, alpha: float = 3.0) -> str:
    """LyCORIS LoKr: w = kron(w1, w2); each side full (``lokr_w1``) or decomposed (``lokr_w1_a/b``);
    on 3x3 convs w2 is [c, d, 3, 3] (full), Tucker (``lokr_t2``) or flattened into ``lokr_w2_b``;
    1x1 convs take a plain-matrix w2."""
    rand, sd = _Random(seed), {}
    for component, name, module in _targets(_pipe()):
        out, inp, kernel = _shape(module)
        key = kohya_key(component, name)
        (a, c), (b, d) = split(out), split(inp)
        conv = kernel if kernel and kernel != (1, 1) else ()
        _lokr_side(rand, sd, key, 1, (a, b), w1_decomposed, rank + 1, tucker)  # unequal ranks: w2's sets the scale
        _lokr_side(rand, sd, key, 2, (c, d, *conv), w2_decomposed, rank, tucker)
        sd[f"{key}.alpha"] = torch.tensor(alpha)
    meta = {**KOHYA_METADATA, "ss_network_module": "lycoris.kohya", "ss_network_args": json.dumps({"algo": "lokr"})}
    return _save(path, sd, meta)


def write_full(path: str, seed: int) -> str:
    """LyCORIS "full": the weight difference itself, ``<module>.diff`` of the layer's shape."""
    rand, sd = _Random(seed), {}
    for component, name, module in _targets(_pipe()):
        sd[f"{kohya_key(component, name)}.diff"] = rand(*module.weight.shape, scale=0.05)
    return _save(path, sd)


def _magnitude(weight: torch.Tensor, axis: int, rand) -> torch.Tensor:
    dims = tuple(d for d in range(weight.dim()) if d != axis)
    norm = torch.linalg.vector_norm(weight.float(), dim=dims, keepdim=True)
    return norm * (1.0 + rand(*norm.shape, scale=0.2))


def write_dora(path: str, seed: int, algo: str = "lora", axis: int = 1) -> str:
    """A kohya LoRA/LoCon (``algo="lora"``) or LoHa (``"loha"``) file with ``dora_scale`` on every
    module: [out, 1, ...] (``axis=0``) or LyCORIS' default [1, in, ...] (``axis=1``)."""
    writer = write_kohya_locon if algo == "lora" else write_loha
    from safetensors.torch import load_file

    writer(path, seed)
    sd, rand, pipe = load_file(path), _Random(seed + 1000), _pipe()
    for component, name, module in _targets(pipe):
        sd[f"{kohya_key(component, name)}.dora_scale"] = _magnitude(module.weight.detach(), axis, rand)
    return _save(path, sd, {**KOHYA_METADATA, "ss_network_args": json.dumps({"dora_wd": "true"})})


def write_peft(path: str, seed: int, component: str = "unet", dora: bool = False, rank: int = 4) -> str:
    """A peft ``save_pretrained``-style file: ``base_model.model.<module>.lora_A.weight`` for one model
    (no component prefix, no alpha: scale 1); ``dora`` adds ``lora_magnitude_vector`` [out]."""
    rand, sd, pipe = _Random(seed), {}, _pipe()
    suffixes = UNET_LINEAR if component == "unet" else TE_LINEAR
    for name, module in modules(pipe, component, suffixes):
        key = f"base_model.model.{name}"
        sd[f"{key}.lora_A.weight"] = rand(rank, module.in_features)
        sd[f"{key}.lora_B.weight"] = rand(module.out_features, rank)
        if dora:
            sd[f"{key}.lora_magnitude_vector"] = _magnitude(module.weight.detach(), 0, rand).flatten()
    return _save(path, sd)


def write_old_diffusers(path: str, seed: int, unet_prefix: bool = True, rank: int = 4) -> str:
    """The attention-processor layout of diffusers < 0.21: ``[unet.]<attn>.processor.to_q_lora.down.weight``;
    with the prefix, the text encoder's ``text_encoder.<module>.lora_linear_layer.down.weight`` too."""
    rand, sd, pipe = _Random(seed), {}, _pipe()
    head = "unet." if unet_prefix else ""
    for name, module in modules(pipe, "unet", ("to_q", "to_k", "to_v", "to_out.0")):
        attn, _, proj = name.rpartition(".to_")
        proj = "out" if proj == "out.0" else proj
        key = f"{head}{attn}.processor.to_{proj}_lora"
        sd[f"{key}.down.weight"] = rand(rank, module.in_features)
        sd[f"{key}.up.weight"] = rand(module.out_features, rank)
    if unet_prefix:
        for name, module in modules(pipe, "text_encoder", TE_LINEAR):
            key = f"text_encoder.text_model.{name}.lora_linear_layer"
            sd[f"{key}.down.weight"] = rand(rank, module.in_features)
            sd[f"{key}.up.weight"] = rand(module.out_features, rank)
    return _save(path, sd)


def write_sdxl_shaped(path: str, seed: int) -> str:
    """An SDXL-style kohya file: ``lora_te2_`` keys, cross-attention width 2048, SDXL metadata."""
    rand = _Random(seed)
    sd = {
        "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": rand(4, 2048),
        "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": rand(640, 4),
        "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": rand(4, 1280),
        "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": rand(1280, 4),
    }
    return _save(path, sd, {"ss_base_model_version": "sdxl_base_v1-0"})


def write_unknown_modules(path: str, seed: int) -> str:
    """Valid kohya layout whose modules exist in no SD model (renamed keys)."""
    rand = _Random(seed)
    sd = {f"lora_unet_nowhere_block_{i}_proj.{part}": rand(*shape)
          for i in range(3) for part, shape in (("lora_down.weight", (4, 16)), ("lora_up.weight", (16, 4)))}
    return _save(path, sd)


def write_oft(path: str, seed: int) -> str:
    """A LyCORIS OFT file (an algorithm LoRA Deck recognises but cannot apply)."""
    rand, sd = _Random(seed), {}
    for component, name, _module in _targets(_pipe(), convs=False):
        sd[f"{kohya_key(component, name)}.oft_blocks"] = rand(4, 4, 4)
        sd[f"{kohya_key(component, name)}.alpha"] = torch.tensor(1.0)
    return _save(path, sd)


# -- files written by diffusers' own save_lora_weights, and plain kohya files ---------------------
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def save_diffusers_lora(path: str, seed: int, unet_targets=UNET_TARGETS, te_targets=TE_TARGETS,
                        rank: int = 4, alpha: float = 2.0) -> str:
    """A LoRA file written by diffusers' own save_lora_weights (peft layers with random weights)."""
    from diffusers import StableDiffusionPipeline

    pipe = tiny_pipeline("sd1")
    torch.manual_seed(seed)
    layers, metadata = {}, {}
    for component, targets in (("unet", unet_targets), ("text_encoder", te_targets)):
        if not targets:
            continue
        model = getattr(pipe, component)
        config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, init_lora_weights=False)
        model.add_adapter(config)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.mul_(3.0)  # peft's random init is small; make the effect clearly visible
        layers[f"{component}_lora_layers"] = get_peft_model_state_dict(model)
        metadata[f"{component}_lora_adapter_metadata"] = config.to_dict()
    folder, weight_name = os.path.split(path)
    StableDiffusionPipeline.save_lora_weights(folder, weight_name=weight_name, **layers, **metadata)
    return path


def save_kohya_lora(path: str, seed: int, rank: int = 4, alpha: float = 2.0, unet_width_scale: int = 1) -> str:
    """A kohya-format file: lora_unet_* / lora_te_text_model_* with lora_down/lora_up/alpha."""
    pipe = tiny_pipeline("sd1")
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for prefix, model, suffixes in (("lora_unet_", pipe.unet, ("to_q", "to_v", "ff.net.2")),
                                    ("lora_te_text_model_", pipe.text_encoder, ("q_proj", "fc1"))):
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and name.endswith(suffixes):
                key = prefix + name.replace(".", "_")
                width = module.in_features * (unet_width_scale if prefix == "lora_unet_" else 1)
                sd[f"{key}.lora_down.weight"] = torch.randn(rank, width, generator=gen) * 0.3
                sd[f"{key}.lora_up.weight"] = torch.randn(module.out_features, rank, generator=gen) * 0.3
                sd[f"{key}.alpha"] = torch.tensor(alpha)
    save_file(sd, path, metadata={"ss_base_model_version": "sd_v1"})
    return path


def save_family_lora(key: str, path: str, seed: int, gain: float = 3.0) -> str:
    """A LoRA for every LoRA-able component diffusers saves for this family, via its save_lora_weights."""
    from diffusers.loaders.lora_pipeline import AmusedLoraLoaderMixin

    family = FAMILIES[key]
    pipe = fresh(key)
    torch.manual_seed(seed)
    layers, metadata = {}, {}
    for component in (family.denoiser, *SAVED_TEXT_ENCODERS[key]):
        model = getattr(pipe, component)
        targets = DENOISER_TARGETS[key] if component == family.denoiser else TEXT_TARGETS
        config = LoraConfig(r=4, lora_alpha=2, target_modules=targets, init_lora_weights=False)
        model.add_adapter(config)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.mul_(gain)
        layers[f"{component}_lora_layers"] = get_peft_model_state_dict(model)
        metadata[f"{component}_lora_adapter_metadata"] = config.to_dict()
    saver = AmusedLoraLoaderMixin if key == "amused" else type(pipe)
    folder, weight_name = os.path.split(path)
    if key == "amused":  # its save_lora_weights takes no metadata: alphas travel as .alpha keys instead
        metadata = {}
    saver.save_lora_weights(folder, weight_name=weight_name, **layers, **metadata)
    return path


# -- small files for the fuzz test: one linear, one 3x3 conv, one text-encoder module per layout ----------
FUZZ_SUFFIXES = (("unet", "attn1.to_q"), ("unet", "resnets.0.conv1"), ("text_encoder", "self_attn.q_proj"))
FUZZ_METADATA = {**KOHYA_METADATA, "modelspec.trigger_phrase": "sks, style", "trainedWords": json.dumps(["sks"])}


def fuzz_targets(pipe) -> list[tuple[str, str, torch.nn.Module]]:
    """(component, name, module): the first module of each FUZZ_SUFFIXES entry."""
    return [(component, *modules(pipe, component, (suffix,))[0]) for component, suffix in FUZZ_SUFFIXES]


def _kohya_named(rand, targets, write) -> dict:
    """``write(rand, sd, key, out, inp, kernel)`` for each target under its kohya key, then its alpha (2)."""
    sd = {}
    for component, name, module in targets:
        key = kohya_key(component, name)
        write(rand, sd, key, *_shape(module))
        sd[f"{key}.alpha"] = torch.tensor(2.0)
    return sd


def _locon_module(rand, sd, key: str, out: int, inp: int, kernel: tuple) -> None:
    if kernel:  # a LoCon conv with a Tucker core
        sd[f"{key}.lora_down.weight"], sd[f"{key}.lora_mid.weight"] = rand(2, inp, 1, 1), rand(2, 2, *kernel)
        sd[f"{key}.lora_up.weight"] = rand(out, 2, 1, 1)
    else:
        sd[f"{key}.lora_down.weight"], sd[f"{key}.lora_up.weight"] = rand(4, inp), rand(out, 4)


def _loha_module(rand, sd, key: str, out: int, inp: int, kernel: tuple) -> None:
    for n in (1, 2):
        if kernel:
            sd[f"{key}.hada_w{n}_a"], sd[f"{key}.hada_w{n}_b"] = rand(2, out), rand(2, inp)
            sd[f"{key}.hada_t{n}"] = rand(2, 2, *kernel)
        else:
            sd[f"{key}.hada_w{n}_a"], sd[f"{key}.hada_w{n}_b"] = rand(out, 2), rand(2, inp)


def _lokr_module(rand, sd, key: str, out: int, inp: int, kernel: tuple) -> None:
    (a, c), (b, d) = split(out), split(inp)
    _lokr_side(rand, sd, key, 1, (a, b), False, 2, False)
    _lokr_side(rand, sd, key, 2, (c, d, *kernel), True, 2, bool(kernel))


def _fuzz_dora(rand, targets) -> dict:
    sd = _kohya_named(rand, [t for t in targets if not _shape(t[2])[2]], _locon_module)
    for component, name, module in targets:
        if not _shape(module)[2]:
            sd[f"{kohya_key(component, name)}.dora_scale"] = _magnitude(module.weight.detach(), 1, rand)
    return sd


def _fuzz_diffusers(rand, targets) -> dict:
    sd = {}
    for component, name, module in targets:
        out, inp, kernel = _shape(module)
        if not kernel:
            key = f"{component}.{name}"
            sd[f"{key}.lora_A.weight"], sd[f"{key}.lora_B.weight"] = rand(4, inp), rand(out, 4)
    return sd


def fuzz_bases(pipe, seed: int = 0) -> dict[str, tuple[dict, dict]]:
    """Small valid files for ``pipe`` (tiny SD): layout -> (tensors, metadata), each with a few modules of
    every kind a trainer writes (plain pairs, Tucker cores, Hadamard and Kronecker factors, DoRA, configs)."""
    rand, targets = _Random(seed), fuzz_targets(pipe)
    config = {f"{c}.{k}": v for c in ("unet", "text_encoder") for k, v in
              (("r", 4), ("lora_alpha", 2), ("target_modules", ["to_q", "q_proj"]), ("use_rslora", False),
               ("alpha_pattern", {"to_q": 3}))}

    def lycoris(algo: str) -> dict:
        return {**FUZZ_METADATA, "ss_network_module": "lycoris.kohya", "ss_network_args": json.dumps({"algo": algo})}

    return {
        "kohya": (_kohya_named(rand, targets, _locon_module), dict(FUZZ_METADATA)),
        "loha": (_kohya_named(rand, targets, _loha_module), lycoris("loha")),
        "lokr": (_kohya_named(rand, targets, _lokr_module), lycoris("lokr")),
        "dora": (_fuzz_dora(rand, targets), dict(FUZZ_METADATA)),
        "diffusers": (_fuzz_diffusers(rand, targets), {"lora_adapter_metadata": json.dumps(config)}),
    }


def write_state(path: str, tensors: dict, metadata: dict | None = None) -> str:
    """A safetensors file holding exactly ``tensors`` (any dtype and shape) and ``metadata``."""
    return _save(path, tensors, metadata or None)


def write_raw_safetensors(path: str, header: bytes, data: bytes) -> str:
    """A file in the safetensors layout with any header bytes: 8-byte length, header, data."""
    with open(path, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header + data)
    return path
