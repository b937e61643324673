"""HiDream-I1's fourth text encoder from ComfyUI's file (``llama_3.1_8b_instruct_fp8_scaled.safetensors``, or bf16):
Llama 3.1 8B Instruct in transformers' names under ``model.`` (``model.embed_tokens``, ``model.layers.N.self_attn
.q_proj``, ``model.norm``: ComfyUI's ``comfy/text_encoders/llama.py`` ``Llama2_`` holds these names), no ``lm_head``
(ComfyUI's model has none).

``HiDreamImagePipeline`` calls it for the hidden states of every layer (``text_encoder_4(ids, attention_mask,
output_hidden_states=True)``), never for its logits: it is built as the ``LlamaForCausalLM`` the pipeline's
diffusers folders hold, with the input embedding in the place of the LM head it never reads (no memory for a
second 128256 x 4096 matrix). Its fp8 weights are dequantized at load (exactly: ComfyUI's arithmetic,
``models/quantized``), as every text encoder's but T5's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import PipelineLoadError

if TYPE_CHECKING:  # torch is imported where a model is built: commands that read the rows must not import it
    import torch


def llama_model(cls, component: str, tensors: dict, config_dir: str, dtype: torch.dtype):
    """A ``LlamaForCausalLM`` from the text-encoder file's tensors (a builder for ``Arch.builders``)."""
    import os

    from ...models.build import text_state
    from ...models.quantized.loading import _parameters_on_meta

    state = {"model." + k: v for k, v in text_state(component, tensors, dtype, "Llama text encoder").items()}
    config = cls.config_class.from_json_file(os.path.join(config_dir, component, "config.json"))
    with _parameters_on_meta():  # parameters on the meta device; the rotary frequencies computed as usual
        model = cls(config)
    state["lm_head.weight"] = state["model.embed_tokens.weight"]  # the logits no pipeline reads
    _, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if unexpected:
        raise PipelineLoadError(f"the {component} has {len(unexpected)} weights a {cls.__name__} of this "
                                f"architecture does not, e.g. {', '.join(sorted(unexpected)[:3])}")
    return model.eval()
