"""with_flatten: run a layer on all the items of a batch of sequences at once.

The batch ``[[a, b], [c]]`` reaches the child as ``[a, b, c]``; the child's
output is re-nested by the same lengths. A child that returns a list gives a
list of lists (the reference's v2 behaviour); a child that returns one array
gives a list of arrays, split by rows (v1's output, with v1's backprop bug,
splitting along the last axis, fixed). ``with_flatten_v2`` is the same function.
"""
from typing import Any, Callable, List, Sequence, Tuple

from ..config import registry
from ..checks import describe
from ..errors import ShapeMismatchError
from ..model import Model
from ._adapters import call_child, make_adapter

__all__ = ["with_flatten", "with_flatten_v2"]


@registry.layers("with_flatten.v1")
def with_flatten(layer: Model) -> Model:
    """List[Sequence[item]] -> list of lists (or of arrays): the child sees one flat list."""
    return make_adapter("with_flatten", layer, forward, _flat)


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
    Y_flat, backprop_layer = call_child(model, "with_flatten", _flat(model, Xnest), is_train)

    def backprop(dYnest: List[Any]) -> List[Any]:
        if isinstance(Y_flat, list):
            d_flat: Any = _flat(model, dYnest)
        else:
            d_flat = _join_rows(model, dYnest, Y_flat)
        return _nest(model, backprop_layer(d_flat), lengths)

    return _nest(model, Y_flat, lengths), backprop


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


def _flat(model: Model, Xnest: Sequence[Sequence[Any]]) -> List[Any]:
    """The items of all sequences, in order."""
    return [item for seq in Xnest for item in seq]
