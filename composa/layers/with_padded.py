"""with_padded: let a layer that takes a Padded batch run on lists, Ragged, 3d arrays or tuples."""
from typing import Any, Callable, Optional, Tuple

from ..config import registry
from ..errors import ShapeMismatchError, child_errors, describe
from ..model import Model
from ..types import Padded, Ragged
from ._adapters import call_child, make_adapter
from .conversions import flatten_list, padded_like

__all__ = ["with_padded"]


@registry.layers("with_padded.v1")
def with_padded(layer: Model) -> Model:
    """Padded / Ragged / list / (T, B, F) array / 4-tuple -> same container; the child sees a Padded."""
    return make_adapter("with_padded", layer, forward, _to_padded)


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    ops = model.ops
    if isinstance(X, Padded):
        with child_errors("with_padded"):
            return model.layers[0](X, is_train=is_train)
    if isinstance(X, tuple) and len(X) == 4:
        Yp, backprop_layer = call_child(model, "with_padded", Padded(*X), is_train)

        def backprop_tuple(dY: Tuple[Any, ...]) -> Tuple[Any, ...]:
            dXp = backprop_layer(Padded(*dY))
            return (dXp.data, dXp.size_at_t, dXp.lengths, dXp.indices)

        return (Yp.data, Yp.size_at_t, Yp.lengths, Yp.indices), backprop_tuple
    if isinstance(X, (list, Ragged)):
        as_ragged = isinstance(X, Ragged)
        Xs = ops.unflatten(X.dataXd, X.lengths) if as_ragged else X
        if len(Xs) == 0:
            empty_grad = Ragged(ops.alloc(X.dataXd.shape, dtype=X.data.dtype), X.lengths) if as_ragged else []
            return _empty_output(model, X), lambda dY: empty_grad
        Yp, backprop_layer = call_child(model, "with_padded", ops.list2padded(Xs), is_train)
        Ys = ops.padded2list(Yp)

        def backprop_sequences(dY: Any) -> Any:
            dYs = ops.unflatten(dY.dataXd, dY.lengths) if as_ragged else dY
            dXs = ops.padded2list(backprop_layer(padded_like(ops, dYs, Yp)))
            if as_ragged:
                return Ragged(flatten_list(ops, dXs, like_shape=X.dataXd.shape), X.lengths)
            return dXs

        if as_ragged:
            return Ragged(flatten_list(ops, Ys), X.lengths), backprop_sequences
        return Ys, backprop_sequences
    if hasattr(X, "ndim") and X.ndim == 3:
        Yp, backprop_layer = call_child(model, "with_padded", _array_to_padded(ops, X), is_train)

        def backprop_array(dY: Any) -> Any:
            return backprop_layer(_array_to_padded(ops, dY)).data

        return Yp.data, backprop_array
    raise ShapeMismatchError(
        f"expected a Padded, a Ragged, a list of arrays, a (T, B, F) array or a 4-tuple, got {describe(X)}",
        layer="with_padded",
    )


def _array_to_padded(ops: Any, X: Any) -> Padded:
    """A (T, B, F) array as a Padded in which every sequence has all T steps."""
    n_steps, batch_size = X.shape[0], X.shape[1]
    return Padded(
        X,
        ops.xp.full((n_steps,), batch_size, dtype="int32"),
        ops.xp.full((batch_size,), n_steps, dtype="int32"),
        ops.xp.arange(batch_size, dtype="int32"),
    )


def _to_padded(model: Model, X: Any) -> Optional[Padded]:
    if isinstance(X, Padded):
        return X
    if isinstance(X, tuple) and len(X) == 4:
        return Padded(*X)
    if isinstance(X, Ragged):
        X = model.ops.unflatten(X.dataXd, X.lengths)
    if isinstance(X, list):
        return model.ops.list2padded(X) if X else None
    if hasattr(X, "ndim") and X.ndim == 3:
        return _array_to_padded(model.ops, X)
    return X


def _empty_output(model: Model, X: Any) -> Any:
    """The output for a batch of no sequences, without calling the child."""
    if isinstance(X, Ragged):
        width = model.layers[0].maybe_get_dim("nO") or X.data.shape[1]
        return Ragged(model.ops.alloc2f(0, width, dtype=X.data.dtype), X.lengths)
    return []
