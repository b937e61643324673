"""ComfyUI's diffusion model and text encoders under diffusers' module names, built from ComfyUI's own key maps.

LoRA Deck reads, converts and fits LoRA files against diffusers modules (``core.adapters.matching``). ComfyUI's
models keep their original names (``diffusion_model.input_blocks.1.1...``, fused ``qkv`` layers), and ComfyUI's
own LoRA key maps (``comfy.lora.model_lora_keys_unet`` / ``model_lora_keys_clip``) say where each diffusers
module lives in them: ``unet.<diffusers name>`` (SD UNets, attention names with ``processor``), ``transformer.
<diffusers name>`` (SD3, Flux: a key, or a slice ``(key, (dim, offset, size))`` of a fused layer, or a key and the
function that reorders a difference into it), ``text_encoders.<encoder>.transformer.<name>`` (every text-encoder
weight). The mirror is a module tree with those diffusers names whose layers hold ComfyUI's original weights (a
view of the slice, or the reordered weight), so matching, DoRA and the magnitude bound run on it unchanged, and
every fitted patch knows the ComfyUI key it goes to (``Slot``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace

import torch

from ...core.adapters.module_index import module_index
from ...core.models.family import Family

UNET_PREFIX, TRANSFORMER_PREFIX, ENCODERS_PREFIX = "unet.", "transformer.", "text_encoders."
MODEL_PREFIX = "diffusion_model."  # ComfyUI's generic keys: the original module names
ENCODER_INFIX = ".transformer."  # clip_l.transformer.text_model...: ComfyUI's text encoders keep HF names below it
REORDERS = ("swap_scale_shift",)  # ComfyUI's functions in key maps; each is its own inverse (halves swapped)


@dataclass(frozen=True)
class Slot:
    """Where one parameter of a mirror module lives in ComfyUI's model: a state-dict key, the rows of it
    (``offset`` = (dim, start, size), ComfyUI's slice of a fused layer) and the function ComfyUI applies to a
    difference on its way into the key (``function``, an involution such as swap_scale_shift)."""

    key: str
    offset: tuple[int, int, int] | None = None
    function: object = None

    @property
    def patch_key(self):
        """The key ComfyUI's ``add_patches`` takes for this slot."""
        if self.function is not None:
            return (self.key, self.offset, self.function)
        return self.key if self.offset is None else (self.key, self.offset)

    def view(self, tensor: torch.Tensor) -> torch.Tensor:
        """This slot's part of the key's tensor, in diffusers' order."""
        if self.offset is not None:
            tensor = tensor.narrow(*self.offset)
        return tensor if self.function is None else self.function(tensor)

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.offset is None:
            return tuple(shape)
        dim, _, size = self.offset
        return tuple(size if i == dim else s for i, s in enumerate(shape))


Names = dict[str, dict[str, dict[str, Slot]]]  # component -> module name -> parameter -> slot


def slot_of(value, functions: Mapping[str, Callable] | None = None) -> Slot | None:
    """A key map value as a Slot: ``key``, ``(key, (dim, offset, size))`` or ``(key, None, function)``; functions
    may be given by name (recorded key maps). None for a value of another form or an unknown function."""
    if isinstance(value, str):
        return Slot(value)
    if not isinstance(value, (list, tuple)) or not value or not isinstance(value[0], str):
        return None
    key = value[0]
    offset = value[1] if len(value) > 1 else None
    function = value[2] if len(value) > 2 else None
    offset = tuple(int(v) for v in offset) if offset is not None else None
    if offset is not None and len(offset) != 3:
        return None
    if function is None:
        return Slot(key, offset)
    name = function if isinstance(function, str) else getattr(function, "__name__", "")
    if name not in REORDERS:
        return None
    if isinstance(function, str):
        function = (functions or {}).get(name)
        if function is None:
            return None
    return Slot(key, offset, function)


def _chroma_original(name: str) -> str | None:
    """Chroma's approximator, which ComfyUI's diffusers map (Flux's) lacks: its original module names under
    ``distilled_guidance_layer`` as diffusers names (``in_layer`` / ``out_layer`` are ``linear_1`` / ``linear_2``;
    ``in_proj``, ``out_proj`` and ``norms.N`` keep theirs)."""
    if not name.startswith("distilled_guidance_layer."):
        return None
    return name.replace(".in_layer", ".linear_1").replace(".out_layer", ".linear_2")


# family -> original module name (ComfyUI's generic ``diffusion_model.<name>`` keys) -> diffusers name, for the
# modules ComfyUI's own diffusers map leaves out
ORIGINAL_ONLY: dict[str, Callable[[str], str | None]] = {"chroma": _chroma_original}


def _denoiser_name(lora_key: str, family: Family, value=None) -> str | None:
    """The diffusers module name behind one of ComfyUI's LoRA key names for the denoiser, or None."""
    if family.denoiser == "unet":
        if not lora_key.startswith(UNET_PREFIX):
            return None
        name = lora_key[len(UNET_PREFIX):].replace(".processor.to_", ".to_")
        return name + ".0" if name.endswith(".to_out") else name  # ComfyUI drops to_out's ".0" there
    if lora_key.startswith(TRANSFORMER_PREFIX):
        return lora_key[len(TRANSFORMER_PREFIX):]
    original = ORIGINAL_ONLY.get(family.key)
    if original is None or not lora_key.startswith(MODEL_PREFIX) or not isinstance(value, str):
        return None
    name = lora_key[len(MODEL_PREFIX):]
    if value == lora_key + ".weight":  # a module's weight
        return original(name)
    if value == lora_key and value.endswith(".scale"):  # a norm's scale (diffusers' weight)
        return original(name.removesuffix(".scale"))
    return None


# family -> (ComfyUI's name prefix below its text encoder's prefix, LoRA Deck's): Qwen-Image's Qwen2.5-VL is
# transformers' Qwen2_5_VLForConditionalGeneration, whose language model and vision tower sit below model.
ENCODER_RENAMES = {"qwenimage": (("model.", "model.language_model."), ("visual.", "model.visual."))}


def _encoder_name(family: Family, name: str) -> str:
    for comfy, ours in ENCODER_RENAMES.get(family.key, ()):
        if name.startswith(comfy):
            return ours + name[len(comfy):]
    return name


def _encoder_prefixes(family: Family, clip_keys: Mapping) -> dict[str, str]:
    """text-encoder component -> ComfyUI's prefix of its weights ('clip_l.transformer.'), found through the kohya
    prefixes both agree on (the family's ``lora_te1_`` is ComfyUI's key for one of its encoders)."""
    found: dict[str, str] = {}
    for prefix, component in family.kohya_prefixes:
        if component not in family.text_encoders or component in found:
            continue
        owners = Counter(str(v).split(ENCODER_INFIX)[0] for k, v in clip_keys.items()
                         if k.startswith(prefix) and isinstance(v, str) and ENCODER_INFIX in v)
        if owners:
            taken = set(found.values())
            best = next((o for o, _ in owners.most_common() if o + ENCODER_INFIX not in taken), None)
            if best is not None:
                found[component] = best + ENCODER_INFIX
    # one encoder left on each side (Chroma's T5, which ComfyUI names lora_te1_; Z-Image's Qwen3, which has no
    # kohya names there): ComfyUI's generic text_encoders.<encoder>.transformer. keys name it
    left = [c for c in family.text_encoders if c not in found]
    owners = {k[len(ENCODERS_PREFIX):].split(ENCODER_INFIX)[0] + ENCODER_INFIX for k in clip_keys
              if k.startswith(ENCODERS_PREFIX) and ENCODER_INFIX in k}
    owners -= set(found.values())
    if len(left) == 1 and len(owners) == 1:
        found[left[0]] = owners.pop()
    return found


def _with_bias(slot: Slot, shapes: Mapping) -> dict[str, Slot]:
    params = {"weight": slot}
    if slot.key.endswith(".weight"):
        bias = slot.key[: -len("weight")] + "bias"
        if bias in shapes:
            params["bias"] = Slot(bias, slot.offset, slot.function)
    return params


def _add(table: dict, taken: set, name: str, slot: Slot | None, shapes: Mapping) -> None:
    if slot is None or slot.key not in shapes or name in table:
        return
    where = (slot.key, slot.offset)
    if where in taken:  # two names for one weight (class_embedding / add_embedding): the first, sorted, wins
        return
    taken.add(where)
    table[name] = _with_bias(slot, shapes)


def comfy_names(family: Family, unet_keys: Mapping, clip_keys: Mapping, model_shapes: Mapping,
                clip_shapes: Mapping, functions: Mapping[str, Callable] | None = None) -> Names:
    """component -> diffusers module name -> {parameter: Slot}, from ComfyUI's key maps and state-dict keys."""
    names: Names = {}
    denoiser: dict = {}
    taken: set = set()
    for lora_key in sorted(unet_keys):
        name = _denoiser_name(lora_key, family, unet_keys[lora_key])
        if name:
            _add(denoiser, taken, name, slot_of(unet_keys[lora_key], functions), model_shapes)
    if denoiser:
        names[family.denoiser] = denoiser
    for component, prefix in _encoder_prefixes(family, clip_keys).items():
        table: dict = {}
        lead = ENCODERS_PREFIX + prefix
        below = [k[len(lead):] for k in clip_keys if k.startswith(lead)]
        if below and all(k.startswith("model.") for k in below):  # Qwen3 (Z-Image): transformers' Qwen3Model
            lead += "model."  # names are ComfyUI's below its model.
        for lora_key in sorted(k for k in clip_keys if k.startswith(lead)):
            _add(table, taken, _encoder_name(family, lora_key[len(lead):]), slot_of(clip_keys[lora_key], functions),
                 clip_shapes)
        if table:
            names[component] = table
    return names


class _Params(torch.nn.Module):
    """A layer that is neither Linear nor Conv2d (a norm, an embedding table): its parameters only."""


def _leaf(params: dict[str, torch.Tensor]) -> torch.nn.Module:
    weight = params["weight"]
    bias = "bias" in params
    if weight.dim() == 2:
        module = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias, device="meta")
    elif weight.dim() == 4:
        module = torch.nn.Conv2d(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), bias=bias, device="meta")
    else:
        module = _Params()
    for name, tensor in params.items():
        setattr(module, name, torch.nn.Parameter(tensor, requires_grad=False))
    return module


