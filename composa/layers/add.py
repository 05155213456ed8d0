"""add: run several layers on the same input and sum their outputs.

Unlike the reference, ``add`` never mutates its arguments (``add(add(a, b), c)``
builds a new flat node) and never accumulates into a child's output array: the
sum is written into a fresh array owned by the ``add`` node.
"""
from typing import Any, Callable, List, Optional, Sequence, Tuple

from ..config import registry
from ..checks import child_errors, describe
from ..errors import ShapeMismatchError
from ..model import Model
from ..types import Padded, Ragged
from ..util import get_width

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
        return backprop_each("add", callbacks, [dY] * len(callbacks))

    return sum_outputs(outputs, "add"), backprop


def init(model: Model, X: Optional[Any] = None, Y: Optional[Any] = None) -> Model:
    """Initialise every child on X (and Y where its nO is unknown); nO is the shared output width."""
    for i, layer in enumerate(model.layers):
        with child_errors("add", i):
            sample_Y = Y if layer.has_dim("nO") is None else None
            layer.initialize(X=X, Y=sample_Y)
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


def flatten_nested(forward: Callable, children: List[Model]) -> List[Model]:
    """The children, with a first child built by the same combinator (`forward`) replaced by its own."""
    if children[0]._func is forward:
        return [*children[0].layers, *children[1:]]
    return children


def fan_out_dims(children: Sequence[Model]) -> dict:
    """The dims of a node that feeds one input to all `children`: nO, and nI unless a child has none."""
    dims: dict = {"nO": None}
    if all(child.has_dim("nI") is not False for child in children):
        dims["nI"] = None
    return dims


def copy_shared_nI(model: Model) -> None:
    """Set the node's nI when all its children agree on a known one."""
    widths_in = {layer.maybe_get_dim("nI") for layer in model.layers}
    if model.has_dim("nI") is not False and len(widths_in) == 1 and None not in widths_in:
        model.set_dim("nI", widths_in.pop(), force=True)


def run_each(model: Model, label: str, X: Any, is_train: bool) -> Tuple[List[Any], List[Callable]]:
    """Run every child of `model` on the same X: their outputs and backprop callbacks."""
    outputs = []
    callbacks = []
    for i, layer in enumerate(model.layers):
        with child_errors(label, i):
            Y_i, backprop_i = layer(X, is_train=is_train)
        outputs.append(Y_i)
        callbacks.append(backprop_i)
    return outputs, callbacks


def backprop_each(label: str, callbacks: Sequence[Callable], d_outputs: Sequence[Any]) -> Any:
    """Backprop each child's output gradient and sum the input gradients they return."""
    d_inputs = []
    for i, (callback, d_output) in enumerate(zip(callbacks, d_outputs)):
        with child_errors(label, i):
            d_inputs.append(callback(d_output))
    return sum_outputs(d_inputs, f"{label} (backprop)")


def sum_outputs(values: Sequence[Any], label: str) -> Any:
    """Elementwise sum of arrays, Ragged, Padded or lists of them, into a new container.

    The inputs are never modified. ``None`` entries (a child without an input
    gradient) are skipped.
    """
    values = [value for value in values if value is not None]
    if not values:
        return None
    first = values[0]
    if len(values) == 1:
        return first
    if isinstance(first, Ragged):
        data = _sum_arrays([value.data for value in values], label)
        return Ragged(data.reshape(first.dataXd.shape), first.lengths)
    if isinstance(first, Padded):
        data = _sum_arrays([value.data for value in values], label)
        return Padded(data, first.size_at_t, first.lengths, first.indices)
    if isinstance(first, (list, tuple)):
        for value in values[1:]:
            if len(value) != len(first):
                raise ShapeMismatchError(
                    f"cannot sum {describe(first)} and {describe(value)}: lengths differ",
                    layer=label,
                )
        summed = [sum_outputs(items, label) for items in zip(*values)]
        return summed if isinstance(first, list) else tuple(summed)
    return _sum_arrays(values, label)


def _sum_arrays(arrays: Sequence[Any], label: str) -> Any:
    first = arrays[0]
    for other in arrays[1:]:
        if getattr(other, "shape", None) != first.shape:
            raise ShapeMismatchError(
                f"cannot sum outputs of different shapes: {describe(first)} and {describe(other)}",
                layer=label,
            )
    total = first + arrays[1]  # a new array: no child's output is modified
    for other in arrays[2:]:
        total += other
    return total


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

