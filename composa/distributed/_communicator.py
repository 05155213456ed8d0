"""The communicator seam: what a data-parallel training step asks of the other processes.

`Communicator` is the single-process one: every collective is the identity, so code
written against it runs unchanged in one process. `TorchCommunicator` (``_torch.py``)
overrides the four primitives (`_all_reduce`, `_broadcast`, `broadcast_bytes`,
`all_gather_bytes`) with torch.distributed; everything built on them lives here.
"""
import contextlib
import json
import time
import zlib
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy

from ..errors import DistributedError
from ..model import Model
from ._layout import Layout, describe, model_signature, param_slots

__all__ = ["Communicator", "CommStats", "shard_bounds"]


class CommStats:
    """Time spent and values reduced by `all_reduce_gradients`, for benchmarks and progress."""

    def __init__(self) -> None:
        self.steps = 0
        self.seconds = 0.0
        self.values = 0

    def add(self, seconds: float, values: int) -> None:
        """Count one `all_reduce_gradients` call that took `seconds` and reduced `values` numbers."""
        self.steps += 1
        self.seconds += seconds
        self.values += values

    def reset(self) -> None:
        """Set every counter back to zero."""
        self.__init__()  # type: ignore[misc]


class Communicator:
    """One process: every collective returns its input (a world of one); subclasses span several."""

    rank = 0
    world_size = 1
    backend = "none"

    def __init__(self) -> None:
        self.stats = CommStats()
        self._sync = True
        self._layout: Optional[Layout] = None

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that writes files and prints."""
        return self.rank == 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, world_size={self.world_size}, backend={self.backend!r})"

    # What a training step calls -----------------------------------------------------

    def shard(self, items: Any) -> Any:
        """This rank's part of a global batch (array, list or index array): a contiguous slice by position."""
        start, end = shard_bounds(len(items), self.rank, self.world_size)
        return items if (start, end) == (0, len(items)) else items[start:end]

    def broadcast_params(self, model: Model) -> None:
        """Give every rank rank 0's params (native and torch) and torch buffers, in place."""
        if self.world_size == 1:
            return
        layout = self._layout_for(model)
        buffers = layout.param_buffers()
        for buffer in buffers:
            self._broadcast(buffer, "the broadcast of the params from rank 0")
        layout.set_params(buffers)

    def all_reduce_gradients(self, model: Model, share: Optional[float] = None) -> None:
        """Replace every gradient by the weighted sum over ranks, from flat buffers in buckets.

        `share` is this rank's fraction of the global batch (its rows / all rows), so the
        result is the global batch's mean gradient even when the shards differ in size;
        None means 1 / world_size, torch DDP's average. The same reduction gives every
        rank rank 0's torch buffers (BatchNorm's running statistics, as DDP's
        broadcast_buffers) and shares grad scalers' overflows, so every rank skips the
        same steps. Skipped inside :meth:`no_sync`.
        """
        if self.world_size == 1 or not self._sync:
            return
        started = time.perf_counter()
        layout = self._layout_for(model)
        layout.load_grads(self.is_main)
        layout.scale_grads(1.0 / self.world_size if share is None else share)
        for group in layout.groups:
            self._all_reduce(group.buffer, "the all-reduce of the gradients")
        layout.store_grads()
        self.stats.add(time.perf_counter() - started, layout.n_values)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside the block, `all_reduce_gradients` does nothing: gradients accumulate locally (DDP's no_sync)."""
        previous, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = previous

    def sum(self, values: Sequence[float]) -> numpy.ndarray:
        """The element-wise sum over ranks of a few numbers (float64), e.g. correct counts."""
        array = numpy.asarray(values, dtype="float64").copy()
        if self.world_size > 1:
            self._all_reduce(array, "the sum of the metrics")
        return array

    # Start-up and checkpoint checks -----------------------------------------------------

    def check_same(self, model: Model, *, config: Optional[Dict[str, Any]] = None, data: Sequence[Any] = ()) -> None:
        """Raise DistributedError on every rank when the ranks' param shapes, configs or data differ."""
        if self.world_size == 1:
            return
        mine = {
            "params": describe(param_slots(model)),
            "config": _flatten(config or {}),
            "data": [zlib.crc32(numpy.ascontiguousarray(array).data) for array in data],
        }
        everyone = [json.loads(text) for text in self.all_gather_bytes(json.dumps(mine).encode("utf8"))]
        problem = first_difference(everyone)
        if problem:
            raise DistributedError(f"the processes of this run do not match: {problem}", on_every_rank=True)

    def check_in_sync(self, model: Model) -> None:
        """Raise DistributedError on every rank when their weights are no longer bit-identical."""
        if self.world_size == 1:
            return
        layout = self._layout_for(model)
        everyone = [json.loads(text) for text in self.all_gather_bytes(json.dumps(layout.checksums()).encode())]
        for rank, checksums in enumerate(everyone[1:], start=1):
            for slot, mine, theirs in zip(layout.slots, everyone[0], checksums):
                if mine != theirs:
                    raise DistributedError(
                        f"the ranks' weights have drifted apart: {slot.label} differs between rank 0 and "
                        f"rank {rank}; every rank must apply identical updates (same optimizer, same code)",
                        on_every_rank=True,
                    )

    def gather_objects(self, obj: Any) -> List[Any]:
        """`obj` (JSON data) from every rank, in rank order."""
        return [json.loads(text) for text in self.all_gather_bytes(json.dumps(obj).encode("utf8"))]

    # Primitives a multi-process communicator overrides ---------------------------------------

    def broadcast_bytes(self, data: Optional[bytes]) -> bytes:
        """Rank 0's `data` on every rank (other ranks pass None)."""
        return data or b""

    def all_gather_bytes(self, data: bytes) -> List[bytes]:
        """Every rank's `data`, in rank order."""
        return [data]

    def _all_reduce(self, buffer: Any, what: str) -> None:
        """Sum `buffer` over ranks, in place."""

    def _broadcast(self, buffer: Any, what: str) -> None:
        """Overwrite `buffer` with rank 0's, in place."""

    def report_failure(self, error: BaseException) -> bool:
        """Whether this rank should print `error`: only the first rank to fail does."""
        return True

    def close(self) -> None:
        """Leave the group; the communicator cannot be used afterwards."""

    def _layout_for(self, model: Model) -> Layout:
        if self._layout is None or self._layout.signature != model_signature(model):
            self._layout = Layout(model)
        return self._layout


def shard_bounds(n_items: int, rank: int, world_size: int) -> "tuple[int, int]":
    """``(start, end)`` of rank's contiguous share of `n_items`; the first ``n_items % world_size`` ranks get one more."""
    base, extra = divmod(n_items, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def first_difference(everyone: List[Dict[str, Any]]) -> str:
    """What first differs between rank 0's description and another rank's ("" when none does)."""
    reference = everyone[0]
    for rank, other in enumerate(everyone[1:], start=1):
        problems = [
            _params_difference(reference["params"], other["params"], rank),
            _config_difference(reference["config"], other["config"], rank),
            "" if reference["data"] == other["data"] else
            f"rank {rank} read different training data from rank 0 (checksums {other['data']} vs "
            f"{reference['data']}); every process must read the same [data]",
        ]
        found = [problem for problem in problems if problem]
        if found:
            return "; ".join(found)
    return ""


def _params_difference(reference: List[Any], other: List[Any], rank: int) -> str:
    for (label, shape, dtype), (other_label, other_shape, other_dtype) in zip(reference, other):
        if label != other_label:
            return f"rank {rank}'s model has param {other_label} where rank 0's has {label}"
        if (shape, dtype) != (other_shape, other_dtype):
            return (
                f"param {label} has shape {tuple(other_shape)} ({other_dtype}) on rank {rank} "
                f"but {tuple(shape)} ({dtype}) on rank 0"
            )
    if len(reference) != len(other):
        longer = reference if len(reference) > len(other) else other
        return (
            f"rank {rank}'s model has {len(other)} params, rank 0's {len(reference)} "
            f"(the first unmatched one is {longer[min(len(reference), len(other))][0]})"
        )
    return ""


def _config_difference(reference: Dict[str, Any], other: Dict[str, Any], rank: int) -> str:
    for key in sorted(set(reference) | set(other)):
        if reference.get(key) != other.get(key):
            return (
                f"their configs differ at {key}: {other.get(key, '(missing)')} on rank {rank}, "
                f"{reference.get(key, '(missing)')} on rank 0"
            )
    return ""


def _flatten(section: Dict[str, Any], prefix: str = "") -> Dict[str, str]:
    """``{"model.*.hidden.nO": "64", ...}``: a nested config as dotted keys with JSON values."""
    flat: Dict[str, str] = {}
    for key, value in section.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = json.dumps(value, default=str)
    return flat
