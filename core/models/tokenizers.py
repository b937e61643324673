"""Tokenizers for single-file checkpoints, which hold none (ComfyUI's Mistral and UMT5 text-encoder files excepted).

Looked for, in order, in: the folders the caller names (API argument, the ``LORADECK_TOKENIZERS`` setting,
the CLI's ``--tokenizers``), then the host's (inside ComfyUI: ComfyUI's own bundled ``comfy/sd1_tokenizer``,
``comfy/text_encoders/t5_tokenizer`` and ``comfy/text_encoders/qwen25_tokenizer``; headless: ``models/tokenizers``
and the local diffusers folders). AuraFlow's Pile-T5 tokenizer: ComfyUI's ``comfy/text_encoders/t5_pile_tokenizer``
(a sentencepiece model alone) or a diffusers AuraFlow folder's ``tokenizer/`` (``families/auraflow/tokenizer.py``).
A folder may be a tokenizer folder itself, a ComfyUI checkout or its ``comfy`` package, a diffusers model
folder (``tokenizer/``, ``tokenizer_2/``...) or a folder of such folders. The built-in tiny architectures use
the in-memory tiny tokenizers of core/tiny.py and need no files.

Two kinds also come from inside ComfyUI's text-encoder files. Mistral's tekken tokenizer (FLUX.2 [dev]): the file's
``tekken_model`` tensor, read by transformers' own converter. UMT5 (Wan): ComfyUI's ``umt5_xxl_*.safetensors`` carry
the sentencepiece model as the uint8 tensor ``spiece_model`` (what ComfyUI's ``WanT5Tokenizer`` reads), so it comes
from the encoder file; else from the ``tokenizer/`` folder of a diffusers Wan model among the folders.
"""

from __future__ import annotations

import logging
import os

from ..errors import PipelineLoadError
from ..files import safe_json
from ..settings import TOKENIZERS_ENV

log = logging.getLogger(__name__)

# ComfyUI's bundled tokenizer folders, relative to its comfy/ package (Qwen3 text encoders use Qwen2.5's
# tokenizer files: the same byte-level BPE vocab)
COMFY_TOKENIZER_DIRS = {"clip": os.path.join("sd1_tokenizer"), "t5": os.path.join("text_encoders", "t5_tokenizer"),
                        "qwen": os.path.join("text_encoders", "qwen25_tokenizer"),
                        "llama": os.path.join("text_encoders", "llama_tokenizer"),  # Llama 3 (HiDream)
                        "pile_t5": os.path.join("text_encoders", "t5_pile_tokenizer")}
# encoder kind -> (tokenizer kind, pad token). OpenCLIP (SD 2.x, SDXL/SD3 clip_g) pads with "!" (id 0), as
# ComfyUI's SD2/SDXL-G tokenizers (pad_with_end=False) and the diffusers repos' tokenizer_2 do.
TOKENIZER_OF = {"clip_l": ("clip", "<|endoftext|>"), "clip_h": ("clip", "!"), "clip_g": ("clip", "!"),
                "t5xxl": ("t5", None), "qwen3_4b": ("qwen", None), "qwen3_8b": ("qwen", None),
                "mistral3": ("mistral", None), "umt5xxl": ("umt5", None), "qwen25_vl_7b": ("qwen", None),
                "qwen3_vl_4b": ("qwen", None), "long_clip_l": ("clip", "<|endoftext|>"), "long_clip_g": ("clip", "!"),
                "llama31_8b": ("llama", None), "gemma2_2b": ("gemma", None), "pile_t5xl": ("pile_t5", None),
                "ministral3": ("mistral", None)}
FILES_NEEDED = {"clip": "CLIP tokenizer (vocab.json + merges.txt, or tokenizer.json with tokenizer_config.json)",
                "t5": "T5 tokenizer (tokenizer.json or spiece.model, with tokenizer_config.json)",
                "qwen": "Qwen tokenizer (vocab.json + merges.txt or tokenizer.json, with a tokenizer_config.json "
                        "naming Qwen2Tokenizer)",
                "mistral": "Mistral tekken tokenizer (tekken.json; ComfyUI's Mistral text-encoder files carry it as "
                           "their tekken_model tensor)",
                "umt5": "UMT5 tokenizer (the spiece_model inside ComfyUI's umt5_xxl text-encoder files, or the "
                        "tokenizer/ folder of a diffusers Wan model)",
                "llama": "Llama 3 tokenizer (tokenizer.json with a tokenizer_config.json naming LlamaTokenizer or "
                         "PreTrainedTokenizerFast: ComfyUI's comfy/text_encoders/llama_tokenizer, or the tokenizer_4/ "
                         "folder of a diffusers HiDream model)",
                "gemma": "Gemma tokenizer (the spiece_model inside ComfyUI's gemma_2_2b text-encoder files, or a "
                         "tokenizer.json with a tokenizer_config.json naming GemmaTokenizer: a diffusers Lumina 2 "
                         "folder's tokenizer/)",
                "pile_t5": "Pile-T5 tokenizer (ComfyUI's comfy/text_encoders/t5_pile_tokenizer/tokenizer.model, or the "
                           "tokenizer/ folder of a diffusers AuraFlow model)"}
