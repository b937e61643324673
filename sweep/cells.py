"""From a spec to its cells: one API-format workflow per cell, its content key, its name; all checked first.

Each cell is the workflow ``loradeck run`` would run for that configuration:

    Load Diffusers Pipeline -> Load LoRA (the [[stack]]) -> Load LoRA (the axis LoRA) -> Set Adapter Weights
    (the spec's weights, the weights axis, the strength axis) -> Generate -> Save Image (LoRA Deck)

or, with a base workflow, the nodes its Generate node depends on with the axis LoRA and the weights inserted
before that Generate. The workers run exactly this workflow through the headless runner, so a cell's PNG
carries it and ``loradeck run cell.png`` renders it again. The content key hashes the workflow with every file
named in it replaced by its SHA-256 (LoRAs, prompt tags, input images), so renaming a file changes no key and
changing its content does; the output file name and node titles are not part of it.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import itertools
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..core.errors import LoraDeckError, SpecError
from ..core.files.reading import stamp
from . import spec as specs
from .spec import Axis, SweepSpec, Value

KEY_VERSION = 1  # bump when the same configuration would render differently
PIPELINE, LORA, WEIGHTS = "LoadPipeline|LoRADeck", "LoadLoRA|LoRADeck", "SetAdapterWeights|LoRADeck"
GENERATE, SAVE, LOAD_IMAGE = "Generate|LoRADeck", "SaveImage|LoRADeck", "LoadImage"
PREFIX = "sweep"  # the cell's Save Image filename_prefix folder (loradeck run cell.png writes output/sweep/...)


@dataclass(frozen=True)
class Cell:
    index: int  # in the spec's order (row-major over the axes)
    coords: tuple[int, ...]  # the value index on each axis
    labels: tuple[str, ...]  # the value label on each axis
    name: str  # the image's file name without .png
    key: str  # content key (SHA-256 hex)
    prompt: dict  # the API-format workflow
    files: tuple[tuple[str, str], ...]  # (LoRA name, SHA-256) of every LoRA file the cell loads
    group: str  # cells of one group load the same files (workers take a group's cells in a row)


@dataclass
class Plan:
    spec: SweepSpec
    axes: tuple[Axis, ...]  # lora folders expanded
    cells: list[Cell]
    generate_id: str
    save_id: str
    hashes: dict[str, str] = field(default_factory=dict)  # LoRA name -> SHA-256

    @property
    def unique(self) -> list[Cell]:
        """One cell per content key (two identical configurations render once), in the spec's order."""
        seen, out = set(), []
        for cell in self.cells:
            if cell.key not in seen:
                seen.add(cell.key)
                out.append(cell)
        return out


def natural(text: str) -> list:
    """Sort key: epoch-2 before epoch-10."""
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", text)]


def expand_loras(spec: SweepSpec, names: list[str]) -> tuple[Axis, ...]:
    """The axes with each ``{folder = ...}`` of the lora axis replaced by the LoRAs listed under it (``names``:
    every LoRA name of the loras folders, as Load LoRA lists them)."""
    if not spec.raw_lora_values:
        return spec.axes
    values: list[Value] = []
    for entry in spec.raw_lora_values:
        if isinstance(entry, Value):
            values.append(entry)
            continue
        prefix = entry.folder + "/" if entry.folder else ""
        found = sorted((n for n in names if n.startswith(prefix) and
                        fnmatch.fnmatch(n[len(prefix):], entry.glob)), key=natural)
        if not found:
            raise SpecError(f"axes.lora: no LoRA file under the folder {entry.folder!r} of your loras folders "
                            f"matches {entry.glob!r}")
        values += [Value(specs.lora_label(n), n, entry.folder) for n in found]
    labels = [v.label for v in values]
    values = [replace(v, label=v.value.removesuffix(".safetensors")) if v.value and labels.count(v.label) > 1
              else v for v in values]
    return tuple(Axis(a.name, tuple(values), a.adapter) if a.name == "lora" else a for a in spec.axes)


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _upstream(prompt: dict, node_id: str) -> list[str]:
    """``node_id`` and every node it depends on, through links."""
    seen, todo = [], [node_id]
    while todo:
        current = todo.pop()
        if current in seen or current not in prompt:
            continue
        seen.append(current)
        todo += [str(v[0]) for v in prompt[current].get("inputs", {}).values() if _is_link(v)]
    return seen


