"""Where each part of a single-file pipeline comes from: the checkpoint, or a separate file beside it.

Files are recognised by their keys and shapes (read from the safetensors header only), never by name
alone: a name only breaks a tie between files of equal shapes (tiny models, clip_l vs clip_g).
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
from dataclasses import dataclass

from ..errors import LoraFileError, PipelineLoadError
from ..files.reading import MAX_HEADER_BYTES, SAFE_SUFFIXES, parse_header
from . import wan_vae
from .arch import ENCODER_KINDS, Arch, Encoder, Header

log = logging.getLogger(__name__)

MAX_SCANNED_FILES = 500
_HF_CLIP = "text_model.embeddings.token_embedding.weight"
_FLAT_CLIP = "embeddings.token_embedding.weight"  # transformers >= 5.6 saves CLIPTextModel without text_model.
_OPEN_CLIP = "transformer.resblocks.0.attn.in_proj_weight"
_T5 = "encoder.block.0.layer.0.SelfAttention.q.weight"
# UMT5 (Wan's text encoder) has T5's names with a relative-attention bias in every block, not only the first
_UMT5_BIAS = "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"
# Qwen3 (transformers / ComfyUI names, "model." in ComfyUI's text_encoders files): the q/k norms tell it from
# Llama and Qwen2
_QWEN3_EMBED, _QWEN3_NORM = "embed_tokens.weight", "layers.0.self_attn.q_norm.weight"
# Mistral (ComfyUI's FLUX.2 [dev] text encoder: the Mistral Small 3 text model under "model."): transformers' Llama
# names without Qwen3's q/k norms and without Qwen2's q/k/v biases
_MISTRAL_Q, _QWEN2_BIAS = "layers.0.self_attn.q_proj.weight", "layers.0.self_attn.q_proj.bias"
# Qwen-VL text encoders (Qwen2.5-VL: Qwen-Image; Qwen3-VL: Krea 2) carry a vision tower beside the language model,
# in Qwen's original names (model.layers.*, visual.*: ComfyUI's qwen_2.5_vl_7b files) or transformers' (since 4.52:
# model.language_model.*, model.visual.*); Qwen3-VL's language model has Qwen3's q/k norms
# Gemma 2 (Lumina 2's and Sana's text encoder; ComfyUI's gemma_2_2b files: transformers' names under "model."): Llama's
# names with a norm before and after each feed-forward, no q/k norms (Gemma 3 has them)
_GEMMA2_NORM = "layers.0.pre_feedforward_layernorm.weight"
_VISUAL = "patch_embed.proj.weight"
_VL_ROOTS = ("model.language_model.", "language_model.", "model.")
_VAE = "decoder.conv_in.weight"
# the layout diffusers' single-file CLIP/T5 loaders read a separate file in, per (file layout, encoder kind)
_ENCODER_TARGET = {("clip", "clip_l"): "text_encoders.clip_l.transformer.",
                   ("clip", "other"): "text_encoders.clip_g.transformer.",
                   ("open_clip", "other"): "conditioner.embedders.1.model.",
                   ("t5", "other"): "text_encoders.t5xxl.transformer.",
                   ("umt5", "other"): "text_encoders.t5xxl.transformer.",
                   ("qwen3", "other"): "",  # build.qwen3_model takes the transformers names
                   ("mistral", "other"): "",  # so does FLUX.2 [dev]'s builder (flux2dev/text_encoder.py)
                   ("qwen25_vl", "other"): "", ("qwen3_vl", "other"): "",  # build.qwen_vl_model: any of its layouts
                   ("gemma2", "other"): ""}  # build.gemma2_model (Lumina 2's, Sana's): transformers' names, any prefix
VAE_PREFIXES = ("first_stage_model.", "vae.")
SCALED_FP8 = "scaled_fp8"  # the marker key of ComfyUI's fp8 files with per-tensor weight scales
GGUF_SUFFIXES = (".gguf",)
MODEL_SUFFIXES = SAFE_SUFFIXES + GGUF_SUFFIXES  # what a denoiser file may be (encoders and VAEs: .safetensors)


@dataclass(frozen=True)
class Part:
    """One component's weights: the keys under ``prefix`` in ``path``, renamed to start with ``target``."""

    path: str
    prefix: str
    target: str
    label: str  # "the checkpoint" or the separate file's path, for messages and the load log


