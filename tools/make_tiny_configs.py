"""Writes core/model_configs/tiny-*/ (JSON configs only) from the built-in tiny models of core/tiny.py.

    python tools/make_tiny_configs.py

The tiny architectures are known single-file architectures like the real ones, so their component
configs ship as data too; tests check these files still equal what core/tiny.py builds.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "core", "model_configs")
TINY = {"tiny-sd": "tiny_sd1_pipeline", "tiny-sdxl": "tiny_sdxl_pipeline", "tiny-sd3": "tiny_sd3_pipeline",
        "tiny-flux": "tiny_flux_pipeline"}
CONFIG_FILES = ("model_index.json", "config.json", "scheduler_config.json")
# bookkeeping fields that change with the library versions, not with the model
DROP = ("_name_or_path", "_diffusers_version", "transformers_version", "_use_default_values")


def tiny_config_files(name: str) -> dict[str, dict]:
    """{relative path: JSON} of the configs diffusers/transformers save for one tiny pipeline."""
    from loradeck.core import tiny

    pipe = getattr(tiny, TINY[name])()
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        pipe.save_pretrained(tmp)
        for folder, _, names in os.walk(tmp):
            sub = os.path.relpath(folder, tmp)
            if sub.startswith("tokenizer"):
                continue  # the tiny tokenizers are built in memory (core/tiny.py), never read from files
            for file in sorted(n for n in names if n in CONFIG_FILES):
                with open(os.path.join(folder, file), encoding="utf-8") as f:
                    data = json.load(f)
                rel = os.path.normpath(os.path.join(sub, file)).replace(os.sep, "/")
                files[rel] = {k: v for k, v in data.items() if k not in DROP}
    index = files["model_index.json"]
    for key in [k for k in index if k.startswith("tokenizer")]:
        index[key] = ["transformers", type(getattr(pipe, key)).__name__] if getattr(pipe, key) is not None \
            else [None, None]
    return files


def main() -> int:
    for name in TINY:
        for rel, data in tiny_config_files(name).items():
            path = os.path.join(OUT, name, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")
            print(path)  # noqa: T201 - the tool's output is the list of files it wrote
    return 0


if __name__ == "__main__":
    sys.exit(main())