LLAMA3_TOKENS = ("<|begin_of_text|>", "<|eot_id|>")  # what tells a Llama 3 tokenizer from Llama 2's
TEKKEN = "tekken.json"
EMBEDDED_TEKKEN = "tekken_model"  # ComfyUI's Mistral 3 text-encoder files: the tekken.json bytes as a uint8 tensor
MAX_TEKKEN_BYTES = 64 * 1024 * 1024
SPIECE = "spiece_model"  # the sentencepiece model ComfyUI's UMT5 / Gemma files carry (uint8 tensor)
MAX_SPIECE_BYTES = 64 * 1024 * 1024


def _tokenizer_class(folder: str) -> str | None:
    """``tokenizer_class`` of the folder's tokenizer_config.json ("" without one; None when unreadable)."""
    path = os.path.join(folder, "tokenizer_config.json")
    if not os.path.isfile(path):
        return ""
    try:
        with open(path, "rb") as f:  # a user's file: bounded parse
            return str(safe_json.loads(f.read(safe_json.MAX_CHARS + 1)).get("tokenizer_class", ""))
    except (OSError, ValueError, AttributeError):  # UntrustedJsonError is a ValueError
        return None


def _llama3(path: str) -> bool:
    """Whether a tokenizer.json is Llama 3's: its added tokens (at the top of the file) hold <|begin_of_text|>."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return b'"<|begin_of_text|>"' in head


def kind_of(folder: str) -> str | None:
    """'clip', 't5', 'qwen', 'mistral', 'llama' or 'gemma' when ``folder`` holds that tokenizer's files, else None."""
    try:
        names = set(os.listdir(folder))
    except OSError:
        return None
    if TEKKEN in names:
        return "mistral"
    if names.isdisjoint({"vocab.json", "spiece.model", "tokenizer.json"}) and "tokenizer.model" in names:
        from ..families.auraflow.tokenizer import is_pile_t5  # ComfyUI's t5_pile_tokenizer: the model file alone

        return "pile_t5" if is_pile_t5(folder) else None
    if not names & {"vocab.json", "spiece.model", "tokenizer.json"}:
        return None
    cls = _tokenizer_class(folder)  # None: unreadable
    if cls and cls.startswith("Qwen2") and ({"vocab.json", "merges.txt"} <= names or "tokenizer.json" in names):
        return "qwen"  # byte-level BPE files like CLIP's: its tokenizer_config tells them apart
    if "tokenizer.json" in names and cls and (cls.startswith("Llama") or cls in (
            "PreTrainedTokenizerFast", "TokenizersBackend")) and _llama3(os.path.join(folder, "tokenizer.json")):
        return "llama"
    if {"vocab.json", "merges.txt"} <= names:
        return "clip"
    if "spiece.model" in names:
        return "t5"
    if "tokenizer.json" in names and cls and cls.startswith("Gemma"):
        return "gemma"
    if "tokenizer.json" in names and cls:
        return "t5" if cls.startswith("T5") else "clip" if cls.startswith("CLIP") else None
    return None


def _candidates(root: str):
    yield root
    for base in (os.path.join(root, "comfy"), root):
        for rel in COMFY_TOKENIZER_DIRS.values():
            yield os.path.join(base, rel)
    try:
        children = sorted(os.listdir(root))
    except OSError:
        return
    for child in children:
        yield os.path.join(root, child)


