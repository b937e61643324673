"""Headless runner for saved ComfyUI workflows (API JSON, UI JSON, or PNGs carrying either).

Reading a file imports nothing heavy: a file that is not a workflow is refused before torch loads.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .context import RunContext
from .errors import WorkflowError
from .workflow_file import Workflow, load

if TYPE_CHECKING:
    from ..core.runtime import Runtime

__all__ = ["RunContext", "Workflow", "WorkflowError", "load", "run_workflow"]


def run_workflow(workflow: Workflow | str, output_dir: str, models_dir: str | None = None,
                 order: list[str] | None = None, runtime: Runtime | None = None,
                 input_dir: str = "input") -> RunContext:
    """Check the whole workflow, then run its output nodes; the context lists every file written.

    Nothing runs (and nothing is written) while the workflow has a problem: the WorkflowError lists them all.
    The nodes run against ``runtime`` (default: a new one over ``models_dir`` in ComfyUI's layout, writing
    to ``output_dir``), so runs never share state unless the caller passes the same runtime. LoadImage
    reads from ``input_dir`` (then from the examples' shipped input folder)."""
    if models_dir is not None and not os.path.isdir(models_dir):
        raise WorkflowError(f"models folder {models_dir!r} does not exist (it should hold loras/, diffusers/, ...)")
    if isinstance(workflow, str):
        workflow = load(workflow)
    from ..core.runtime import Runtime
    from ..nodes import host, records
    from .execute import Executor

    runtime = runtime or Runtime(folders=host.headless_folders(models_dir, output_dir))
    extra = {"workflow": workflow.ui} if workflow.ui is not None else {}
    context = RunContext(os.path.abspath(output_dir), workflow.prompt, extra, input_dir=os.path.abspath(input_dir))
    with host.using(runtime):
        records.localize(workflow.prompt, extra, host.locate_lora)  # as ComfyUI's on_prompt hook does
        Executor(workflow.prompt, context).run(order, workflow.problems)
    return context
