"""with_array / with_array2d: let an array layer run on lists of arrays, Ragged or Padded.

The child sees one contiguous array (all rows of the batch); its output is put
back into the input's container, and gradients travel the same way back.
"""
from functools import partial
from typing import Any, Callable, List, Sequence, Tuple

from ..config import registry
from ..errors import ConfigurationError
from ..model import Model
from ..types import Padded, Ragged
from ._adapters import call_child, call_child_on_rows, empty_list_backprop, make_adapter, rows_of

__all__ = ["with_array", "with_array2d"]


@registry.layers("with_array.v1")
def with_array(layer: Model, pad: int = 0) -> Model:
    """Run `layer` on the rows of a list / Ragged / Padded / array batch, keeping the container.

    Examples:
        >>> import numpy
        >>> from composa import Relu, with_array
        >>> docs = [numpy.zeros((2, 3), dtype="float32"), numpy.zeros((5, 3), dtype="float32")]
        >>> model = with_array(Relu(4)).initialize(X=docs)
        >>> [Y.shape for Y in model.predict(docs)]
        [(2, 4), (5, 4)]
    """
    return _make(layer, pad, forward)


@registry.layers("with_array2d.v1")
def with_array2d(layer: Model, pad: int = 0) -> Model:
    """Like with_array, but the child always sees a 2d array (Padded and Nd arrays are reshaped)."""
    return _make(layer, pad, forward_2d)


def _make(layer: Model, pad: int, forward_func: Callable) -> Model:
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ConfigurationError(f"with_array: pad must be a non-negative int, got {pad!r}")
    to_child = partial(_to_array, forward_func is forward_2d)
    return make_adapter("with_array", layer, forward_func, to_child, attrs={"pad": pad})


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    return _forward(model, X, is_train, as_2d=False)


def forward_2d(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    return _forward(model, X, is_train, as_2d=True)


def _forward(model: Model, X: Any, is_train: bool, as_2d: bool) -> Tuple[Any, Callable]:
    if isinstance(X, Ragged):
        return _ragged_forward(model, X, is_train, as_2d)
    if isinstance(X, Padded):
        return _padded_forward(model, X, is_train, as_2d)
    if isinstance(X, (list, tuple)):
        return _list_forward(model, X, is_train)
    if as_2d and X.ndim != 2:
        return call_child_on_rows(model, "with_array", X, is_train)
    return call_child(model, "with_array", X, is_train)


def _ragged_forward(model: Model, X: Ragged, is_train: bool, as_2d: bool) -> Tuple[Ragged, Callable]:
    lengths = X.lengths
    Y, backprop_layer = call_child(model, "with_array", X.data if as_2d else X.dataXd, is_train)

    def backprop(dY: Ragged) -> Ragged:
        return Ragged(backprop_layer(dY.data if as_2d else dY.dataXd), lengths)

    return Ragged(Y, lengths), backprop


def _padded_forward(model: Model, X: Padded, is_train: bool, as_2d: bool) -> Tuple[Padded, Callable]:
    call = call_child_on_rows if as_2d else call_child
    Y, backprop_layer = call(model, "with_array", X.data, is_train)

    def backprop(dY: Padded) -> Padded:
        return Padded(backprop_layer(dY.data), dY.size_at_t, dY.lengths, dY.indices)

    return Padded(Y, X.size_at_t, X.lengths, X.indices), backprop


def _list_forward(model: Model, Xs: Sequence[Any], is_train: bool) -> Tuple[List[Any], Callable]:
    if len(Xs) == 0:
        return [], empty_list_backprop
    pad = model.attrs["pad"]
    lengths = [len(X) for X in Xs]
    Y, backprop_layer = call_child(model, "with_array", _flatten(model.ops, Xs, pad), is_train)

    def backprop(dYs: List[Any]) -> List[Any]:
        dX = backprop_layer(_flatten(model.ops, dYs, pad))
        return model.ops.unflatten(dX, lengths, pad=pad)

    return model.ops.unflatten(Y, lengths, pad=pad), backprop


def _to_array(as_2d: bool, model: Model, X: Any) -> Any:
    """The array the child sees for batch `X` (used on sample data at initialize)."""
    pad = model.attrs["pad"]
    if isinstance(X, Ragged):
        return X.data if as_2d else X.dataXd
    if isinstance(X, Padded):
        return rows_of(model, X.data) if as_2d else X.data
    if isinstance(X, (list, tuple)):
        return _flatten(model.ops, X, pad) if len(X) else None
    if as_2d and X.ndim > 2:
        return rows_of(model, X)
    return X


def _flatten(ops: Any, Xs: Sequence[Any], pad: int) -> Any:
    """Rows of all items, with `pad` zero rows before each item and after the last.

    Unlike ``ops.flatten`` with padding, empty items keep their padding rows, so the
    result always lines up with ``ops.unflatten(..., lengths, pad=pad)``.
    """
    if pad == 0:
        return ops.flatten(Xs)
    padding = ops.alloc((pad,) + tuple(Xs[0].shape[1:]), dtype=Xs[0].dtype)
    pieces = [padding]
    for X in Xs:
        pieces.extend((X, padding))
    return ops.xp.concatenate(pieces, axis=0)
