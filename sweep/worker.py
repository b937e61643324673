"""One sweep worker: a process holding one runtime (one pipeline, one adapter store) that renders cells.

The driver makes it a Ray actor (driver.py); it is a plain class, so it also runs in-process (the benchmark's
sequential side, tests). Each cell is its workflow run by the headless runner (``run_workflow``) against the
worker's runtime: the pipeline is built once and stays loaded (the runtime's registry), LoRA files are read
once into the content-addressed store, and going from one cell to the next is what Generate always does:
``PipelineOwner.apply`` injects what is missing and writes the scales that changed. The PNG the cell's Save
Image wrote (the cell's workflow and A1111 parameters in its text chunks) goes back to the driver as bytes,
so workers need no shared output folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

LORA_NODES = ("LoadLoRA|LoRADeck", "SetAdapterWeights|LoRADeck")
SAVE_NODES = ("SaveImage|LoRADeck",)


def _node_time(prompt: dict, timings: dict, kinds: tuple[str, ...]) -> float:
    return sum(t for node_id, t in timings.items() if prompt.get(node_id, {}).get("class_type") in kinds)


class ApplyClock:
    """Time spent in ``PipelineOwner.apply`` (the LoRA switch of each Generate), added up per cell: the
    benchmark's switching overhead. It wraps the owner's bound method and changes nothing else."""

    def __init__(self):
        self.seconds = 0.0
        self.owners: set[int] = set()

    def watch(self, owner) -> None:
        if id(owner) in self.owners:
            return
        self.owners.add(id(owner))
        apply = owner.apply

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return apply(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        owner.apply = timed


class SweepWorker:
    """``config``: models_dir, input_dir, threads (torch's, on the CPU), warm (LoadPipeline's inputs: the
    pipeline is built now rather than in the first cell), settings (Settings overrides, for tests)."""

    def __init__(self, config: dict):
        import torch

        if config.get("threads"):
            torch.set_num_threads(int(config["threads"]))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from dataclasses import replace

        from ..core.runtime import Runtime
        from ..core.settings import Settings
        from ..nodes import host

        self.config = config
        # each cell writes into a folder of its own under here, removed as soon as its PNG is read (a worker
        # killed mid-cell leaves at most that one folder)
        self.scratch = os.path.join(tempfile.gettempdir(), "loradeck-sweep")
        os.makedirs(self.scratch, exist_ok=True)
        settings = Settings.from_env()
        if config.get("settings"):
            settings = replace(settings, **config["settings"])
        self.runtime = Runtime(settings, host.headless_folders(config.get("models_dir"), self.scratch, settings))
        self.clock = ApplyClock()
        self.cells = 0
        self.started = time.time()
        warm = config.get("warm")
        if warm:
            from ..nodes.load_pipeline import LoadPipeline

            with host.using(self.runtime):
                handle = LoadPipeline().load(warm["model_name"], warm.get("dtype", "auto"))[0]
            self.clock.watch(handle.owner)

    def info(self) -> dict:
        import torch

        from ..core.models.pipelines import default_device

        return {"pid": os.getpid(), "host": os.uname().nodename, "threads": torch.get_num_threads(),
                "device": str(default_device()), "cells": self.cells, "reads": self.runtime.store.reads}

    def render(self, cell: dict) -> dict:
        """``cell``: key, name, prompt (API workflow), generate (its Generate node id), expect (SHA-256 of the
        LoRA files its Load LoRA nodes must load). Returns the PNG bytes, or why the cell failed."""
        from ..core.errors import LoraDeckError
        from ..runner import run_workflow
        from ..runner.workflow_file import Workflow

        started = time.perf_counter()
        applied_before = self.clock.seconds
        reads_before = self.runtime.store.reads
        folder = tempfile.mkdtemp(dir=self.scratch)
        result = {"key": cell["key"], "worker": os.getpid(), "host": os.uname().nodename}
        try:
            context = run_workflow(Workflow(cell["prompt"], None, cell["name"]), folder, runtime=self.runtime,
                                   input_dir=self.config.get("input_dir") or "input")
            handle = context.inputs[cell["generate"]]["pipeline"]
            self.clock.watch(handle.owner)
            loaded = {a.sha256 for a in handle.stack.adapters}
            changed = [d for d in cell.get("expect", ()) if d not in loaded]
            if changed:
                raise LoraDeckError(f"a LoRA file of this cell changed while the sweep ran (expected SHA-256 "
                                    f"{changed[0][:12]}..., the file now has other content); run the sweep again")
            with open(context.saved[0], "rb") as f:
                png = f.read()
            total = time.perf_counter() - started
            applied = self.clock.seconds - applied_before
            timings = context.timings
            generate = timings.get(cell["generate"], 0.0)
            result.update(status="ok", png=png, seconds={
                "total": total, "apply": applied, "denoise": max(0.0, generate - applied),
                "loras": _node_time(cell["prompt"], timings, LORA_NODES),
                "save": _node_time(cell["prompt"], timings, SAVE_NODES)})
        except LoraDeckError as exc:  # the configuration's own problem: the same on every worker, every run
            result.update(status="failed", error=str(exc), error_type=type(exc).__name__,
                          seconds={"total": time.perf_counter() - started})
        except Exception as exc:  # anything else (a bug, memory): recorded, and tried again on the next run
            result.update(status="error", error=f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__,
                          seconds={"total": time.perf_counter() - started})
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.cells += 1
        result["reads"] = self.runtime.store.reads - reads_before
        return result
