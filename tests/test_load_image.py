"""The headless LoadImage: ComfyUI's outputs, --input-dir name safety, LoadImage -> Generate workflows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from loradeck.cli import main as cli_main
from loradeck.runner import WorkflowError, run_workflow
from loradeck.runner.execute import RunContext
from loradeck.runner.load_image import LoadImage
from loradeck.runner.workflow_file import from_data

PIXELS = np.random.default_rng(0).integers(0, 256, (48, 72, 4), dtype=np.uint8)  # RGBA, 72 wide, 48 high


@pytest.fixture
def input_dir(tmp_path):
    folder = tmp_path / "input"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(PIXELS, "RGBA").save(folder / "rgba.png")
    Image.fromarray(PIXELS[..., :3], "RGB").save(folder / "sub" / "rgb.png")
    return folder


def _load(folder, name):
    return LoadImage(RunContext("out", {}, {}, input_dir=str(folder))).load_image(name)


def test_outputs_are_comfyuis(input_dir):
    image, mask = _load(input_dir, "rgba.png")
    assert image.shape == (1, 48, 72, 3) and image.dtype == torch.float32
    assert torch.equal(image[0], torch.from_numpy(PIXELS[..., :3].astype(np.float32) / 255.0))
    assert torch.equal(mask[0], 1.0 - torch.from_numpy(PIXELS[..., 3].astype(np.float32) / 255.0))
    image, mask = _load(input_dir, "sub/rgb.png [input]")  # ComfyUI's annotated name
    assert image.shape == (1, 48, 72, 3) and torch.equal(mask, torch.zeros(1, 64, 64))


@pytest.mark.parametrize("name,match", [
    ("missing.png", r"image 'missing.png' was not found in .*input"),
    ("../rgba.png", "not an absolute path or one with '..'"),
    ("sub/../../x.png", "not an absolute path or one with '..'"),
    ("/etc/passwd", "not an absolute path or one with '..'"),
])
def test_names_stay_inside_the_input_folder(input_dir, name, match):
    with pytest.raises(WorkflowError, match=match):
        _load(input_dir, name)


def _workflow(image: str, steps: int = 2) -> dict:
    gen = {"prompt": "a lighthouse", "negative_prompt": "", "seed": 1, "steps": steps, "cfg": 5.0, "width": 64,
           "height": 64, "batch_size": 1, "scheduler": "Euler a", "denoise": 0.5}
    return {"1": {"class_type": "LoadPipeline|LoRADeck", "inputs": {"model_name": "tiny-sd (built-in)",
                                                                    "dtype": "auto"}},
            "2": {"class_type": "LoadImage", "inputs": {"image": image}},
            "3": {"class_type": "Generate|LoRADeck", "inputs": {**gen, "pipeline": ["1", 0], "image": ["2", 0],
                                                                 "mask": ["2", 1]}},
            "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "lit"}}}


def test_load_image_to_generate_runs_headless(input_dir, tmp_path):
    context = run_workflow(from_data(_workflow("rgba.png"), "test"), str(tmp_path / "out"),
                           input_dir=str(input_dir))
    (saved,) = context.saved
    with Image.open(saved) as png:
        assert png.size == (72, 48)  # the input's size (a multiple of 8 already), not width x height
        assert "Sampler: Euler a" in png.text["parameters"] and "Size: 72x48" in png.text["parameters"]
        assert "Denoising strength: 0.5" in png.text["parameters"]


def test_a_missing_input_file_names_the_node_and_the_file(input_dir, tmp_path, caplog):
    with pytest.raises(WorkflowError, match=r"node 2 \(LoadImage\): image 'nope.png' was not found"):
        run_workflow(from_data(_workflow("nope.png"), "test"), str(tmp_path / "out"), input_dir=str(input_dir))
    path = tmp_path / "wf.json"
    path.write_text(__import__("json").dumps(_workflow("nope.png")))
    assert cli_main(["run", str(path), "--input-dir", str(input_dir), "--output-dir", str(tmp_path / "o")]) == 1
    assert "'nope.png' was not found in " + str(input_dir) in caplog.text
