"""ERNIE-Image's text encoder from ComfyUI's file (``models/text_encoders/ministral-3-3b.safetensors``): the Ministral
3 3B text model in transformers' Llama names under ``model.`` (ComfyUI detects it by
``model.layers.0.post_attention_layernorm.weight`` 3072 wide, ``comfy/sd.py`` ``TEModel.MINISTRAL_3_3B``), and its
tekken tokenizer as the byte tensor ``tekken_model`` (``models/tokenizers.py`` reads it).

``ErnieImagePipeline`` calls the encoder for its hidden states only (``text_encoder(input_ids=...,
output_hidden_states=True).hidden_states[-2]``), which ``Mistral3Model`` takes from its language model: the encoder
is built as that language model, a transformers ``Ministral3Model`` configured from the ``text_config`` of the
Mistral 3 config. It reads the second-to-last hidden state, so the file must have every layer of the config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import PipelineLoadError

if TYPE_CHECKING:  # torch is imported where a model is built: commands that read the rows must not import it
    import torch


def ministral_model(cls, component: str, tensors: dict, config_dir: str, dtype: torch.dtype):
    """A ``Ministral3Model`` from the text-encoder file's tensors (a builder for ``Arch.builders``)."""
    import json
    import os

    import torch
    from transformers import Ministral3Config, Ministral3Model

    from ...models.build import text_state

    state = text_state(component, tensors, dtype, "Ministral 3 text encoder")
    with open(os.path.join(config_dir, component, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    config = Ministral3Config(**config.get("text_config", config))
    layers = len({k.split(".")[1] for k in state if k.startswith("layers.")})
    if layers != config.num_hidden_layers:
        raise PipelineLoadError(f"the {component} has {layers} layers, the Ministral 3 text encoder "
                                f"{config.num_hidden_layers}: ERNIE-Image reads its second-to-last hidden state")
    with torch.device("meta"):
        model = Ministral3Model(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if unexpected or missing:
        raise PipelineLoadError(f"the {component} does not hold the Ministral 3 text model of its config: "
                                f"{len(missing)} weights missing ({', '.join(missing[:3])}), {len(unexpected)} "
                                f"unexpected ({', '.join(unexpected[:3])})")
    model.rotary_emb = type(model.rotary_emb)(config=config)  # non-persistent: computed, never stored
    return model.eval()
