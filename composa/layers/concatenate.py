"""concatenate: run several layers on the same input and join their outputs feature-wise.

Unlike the reference, ``concatenate(concatenate(a, b), c)`` builds a new flat
node instead of appending to (mutating) the first argument, and the summed input
gradient is written into a fresh array.
"""
from typing import Any, Callable, List, Optional, Tuple

from ..config import registry
from ..checks import child_errors, describe
from ..errors import ShapeMismatchError
from ..model import Model
from ..types import Padded, Ragged
from ..util import get_width
from ._combine import backprop_each, copy_shared_nI, fan_out_dims, flatten_nested, output_width, run_each
from .noop import noop

__all__ = ["concatenate"]


@registry.layers("concatenate.v1")
def concatenate(*layers: Model) -> Model:
    """Join the layers' outputs along the last axis: ``(X) -> [f(X) | g(X)]``.

    Examples:
        >>> import numpy
        >>> from composa import Relu, concatenate
        >>> model = concatenate(Relu(4), Relu(6)).initialize(X=numpy.zeros((2, 3), dtype="float32"))
        >>> model.predict(numpy.zeros((2, 3), dtype="float32")).shape
        (2, 10)
    """
    if not layers:
        return noop()
    if len(layers) == 1:
        return layers[0]
    children = flatten_nested(forward, list(layers))
    model: Model = Model(
        "|".join(child.name for child in children), forward, init=init, dims=fan_out_dims(children), layers=children
    )
    _set_known_dims(model)
    return model


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    outputs, callbacks = run_each(model, "concatenate", X, is_train)
    first = outputs[0]
    if isinstance(first, Ragged):
        data, widths = _join(model, [Y_i.data for Y_i in outputs])
        Y: Any = Ragged(data, first.lengths)
    elif isinstance(first, Padded):
        data, widths = _join(model, [Y_i.data for Y_i in outputs])
        Y = Padded(data, first.size_at_t, first.lengths, first.indices)
    elif isinstance(first, list):
        lengths = [len(item) for item in first]
        data, widths = _join(model, [model.ops.flatten(Y_i) for Y_i in outputs])
        Y = model.ops.unflatten(data, lengths) if first else []
    else:
        Y, widths = _join(model, outputs)

    def backprop(dY: Any) -> Any:
        if isinstance(dY, Ragged):
            pieces = _split(model, dY.data, widths)
            d_outputs: List[Any] = [Ragged(piece, Y_i.lengths) for piece, Y_i in zip(pieces, outputs)]
        elif isinstance(dY, Padded):
            pieces = _split(model, dY.data, widths)
            d_outputs = [Padded(piece, dY.size_at_t, dY.lengths, dY.indices) for piece in pieces]
        elif isinstance(dY, list):
            if not dY:
                d_outputs = [[] for _ in outputs]
            else:
                pieces = _split(model, model.ops.flatten(dY), widths)
                d_outputs = [model.ops.unflatten(piece, lengths) for piece in pieces]
        else:
            d_outputs = _split(model, dY, widths)
        return backprop_each(model, "concatenate", callbacks, d_outputs)

    return Y, backprop


def init(model: Model, X: Optional[Any] = None, Y: Optional[Any] = None) -> Model:
    """Initialise every child on X; nO is the sum of the children's output widths."""
    if X is not None and model.has_dim("nI") is not False:
        model.set_dim("nI", get_width(X), force=True)
    for i, layer in enumerate(model.layers):
        with child_errors("concatenate", i):
            layer.initialize(X=X)
    _set_known_dims(model)
    if model.has_dim("nO") is None and X is not None:
        width = output_width(model.predict(X))
        if width is not None:
            model.set_dim("nO", width)
    return model


def _join(model: Model, arrays: List[Any]) -> Tuple[Any, List[int]]:
    first = arrays[0]
    for i, array in enumerate(arrays[1:], 1):
        if array.shape[:-1] != first.shape[:-1]:
            raise ShapeMismatchError(
                f"layer {i} returned {describe(array)} but layer 0 returned {describe(first)}; "
                f"outputs must agree on every axis but the last",
                layer="concatenate",
            )
    widths = [int(array.shape[-1]) for array in arrays]
    return model.ops.xp.concatenate(arrays, axis=-1), widths


def _split(model: Model, d_joined: Any, widths: List[int]) -> List[Any]:
    if d_joined.shape[-1] != sum(widths):
        raise ShapeMismatchError(
            f"expected a gradient of width {sum(widths)}, got {describe(d_joined)}",
            layer="concatenate",
        )
    pieces = []
    start = 0
    for width in widths:
        # A contiguous copy, so a child that works in place cannot touch the caller's dY.
        pieces.append(model.ops.as_contig(d_joined[..., start : start + width]))
        start += width
    return pieces


def _set_known_dims(model: Model) -> None:
    copy_shared_nI(model)
    widths_out = [layer.maybe_get_dim("nO") for layer in model.layers]
    known_widths = [width for width in widths_out if width is not None]
    if len(known_widths) == len(widths_out):
        model.set_dim("nO", sum(known_widths), force=True)
