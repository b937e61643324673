"""Listeners told after each successful reconcile (the ComfyUI panel subscribes through nodes/host.py).

Listeners get an immutable PipelineSnapshot on the executor thread; they must be quick and
must not touch the pipeline. A failing listener is logged and never breaks a run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

_listeners: list[Callable] = []
_lock = threading.Lock()


def subscribe(listener: Callable) -> Callable:
    with _lock:
        if listener not in _listeners:
            _listeners.append(listener)
    return listener


def unsubscribe(listener: Callable) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def publish(snapshot) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(snapshot)
        except Exception:  # a broken listener must never fail generation
            log.exception("loradeck: snapshot listener %r failed", listener)