@dataclass(frozen=True)
class FoundEncoder:
    layout: str  # "clip" | "flat_clip" | "open_clip" | "t5" | "umt5" | "qwen3" | "mistral" | "qwen25_vl" | "qwen3_vl"
    # | "gemma2"
    prefix: str
    width: int
    layers: int
    vocab: int
    positions: int = 0  # CLIP layouts: the position embedding's length (77; Long-CLIP 248); 0: not read


def read_header(path: str) -> Header:
    """Keys, shapes and dtypes of a .safetensors file from its header alone (a few bytes, never the weights), or of
    a .gguf denoiser from its tensor infos (dense shapes)."""
    if not path.lower().endswith(MODEL_SUFFIXES):
        raise PipelineLoadError(f"{path!r} is not a .safetensors or .gguf file; LoRA Deck reads models only as "
                                ".safetensors or GGUF (pickle .ckpt / .pth files, such as Sana's originals, can run "
                                "code when loaded)")
    if not os.path.isfile(path):  # also keeps FIFOs and devices from blocking the open below
        raise PipelineLoadError(f"{path!r} is not a file; pick a .safetensors or .gguf model file")
    if path.lower().endswith(GGUF_SUFFIXES):
        from .quantized.reading import gguf_header

        return gguf_header(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) == 8:
                head += f.read(min(struct.unpack("<Q", head)[0], MAX_HEADER_BYTES + 1))
        header = parse_header(path, head, size)
    except LoraFileError as exc:
        raise PipelineLoadError(f"{path!r}: {exc.problem}. {exc.advice}") from None
    except OSError as exc:
        raise PipelineLoadError(f"{path!r} cannot be read ({exc.strerror or exc}); pick a checkpoint file") from None
    shapes, dtypes = {}, {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not (isinstance(entry, dict) and isinstance(entry.get("shape"), list)
                and all(isinstance(n, int) and n >= 0 for n in entry["shape"])):
            raise PipelineLoadError(f"{path!r} has a damaged header (entry {key!r}); re-download the file")
        shapes[key], dtypes[key] = tuple(entry["shape"]), str(entry.get("dtype"))
    meta = header.get("__metadata__") or {}
    return Header(path, shapes, dtypes, {str(k): str(v) for k, v in meta.items()},
                  lambda key: read_tensors(path, [key])[key])


# safetensors dtype -> torch dtype name (read by name: torch is imported only when tensors are read)
_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
           "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "F8_E4M3": "float8_e4m3fn",
           "F8_E5M2": "float8_e5m2"}


def read_tensors(path: str, keys, rename: tuple[str, str] = ("", "")) -> dict:
    """The tensors ``keys`` of ``path`` read into fresh memory with plain reads (never memory-mapped: a file cut
    short while in use cannot kill the process, and the file's pages are not resident twice), ``rename`` = (old,
    new) prefix. A truncated or damaged file raises PipelineLoadError."""
    import torch

    old, new = rename
    out = {}
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) == 8:
                head += f.read(min(struct.unpack("<Q", head)[0], MAX_HEADER_BYTES + 1))
            entries = parse_header(path, head, size)
            start = len(head)
            for key in keys:
                out[new + key[len(old):]] = _read_entry(f, path, key, entries.get(key), start, size, torch)
    except LoraFileError as exc:
        raise PipelineLoadError(f"{path!r}: {exc.problem}. {exc.advice}") from None
    except OSError as exc:
        raise PipelineLoadError(f"{path!r} cannot be read ({exc.strerror or exc}); the file is truncated or "
                                "damaged, re-download it") from None
    return out


