"""What diffusers' Chroma pipelines (0.42.1) need before they run Chroma as it was trained (``Family.fix``).

1. The attention mask. Chroma masks the T5 padding out except one padding token (lodestones' recipe; sd-scripts'
   ``attn_padding=1``). ``ChromaPipeline``, ``ChromaImg2ImgPipeline`` and ``ChromaInpaintPipeline`` build that
   mask right but hand it to the transformer as float 0/1, and PyTorch's attention *adds* a float mask to the
   scores instead of masking (diffusers issues #12116, #13619): the padding is attended to. A forward pre-hook on
   the transformer turns the mask back into booleans, for all three classes (they share the transformer). With it
   the output equals diffusers' own boolean-mask path (``prompt_embeds`` + boolean masks, text-to-image only) and
   sd-scripts' Chroma forward (tests/test_family_chroma.py).
2. ``ChromaInpaintPipeline`` reads ``transformer.config.guidance_embeds``, which ``ChromaTransformer2DModel``'s
   config does not have (AttributeError on every call). Chroma1-HD's own config.json says ``false`` (diffusers
   drops it as an unexpected key); it is registered so.

Both are idempotent: a pipeline that has them is left as it is.
"""

from __future__ import annotations


def boolean_attention_mask(module, args, kwargs):
    """Forward pre-hook: a float 0/1 ``attention_mask`` -> the boolean mask it stands for."""
    mask = kwargs.get("attention_mask")
    if mask is not None and mask.is_floating_point():
        kwargs["attention_mask"] = mask > 0.5
    return args, kwargs


def fix(pipe) -> None:
    transformer = getattr(pipe, "transformer", None)
    if transformer is None:
        return
    if "guidance_embeds" not in transformer.config:
        transformer.register_to_config(guidance_embeds=False)
    hooks = transformer._forward_pre_hooks.values()  # a deep-copied pipeline keeps its hooks
    if not any(hook is boolean_attention_mask for hook in hooks):
        transformer.register_forward_pre_hook(boolean_attention_mask, with_kwargs=True)
