"""The ``loradeck`` command: run saved workflows headless, run the demo."""

from __future__ import annotations

import argparse
import logging
import sys

from .core.errors import LoraDeckError
from .core.families import FAMILIES

log = logging.getLogger("loradeck")


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


def _demo(args) -> int:
    from .demo.run import run_demo

    run_demo(args.output_dir, family=args.model)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="loradeck", description="LoRA Deck: LoRA stacks for diffusers pipelines.")
    p.add_argument("-v", "--verbose", action="store_true", help="log each node as it runs")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a saved ComfyUI workflow (API or UI JSON, or a PNG carrying one)")
    run.add_argument("workflow")
    run.add_argument("--models-dir", default=None,
                     help="folder in ComfyUI's layout (loras/, diffusers/); default $LORADECK_MODELS_DIR or ./models")
    run.add_argument("--output-dir", default="output", help="where SaveImage writes (default ./output)")
    run.add_argument("--input-dir", default="input",
                     help="where LoadImage reads images (default ./input; the examples' own images are always found)")
    run.add_argument("--tokenizers", default=None,
                     help="tokenizer files for single-file checkpoints: a ComfyUI checkout, a diffusers folder of "
                          "the model or a folder of tokenizer folders (default $LORADECK_TOKENIZERS, "
                          "then models/tokenizers and models/diffusers/*)")
    run.set_defaults(func=_run)
    demo = sub.add_parser("demo", help="run the demo workflow on the built-in tiny model")
    demo.add_argument("--output-dir", default="output", help="where the images go (default ./output)")
    demo.add_argument("--model", default="sd1", choices=sorted(FAMILIES),
                      help="which built-in tiny model family to run the demo on (default sd1)")
    demo.set_defaults(func=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except LoraDeckError as exc:
        if args.debug:
            raise
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted; no partial files were left")
        return 130


if __name__ == "__main__":
    sys.exit(main())
