"""What the LoRA Loader (LoRA Deck) keeps per runtime: its targets (one per ComfyUI model) and the stacks it
applied, by the signature of the node in its prompt, for Save Image (LoRA Deck) to write their hashes."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

from .targets import Targets

MAX_STACKS = 64


class Applied:
    """signature -> (StackSpec, family) of each stack a LoRA Loader applied (newest kept)."""

    def __init__(self, limit: int = MAX_STACKS):
        self.limit = limit
        self._items: OrderedDict[str, tuple] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, signature: str, stack, family) -> None:
        with self._lock:
            self._items[signature] = (stack, family)
            self._items.move_to_end(signature)
            while len(self._items) > self.limit:
                self._items.popitem(last=False)

    def find(self, signature: str):
        with self._lock:
            return self._items.get(signature)


class NativeState:
    def __init__(self):
        self.targets = Targets()
        self.applied = Applied()


_states: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def of(runtime) -> NativeState:
    with _lock:
        state = _states.get(runtime)
        if state is None:
            state = _states[runtime] = NativeState()
        return state
