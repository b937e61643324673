"""FLUX.2 [dev]'s text encoder from ComfyUI's file (``mistral_3_small_flux2_bf16.safetensors`` / ``_fp8``): the text
model of Mistral Small 3 in transformers' names under ``model.``, with no vision tower, sometimes pruned to the 30
layers FLUX.2 reads (ComfyUI's ``MISTRAL3_24B_PRUNED_FLUX2``: no final norm either), and, in ComfyUI's files, its
tekken tokenizer as a byte tensor ``tekken_model`` (``tokenizers.py`` reads it).

``Flux2Pipeline`` only calls the encoder for its hidden states 10, 20 and 30 (``text_encoder(input_ids,
attention_mask, output_hidden_states=True)``), which ``Mistral3ForConditionalGeneration`` takes from its language
model: the encoder is built as that language model, a transformers ``MistralModel`` configured from the
``text_config`` of the Mistral 3 config, with as many layers as the file has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import PipelineLoadError

if TYPE_CHECKING:  # torch is imported where a model is built: commands that read the rows must not import it
    import torch

READ_LAYER = 30  # the deepest hidden state Flux2Pipeline stacks (text_encoder_out_layers (10, 20, 30))


def mistral_model(cls, component: str, tensors: dict, config_dir: str, dtype: torch.dtype):
    """A ``MistralModel`` from the text-encoder file's tensors (a builder for ``Arch.builders``)."""
    import json
    import os

    import torch
    from transformers import MistralConfig, MistralModel

    from ...models.build import text_state

    state = text_state(component, tensors, dtype, "Mistral text encoder")
    layers = len({k.split(".")[1] for k in state if k.startswith("layers.")})
    if layers < READ_LAYER:
        raise PipelineLoadError(f"the {component} has {layers} layers; FLUX.2 reads hidden state {READ_LAYER}")
    with open(os.path.join(config_dir, component, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    config = MistralConfig(**{**config.get("text_config", config), "num_hidden_layers": layers})
    with torch.device("meta"):
        model = MistralModel(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if unexpected:
        raise PipelineLoadError(f"the {component} has {len(unexpected)} weights a Mistral text model does not, e.g. "
                                f"{', '.join(unexpected[:3])}")
    if "norm.weight" in missing:  # pruned to the layers FLUX.2 reads: ComfyUI runs it without a final norm
        model.norm = torch.nn.Identity()
    model.rotary_emb = type(model.rotary_emb)(config=config)  # non-persistent: computed, never stored
    return model.eval()
