"""array_getitem: index into an array batch (``X[index]``) as a layer."""
from typing import Any, Callable, Tuple

from ..checks import describe
from ..errors import ShapeMismatchError
from ..model import Model
from ..serialize import msgpack_dumps
from ..types import Unserializable

# floats_getitem and ints_getitem are public from this module only, as in the reference.
__all__ = ["array_getitem"]


def array_getitem(index: Any) -> Model:
    """``X -> X[index]`` for any array; backprop scatters dY back into zeros shaped like X."""
    return Model("array-getitem", forward, attrs={"index": _storable(index)})


def floats_getitem(index: Any) -> Model:
    """``X -> X[index]`` for float arrays."""
    return Model("floats-getitem", forward, attrs={"index": _storable(index)})


def ints_getitem(index: Any) -> Model:
    """``X -> X[index]`` for int arrays."""
    return Model("ints-getitem", forward, attrs={"index": _storable(index)})


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    index = model.attrs["index"]
    if isinstance(index, Unserializable):
        index = index.obj
    shape = X.shape
    dtype = X.dtype
    basic = _is_basic(index)

    def backprop(dY: Any) -> Any:
        dX = model.ops.alloc(shape, dtype=dtype)
        if len(shape) and shape[0] == 0:
            return dX
        if basic:
            dX[index] = dY
        elif getattr(index, "ndim", None) == 1 and index.dtype.kind in "iu":
            # Repeated rows: their gradients add up.
            model.ops.scatter_add(dX, model.ops.asarray(index), dY)
        else:
            model.ops.xp.add.at(dX, index, dY)
        return dX

    if len(shape) and shape[0] == 0:
        return X, backprop
    try:
        Y = X[index]
    except IndexError as error:
        raise ShapeMismatchError(f"cannot index {describe(X)} with {index!r}: {error}", layer=model.name) from error
    return Y, backprop


def _is_basic(index: Any) -> bool:
    """True for indexes built only of ints, slices, Ellipsis and None (no repeated positions)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(part, (int, slice, type(Ellipsis), type(None))) for part in parts)


def _storable(index: Any) -> Any:
    """The index as an attr: slices and Ellipsis cannot be saved, so they stay out of the bytes.

    The index is set at construction, so a model rebuilt from the same code gets it back.
    """
    try:
        msgpack_dumps(index)
    except (TypeError, ValueError):
        return Unserializable(index)
    return index