def _wan_folder(root: str) -> str | None:
    """``root/tokenizer`` when ``root`` is a diffusers folder of a Wan pipeline (its UMT5 tokenizer)."""
    path = os.path.join(root, "model_index.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            index = safe_json.loads(f.read(safe_json.MAX_CHARS + 1))
    except (OSError, ValueError):
        return None
    name = index.get("_class_name", "") if isinstance(index, dict) else ""
    folder = os.path.join(root, "tokenizer")
    return folder if str(name).startswith("Wan") and kind_of(folder) == "t5" else None


def find(kind: str, roots) -> str | None:
    """The first folder under ``roots`` holding a tokenizer of ``kind``."""
    if kind == "umt5":
        return next((f for f in map(_wan_folder, roots) if f), None)
    for root in roots:
        if kind == "pile_t5":  # a diffusers AuraFlow folder's tokenizer/ (Llama's files: told apart by the folder)
            from ..families.auraflow.tokenizer import diffusers_folder

            if diffusers_folder(root):
                return diffusers_folder(root)
        for folder in _candidates(root):
            if kind_of(folder) == kind:
                return folder
    return None


def load(kind: str, folder: str, pad_token: str | None):
    from transformers import CLIPTokenizer, Qwen2Tokenizer, T5Tokenizer

    from .tiny_parts import QWEN3_CHAT_TEMPLATE

    try:
        if kind == "clip":
            # ComfyUI's copy says model_max_length 8192 (it chunks prompts); diffusers pipelines pad to it
            return CLIPTokenizer.from_pretrained(folder, model_max_length=77, pad_token=pad_token,
                                                 local_files_only=True)
        if kind == "umt5":
            return T5Tokenizer.from_pretrained(folder, local_files_only=True)
        if kind == "qwen":
            # Qwen3 pipelines wrap prompts with the tokenizer's chat template: Qwen3's (ComfyUI's bundled Qwen2.5
            # files carry Qwen2.5's, which adds a system prompt the model was not trained with)
            return Qwen2Tokenizer.from_pretrained(folder, local_files_only=True, chat_template=QWEN3_CHAT_TEMPLATE)
        if kind == "mistral":
            return tekken(os.path.join(folder, TEKKEN))
        if kind == "llama":
            return llama3(folder)
        if kind == "gemma":
            from transformers import GemmaTokenizer

            return GemmaTokenizer.from_pretrained(folder, local_files_only=True)
        if kind == "pile_t5":
            from ..families.auraflow.tokenizer import load as pile_t5

            return pile_t5(folder)
        return T5Tokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as exc:  # transformers raises many types for unreadable tokenizer files
        raise PipelineLoadError(f"the {FILES_NEEDED[kind]} in {folder!r} cannot be read ({exc})") from exc


def llama3(folder: str):
    """A Llama 3 tokenizer from its tokenizer.json as it is (transformers' fast tokenizer: ComfyUI's own
    LlamaTokenizerFast reads the same file), ending and padding with ``<|eot_id|>`` as Llama 3.1 Instruct does
    (HiDream's pipeline pads with the eos token; ComfyUI's HiDream tokenizer pads with 128009, ``<|eot_id|>``)."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)
    vocab = tokenizer.get_vocab()
    if not all(t in vocab for t in LLAMA3_TOKENS):
        raise ValueError(f"it has no {' / '.join(LLAMA3_TOKENS)} tokens: not a Llama 3 tokenizer")
    tokenizer.eos_token = tokenizer.pad_token = "<|eot_id|>"
    return tokenizer


def from_spiece(data: bytes, label: str):
    """A T5 tokenizer from a sentencepiece model's bytes (a Unigram model: its pieces, scores and normalizer map),
    built as transformers' own sentencepiece converter builds it; ids equal sentencepiece's."""
    from transformers import T5Tokenizer

    proto = _spiece_proto(data, label, "UMT5")
    pieces = [(p.piece, p.score) for p in proto.pieces]
    if proto.trainer_spec.model_type != 1 or [p for p, _ in pieces[:3]] != ["<pad>", "</s>", "<unk>"]:
        raise PipelineLoadError(f"the {SPIECE} in {label} is not a UMT5 tokenizer (a Unigram model starting with "
                                "<pad>, </s>, <unk>); re-download the text-encoder file")
    charsmap = proto.normalizer_spec.precompiled_charsmap or None
    return T5Tokenizer(vocab=pieces, extra_ids=0, _spm_precompiled_charsmap=charsmap)


def gemma_from_spiece(data: bytes, label: str):
    """A Gemma tokenizer from a sentencepiece BPE model's bytes (ComfyUI's Gemma 2 files: Lumina 2's and Sana's text
    encoders), built as transformers 5 builds ``GemmaTokenizer`` from a ``tokenizer.model``
    (``TokenizersBackend._convert_from_sentencepiece``: the pieces in id order, merges by ``generate_merges``, control
    pieces special; an older model's missing tab piece is ``<0x09>`` renamed, as transformers' ``GemmaConverter``
    does, the same id), without the sentencepiece package. ``<bos>`` goes first (``add_bos_token``), as Gemma's
    ``tokenizer.json`` and ComfyUI's ``Gemma2BTokenizer`` (start token 2) put it; padding on the right, as Lumina 2's
    and Sana's pipelines pad."""
    from transformers import AddedToken, GemmaTokenizer
    from transformers.tokenization_utils_base import generate_merges

    proto = _spiece_proto(data, label, "Gemma")
    pieces = [p.piece for p in proto.pieces]
    if proto.trainer_spec.model_type != 2 or pieces[:3] != ["<pad>", "<eos>", "<bos>"] or len(set(pieces)) != \
            len(pieces):
        raise PipelineLoadError(f"the {SPIECE} in {label} is not a Gemma tokenizer (a BPE model starting with <pad>, "
                                "<eos>, <bos>); re-download the text-encoder file")
    if "\t" not in pieces and "<0x09>" in pieces:  # older Gemma models lack the tab piece: GemmaConverter's fix
        pieces[pieces.index("<0x09>")] = "\t"
    vocab = {piece: i for i, piece in enumerate(pieces)}
    special = [AddedToken(p.piece, normalized=False, special=p.type == 3) for p in proto.pieces if p.type in (3, 4)]
    unk = pieces[proto.trainer_spec.unk_id] if 0 <= proto.trainer_spec.unk_id < len(pieces) else "<unk>"
    tokenizer = GemmaTokenizer(vocab=vocab, merges=generate_merges(vocab), unk_token=unk, bos_token="<bos>",
                               eos_token="<eos>", pad_token="<pad>", additional_special_tokens=special,
                               add_bos_token=True, add_eos_token=False)
    tokenizer.padding_side = "right"
    return tokenizer