def generate_defaults() -> dict:
    """Generate's widget defaults (prompt, seed, steps, ... scheduler, denoise), as a new node has them."""
    from ..nodes.generate import Generate

    types = Generate.INPUT_TYPES()
    out = {}
    for section in ("required", "optional"):
        for name, spec in types.get(section, {}).items():
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if "default" in options:
                out[name] = options["default"]
    return out


class Builder:
    """Each cell's workflow from the base graph: ``base`` (node id -> node) ending in the Generate node."""

    def __init__(self, spec: SweepSpec, axes: tuple[Axis, ...]):
        self.spec, self.axes = spec, axes
        self.base, self.generate_id = self._base()
        if spec.workflow:  # new nodes numbered after every node of the workflow (the dropped ones too)
            first = self.last_id + 1
            self.lora_id, self.weights_id, self.save_id = (str(first + i) for i in range(3))
        else:  # pipeline, stack, axis LoRA, weights, Generate, Save: numbered in the order they run
            first = len(spec.stack) + 2
            self.lora_id, self.weights_id, self.save_id = str(first), str(first + 1), str(first + 3)
        generate = self.base[self.generate_id]["inputs"]
        if generate.get("batch_size", 1) not in (1, "1"):
            raise SpecError(f"the base Generate has batch_size {generate.get('batch_size')}; a sweep cell is one "
                            "image: set batch_size to 1 and sweep seeds with a seed axis")
        self.adapters = self._adapter_names()

    def _base(self) -> tuple[dict, str]:
        spec = self.spec
        if spec.workflow:
            return self._from_workflow()
        base = {"1": {"class_type": PIPELINE, "inputs": {"model_name": spec.model, "dtype": spec.dtype},
                      "_meta": {"title": "Load Diffusers Pipeline"}}}
        source = ["1", 0]
        for i, entry in enumerate(spec.stack, start=2):
            base[str(i)] = {"class_type": LORA, "inputs": {
                "lora_name": entry.lora, "strength_model": entry.strength_model, "strength_clip": entry.strength_clip,
                "adapter_name": entry.name, "pipeline": source}, "_meta": {"title": f"Stack LoRA {i - 1}"}}
            source = [str(i), 0]
        generate_id = str(len(spec.stack) + 4)
        inputs = {**generate_defaults(), **spec.generate, "batch_size": 1, "pipeline": source}
        base[generate_id] = {"class_type": GENERATE, "inputs": inputs, "_meta": {"title": "Generate"}}
        return base, generate_id

    def _from_workflow(self) -> tuple[dict, str]:
        from ..runner import load

        spec = self.spec
        if spec.stack:
            raise SpecError("[[stack]] goes with model = ...; with a base workflow, add the LoRAs in the workflow")
        workflow = load(spec.workflow)
        if workflow.problems:
            raise SpecError(f"base workflow {spec.workflow}: " + "; ".join(workflow.problems))
        prompt = workflow.prompt
        generates = [i for i, n in prompt.items() if isinstance(n, dict) and n.get("class_type") == GENERATE]
        if spec.node:
            if spec.node not in generates:
                raise SpecError(f"base workflow {spec.workflow}: node {spec.node!r} is not a Generate node; its "
                                f"Generate nodes are: {', '.join(generates) or 'none'}")
            chosen = spec.node
        elif len(generates) == 1:
            chosen = generates[0]
        else:
            raise SpecError(f"base workflow {spec.workflow}: it has {len(generates)} Generate nodes "
                            f"({', '.join(generates) or 'none'}); say which one with node = \"id\"")
        self.last_id = max((int(i) for i in prompt if str(i).isdigit()), default=0)
        base = {i: copy.deepcopy(prompt[i]) for i in reversed(_upstream(prompt, chosen))}
        inputs = base[chosen]["inputs"]
        inputs.update(spec.generate)
        inputs.setdefault("batch_size", 1)
        if not _is_link(inputs.get("pipeline")):
            raise SpecError(f"base workflow {spec.workflow}: Generate node {chosen} has no pipeline link")
        return base, chosen

    def _adapter_names(self) -> set[str]:
        """The adapter names the base's Load LoRA nodes give (the axis LoRA must not take one of them)."""
        names = set()
        for node in self.base.values():
            if node.get("class_type") == LORA:
                inputs = node.get("inputs", {})
                names.add(str(inputs.get("adapter_name") or "").strip()
                          or specs.lora_label(str(inputs.get("lora_name", ""))))
        return names

    def prompt(self, values: tuple[Value, ...], name: str) -> dict:
        prompt = copy.deepcopy(self.base)
        generate = prompt[self.generate_id]
        source = generate["inputs"]["pipeline"]
        lines = [self.spec.weights.strip()] if self.spec.weights.strip() else []
        axis_lora = None
        for axis, value in zip(self.axes, values, strict=True):
            if axis.kind == "input":
                generate["inputs"][axis.name] = value.value
            elif axis.kind == "weights" and str(value.value).strip():
                lines.append(str(value.value).strip())
            elif axis.kind == "lora" and value.value is not None:
                axis_lora = value.value
        for axis, value in zip(self.axes, values, strict=True):
            if axis.kind == "strength":
                target = axis.adapter or (specs.lora_label(axis_lora) if axis_lora else "")
                if target:  # no LoRA in this cell: its strength has nothing to change
                    lines.append(f'"{target}": {value.value}')
        if axis_lora is not None:
            adapter = specs.lora_label(axis_lora)
            if adapter in self.adapters:
                raise SpecError(f"axes.lora: {axis_lora!r} would be named {adapter!r}, as a LoRA of the base stack "
                                "already is; rename one of the files or give the stack entry a name")
            prompt[self.lora_id] = {"class_type": LORA, "inputs": {
                "lora_name": axis_lora, "strength_model": 1.0, "strength_clip": 1.0, "adapter_name": adapter,
                "pipeline": source}, "_meta": {"title": "Sweep: axis LoRA"}}
            source = [self.lora_id, 0]
        if lines:
            prompt[self.weights_id] = {"class_type": WEIGHTS, "inputs": {"weights": "\n".join(lines) + "\n",
                                                                         "pipeline": source},
                                       "_meta": {"title": "Sweep: strengths"}}
            source = [self.weights_id, 0]
        generate["inputs"]["pipeline"] = source
        prompt[self.save_id] = {"class_type": SAVE, "inputs": {"filename_prefix": f"{PREFIX}/{name}",
                                                               "images": [self.generate_id, 0]},
                                "_meta": {"title": "Sweep: save cell"}}
        if all(str(i).isdigit() for i in prompt):
            prompt = {i: prompt[i] for i in sorted(prompt, key=int)}
        return prompt


