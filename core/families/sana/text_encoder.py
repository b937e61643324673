"""Sana's text encoder from a Gemma 2 file in ComfyUI's text-encoder layout (``models/text_encoders``: transformers'
Gemma 2 names under ``model.``, as ComfyUI's ``Gemma2_2B`` holds them, its sentencepiece tokenizer as the byte tensor
``spiece_model``: ``models/tokenizers.py`` reads it).

``SanaPipeline`` calls the encoder for its last hidden state only (``text_encoder(input_ids, attention_mask)[0]``):
the encoder is a transformers ``Gemma2Model`` of the shipped config, given the file's tensors. Sana was trained with
Gemma 2 2B IT; the base Gemma 2 2B (ComfyUI's ``gemma_2_2b_fp16.safetensors`` for Lumina 2) has the same keys and
shapes, so a file cannot tell them apart: use the IT weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import PipelineLoadError

if TYPE_CHECKING:  # torch is imported where a model is built: commands that read the rows must not import it
    import torch


def gemma2_model(cls, component: str, tensors: dict, config_dir: str, dtype: torch.dtype):
    """A ``Gemma2Model`` from the text-encoder file's tensors (a builder for ``Arch.builders``)."""
    import os

    from transformers import Gemma2Config, Gemma2Model

    from ...models.quantized.loading import _parameters_on_meta

    embed = next((k for k in tensors if k.endswith("embed_tokens.weight")), None)
    if embed is None:
        raise PipelineLoadError(f"the {component} holds no embed_tokens.weight; it is not a Gemma 2 text encoder")
    prefix = embed[: -len("embed_tokens.weight")]
    state = {k[len(prefix):]: v.to(dtype) for k, v in tensors.items() if k.startswith(prefix)}
    config = Gemma2Config.from_json_file(os.path.join(config_dir, component, "config.json"))
    with _parameters_on_meta():  # buffers (the embedding's scale, RoPE's frequencies) computed as usual
        model = Gemma2Model(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if unexpected or missing:
        raise PipelineLoadError(f"the {component} does not hold the Gemma 2 model of its config: {len(missing)} "
                                f"weights missing ({', '.join(missing[:3])}), {len(unexpected)} unexpected "
                                f"({', '.join(unexpected[:3])})")
    return model.eval()