def _read_entry(f, path: str, key: str, entry, start: int, size: int, torch):
    def damaged(why: str) -> PipelineLoadError:
        return PipelineLoadError(f"{path!r} cannot be read ({key}: {why}); the file is truncated or damaged, "
                                 "re-download it")

    if not isinstance(entry, dict) or entry.get("dtype") not in _DTYPES:
        raise damaged(f"no readable entry (dtype {entry.get('dtype') if isinstance(entry, dict) else None})")
    dtype, shape, offsets = getattr(torch, _DTYPES[entry["dtype"]]), entry.get("shape"), entry.get("data_offsets")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise damaged("no data offsets")
    begin, end = offsets
    count = 1
    for n in shape:
        count *= n
    item = torch.empty((), dtype=dtype).element_size()
    if not 0 <= begin <= end or end - begin != count * item or start + end > size:
        raise damaged(f"bytes [{begin}, {end}) for {list(shape)} {entry['dtype']} do not fit the file")
    buffer = torch.empty(end - begin, dtype=torch.uint8)
    f.seek(start + begin)
    if f.readinto(memoryview(buffer.numpy())) != end - begin:
        raise damaged("short read")
    return buffer.view(dtype).reshape(shape)


def part_keys(header: Header, part: Part, exclude: tuple[str, ...] = ()) -> list[str]:
    return [k for k in header.shapes if k.startswith(part.prefix) and not k.startswith(exclude)]


def find_encoders(header: Header) -> list[FoundEncoder]:
    """Every text encoder the file holds, in any of the layouts ComfyUI users meet."""
    found = []
    for key, shape in header.shapes.items():
        if key.endswith(_HF_CLIP) and len(shape) == 2:
            prefix = key[: -len(_HF_CLIP)]
            layers = _count(header, prefix + "text_model.encoder.layers.")
            found.append(FoundEncoder("clip", prefix, shape[1], layers, shape[0],
                                      _positions(header, prefix + "text_model.")))
        elif key.endswith(_FLAT_CLIP) and not key.endswith(_HF_CLIP) and len(shape) == 2:
            prefix = key[: -len(_FLAT_CLIP)]
            if prefix + "encoder.layers.0.self_attn.q_proj.weight" in header.shapes:
                layers = _count(header, prefix + "encoder.layers.")
                found.append(FoundEncoder("flat_clip", prefix, shape[1], layers, shape[0], _positions(header, prefix)))
        elif key.endswith(_OPEN_CLIP):
            prefix = key[: -len(_OPEN_CLIP)]
            token = header.shapes.get(prefix + "token_embedding.weight")
            if token and len(token) == 2:
                layers = _count(header, prefix + "transformer.resblocks.")
                found.append(FoundEncoder("open_clip", prefix, token[1], layers, token[0]))
        elif key.endswith(_T5):
            prefix = key[: -len(_T5)]
            shared = header.shapes.get(prefix + "shared.weight") or header.shapes.get(
                prefix + "encoder.embed_tokens.weight")
            if shared and len(shared) == 2:
                layers = _count(header, prefix + "encoder.block.")
                layout = "umt5" if prefix + _UMT5_BIAS in header.shapes else "t5"
                found.append(FoundEncoder(layout, prefix, shared[1], layers, shared[0]))
        elif key.endswith(_QWEN3_EMBED) and len(shape) == 2 and \
                _vl_root(header, key[: -len(_QWEN3_EMBED)]) is not None:
            prefix = key[: -len(_QWEN3_EMBED)]
            layout = "qwen3_vl" if prefix + _QWEN3_NORM in header.shapes else "qwen25_vl"
            found.append(FoundEncoder(layout, _vl_root(header, prefix), shape[1], _count(header, prefix + "layers."),
                                      shape[0]))
        elif key.endswith(_QWEN3_EMBED) and len(shape) == 2 and \
                key[: -len(_QWEN3_EMBED)] + _QWEN3_NORM in header.shapes:
            prefix = key[: -len(_QWEN3_EMBED)]
            found.append(FoundEncoder("qwen3", prefix, shape[1], _count(header, prefix + "layers."), shape[0]))
        elif key.endswith(_QWEN3_EMBED) and len(shape) == 2 and key[: -len(_QWEN3_EMBED)] + _GEMMA2_NORM in \
                header.shapes and key[: -len(_QWEN3_EMBED)] + _QWEN3_NORM not in header.shapes:
            prefix = key[: -len(_QWEN3_EMBED)]
            found.append(FoundEncoder("gemma2", prefix, shape[1], _count(header, prefix + "layers."), shape[0]))
        elif key.endswith(_QWEN3_EMBED) and len(shape) == 2 and key[: -len(_QWEN3_EMBED)] + _MISTRAL_Q in \
                header.shapes and key[: -len(_QWEN3_EMBED)] + _QWEN2_BIAS not in header.shapes:
            prefix = key[: -len(_QWEN3_EMBED)]
            found.append(FoundEncoder("mistral", prefix, shape[1], _count(header, prefix + "layers."), shape[0]))
    return found


