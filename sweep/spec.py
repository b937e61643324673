"""A sweep spec: TOML or JSON, read and checked without importing torch.

    name = "epochs"                          # default: the file's stem
    model = "tiny-sd (built-in)"             # Load Diffusers Pipeline's model_name (or: workflow = "graph.json")
    [generate]                               # Generate inputs every cell shares (Generate's defaults otherwise)
    prompt = "a lighthouse"
    steps = 20
    [[stack]]                                # LoRAs under every cell (optional)
    lora = "detail.safetensors"
    strength_model = 0.6
    [axes]                                   # the cells are every combination, in this order
    lora = [{ folder = "my-style" }, "none"] # LoRA names as Load LoRA takes them, every file of a folder, no LoRA
    strength = [0.5, 1, "ramp(1.2, 0.2)"]    # of the axis LoRA: any Set Adapter Weights value (schedules too)
    prompt = ["a lighthouse", "a cat"]
    seed = [1, 2, 3]

Paths written in the spec (``workflow``, ``models_dir``, ``input_dir``, ``output``) are relative to the spec's
folder. Everything a value could get wrong beyond its type (names, ranges, schedules) is checked per cell by
the headless runner's own validation before anything runs (cells.py).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from ..core.errors import SpecError

MAX_SPEC_BYTES = 1024 * 1024
GENERATE_INPUTS = ("prompt", "negative_prompt", "seed", "steps", "cfg", "width", "height", "scheduler", "denoise")
TOP_KEYS = ("name", "model", "dtype", "workflow", "node", "models_dir", "input_dir", "output", "generate", "stack",
            "weights", "axes", "report")
STACK_KEYS = ("lora", "strength_model", "strength_clip", "name")
NONE_WORDS = ("none", "no lora", "off", "-")
MAX_CELLS = 100_000


@dataclass(frozen=True)
class Value:
    """One value of an axis: what it sets and how it is shown (labels, file names, the report)."""

    label: str
    value: object  # lora: a LoRA name or None; strength/weights: text; a Generate input: its value
    folder: str = ""  # lora: the folder it was listed from ({folder = ...}); "" when named one by one


@dataclass(frozen=True)
class Axis:
    name: str  # "lora", "strength", "weights" or a Generate input name
    values: tuple[Value, ...]
    adapter: str = ""  # strength: the adapter it changes ("" = the axis LoRA)

    @property
    def kind(self) -> str:
        return self.name if self.name in ("lora", "strength", "weights") else "input"


@dataclass(frozen=True)
class StackEntry:
    lora: str
    strength_model: float = 1.0
    strength_clip: float = 1.0
    name: str = ""


@dataclass(frozen=True)
class LoraFolder:
    """``{folder = "my-style", glob = "*.safetensors"}``: every LoRA listed under that folder of the loras
    folders, in natural order (epoch-2 before epoch-10); expanded by cells.py, where the folders are known."""

    folder: str
    glob: str = "*"


@dataclass(frozen=True)
class SweepSpec:
    source: str  # the spec file ("" for a spec given as a dict)
    name: str
    model: str = ""
    dtype: str = "auto"
    workflow: str = ""  # a base workflow (API/UI JSON or PNG) instead of model + stack
    node: str = ""  # its Generate node, when it has several
    models_dir: str | None = None
    input_dir: str = "input"
    output: str = ""
    generate: dict = field(default_factory=dict)
    stack: tuple[StackEntry, ...] = ()
    weights: str = ""  # Set Adapter Weights text for every cell (after the stack)
    axes: tuple[Axis, ...] = ()
    raw_lora_values: tuple = ()  # the lora axis as written (LoraFolder entries not yet expanded)
    rows: str = ""  # report: which axis runs down the tables (default the first axis with several values)
    columns: str = ""

    @property
    def varying(self) -> tuple[Axis, ...]:
        """Axes with more than one value (a one-value axis only sets its value)."""
        return tuple(a for a in self.axes if len(a.values) > 1)


def _read(path: str) -> dict:
    if not os.path.isfile(path):
        raise SpecError(f"sweep spec {path!r}: no such file")
    if os.path.getsize(path) > MAX_SPEC_BYTES:
        raise SpecError(f"sweep spec {path!r}: larger than {MAX_SPEC_BYTES} bytes")
    with open(path, "rb") as f:
        content = f.read()
    if path.lower().endswith(".json"):
        try:
            data = json.loads(content.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise SpecError(f"sweep spec {path!r}: not valid JSON ({exc})") from None
    else:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            try:
                import tomli as tomllib
            except ModuleNotFoundError:
                raise SpecError("TOML sweep specs need Python >= 3.11 or `pip install tomli`; "
                                "or write the spec as JSON") from None
        try:
            data = tomllib.loads(content.decode("utf-8-sig"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SpecError(f"sweep spec {path!r}: not valid TOML ({exc})") from None
    if not isinstance(data, dict):
        raise SpecError(f"sweep spec {path!r}: expected a table of settings at the top")
    return data


def _text(value, where: str) -> str:
    if not isinstance(value, str):
        raise SpecError(f"{where}: expected text, got {value!r}")
    return value


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _unknown(table: dict, allowed: tuple[str, ...], where: str) -> None:
    extra = [k for k in table if k not in allowed]
    if extra:
        raise SpecError(f"{where}: unknown key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}; "
                        f"the keys are: {', '.join(allowed)}")


def shown(value) -> str:
    """A value as a label: numbers without a trailing .0, text on one line."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return " ".join(str(value).split())