def _spiece_proto(data: bytes, label: str, what: str):
    try:
        from transformers.convert_slow_tokenizer import import_protobuf

        proto = import_protobuf().ModelProto()
        proto.ParseFromString(data)
    except ImportError as exc:
        raise PipelineLoadError(f"reading the {what} tokenizer in {label} needs the protobuf package "
                                f"(pip install protobuf): {exc}") from None
    except Exception as exc:  # protobuf's DecodeError and friends
        raise PipelineLoadError(f"the {SPIECE} in {label} is not a sentencepiece model ({exc}); re-download the "
                                "text-encoder file") from None
    return proto


def in_file(path: str, kind: str = "umt5"):
    """The tokenizer a text-encoder file carries (ComfyUI's ``spiece_model``: UMT5's Unigram model, or Gemma 2's BPE
    model for ``kind`` 'gemma'), or None."""
    from .parts import read_header, read_tensors

    header = read_header(path)
    shape = header.shapes.get(SPIECE)
    if shape is None or header.dtypes.get(SPIECE) != "U8" or len(shape) != 1:
        return None
    if shape[0] > MAX_SPIECE_BYTES:
        raise PipelineLoadError(f"{path!r}: its {SPIECE} has {shape[0]} bytes, more than a tokenizer holds "
                                f"({MAX_SPIECE_BYTES}); the file is damaged, re-download it")
    data = read_tensors(path, [SPIECE])[SPIECE]
    return (gemma_from_spiece if kind == "gemma" else from_spiece)(data.numpy().tobytes(), repr(path))


def tiny(kind: str, encoder_kind: str = ""):
    """The built-in tiny tokenizer of a tokenizer kind; the tiny Qwen-VL pipelines' own (their prompt templates'
    words as single tokens, as the real vocab makes them) for their encoder kinds."""
    from . import tiny_parts as tiny_models

    if encoder_kind == "qwen25_vl_7b":
        from ..families.qwenimage.tiny import tiny_qwen_tokenizer

        return tiny_qwen_tokenizer()
    if encoder_kind == "llama31_8b":
        from ..families.hidream.tiny import tiny_llama_tokenizer

        return tiny_llama_tokenizer()
    if encoder_kind == "qwen3_vl_4b":
        from ..families.krea2.tiny import tiny_qwen_tokenizer as krea2_tokenizer

        return krea2_tokenizer()
    if encoder_kind == "ministral3":
        from ..families.ernieimage.tiny import tiny_tokenizer as ernie_tokenizer

        return ernie_tokenizer()
    builders = {"clip": tiny_models.tiny_clip_tokenizer, "t5": tiny_models.tiny_t5_tokenizer,
                "umt5": tiny_models.tiny_t5_tokenizer, "pile_t5": tiny_models.tiny_t5_tokenizer,
                "gemma": tiny_models.tiny_gemma_tokenizer,
                "qwen": tiny_models.tiny_qwen_tokenizer, "mistral": tiny_models.tiny_mistral_tokenizer}
    return builders[kind]()


