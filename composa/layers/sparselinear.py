"""SparseLinear: a hashed linear model over sparse (key, value) features."""
from typing import Any, Callable, Optional, Tuple

from ..config import registry
from ..checks import describe
from ..errors import ConfigurationError, ShapeMismatchError
from ..model import Model
from ..types import ArrayXd, Floats2d
from ..util import get_width
from ..checks import check_gradient_shape

__all__ = ["SparseLinear", "SparseLinear_v2"]

InT = Tuple[ArrayXd, ArrayXd, ArrayXd]


@registry.layers("SparseLinear.v1")
def SparseLinear(nO: Optional[int] = None, length: int = 2**18) -> Model[InT, Floats2d]:
    """Hashed linear model, original indexing: (keys, values, lengths) -> (batch, nO).

    Kept for models trained with it: v1 masks each hash with ``length - 1`` and
    reads ``W[bucket + class]``, so only the first ``length + nO`` weights are
    used. New models should use :func:`SparseLinear_v2`.
    """
    return _sparse_linear(nO, length, v1_indexing=True)


@registry.layers("SparseLinear.v2")
def SparseLinear_v2(nO: Optional[int] = None, length: int = 2**18) -> Model[InT, Floats2d]:
    """Hashed linear model: (keys uint64 (N,), values (N,), lengths (batch,)) -> (batch, nO).

    Each key is hashed twice into `length` buckets per class; the score of class c
    for an example is ``b[c] + sum(value * (W[c, h0(key)] + W[c, h1(key)]))`` over
    the example's ``lengths[i]`` consecutive keys.
    """
    return _sparse_linear(nO, length, v1_indexing=False)


def _sparse_linear(nO: Optional[int], length: int, *, v1_indexing: bool) -> Model[InT, Floats2d]:
    if length < 1:
        raise ConfigurationError(
            f"length (buckets per class) must be at least 1, got {length}", layer="sparse_linear"
        )
    return Model(
        "sparse_linear",
        forward,
        init=init,
        dims={"nO": nO, "length": length},
        params={"W": None, "b": None},
        attrs={"v1_indexing": v1_indexing},
    )


def forward(model: Model[InT, Floats2d], keys_values_lengths: InT, is_train: bool) -> Tuple[Floats2d, Callable]:
    W = model.get_param("W")
    b = model.get_param("b")
    keys, values, lengths = _validate(model, keys_values_lengths, W.dtype)
    ops = model.ops
    xp = ops.xp
    nO = b.shape[0]
    length = model.get_dim("length")
    classes = xp.arange(nO, dtype="int64")
    columns = []
    for seed in (0, 1):
        bucket = ops.hash(keys, seed)[:, 0].astype("int64")
        if model.attrs["v1_indexing"]:
            columns.append((bucket & (length - 1))[:, None] + classes[None, :])
        else:
            columns.append(classes[None, :] * length + (bucket % length)[:, None])
    index = xp.concatenate(columns, axis=0)  # (2N, nO): both hashes of every key
    scale = xp.concatenate((values, values))[:, None]
    # The example each key belongs to (searchsorted, unlike repeat by an array, also runs on cupy).
    example = xp.searchsorted(xp.cumsum(lengths), xp.arange(keys.shape[0]), side="right")
    example = xp.concatenate((example, example))
    Y = ops.alloc((lengths.shape[0], nO), dtype=W.dtype)
    ops.scatter_add(Y, example, W[index] * scale)
    Y += b

    def backprop(dY: Floats2d) -> InT:
        check_gradient_shape(model, dY, Y)
        model.inc_grad("b", dY.sum(axis=0))
        dW = model.maybe_get_grad("W")
        if dW is None:
            dW = ops.alloc(W.shape, dtype=W.dtype)
            model.set_grad("W", dW)
        ops.scatter_add(dW, index.ravel(), (dY[example] * scale).ravel())
        return keys_values_lengths

    return Y, backprop


def init(
    model: Model[InT, Floats2d], X: Optional[InT] = None, Y: Optional[Floats2d] = None
) -> Model[InT, Floats2d]:
    """Set nO from Y; W (nO * length,) and b (nO,) start at zero."""
    if Y is not None:
        model.set_dim("nO", get_width(Y))
    nO, length = model.get_dim("nO"), model.get_dim("length")
    model.set_param("W", model.ops.alloc1f(nO * length))
    model.set_param("b", model.ops.alloc1f(nO))
    return model


def _validate(model: Model, X: Any, dtype: Any) -> Tuple[Any, Any, Any]:
    """Check the (keys, values, lengths) triple: 1d arrays, integer keys and lengths, matching sizes."""
    if not isinstance(X, (tuple, list)) or len(X) != 3:
        raise ShapeMismatchError(f"expected a (keys, values, lengths) tuple, got {describe(X)}", layer=model.name)
    keys, values, lengths = X
    for label, array, kinds in (("keys", keys, "iu"), ("values", values, "fiu"), ("lengths", lengths, "iu")):
        array_dtype = getattr(array, "dtype", None)
        if array_dtype is None or array.ndim != 1 or array_dtype.kind not in kinds:
            expected = "float" if label == "values" else "integer"
            raise ShapeMismatchError(
                f"{label} must be a 1d {expected} array, got {describe(array)}", layer=model.name
            )
    if values.shape[0] != keys.shape[0]:
        raise ShapeMismatchError(
            f"keys and values must have the same length, got {keys.shape[0]} keys and {values.shape[0]} values",
            layer=model.name,
        )
    total = int(lengths.sum())
    if lengths.size and int(lengths.min()) < 0:
        raise ShapeMismatchError(f"lengths must be non-negative, got min {int(lengths.min())}", layer=model.name)
    if total != keys.shape[0]:
        raise ShapeMismatchError(f"lengths sum to {total} but there are {keys.shape[0]} keys", layer=model.name)
    return model.ops.as_contig(keys, dtype="uint64"), values.astype(dtype, copy=False), lengths
