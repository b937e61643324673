"""Running a sweep on Ray: plan, skip what is done, hand cells to worker actors, record, report.

- **Workers.** N actors of ``SweepWorker``, each holding one pipeline: one GPU each where the cluster has GPUs,
  else ``threads`` CPUs each (and that many torch threads). A local Ray is started unless ``address`` names a
  running cluster (then the cluster is left running).
- **Order.** Cells are grouped by the LoRA files they load; a worker keeps taking cells of its group, so going
  from one cell to the next is mostly a scale write, and a file is read once per worker. Two cells are in
  flight per worker, so a worker never waits for the driver.
- **Faults.** A worker that dies (killed, out of memory, its node gone) fails only the calls it was running:
  the driver puts those cells back in the queue and starts a new worker in its place. A cell whose worker died
  ``MAX_ATTEMPTS`` times is recorded as failed with that reason. A cell whose configuration fails (a bad LoRA
  file: the runner's LoraDeckError) is recorded as failed with the reason; the others go on.
- **Resume.** Every finished cell is in the journal by its content key; a second run renders only the rest.
- **Ctrl-C.** Stops handing out cells, stops the workers, writes the manifest, sheets and report of what is
  done, and raises ``SweepInterrupted`` (the command exits with 130). Images are written atomically.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..core.errors import LoraDeckError
from . import cells as cells_module
from . import journal as journal_module
from .cells import Cell, Plan
from .journal import Journal
from .progress import Progress, Silent
from .spec import SweepSpec

log = logging.getLogger(__name__)

DEPTH = 2  # cells in flight per worker
MAX_ATTEMPTS = 3  # times a cell may see its worker die before it is recorded as failed
OBJECT_STORE_BYTES = 256 * 1024 * 1024  # a local Ray's object store: PNG bytes only pass through it
START_TIMEOUT = 900.0  # seconds for the workers to start (import torch, build the pipeline) before giving up


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep, after everything done so far was written; ``result`` says what that is."""

    def __init__(self, result: SweepResult):
        super().__init__("sweep interrupted")
        self.result = result


class WorkersGone(LoraDeckError):
    pass


@dataclass
class SweepResult:
    output: str
    manifest: str
    report: str
    cells: int  # cells in the spec
    unique: int  # distinct configurations (cells with the same content key render once)
    rendered: int  # rendered by this run
    skipped: int  # already done by an earlier run
    ok: int
    failed: int
    pending: int  # neither (interrupted, or every worker gone)
    seconds: float
    interrupted: bool = False
    workers: list = field(default_factory=list)
    sheets: list = field(default_factory=list)
    restarts: int = 0  # workers started again after one died
    render_seconds: float = 0.0  # from every worker ready to the last cell back (start-up left out)


def _resolve(spec: SweepSpec | str | dict, output: str | None, models_dir: str | None) -> SweepSpec:
    from . import spec as spec_module

    if isinstance(spec, str):
        spec = spec_module.load(spec)
    elif isinstance(spec, dict):
        spec = spec_module.from_dict(spec)
    if output:
        spec = replace(spec, output=os.path.abspath(output))
    if models_dir:
        spec = replace(spec, models_dir=os.path.abspath(models_dir))
    return spec


def _warm(plan: Plan) -> dict | None:
    """LoadPipeline's inputs, when they are plain values: workers build the pipeline as they start."""
    for node in plan.cells[0].prompt.values():
        if node.get("class_type") == cells_module.PIPELINE:
            inputs = node.get("inputs", {})
            if isinstance(inputs.get("model_name"), str) and isinstance(inputs.get("dtype", "auto"), str):
                return {"model_name": inputs["model_name"], "dtype": inputs.get("dtype", "auto")}
    return None


def _payload(plan: Plan, cell: Cell) -> dict:
    expect = [plan.hashes[n["inputs"]["lora_name"]] for n in cell.prompt.values()
              if n.get("class_type") == cells_module.LORA and isinstance(n["inputs"].get("lora_name"), str)]
    return {"key": cell.key, "name": cell.name, "prompt": cell.prompt, "generate": plan.generate_id,
            "expect": expect}


class Queue:
    """Cells waiting, by group (the LoRA files they load): a worker keeps its group while it has cells, then
    takes the group with the most cells left."""

    def __init__(self, todo: list[Cell]):
        self.groups: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()
        for cell in todo:
            self.groups.setdefault(cell.group, collections.deque()).append(cell)

    def __len__(self) -> int:
        return sum(len(q) for q in self.groups.values())

    def take(self, group: str | None) -> Cell | None:
        if group not in self.groups:
            if not self.groups:
                return None
            group = max(self.groups, key=lambda g: len(self.groups[g]))
        cells = self.groups[group]
        cell = cells.popleft()
        if not cells:
            del self.groups[group]
        return cell

    def put_back(self, cell: Cell) -> None:
        self.groups.setdefault(cell.group, collections.deque()).appendleft(cell)
        self.groups.move_to_end(cell.group, last=False)


