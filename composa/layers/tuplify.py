"""tuplify: run several layers on the same input and return their outputs as a tuple."""
from typing import Any, Callable, Optional, Tuple

from ..config import registry
from ..checks import child_errors, describe
from ..errors import ShapeMismatchError
from ..model import Model
from ._combine import backprop_each, run_each

__all__ = ["tuplify"]


@registry.layers("tuplify.v1")
def tuplify(layer1: Model, layer2: Model, *layers: Model) -> Model:
    """``X -> (f(X), g(X), ...)``; backprop sums the layers' input gradients."""
    children = [layer1, layer2, *layers]
    model: Model = Model(
        f"tuple({', '.join(layer.name for layer in children)})",
        forward,
        init=init,
        dims={"nI": None},
        layers=children,
    )
    if layer1.has_dim("nI"):
        model.set_dim("nI", layer1.get_dim("nI"))
    return model


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Tuple[Any, ...], Callable]:
    outputs, callbacks = run_each(model, "tuplify", X, is_train)

    def backprop(dY: Tuple[Any, ...]) -> Any:
        if not isinstance(dY, (tuple, list)) or len(dY) != len(callbacks):
            raise ShapeMismatchError(
                f"expected a tuple of {len(callbacks)} gradients, got {describe(dY)}",
                layer="tuplify",
            )
        return backprop_each(model, "tuplify", callbacks, dY)

    return tuple(outputs), backprop


def init(model: Model, X: Optional[Any] = None, Y: Optional[Tuple[Any, ...]] = None) -> Model:
    """Initialise layer i on X and, where its nO is unknown, on ``Y[i]``."""
    if Y is not None and len(Y) != len(model.layers):
        raise ShapeMismatchError(
            f"expected a sample Y of {len(model.layers)} items, got {describe(Y)}", layer="tuplify"
        )
    for i, layer in enumerate(model.layers):
        with child_errors("tuplify", i):
            sample_Y = Y[i] if Y is not None and layer.has_dim("nO") is None else None
            layer.initialize(X=X, Y=sample_Y)
    if model.layers[0].has_dim("nI"):
        model.set_dim("nI", model.layers[0].get_dim("nI"), force=True)
    return model
