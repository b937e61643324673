"""Fixtures: tiny seeded pipelines, small LoRA files in each format made on the fly, and a fresh runtime
for every test (nothing leaks between tests: store, hash index, pipelines, folders)."""

from __future__ import annotations

import pytest

import loradeck.core.runtime as runtime_module
from helpers import make_pipe, runtime_for
from lora_fixtures import save_diffusers_lora, save_kohya_lora
from loradeck.nodes import host


@pytest.fixture(autouse=True)
def runtime(monkeypatch):
    """This test's own runtime: the Python API's default and the one the nodes use (no models dir)."""
    fresh = runtime_for()
    monkeypatch.setattr(runtime_module, "_default", fresh)
    with host.using(fresh):
        yield fresh


@pytest.fixture
def use_models(runtime, monkeypatch):
    """``use_models(models_dir, output_dir=None)``: a fresh runtime over a models folder for the nodes and the
    Python API, for the rest of the test."""
    tokens = []

    def use(models_dir, output_dir=None, **settings):
        fresh = runtime_for(models_dir, output_dir, **settings)
        monkeypatch.setattr(runtime_module, "_default", fresh)
        tokens.append(host._active.set(fresh))
        return fresh

    yield use
    for token in reversed(tokens):
        host._active.reset(token)


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


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray with 2 CPUs for every sweep test of the session (its start costs seconds; the sweeps' workers
    are their own, started and stopped by each sweep). Yields the address another process joins it with
    (``loradeck sweep --address``). Skips without ray (``pip install -e ".[test]"`` installs it)."""
    import logging

    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             object_store_memory=128 * 1024 * 1024)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