class Identities:
    """Content hashes of the files cells name: LoRAs by name, input images, checkpoints by stamp; a cache kept
    in the output folder (path -> size, mtime, SHA-256) spares hashing big files again on a second run."""

    def __init__(self, cache: dict | None = None):
        self.cache = cache if cache is not None else {}
        self.lora: dict[str, str] = {}

    def file(self, path: str) -> str:
        from ..core.files.hashing import stream_sha256

        key = stamp(path)
        entry = self.cache.get(key.path)
        if entry and entry[0] == key.size and entry[1] == key.mtime_ns:
            return entry[2]
        digest = stream_sha256(key.path)
        self.cache[key.path] = [key.size, key.mtime_ns, digest]
        return digest

    def lora_file(self, name: str, locate: Callable) -> str:
        if name not in self.lora:
            self.lora[name] = self.file(locate(name).path)
        return self.lora[name]


def content_key(prompt: dict, save_id: str, ids: Identities, locate: Callable, input_dir: str) -> tuple[str, tuple]:
    """(the cell's content key, the (name, SHA-256) of each LoRA file it names) for ``prompt``."""
    from ..core.generation import prompt_tags

    normal, files = {}, []
    for node_id, node in prompt.items():
        if node_id == save_id:
            continue
        inputs = dict(node.get("inputs", {}))
        kind = node.get("class_type")
        name = inputs.get("lora_name")
        if isinstance(name, str):
            digest = ids.lora_file(name, locate)
            inputs["lora_name"] = f"sha256:{digest}"
            files.append((name, digest))
        if kind == GENERATE and isinstance(inputs.get("prompt"), str):
            for tag in prompt_tags.parse(inputs["prompt"])[1]:
                found = prompt_tags.locate_tag(tag, locate)
                digest = ids.file(found.path)
                inputs.setdefault("lora_tags", []).append(f"{tag.file_name}=sha256:{digest}")
                files.append((found.name, digest))
        if kind == LOAD_IMAGE and isinstance(inputs.get("image"), str):
            from ..runner.load_image import find_input

            inputs["image"] = f"sha256:{ids.file(find_input(inputs['image'], input_dir))}"
        if kind == PIPELINE and isinstance(inputs.get("model_name"), str):
            from ..nodes import host

            path = host.model_path(inputs["model_name"])
            if os.path.isfile(path):  # a checkpoint: its stamp (hashing gigabytes for a key is not worth it)
                key = stamp(path)
                inputs["model_file"] = [key.size, key.mtime_ns]
        normal[node_id] = {"class_type": kind, "inputs": inputs}
    text = json.dumps({"sweep_key": KEY_VERSION, "prompt": normal}, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest(), tuple(files)


def cell_name(axes: tuple[Axis, ...], values: tuple[Value, ...], key: str) -> str:
    parts = [f"{axis.name}-{specs.slug(value.label, 32) or 'x'}" for axis, value in zip(axes, values, strict=True)
             if len(axis.values) > 1]
    return "_".join([*parts]) + f"__{key[:10]}" if parts else f"cell__{key[:10]}"


def _hidden(prompt: dict):
    def hidden(cls, node_id: str) -> dict:
        kinds = cls.INPUT_TYPES().get("hidden", {})
        values = {"PROMPT": prompt, "EXTRA_PNGINFO": {}, "UNIQUE_ID": node_id}
        return {name: values[kind] for name, kind in kinds.items() if kind in values}

    return hidden


def plan(spec: SweepSpec, runtime, ids: Identities | None = None) -> Plan:
    """Every cell of ``spec``, each checked by the headless runner's validation (under ``runtime``: its folders
    are where names are looked up). All problems come in one SpecError and nothing has run."""
    from ..nodes import host
    from ..runner.context import RunContext
    from ..runner.validate import validate

    ids = ids or Identities()
    with host.using(runtime):
        axes = expand_loras(spec, host.lora_names())
        count = 1
        for axis in axes:
            count *= len(axis.values)
        if count > specs.MAX_CELLS:
            raise SpecError(f"the axes make {count} cells; a sweep holds at most {specs.MAX_CELLS}")
        builder = Builder(spec, axes)
        cells, problems, seen = [], {}, {}
        for index, coords in enumerate(itertools.product(*(range(len(a.values)) for a in axes))):
            values = tuple(a.values[i] for a, i in zip(axes, coords, strict=True))
            draft = builder.prompt(values, "cell")
            try:
                key, files = content_key(draft, builder.save_id, ids, host.locate_lora, spec.input_dir)
            except LoraDeckError as exc:
                problems.setdefault(str(exc), []).append(index)
                continue
            if key not in seen:  # the same configuration again (no LoRA x strengths): it renders once
                name = cell_name(axes, values, key)
                prompt = builder.prompt(values, name)
                seen[key] = (name, prompt)
                context = RunContext(spec.output, prompt, {}, input_dir=spec.input_dir)
                for problem in validate(prompt, None, _hidden(prompt), context).problems:
                    problems.setdefault(problem, []).append(index)
            name, prompt = seen[key]
            group = "|".join(sorted(d for _, d in files))
            cells.append(Cell(index, coords, tuple(v.label for v in values), name, key, prompt, files, group))
    if problems:
        lines = []
        for problem, where in problems.items():
            count = f"{len(where)} cells, e.g. cell {where[0] + 1}" if len(where) > 1 else f"cell {where[0] + 1}"
            lines.append(f"  {problem} ({count})")
        raise SpecError(f"the sweep has {len(problems)} problem{'s' if len(problems) > 1 else ''}; nothing was "
                        "run:\n" + "\n".join(lines))
    hashes = {n: d for c in cells for n, d in c.files}
    return Plan(spec, axes, cells, builder.generate_id, builder.save_id, hashes)


__all__ = ["Cell", "Identities", "Plan", "cell_name", "content_key", "expand_loras", "natural", "plan"]
