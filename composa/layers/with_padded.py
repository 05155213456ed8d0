"""with_padded: let a layer that takes a Padded batch run on lists, Ragged, 3d arrays or tuples."""
from typing import Any, Callable, List, Optional, Tuple

from ..config import registry
from ..checks import describe
from ..errors import ShapeMismatchError
from ..model import Model
from ..types import Padded, Ragged
from ._adapters import call_child, empty_padded_forward, make_adapter
from ._containers import flatten_list, padded_like

__all__ = ["with_padded"]


@registry.layers("with_padded.v1")
def with_padded(layer: Model) -> Model:
    """Padded / Ragged / list / (T, B, F) array / 4-tuple -> same container; the child sees a Padded."""
    return make_adapter("with_padded", layer, forward, _to_padded)


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    ops = model.ops
    if isinstance(X, Padded):
        if len(X.lengths) == 0:
            return empty_padded_forward(model, X)
        return call_child(model, "with_padded", X, is_train)
    if isinstance(X, tuple) and len(X) == 4:
        Yp, backprop_layer = call_child(model, "with_padded", Padded(*X), is_train)

        def backprop_tuple(dY: Tuple[Any, ...]) -> Tuple[Any, ...]:
            dXp = backprop_layer(Padded(*dY))
            return (dXp.data, dXp.size_at_t, dXp.lengths, dXp.indices)

        return (Yp.data, Yp.size_at_t, Yp.lengths, Yp.indices), backprop_tuple
    if isinstance(X, Ragged):
        return _forward_sequences(model, ops.unflatten(X.dataXd, X.lengths), X, is_train)
    if isinstance(X, list):
        return _forward_sequences(model, X, None, is_train)
    if hasattr(X, "ndim") and X.ndim == 3:
        Yp, backprop_layer = call_child(model, "with_padded", _array_to_padded(ops, X), is_train)

        def backprop_array(dY: Any) -> Any:
            return backprop_layer(_array_to_padded(ops, dY)).data

        return Yp.data, backprop_array
    raise _unsupported(X)


def _unsupported(X: Any) -> ShapeMismatchError:
    return ShapeMismatchError(
        f"expected a Padded, a Ragged, a list of arrays, a (T, B, F) array or a 4-tuple, got {describe(X)}",
        layer="with_padded",
    )


def _forward_sequences(
    model: Model, Xs: List[Any], Xr: Optional[Ragged], is_train: bool
) -> Tuple[Any, Callable]:
    """Run the child on a list of sequences; `Xr` is the Ragged they came from, if any."""
    ops = model.ops
    if len(Xs) == 0:
        empty_grad: Any = Ragged(ops.alloc(Xr.dataXd.shape, dtype=Xr.data.dtype), Xr.lengths) if Xr is not None else []
        return _empty_output(model, Xr if Xr is not None else Xs), lambda dY: empty_grad
    Yp, backprop_layer = call_child(model, "with_padded", ops.list2padded(Xs), is_train)
    Ys = ops.padded2list(Yp)

    def backprop_sequences(dY: Any) -> Any:
        dYs = ops.unflatten(dY.dataXd, dY.lengths) if Xr is not None else dY
        dXs = ops.padded2list(backprop_layer(padded_like(ops, dYs, Yp)))
        if Xr is not None:
            return Ragged(flatten_list(ops, dXs, like_shape=Xr.dataXd.shape), Xr.lengths)
        return dXs

    if Xr is not None:
        return Ragged(flatten_list(ops, Ys), Xr.lengths), backprop_sequences
    return Ys, backprop_sequences


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
    raise _unsupported(X)


def _empty_output(model: Model, X: Any) -> Any:
    """The output for a batch of no sequences, without calling the child."""
    if isinstance(X, Ragged):
        width = model.layers[0].maybe_get_dim("nO") or X.data.shape[1]
        return Ragged(model.ops.alloc2f(0, width, dtype=X.data.dtype), X.lengths)
    return []
