"""Test helpers: tiny seeded pipelines, rendering, weight snapshots, runtimes (LoRA file writers: lora_fixtures)."""

from __future__ import annotations

import logging
import os

import torch

from loradeck.core import Runtime, Settings
from loradeck.core.families import tiny_pipeline
from loradeck.nodes import host

logging.getLogger("transformers").setLevel(logging.ERROR)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEST_SETTINGS = Settings(store_bytes=512 * 1024 * 1024)


def runtime_for(models_dir=None, output_dir=None, **settings) -> Runtime:
    """A fresh runtime over ``models_dir`` (ComfyUI's layout + the demo LoRAs), as the headless runner makes."""
    chosen = Settings(**{**TEST_SETTINGS.__dict__, **settings})
    return Runtime(chosen, host.headless_folders(str(models_dir) if models_dir else None, output_dir, chosen))


def spec(deck_or_owner, path: str, name: str | None = None, model: float = 1.0, clip: float = 1.0):
    """An AdapterSpec for ``path``, checked against the pipeline (what Load LoRA and Deck.add build)."""
    owner = getattr(deck_or_owner, "owner", deck_or_owner)
    return owner.describe(path, name, model, clip)[0]


def make_pipe(dtype=torch.float32):
    pipe = tiny_pipeline("sd1")
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module) and dtype != torch.float32:
            component.to(dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def render(pipe, seed: int = 1, steps: int = 3, prompt: str = "a lighthouse") -> torch.Tensor:
    with torch.inference_mode():
        return pipe(prompt, num_inference_steps=steps, generator=torch.Generator("cpu").manual_seed(seed),
                    height=64, width=64, output_type="pt").images


def base_weights(pipe) -> dict[str, torch.Tensor]:
    """Every base parameter of the LoRA-able components, by its name without peft's wrapping."""
    out = {}
    for component in ("unet", "text_encoder"):
        for name, param in getattr(pipe, component).named_parameters():
            if "lora_" in name:
                continue
            out[f"{component}.{name.replace('.base_layer', '')}"] = param.detach().clone()
    return out


def assert_bit_identical(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"{len(changed)} tensors changed, e.g. {changed[:3]}"


def check_parameter_difference(pipe, lora: dict, extra: dict, target: tuple[str, str], strength: float,
                               tmp_path) -> None:
    """``lora`` + the whole-parameter difference ``extra`` (one key) loads: ``target`` = (component, parameter path)
    then holds its original plus ``strength`` x the difference (float32 sum, rounded once), and removing the adapter
    gives it back bit for bit."""
    from safetensors.torch import save_file

    from loradeck.core import Deck

    component, path = target
    module, _, name = path.rpartition(".")
    model = getattr(pipe, component)

    def value():
        found = model.get_submodule(module)
        return getattr(getattr(found, "base_layer", found), name).detach().clone()

    original = value()
    file = os.path.join(str(tmp_path), "with_difference.safetensors")
    save_file({**lora, **extra}, file)
    deck = Deck(pipe).add(file, "d", model=strength, clip=strength)
    (delta,) = extra.values()
    expected = (original.float() + strength * delta.float()).to(original.dtype)
    assert torch.equal(value(), expected)
    deck.remove("d")
    assert torch.equal(value(), original)
