"""Helpers shared by the combinators (add, concatenate, tuplify, chain, residual, the adapters).

Fan-out nodes (add, concatenate, tuplify) feed one input to every child: they take
their dims, run their children and sum the gradients with the helpers here. Every
combinator mirrors its children's widths with :func:`copy_child_dims` or
:func:`copy_shared_nI`. Children run through ``_func`` and their errors are labelled
inline, in both passes (see :mod:`composa.checks`).
"""
from typing import Any, Callable, List, Optional, Sequence, Tuple

from ..checks import describe
from ..errors import ComposaError, ShapeMismatchError
from ..model import Model
from ..types import Padded, Ragged

# Private helpers: nothing here is exported through composa.layers.
__all__: list = []


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


def copy_child_dims(model: Model, layer: Model) -> None:
    """Copy every dim `layer` has set onto the same-named dims of `model`."""
    for name in model.dim_names:
        value = layer.maybe_get_dim(name)
        if value is not None:
            model.set_dim(name, value, force=True)


def output_width(Y: Any) -> Optional[int]:
    """The feature width of a sample output (array, Ragged, Padded or list), or None."""
    if isinstance(Y, (Ragged, Padded)) or hasattr(Y, "shape"):
        data = Y.data if isinstance(Y, (Ragged, Padded)) else Y
        return int(data.shape[-1]) if data.ndim >= 2 else None
    if isinstance(Y, list) and Y and hasattr(Y[0], "shape"):
        return output_width(Y[0])
    return None


def sample_Y_for(layer: Model, Y: Any) -> Any:
    """The sample output a fan-out node passes to a child's initialize: Y, as Thinc passes it.

    A child whose nO is already set to another width gets None instead, where Thinc's
    child would raise on the conflict (``concatenate(Relu(2), Relu(3))`` with Y of width 5).
    """
    known = layer.maybe_get_dim("nO") if layer.has_dim("nO") else None
    if Y is None or known is None or output_width(Y) in (None, known):
        return Y
    return None


def run_each(model: Model, label: str, X: Any, is_train: bool) -> Tuple[List[Any], List[Callable]]:
    """Run every child of `model` on the same X: their outputs and backprop callbacks."""
    outputs = []
    callbacks = []
    for i, layer in enumerate(model.layers):
        try:
            Y_i, backprop_i = layer._func(layer, X, is_train=is_train)
        except ComposaError as error:
            error.push_parent(label, i, layer.name)
            raise
        outputs.append(Y_i)
        callbacks.append(backprop_i)
    return outputs, callbacks


def backprop_each(model: Model, label: str, callbacks: Sequence[Callable], d_outputs: Sequence[Any]) -> Any:
    """Backprop each child's output gradient and sum the input gradients they return."""
    d_inputs = []
    for i, (callback, d_output) in enumerate(zip(callbacks, d_outputs)):
        try:
            d_inputs.append(callback(d_output))
        except ComposaError as error:
            error.push_parent(label, i, model.layers[i].name)
            raise
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
