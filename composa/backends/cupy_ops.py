"""CupyOps: the GPU backend. cupy is imported here only if installed; a CupyOps needs it.

The whole surface comes from the base ``Ops`` with ``xp = cupy``. Overrides:
fused elementwise kernels for the activations and murmurhash (float32/float64;
other dtypes use the base code), cupyx scatter operations where numpy's
``ufunc.reduceat``/``add.at`` have no cupy counterpart, and DLPack conversion.
"""
from typing import Any, Optional

import numpy

from ..errors import ShapeMismatchError
from ._checks import check_indices, check_same_shape, check_scatter_values
from ._cupy_kernels import get_kernel
from .ops import Ops

__all__ = ["CupyOps", "has_cupy", "has_cupy_gpu"]

try:  # importing composa must never need cupy or a GPU
    import cupy
    import cupyx

    has_cupy = True
    try:
        has_cupy_gpu = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # cupy installed without a usable driver or device
        has_cupy_gpu = False
except ImportError:
    cupy = None
    cupyx = None
    has_cupy = False
    has_cupy_gpu = False

_FLOATS = ("float32", "float64")


def _fused(*arrays: Any) -> bool:
    """True when every array is a float32/float64 cupy array of one dtype (kernel path)."""
    first = arrays[0]
    return (
        cupy is not None
        and all(isinstance(a, cupy.ndarray) for a in arrays)
        and first.dtype.name in _FLOATS
        and all(a.dtype == first.dtype for a in arrays)
    )


