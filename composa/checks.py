"""Checks and error-path helpers that layers and ops share.

:func:`describe` words an input for a message, :func:`check_input_width` and
:func:`check_gradient_shape` guard a layer's forward and backprop, and
:func:`child_errors` adds a parent's label to the path of errors from a child.

How a layer path is built, in forward and in backprop alike: a parent runs child
``i`` as ``layer._func(layer, X, is_train=is_train)`` (and later its callback) in
``try: ... except ComposaError as error: error.push_parent(label, i, layer.name)``,
which names the child when the error names no layer yet and then the parent. Only
the root is run by ``Model.__call__``, which names itself with
:func:`name_unnamed_error` in both passes. Forward and backprop use this inline
``try`` (free in CPython 3.11 when nothing raises), not :func:`child_errors`, whose
generator costs about a microsecond per use; initialisation uses the latter.
"""
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import numpy

from .errors import ComposaError, ShapeMismatchError

__all__ = [
    "describe",
    "check_input_width",
    "check_gradient_shape",
    "check_padded",
    "child_errors",
    "name_unnamed_error",
]


@contextmanager
def child_errors(parent_label: str, child_index: Optional[int] = None) -> Iterator[None]:
    """Add `parent_label` (and the child's index) to the path of errors from a child."""
    try:
        yield
    except ComposaError as error:
        error.push_parent(parent_label, child_index)
        raise


def name_unnamed_error(error: ComposaError, layer_name: str) -> None:
    """Name `layer_name` as the source of `error` if it names no layer yet."""
    if not error.layer_path:
        error.layer_path.append(layer_name)
        error.args = (str(error),)


def describe(value: Any) -> str:
    """A short description of an input for error messages: type, shape and dtype."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"an array of shape {tuple(shape)} and dtype {getattr(value, 'dtype', '?')}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def check_input_width(model: Any, X: Any, expected: int, dim: str = "nI") -> Any:
    """Return `X` if it is a 2d array of width `expected`, else raise ShapeMismatchError.

    An empty batch of unknown width (e.g. ``(0, 0)`` from an empty list of
    sequences) is returned reshaped to ``(0, expected)``: it has no rows to disagree.
    """
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2 or shape[1] != expected:
        if shape is not None and tuple(shape) == (0, 0):
            return X.reshape((0, expected))
        raise ShapeMismatchError(
            f"expected input width {dim}={expected}, got {describe(X)}", layer=model.name
        )
    if X.dtype.kind != "f":
        raise ShapeMismatchError(
            f"expected a float array, got {describe(X)}; convert it with X.astype('float32')",
            layer=model.name,
        )
    return X


def check_gradient_shape(model: Any, dY: Any, Y: Any) -> None:
    """Raise ShapeMismatchError unless the gradient `dY` has the shape of the output `Y`."""
    if getattr(dY, "shape", None) != Y.shape:
        raise ShapeMismatchError(
            f"backprop expected a gradient of shape {tuple(Y.shape)}, got {describe(dY)}",
            layer=model.name,
        )


def check_padded(layer: str, Xp: Any) -> None:
    """Raise unless a Padded's size_at_t, lengths and indices describe its (T, B, ...) data.

    Layers that pack by `lengths` would otherwise silently ignore a size_at_t that runs past
    the batch or indices that point outside it.
    """
    if getattr(Xp.data, "ndim", 0) < 3:
        raise ShapeMismatchError(f"expected Padded data of shape (T, B, ...), got {describe(Xp.data)}", layer=layer)
    n_steps, batch_size = int(Xp.data.shape[0]), int(Xp.data.shape[1])
    size_at_t, lengths, indices = (_host(values) for values in (Xp.size_at_t, Xp.lengths, Xp.indices))
    for name, values, size in (
        ("size_at_t", size_at_t, n_steps),
        ("lengths", lengths, batch_size),
        ("indices", indices, batch_size),
    ):
        if values.shape != (size,) or (values.size and values.dtype.kind not in "iu"):
            raise ShapeMismatchError(
                f"Padded {name} must be {size} integers for data of shape {tuple(Xp.data.shape)}, "
                f"got {describe(values)}",
                layer=layer,
            )
    if batch_size and not numpy.array_equal(numpy.sort(indices), numpy.arange(batch_size)):
        raise ShapeMismatchError(
            f"Padded indices must be a permutation of range({batch_size}), got {indices.tolist()[:10]}",
            layer=layer,
        )
    expected = (lengths[None, :] > numpy.arange(n_steps)[:, None]).sum(axis=1)
    if not numpy.array_equal(size_at_t, expected):
        raise ShapeMismatchError(
            f"Padded size_at_t {size_at_t.tolist()[:10]} does not match the lengths {lengths.tolist()[:10]} "
            f"(a batch of {batch_size} sequences, {n_steps} steps)",
            layer=layer,
        )


def _host(values: Any) -> Any:
    """A numpy copy of a (possibly cupy) index array."""
    return numpy.asarray(values.get() if hasattr(values, "get") and not isinstance(values, numpy.ndarray) else values)
