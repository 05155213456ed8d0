"""residual: add a layer's input to its output, ``X + layer(X)``."""
from typing import Any, Callable, Optional, Tuple

from ..config import registry
from ..checks import child_errors, describe
from ..errors import ShapeMismatchError
from ..model import Model
from ..types import Padded, Ragged
from ._adapters import call_child
from ._combine import copy_child_dims, sum_outputs

__all__ = ["residual"]


@registry.layers("residual.v1")
def residual(layer: Model) -> Model:
    """``X + layer(X)`` for arrays, Ragged, Padded and lists of arrays; widths must match."""
    model: Model = Model(
        f"residual({layer.name})",
        forward,
        init=init,
        dims={"nO": layer.maybe_get_dim("nO"), "nI": layer.maybe_get_dim("nI")},
        layers=[layer],
    )
    return model


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    Y_layer, backprop_layer = call_child(model, "residual", X, is_train)
    _check_same_shape(X, Y_layer)
    Y = sum_outputs([X, Y_layer], "residual")

    def backprop(dY: Any) -> Any:
        return sum_outputs([dY, backprop_layer(dY)], "residual (backprop)")

    return Y, backprop


def init(model: Model, X: Optional[Any] = None, Y: Optional[Any] = None) -> Model:
    """Initialise the layer; its output has the input's width, so X is the sample Y if none is given."""
    layer = model.layers[0]
    with child_errors("residual"):
        if layer.has_dim("nO") is None:
            layer.initialize(X=X, Y=Y if Y is not None else X)
        else:
            layer.initialize(X=X)
    copy_child_dims(model, layer)
    return model


def _check_same_shape(X: Any, Y: Any) -> None:
    X_data = _data(X)
    Y_data = _data(Y)
    if isinstance(X_data, list):
        return  # summing the lists checks every item's shape
    if getattr(X_data, "shape", None) != getattr(Y_data, "shape", None):
        raise ShapeMismatchError(
            f"the layer maps {describe(X_data)} to {describe(Y_data)}; "
            f"a residual layer must keep the input's shape (nO == nI)",
            layer="residual",
        )


def _data(value: Any) -> Any:
    if isinstance(value, (Ragged, Padded)):
        return value.data
    return value


