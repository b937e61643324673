"""Headless runner for saved ComfyUI workflows (API JSON, UI JSON, or PNGs carrying either)."""

from __future__ import annotations

import os

from ..core.runtime import Runtime
from ..nodes import host, records
from .errors import WorkflowError
from .execute import Executor, RunContext
from .workflow_file import Workflow, load

__all__ = ["RunContext", "Workflow", "WorkflowError", "load", "run_workflow"]


def run_workflow(workflow: Workflow | str, output_dir: str, models_dir: str | None = None,
                 order: list[str] | None = None, runtime: Runtime | None = None,
                 input_dir: str = "input") -> RunContext:
    """Run every output node of ``workflow``; returns the context with the saved file paths.

    The nodes run against ``runtime`` (default: a new one over ``models_dir`` in ComfyUI's layout, writing
    to ``output_dir``), so runs never share state unless the caller passes the same runtime. LoadImage
    reads from ``input_dir`` (then from the examples' shipped input folder)."""
    if isinstance(workflow, str):
        workflow = load(workflow)
    runtime = runtime or Runtime(folders=host.headless_folders(models_dir, output_dir))
    extra = {"workflow": workflow.ui} if workflow.ui is not None else {}
    context = RunContext(os.path.abspath(output_dir), workflow.prompt, extra, input_dir=os.path.abspath(input_dir))
    with host.using(runtime):
        records.localize(workflow.prompt, extra, host.locate_lora)  # as ComfyUI's on_prompt hook does
        Executor(workflow.prompt, context).run(order)
    return context
