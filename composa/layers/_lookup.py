"""The lookup-table core shared by Embed and HashEmbed.

Both hold a table ``E (nV, nO)``, read integer ids from the input (a 1d array, or a
column of a 2d one), may drop whole embedding columns in training, and add ``dY``
into ``dE`` by rows on the way back; only how an id picks its rows differs.
"""
from typing import Any, Callable, Optional, Tuple

from ..checks import check_gradient_shape, describe
from ..errors import ConfigurationError, ShapeMismatchError
from ..model import Model
from ..types import Floats2d
from ..util import get_width

# Private helpers: nothing here is exported through composa.layers.
__all__: list = []


def init_table(
    initializer: Callable, model: Model[Any, Floats2d], X: Optional[Any] = None, Y: Optional[Floats2d] = None
) -> Model[Any, Floats2d]:
    """Set nO from Y when given (nV must be set), then draw E (nV, nO)."""
    if Y is not None:
        model.set_dim("nO", get_width(Y))
    shape = (model.get_dim("nV"), model.get_dim("nO"))
    model.set_param("E", initializer(model.ops, shape))
    return model


def lookup_attrs(column: Optional[int], dropout: Optional[float], **extra: Any) -> dict:
    """The attrs of a lookup table layer: the id column, the dropout rate if any, and `extra`."""
    attrs: dict = {"column": column, **extra}
    if dropout is not None:
        attrs["dropout_rate"] = dropout
    return attrs


def finish_lookup(
    model: Model, X: Any, Y: Floats2d, is_train: bool, scatter: Callable[[Floats2d, Floats2d], None]
) -> Tuple[Floats2d, Callable]:
    """Apply column dropout to the looked-up rows `Y`; backprop adds dY into dE by `scatter(dE, dY)`."""
    mask = dropout_mask(model, Y.shape[1], is_train)
    if mask is not None:
        Y *= mask

    def backprop(dY: Floats2d) -> Any:
        check_gradient_shape(model, dY, Y)
        if mask is not None:
            dY = dY * mask
        dE = model.maybe_get_grad("E")
        if dE is None:
            E = model.get_param("E")
            dE = model.ops.alloc(E.shape, dtype=E.dtype)
            model.set_grad("E", dE)
        scatter(dE, dY)
        # Ids have no gradient: the input's gradient is zeros of its shape.
        return model.ops.alloc(X.shape, dtype=X.dtype)

    return Y, backprop


def select_ids(model: Model, X: Any) -> Any:
    """The 1d integer ids in `X` (column ``attrs["column"]`` of a 2d `X`), or a clear error."""
    column = model.attrs.get("column")
    dtype = getattr(X, "dtype", None)
    if dtype is None or dtype.kind not in "iu":
        raise ShapeMismatchError(f"expected an array of integer ids, got {describe(X)}", layer=model.name)
    if column is None:
        if X.ndim != 1:
            raise ShapeMismatchError(
                f"expected a 1d array of ids (or pass column= for 2d input), got {describe(X)}",
                layer=model.name,
            )
        return X
    if X.ndim != 2 or not -X.shape[1] <= column < X.shape[1]:
        raise ShapeMismatchError(
            f"expected a 2d array of ids with a column {column}, got {describe(X)}", layer=model.name
        )
    return X[:, column]


def dropout_mask(model: Model, width: int, is_train: bool) -> Optional[Any]:
    """A (width,) inverted-dropout mask shared by all rows, or None when not dropping."""
    rate = model.attrs.get("dropout_rate")
    if not is_train or not rate:
        return None
    if not 0.0 <= rate <= 1.0:
        raise ConfigurationError(f"dropout rate must be in [0, 1], got {rate!r}", layer=model.name)
    return model.ops.get_dropout_mask((width,), rate)