def _tree(leaves: dict[str, dict[str, torch.Tensor]]) -> torch.nn.Module:
    root: dict = {}
    for name in leaves:
        node = root
        for part in name.split("."):
            node = node.setdefault(part, {})
        node[None] = name

    def build(node: dict) -> torch.nn.Module:
        children = {k: build(v) for k, v in node.items() if k is not None}
        if None in node:
            module = _leaf(leaves[node[None]])
        elif children and all(k.isdigit() for k in children) and \
                sorted(map(int, children)) == list(range(len(children))):
            return torch.nn.ModuleList([children[str(i)] for i in range(len(children))])
        elif children and not all(k.isidentifier() for k in children):  # Z-Image's all_x_embedder["2-1"]
            return torch.nn.ModuleDict(children)
        else:
            module = torch.nn.Module()
        for key, child in children.items():
            module.add_module(key, child)
        return module

    return build(root)


def _config(component: str, model: torch.nn.Module) -> SimpleNamespace:
    """What LoRA Deck's family code reads from a diffusers config, found from the module names."""
    if component != "unet":
        return SimpleNamespace()
    resnets = [int(n.split(".")[3]) for n, _ in model.named_modules()
               if n.startswith("down_blocks.0.resnets.") and n.count(".") == 3]
    return SimpleNamespace(layers_per_block=max(resnets) + 1 if resnets else 2)


class Mirror:
    """A ComfyUI model and its text encoders as diffusers-named module trees (``models``), their LoRA Deck module
    indexes (``indexes``) and where each of their parameters lives in ComfyUI (``slot``)."""

    def __init__(self, family: Family, names: Names, tensor_of: Callable[[str], torch.Tensor]):
        self.family = family
        self.names = names
        self.models: dict[str, torch.nn.Module] = {}
        for component, table in names.items():
            leaves = {name: {p: slot.view(tensor_of(slot.key)) for p, slot in params.items()}
                      for name, params in table.items()}
            model = _tree(leaves)
            model.config = _config(component, model)
            self.models[component] = model
        self.indexes = {c: module_index(m, family, c) for c, m in self.models.items()}

    def slot(self, component: str, path: str) -> Slot:
        """The Slot of ``<module>.<param>`` (a fitted ParamDelta's name) or of a module's weight (a pair's name)."""
        table = self.names[component]
        if path in table:
            return table[path]["weight"]
        module, _, param = path.rpartition(".")
        return table[module][param]
