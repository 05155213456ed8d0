"""uniqued: run a layer only on the distinct rows of an id batch, then re-expand.

A cache-free speed-up for layers on repetitive ids (embeddings of tokens).
Unlike the reference, the gradient of a repeated row is the *sum* of its
occurrences' gradients (not their mean), so ``uniqued(layer)`` has exactly the
gradients of ``layer`` and passes a finite-difference check.
"""
from typing import Any, Callable, Tuple

from ..config import registry
from ..checks import describe
from ..errors import ConfigurationError, ShapeMismatchError
from ..model import Model
from ._adapters import call_child, make_adapter

__all__ = ["uniqued"]


@registry.layers("uniqued.v1")
def uniqued(layer: Model, *, column: int = 0) -> Model:
    """Ints2d -> layer output: compute the layer once per distinct value of ``X[:, column]``."""
    if isinstance(column, bool) or not isinstance(column, int) or column < 0:
        raise ConfigurationError(f"uniqued: column must be a non-negative int, got {column!r}")
    return make_adapter("uniqued", layer, forward, _same, dim_names=("nO", "nI"), attrs={"column": column})


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    column = model.attrs["column"]
    if X.ndim != 2 or X.shape[1] <= column:
        raise ShapeMismatchError(
            f"expected a 2d array with a column {column}, got {describe(X)}", layer=model.name
        )
    if X.shape[0] < 2:
        return call_child(model, "uniqued", X, is_train)
    xp = model.ops.xp
    _, first_rows, inverse = xp.unique(X[:, column], return_index=True, return_inverse=True)
    inverse = inverse.reshape((-1,))
    X_unique = X[first_rows]
    Y_unique, backprop_unique = call_child(model, "uniqued", X_unique, is_train)
    Y = Y_unique[inverse]

    def backprop(dY: Any) -> Any:
        d_unique = model.ops.alloc((Y_unique.shape[0],) + tuple(dY.shape[1:]), dtype=dY.dtype)
        model.ops.scatter_add(d_unique, inverse, dY)
        dX_unique = backprop_unique(d_unique)
        if hasattr(dX_unique, "shape") and dX_unique.shape[:1] == X_unique.shape[:1]:
            return dX_unique[inverse]
        return dX_unique

    return Y, backprop


def _same(model: Model, X: Any) -> Any:
    """The layer is initialised on the sample data as given."""
    return X

