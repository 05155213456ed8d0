"""map_list: apply a layer to every item of a list separately."""
from typing import Any, Callable, List, Optional, Tuple

from ..checks import child_errors, describe
from ..errors import ComposaError, ShapeMismatchError
from ..model import Model

__all__ = ["map_list"]


def map_list(layer: Model) -> Model:
    """``[X1, X2, ...] -> [layer(X1), layer(X2), ...]``, one forward call per item."""
    return Model("map_list", forward, init=init, layers=[layer])


def forward(model: Model, Xs: List[Any], is_train: bool) -> Tuple[List[Any], Callable]:
    layer = model.layers[0]
    outputs = []
    callbacks = []
    for i, X in enumerate(Xs):
        try:
            Y, backprop_item = layer._func(layer, X, is_train=is_train)
        except ComposaError as error:
            error.push_parent(f"map_list[item {i}]", None, layer.name)
            raise
        outputs.append(Y)
        callbacks.append(backprop_item)

    def backprop(dYs: List[Any]) -> List[Any]:
        if len(dYs) != len(callbacks):
            raise ShapeMismatchError(
                f"expected {len(callbacks)} gradients, got {describe(dYs)}", layer="map_list"
            )
        d_inputs = []
        for i, (callback, dY) in enumerate(zip(callbacks, dYs)):
            try:
                d_inputs.append(callback(dY))
            except ComposaError as error:
                error.push_parent(f"map_list[item {i}]", None, layer.name)
                raise
        return d_inputs

    return outputs, backprop


def init(model: Model, X: Optional[List[Any]] = None, Y: Optional[List[Any]] = None) -> Model:
    """Initialise the layer on the first item of X (and of Y)."""
    with child_errors("map_list"):
        model.layers[0].initialize(X=X[0] if X else None, Y=Y[0] if Y else None)
    return model
