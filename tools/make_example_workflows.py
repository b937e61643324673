"""Writes example_workflows/*.json (UI format, shown by ComfyUI as templates) and their API-format twins.

    python tools/make_example_workflows.py

Both files come from one graph description here, written independently of the runner's
UI-to-API converter, so tests comparing them check that converter.
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "example_workflows")

PROMPT = "loradeck detail, a lighthouse on a cliff at sunset"
GEN = {"prompt": PROMPT, "negative_prompt": "blurry", "seed": 42, "steps": 20, "cfg": 7.0,
       "width": 128, "height": 128, "batch_size": 1, "scheduler": "model default", "denoise": 1.0}
STYLE, KOHYA = "loradeck-demo-style.safetensors", "loradeck-demo-kohya.safetensors"

def _strength(first: int, title: str, name: str, strength: float, prefix: str, y: int) -> dict:
    """One LoRA at one strength from the demo pipeline: Load LoRA -> Generate -> Save Image."""
    return {
        first: ("LoadLoRA|LoRADeck", title, {"lora_name": name, "strength_model": strength, "strength_clip": strength,
                                             "adapter_name": ""}, {"pipeline": (1, 0)}, (400, y)),
        first + 1: ("Generate|LoRADeck", f"Generate ({title})", dict(GEN), {"pipeline": (first, 0)}, (780, y)),
        first + 2: ("SaveImage", f"Save {title}", {"filename_prefix": f"loradeck-demo/{prefix}"},
                    {"images": (first + 1, 0)}, (1140, y)),
    }


# id: (class, title, widgets, links {input: (src id, slot)}, position)
DEMO = {
    1: ("LoadPipeline|LoRADeck", "Tiny SD (built-in)", {"model_name": "tiny-sd (built-in)", "dtype": "auto"}, {},
        (40, 300)),
    2: ("StackLoRA|LoRADeck", "Stack two demo LoRAs", {
        "enabled_1": True, "lora_name_1": STYLE, "strength_model_1": 0.8, "strength_clip_1": 0.5,
        "enabled_2": True, "lora_name_2": KOHYA, "strength_model_2": 0.7, "strength_clip_2": 1.0,
        "enabled_3": True, "lora_name_3": "None", "strength_model_3": 1.0, "strength_clip_3": 1.0,
        "enabled_4": True, "lora_name_4": "None", "strength_model_4": 1.0, "strength_clip_4": 1.0},
        {"pipeline": (1, 0)}, (400, 40)),
    3: ("SetAdapterWeights|LoRADeck", "Set weights", {
        "weights": "loradeck-demo-style: model=1.0, clip=1.0\nloradeck-demo-kohya: 1.0\n"},
        {"pipeline": (2, 0)}, (780, 40)),
    4: ("FuseLoRA|LoRADeck", "Fuse both", {"lora_scale": 1.0, "safe_fusing": True, "adapter_names": "",
                                         "components": ""},
        {"pipeline": (3, 0)}, (1140, 40)),
    5: ("Generate|LoRADeck", "Generate (fused)", dict(GEN), {"pipeline": (4, 0)}, (1480, 40)),
    6: ("SaveImage", "Save fused", {"filename_prefix": "loradeck-demo/6-stack-fused"}, {"images": (5, 0)},
        (1860, 40)),
    7: ("Generate|LoRADeck", "Generate (unfused)", dict(GEN), {"pipeline": (3, 0)}, (1140, 420)),
    8: ("SaveImage", "Save unfused", {"filename_prefix": "loradeck-demo/5-stack"}, {"images": (7, 0)},
        (1480, 420)),
    9: ("LoadLoRA|LoRADeck", "Kohya LoRA alone", {"lora_name": KOHYA, "strength_model": 1.0, "strength_clip": 1.0,
                                                  "adapter_name": "detail"}, {"pipeline": (1, 0)}, (400, 620)),
    10: ("Generate|LoRADeck", "Generate (one LoRA)", dict(GEN), {"pipeline": (9, 0)}, (780, 620)),
    11: ("SaveImage", "Save one LoRA", {"filename_prefix": "loradeck-demo/4-kohya-1"}, {"images": (10, 0)},
         (1140, 820)),
    12: ("Generate|LoRADeck", "Generate (no LoRA)", dict(GEN), {"pipeline": (1, 0)}, (400, 900)),
    13: ("SaveImage", "Save base", {"filename_prefix": "loradeck-demo/0-base"}, {"images": (12, 0)}, (780, 1000)),
    **_strength(15, "Style LoRA at 0.5", STYLE, 0.5, "1-style-0.5", 1300),
    **_strength(18, "Style LoRA at 1", STYLE, 1.0, "2-style-1", 1700),
    **_strength(21, "Kohya LoRA at 0.5", KOHYA, 0.5, "3-kohya-0.5", 2100),
}


def _pipe(node_id=1, pos=(40, 300)):
    return {node_id: ("LoadPipeline|LoRADeck", "Tiny SD (built-in)", {"model_name": "tiny-sd (built-in)",
                                                                     "dtype": "auto"}, {}, pos)}


def _stack(src, pos):
    return ("StackLoRA|LoRADeck", "Stack two demo LoRAs", {
        "enabled_1": True, "lora_name_1": STYLE, "strength_model_1": 1.0, "strength_clip_1": 1.0,
        "enabled_2": True, "lora_name_2": KOHYA, "strength_model_2": 0.8, "strength_clip_2": 0.8,
        "enabled_3": False, "lora_name_3": "None", "strength_model_3": 1.0, "strength_clip_3": 1.0,
        "enabled_4": False, "lora_name_4": "None", "strength_model_4": 1.0, "strength_clip_4": 1.0},
        {"pipeline": (src, 0)}, pos)


def _gen_save(gen_id, src, prefix, title, pos):
    x, y = pos
    return {gen_id: ("Generate|LoRADeck", f"Generate ({title})", dict(GEN), {"pipeline": (src, 0)}, (x, y)),
            gen_id + 1: ("SaveImage", f"Save {title}", {"filename_prefix": prefix}, {"images": (gen_id, 0)},
                         (x + 380, y))}


BLOCK_WEIGHTS = {
    **_pipe(),
    2: ("LoadLoRA|LoRADeck", "Style LoRA", {"lora_name": STYLE, "strength_model": 1.0, "strength_clip": 1.0,
                                            "adapter_name": "style"}, {"pipeline": (1, 0)}, (400, 300)),
    3: ("SetAdapterWeights|LoRADeck", "Output blocks only (A1111 vector)", {
        "weights": "style: lbw=1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1\n"}, {"pipeline": (2, 0)}, (780, 40)),
    4: ("SetAdapterWeights|LoRADeck", "Per block (diffusers form)", {
        "weights": "style: down=0.2, mid=1.0, up.block_1=[0.4,0.8,1.0]\n"}, {"pipeline": (2, 0)}, (780, 420)),
    **_gen_save(5, 3, "loradeck-blocks/lbw-out", "LBW OUT", (1140, 40)),
    **_gen_save(7, 4, "loradeck-blocks/dict", "dict form", (1140, 420)),
}
FUSE_UNFUSE = {
    **_pipe(),
    2: _stack(1, (400, 300)),
    3: ("FuseLoRA|LoRADeck", "Fuse the kohya LoRA only", {"lora_scale": 1.0, "safe_fusing": True,
                                                         "adapter_names": "loradeck-demo-kohya", "components": ""},
        {"pipeline": (2, 0)}, (780, 40)),
    4: ("UnfuseLoRA|LoRADeck", "Unfuse (exact)", {}, {"pipeline": (3, 0)}, (780, 420)),
    **_gen_save(5, 3, "loradeck-fuse/fused", "fused", (1140, 40)),
    **_gen_save(7, 4, "loradeck-fuse/unfused", "unfused", (1140, 420)),
}
SAVE_STACK = {
    **_pipe(),
    2: _stack(1, (400, 300)),
    3: ("SaveLoRA|LoRADeck", "Save the stack as one file", {"filename_prefix": "loradeck/demo-stack",
                                                           "mode": "separate", "rank": 32},
        {"pipeline": (2, 0)}, (780, 300)),
    **_gen_save(4, 3, "loradeck-save/stack", "stack", (1140, 300)),
}
LORA_LIST = {
    **_pipe(),
    2: ("LoRAList|LoRADeck", "LoRA List: rows you add, remove and switch", {"loras": json.dumps([
        {"enabled": True, "lora_name": STYLE, "strength_model": 1.0, "strength_clip": 1.0, "sha256": ""},
        {"enabled": True, "lora_name": KOHYA, "strength_model": 0.5, "strength_clip": 0.5, "sha256": ""},
        {"enabled": False, "lora_name": KOHYA, "strength_model": 1.0, "strength_clip": 1.0, "sha256": ""}])},
        {"pipeline": (1, 0)}, (400, 300)),
    **_gen_save(3, 2, "loradeck-list/list", "list", (780, 300)),
}
INPUT_IMAGE = "loradeck-lighthouse.png"  # example_workflows/input/, written by write_input_image()
IMG2IMG = {
    **_pipe(),
    2: ("LoadLoRA|LoRADeck", "Style LoRA", {"lora_name": STYLE, "strength_model": 0.8, "strength_clip": 0.5,
                                            "adapter_name": "style"}, {"pipeline": (1, 0)}, (400, 300)),
    3: ("LoadImage", "Load Image (transparent sky = mask)", {"image": INPUT_IMAGE}, {}, (40, 620)),
    4: ("Generate|LoRADeck", "Generate (img2img, denoise 0.6)",
        {**GEN, "scheduler": "DPM++ 2M Karras", "denoise": 0.6}, {"pipeline": (2, 0), "image": (3, 0)}, (780, 40)),
    5: ("SaveImage", "Save img2img", {"filename_prefix": "loradeck-img2img/img2img"}, {"images": (4, 0)},
        (1160, 40)),
    6: ("Generate|LoRADeck", "Generate (inpaint the sky)", {**GEN, "scheduler": "Euler a", "denoise": 1.0},
        {"pipeline": (2, 0), "image": (3, 0), "mask": (3, 1)}, (780, 420)),
    7: ("SaveImage", "Save inpainting", {"filename_prefix": "loradeck-img2img/inpaint"}, {"images": (6, 0)},
        (1160, 420)),
}
STYLE_NAME, KOHYA_NAME = STYLE.removesuffix(".safetensors"), KOHYA.removesuffix(".safetensors")
GRID = {
    **_pipe(),
    2: _stack(1, (400, 300)),
    3: ("LoRAGrid|LoRADeck", "LoRA Grid (one batched pass)", {
        "prompt": PROMPT, "negative_prompt": "blurry", "seed": 42, "steps": 20, "cfg": 7.0, "width": 128,
        "height": 128, "x_axis": f"strength {STYLE_NAME}: 0 | 0.5 | 1 | ramp(1.2, 0)",
        "y_axis": f"adapters: none | {KOHYA_NAME}", "scheduler": "model default"}, {"pipeline": (2, 0)}, (780, 300)),
    4: ("SaveImage|LoRADeck", "Save the grid", {"filename_prefix": "loradeck-grid/grid"}, {"images": (3, 0)},
        (1180, 40)),
    5: ("SaveImage|LoRADeck", "Save each cell", {"filename_prefix": "loradeck-grid/cell"}, {"images": (3, 1)},
        (1180, 420)),
}
SCHEDULE = {
    **_pipe(),
    2: ("LoadLoRA|LoRADeck", "Style LoRA", {"lora_name": STYLE, "strength_model": 1.0, "strength_clip": 1.0,
                                            "adapter_name": "style"}, {"pipeline": (1, 0)}, (400, 300)),
    3: ("SetAdapterWeights|LoRADeck", "Strong early, weak late", {
        "weights": "style: model=ramp(1.2, 0.2), clip=0.8\n"}, {"pipeline": (2, 0)}, (780, 40)),
    4: ("SetAdapterWeights|LoRADeck", "First 40 % of the steps only", {
        "weights": "style: model=1.0@0-0.4, 0@0.4-1, clip=1.0\n"}, {"pipeline": (2, 0)}, (780, 420)),
    5: ("Generate|LoRADeck", "Generate (ramp)", dict(GEN), {"pipeline": (3, 0)}, (1140, 40)),
    6: ("SaveImage|LoRADeck", "Save ramp", {"filename_prefix": "loradeck-schedule/ramp"}, {"images": (5, 0)},
        (1520, 40)),
    7: ("Generate|LoRADeck", "Generate (early only)", dict(GEN), {"pipeline": (4, 0)}, (1140, 420)),
    8: ("SaveImage|LoRADeck", "Save early only", {"filename_prefix": "loradeck-schedule/early"},
        {"images": (7, 0)}, (1520, 420)),
}
PROMPT_TAGS = {
    **_pipe(),
    2: ("Generate|LoRADeck", "Generate (LoRAs from the prompt)", {
        **GEN, "prompt": f"a lighthouse on a cliff at sunset <lora:{STYLE_NAME}:0.8:0.5>, <lora:{KOHYA_NAME}:0.7>"},
        {"pipeline": (1, 0)}, (400, 300)),
    3: ("SaveImage|LoRADeck", "Save (tags kept in the parameters)", {"filename_prefix": "loradeck-tags/tags"},
        {"images": (2, 0)}, (780, 300)),
}
SAVE_IMAGE = {
    **_pipe(),
    2: _stack(1, (400, 300)),
    3: ("Generate|LoRADeck", "Generate", dict(GEN), {"pipeline": (2, 0)}, (780, 300)),
    4: ("SaveImage|LoRADeck", "Save Image (LoRA Deck): A1111 parameters with Lora hashes",
        {"filename_prefix": "loradeck-civitai/stack"}, {"images": (3, 0), "parameters": (3, 1)}, (1160, 300)),
}
WAN_HIGH, WAN_LOW = "loradeck-demo-wan22-high.safetensors", "loradeck-demo-wan22-low.safetensors"
VIDEO_GEN = {"prompt": "a lighthouse on a cliff, waves rolling in, slow pan", "negative_prompt": "blurry, static",
             "seed": 42, "steps": 6, "cfg": 5.0, "width": 64, "height": 64, "batch_size": 1,
             "scheduler": "model default", "denoise": 1.0, "num_frames": 17}
VIDEO = {
    1: ("LoadPipeline|LoRADeck", "Tiny Wan 2.2 text-to-video (built-in, two experts)",
        {"model_name": "tiny-wan22 (built-in)", "dtype": "auto"}, {}, (40, 300)),
    2: ("LoadLoRAPair|LoRADeck", "LoRA pair: high noise -> transformer, low noise -> transformer_2", {
        "lora_name_high": WAN_HIGH, "lora_name_low": WAN_LOW, "strength_high": 1.0, "strength_low": 1.0,
        "adapter_name": "demo pair"}, {"pipeline": (1, 0)}, (480, 300)),
    3: ("SetAdapterWeights|LoRADeck", "Each expert its own strength", {
        "weights": "demo pair: transformer=1.0, transformer_2=0.6\n"}, {"pipeline": (2, 0)}, (920, 300)),
    4: ("Generate|LoRADeck", "Generate 17 frames (text-to-video)", dict(VIDEO_GEN), {"pipeline": (3, 0)},
        (1360, 300)),
    5: ("SaveAnimatedWEBP", "Save Animated WEBP", {"filename_prefix": "loradeck-video/t2v", "fps": 16.0,
                                                   "lossless": False, "quality": 90, "method": "default"},
        {"images": (4, 0)}, (1800, 40)),
    6: ("CreateVideo", "Create Video", {"fps": 16.0}, {"images": (4, 0)}, (1800, 420)),
    7: ("SaveVideo", "Save Video (MP4)", {"filename_prefix": "loradeck-video/t2v-video", "format": "auto",
                                          "codec": "auto"}, {"video": (6, 0)}, (2240, 420)),
    8: ("LoadPipeline|LoRADeck", "Tiny Wan 2.2 image-to-video (built-in, two experts)",
        {"model_name": "tiny-wan22-i2v (built-in)", "dtype": "auto"}, {}, (40, 800)),
    9: ("LoadLoRAPair|LoRADeck", "The same pair on the I2V model", {
        "lora_name_high": WAN_HIGH, "lora_name_low": WAN_LOW, "strength_high": 1.0, "strength_low": 0.6,
        "adapter_name": "demo pair"}, {"pipeline": (8, 0)}, (480, 800)),
    10: ("LoadImage", "Load Image (the first frame)", {"image": INPUT_IMAGE}, {}, (480, 1180)),
    11: ("Generate|LoRADeck", "Generate 17 frames from the image (image-to-video)",
         {**VIDEO_GEN, "prompt": "the lighthouse's lamp turns, waves roll in"},
         {"pipeline": (9, 0), "image": (10, 0)}, (920, 800)),
    12: ("SaveAnimatedWEBP", "Save Animated WEBP (I2V)", {"filename_prefix": "loradeck-video/i2v", "fps": 16.0,
                                                          "lossless": False, "quality": 90, "method": "default"},
         {"images": (11, 0)}, (1360, 800)),
}
EXAMPLES = {
    "loradeck-video": (VIDEO, "Video (Wan 2.2, two experts): Load LoRA Pair puts the high-noise file into the "
                       "high-noise expert and the low-noise file into the low-noise one, as one adapter; Set "
                       "Adapter Weights gives each expert its strength (transformer=, transformer_2=). Generate "
                       "makes num_frames frames as one IMAGE batch: ComfyUI's Save Animated WEBP and Create Video "
                       "-> Save Video take it. Below, image-to-video: the image is the first frame. The models are "
                       "the tiny built-ins (random: the videos are coloured noise)."),
    "loradeck-lora-list": (LORA_LIST, "LoRA List: any number of LoRA rows (switch one off and it stays in the "
                           "workflow, unloaded); its trigger_words output gives the files' trigger words."),
    "loradeck-grid": (GRID, "LoRA Grid: 4 strengths of the style LoRA (X) x the kohya LoRA off/on (Y), 8 cells in "
                      "ONE batched denoising pass (each batch row runs its own adapters). Every cell equals that "
                      "configuration run alone through Generate. Outputs: the labelled grid, the cells, their text."),
    "loradeck-schedule": (SCHEDULE, "Strength schedules over the steps: a linear ramp from 1.2 at the first step "
                          "to 0.2 at the last, and a LoRA for the first 40 % of the steps only. Scales are written "
                          "between steps; the saved PNG's parameters show the schedule."),
    "loradeck-prompt-tags": (PROMPT_TAGS, "Prompt tags: <lora:name:weight> or <lora:name:model:clip> in Generate's "
                             "prompt add those files for this run only; the tags are taken out of the text the "
                             "encoder sees. An unknown name is refused when you queue."),
    "loradeck-save-image": (SAVE_IMAGE, "Save Image (LoRA Deck) saves like Save Image and adds the A1111 "
                            "'parameters' text (steps, sampler, seed, CFG, size, model, Lora hashes) that civitai "
                            "reads to credit each LoRA."),
    "loradeck-block-weights": (BLOCK_WEIGHTS, "Block weights: an A1111 LoRA Block Weight vector (output blocks "
                               "only) beside diffusers' per-block form."),
    "loradeck-fuse-unfuse": (FUSE_UNFUSE, "Fuse one adapter of a stack (the other stays active), then unfuse: "
                             "the original weights come back bit for bit."),
    "loradeck-save-stack": (SAVE_STACK, "Save LoRA Stack writes the active stack as one diffusers-format file "
                            "under output/loras/ (separate = exact; merged = SVD to a rank)."),
    "loradeck-img2img": (IMG2IMG, "img2img and inpainting with a LoRA and a chosen scheduler: Load Image feeds "
                         "Generate's image (denoise 0.6 keeps the picture's layout) and, for inpainting, its mask "
                         "(Load Image's MASK is the transparent part: here the sky). The output has the input's "
                         "size. The image is example_workflows/input/loradeck-lighthouse.png: in ComfyUI, copy it "
                         "to ComfyUI's input folder or load any image."),
}

NOTE = ("LoRA Deck demo: one tiny built-in model, seven branches. The style LoRA paints a red disc, the kohya "
        "LoRA mint stripes: each alone at 0.5 and 1, both stacked, and the stack fused. Each branch describes its "
        "own LoRA stack; LoRA Deck reconciles the shared pipeline to it right before Generate, so branches never "
        "leak into each other. The fused image matches the unfused one; Unfuse restores the weights bit for bit.")


def output_types(cls_name: str) -> tuple:
    from loradeck.runner.registry import CLASSES

    cls = CLASSES[cls_name]
    return tuple(zip(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES), cls.RETURN_TYPES, strict=True))


def widget_values(cls_name: str, widgets: dict) -> list:
    """The node's widgets_values; optional widgets at the end that the graph leaves out are left out (as in a
    workflow saved before they existed: Generate's num_frames on the image examples)."""
    from loradeck.runner.registry import CLASSES, CONTROL, widget_names

    names = widget_names(CLASSES[cls_name])
    while names and names[-1] is not CONTROL and names[-1] not in widgets:
        names.pop()
    return ["fixed" if n is CONTROL else widgets[n] for n in names]


