"""The base ``Ops`` class: every array operation composa's layers use, written once against ``self.xp``.

``NumpyOps`` and ``CupyOps`` subclass it and override only where their array module
can do better. Layers never call numpy or cupy directly: they call ``model.ops``.
"""
from typing import Any, Optional, Sequence, Tuple, Union

import numpy

from ..errors import ShapeMismatchError
from ..types import Padded

__all__ = ["Ops"]

ArrayShape = Union[int, Tuple[int, ...]]


class Ops:
    """Array operations on the CPU with numpy; the reference every backend must match."""

    name: str = "base"
    xp: Any = numpy

    def __init__(self, device_type: str = "cpu", device_id: int = -1, **kwargs: Any) -> None:
        self.device_type = device_type
        self.device_id = device_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device_type={self.device_type!r}, device_id={self.device_id})"

    # Allocation and conversion -------------------------------------------------

    def alloc(self, shape: ArrayShape, *, dtype: Any = "float32", zeros: bool = True) -> Any:
        """A new array of `shape`: zeros, or uninitialised memory when `zeros=False`."""
        if isinstance(shape, int):
            shape = (shape,)
        return self.xp.zeros(shape, dtype=dtype) if zeros else self.xp.empty(shape, dtype=dtype)

    def alloc1f(self, d0: int, *, dtype: Any = "float32", zeros: bool = True) -> Any:
        return self.alloc((d0,), dtype=dtype, zeros=zeros)

    def alloc2f(self, d0: int, d1: int, *, dtype: Any = "float32", zeros: bool = True) -> Any:
        return self.alloc((d0, d1), dtype=dtype, zeros=zeros)

    def alloc3f(self, d0: int, d1: int, d2: int, *, dtype: Any = "float32", zeros: bool = True) -> Any:
        return self.alloc((d0, d1, d2), dtype=dtype, zeros=zeros)

    def alloc4f(
        self, d0: int, d1: int, d2: int, d3: int, *, dtype: Any = "float32", zeros: bool = True
    ) -> Any:
        return self.alloc((d0, d1, d2, d3), dtype=dtype, zeros=zeros)

    def alloc_f(self, shape: ArrayShape, *, dtype: Any = "float32", zeros: bool = True) -> Any:
        return self.alloc(shape, dtype=dtype, zeros=zeros)

    def alloc1i(self, d0: int, *, dtype: Any = "int32", zeros: bool = True) -> Any:
        return self.alloc((d0,), dtype=dtype, zeros=zeros)

    def alloc2i(self, d0: int, d1: int, *, dtype: Any = "int32", zeros: bool = True) -> Any:
        return self.alloc((d0, d1), dtype=dtype, zeros=zeros)

    def alloc3i(self, d0: int, d1: int, d2: int, *, dtype: Any = "int32", zeros: bool = True) -> Any:
        return self.alloc((d0, d1, d2), dtype=dtype, zeros=zeros)

    def alloc4i(
        self, d0: int, d1: int, d2: int, d3: int, *, dtype: Any = "int32", zeros: bool = True
    ) -> Any:
        return self.alloc((d0, d1, d2, d3), dtype=dtype, zeros=zeros)

    def alloc_i(self, shape: ArrayShape, *, dtype: Any = "int32", zeros: bool = True) -> Any:
        return self.alloc(shape, dtype=dtype, zeros=zeros)

    def asarray(self, data: Any, *, dtype: Any = None) -> Any:
        """`data` as an array of this backend (no copy when it already is one)."""
        if isinstance(data, self.xp.ndarray):
            return data if dtype is None or data.dtype == dtype else data.astype(dtype)
        if hasattr(data, "numpy") and hasattr(data, "detach"):  # a CPU torch tensor
            data = data.detach().cpu().numpy()
        elif hasattr(data, "get") and not isinstance(data, (dict, numpy.ndarray)):  # cupy
            data = data.get()
        return self.xp.asarray(data, dtype=dtype)

    def asarray1f(self, data: Any, *, dtype: Any = "float32") -> Any:
        return self.asarray(data, dtype=dtype)

    asarray2f = asarray3f = asarray4f = asarray_f = asarray1f

    def asarray1i(self, data: Any, *, dtype: Any = "int32") -> Any:
        return self.asarray(data, dtype=dtype)

    asarray2i = asarray3i = asarray4i = asarray_i = asarray1i

    def as_contig(self, data: Any, dtype: Any = None) -> Any:
        """`data` if C-contiguous with the right dtype, else a contiguous copy."""
        if data.flags["C_CONTIGUOUS"] and (dtype is None or data.dtype == dtype):
            return data
        return self.xp.ascontiguousarray(data, dtype=dtype)

    def to_numpy(self, data: Any, *, byte_order: Optional[str] = None) -> Any:
        """A numpy copy (or view) of `data`, optionally with a given byte order ("<" or ">")."""
        if not isinstance(data, numpy.ndarray):
            data = data.get() if hasattr(data, "get") else numpy.asarray(data)
        if byte_order is not None:
            data = data.astype(data.dtype.newbyteorder(byte_order), copy=False)
        return data

    def reshape(self, array: Any, shape: ArrayShape) -> Any:
        return array.reshape(shape)

    def reshape1(self, array: Any, d0: int) -> Any:
        return array.reshape((d0,))

    def reshape2(self, array: Any, d0: int, d1: int) -> Any:
        return array.reshape((d0, d1))

    def reshape3(self, array: Any, d0: int, d1: int, d2: int) -> Any:
        return array.reshape((d0, d1, d2))

    def reshape4(self, array: Any, d0: int, d1: int, d2: int, d3: int) -> Any:
        return array.reshape((d0, d1, d2, d3))

    reshape1f = reshape1i = reshape1
    reshape2f = reshape2i = reshape2
    reshape3f = reshape3i = reshape3
    reshape4f = reshape4i = reshape4
    reshape_f = reshape_i = reshape

    # Linear algebra --------------------------------------------------------------

    def gemm(
        self, x: Any, y: Any, out: Any = None, trans1: bool = False, trans2: bool = False
    ) -> Any:
        """``op(x) @ op(y)`` where op transposes when `trans1`/`trans2`; written into `out` if given."""
        if x.ndim != 2 or y.ndim != 2:
            raise ShapeMismatchError(
                f"gemm expects 2d arrays, got shapes {tuple(x.shape)} and {tuple(y.shape)}"
            )
        a = x.T if trans1 else x
        b = y.T if trans2 else y
        if a.shape[1] != b.shape[0]:
            raise ShapeMismatchError(
                f"gemm: inner dimensions differ: {tuple(a.shape)} @ {tuple(b.shape)}"
            )
        if out is None:
            return a @ b
        self.xp.matmul(a, b, out=out)
        return out

    def affine(self, X: Any, W: Any, b: Any) -> Any:
        """``X @ W.T + b``."""
        Y = self.gemm(X, W, trans2=True)
        Y += b
        return Y

    # Activations -----------------------------------------------------------------

    def relu(self, X: Any, inplace: bool = False) -> Any:
        if inplace:
            return self.xp.maximum(X, 0, out=X)
        return self.xp.maximum(X, 0)

    def backprop_relu(self, dY: Any, Y: Any, inplace: bool = False) -> Any:
        if inplace:
            dY *= Y > 0
            return dY
        return dY * (Y > 0)

    def softmax(
        self, x: Any, *, inplace: bool = False, axis: int = -1, temperature: float = 1.0
    ) -> Any:
        if temperature != 1.0:
            x = x / temperature
        shifted = x - x.max(axis=axis, keepdims=True)
        out = self.xp.exp(shifted, out=x if inplace and temperature == 1.0 else None)
        out /= out.sum(axis=axis, keepdims=True)
        return out

    def backprop_softmax(
        self, Y: Any, dY: Any, *, axis: int = -1, temperature: float = 1.0
    ) -> Any:
        dX = Y * dY
        dX -= Y * dX.sum(axis=axis, keepdims=True)
        if temperature != 1.0:
            dX /= temperature
        return dX

    # Sequences ---------------------------------------------------------------------

    def flatten(
        self, X: Sequence[Any], dtype: Any = None, pad: int = 0, ndim_if_empty: int = 2
    ) -> Any:
        """Concatenate arrays along their first axis (optionally with `pad` zero rows between)."""
        if X is None or len(X) == 0:
            return self.alloc((0,) * ndim_if_empty, dtype=dtype or "f")
        xp = self.xp
        if pad >= 1:
            padding = xp.zeros((pad,) + tuple(X[0].shape[1:]), dtype=X[0].dtype)
            pieces = [padding]
            for x in X:
                pieces.extend((x, padding))
            X = pieces
        result = xp.concatenate(list(X), axis=0)
        return result if dtype is None else result.astype(dtype, copy=False)

    def unflatten(self, X: Any, lengths: Any, pad: int = 0) -> list:
        """Split the rows of `X` into pieces of `lengths` rows (the inverse of flatten)."""
        lengths = [int(n) for n in self.to_numpy(lengths)]
        total = sum(lengths) + pad * (len(lengths) + 1 if lengths else 0)
        if total != X.shape[0]:
            raise ShapeMismatchError(
                f"unflatten: lengths cover {total} rows but the array has {X.shape[0]}"
            )
        pieces = []
        start = pad
        for length in lengths:
            pieces.append(X[start : start + length])
            start += length + pad
        return pieces

    def get_dropout_mask(self, shape: ArrayShape, drop: Optional[float]) -> Any:
        """An inverted-dropout mask: 0 with probability `drop`, else 1/(1-drop)."""
        if drop is None or drop <= 0:
            return self.xp.ones(shape, dtype="f")
        if drop >= 1.0:
            return self.alloc(shape)
        keep = self.xp.random.uniform(0.0, 1.0, shape) >= drop
        return keep.astype("float32") / (1.0 - drop)
