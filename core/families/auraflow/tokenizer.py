"""AuraFlow's tokenizer: Pile-T5's, which is Llama 2's sentencepiece BPE (32000 pieces; the encoder's 32128-row
embedding is padded). diffusers' AuraFlowPipeline runs it as ``LlamaTokenizerFast``; ComfyUI bundles the
sentencepiece model as ``comfy/text_encoders/t5_pile_tokenizer/tokenizer.model`` and encodes with no BOS and an EOS,
padding with id 1 (``comfy/text_encoders/aura_t5.py``).

From that file alone the tokenizer is built with transformers' own pieces, without the sentencepiece package
(ComfyUI's requirements have it, LoRA Deck's do not): the proto is read with transformers' protobuf schema, the merges
are generated from the pieces ordered by their scores (``generate_merges``, as transformers' slow-to-fast converter
does), and ``LlamaTokenizer`` (fast) is configured as ComfyUI encodes: no BOS, EOS, pad ``<s>`` (id 1; the pipeline
masks the padding, so its id never reaches the picture). A diffusers AuraFlow folder's ``tokenizer/`` loads with its
own config.
"""

from __future__ import annotations

import os

from ...errors import PipelineLoadError

MODEL = "tokenizer.model"
MAX_BYTES = 16 * 1024 * 1024
_SPECIAL = ["<unk>", "<s>", "</s>"]


def _proto(path: str):
    from transformers.convert_slow_tokenizer import import_protobuf

    if os.path.getsize(path) > MAX_BYTES:
        return None
    proto = import_protobuf().ModelProto()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    return proto


def is_pile_t5(folder: str) -> bool:
    """``folder`` holds Pile-T5's (Llama 2's) sentencepiece model alone: BPE, 32000 pieces, <unk> <s> </s> first."""
    path = os.path.join(folder, MODEL)
    try:
        proto = _proto(path) if os.path.isfile(path) else None
    except Exception:  # protobuf's DecodeError and friends: not this tokenizer
        return False
    return proto is not None and proto.trainer_spec.model_type == 2 and len(proto.pieces) == 32000 and \
        [p.piece for p in proto.pieces[:3]] == _SPECIAL


def diffusers_folder(root: str) -> str | None:
    """``root/tokenizer`` when ``root`` is a diffusers AuraFlow folder (its Llama tokenizer files, which only the
    folder's pipeline class tells apart from another Llama tokenizer's)."""
    from ...files import safe_json

    try:
        with open(os.path.join(root, "model_index.json"), "rb") as f:
            index = safe_json.loads(f.read(safe_json.MAX_CHARS + 1))
    except (OSError, ValueError):
        return None
    folder = os.path.join(root, "tokenizer")
    named = isinstance(index, dict) and str(index.get("_class_name", "")).startswith("AuraFlow")
    return folder if named and os.path.isfile(os.path.join(folder, "tokenizer.json")) else None


def load(folder: str):
    """The tokenizer of a diffusers ``tokenizer/`` folder (its own config), else of ComfyUI's ``tokenizer.model``."""
    from transformers import LlamaTokenizerFast

    if os.path.isfile(os.path.join(folder, "tokenizer.json")):
        return LlamaTokenizerFast.from_pretrained(folder, local_files_only=True)
    from transformers.convert_slow_tokenizer import generate_merges

    proto = _proto(os.path.join(folder, MODEL))
    if proto is None:
        raise PipelineLoadError(f"{os.path.join(folder, MODEL)!r} is larger than a tokenizer ({MAX_BYTES} bytes)")
    vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    merges = generate_merges(vocab, {p.piece: p.score for p in proto.pieces})
    return LlamaTokenizerFast(vocab=vocab, merges=merges, add_bos_token=False, add_eos_token=True, pad_token="<s>",
                              padding_side="right")
