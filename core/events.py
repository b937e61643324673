"""Snapshot listeners, told after each successful reconcile, and the recent snapshots kept for the panel.

Listeners get an immutable PipelineSnapshot on the thread that applied the stack; they must be quick
and must not touch the pipeline. A failing listener is logged and never breaks a run.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

RECENT_MAX = 20


class EventBus:
    def __init__(self):
        self._listeners: list[Callable] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Callable) -> Callable:
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)
        return listener

    def unsubscribe(self, listener: Callable) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def publish(self, snapshot) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(snapshot)
            except Exception:  # a broken listener must never fail generation
                log.exception("loradeck: snapshot listener %r failed", listener)


class RecentSnapshots:
    """The last few snapshots published after a reconcile (any pipeline, Python-API decks included)."""

    def __init__(self, maxlen: int = RECENT_MAX):
        self._items: deque = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def record(self, snapshot) -> None:
        with self._lock:
            self._items.append(snapshot)

    def items(self) -> list:
        """Newest first."""
        with self._lock:
            return list(reversed(self._items))
