"""Fixtures: tiny seeded pipelines and small LoRA files in each format, made on the fly."""

from __future__ import annotations

import pytest

from helpers import make_pipe, save_diffusers_lora, save_kohya_lora


@pytest.fixture(scope="session")
def lora_dir(tmp_path_factory):
    """models/loras with a diffusers file (a), another diffusers file (b), a kohya file (k)."""
    root = tmp_path_factory.mktemp("models")
    loras = root / "loras"
    (loras / "sub").mkdir(parents=True)
    save_diffusers_lora(str(loras / "a.safetensors"), seed=1)
    save_diffusers_lora(str(loras / "sub" / "b.safetensors"), seed=2, unet_targets=["to_k", "to_v", "proj_out"],
                        te_targets=["q_proj", "fc1"], rank=2, alpha=2.0)
    save_kohya_lora(str(loras / "k.safetensors"), seed=3)
    return root


@pytest.fixture(scope="session")
def files(lora_dir):
    loras = lora_dir / "loras"
    return {"a": str(loras / "a.safetensors"), "b": str(loras / "sub" / "b.safetensors"),
            "k": str(loras / "k.safetensors")}


@pytest.fixture
def pipe():
    return make_pipe()
