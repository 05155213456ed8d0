"""with_list: let a layer that takes a list of 2d arrays run on Ragged or Padded batches."""
from typing import Any, Callable, List, Optional, Tuple

from ..config import registry
from ..errors import ShapeMismatchError, child_errors, describe
from ..model import Model
from ..types import Padded, Ragged
from .chain import copy_child_dims
from .conversions import flatten_list, padded_like

__all__ = ["with_list"]


@registry.layers("with_list.v1")
def with_list(layer: Model) -> Model:
    """Ragged / Padded / list -> same container; the child sees a list of 2d arrays."""
    return Model(
        f"with_list({layer.name})",
        forward,
        init=init,
        dims={name: layer.maybe_get_dim(name) for name in layer.dim_names},
        layers=[layer],
    )


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    layer = model.layers[0]
    ops = model.ops
    if isinstance(X, (list, tuple)):
        with child_errors("with_list"):
            return layer(X, is_train=is_train)
    if isinstance(X, Ragged):
        lengths = X.lengths
        with child_errors("with_list"):
            Ys, backprop_layer = layer(ops.unflatten(X.data, lengths), is_train=is_train)

        def backprop_ragged(dY: Ragged) -> Ragged:
            with child_errors("with_list"):
                dXs = backprop_layer(ops.unflatten(dY.data, lengths))
            return Ragged(flatten_list(ops, dXs, like_shape=X.data.shape), lengths)

        return Ragged(flatten_list(ops, Ys), lengths), backprop_ragged
    if isinstance(X, Padded):
        with child_errors("with_list"):
            Ys, backprop_layer = layer(ops.padded2list(X), is_train=is_train)
        Y = padded_like(ops, Ys, X)

        def backprop_padded(dY: Padded) -> Padded:
            with child_errors("with_list"):
                dXs = backprop_layer(ops.padded2list(dY))
            return padded_like(ops, dXs, X)

        return Y, backprop_padded
    raise ShapeMismatchError(
        f"expected a list of arrays, a Ragged or a Padded, got {describe(X)}", layer="with_list"
    )


def init(model: Model, X: Optional[Any] = None, Y: Optional[Any] = None) -> Model:
    """Initialise the child on the samples as lists, then mirror its dims."""
    layer = model.layers[0]
    with child_errors("with_list"):
        layer.initialize(X=_to_list(model, X), Y=_to_list(model, Y))
    copy_child_dims(model, layer)
    return model


def _to_list(model: Model, X: Any) -> Optional[List[Any]]:
    if X is None or isinstance(X, (list, tuple)):
        return X
    if isinstance(X, Ragged):
        return model.ops.unflatten(X.data, X.lengths)
    if isinstance(X, Padded):
        return model.ops.padded2list(X)
    return X
