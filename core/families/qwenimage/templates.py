"""Qwen-Image's prompt templates as diffusers 0.42's pipelines write them (no imports: the fixture generators
load this file by its path)."""

# the pipelines' prompt templates (diffusers 0.42 pipeline_qwenimage*.py) and the Edit Plus image prefix
T2I_TEMPLATE = (
    "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, text, spatial "
    "relationships of the objects and background:<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
)
EDIT_TEMPLATE = (
    "<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, objects, "
    "background), then explain how the user's text instruction should alter or modify the image. Generate a new image "
    "that meets the user's requirements while maintaining consistency with the original input where appropriate."
    "<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
)
EXTRA_TEXT = "Picture 1: assistant"
