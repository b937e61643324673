"""Headless runner for saved ComfyUI workflows (API JSON, UI JSON, or PNGs carrying either)."""

from __future__ import annotations

import os

from ..nodes import host
from .errors import WorkflowError
from .execute import Executor, RunContext
from .workflow_file import Workflow, load

__all__ = ["RunContext", "Workflow", "WorkflowError", "load", "run_workflow"]


def run_workflow(workflow: Workflow | str, output_dir: str, models_dir: str | None = None,
                 order: list[str] | None = None) -> RunContext:
    """Run every output node of ``workflow``; returns the context with the saved file paths."""
    if isinstance(workflow, str):
        workflow = load(workflow)
    host.use_headless(models_dir, output_dir)
    extra = {"workflow": workflow.ui} if workflow.ui is not None else {}
    context = RunContext(os.path.abspath(output_dir), workflow.prompt, extra)
    Executor(workflow.prompt, context).run(order)
    return context
