"""add: run several layers on the same input and sum their outputs.

Unlike the reference, ``add`` never mutates its arguments (``add(add(a, b), c)``
builds a new flat node) and never accumulates into a child's output array: the
sum is written into a fresh array owned by the ``add`` node.
"""
from typing import Any, Callable, Optional, Tuple

from ..config import registry
from ..checks import child_errors
from ..errors import ShapeMismatchError
from ..model import Model
from ..util import get_width
from ._combine import backprop_each, copy_shared_nI, fan_out_dims, flatten_nested, run_each, sample_Y_for, sum_outputs

__all__ = ["add"]


@registry.layers("add.v1")
def add(layer1: Model, layer2: Model, *layers: Model) -> Model:
    """Sum the outputs of layers that all see the same input: ``add(f, g)(X) == f(X) + g(X)``."""
    # Flatten ``(a + b) + c`` into one node, without touching the given one.
    children = flatten_nested(forward, [layer1, layer2, *layers])
    model: Model = Model("add", forward, init=init, dims=fan_out_dims(children), layers=children)
    _copy_known_dims(model)
    return model


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    if not model.layers:
        return X, _identity
    outputs, callbacks = run_each(model, "add", X, is_train)

    def backprop(dY: Any) -> Any:
        return backprop_each(model, "add", callbacks, [dY] * len(callbacks))

    return sum_outputs(outputs, "add"), backprop


def init(model: Model, X: Optional[Any] = None, Y: Optional[Any] = None) -> Model:
    """Initialise every child on X and Y (as Thinc does); nO is the shared output width."""
    for i, layer in enumerate(model.layers):
        with child_errors("add", i):
            layer.initialize(X=X, Y=sample_Y_for(layer, Y))
    widths = {layer.maybe_get_dim("nO") for layer in model.layers} - {None}
    if len(widths) > 1:
        found = [layer.maybe_get_dim("nO") for layer in model.layers]
        raise ShapeMismatchError(
            f"the layers' output widths differ: nO={found}; add needs equal widths",
            layer="add",
        )
    if X is not None and model.has_dim("nI") is not False:
        model.set_dim("nI", get_width(X), force=True)
    _copy_known_dims(model)
    if not widths and Y is not None:
        model.set_dim("nO", get_width(Y), force=True)
    return model


def _copy_known_dims(model: Model) -> None:
    if not model.layers:
        return
    copy_shared_nI(model)
    for layer in model.layers:
        if layer.has_dim("nO"):
            model.set_dim("nO", layer.get_dim("nO"), force=True)
            break


def _identity(dY: Any) -> Any:
    return dY

