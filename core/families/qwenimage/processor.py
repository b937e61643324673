"""The Qwen2-VL processor the Qwen-Image-Edit pipelines need, built without torchvision.

transformers 5 makes ``Qwen2VLProcessor`` from an image processor, a tokenizer and a video processor. Its default
image processor and every video processor need torchvision, which LoRA Deck does not require (and whose PyPI
wheels are CUDA builds that break beside a CPU torch). The Edit pipelines pass images only, so the processor is
made here from the PIL image backend (``Qwen2VLImageProcessorPil``, the same resizing and patching without
torchvision) and no video processor. ``ProcessorMixin.__init__`` checks each part's class by name, and the name
it checks a video processor against (``VideoProcessorMixin``) is only exported with torchvision, so even an
absent one fails that check; the real ``__init__`` runs with that one check skipped for the absent video processor.

A saved Edit folder (``processor/``: tokenizer files + ``preprocessor_config.json``, as on the Hub) is read the
same way (``folder_components``): diffusers' own ``from_pretrained`` would load a video processor and fail
without torchvision.
"""

from __future__ import annotations

import os

# Qwen/Qwen-Image-Edit processor/preprocessor_config.json (also Edit-2509 / 2511)
IMAGE_PROCESSOR = {"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
                   "merge_size": 2}
PROCESSOR_CLASSES = ("Qwen2VLProcessor", "Qwen2_5_VLProcessor")


def image_processor(folder: str | None = None):
    """Qwen2-VL's image processor on the PIL backend: the Edit repos' settings, or a folder's
    ``preprocessor_config.json``."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    if folder is None:
        return Qwen2VLImageProcessorPil(**IMAGE_PROCESSOR)
    return Qwen2VLImageProcessorPil.from_pretrained(folder, local_files_only=True)


def qwen_processor(tokenizer, images=None, class_name: str = "Qwen2VLProcessor"):
    """``class_name`` (Qwen2VLProcessor or Qwen2_5_VLProcessor) over ``tokenizer`` and ``images`` (default: the
    Edit repos' image processor), with no video processor."""
    import transformers

    cls = getattr(transformers, class_name)
    processor = cls.__new__(cls)
    real_check = cls.check_argument_for_proper_class

    def check(name, arg):
        if name == "video_processor" and arg is None:
            return None
        return real_check(processor, name, arg)

    processor.check_argument_for_proper_class = check  # shadows the method during __init__ only
    try:
        cls.__init__(processor, image_processor=images or image_processor(), tokenizer=tokenizer,
                     video_processor=None)
    finally:
        del processor.check_argument_for_proper_class
    return processor


def file_components(index: dict, components: dict) -> dict:
    """A split-file Edit pipeline's ``processor``: the Edit repos' image processor over the tokenizer found for it
    (no file holds a processor)."""
    spec = index.get("processor")
    if not (isinstance(spec, list) and len(spec) == 2 and spec[0] is not None):
        return {}
    return {"processor": qwen_processor(components["tokenizer"], class_name=str(spec[1]))}


def folder_components(folder: str, index: dict) -> dict:
    """What ``from_pretrained`` of a saved Qwen-Image folder needs passed in: the Edit pipelines' ``processor``,
    built offline from its ``processor/`` subfolder (tokenizer files and preprocessor_config.json)."""
    from ...errors import PipelineLoadError

    spec = index.get("processor")
    if not (isinstance(spec, list) and len(spec) == 2 and spec[0] is not None):
        return {}
    class_name = str(spec[1])
    sub = os.path.join(folder, "processor")
    if class_name not in PROCESSOR_CLASSES:
        raise PipelineLoadError(f"{folder!r}: its processor is a {class_name}; Qwen-Image-Edit folders have a "
                                f"{' or '.join(PROCESSOR_CLASSES)}")
    if not os.path.isfile(os.path.join(sub, "preprocessor_config.json")):
        raise PipelineLoadError(f"{folder!r} has no processor/preprocessor_config.json, which a Qwen-Image-Edit "
                                "folder needs (its image processor); copy the processor folder of the model's "
                                "repository into it")
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(sub, local_files_only=True)
        return {"processor": qwen_processor(tokenizer, image_processor(sub), class_name)}
    except Exception as exc:  # transformers raises many types for unreadable tokenizer / processor files
        raise PipelineLoadError(f"the processor in {sub!r} cannot be read ({type(exc).__name__}: {exc}); "
                                "copy the processor folder of the model's repository again") from exc
