"""Large CPU buffers that are cheap to fill: anonymous memory the kernel may back with 2 MiB pages.

A fresh buffer from torch's allocator takes one page fault per 4 KiB page the first time it is written (the kernel
zero-fills each page): for a 92 MB LoRA file that is ~23,000 faults, about as long as reading the file itself
(bench/README.md). Where Linux offers transparent huge pages on request (``madvise`` mode, the common default),
``empty`` maps the buffer itself and asks for them (``MADV_HUGEPAGE``): 512 times fewer faults. Elsewhere, below
``HUGE_MIN_BYTES``, or if the mapping fails, it is an ordinary ``torch.empty``. The contents are uninitialised
either way; the memory is returned to the system when the last tensor viewing it is freed.
"""

from __future__ import annotations

import mmap

import torch

HUGE_MIN_BYTES = 4 * 1024 * 1024  # below two huge pages the saving is too small to matter
_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", None)  # Linux only


def empty(numel: int, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised 1-D CPU tensor of ``numel`` values, huge-page backed where the system allows."""
    nbytes = numel * dtype.itemsize
    if _HUGEPAGE is None or nbytes < HUGE_MIN_BYTES:
        return torch.empty(numel, dtype=dtype)
    try:
        region = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        region.madvise(_HUGEPAGE)
    except (OSError, ValueError):  # no memory to map, or the kernel refuses the advice: the allocator's buffer
        return torch.empty(numel, dtype=dtype)
    # the tensor keeps ``region`` alive (its storage holds the buffer); unmapped when the storage is freed
    return torch.frombuffer(region, dtype=dtype, count=numel)
