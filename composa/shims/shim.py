"""Shim: the interface a Model uses to drive a model from another framework.

A ``Model`` keeps shims in ``model.shims`` and talks to them when it updates
(``finish_update``), swaps params (``use_params``), copies, moves between devices
(``to_device``) and serialises (the shim's bytes are nested in the model's msgpack).
Shim params are optimised under keys ``(shim.id, param_name)``, the same key space
as model params ``(model.id, name)``, so ids come from the same counter as model ids.
"""
import contextlib
import copy
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, Union

from .._ids import next_id
from ..serialize import read_bytes, write_bytes_atomic

__all__ = ["Shim"]


class Shim:
    """Base class for wrappers of external models; subclasses fill in the abstract methods."""

    global_id: int = 0  # the last id handed out

    def __init__(self, model: Any, config: Optional[Dict[str, Any]] = None, optimizer: Any = None) -> None:
        self.id = Shim._next_id()
        self._model = model
        self.cfg = dict(config or {})
        self._optimizer = optimizer

    @staticmethod
    def _next_id() -> int:
        shim_id = next_id()
        Shim.global_id = shim_id
        return shim_id

    def __call__(self, inputs: Any, is_train: bool) -> Tuple[Any, Callable[..., Any]]:
        """Run the wrapped model; return the output and a callback from d(output) to d(input)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement __call__")

    def predict(self, fwd_args: Any) -> Any:
        """The output of the wrapped model in inference mode."""
        return self(fwd_args, is_train=False)[0]

    def begin_update(self, fwd_args: Any) -> Tuple[Any, Callable[..., Any]]:
        """Run the wrapped model in training mode: output and backprop callback."""
        return self(fwd_args, is_train=True)

    def finish_update(self, optimizer: Callable) -> None:
        """Update the wrapped model's params with `optimizer` under keys (shim.id, name)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement finish_update")

    @contextlib.contextmanager
    def use_params(self, params: Dict[Tuple[int, str], Any]) -> Iterator[None]:
        """Temporarily use the params keyed (shim.id, name) in `params`; the base has none."""
        yield

    def param_count(self) -> int:
        """How many trainable values the wrapped model holds (shown by ``print(model)``)."""
        return 0

    def copy(self) -> "Shim":
        """A deep copy with a new id, so that its params get their own optimizer state."""
        copied = copy.deepcopy(self)
        copied.id = Shim._next_id()
        return copied

    def to_device(self, device_type: str, device_id: int) -> None:
        """Move the wrapped model to "cpu" or "gpu" `device_id`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement to_device")

    def to_gpu(self, device_id: int) -> None:
        """Move the wrapped model to CUDA GPU `device_id` (`to_device("gpu", device_id)`)."""
        self.to_device("gpu", device_id)

    def to_cpu(self) -> None:
        """Move the wrapped model to the CPU (`to_device("cpu", -1)`)."""
        self.to_device("cpu", -1)

    def to_bytes(self) -> bytes:
        """Serialise the wrapped model (and the shim's config) to bytes."""
        raise NotImplementedError(f"{type(self).__name__} does not implement to_bytes")

    def from_bytes(self, bytes_data: bytes) -> "Shim":
        """Load bytes from :meth:`to_bytes`; returns the shim."""
        raise NotImplementedError(f"{type(self).__name__} does not implement from_bytes")

    def to_disk(self, path: Union[str, Path]) -> None:
        """Write :meth:`to_bytes` to one file, atomically."""
        write_bytes_atomic(path, self.to_bytes())

    def from_disk(self, path: Union[str, Path]) -> "Shim":
        """Load a file written by :meth:`to_disk`."""
        return self.from_bytes(read_bytes(path, what="shim"))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id}, model={type(self._model).__name__})"
