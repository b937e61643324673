"""The LoRA Grid: every cell's adapter configuration rendered in ONE batched denoising pass.

Each cell is a stack (grid_axes.py: the incoming stack changed by its X and Y values). All cells share
the prompt, seed and settings; row i of the batch is cell i, routed through its own adapters on every LoRA
layer by peft's mixed-batch inference (mixed_batch.py), text encoders included, so each cell gets the
prompt embeddings its own configuration gives. Every row draws its noise from its own generator seeded
with the run's seed, so a cell equals the same configuration run alone through Generate.

Where a batch cannot do that, the cells run one after another through Generate, and the text output and
the log say why: fused adapters that differ between cells (fused weights are shared by every row), a
scheduler whose noise is drawn for the whole batch at once, a family whose pipeline cannot take one
generator per row (aMUSEd), a LoRA layer peft cannot route, or cells that differ on a layer whose input packs
every row's tokens into one sequence (``Family.packed_inputs``: Z-Image's patch and caption embedders).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch

from ..adapters.mixed_batch import MixedBatchError
from ..adapters.owner import PipelineOwner
from ..models.schedulers import DEFAULT
from ..stacks.specs import GenerateParams, StackSpec
from . import infotext, prompt_tags
from .generate import _call, generate, output_images, output_rows, pipeline_for, plan, scheduled_steps, to_image
from .grid_axes import Axis, Cells, parse_axis
from .grid_image import compose
from .output_checks import check_images

log = logging.getLogger(__name__)

# k-diffusion's Brownian tree (DPMSolverSDEScheduler) draws one noise for the whole batch, seeded once
WHOLE_BATCH_NOISE = ("DPMSolverSDEScheduler",)


@dataclass(frozen=True, eq=False)
class GridResult:
    grid: torch.Tensor  # IMAGE [1, H, W, 3], labels drawn in
    cells: torch.Tensor  # IMAGE [cells, h, w, 3], row-major
    text: str  # what each cell is, and how the grid ran
    batched: bool
    parameters: tuple[str, ...]  # each cell's A1111 parameters text


@dataclass(frozen=True)
class Cell:
    row: int
    column: int
    stack: StackSpec


def sequential_reason(owner: PipelineOwner, stacks: list[StackSpec], params: GenerateParams) -> str | None:
    """Why these cells cannot share one batch, or None when they can."""
    family = owner.family
    if len(stacks) == 1:
        return "there is one cell"
    if family.unbatched:
        return f"{family.title} pipelines are not batched by cell ({family.unbatched})"
    scheduler = params.scheduler
    cls = type(owner.pipe.scheduler).__name__ if scheduler == DEFAULT else None
    if scheduler in ("DPM++ SDE", "DPM++ SDE Karras") or cls in WHOLE_BATCH_NOISE:
        return (f"the scheduler ({scheduler if cls is None else cls}) draws its noise for the whole batch at once, "
                "so a row would not match its own run")
    return owner.batch_conflict(stacks)


def _batched(owner: PipelineOwner, stacks: list[StackSpec], params: GenerateParams, on_step) -> torch.Tensor:
    count = len(stacks)
    router = {}
    if any(s.scheduled for s in stacks):
        on_step = scheduled_steps(lambda t: router["r"].update(t), on_step)
    checked = plan(owner, params, on_step=on_step)
    kwargs = dict(checked.kwargs)
    kwargs["prompt"] = [params.prompt] * count
    if kwargs.get("negative_prompt"):
        kwargs["negative_prompt"] = [kwargs["negative_prompt"]] * count
    # one generator per row, each seeded as a lone run's: row i draws exactly the noise cell i would alone
    kwargs["generator"] = [torch.Generator("cpu").manual_seed(int(params.seed)) for _ in range(count)]
    with owner.lock, torch.inference_mode(), owner.rows(stacks) as routed:
        router["r"] = routed
        pipe = pipeline_for(owner, checked)
        output = pipe(**_call(pipe, kwargs))
    raw = output_rows(output)  # one per cell (a video's frames together)
    for row, stack in zip(raw, stacks, strict=False):  # one row per cell: a NaN cell names its own stack
        check_images(row, stack)
    return to_image(output_images(output))


def _sequential(owner: PipelineOwner, stacks: list[StackSpec], params: GenerateParams, on_step) -> torch.Tensor:
    images = []
    for i, stack in enumerate(stacks):
        def report(step, total, i=i):
            if on_step is not None:
                on_step(i * total + step, len(stacks) * total)

        images.append(generate(owner, stack, params, report))
    return torch.cat(images)


def _describe(stack: StackSpec) -> str:
    used = [f"{a.name} {infotext.describe(a)}" for a in stack.adapters if a.enabled]
    return ", ".join(used) or "no LoRA"


def _where(x: Axis, y: Axis, cell: Cell) -> str:
    return " / ".join(v for v in (x.labels[cell.column], y.labels[cell.row]) if v) or "the stack as it is"


def _text(x: Axis, y: Axis, cells: list[Cell], how: str, warnings: list[str]) -> str:
    lines = [how, *(f"warning: {w}" for w in warnings), x.title(), y.title()]
    for i, cell in enumerate(cells, start=1):
        lines.append(f"cell {i} (row {cell.row + 1}, column {cell.column + 1}) {_where(x, y, cell)}: "
                     f"{_describe(cell.stack)}")
    return "\n".join(lines)


def run_grid(owner: PipelineOwner, stack: StackSpec, params: GenerateParams, x_axis: str = "", y_axis: str = "",
             on_step=None, locate: prompt_tags.Locate | None = None) -> GridResult:
    """Render the grid of ``x_axis`` x ``y_axis`` (grid_axes.py) over ``stack``; ``params`` as Generate takes
    them (one image per cell). ``<lora:...>`` tags in the prompt join the stack of every cell."""
    base, prompt = prompt_tags.resolve(owner, stack, params.prompt, locate)
    clean = replace(params, prompt=prompt, batch_size=1)
    if owner.family.frames and params.num_frames is None:  # a video family's grid compares stills
        clean = replace(clean, num_frames=1)
    x, y = parse_axis(x_axis, "X"), parse_axis(y_axis, "Y")
    maker = Cells(owner, base, locate)
    built = maker.build(x, y)
    cells = [Cell(*c) for c in built]
    warnings = maker.overrides(x, y, built)
    for warning in warnings:
        log.warning("LoRA Grid: %s", warning)
    stacks = [c.stack for c in cells]
    reason = sequential_reason(owner, stacks, clean)
    images = None
    if reason is None:
        try:
            images = _batched(owner, stacks, clean, on_step)
        except MixedBatchError as exc:
            reason = str(exc)
    if images is None:
        log.info("LoRA Grid: %d cells run one after another: %s", len(cells), reason)
        images = _sequential(owner, stacks, clean, on_step)
        how = f"LoRA Grid: {len(cells)} cells, run one after another (sequential) because {reason}"
    else:
        how = f"LoRA Grid: {len(cells)} cells in one batched denoising pass (peft mixed batch, one row per cell)"
    size = (images.shape[2], images.shape[1])
    texts = tuple(infotext.parameters(params.prompt, params.negative_prompt, clean, s, owner, size) for s in stacks)
    frames = images.shape[0] // len(cells)  # a video family's cells are videos: the grid shows each one's first frame
    grid = compose(images[::frames], len(x.values), x.labels, y.labels)
    info = owner.runtime.image_info
    info.remember(images, tuple(text for text in texts for _ in range(frames)))
    per_cell = [(f"cell {i} ({_where(x, y, c)})", c.stack) for i, c in enumerate(cells, start=1)]
    info.remember(grid, infotext.parameters(params.prompt, params.negative_prompt, clean, _union(stacks), owner,
                                            (grid.shape[2], grid.shape[1]), (("LoRA Grid", infotext.quote(
                                                f"{x.title()}; {y.title()}")),), per_cell))
    return GridResult(grid, images, _text(x, y, cells, how, warnings), reason is None, texts)


def _union(stacks: list[StackSpec]) -> StackSpec:
    """Every adapter any cell enables (for the grid image's Lora hashes), named as in the first that has it."""
    seen, out = set(), StackSpec()
    for stack in stacks:
        for adapter in stack.adapters:
            if adapter.enabled and adapter.sha256 not in seen:
                seen.add(adapter.sha256)
                out = out.add(replace(adapter, fused=False, schedules=()))
    return out
