"""with_flatten: run a layer on all the items of a batch of sequences at once.

The batch ``[[a, b], [c]]`` reaches the child as ``[a, b, c]``; the child's
output is re-nested by the same lengths. A child that returns a list gives a
list of lists (the reference's v2 behaviour); a child that returns one array
gives a list of arrays, split by rows (v1's output, with v1's backprop bug,
splitting along the last axis, fixed). ``with_flatten_v2`` is the same function.
"""
from typing import Any, Callable, List, Optional, Sequence, Tuple

from ..config import registry
from ..errors import ShapeMismatchError, child_errors, describe
from ..model import Model
from .chain import copy_child_dims

__all__ = ["with_flatten", "with_flatten_v2"]


@registry.layers("with_flatten.v1")
def with_flatten(layer: Model) -> Model:
    """List[Sequence[item]] -> list of lists (or of arrays): the child sees one flat list."""
    return Model(
        f"with_flatten({layer.name})",
        forward,
        init=init,
        dims={name: layer.maybe_get_dim(name) for name in layer.dim_names},
        layers=[layer],
    )


@registry.layers("with_flatten.v2")
def with_flatten_v2(layer: Model) -> Model:
    """The same as :func:`with_flatten` (kept for configs that name the v2)."""
    return with_flatten(layer)


def forward(model: Model, Xnest: Sequence[Sequence[Any]], is_train: bool) -> Tuple[List[Any], Callable]:
    if not isinstance(Xnest, (list, tuple)):
        raise ShapeMismatchError(
            f"expected a list of sequences, got {describe(Xnest)}", layer="with_flatten"
        )
    lengths = [len(seq) for seq in Xnest]
    flat = [item for seq in Xnest for item in seq]
    with child_errors("with_flatten"):
        Y_flat, backprop_layer = model.layers[0](flat, is_train=is_train)

    def backprop(dYnest: List[Any]) -> List[Any]:
        if isinstance(Y_flat, list):
            d_flat: Any = [item for seq in dYnest for item in seq]
        else:
            d_flat = _join_rows(model, dYnest, Y_flat)
        with child_errors("with_flatten"):
            dX_flat = backprop_layer(d_flat)
        return _nest(model, dX_flat, lengths)

    return _nest(model, Y_flat, lengths), backprop


def init(model: Model, X: Optional[Any] = None, Y: Optional[Any] = None) -> Model:
    """Initialise the child on the flattened samples, then mirror its dims."""
    layer = model.layers[0]
    with child_errors("with_flatten"):
        layer.initialize(X=_flat(X), Y=_flat(Y))
    copy_child_dims(model, layer)
    return model


def _nest(model: Model, flat: Any, lengths: List[int]) -> List[Any]:
    """Split a flat list (or the rows of an array) into consecutive pieces of `lengths`."""
    if isinstance(flat, (list, tuple)):
        if len(flat) != sum(lengths):
            raise ShapeMismatchError(
                f"the layer returned {len(flat)} items for {sum(lengths)} inputs", layer="with_flatten"
            )
        nested = []
        start = 0
        for length in lengths:
            nested.append(list(flat[start : start + length]))
            start += length
        return nested
    return model.ops.unflatten(flat, lengths)


def _join_rows(model: Model, pieces: List[Any], like: Any) -> Any:
    if not pieces:
        return model.ops.alloc((0,) + tuple(like.shape[1:]), dtype=like.dtype)
    return model.ops.flatten(pieces)


def _flat(X: Optional[Any]) -> Optional[List[Any]]:
    if X is None:
        return None
    return [item for seq in X for item in seq]