def _vl_root(header: Header, language: str) -> str | None:
    """The key prefix of a Qwen-VL encoder whose language model's keys start with ``language``, when its vision
    tower is there too (``visual.*`` or ``model.visual.*`` beside the language model), else None."""
    for tail in _VL_ROOTS:
        if language.endswith(tail):
            root = language[: -len(tail)]
            if any(root + v + _VISUAL in header.shapes for v in ("visual.", "model.visual.")):
                return root
    return None


def _positions(header: Header, prefix: str) -> int:
    shape = header.shapes.get(prefix + "embeddings.position_embedding.weight")
    return shape[0] if shape and len(shape) == 2 else 0


def _count(header: Header, stem: str) -> int:
    pattern = re.compile(re.escape(stem) + r"(\d+)\.")
    return len({m.group(1) for m in map(pattern.match, header.shapes) if m})


def read_config(arch: Arch, component: str) -> dict:
    with open(os.path.join(arch.config_dir, component, "config.json"), encoding="utf-8") as f:
        return json.load(f)


# layouts that fit their own encoder kinds only (kinds not listed: CLIP layouts)
_OWN_KIND = (("t5", ("t5xxl",)), ("umt5", ("umt5xxl", "pile_t5xl")), ("qwen3", ("qwen3_4b", "qwen3_8b")),
             ("mistral", ("mistral3", "llama31_8b", "ministral3")), ("qwen25_vl", ("qwen25_vl_7b",)),
             ("qwen3_vl", ("qwen3_vl_4b",)), ("gemma2", ("gemma2_2b",)))
_CLIP_L_KINDS = ("clip_l", "long_clip_l")  # the CLIP-L slots (the rest of the CLIP kinds are OpenCLIP's)


def fits(found: FoundEncoder, slot: Encoder, config: dict) -> bool:
    """Whether an encoder found in a file has the shapes this architecture's slot needs."""
    if any((found.layout == layout) != (slot.kind in kinds) for layout, kinds in _OWN_KIND):
        return False
    if found.layout in ("qwen25_vl", "qwen3_vl"):  # transformers' VL configs nest the language model's
        text = config.get("text_config", config)
        return (found.width, found.layers, found.vocab) == (text["hidden_size"], text["num_hidden_layers"],
                                                            text["vocab_size"])
    if found.layout == "gemma2":
        return (found.width, found.layers, found.vocab) == (config["hidden_size"], config["num_hidden_layers"],
                                                            config["vocab_size"])
    if found.layout in ("t5", "umt5"):
        want = (config["d_model"], config["num_layers"], config["vocab_size"])
        return (found.width, found.layers, found.vocab) == want
    if found.layout == "mistral" and slot.kind == "llama31_8b":  # HiDream reads every layer's hidden states
        return (found.width, found.layers, found.vocab) == (config["hidden_size"], config["num_hidden_layers"],
                                                            config["vocab_size"])
    if found.layout == "mistral":  # ComfyUI also ships it pruned to the layers FLUX.2 reads (no final norm)
        text = config.get("text_config", config)
        return (found.width, found.vocab) == (text["hidden_size"], text["vocab_size"]) and \
            found.layers <= text["num_hidden_layers"]
    if found.layout == "open_clip" and slot.kind in _CLIP_L_KINDS:
        return False
    if found.positions and config.get("max_position_embeddings") not in (None, found.positions):
        return False  # a 77-position CLIP cannot take HiDream's Long-CLIP weights, nor the other way round
    # SD 2.x files carry OpenCLIP-H's 24th layer, which its diffusers config (23 layers) does not use
    layers_ok = found.layers >= config["num_hidden_layers"] if found.layout == "open_clip" \
        else found.layers == config["num_hidden_layers"]
    return layers_ok and found.width == config["hidden_size"] and found.vocab == config["vocab_size"]


