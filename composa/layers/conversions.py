"""Conversions between batch containers: lists of arrays, one array, Ragged and Padded.

Each is a parameter-free layer whose backprop converts the gradient back into
the input's container, so they can sit anywhere in a chain.
"""
from typing import Any, Callable, List, Tuple

from ..config import registry
from ..checks import check_gradient_shape, describe
from ..errors import ShapeMismatchError
from ..model import Model
from ..types import Padded, Ragged
from ._containers import flatten_list, padded_like

__all__ = ["list2array", "list2ragged", "ragged2list", "list2padded", "padded2list"]


@registry.layers("list2array.v1")
def list2array() -> Model:
    """List of 2d arrays -> one array of all their rows (backprop splits it again)."""
    return Model("list2array", list2array_forward)


@registry.layers("list2ragged.v1")
def list2ragged() -> Model:
    """List of arrays -> Ragged (their rows concatenated, with lengths)."""
    return Model("list2ragged", list2ragged_forward)


@registry.layers("ragged2list.v1")
def ragged2list() -> Model:
    """Ragged -> list of arrays, one per sequence."""
    return Model("ragged2list", ragged2list_forward)


@registry.layers("list2padded.v1")
def list2padded() -> Model:
    """List of 2d arrays -> time-major Padded, sorted by decreasing length."""
    return Model("list2padded", list2padded_forward)


@registry.layers("padded2list.v1")
def padded2list() -> Model:
    """Padded -> list of 2d arrays in the original order, padding removed."""
    return Model("padded2list", padded2list_forward)


def list2array_forward(model: Model, Xs: List[Any], is_train: bool) -> Tuple[Any, Callable]:
    _check_list(Xs, "list2array")
    lengths = [len(X) for X in Xs]
    Y = flatten_list(model.ops, Xs)

    def backprop(dY: Any) -> List[Any]:
        check_gradient_shape(model, dY, Y)
        return model.ops.unflatten(dY, lengths)

    return Y, backprop


def list2ragged_forward(model: Model, Xs: List[Any], is_train: bool) -> Tuple[Ragged, Callable]:
    _check_list(Xs, "list2ragged")
    lengths = model.ops.asarray1i([len(X) for X in Xs])
    Y = Ragged(flatten_list(model.ops, Xs), lengths)

    def backprop(dY: Ragged) -> List[Any]:
        check_gradient_shape(model, getattr(dY, "dataXd", dY), Y.dataXd)
        return model.ops.unflatten(dY.dataXd, lengths)

    return Y, backprop


def ragged2list_forward(model: Model, X: Ragged, is_train: bool) -> Tuple[List[Any], Callable]:
    if not isinstance(X, Ragged):
        raise ShapeMismatchError(f"expected a Ragged, got {describe(X)}", layer="ragged2list")
    lengths = X.lengths
    data_shape = X.dataXd.shape

    Ys = model.ops.unflatten(X.dataXd, lengths)

    def backprop(dYs: List[Any]) -> Ragged:
        _check_gradient_list(model, dYs, Ys)
        return Ragged(flatten_list(model.ops, dYs, like_shape=data_shape), lengths)

    return Ys, backprop


def list2padded_forward(model: Model, Xs: List[Any], is_train: bool) -> Tuple[Padded, Callable]:
    _check_list(Xs, "list2padded")
    Y = model.ops.list2padded(Xs)

    def backprop(dY: Padded) -> List[Any]:
        check_gradient_shape(model, getattr(dY, "data", dY), Y.data)
        return model.ops.padded2list(dY)

    return Y, backprop


def padded2list_forward(model: Model, X: Padded, is_train: bool) -> Tuple[List[Any], Callable]:
    if not isinstance(X, Padded):
        raise ShapeMismatchError(f"expected a Padded, got {describe(X)}", layer="padded2list")
    Ys = model.ops.padded2list(X)

    def backprop(dYs: List[Any]) -> Padded:
        return padded_like(model.ops, dYs, X)

    return Ys, backprop


def _check_gradient_list(model: Model, dYs: Any, Ys: List[Any]) -> None:
    """Raise ShapeMismatchError unless `dYs` is a list of arrays shaped like `Ys`."""
    shapes = [tuple(getattr(dY, "shape", ())) for dY in dYs] if isinstance(dYs, (list, tuple)) else None
    expected = [tuple(Y.shape) for Y in Ys]
    if shapes != expected:
        raise ShapeMismatchError(
            f"backprop expected gradients of shapes {expected[:5]}, got {describe(dYs)}"
            + (f" of shapes {shapes[:5]}" if shapes is not None else ""),
            layer=model.name,
        )


def _check_list(Xs: Any, label: str) -> None:
    if not isinstance(Xs, (list, tuple)):
        raise ShapeMismatchError(f"expected a list of arrays, got {describe(Xs)}", layer=label)
