"""with_list: let a layer that takes a list of 2d arrays run on Ragged or Padded batches."""
from typing import Any, Callable, List, Tuple

from ..config import registry
from ..checks import describe
from ..errors import ShapeMismatchError
from ..model import Model
from ..types import Padded, Ragged
from ._adapters import call_child, make_adapter
from ._containers import flatten_list, padded_like

__all__ = ["with_list"]


@registry.layers("with_list.v1")
def with_list(layer: Model) -> Model:
    """Ragged / Padded / list -> same container; the child sees a list of 2d arrays."""
    return make_adapter("with_list", layer, forward, _to_list)


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    ops = model.ops
    if isinstance(X, (list, tuple)):
        return call_child(model, "with_list", X, is_train)
    if isinstance(X, Ragged):
        lengths = X.lengths
        Ys, backprop_layer = call_child(model, "with_list", ops.unflatten(X.data, lengths), is_train)

        def backprop_ragged(dY: Ragged) -> Ragged:
            dXs = backprop_layer(ops.unflatten(dY.data, lengths))
            return Ragged(flatten_list(ops, dXs, like_shape=X.data.shape), lengths)

        return Ragged(flatten_list(ops, Ys), lengths), backprop_ragged
    if isinstance(X, Padded):
        Ys, backprop_layer = call_child(model, "with_list", ops.padded2list(X), is_train)

        def backprop_padded(dY: Padded) -> Padded:
            return padded_like(ops, backprop_layer(ops.padded2list(dY)), X)

        return padded_like(ops, Ys, X), backprop_padded
    raise ShapeMismatchError(
        f"expected a list of arrays, a Ragged or a Padded, got {describe(X)}", layer="with_list"
    )


def _to_list(model: Model, X: Any) -> List[Any]:
    if isinstance(X, Ragged):
        return model.ops.unflatten(X.data, X.lengths)
    if isinstance(X, Padded):
        return model.ops.padded2list(X)
    return X
