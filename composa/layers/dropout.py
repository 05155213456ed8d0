"""Dropout: zero a random fraction of the activations during training (inverted dropout)."""
from typing import Any, Callable, List, Tuple, TypeVar

from ..config import registry
from ..checks import describe
from ..errors import ConfigurationError, ShapeMismatchError
from ..model import Model
from ..types import Padded, Ragged

__all__ = ["Dropout"]

InT = TypeVar("InT")


@registry.layers("Dropout.v1")
def Dropout(rate: float = 0.0) -> Model[InT, InT]:
    """Zero each value with probability `rate` and scale the rest by ``1 / (1 - rate)`` while training.

    Takes an array, a list of arrays, a Ragged or a Padded and returns the same type.
    It is the identity at prediction time, when ``rate == 0`` or when the attr
    ``is_enabled`` is False.
    """
    _check_rate(rate)
    return Model("dropout", forward, attrs={"dropout_rate": rate, "is_enabled": True})


def forward(model: Model[InT, InT], X: Any, is_train: bool) -> Tuple[Any, Callable]:
    rate = model.attrs["dropout_rate"]
    if not is_train or not rate or not model.attrs["is_enabled"]:
        return X, _identity
    _check_rate(rate)
    ops = model.ops
    if isinstance(X, Ragged):
        mask = ops.get_dropout_mask(X.data.shape, rate)
        Y_ragged = Ragged(_apply(X.data, mask), X.lengths)

        def backprop_ragged(dY: Ragged) -> Ragged:
            return Ragged(_apply(_data(model, dY, X.data.shape), mask), dY.lengths)

        return Y_ragged, backprop_ragged
    if isinstance(X, Padded):
        mask = ops.get_dropout_mask(X.data.shape, rate)
        Y_padded = Padded(_apply(X.data, mask), X.size_at_t, X.lengths, X.indices)

        def backprop_padded(dY: Padded) -> Padded:
            d_data = _apply(_data(model, dY, X.data.shape), mask)
            return Padded(d_data, dY.size_at_t, dY.lengths, dY.indices)

        return Y_padded, backprop_padded
    if isinstance(X, (list, tuple)):
        masks = [ops.get_dropout_mask(x.shape, rate) for x in X]
        Y_list = [_apply(x, mask) for x, mask in zip(X, masks)]

        def backprop_list(dY: List[Any]) -> List[Any]:
            if len(dY) != len(masks):
                raise ShapeMismatchError(
                    f"backprop expected {len(masks)} gradients, got {describe(dY)}", layer=model.name
                )
            return [_apply(_data(model, d, mask.shape), mask) for d, mask in zip(dY, masks)]

        return Y_list, backprop_list
    if not hasattr(X, "shape"):
        raise ShapeMismatchError(
            f"expected an array, a list of arrays, a Ragged or a Padded, got {describe(X)}",
            layer=model.name,
        )
    mask = ops.get_dropout_mask(X.shape, rate)

    def backprop(dY: Any) -> Any:
        return _apply(_data(model, dY, mask.shape), mask)

    return _apply(X, mask), backprop


def _identity(dY: Any) -> Any:
    return dY


def _apply(array: Any, mask: Any) -> Any:
    # Keep the array's dtype (the mask is float32; float64 inputs stay float64).
    out = array * mask
    return out if out.dtype == array.dtype else out.astype(array.dtype)


def _data(model: Model, dY: Any, shape: Tuple[int, ...]) -> Any:
    data = dY.data if isinstance(dY, (Ragged, Padded)) else dY
    if getattr(data, "shape", None) != shape:
        raise ShapeMismatchError(
            f"backprop expected a gradient of shape {tuple(shape)}, got {describe(data)}",
            layer=model.name,
        )
    return data


def _check_rate(rate: Any) -> None:
    if not 0.0 <= rate <= 1.0:
        raise ConfigurationError(f"dropout rate must be in [0, 1], got {rate!r}", layer="dropout")
