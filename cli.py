"""The ``loradeck`` command: run saved workflows headless, run the demo.

Importing this module loads neither torch nor diffusers: ``--help`` and argument errors answer at
once; the runner and the demo are imported when a command runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import Counter

from .core.errors import LoraDeckError
from .core.families import FAMILIES

log = logging.getLogger("loradeck")

# Third-party log lines that say nothing to a LoRA Deck user: (logger, text in the message, times each is shown).
# transformers announces its torchvision image processors on import (LoRA Deck uses no image processor);
# diffusers repeats a pipeline's deprecation each time one is built (shown once: it is true of aMUSEd).
THIRD_PARTY_NOISE = (
    ("transformers.utils.import_utils", "requires torchvision (not installed)", 0),
    ("diffusers.pipelines.pipeline_utils", "has been deprecated and will not receive", 1),
)


class _NoiseFilter(logging.Filter):
    def __init__(self, text: str, times: int):
        super().__init__()
        self.text, self.times, self.shown = text, times, Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.text not in message:
            return True
        self.shown[message] += 1
        return self.shown[message] <= self.times


def quiet_third_party() -> None:
    """Filter the lines of THIRD_PARTY_NOISE at the command's boundary (once per process); the rest stays."""
    for logger_name, text, times in THIRD_PARTY_NOISE:
        logger = logging.getLogger(logger_name)
        if not any(isinstance(f, _NoiseFilter) and f.text == text for f in logger.filters):
            logger.addFilter(_NoiseFilter(text, times))


def existing_file(path: str) -> str:
    """argparse type: a missing workflow is an argument error, answered before torch is imported."""
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"no such file: {path}")
    return path


def existing_folder(path: str) -> str:
    if not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"no such folder: {path} (it should hold loras/, diffusers/, ...)")
    return path


def _run(args) -> int:
    from .runner import run_workflow

    runtime = None
    if args.tokenizers:  # single-file checkpoints take tokenizers from here first, then LORADECK_TOKENIZERS
        from dataclasses import replace

        from .core.runtime import Runtime
        from .core.settings import Settings
        from .nodes.host import headless_folders

        settings = Settings.from_env()
        settings = replace(settings, tokenizer_dirs=(args.tokenizers, *settings.tokenizer_dirs))
        runtime = Runtime(settings, headless_folders(args.models_dir, args.output_dir, settings))
    context = run_workflow(args.workflow, args.output_dir, args.models_dir, input_dir=args.input_dir,
                           runtime=runtime)
    for path in context.saved:
        print(path)  # noqa: T201 - the command's output is the list of files it wrote
    return 0


def _sweep(args) -> int:
    from .sweep.driver import SweepInterrupted, run

    try:
        result = run(args.spec, address=args.address, workers=args.workers, threads=args.threads,
                     output=args.output, models_dir=args.models_dir, retry_failed=args.retry_failed,
                     progress=not args.no_progress, start_timeout=args.start_timeout)
    except SweepInterrupted as stop:
        done = stop.result
        log.error("interrupted: %d of %d cells are done (no partial files were left); run the same command "
                  "again to render the rest. Report so far: %s", done.ok + done.failed, done.unique, done.report)
        return 130
    print(result.report)  # noqa: T201 - the command's output: the report, then the manifest
    print(result.manifest)  # noqa: T201
    summary = (f"{result.unique} cells: {result.rendered} rendered now, {result.skipped} done before, "
               f"{result.ok} ok, {result.failed} failed")
    if result.failed:
        log.error("%s (each failure's reason is in the manifest and the report)", summary)
        return 1
    log.info("%s", summary)
    return 0


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def _demo(args) -> int:
    from .demo.run import run_demo

    run_demo(args.output_dir, family=args.model)
    return 0


def _common_options(defaults: bool) -> argparse.ArgumentParser:
    """-v and --debug, accepted before or after the command (the command's copy never resets them)."""
    common = argparse.ArgumentParser(add_help=False)
    default = False if defaults else argparse.SUPPRESS
    common.add_argument("-v", "--verbose", action="store_true", default=default, help="log each node as it runs")
    common.add_argument("--debug", action="store_true", default=default,
                        help="show the full traceback of an error")
    return common


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="loradeck", description="LoRA Deck: LoRA stacks for diffusers pipelines.",
                                parents=[_common_options(True)])
    common = [_common_options(False)]
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=common,
                         help="run a saved ComfyUI workflow (API or UI JSON, or a PNG carrying one)")
    run.add_argument("workflow", type=existing_file)
    run.add_argument("--models-dir", default=None, type=existing_folder,
                     help="folder in ComfyUI's layout (loras/, diffusers/, checkpoints/); "
                          "default $LORADECK_MODELS_DIR or ./models")
    run.add_argument("--output-dir", default="output", help="where output nodes write (default ./output)")
    run.add_argument("--input-dir", default="input",
                     help="where LoadImage reads images (default ./input; the examples' own images are always found)")
    run.add_argument("--tokenizers", default=None,
                     help="tokenizer files for single-file checkpoints: a ComfyUI checkout, a diffusers folder of "
                          "the model or a folder of tokenizer folders (default $LORADECK_TOKENIZERS, "
                          "then models/tokenizers and models/diffusers/*)")
    run.set_defaults(func=_run)
    sweep = sub.add_parser("sweep", parents=common,
                           help="render every combination of LoRAs, strengths, prompts, seeds, ... on Ray")
    sweep.add_argument("spec", type=existing_file, help="the sweep spec (TOML, or JSON for a .json file)")
    sweep.add_argument("--address", default=None,
                       help="join a running Ray cluster (e.g. ray://head:10001 or auto); default: a local Ray")
    sweep.add_argument("--workers", type=positive, default=None,
                       help="workers, each holding one pipeline (default: one per GPU, else 2 locally)")
    sweep.add_argument("--threads", type=positive, default=1,
                       help="CPUs and torch threads per CPU worker (default 1)")
    sweep.add_argument("--output", default=None, help="the sweep's folder (default: the spec's output, else "
                                                      "./output/sweeps/NAME)")
    sweep.add_argument("--models-dir", default=None, type=existing_folder,
                       help="folder in ComfyUI's layout (default: the spec's models_dir, $LORADECK_MODELS_DIR "
                            "or ./models)")
    sweep.add_argument("--retry-failed", action="store_true",
                       help="render again the cells that failed on an earlier run")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.add_argument("--start-timeout", type=positive, default=900, metavar="SECONDS",
                       help="give up when the workers have not started after this long (default 900; a cluster "
                            "that adds nodes on demand may need more)")
    sweep.set_defaults(func=_sweep)
    demo = sub.add_parser("demo", parents=common, help="run the demo workflow on a built-in tiny model")
    demo.add_argument("--output-dir", default="output", help="where the images go (default ./output)")
    demo.add_argument("--model", default="sd1", choices=sorted(FAMILIES),
                      help="which built-in tiny model family to run the demo on (default sd1)")
    demo.set_defaults(func=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    quiet_third_party()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        log.error("interrupted; no partial files were left")
        return 130
    except LoraDeckError as exc:
        if args.debug:
            raise
        log.error("%s", exc)
        return 1
    except Exception as exc:  # a bug or an environment problem: one line, the traceback on request
        if args.debug:
            raise
        log.error("%s: %s (run again with --debug for the traceback)", type(exc).__name__, exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
