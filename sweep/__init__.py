"""``loradeck sweep``: LoRA x strength x prompt x seed (x any Generate input) on Ray, resumable, fault-tolerant.

    from loradeck import sweep
    result = sweep.run("example_sweeps/demo-sweep.toml")          # a local Ray with 2 workers
    result = sweep.run(spec, address="ray://head:10001")          # an existing cluster
    print(result.report, result.ok, result.failed)

Each cell is the workflow ``loradeck run`` would run for that configuration (cells.py), rendered by workers
that each hold one pipeline (worker.py) and scheduled by the driver (driver.py). Importing this package loads
neither Ray nor torch; ``run`` does, when it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .spec import SweepSpec, from_dict, load

if TYPE_CHECKING:
    from .driver import SweepInterrupted, SweepResult

__all__ = ["SweepInterrupted", "SweepResult", "SweepSpec", "from_dict", "load", "run"]


def run(spec, **options) -> SweepResult:
    """Run a sweep: see ``driver.run`` for the options (address, workers, threads, output, ...)."""
    from .driver import run as run_sweep

    return run_sweep(spec, **options)


def __getattr__(name: str):
    if name in ("SweepInterrupted", "SweepResult"):
        from . import driver

        return getattr(driver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
