"""bidirectional: run one layer forwards and another backwards in time, join their features.

Unlike the reference, the right-to-left layer really sees every sequence reversed
(respecting each sequence's length: padding stays at the end), its output is
reversed back, and the gradient is split so each direction gets its own columns.
"""
from typing import Any, Callable, Optional, Tuple

from ..config import registry
from ..checks import child_errors, describe
from ..errors import ComposaError, ShapeMismatchError
from ..model import Model
from ..types import Padded

__all__ = ["bidirectional"]


@registry.layers("bidirectional.v1")
def bidirectional(l2r: Model, r2l: Optional[Model] = None) -> Model:
    """Padded -> Padded: ``[l2r(X) | reverse(r2l(reverse(X)))]``; `r2l` defaults to a copy of `l2r`."""
    if r2l is None:
        r2l = l2r.copy()
    return Model(f"bi{l2r.name}", forward, init=init, layers=[l2r, r2l])


def forward(model: Model, X: Padded, is_train: bool) -> Tuple[Padded, Callable]:
    if not isinstance(X, Padded):
        raise ShapeMismatchError(
            f"expected a Padded batch, got {describe(X)}; wrap the layer in with_padded()",
            layer="bidirectional",
        )
    l2r, r2l = model.layers
    reverse = _reverser(model, X)
    try:
        Y_l2r, backprop_l2r = l2r._func(l2r, X, is_train=is_train)
    except ComposaError as error:
        error.push_parent("bidirectional", 0, l2r.name)
        raise
    try:
        Y_r2l_reversed, backprop_r2l = r2l._func(r2l, reverse(X), is_train=is_train)
    except ComposaError as error:
        error.push_parent("bidirectional", 1, r2l.name)
        raise
    Y_r2l = reverse(Y_r2l_reversed)
    width_l2r = Y_l2r.data.shape[-1]
    if Y_l2r.data.shape[:-1] != Y_r2l.data.shape[:-1]:
        raise ShapeMismatchError(
            f"the directions' outputs do not line up: {describe(Y_l2r.data)} and {describe(Y_r2l.data)}",
            layer="bidirectional",
        )
    Y = Padded(
        model.ops.xp.concatenate((Y_l2r.data, Y_r2l.data), axis=-1), X.size_at_t, X.lengths, X.indices
    )

    def backprop(dY: Padded) -> Padded:
        d_l2r = _with_data(dY, model.ops.as_contig(dY.data[..., :width_l2r]))
        d_r2l = _with_data(dY, model.ops.as_contig(dY.data[..., width_l2r:]))
        try:
            dX_l2r = backprop_l2r(d_l2r)
        except ComposaError as error:
            error.push_parent("bidirectional", 0, l2r.name)
            raise
        try:
            dX_r2l = reverse(backprop_r2l(reverse(d_r2l)))
        except ComposaError as error:
            error.push_parent("bidirectional", 1, r2l.name)
            raise
        return _with_data(dX_l2r, dX_l2r.data + dX_r2l.data)

    return Y, backprop


def init(model: Model, X: Optional[Padded] = None, Y: Optional[Padded] = None) -> Model:
    """Initialise both directions; a sample Y is split in two halves of its features."""
    l2r, r2l = model.layers
    Y_l2r = Y_r2l = None
    if Y is not None:
        half = Y.data.shape[-1] // 2
        Y_l2r = _with_data(Y, Y.data[..., :half])
        Y_r2l = _with_data(Y, Y.data[..., half:])
    X_reversed = _reverser(model, X)(X) if X is not None else None
    with child_errors("bidirectional", 0):
        l2r.initialize(X=X, Y=Y_l2r)
    with child_errors("bidirectional", 1):
        r2l.initialize(X=X_reversed, Y=Y_r2l)
    return model


def _reverser(model: Model, X: Padded) -> Callable[[Padded], Padded]:
    """A function that reverses each sequence of a Padded shaped like X (its own inverse)."""
    xp = model.ops.xp
    n_steps, batch_size = X.data.shape[0], X.data.shape[1]
    lengths = xp.asarray(X.lengths).reshape((1, -1))
    steps = xp.arange(n_steps).reshape((-1, 1))
    # Row t of sequence b comes from row lengths[b]-1-t; padding rows stay where they are.
    source_steps = xp.where(steps < lengths, lengths - 1 - steps, steps)
    columns = xp.broadcast_to(xp.arange(batch_size).reshape((1, -1)), source_steps.shape)

    def reverse(padded: Padded) -> Padded:
        return _with_data(padded, padded.data[source_steps, columns])

    return reverse


def _with_data(padded: Padded, data: Any) -> Padded:
    return Padded(data, padded.size_at_t, padded.lengths, padded.indices)
