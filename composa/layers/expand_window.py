"""expand_window: concatenate each row with its neighbours (a sliding window of rows)."""
from typing import Any, Callable, Tuple, TypeVar, Union

from ..config import registry
from ..checks import describe
from ..errors import ConfigurationError, ShapeMismatchError
from ..model import Model
from ..types import Floats2d, Ragged

__all__ = ["expand_window"]

InT = TypeVar("InT", Floats2d, Ragged)


@registry.layers("expand_window.v1")
def expand_window(window_size: int = 1) -> Model[InT, InT]:
    """Row i becomes rows i-w..i+w side by side: (N, I) -> (N, (2w+1)*I), zeros past the edges.

    On a Ragged batch windows stop at sequence boundaries; on an array the whole
    array is one sequence.
    """
    if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 0:
        raise ConfigurationError(
            f"window_size must be an int >= 0, got {window_size!r}", layer="expand_window"
        )
    return Model("expand_window", forward, attrs={"window_size": window_size})


def forward(
    model: Model[InT, InT], X: Union[Floats2d, Ragged], is_train: bool
) -> Tuple[Union[Floats2d, Ragged], Callable]:
    if isinstance(X, Ragged):
        return _expand_ragged(model, X)
    return _expand_array(model, X)


def _expand_array(model: Model, X: Floats2d) -> Tuple[Floats2d, Callable]:
    _check_rows(model, X)
    nW = model.attrs["window_size"]
    Y = _seq2col(model, X, nW, None)

    def backprop(dY: Floats2d) -> Floats2d:
        _check_gradient(model, dY, Y.shape)
        return _backprop_seq2col(model, dY, nW, None, X.shape[1])

    return Y, backprop


def _expand_ragged(model: Model, Xr: Ragged) -> Tuple[Ragged, Callable]:
    _check_rows(model, Xr.data)
    nW = model.attrs["window_size"]
    lengths = Xr.lengths
    Y = _seq2col(model, Xr.data, nW, lengths)

    def backprop(dYr: Ragged) -> Ragged:
        dY = dYr.data if isinstance(dYr, Ragged) else dYr
        _check_gradient(model, dY, Y.shape)
        return Ragged(_backprop_seq2col(model, dY, nW, lengths, Xr.data.shape[1]), lengths)

    return Ragged(Y, lengths), backprop


def _seq2col(model: Model, X: Floats2d, nW: int, lengths: Any) -> Floats2d:
    if X.shape[0] == 0:
        return model.ops.alloc2f(0, (2 * nW + 1) * X.shape[1], dtype=X.dtype)
    return model.ops.seq2col(model.ops.as_contig(X), nW, lengths=lengths)


def _backprop_seq2col(model: Model, dY: Floats2d, nW: int, lengths: Any, width: int) -> Floats2d:
    if dY.shape[0] == 0:
        return model.ops.alloc2f(0, width, dtype=dY.dtype)
    return model.ops.backprop_seq2col(model.ops.as_contig(dY), nW, lengths=lengths)


def _check_rows(model: Model, X: Any) -> None:
    if getattr(X, "ndim", None) != 2:
        raise ShapeMismatchError(
            f"expected a 2d array of rows or a Ragged batch, got {describe(X)}", layer=model.name
        )


def _check_gradient(model: Model, dY: Any, shape: Tuple[int, ...]) -> None:
    if getattr(dY, "shape", None) != tuple(shape):
        raise ShapeMismatchError(
            f"shape mismatch in backprop: the output was {tuple(shape)}, the gradient is {describe(dY)}",
            layer=model.name,
        )