class CupyOps(Ops):
    """Ops on cupy arrays, on the current CUDA device."""

    name = "cupy"
    xp = cupy
    _xp2 = cupyx

    def __init__(self, device_type: str = "gpu", device_id: int = 0, **kwargs: Any) -> None:
        if cupy is None:
            raise ValueError("CupyOps needs cupy: pip install 'composa[cuda]'")
        super().__init__(device_type, device_id, **kwargs)

    # Conversion -------------------------------------------------------------------

    def asarray(self, data: Any, *, dtype: Any = None) -> Any:
        """`data` as a cupy array: zero-copy for cupy arrays and CUDA torch tensors (DLPack)."""
        if isinstance(data, cupy.ndarray):
            return data if dtype is None or data.dtype == dtype else data.astype(dtype)
        if hasattr(data, "__dlpack__") and getattr(data, "is_cuda", False):
            array = cupy.from_dlpack(data.detach() if hasattr(data, "detach") else data)
            return array if dtype is None else array.astype(dtype, copy=False)
        if hasattr(data, "detach"):
            data = data.detach().cpu().numpy()
        return cupy.asarray(data, dtype=dtype)

    def to_numpy(self, data: Any, *, byte_order: Optional[str] = None) -> Any:
        """A numpy copy of `data` (fetched from the device)."""
        if isinstance(data, cupy.ndarray):
            data = data.get()
        return super().to_numpy(data, byte_order=byte_order)

    def gemm(
        self, x: Any, y: Any, out: Any = None, trans1: bool = False, trans2: bool = False
    ) -> Any:
        """``op(x) @ op(y)`` with cuBLAS; numpy inputs are an error (they would be copied silently)."""
        if isinstance(x, numpy.ndarray) or isinstance(y, numpy.ndarray):
            raise ShapeMismatchError("gemm (CupyOps): got a numpy array; move it with ops.asarray first")
        return super().gemm(x, y, out=out, trans1=trans1, trans2=trans2)

    # Activations with fused kernels ----------------------------------------------

    def _elementwise(self, name: str, inplace: bool, target: Any, *args: Any) -> Any:
        kernel = get_kernel(name)
        return kernel(*args, target) if inplace else kernel(*args)

    def sigmoid(self, X: Any, *, inplace: bool = False) -> Any:
        """`Ops.sigmoid` as one fused CUDA kernel for float32/float64 arrays; other dtypes use the base code."""
        if not _fused(X):
            return super().sigmoid(X, inplace=inplace)
        return self._elementwise("sigmoid", inplace, X, X)

    def swish(self, X: Any, inplace: bool = False) -> Any:
        """`Ops.swish` as one fused CUDA kernel for float32/float64 arrays; other dtypes use the base code."""
        if not _fused(X):
            return super().swish(X, inplace=inplace)
        return self._elementwise("swish", inplace, X, X)

    def backprop_swish(self, dY: Any, X: Any, Y: Any, inplace: bool = False) -> Any:
        """`Ops.backprop_swish` as one fused CUDA kernel for float32/float64 arrays; other dtypes use the base code."""
        if not _fused(dY, X, Y):
            return super().backprop_swish(dY, X, Y, inplace=inplace)
        check_same_shape("backprop_swish", dY, X)
        return self._elementwise("backprop_swish", inplace, dY, dY, X, Y)

    def gelu(self, X: Any, inplace: bool = False) -> Any:
        """`Ops.gelu` as one fused CUDA kernel for float32/float64 arrays; other dtypes use the base code."""
        if not _fused(X):
            return super().gelu(X, inplace=inplace)
        return self._elementwise("gelu", inplace, X, X)

    def backprop_gelu(self, dY: Any, X: Any, inplace: bool = False) -> Any:
        """`Ops.backprop_gelu` as one fused CUDA kernel for float32/float64 arrays; other dtypes use the base code."""
        if not _fused(dY, X):
            return super().backprop_gelu(dY, X, inplace=inplace)
        check_same_shape("backprop_gelu", dY, X)
        return self._elementwise("backprop_gelu", inplace, dY, dY, X)

    def mish(self, X: Any, threshold: float = 20.0, inplace: bool = False) -> Any:
        """`Ops.mish` as one fused CUDA kernel for float32/float64 arrays; other dtypes use the base code."""
        if not _fused(X):
            return super().mish(X, threshold=threshold, inplace=inplace)
        return self._elementwise("mish", inplace, X, X, X.dtype.type(threshold))

    def backprop_mish(self, dY: Any, X: Any, threshold: float = 20.0, inplace: bool = False) -> Any:
        """`Ops.backprop_mish` as one fused CUDA kernel for float32/float64 arrays; other dtypes use the base code."""
        if not _fused(dY, X):
            return super().backprop_mish(dY, X, threshold=threshold, inplace=inplace)
        check_same_shape("backprop_mish", dY, X)
        return self._elementwise("backprop_mish", inplace, dY, dY, X, X.dtype.type(threshold))

    def dish(self, X: Any, inplace: bool = False) -> Any:
        """`Ops.dish` as one fused CUDA kernel for float32/float64 arrays; other dtypes use the base code."""
        if not _fused(X):
            return super().dish(X, inplace=inplace)
        return self._elementwise("dish", inplace, X, X)

    def backprop_dish(self, dY: Any, X: Any, inplace: bool = False) -> Any:
        """`Ops.backprop_dish` as one fused CUDA kernel for float32/float64 arrays; other dtypes use the base code."""
        if not _fused(dY, X):
            return super().backprop_dish(dY, X, inplace=inplace)
        check_same_shape("backprop_dish", dY, X)
        return self._elementwise("backprop_dish", inplace, dY, dY, X)

    def clipped_linear(
        self,
        X: Any,
        slope: float = 1.0,
        offset: float = 0.0,
        min_val: float = 0.0,
        max_val: float = 1.0,
        inplace: bool = False,
    ) -> Any:
        """`Ops.clipped_linear` as one fused CUDA kernel for float32/float64 arrays; other dtypes use the base code."""
        if not _fused(X):
            return super().clipped_linear(X, slope, offset, min_val, max_val, inplace=inplace)
        t = X.dtype.type
        return self._elementwise(
            "clipped_linear", inplace, X, X, t(slope), t(offset), t(min_val), t(max_val)
        )

    def backprop_clipped_linear(
        self,
        dY: Any,
        X: Any,
        slope: float = 1.0,
        offset: float = 0.0,
        min_val: float = 0.0,
        max_val: float = 1.0,
        inplace: bool = False,
    ) -> Any:
        """`Ops.backprop_clipped_linear` as one fused CUDA kernel for float32/float64 arrays; other dtypes use the base code."""
        if not _fused(dY, X):
            return super().backprop_clipped_linear(dY, X, slope, offset, min_val, max_val, inplace=inplace)
        check_same_shape("backprop_clipped_linear", dY, X)
        t = X.dtype.type
        return self._elementwise(
            "backprop_clipped_linear", inplace, dY, dY, X, t(slope), t(offset), t(min_val), t(max_val)
        )

    def backprop_hard_swish(self, dY: Any, X: Any, inplace: bool = False) -> Any:
        """`Ops.backprop_hard_swish` as one fused CUDA kernel for float32/float64 arrays; other dtypes use the base code."""
        if not _fused(dY, X):
            return super().backprop_hard_swish(dY, X, inplace=inplace)
        check_same_shape("backprop_hard_swish", dY, X)
        return self._elementwise("backprop_hard_swish", inplace, dY, dY, X)

    def backprop_hard_swish_mobilenet(self, dY: Any, X: Any, inplace: bool = False) -> Any:
        """`Ops.backprop_hard_swish_mobilenet` as one fused CUDA kernel for float32/float64 arrays; other dtypes use the base code."""
        if not _fused(dY, X):
            return super().backprop_hard_swish_mobilenet(dY, X, inplace=inplace)
        check_same_shape("backprop_hard_swish_mobilenet", dY, X)
        return self._elementwise("backprop_hard_swish_mobilenet", inplace, dY, dY, X)

    # Hashing and scatter ---------------------------------------------------------

    def hash(self, ids: Any, seed: int) -> Any:
        """MurmurHash3 x86 128-bit of each uint64 id on the GPU: (N, 4) uint32."""
        if not isinstance(ids, cupy.ndarray) or ids.ndim != 1 or ids.dtype.kind not in "ui":
            return super().hash(ids, seed)
        out = cupy.empty((ids.shape[0], 4), dtype="uint32")
        if ids.shape[0]:
            get_kernel("murmur3_uint64")(
                ids.astype("uint64", copy=False), numpy.uint32(int(seed) & 0xFFFFFFFF), out
            )
        return out

    def scatter_add(self, table: Any, indices: Any, values: Any) -> Any:
        """In place ``table[indices] += values`` with duplicates accumulated (cupyx.scatter_add)."""
        check_indices("scatter_add", indices, table.shape[0])
        check_scatter_values(table, indices, values)
        cupyx.scatter_add(table, indices, values)
        return table

    # cupy has no ufunc.reduceat: segment reductions scatter by sequence id instead.

    def _segment_sum(self, X: Any, host_lengths: Any) -> Any:
        out = self.alloc((len(host_lengths),) + tuple(X.shape[1:]), dtype=X.dtype)
        if X.shape[0]:
            cupyx.scatter_add(out, self._seq_of_row(host_lengths), X)
        return out

    def _segment_max(self, X: Any, host_lengths: Any) -> Any:
        small = cupy.iinfo(X.dtype).min if X.dtype.kind in "iu" else -cupy.inf
        out = cupy.full((len(host_lengths),) + tuple(X.shape[1:]), small, dtype=X.dtype)
        if X.shape[0]:
            cupyx.scatter_max(out, self._seq_of_row(host_lengths), X)
        out[cupy.asarray(host_lengths == 0)] = 0
        return out

    def _segment_min(self, X: Any, host_lengths: Any) -> Any:
        big = cupy.iinfo(X.dtype).max if X.dtype.kind in "iu" else cupy.inf
        out = cupy.full((len(host_lengths),) + tuple(X.shape[1:]), big, dtype=X.dtype)
        if X.shape[0]:
            cupyx.scatter_min(out, self._seq_of_row(host_lengths), X)
        out[cupy.asarray(host_lengths == 0)] = 0
        return out
