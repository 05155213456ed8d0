"""Argument checks that the ``Ops`` methods of every backend share.

Each check takes the name of the op first, so that its error says which call got
what: ``reduce_sum: lengths sum to 5 but the array has 4 rows``.
"""
from typing import Any, Optional, Tuple

import numpy

from ..checks import describe
from ..errors import OpIndexError, ShapeMismatchError

__all__ = [
    "check_ndim",
    "check_same_shape",
    "check_fits",
    "check_lengths",
    "check_indices",
    "check_gemm",
    "check_scatter_values",
    "default_lengths",
]

# Arrays of ids may hold any integer type; every other array must hold numbers.
_ID_ARGUMENTS = ("indices", "which", "ids", "keys")


def check_ndim(op: str, array: Any, ndim: int, name: str) -> None:
    """Raise unless `array` is an `ndim`-dimensional array of numbers."""
    shape = getattr(array, "shape", None)
    if shape is None or len(shape) != ndim:
        raise ShapeMismatchError(f"{op}: expected a {ndim}d array for {name}, got {describe(array)}")
    if name not in _ID_ARGUMENTS and array.dtype.kind not in "fiu":
        raise ShapeMismatchError(f"{op}: expected numbers for {name}, got dtype {array.dtype}")


def check_same_shape(op: str, a: Any, b: Any, name_a: str = "dY", name_b: str = "X") -> None:
    """Raise unless `a` and `b` have the same shape (a gradient and what it is the gradient of)."""
    if tuple(a.shape) != tuple(b.shape):
        raise ShapeMismatchError(
            f"{op}: {name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_fits(op: str, host_lengths: Any, n_steps: int) -> None:
    """Raise unless every sequence length fits in the `n_steps` steps of a padded array."""
    if host_lengths.size and int(host_lengths.max()) > n_steps:
        raise ShapeMismatchError(
            f"{op}: a sequence has length {int(host_lengths.max())} but the data is padded to {n_steps} steps"
        )


def check_lengths(
    ops: Any,
    op: str,
    lengths: Any,
    n_rows: Optional[int],
    *,
    n_seqs: Optional[int] = None,
    positive: bool = False,
) -> Any:
    """`lengths` as a host int64 array, after checking rank, dtype, sign and total (`ops` fetches it)."""
    host = ops.to_numpy(lengths) if hasattr(lengths, "shape") else numpy.asarray(lengths)
    if host.ndim != 1:
        raise ShapeMismatchError(f"{op}: lengths must be 1-dimensional, got shape {tuple(host.shape)}")
    if host.size and host.dtype.kind not in "iu":
        raise ShapeMismatchError(f"{op}: lengths must be integers, got dtype {host.dtype}")
    host = host.astype("int64", copy=False)
    if host.size and host.min() < (1 if positive else 0):
        bound = "positive" if positive else "non-negative"
        raise ShapeMismatchError(f"{op}: lengths must be {bound}, got min length {int(host.min())}")
    if n_seqs is not None and host.shape[0] != n_seqs:
        raise ShapeMismatchError(f"{op}: {n_seqs} sequences in the array but {host.shape[0]} lengths")
    total = int(host.sum()) if n_rows is not None else 0
    if n_rows is not None and total != n_rows:  # too many is an IndexError too, as in the reference
        error = OpIndexError if total > n_rows else ShapeMismatchError
        raise error(f"{op}: lengths sum to {total} but the array has {n_rows} rows")
    return host


def check_indices(op: str, indices: Any, n_rows: int) -> None:
    """Raise unless `indices` are integers naming rows of a table with `n_rows` rows."""
    if indices.dtype.kind not in "iu":
        raise ShapeMismatchError(f"{op}: indices must be integers, got dtype {indices.dtype}")
    if indices.size:
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= n_rows:
            raise OpIndexError(
                f"{op}: index out of bounds: indices span [{low}, {high}] but the table has {n_rows} rows"
            )


def check_gemm(x: Any, y: Any, trans1: bool, trans2: bool) -> Tuple[Any, Any]:
    """The operands ``op(x)``, ``op(y)`` of a gemm, after checking they are 2d and their inner sizes agree."""
    if getattr(x, "ndim", None) != 2 or getattr(y, "ndim", None) != 2:
        raise ShapeMismatchError(
            f"gemm expects 2d arrays, got shapes {getattr(x, 'shape', None)} and {getattr(y, 'shape', None)}"
        )
    a = x.T if trans1 else x
    b = y.T if trans2 else y
    if a.shape[1] != b.shape[0]:
        raise ShapeMismatchError(f"gemm: inner dimensions differ: {tuple(a.shape)} @ {tuple(b.shape)}")
    return a, b


def check_gemm_out(a: Any, b: Any, out: Any) -> None:
    """Raise unless `out` is an array of the shape of ``a @ b`` (for an accumulating gemm)."""
    expected = (a.shape[0], b.shape[1])
    if out is None or tuple(out.shape) != expected:
        raise ShapeMismatchError(
            f"gemm: accumulate needs out of shape {expected}, got {None if out is None else tuple(out.shape)}"
        )


def check_scatter_values(table: Any, indices: Any, values: Any) -> None:
    """Raise unless `values` has one row of `table`'s shape per index: ``indices.shape + table.shape[1:]``,
    or a shape that broadcasts to it (as for ``numpy.add.at``), e.g. (B, 1, O) for (B, K) ids."""
    expected = tuple(indices.shape) + tuple(table.shape[1:])
    shape = tuple(values.shape)
    broadcasts = len(shape) == len(expected) and all(v in (1, e) for v, e in zip(shape, expected))
    if not broadcasts:
        raise ShapeMismatchError(
            f"scatter_add: values should have shape {expected} for indices of shape "
            f"{tuple(indices.shape)} and table {tuple(table.shape)}, got {shape}"
        )


def default_lengths(lengths: Any, n_rows: int) -> Any:
    """`lengths`, or one sequence of all `n_rows` rows when it is None."""
    return numpy.asarray([n_rows], dtype="int64") if lengths is None else lengths