def describe(found: FoundEncoder) -> str:
    name = {"t5": "T5 encoder", "umt5": "UMT5 encoder", "qwen3": "Qwen3 text encoder",
            "mistral": "Mistral / Llama text encoder", "qwen25_vl": "Qwen2.5-VL text encoder",
            "qwen3_vl": "Qwen3-VL text encoder", "gemma2": "Gemma 2 text encoder"}.get(found.layout,
                                                                                         "CLIP text encoder")
    return f"{name} (width {found.width}, {found.layers} layers)"


def encoder_in_checkpoint(header: Header, slot: Encoder, config: dict) -> Part | str | None:
    """The slot's part inside the checkpoint; a message when it is there with the wrong shapes; else None."""
    for found in find_encoders(header):
        if found.prefix in slot.prefixes:
            if not fits(found, slot, config):
                return (f"the {ENCODER_KINDS[slot.kind][0]} in the file is a {describe(found)}, "
                        "which does not fit this architecture")
            # build.qwen_vl_model reads the Qwen-VL names without the checkpoint's prefix; diffusers' T5 loader reads
            # T5 / UMT5 under T5-XXL's (AuraFlow's checkpoints keep Pile-T5-XL as text_encoders.pile_t5xl.); the others
            # keep theirs
            target = "" if found.layout in ("qwen25_vl", "qwen3_vl") else _ENCODER_TARGET[(found.layout, "other")] \
                if found.layout in ("t5", "umt5") else found.prefix
            return Part(header.path, found.prefix, target, "the checkpoint")
    return None


def separate_part(found: FoundEncoder, slot: Encoder, header: Header) -> Part:
    # (HiDream's Long-CLIP-L keeps its projection: diffusers replaces SD3 clip_l's by the identity)
    kind = "clip_l" if slot.kind == "clip_l" and found.layout in ("clip", "flat_clip") else "other"
    layout = "clip" if found.layout == "flat_clip" else found.layout
    target = _ENCODER_TARGET.get((layout, kind)) or _ENCODER_TARGET[(layout, "other")]
    if found.layout == "flat_clip":
        target += "text_model."
    return Part(header.path, found.prefix, target, header.path)


def scan_files(dirs) -> list[Header]:
    """Headers of the .safetensors files under ``dirs`` (recursively, in name order); unreadable files are skipped."""
    headers, seen, visited = [], set(), set()
    for root in dirs:
        for folder, subdirs, names in os.walk(root, followlinks=True):
            visited.add(os.path.realpath(folder))
            # a symlink loop would be walked again and again: each real folder once
            subdirs[:] = sorted(d for d in subdirs if os.path.realpath(os.path.join(folder, d)) not in visited)
            for name in sorted(n for n in names if n.lower().endswith(SAFE_SUFFIXES)):
                path = os.path.join(folder, name)
                real = os.path.realpath(path)
                if real in seen or len(headers) >= MAX_SCANNED_FILES:
                    continue
                seen.add(real)
                try:
                    headers.append(read_header(path))
                except PipelineLoadError as exc:
                    log.debug("skipping %s: %s", path, exc)
    return headers


def pick_encoder(slot: Encoder, config: dict, headers: list[Header], used: set) -> Part | None:
    """The separate file for ``slot``: shapes decide; among equal shapes a file named for the kind
    (clip_l, clip_g, t5...) wins, then full precision over fp8, then the name order."""
    hints = ENCODER_KINDS[slot.kind][2]
    candidates = []
    for header in headers:
        for found in find_encoders(header):
            if (header.path, found.prefix) in used or not fits(found, slot, config):
                continue
            name = os.path.basename(header.path).lower()
            fp8 = any("float8" in d.lower() or d.upper().startswith("F8") for d in header.dtypes.values())
            candidates.append(((not any(h in name for h in hints), fp8, name), found, header))
    if not candidates:
        return None
    _, found, header = min(candidates, key=lambda c: c[0])
    used.add((header.path, found.prefix))
    return separate_part(found, slot, header)


def vae_in_checkpoint(header: Header) -> Part | None:
    for prefix in VAE_PREFIXES:
        if prefix + _VAE in header.shapes:
            return Part(header.path, prefix, prefix, "the checkpoint")
        if prefix + wan_vae.MARKER in header.shapes:  # wan_vae.build takes the Wan names without a prefix
            return Part(header.path, prefix, "", "the checkpoint")
    return None


