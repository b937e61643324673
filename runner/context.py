"""What one headless run carries: the prompt, the PNG metadata, and what it wrote (no heavy imports)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class RunContext:
    output_dir: str
    prompt: dict
    extra_pnginfo: dict
    saved: list[str] = field(default_factory=list)  # every file the run wrote, in order
    timings: dict[str, float] = field(default_factory=dict)
    inputs: dict[str, dict] = field(default_factory=dict)  # node id -> evaluated inputs (image metadata reads it)
    input_dir: str = "input"  # where LoadImage reads (then the examples' shipped input folder)

    def folder(self, kind: str) -> str:
        """ComfyUI's folder for a file type: the output folder, or its ``temp`` subfolder for previews."""
        return self.output_dir if kind == "output" else os.path.join(self.output_dir, "temp")