def tekken(path: str, data: bytes | None = None):
    """Mistral's tekken tokenizer (``tekken.json``, or its bytes from a text-encoder file) by transformers' own
    converter (``convert_tekken_tokenizer``), with the chat template FLUX.2 [dev] renders and Mistral 3's left
    padding."""
    import tempfile

    from transformers.integrations.mistral import convert_tekken_tokenizer

    from .tiny_parts import MISTRAL3_CHAT_TEMPLATE

    if data is not None:  # the converter reads a file named tekken.json
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, TEKKEN)
            with open(path, "wb") as f:
                f.write(data)
            return tekken(path)
    tokenizer = convert_tekken_tokenizer(path, chat_template=MISTRAL3_CHAT_TEMPLATE)
    tokenizer.padding_side = "left"
    return tokenizer


def _embedded(kind: str, path: str | None):
    """The tokenizer a text-encoder file carries (ComfyUI's Mistral files: ``tekken_model``), or None."""
    if kind != "mistral" or not path:
        return None
    from .parts import read_header, read_tensors

    shape = read_header(path).shapes.get(EMBEDDED_TEKKEN)
    if shape is None or len(shape) != 1 or shape[0] > MAX_TEKKEN_BYTES:
        return None
    data = read_tensors(path, [EMBEDDED_TEKKEN])[EMBEDDED_TEKKEN]
    log.info("single file: the Mistral tokenizer from %s", path)
    try:
        return tekken("", data.numpy().tobytes())
    except Exception as exc:  # transformers raises many types for unreadable tokenizer data
        raise PipelineLoadError(f"{path!r}: its tekken_model tokenizer data cannot be read ({exc}); re-download "
                                "the file") from exc


def resolve(encoder_kinds: dict[str, str], roots, builtin: bool, files: dict | None = None) -> tuple[dict, list[str]]:
    """Tokenizers per pipeline component (``tokenizer``, ``tokenizer_2``...) for ``{text_encoder*: kind}``,
    and what is missing (as sentences). ``builtin``: the in-memory tiny tokenizers. ``files``: each text encoder's
    file, for tokenizers carried inside it (Mistral's tekken, UMT5's spiece_model)."""
    roots, files = tuple(roots), files or {}
    found, missing = {}, []
    for component, encoder_kind in encoder_kinds.items():
        kind, pad = TOKENIZER_OF[encoder_kind]
        name = component.replace("text_encoder", "tokenizer")
        if builtin:
            found[name] = tiny(kind, encoder_kind)
            continue
        inside = _embedded(kind, files.get(component))
        if inside is None and kind in ("umt5", "gemma") and files.get(component):
            inside = in_file(files[component], kind)
            if inside is not None:
                log.info("single file: %s from %s (%s)", name, files[component], SPIECE)
        if inside is not None:
            found[name] = inside
        else:
            folder = find(kind, roots)
            if folder is None:
                if FILES_NEEDED[kind] not in missing:
                    missing.append(FILES_NEEDED[kind])
                continue
            log.info("single file: %s from %s", name, folder)
            found[name] = load(kind, folder, pad)
        if encoder_kind == "ministral3":
            found[name] = with_bos(found[name])
    return found, missing


def with_bos(tokenizer):
    """``tokenizer`` putting its BOS token before the text when called with special tokens (as pipelines call it
    without a chat template). ERNIE-Image's tekken tokenizer: ``<s>``, as ComfyUI's ERNIE tokenizer puts
    ``start_token`` 1 there (``comfy/text_encoders/ernie.py``); transformers' tekken converter adds none on its own.
    (Gemma's tokenizer puts its ``<bos>`` first by itself: ``gemma_from_spiece``.)"""
    from tokenizers import processors

    bos = tokenizer.bos_token
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.bos_token_id)])
    return tokenizer


def missing_message(missing: list[str], roots) -> str:
    looked = ", ".join(roots) if roots else "no folder"
    return (f"it needs tokenizer files, which checkpoints never contain: {' and '.join(missing)}. Looked in: {looked}. "
            "Inside ComfyUI they come with ComfyUI itself (comfy/sd1_tokenizer, comfy/text_encoders/t5_tokenizer, "
            "comfy/text_encoders/qwen25_tokenizer, comfy/text_encoders/llama_tokenizer); "
            f"headless, set {TOKENIZERS_ENV} (or pass --tokenizers to loradeck run, tokenizer_dirs= to "
            "open_pipeline) to a ComfyUI checkout or to a diffusers folder of this model, or put the tokenizer "
            "folders (e.g. ComfyUI's sd1_tokenizer and t5_tokenizer) in models/tokenizers/")