@dataclass
class Slot:
    """One worker place: its current actor (replaced when it dies), what it runs, its group."""

    number: int
    actor: object = None
    generation: int = 0
    group: str | None = None
    busy: dict = field(default_factory=dict)  # ref -> cell
    dead: bool = False
    info: dict = field(default_factory=dict)


class Pool:
    def __init__(self, ray, plan: Plan, config: dict, options: dict, count: int):
        self.ray, self.plan, self.config, self.options = ray, plan, config, options
        self.remote = ray.remote(max_restarts=0, max_task_retries=0)(_worker_class())
        self.slots = [Slot(i) for i in range(count)]
        self.refs: dict = {}  # ref -> (slot, generation)
        self.restarts = 0
        self.budget = 2 * count + 2  # new workers after deaths, before the sweep gives up
        for slot in self.slots:
            self._start(slot)

    def _start(self, slot: Slot) -> None:
        slot.actor = self.remote.options(name=None, **self.options).remote(self.config)
        slot.generation += 1
        slot.group = None

    def wait_ready(self, timeout: float) -> list[dict]:
        """Each worker's info once it has started (and built its pipeline); a worker that cannot start, or has
        not started after ``timeout`` seconds (no CPU/GPU free on the cluster, a node that never answers), is an
        error naming why. Waits a second at a time, so Ctrl-C is seen at once."""
        pending = {slot.actor.info.remote(): slot for slot in self.slots}
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                need = " + ".join(f"{v} {k.removeprefix('num_').upper()}" for k, v in self.options.items())
                raise WorkersGone(f"{len(pending)} of {len(self.slots)} sweep workers had not started after "
                                  f"{timeout:.0f} s (each needs {need} free on the cluster); run the sweep again")
            ready, _ = self.ray.wait(list(pending), num_returns=len(pending), timeout=1.0)
            for ref in ready:
                slot = pending.pop(ref)
                try:
                    slot.info = self.ray.get(ref)
                except self.ray.exceptions.RayError as exc:
                    raise WorkersGone(f"a sweep worker could not start: {_reason(exc)}") from None
        return [slot.info for slot in self.slots]

    def refresh(self, timeout: float = 10.0) -> None:
        """Each live worker's info again (cells rendered, files read), when it answers in time."""
        for slot in self.live():
            with contextlib.suppress(Exception):
                slot.info = self.ray.get(slot.actor.info.remote(), timeout=timeout)

    def live(self) -> list[Slot]:
        return [s for s in self.slots if not s.dead]

    def submit(self, queue: Queue) -> None:
        for slot in self.live():
            while len(slot.busy) < DEPTH:
                cell = queue.take(slot.group)
                if cell is None:
                    return
                slot.group = cell.group
                ref = slot.actor.render.remote(_payload(self.plan, cell))
                slot.busy[ref] = cell
                self.refs[ref] = (slot, slot.generation)

    def replace(self, slot: Slot, generation: int) -> None:
        """The actor of ``slot`` died: a new one takes its place (once per death), within the budget."""
        if generation != slot.generation or slot.dead:
            return
        with contextlib.suppress(Exception):  # it may be gone already
            self.ray.kill(slot.actor, no_restart=True)
        if self.budget <= 0:
            slot.dead = True
            log.warning("sweep worker %d died and no more workers are started", slot.number)
            return
        self.budget -= 1
        self.restarts += 1
        log.warning("sweep worker %d died; starting another in its place", slot.number)
        self._start(slot)

    def stop(self) -> None:
        for slot in self.slots:
            with contextlib.suppress(Exception):
                self.ray.kill(slot.actor, no_restart=True)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    tail = [line for line in text if line.strip()][-1:] or [type(exc).__name__]
    return tail[0][:500]


def _worker_class():
    from .worker import SweepWorker

    return SweepWorker


def _import_ray():
    try:
        import ray
    except ModuleNotFoundError:
        raise LoraDeckError("loradeck sweep runs on Ray: pip install \"ray>=2.10\" (or pip install "
                            "\"loradeck[sweep]\")") from None
    return ray


