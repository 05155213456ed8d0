"""with_getitem: apply a layer to one item of a tuple, passing the other items through."""
from typing import Any, Callable, Optional, Tuple

from ..config import registry
from ..checks import child_errors, describe
from ..errors import ConfigurationError, ShapeMismatchError
from ..model import Model
from ._adapters import call_child

__all__ = ["with_getitem"]


@registry.layers("with_getitem.v1")
def with_getitem(idx: int, layer: Model) -> Model:
    """``(x0, x1, ...) -> (x0, ..., layer(x_idx), ...)``."""
    if isinstance(idx, bool) or not isinstance(idx, int):
        raise ConfigurationError(f"with_getitem: idx must be an int, got {idx!r}")
    return Model(
        f"with_getitem({layer.name})",
        forward,
        init=init,
        attrs={"idx": idx},
        layers=[layer],
    )


def forward(model: Model, items: Tuple[Any, ...], is_train: bool) -> Tuple[Tuple[Any, ...], Callable]:
    position = _position(model, items)
    Y_item, backprop_item = call_child(model, "with_getitem", items[position], is_train)

    def backprop(d_items: Tuple[Any, ...]) -> Tuple[Any, ...]:
        d_item = backprop_item(d_items[position])
        return (*d_items[:position], d_item, *d_items[position + 1 :])

    return (*items[:position], Y_item, *items[position + 1 :]), backprop


def init(model: Model, X: Optional[Tuple[Any, ...]] = None, Y: Optional[Tuple[Any, ...]] = None) -> Model:
    """Initialise the layer on item `idx` of the samples."""
    with child_errors("with_getitem"):
        model.layers[0].initialize(
            X=X[_position(model, X)] if X is not None else None,
            Y=Y[_position(model, Y)] if Y is not None else None,
        )
    return model


def _position(model: Model, items: Any) -> int:
    idx = model.attrs["idx"]
    if not isinstance(items, (tuple, list)) or not -len(items) <= idx < len(items):
        raise ShapeMismatchError(
            f"expected a tuple with an item at index {idx}, got {describe(items)}", layer=model.name
        )
    return idx % len(items)
