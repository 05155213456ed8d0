"""One process-wide id counter for model nodes and shims.

Optimizers key their state by ``(id, param_name)`` for nodes and shims alike, so
both must draw from the same counter: separate counters could give a node and a
shim the same id and make their params share optimizer state.
"""
import itertools
import threading

_lock = threading.Lock()
_counter = itertools.count(1)


def next_id() -> int:
    """A new id, unique in this process and thread-safe."""
    with _lock:
        return next(_counter)
