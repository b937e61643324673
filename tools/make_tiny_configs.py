"""Writes each family's configs/tiny-*/ (JSON configs only) from its built-in tiny model (its tiny.py).

    python tools/make_tiny_configs.py

The tiny architectures are known single-file architectures like the real ones, so their component
configs ship as data too; tests check these files still equal what the families' tiny builders make.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

CONFIG_FILES = ("model_index.json", "config.json", "scheduler_config.json", "preprocessor_config.json")
# bookkeeping fields that change with the library versions, not with the model
DROP = ("_name_or_path", "_diffusers_version", "transformers_version", "_use_default_values")


def tiny_archs() -> dict:
    """The single-file rows of the built-in tiny models -> the family row that builds each (a second built-in of a
    family, such as tiny-wan22 or tiny-qwenimage-edit, by its own row: the row whose ``builtin`` is the arch's key)."""
    from loradeck.core.families import BUILTINS, FAMILIES

    return {arch: BUILTINS.get(arch.key, family) for family in FAMILIES.values() for arch in family.single_files
            if arch.tiny}


def tiny_config_files(arch, family) -> dict[str, dict]:
    """{relative path: JSON} of the configs diffusers/transformers save for one tiny pipeline."""
    pipe = family.tiny()
    files = {}
    # a processor without a video processor (Qwen-Image-Edit's, processor.py) cannot be saved; it holds no config
    # of its own here, only its class name in model_index.json
    unsaved = {k: getattr(pipe, k) for k in ("processor",) if getattr(pipe, k, None) is not None}
    with tempfile.TemporaryDirectory() as tmp:
        for key in unsaved:
            setattr(pipe, key, None)
        try:
            pipe.save_pretrained(tmp)
        finally:
            for key, value in unsaved.items():
                setattr(pipe, key, value)
        for folder, _, names in os.walk(tmp):
            sub = os.path.relpath(folder, tmp)
            if sub.startswith("tokenizer"):
                continue  # the tiny tokenizers are built in memory (models/tiny_parts.py), never read from files
            for file in sorted(n for n in names if n in CONFIG_FILES):
                with open(os.path.join(folder, file), encoding="utf-8") as f:
                    data = json.load(f)
                rel = os.path.normpath(os.path.join(sub, file)).replace(os.sep, "/")
                files[rel] = {k: v for k, v in data.items() if k not in DROP}
    index = files["model_index.json"]
    for key in [k for k in index if k.startswith("tokenizer") or k in unsaved]:
        index[key] = ["transformers", type(getattr(pipe, key)).__name__] if getattr(pipe, key) is not None \
            else [None, None]
    return files


def main() -> int:
    for arch, family in tiny_archs().items():
        for rel, data in tiny_config_files(arch, family).items():
            path = os.path.join(arch.config_dir, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")
            print(path)  # noqa: T201 - the tool's output is the list of files it wrote
    return 0


if __name__ == "__main__":
    sys.exit(main())
