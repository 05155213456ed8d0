"""The skeleton shared by the container adapters (with_list, with_padded, with_ragged, ...).

An adapter wraps one child layer: it converts the batch to the type the child
takes, runs the child, converts the output back, and does the reverse for the
gradient. What differs between adapters is only the conversions, so each adapter
module keeps those and takes the rest from here.
"""
from functools import partial
from typing import Any, Callable, List, Optional, Tuple

from ..checks import child_errors
from ..errors import ComposaError
from ..model import Model
from ..types import Padded
from ._combine import copy_child_dims

# Private helpers: nothing here is exported through composa.layers.
__all__: list = []


def make_adapter(
    kind: str,
    layer: Model,
    forward: Callable,
    to_child: Callable[[Model, Any], Any],
    *,
    dim_names: Optional[Tuple[str, ...]] = None,
    attrs: Optional[dict] = None,
) -> Model:
    """A Model `kind(layer.name)` that runs `forward` over `layer` and mirrors its dims.

    `to_child(model, X)` converts a (non-None) sample batch into what the child
    sees; ``initialize`` uses it. `dim_names` defaults to all of the child's dims.
    """
    names = layer.dim_names if dim_names is None else dim_names
    return Model(
        f"{kind}({layer.name})",
        forward,
        init=partial(init_adapter, kind, to_child),
        dims={name: layer.maybe_get_dim(name) for name in names},
        attrs=attrs,
        layers=[layer],
    )


def init_adapter(
    kind: str, to_child: Callable[[Model, Any], Any], model: Model, X: Optional[Any] = None, Y: Optional[Any] = None
) -> Model:
    """Initialise the child on the samples as it will see them, then mirror its dims."""
    layer = model.layers[0]
    with child_errors(kind):
        layer.initialize(
            X=to_child(model, X) if X is not None else None,
            Y=to_child(model, Y) if Y is not None else None,
        )
    copy_child_dims(model, layer)
    return model


def call_child(
    model: Model, kind: str, X: Any, is_train: bool, child_index: Optional[int] = None
) -> Tuple[Any, Callable]:
    """Run the adapter's child on `X`; errors from it and its backprop are labelled `kind`."""
    layer = model.layers[0]
    try:
        Y, backprop_child = layer._func(layer, X, is_train=is_train)
    except ComposaError as error:
        error.push_parent(kind, child_index, layer.name)
        raise

    def backprop(dY: Any) -> Any:
        try:
            return backprop_child(dY)
        except ComposaError as error:
            error.push_parent(kind, child_index, layer.name)
            raise

    return Y, backprop


def call_child_on_rows(model: Model, kind: str, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    """Run the child on the rows of an (..., nI) array as one 2d array, and reshape back."""
    ops = model.ops
    in_shape = X.shape
    Y2d, backprop_child = call_child(model, kind, ops.reshape2(X, -1, in_shape[-1]), is_train)
    out_shape = tuple(in_shape[:-1]) + (Y2d.shape[-1],)

    def backprop(dY: Any) -> Any:
        return ops.reshape(backprop_child(ops.reshape2(dY, -1, out_shape[-1])), in_shape)

    return ops.reshape(Y2d, out_shape), backprop


def rows_of(model: Model, X: Any) -> Any:
    """An (..., n) array as a 2d array of its rows."""
    return model.ops.reshape2(X, -1, X.shape[-1])


def empty_list_backprop(dYs: List[Any]) -> List[Any]:
    """The backprop of an empty list batch."""
    return []


def empty_padded_forward(model: Model, Xp: Padded) -> Tuple[Padded, Callable]:
    """Output and backprop for a Padded of no sequences (``ops.list2padded([])``), without the child.

    Such a batch may not even have the child's input width (list2padded of nothing has width 0).
    """
    ops = model.ops
    width = model.layers[0].maybe_get_dim("nO") or 0
    Y = Padded(ops.alloc(tuple(Xp.data.shape[:2]) + (width,), dtype=Xp.data.dtype), Xp.size_at_t, Xp.lengths, Xp.indices)

    def backprop(dY: Padded) -> Padded:
        return Padded(ops.alloc(Xp.data.shape, dtype=Xp.data.dtype), Xp.size_at_t, Xp.lengths, Xp.indices)

    return Y, backprop
