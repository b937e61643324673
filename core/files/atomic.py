"""Writing a file atomically with the user's normal permissions: the package's one file writer.

The bytes go to a temporary file next to the target, which is renamed over it only when complete,
so Ctrl-C or a crash never leaves a partial file. The temporary file is created with mode 0666
and the process umask applies, as for any file ``open(path, "w")`` creates (0644 under umask 022,
like ComfyUI's own outputs); ``tempfile.mkstemp`` would make it owner-only (0600).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import BinaryIO

Writer = Callable[[BinaryIO], object]  # writes the whole content to the open binary file


def write_atomic(path: str, content: bytes | Writer) -> str:
    """Write ``content`` (bytes, or a function that writes to the open file) to ``path``; returns ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(content, (bytes, bytearray, memoryview)):
                f.write(content)
            else:
                content(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


__all__ = ["Writer", "write_atomic"]
