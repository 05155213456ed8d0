"""with_reshape: run a 2d layer over the last axis of a 3d (or higher) array.

Unlike the reference, backprop reshapes the gradient to the *output's* 2d shape
before calling the layer, so it works when the layer changes the width (nO != nI).
"""
from typing import Any, Callable, Tuple

from ..config import registry
from ..checks import describe
from ..errors import ShapeMismatchError
from ..model import Model
from ._adapters import call_child_on_rows, make_adapter, rows_of

__all__ = ["with_reshape"]


@registry.layers("with_reshape.v1")
def with_reshape(layer: Model) -> Model:
    """(B, T, nI) -> (B, T, nO): the layer sees the rows as one (B*T, nI) array."""
    return make_adapter("with_reshape", layer, forward, rows_of, dim_names=("nO", "nI"))


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    if getattr(X, "ndim", 0) < 2:
        raise ShapeMismatchError(f"expected an array of rank 3, got {describe(X)}", layer=model.name)
    return call_child_on_rows(model, "with_reshape", X, is_train)
