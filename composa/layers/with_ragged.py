"""with_ragged: let a layer that takes a Ragged batch run on lists, Padded or (data, lengths)."""
from typing import Any, Callable, List, Optional, Tuple

from ..config import registry
from ..checks import describe
from ..errors import ShapeMismatchError
from ..model import Model
from ..types import Padded, Ragged
from ._adapters import call_child, empty_list_backprop, empty_padded_forward, make_adapter
from ._containers import flatten_list, padded_like

__all__ = ["with_ragged"]


@registry.layers("with_ragged.v1")
def with_ragged(layer: Model) -> Model:
    """Ragged / Padded / list / (data, lengths) -> same container; the child sees a Ragged."""
    return make_adapter("with_ragged", layer, forward, _to_ragged)


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    ops = model.ops
    if isinstance(X, Ragged):
        return call_child(model, "with_ragged", X, is_train)
    if isinstance(X, tuple) and len(X) == 2 and hasattr(X[0], "shape") and hasattr(X[1], "shape"):
        Yr, backprop_layer = call_child(model, "with_ragged", Ragged(X[0], X[1]), is_train)

        def backprop_tuple(dY: Tuple[Any, Any]) -> Tuple[Any, Any]:
            dXr = backprop_layer(Ragged(dY[0], dY[1]))
            return (dXr.dataXd, dXr.lengths)

        return (Yr.dataXd, Yr.lengths), backprop_tuple
    if isinstance(X, list):
        if len(X) == 0:
            return [], empty_list_backprop
        Yr, backprop_layer = call_child(model, "with_ragged", _list_to_ragged(ops, X), is_train)

        def backprop_list(dYs: List[Any]) -> List[Any]:
            d_ragged = Ragged(flatten_list(ops, dYs, like_shape=Yr.dataXd.shape), Yr.lengths)
            dXr = backprop_layer(d_ragged)
            return ops.unflatten(dXr.dataXd, dXr.lengths)

        return ops.unflatten(Yr.dataXd, Yr.lengths), backprop_list
    if isinstance(X, Padded):
        if len(X.lengths) == 0:
            return empty_padded_forward(model, X)
        Xr = _list_to_ragged(ops, ops.padded2list(X), like_shape=(0,) + tuple(X.data.shape[2:]))
        Yr, backprop_layer = call_child(model, "with_ragged", Xr, is_train)
        Y = padded_like(ops, ops.unflatten(Yr.data, Yr.lengths), X)

        def backprop_padded(dY: Padded) -> Padded:
            d_ragged = _list_to_ragged(ops, ops.padded2list(dY), like_shape=(0,) + tuple(dY.data.shape[2:]))
            dXr = backprop_layer(d_ragged)
            return padded_like(ops, ops.unflatten(dXr.data, dXr.lengths), X)

        return Y, backprop_padded
    raise ShapeMismatchError(
        f"expected a Ragged, a Padded, a list of arrays or a (data, lengths) tuple, got {describe(X)}",
        layer="with_ragged",
    )


def _list_to_ragged(ops: Any, Xs: List[Any], like_shape: Optional[Tuple[int, ...]] = None) -> Ragged:
    return Ragged(flatten_list(ops, Xs, like_shape=like_shape), ops.asarray1i([len(X) for X in Xs]))


def _to_ragged(model: Model, X: Any) -> Optional[Any]:
    if isinstance(X, Ragged):
        return X
    if isinstance(X, tuple) and len(X) == 2:
        return Ragged(X[0], X[1])
    if isinstance(X, list):
        return _list_to_ragged(model.ops, X) if X else None
    if isinstance(X, Padded):
        return _list_to_ragged(model.ops, model.ops.padded2list(X))
    return X
