"""with_reshape: run a 2d layer over the last axis of a 3d (or higher) array.

Unlike the reference, backprop reshapes the gradient to the *output's* 2d shape
before calling the layer, so it works when the layer changes the width (nO != nI).
"""
from typing import Any, Callable, Optional, Tuple

from ..config import registry
from ..errors import ShapeMismatchError, child_errors, describe
from ..model import Model
from .chain import copy_child_dims

__all__ = ["with_reshape"]


@registry.layers("with_reshape.v1")
def with_reshape(layer: Model) -> Model:
    """(B, T, nI) -> (B, T, nO): the layer sees the rows as one (B*T, nI) array."""
    return Model(
        f"with_reshape({layer.name})",
        forward,
        init=init,
        dims={"nO": layer.maybe_get_dim("nO"), "nI": layer.maybe_get_dim("nI")},
        layers=[layer],
    )


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    if getattr(X, "ndim", 0) < 2:
        raise ShapeMismatchError(f"expected an array of rank 3, got {describe(X)}", layer=model.name)
    in_shape = X.shape
    with child_errors("with_reshape"):
        Y2d, backprop_layer = model.layers[0](model.ops.reshape2(X, -1, in_shape[-1]), is_train=is_train)
    out_shape = tuple(in_shape[:-1]) + (Y2d.shape[-1],)

    def backprop(dY: Any) -> Any:
        with child_errors("with_reshape"):
            dX2d = backprop_layer(model.ops.reshape2(dY, -1, out_shape[-1]))
        return model.ops.reshape(dX2d, in_shape)

    return model.ops.reshape(Y2d, out_shape), backprop


def init(model: Model, X: Optional[Any] = None, Y: Optional[Any] = None) -> Model:
    """Initialise the layer on the samples' rows, then mirror its nO/nI."""
    layer = model.layers[0]
    with child_errors("with_reshape"):
        layer.initialize(
            X=model.ops.reshape2(X, -1, X.shape[-1]) if X is not None else None,
            Y=model.ops.reshape2(Y, -1, Y.shape[-1]) if Y is not None else None,
        )
    copy_child_dims(model, layer)
    return model