def _labelled(raw, where: str) -> tuple[str | None, object]:
    """``{label = "soft", value = ...}`` -> ("soft", value); anything else -> (None, raw)."""
    if isinstance(raw, dict) and "value" in raw:
        _unknown(raw, ("label", "value"), where)
        return _text(raw.get("label", shown(raw["value"])), f"{where} label"), raw["value"]
    return None, raw


def _lora_values(raw: list, where: str) -> tuple:
    out = []
    for i, item in enumerate(raw, start=1):
        here = f"{where} value {i}"
        if isinstance(item, dict) and "folder" in item:
            _unknown(item, ("folder", "glob"), here)
            out.append(LoraFolder(_text(item["folder"], f"{here} folder").strip().strip("/"),
                                  _text(item.get("glob", "*"), f"{here} glob")))
            continue
        label, value = _labelled(item, here)
        value = _text(value, here)
        if value.strip().lower() in NONE_WORDS:
            out.append(Value(label or "none", None))
        else:
            out.append(Value(label or lora_label(value), value))
    return tuple(out)


def lora_label(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base[: -len(".safetensors")] if base.lower().endswith(".safetensors") else base


def _strength_value(value, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SpecError(f"{where}: a strength is a number or a Set Adapter Weights value such as "
                        f"\"model=0.6, clip=0.3\" or \"ramp(1.2, 0.2)\", got {value!r}")
    return shown(value) if not isinstance(value, str) else value.strip()


def _axis(name: str, raw, where: str) -> tuple[Axis, tuple]:
    adapter = ""
    if name == "strength" and isinstance(raw, dict):
        _unknown(raw, ("adapter", "values"), where)
        adapter = _text(raw.get("adapter", ""), f"{where} adapter").strip()
        raw = raw.get("values")
    if not isinstance(raw, list) or not raw:
        raise SpecError(f"{where}: expected a list of values, e.g. {name} = [1, 2]")
    if name == "lora":
        found = _lora_values(raw, where)
        return Axis(name, tuple(v for v in found if isinstance(v, Value))), found
    values = []
    for i, item in enumerate(raw, start=1):
        here = f"{where} value {i}"
        label, value = _labelled(item, here)
        if name == "strength":
            value = _strength_value(value, here)
        elif name in ("weights", "prompt", "negative_prompt", "scheduler"):
            value = _text(value, here)
        elif name in ("seed", "steps", "width", "height"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise SpecError(f"{here}: expected a whole number, got {value!r}")
        else:  # cfg, denoise
            value = _number(value, here)
        values.append(Value(label if label is not None else shown(value), value))
    return Axis(name, tuple(values), adapter), ()


def _stack(raw, where: str) -> tuple[StackEntry, ...]:
    if not isinstance(raw, list):
        raise SpecError(f"{where}: expected a list of tables ([[stack]] in TOML)")
    out = []
    for i, item in enumerate(raw, start=1):
        here = f"{where} entry {i}"
        if not isinstance(item, dict) or "lora" not in item:
            raise SpecError(f"{here}: expected a table with lora = \"name.safetensors\"")
        _unknown(item, STACK_KEYS, here)
        out.append(StackEntry(_text(item["lora"], f"{here} lora"),
                              _number(item.get("strength_model", 1.0), f"{here} strength_model"),
                              _number(item.get("strength_clip", 1.0), f"{here} strength_clip"),
                              _text(item.get("name", ""), f"{here} name")))
    return tuple(out)


def from_dict(data: dict, source: str = "") -> SweepSpec:
    """A spec from its parsed table (what TOML/JSON give); SpecError naming the key and what to write."""
    where = f"sweep spec {source!r}" if source else "sweep spec"
    _unknown(data, TOP_KEYS, where)
    base = os.path.dirname(os.path.abspath(source)) if source else os.getcwd()

    def path_of(key: str) -> str | None:
        if key not in data:
            return None
        value = _text(data[key], f"{where}: {key}")
        return os.path.normpath(os.path.join(base, os.path.expanduser(value)))

    stem = os.path.splitext(os.path.basename(source))[0] if source else "sweep"
    name = _text(data.get("name", stem), f"{where}: name").strip() or stem
    model = _text(data.get("model", ""), f"{where}: model").strip()
    workflow = path_of("workflow") or ""
    if bool(model) == bool(workflow):
        raise SpecError(f"{where}: name either a model (model = \"tiny-sd (built-in)\", a diffusers folder or a "
                        "checkpoint, as Load Diffusers Pipeline takes it) or a base workflow (workflow = "
                        "\"graph.json\"), not both")
    generate = data.get("generate", {})
    if not isinstance(generate, dict):
        raise SpecError(f"{where}: [generate] must be a table of Generate inputs")
    _unknown(generate, GENERATE_INPUTS, f"{where}: [generate]")
    axes_raw = data.get("axes", {})
    if not isinstance(axes_raw, dict):
        raise SpecError(f"{where}: [axes] must be a table, e.g. seed = [1, 2, 3]")
    _unknown(axes_raw, ("lora", "strength", "weights", *GENERATE_INPUTS), f"{where}: [axes]")
    axes, lora_raw = [], ()
    for key, raw in axes_raw.items():
        axis, found = _axis(key, raw, f"{where}: axes.{key}")
        axes.append(axis)
        lora_raw = found or lora_raw
    strength = next((a for a in axes if a.name == "strength"), None)
    if strength is not None and not strength.adapter and "lora" not in axes_raw:
        raise SpecError(f"{where}: axes.strength changes the axis LoRA, but there is no lora axis; add one, or "
                        "name the adapter: strength = { adapter = \"style\", values = [0.5, 1] }")
    report = data.get("report", {})
    if not isinstance(report, dict):
        raise SpecError(f"{where}: [report] must be a table (rows = \"lora\", columns = \"strength\")")
    _unknown(report, ("rows", "columns"), f"{where}: [report]")
    names = {a.name for a in axes}
    for key in ("rows", "columns"):
        if key in report and report[key] not in names:
            raise SpecError(f"{where}: report.{key} = {report[key]!r} is not an axis; the axes are: "
                            f"{', '.join(sorted(names)) or 'none'}")
    if report.get("rows") and report.get("rows") == report.get("columns"):
        raise SpecError(f"{where}: report.rows and report.columns name the same axis ({report['rows']!r})")
    dtype = _text(data.get("dtype", "auto"), f"{where}: dtype")
    node = data.get("node", "")
    node = str(node) if isinstance(node, (int, str)) and not isinstance(node, bool) else _text(node, f"{where}: node")
    output = path_of("output") or os.path.abspath(os.path.join("output", "sweeps", _slug(name, 60) or "sweep"))
    return SweepSpec(source=os.path.abspath(source) if source else "", name=name, model=model, dtype=dtype,
                     workflow=workflow, node=node, models_dir=path_of("models_dir"),
                     input_dir=path_of("input_dir") or os.path.abspath("input"), output=output,
                     generate=dict(generate), stack=_stack(data.get("stack", []), f"{where}: stack"),
                     weights=_text(data.get("weights", ""), f"{where}: weights"), axes=tuple(axes),
                     raw_lora_values=lora_raw, rows=report.get("rows", ""), columns=report.get("columns", ""))


def load(path: str) -> SweepSpec:
    """The spec in ``path`` (``.json``: JSON, anything else: TOML)."""
    return from_dict(_read(path), path)


def _slug(text: str, limit: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9.+=-]+", "-", text).strip("-.")
    return slug[:limit].rstrip("-.")


slug = _slug

__all__ = ["Axis", "LoraFolder", "StackEntry", "SweepSpec", "Value", "from_dict", "load", "lora_label", "shown",
           "slug"]
