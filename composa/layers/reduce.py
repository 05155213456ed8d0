"""Sequence reductions: pool each sequence of a Ragged batch into one row.

``reduce_sum``, ``reduce_mean`` and ``reduce_max`` pool over all rows of a
sequence; ``reduce_first`` and ``reduce_last`` pick one row. All map
``Ragged (T, O)`` with ``B`` lengths to ``Floats2d (B, O)``; backprop returns a
``Ragged`` with the original lengths. Sums and means of an empty sequence are
zero rows; max, first and last of an empty sequence have no value and raise.
"""
from typing import Any, Callable, Tuple

from ..config import registry
from ..checks import describe
from ..errors import ShapeMismatchError
from ..model import Model
from ..types import Floats2d, Ragged

__all__ = ["reduce_sum", "reduce_mean", "reduce_max", "reduce_first", "reduce_last"]

InT = Ragged
OutT = Floats2d


@registry.layers("reduce_sum.v1")
def reduce_sum() -> Model[InT, OutT]:
    """Sum the rows of each sequence: Ragged (T, O) -> (B, O); empty sequences give zeros."""
    return Model("reduce_sum", forward_sum)


@registry.layers("reduce_mean.v1")
def reduce_mean() -> Model[InT, OutT]:
    """Average the rows of each sequence: Ragged (T, O) -> (B, O); empty sequences give zeros.

    Examples:
        >>> import numpy
        >>> from composa import Ragged, reduce_mean
        >>> batch = Ragged(numpy.arange(10, dtype="float32").reshape(5, 2), numpy.asarray([2, 3], dtype="int32"))
        >>> reduce_mean().predict(batch).tolist()
        [[1.0, 2.0], [6.0, 7.0]]
    """
    return Model("reduce_mean", forward_mean)


@registry.layers("reduce_max.v1")
def reduce_max() -> Model[InT, OutT]:
    """Column-wise maximum over the rows of each sequence: Ragged (T, O) -> (B, O)."""
    return Model("reduce_max", forward_max)


@registry.layers("reduce_first.v1")
def reduce_first() -> Model[InT, OutT]:
    """The first row of each sequence: Ragged (T, O) -> (B, O)."""
    return Model("reduce_first", forward_first)


@registry.layers("reduce_last.v1")
def reduce_last() -> Model[InT, OutT]:
    """The last row of each sequence: Ragged (T, O) -> (B, O)."""
    return Model("reduce_last", forward_last)


def forward_sum(model: Model[InT, OutT], Xr: InT, is_train: bool) -> Tuple[OutT, Callable]:
    check_ragged(model, Xr, allow_empty=True)
    lengths = Xr.lengths
    Y = model.ops.reduce_sum(Xr.data, lengths)
    return Y, backprop_pooled(model, Y, lengths, lambda dY: model.ops.backprop_reduce_sum(dY, lengths))


def forward_mean(model: Model[InT, OutT], Xr: InT, is_train: bool) -> Tuple[OutT, Callable]:
    check_ragged(model, Xr, allow_empty=True)
    lengths = Xr.lengths
    Y = model.ops.reduce_mean(Xr.data, lengths)
    return Y, backprop_pooled(model, Y, lengths, lambda dY: model.ops.backprop_reduce_mean(dY, lengths))


def forward_max(model: Model[InT, OutT], Xr: InT, is_train: bool) -> Tuple[OutT, Callable]:
    check_ragged(model, Xr, allow_empty=False)
    lengths = Xr.lengths
    Y, which = model.ops.reduce_max(Xr.data, lengths)
    return Y, backprop_pooled(model, Y, lengths, lambda dY: model.ops.backprop_reduce_max(dY, which, lengths))


def forward_first(model: Model[InT, OutT], Xr: InT, is_train: bool) -> Tuple[OutT, Callable]:
    check_ragged(model, Xr, allow_empty=False)
    Y, starts_ends = model.ops.reduce_first(Xr.data, Xr.lengths)
    return Y, backprop_pooled(model, Y, Xr.lengths, lambda dY: model.ops.backprop_reduce_first(dY, starts_ends))


def forward_last(model: Model[InT, OutT], Xr: InT, is_train: bool) -> Tuple[OutT, Callable]:
    check_ragged(model, Xr, allow_empty=False)
    Y, lasts = model.ops.reduce_last(Xr.data, Xr.lengths)
    return Y, backprop_pooled(model, Y, Xr.lengths, lambda dY: model.ops.backprop_reduce_last(dY, lasts))


def backprop_pooled(
    model: Model, Y: OutT, lengths: Any, backprop_rows: Callable[[OutT], Any]
) -> Callable[[OutT], InT]:
    """The backprop of a pooling that gave `Y`: check dY, then `backprop_rows(dY)` as a Ragged."""
    shape, dtype = Y.shape, Y.dtype

    def backprop(dY: OutT) -> InT:
        check_gradient(model, dY, shape, dtype)
        if shape[0] == 0:
            return Ragged(model.ops.alloc2f(0, shape[1], dtype=dtype), lengths)
        return Ragged(backprop_rows(dY), lengths)

    return backprop


def check_ragged(model: Model, Xr: Any, *, allow_empty: bool) -> None:
    """Raise a clear error unless `Xr` is a Ragged of float rows with valid lengths."""
    if not isinstance(Xr, Ragged):
        raise ShapeMismatchError(f"expected a Ragged batch, got {describe(Xr)}", layer=model.name)
    if Xr.data.dtype.kind != "f":
        raise ShapeMismatchError(
            f"expected float data, got a Ragged of dtype {Xr.data.dtype}", layer=model.name
        )
    if len(Xr.lengths) == 0:
        return
    shortest = int(Xr.lengths.min())
    if shortest < 0:
        raise ShapeMismatchError(f"sequence lengths must be >= 0, got {shortest}", layer=model.name)
    if shortest == 0 and not allow_empty:
        empty = int((Xr.lengths == 0).sum())
        raise ShapeMismatchError(
            f"{empty} of {len(Xr.lengths)} sequences are empty, and an empty sequence has no "
            f"{model.name.split('_', 1)[1]} row; drop empty sequences or use reduce_sum/reduce_mean",
            layer=model.name,
        )


def check_gradient(model: Model, dY: Any, shape: Tuple[int, ...], dtype: Any) -> None:
    """Raise a clear error unless the output gradient has the output's shape and dtype."""
    if getattr(dY, "shape", None) != shape:
        raise ShapeMismatchError(
            f"shape mismatch in backprop: the output was {shape}, the gradient is {describe(dY)}",
            layer=model.name,
        )
    if dY.dtype != dtype:
        raise ShapeMismatchError(
            f"type mismatch in backprop: the output was {dtype}, the gradient is {dY.dtype}",
            layer=model.name,
        )
