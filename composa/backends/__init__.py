"""Backend selection: which ``Ops`` the layers made now will use.

The current ops live in a ``ContextVar`` (so ``use_ops`` blocks are local to a
thread or asyncio task) with a process-wide default behind it: a new thread sees
whatever ``set_current_ops`` last installed as the default, not silently NumpyOps.
"""
import contextlib
import contextvars
import threading
from typing import Any, Dict, Iterator, Optional, Type

from .cupy_ops import CupyOps, has_cupy, has_cupy_gpu
from .numpy_ops import NumpyOps
from .ops import Ops

__all__ = [
    "Ops",
    "NumpyOps",
    "CupyOps",
    "get_ops",
    "get_array_ops",
    "set_current_ops",
    "get_current_ops",
    "use_ops",
    "has_cupy",
    "has_cupy_gpu",
]

_context_ops: contextvars.ContextVar[Optional[Ops]] = contextvars.ContextVar(
    "composa_current_ops", default=None
)
_default_lock = threading.Lock()
_process_default: Dict[str, Ops] = {}


def _registered_ops() -> Dict[str, Type[Ops]]:
    return {cls.name: cls for cls in (NumpyOps, CupyOps)}


def get_ops(name: str, **kwargs: Any) -> Ops:
    """A new Ops by backend name: "numpy", "cupy", or "cpu" (the best CPU backend)."""
    if name == "cpu":
        name = "numpy"
    elif name == "gpu":
        name = "cupy"
    classes = _registered_ops()
    if name not in classes:
        raise ValueError(f"Invalid backend: {name!r}; choose one of {sorted(classes)} or 'cpu'")
    return classes[name](**kwargs)


def get_array_ops(arr: Any) -> Ops:
    """The Ops that owns `arr`: CupyOps for cupy arrays, else NumpyOps."""
    if type(arr).__module__.startswith("cupy"):
        return CupyOps()
    return _NUMPY_OPS


def set_current_ops(ops: Ops) -> None:
    """Make `ops` current here and the process default that new threads start with."""
    _context_ops.set(ops)
    with _default_lock:
        _process_default["ops"] = ops


def get_current_ops() -> Ops:
    """The Ops new models use: this context's, else the process default (NumpyOps at start)."""
    ops = _context_ops.get()
    if ops is not None:
        return ops
    with _default_lock:
        return _process_default.setdefault("ops", NumpyOps())


@contextlib.contextmanager
def use_ops(name: str, **kwargs: Any) -> Iterator[Ops]:
    """Within the block (and only in this context), models are made with `get_ops(name)`."""
    token = _context_ops.set(get_ops(name, **kwargs))
    try:
        yield _context_ops.get()  # type: ignore[misc]
    finally:
        _context_ops.reset(token)


_NUMPY_OPS = NumpyOps()