def _start_ray(ray, address: str | None, workers: int | None, threads: int, init: dict | None) -> tuple[bool, int, int]:
    """(whether this call started Ray, the number of workers, the cluster's GPUs)."""
    started = False
    if not ray.is_initialized():
        kwargs = {"logging_level": logging.WARNING, "log_to_driver": False, **(init or {})}
        if address:
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError) as exc:
                raise LoraDeckError(_join_failed(address, exc)) from exc
        else:
            gpus = _local_gpus()
            if not gpus:
                kwargs.setdefault("num_cpus", (workers or 2) * threads)
            kwargs.setdefault("include_dashboard", False)
            kwargs.setdefault("object_store_memory", OBJECT_STORE_BYTES)
            ray.init(address="local", **kwargs)  # a new local Ray, even beside a cluster `ray start` left running
        started = True
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    return started, workers or gpus or max(1, int(resources.get("CPU", 1) // threads)), gpus


def _join_failed(address: str, exc: BaseException) -> str:
    """Why joining the cluster at ``address`` failed, with Ray's own reason (often in the exception's cause)."""
    reasons = [_reason(e) for e in (exc, exc.__cause__) if e is not None]
    text = f"could not join the Ray cluster at {address}: " + "; ".join(reasons)
    if any("token" in r.lower() for r in reasons) and not os.environ.get("RAY_AUTH_MODE"):
        text += (" (the cluster uses token authentication: set RAY_AUTH_MODE=token, with its token in "
                 "~/.ray/auth_token or RAY_AUTH_TOKEN; `--address auto` finds a local cluster's token itself)")
    return text


def _local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def run(spec: SweepSpec | str | dict, *, address: str | None = None, workers: int | None = None, threads: int = 1,
        output: str | None = None, models_dir: str | None = None, retry_failed: bool = False,
        progress: bool | Progress = True, on_result: Callable[[dict], None] | None = None,
        settings: dict | None = None, ray_init: dict | None = None,
        start_timeout: float = START_TIMEOUT) -> SweepResult:
    """Run the sweep ``spec`` (a path to TOML/JSON, a parsed table, or a SweepSpec); see the module docstring.

    ``workers``: actors (default: one per GPU, else 2 on a local Ray, else the cluster's CPUs / ``threads``);
    ``threads``: CPUs and torch threads per CPU worker; ``output``/``models_dir`` override the spec's;
    ``retry_failed`` renders again cells that failed on an earlier run; ``on_result(record)`` is called after
    each cell is recorded (tests); ``settings``: Settings fields for the workers' runtimes; ``ray_init``:
    extra ``ray.init`` arguments; ``start_timeout``: seconds the workers may take to start before the sweep
    gives up (WorkersGone; nothing is lost, run it again). A Ray already initialised by the caller is used as
    it is."""
    from ..core.runtime import Runtime
    from ..core.settings import Settings
    from ..nodes import host

    started_at = time.monotonic()
    spec = _resolve(spec, output, models_dir)
    base_settings = Settings.from_env()
    if settings:
        base_settings = replace(base_settings, **settings)
    if spec.models_dir and not os.path.isdir(spec.models_dir):
        raise LoraDeckError(f"models folder {spec.models_dir!r} does not exist (it should hold loras/, "
                            "diffusers/, ...)")
    models = os.path.abspath(spec.models_dir or base_settings.models_dir)
    spec = replace(spec, models_dir=models)
    runtime = Runtime(base_settings, host.headless_folders(models, spec.output, base_settings))
    os.makedirs(spec.output, exist_ok=True)
    hashes_path = os.path.join(spec.output, journal_module.HASHES)
    ids = cells_module.Identities(journal_module.read_json(hashes_path, {}))
    plan = cells_module.plan(spec, runtime, ids)
    journal_module.write_json(hashes_path, ids.cache)
    journal = Journal(spec.output)
    unique = plan.unique
    todo = [c for c in unique if not journal.finished(c.key, retry_failed)]
    bar = progress if isinstance(progress, Progress) else (Progress if progress else Silent)(
        len(todo), skipped=len(unique) - len(todo))
    state = {"interrupted": False, "workers": [], "restarts": 0, "rendered": 0, "error": None}
    try:
        if todo:
            _render(plan, todo, journal, bar, state, address=address, workers=workers, threads=threads,
                    settings=settings, ray_init=ray_init, on_result=on_result, start_timeout=start_timeout)
    except KeyboardInterrupt:
        state["interrupted"] = True
    finally:
        with _shielded():
            bar.close()
            result = _finish(plan, journal, state, started_at, len(unique) - len(todo))
    if state["interrupted"]:
        raise SweepInterrupted(result)
    if state["error"] is not None:
        raise state["error"]
    return result


def _render(plan: Plan, todo: list[Cell], journal: Journal, bar: Progress, state: dict, *, address, workers, threads,
            settings, ray_init, on_result, start_timeout) -> None:
    ray = _import_ray()
    started, count, gpus = _start_ray(ray, address, workers, threads, ray_init)
    pool = None
    try:
        options = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": threads}
        config = {"models_dir": plan.spec.models_dir, "input_dir": plan.spec.input_dir,
                  "threads": None if gpus else threads, "warm": _warm(plan), "settings": settings or {}}
        bar.start(f"starting {count} worker{'s' if count > 1 else ''}")
        pool = Pool(ray, plan, config, options, count)
        state["workers"] = pool.wait_ready(start_timeout)
        state["ready_at"] = time.monotonic()
        bar.note = f"{count} worker{'s' if count > 1 else ''} ({'GPU' if gpus else f'CPU x{threads}'})"
        bar.show(force=True)
        _loop(ray, pool, plan, Queue(todo), journal, bar, state, on_result)
    except WorkersGone as exc:
        state["error"] = exc
    except KeyboardInterrupt:
        state["interrupted"] = True
        raise
    finally:
        if pool is not None:
            state["restarts"] = pool.restarts
            if not state["interrupted"]:
                pool.refresh()
            state["workers"] = [s.info for s in pool.slots]
        _quietly(lambda: pool.stop() if pool is not None else None)
        if started:
            _quietly(ray.shutdown)


@contextlib.contextmanager
def _shielded():
    """Clean-up and the final writes run to the end: in the main thread a second Ctrl-C is ignored meanwhile."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def _quietly(step: Callable[[], object]) -> None:
    with _shielded():
        try:
            step()
        except Exception as exc:
            log.debug("sweep clean-up: %s", exc)


def _loop(ray, pool: Pool, plan: Plan, queue: Queue, journal: Journal, bar: Progress, state: dict,
          on_result) -> None:
    attempts: collections.Counter = collections.Counter()
    while len(queue) or pool.refs:
        if not pool.live():
            raise WorkersGone(f"every sweep worker died; {len(queue) + len(pool.refs)} cells were not rendered "
                              "(run the sweep again to render them)")
        pool.submit(queue)
        if not pool.refs:
            continue
        ready, _ = ray.wait(list(pool.refs), num_returns=1, timeout=1.0)
        for ref in ready:
            slot, generation = pool.refs.pop(ref)
            cell = slot.busy.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError as exc:  # the worker died: the cell goes back in the queue
                attempts[cell.key] += 1
                pool.replace(slot, generation)
                if attempts[cell.key] >= MAX_ATTEMPTS:
                    result = {"key": cell.key, "status": "failed", "error": (
                        f"the worker died {attempts[cell.key]} times while rendering this cell "
                        f"(last: {_reason(exc)})")}
                else:
                    queue.put_back(cell)
                    continue
            except ray.exceptions.RayError as exc:
                result = {"key": cell.key, "status": "error", "error": _reason(exc)}
            record = _record(plan, cell, result, journal, attempts[cell.key] + 1)
            state["rendered"] += 1
            state["render_seconds"] = time.monotonic() - state["ready_at"]
            bar.add(record["status"] == "ok")
            if on_result is not None:
                on_result(record)


def _record(plan: Plan, cell: Cell, result: dict, journal: Journal, attempts: int) -> dict:
    """Write the cell's image, then its journal line (in that order: a recorded cell always has its image)."""
    record = {"key": cell.key, "name": cell.name, "status": result["status"], "finished": journal_module.now(),
              "attempts": attempts, "worker": result.get("worker"), "host": result.get("host"),
              "seconds": result.get("seconds", {}), "reads": result.get("reads")}
    if result["status"] == "ok":
        png = result["png"]
        record["image"] = journal.write_image(cell.name, png)
        record["image_sha256"] = journal_module.sha256_bytes(png)
        record["a1111"] = _parameters_text(png)
    else:
        record["error"] = result.get("error", "")
    journal.add(record)
    return record


def _parameters_text(png: bytes) -> str:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return str(getattr(image, "text", {}).get("parameters", ""))


def _finish(plan: Plan, journal: Journal, state: dict, started_at: float, skipped: int) -> SweepResult:
    from . import report, sheets

    manifest = report.manifest(plan, journal, state)
    journal_module.write_json(os.path.join(plan.spec.output, journal_module.MANIFEST), manifest)
    drawn = sheets.write_all(plan, journal)
    page = report.write_html(plan, journal, manifest, drawn)
    counts = manifest["counts"]
    return SweepResult(plan.spec.output, os.path.join(plan.spec.output, journal_module.MANIFEST), page,
                       counts["cells"], counts["unique"], state["rendered"], skipped, counts["ok"], counts["failed"],
                       counts["pending"], time.monotonic() - started_at, state["interrupted"], state["workers"],
                       drawn, state["restarts"], state.get("render_seconds", 0.0))


__all__ = ["SweepInterrupted", "SweepResult", "run"]