def socket_inputs(cls_name: str) -> list[tuple[str, str]]:
    from loradeck.runner.registry import CLASSES, input_specs, is_widget

    return [(n, s[0]) for n, s in input_specs(CLASSES[cls_name]).items() if not is_widget(s)]


# The graphs are drawn on a 340/380-px grid; nodes are taller (Generate: about 430 px in the classic renderer, 490 px
# in Nodes 2.0) and wider (up to 410 px in Nodes 2.0) than that grid allows, so positions are spread out on saving.
# tests/test_comfyui_live.py checks that no two nodes of a shipped workflow overlap in either renderer.
SPREAD = (1.3, 1.5)


def _spread(pos) -> list[int]:
    return [round(pos[0] * SPREAD[0]), round(pos[1] * SPREAD[1])]


def to_ui(graph: dict, note: str) -> dict:
    links, nodes = [], []
    outgoing: dict[tuple[int, int], list[int]] = {}
    for dst, (_cls, _t, _w, ins, _p) in graph.items():
        for name, (src, slot) in ins.items():
            link_id = len(links) + 1
            kind = output_types(graph[src][0])[slot][1]
            links.append([link_id, src, slot, dst, None, kind, name])
            outgoing.setdefault((src, slot), []).append(link_id)
    for order, (node_id, (cls, title, widgets, _ins, pos)) in enumerate(graph.items()):
        inputs = []
        for name, kind in socket_inputs(cls):
            link = next((ln[0] for ln in links if ln[3] == node_id and ln[6] == name), None)
            if link is not None:
                links[link - 1][4] = len(inputs)
            inputs.append({"name": name, "type": kind, "link": link})
        outputs = [{"name": n, "type": t, "links": outgoing.get((node_id, i), []), "slot_index": i}
                   for i, (n, t) in enumerate(output_types(cls))]
        nodes.append({"id": node_id, "type": cls, "title": title, "pos": _spread(pos), "size": [340, 200],
                      "flags": {}, "order": order, "mode": 0, "inputs": inputs, "outputs": outputs,
                      "properties": {"Node name for S&R": cls}, "widgets_values": widget_values(cls, widgets)})
    note_id = max(graph) + 1
    nodes.append({"id": note_id, "type": "Note", "pos": [40, 40], "size": [320, 200], "flags": {},
                  "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                  "widgets_values": [note]})
    return {"id": "00000000-0000-4000-8000-00000000dec0", "revision": 0, "last_node_id": note_id,
            "last_link_id": len(links), "nodes": nodes, "links": [ln[:6] for ln in links], "groups": [],
            "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}


def to_api(graph: dict) -> dict:
    return {str(i): {"class_type": cls, "inputs": {**widgets, **{k: [str(s), n] for k, (s, n) in ins.items()}},
                     "_meta": {"title": title}}
            for i, (cls, title, widgets, ins, _p) in graph.items()}


def write(name: str, data: dict) -> None:
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def write_input_image(path: str) -> None:
    """A 128x128 lighthouse on a cliff by the sea, drawn (no download); the sky is transparent, so Load Image's
    MASK marks it for inpainting."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (128, 128))
    draw = ImageDraw.Draw(image)
    for y in range(128):  # sky (alpha 0 = masked), then sea
        sky = (255 - y, 150 + y // 2, 90 + y, 0)
        draw.line([(0, y), (127, y)], fill=sky if y < 70 else (20, 60 + (y - 70), 120 + (y - 70), 255))
    draw.polygon([(0, 128), (0, 80), (40, 70), (70, 90), (70, 128)], fill=(90, 80, 60, 255))  # cliff
    for i, top in enumerate(range(30, 78, 8)):  # the tower: red and white bands
        draw.rectangle([(26 + i // 2, top), (38 - i // 2, top + 8)], fill=(200, 30, 30, 255) if i % 2 else
                       (240, 240, 235, 255))
    draw.rectangle([(28, 22), (36, 30)], fill=(255, 220, 90, 255))  # the lamp
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, format="PNG", optimize=True)


def main() -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
    os.makedirs(os.path.join(OUT, "api"), exist_ok=True)
    write_input_image(os.path.join(OUT, "input", INPUT_IMAGE))
    for name, (graph, note) in {"loradeck-demo": (DEMO, NOTE), **EXAMPLES}.items():
        write(f"{name}.json", to_ui(graph, note))
        write(os.path.join("api", f"{name}.api.json"), to_api(graph))


if __name__ == "__main__":
    main()
