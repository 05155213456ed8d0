"""with_array / with_array2d: let an array layer run on lists of arrays, Ragged or Padded.

The child sees one contiguous array (all rows of the batch); its output is put
back into the input's container, and gradients travel the same way back.
"""
from typing import Any, Callable, List, Optional, Tuple

from ..config import registry
from ..errors import ConfigurationError, child_errors
from ..model import Model
from ..types import Padded, Ragged
from .chain import copy_child_dims

__all__ = ["with_array", "with_array2d"]


@registry.layers("with_array.v1")
def with_array(layer: Model, pad: int = 0) -> Model:
    """Run `layer` on the rows of a list / Ragged / Padded / array batch, keeping the container."""
    return _make(layer, pad, forward)


@registry.layers("with_array2d.v1")
def with_array2d(layer: Model, pad: int = 0) -> Model:
    """Like with_array, but the child always sees a 2d array (Padded and Nd arrays are reshaped)."""
    return _make(layer, pad, forward_2d)


def _make(layer: Model, pad: int, forward_func: Callable) -> Model:
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ConfigurationError(f"with_array: pad must be a non-negative int, got {pad!r}")
    return Model(
        f"with_array({layer.name})",
        forward_func,
        init=init,
        dims={name: layer.maybe_get_dim(name) for name in layer.dim_names},
        attrs={"pad": pad},
        layers=[layer],
    )


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    if isinstance(X, Ragged):
        return _ragged_forward(model, X, is_train, as_2d=False)
    if isinstance(X, Padded):
        return _padded_forward(model, X, is_train, as_2d=False)
    if isinstance(X, (list, tuple)):
        return _list_forward(model, X, is_train)
    with child_errors("with_array"):
        return model.layers[0](X, is_train=is_train)


def forward_2d(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    if isinstance(X, Ragged):
        return _ragged_forward(model, X, is_train, as_2d=True)
    if isinstance(X, Padded):
        return _padded_forward(model, X, is_train, as_2d=True)
    if isinstance(X, (list, tuple)):
        return _list_forward(model, X, is_train)
    return _nd_array_forward(model, X, is_train)


def init(model: Model, X: Optional[Any] = None, Y: Optional[Any] = None) -> Model:
    """Initialise the child on the batches as it will see them, then mirror its dims."""
    as_2d = model._func is forward_2d
    pad = model.attrs["pad"]
    layer = model.layers[0]
    with child_errors("with_array"):
        layer.initialize(
            X=_to_array(model, X, pad, as_2d) if X is not None else None,
            Y=_to_array(model, Y, pad, as_2d) if Y is not None else None,
        )
    copy_child_dims(model, layer)
    return model


def _ragged_forward(model: Model, X: Ragged, is_train: bool, as_2d: bool) -> Tuple[Ragged, Callable]:
    lengths = X.lengths
    with child_errors("with_array"):
        Y, backprop_layer = model.layers[0](X.data if as_2d else X.dataXd, is_train=is_train)

    def backprop(dY: Ragged) -> Ragged:
        with child_errors("with_array"):
            return Ragged(backprop_layer(dY.data if as_2d else dY.dataXd), lengths)

    return Ragged(Y, lengths), backprop


def _padded_forward(model: Model, X: Padded, is_train: bool, as_2d: bool) -> Tuple[Padded, Callable]:
    n_steps, batch_size = X.data.shape[0], X.data.shape[1]
    data = model.ops.reshape2(X.data, n_steps * batch_size, -1) if as_2d else X.data
    with child_errors("with_array"):
        Y, backprop_layer = model.layers[0](data, is_train=is_train)
    if as_2d:
        Y = model.ops.reshape3(Y, n_steps, batch_size, -1)
    in_shape = X.data.shape

    def backprop(dY: Padded) -> Padded:
        d_data = model.ops.reshape2(dY.data, n_steps * batch_size, -1) if as_2d else dY.data
        with child_errors("with_array"):
            dX = backprop_layer(d_data)
        if as_2d:
            dX = model.ops.reshape(dX, in_shape)
        return Padded(dX, dY.size_at_t, dY.lengths, dY.indices)

    return Padded(Y, X.size_at_t, X.lengths, X.indices), backprop


def _list_forward(model: Model, Xs: List[Any], is_train: bool) -> Tuple[List[Any], Callable]:
    if len(Xs) == 0:
        return [], _empty_list_backprop
    pad = model.attrs["pad"]
    lengths = [len(X) for X in Xs]
    with child_errors("with_array"):
        Y, backprop_layer = model.layers[0](_flatten(model.ops, Xs, pad), is_train=is_train)

    def backprop(dYs: List[Any]) -> List[Any]:
        with child_errors("with_array"):
            dX = backprop_layer(_flatten(model.ops, dYs, pad))
        return model.ops.unflatten(dX, lengths, pad=pad)

    return model.ops.unflatten(Y, lengths, pad=pad), backprop


def _nd_array_forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    if X.ndim == 2:
        with child_errors("with_array"):
            return model.layers[0](X, is_train=is_train)
    in_shape = X.shape
    with child_errors("with_array"):
        Y, backprop_layer = model.layers[0](model.ops.reshape2(X, -1, in_shape[-1]), is_train=is_train)
    out_shape = tuple(in_shape[:-1]) + (Y.shape[-1],)

    def backprop(dY: Any) -> Any:
        with child_errors("with_array"):
            dX = backprop_layer(model.ops.reshape2(dY, -1, dY.shape[-1]))
        return model.ops.reshape(dX, in_shape)

    return model.ops.reshape(Y, out_shape), backprop


def _to_array(model: Model, X: Any, pad: int, as_2d: bool) -> Any:
    """The array the child sees for batch `X` (used on sample data at initialize)."""
    if isinstance(X, Ragged):
        return X.data if as_2d else X.dataXd
    if isinstance(X, Padded):
        return model.ops.reshape2(X.data, -1, X.data.shape[-1]) if as_2d else X.data
    if isinstance(X, (list, tuple)):
        return _flatten(model.ops, X, pad) if len(X) else None
    if as_2d and X.ndim > 2:
        return model.ops.reshape2(X, -1, X.shape[-1])
    return X


def _flatten(ops: Any, Xs: List[Any], pad: int) -> Any:
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


def _empty_list_backprop(dYs: List[Any]) -> List[Any]:
    return []
