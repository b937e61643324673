"""The sweep's progress line: cells done of all, rate, ETA, failures (stderr; one line redrawn on a terminal,
a line every ``every`` seconds otherwise)."""

from __future__ import annotations

import sys
import time


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    def __init__(self, total: int, skipped: int = 0, stream=None, every: float = 10.0, width: int = 28):
        self.total, self.skipped = total, skipped
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every, self.width = every, width
        self.done = self.failed = 0
        self.started = time.monotonic()
        self.first = None  # when the first cell of this run finished (the rate leaves worker start-up out)
        self.shown_at = 0.0
        self.note = ""

    def start(self, note: str = "") -> None:
        self.note = note
        self.started = time.monotonic()
        self.show(force=True)

    def add(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        if self.first is None:
            self.first = (time.monotonic(), self.done)
        self.show()

    def eta(self) -> float | None:
        if self.first is None or self.done >= self.total:
            return None
        since, count = self.first
        elapsed = time.monotonic() - since
        if self.done <= count or elapsed <= 0:  # one cell gives no rate yet: from the start instead
            return (time.monotonic() - self.started) / self.done * (self.total - self.done)
        return elapsed / (self.done - count) * (self.total - self.done)

    def line(self) -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(self.width * fraction)
        bar = "#" * filled + "." * (self.width - filled)
        eta = self.eta()
        parts = [f"[{bar}] {self.done}/{self.total} cells", f"{100 * fraction:.0f}%",
                 f"elapsed {duration(time.monotonic() - self.started)}",
                 f"ETA {duration(eta)}" if eta is not None else ("done" if self.done >= self.total else "ETA --")]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.skipped:
            parts.append(f"{self.skipped} done before")
        if self.note:
            parts.append(self.note)
        return "  ".join(parts)

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        if not (force or self.tty or now - self.shown_at >= self.every or self.done >= self.total):
            return
        self.shown_at = now
        if self.tty:
            self.stream.write("\r\033[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class Silent(Progress):
    def show(self, force: bool = False) -> None:
        pass

    def close(self) -> None:
        pass
