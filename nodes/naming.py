"""ComfyUI's output file naming: ``<prefix>_<NNNNN>_.png`` with a counter that continues across runs."""

from __future__ import annotations

import os


def next_counter(folder: str, filename: str, suffix: str = ".png") -> int:
    """1 + the highest counter among ``<filename>_<NNNNN>_<suffix>`` files already in ``folder``."""
    best = 0
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.lower().startswith(filename.lower() + "_") and name.endswith("_" + suffix):
                digits = name[len(filename) + 1 :].split("_")[0]
                if digits.isdigit():
                    best = max(best, int(digits))
    return best + 1


def save_path(output_dir: str, prefix: str, suffix: str = ".png") -> tuple[str, str, int]:
    """(folder, file name stem, first counter) for a ComfyUI ``filename_prefix`` (may hold subfolders)."""
    output_dir = os.path.abspath(output_dir)
    prefix = os.path.normpath(prefix.replace("\\", "/"))
    folder = os.path.abspath(os.path.join(output_dir, os.path.dirname(prefix)))
    if os.path.commonpath((output_dir, folder)) != output_dir:
        raise ValueError(f"filename_prefix {prefix!r} points outside the output folder")
    stem = os.path.basename(prefix)
    return folder, stem, next_counter(folder, stem, suffix)