def pick_vae(config: dict, headers: list[Header], hints: tuple[str, ...] = ()) -> Part | None:
    """A separate VAE file (LDM or diffusers layout; for Wan-layout configs, AutoencoderKLWan /
    AutoencoderKLQwenImage, a Wan-layout or diffusers-layout file: ``wan_vae``) whose latent and widest channels fit
    ``config``; among those, the first whose name has one of ``hints`` (SD 1.5's and SDXL's VAEs have one shape)."""
    if wan_vae.is_wan_config(config):
        return _pick_wan_vae(config, headers)
    if config.get("_class_name") == "AutoencoderDC":  # Sana's: mit-han-lab's original names
        return _pick_dc_ae(config, headers)
    named = [h for h in headers if any(w in os.path.basename(h.path).lower() for w in hints)]
    if named and named != headers:
        return pick_vae(config, named) or pick_vae(config, headers)
    want = (config["block_out_channels"][-1], config["latent_channels"])
    for header in headers:
        for key, shape in header.shapes.items():
            if not key.endswith(_VAE) or len(shape) != 4 or tuple(shape[:2]) != want:
                continue
            prefix = key[: -len(_VAE)]
            ldm = prefix + "decoder.up.0.block.0.conv1.weight" in header.shapes
            return Part(header.path, prefix, "first_stage_model." if ldm else "", header.path)
    return None


_VISION = "embeddings.patch_embedding.weight"  # CLIP vision (ComfyUI's clip_vision files: transformers' names)


def pick_image_encoder(config: dict, headers: list[Header]) -> Part | None:
    """A CLIP vision encoder file (``vision_model.`` names, as ComfyUI's clip_vision_h) whose width, patch and depth
    fit ``config`` (a file may hold more layers than the model uses)."""
    want = (config["hidden_size"], config.get("num_channels", 3), config["patch_size"], config["patch_size"])
    for header in headers:
        for key, shape in header.shapes.items():
            if not key.endswith(_VISION) or tuple(shape) != want:
                continue
            prefix = key[: -len(_VISION)]
            if _count(header, prefix + "encoder.layers.") >= config["num_hidden_layers"]:
                return Part(header.path, prefix, "", header.path)
    return None


# the DC-AE (Sana's VAE) in mit-han-lab/efficientvit's names, which diffusers' convert_autoencoder_dc_checkpoint_to_
# diffusers reads: the decoder's input conv maps the latents to its deepest width
_DC_AE = "decoder.project_in.main.conv.weight"


def _pick_dc_ae(config: dict, headers: list[Header]) -> Part | None:
    want = (config["decoder_block_out_channels"][-1], config["latent_channels"])
    for header in headers:
        for key, shape in header.shapes.items():
            if key.endswith(_DC_AE) and len(shape) == 4 and tuple(shape[:2]) == want:
                return Part(header.path, key[: -len(_DC_AE)], "", header.path)
    return None


def _pick_wan_vae(config: dict, headers: list[Header]) -> Part | None:
    want = wan_vae.wanted(config)
    for header in headers:
        found = wan_vae.find(header.shapes)
        if found is not None and found[2] == want:
            return Part(header.path, found[0], "", header.path)
    return None


def what_is(header: Header) -> str:
    """A short description of a separate file, for 'found there' lists in messages."""
    found = find_encoders(header)
    if found and (SCALED_FP8 in header.shapes or any(k.endswith(".comfy_quant") for k in header.shapes)):
        return ", ".join(describe(f) for f in found) + " in ComfyUI's scaled fp8 format"
    if found:
        return ", ".join(describe(f) for f in found)
    vae = next((s for k, s in header.shapes.items() if k.endswith(_VAE) and len(s) == 4), None)
    if vae:
        return f"VAE ({vae[1]} latent channels)"
    dc_ae = next((s for k, s in header.shapes.items() if k.endswith(_DC_AE) and len(s) == 4), None)
    if dc_ae:
        return f"DC-AE VAE ({dc_ae[1]} latent channels)"
    wan = wan_vae.find(header.shapes)
    if wan is not None:
        kind = {"original": "VAE in the Wan layout", "wan2.2": "VAE in the Wan 2.2 layout",
                "diffusers": "Wan VAE in diffusers' layout"}[wan[1]]
        return f"{kind} ({wan[2][1]} latent channels)"
    return "not a text encoder or VAE"
