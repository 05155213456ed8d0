"""NumpyOps: the CPU backend.

It inherits the whole surface from ``Ops`` (written against numpy already) and
overrides only where it can do measurably better: BLAS calls writing into (or adding
to) a given output, and compiled kernels (``_numba_kernels``) for the activations,
table gathers and scatters, Adam and the LSTM steps when numba is available. Each
override falls back to the numpy code for arrays a kernel does not take (other
dtypes, non-contiguous views) and when ``kernels="numpy"`` (see ``_kernels``).
"""
import sys
from types import ModuleType
from typing import Any, Optional, Tuple

import numpy

from ..errors import ShapeMismatchError
from ..thinc_compat import NumpyOpsThincArgs
from ._checks import (
    check_gemm,
    check_indices,
    check_gemm_out,
    check_lengths,
    check_ndim,
    check_same_shape,
    check_scatter_values,
)
from ._kernels import load_kernels, resolve_choice
from .ops import Ops

__all__ = ["NumpyOps", "MPSOps", "AppleOps"]

# Below this many values numpy's one-ufunc relu (and its backprop) beats a kernel call,
# whose dispatch costs about 2 us: small batches (per-layer dispatch) stay on numpy.
_NUMPY_RELU_BELOW = 4096


class NumpyOps(NumpyOpsThincArgs, Ops):
    """Ops on numpy arrays, with numpy-specific fast paths where they measurably help."""

    name = "numpy"
    xp = numpy

    def __init__(
        self, device_type: str = "cpu", device_id: int = -1, *, use_blis: bool = False, **kwargs: Any
    ) -> None:
        # `kernels` ("auto", "numba" or "numpy", default $COMPOSA_KERNELS) comes through
        # kwargs, so the signature stays Thinc's; after the first kernel call it names
        # the path in use ("numba" or "numpy").
        self.kernels = self._kernel_choice = resolve_choice(kwargs.pop("kernels", None))
        self._kernel_module: Any = _UNLOADED
        super().__init__(device_type, device_id, use_blis=use_blis, **kwargs)

    def __getstate__(self) -> dict:
        # A module object does not pickle: an unpickled copy loads its kernels again.
        state = dict(self.__dict__)
        state.update(kernels=self._kernel_choice, _kernel_module=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._kernel_module = _UNLOADED

    @property
    def _kernel_functions(self) -> Optional[ModuleType]:
        """The compiled kernels, loaded on first use, or None on the numpy path."""
        module = self._kernel_module
        if module is _UNLOADED:
            module = self._kernel_module = load_kernels(self.kernels)
            if module is None:
                self.kernels = "numpy"
            else:
                self.kernels = "numba"
        return module

    def _kernels_for(self, *arrays: Any) -> Optional[ModuleType]:
        """The kernels, if every array is a C-contiguous float32/float64 numpy array of one dtype."""
        module = self._kernel_functions
        if module is None:
            return None
        dtype = arrays[0].dtype
        if dtype != numpy.float32 and dtype != numpy.float64:
            return None
        for array in arrays:
            if type(array) is not numpy.ndarray or array.dtype != dtype or not array.flags.c_contiguous:
                return None
        return module

    def _flat_kernel(self, name: str, inplace: bool, *arrays: Any) -> Any:
        """Run the elementwise kernel `name` over `arrays`, writing a new array (or arrays[0]
        when `inplace`); None when the kernels cannot take these arrays."""
        module = self._kernels_for(*arrays)
        if module is None:
            return None
        out = arrays[0] if inplace else numpy.empty_like(arrays[0])
        getattr(module, name)(*[array.reshape(-1) for array in arrays], out.reshape(-1))
        return out

    def gemm(
        self,
        x: Any,
        y: Any,
        out: Any = None,
        trans1: bool = False,
        trans2: bool = False,
        *,
        accumulate: bool = False,
    ) -> Any:
        """``op(x) @ op(y)`` via BLAS, into `out` or (`accumulate`) added to it in one BLAS call."""
        a, b = check_gemm(x, y, trans1, trans2)
        if accumulate:
            check_gemm_out(a, b, out)
            return _gemm_accumulate(self, a, b, out)
        if out is None:
            return numpy.dot(a, b)
        expected = (a.shape[0], b.shape[1])
        if tuple(out.shape) != expected:
            raise ShapeMismatchError(f"gemm: out has shape {tuple(out.shape)}, expected {expected}")
        if out.flags["C_CONTIGUOUS"] and out.dtype == numpy.result_type(a, b):
            numpy.dot(a, b, out=out)
        else:
            out[...] = numpy.dot(a, b)
        return out

    # Activations: one fused pass each with the kernels ---------------------------------

    def relu(self, X: Any, inplace: bool = False) -> Any:
        """``max(X, 0)``."""
        out = None if X.size < _NUMPY_RELU_BELOW else self._flat_kernel("relu", inplace, X)
        return super().relu(X, inplace=inplace) if out is None else out

    def swish(self, X: Any, inplace: bool = False) -> Any:
        """``X * sigmoid(X)`` (SiLU)."""
        out = self._flat_kernel("swish", inplace, X)
        return super().swish(X, inplace=inplace) if out is None else out

    def backprop_swish(self, dY: Any, X: Any, Y: Any, inplace: bool = False) -> Any:
        """Gradient of swish from input and output: ``dY * (Y + sigmoid(X) * (1 - Y))``."""
        check_same_shape("backprop_swish", dY, X)
        out = self._flat_kernel("backprop_swish", inplace, dY, X, Y)
        return super().backprop_swish(dY, X, Y, inplace=inplace) if out is None else out

    def backprop_sigmoid(self, dY: Any, Y: Any, *, inplace: bool = False) -> Any:
        """``dY * Y * (1 - Y)``: gradient of the sigmoid given its output."""
        check_same_shape("backprop_sigmoid", dY, Y)
        out = self._flat_kernel("backprop_sigmoid", inplace, dY, Y)
        return super().backprop_sigmoid(dY, Y, inplace=inplace) if out is None else out

    def hard_swish_mobilenet(self, X: Any, inplace: bool = False) -> Any:
        """``X * relu6(X + 3) / 6`` (MobileNetV3's hard swish, torch's hardswish)."""
        out = self._flat_kernel("hard_swish_mobilenet", inplace, X)
        return super().hard_swish_mobilenet(X, inplace=inplace) if out is None else out

    def backprop_hard_swish_mobilenet(self, dY: Any, X: Any, inplace: bool = False) -> Any:
        """Gradient of hard_swish_mobilenet: ``(2X + 3) / 6`` on [-3, 3], 1 above, 0 below."""
        check_same_shape("backprop_hard_swish_mobilenet", dY, X)
        out = self._flat_kernel("backprop_hard_swish_mobilenet", inplace, dY, X)
        return super().backprop_hard_swish_mobilenet(dY, X, inplace=inplace) if out is None else out

    def gelu(self, X: Any, inplace: bool = False) -> Any:
        """``X * Phi(X)``, Phi the standard normal CDF (exact GELU)."""
        out = self._flat_kernel("gelu", inplace, X)
        return super().gelu(X, inplace=inplace) if out is None else out

    def backprop_gelu(self, dY: Any, X: Any, inplace: bool = False) -> Any:
        """Gradient of gelu: ``dY * (Phi(X) + X * phi(X))``."""
        check_same_shape("backprop_gelu", dY, X)
        out = self._flat_kernel("backprop_gelu", inplace, dY, X)
        return super().backprop_gelu(dY, X, inplace=inplace) if out is None else out

    def sigmoid(self, X: Any, *, inplace: bool = False) -> Any:
        """``1 / (1 + exp(-X))`` in four passes: exp may overflow to inf, which gives exactly 0."""
        out = self._flat_kernel("sigmoid", inplace, X)
        if out is not None:
            return out
        if X.dtype.kind != "f":
            return super().sigmoid(X, inplace=inplace)
        Y = numpy.negative(X, out=X if inplace else None)
        with numpy.errstate(over="ignore"):
            numpy.exp(Y, out=Y)
        Y += 1.0
        return numpy.divide(1.0, Y, out=Y)

    def backprop_relu(self, dY: Any, Y: Any, inplace: bool = False) -> Any:
        """`dY` where the relu output was positive, else 0."""
        check_same_shape("backprop_relu", dY, Y)
        out = None if dY.size < _NUMPY_RELU_BELOW else self._flat_kernel("backprop_relu", inplace, dY, Y)
        if out is not None:
            return out
        if dY.dtype.kind != "f":
            return super().backprop_relu(dY, Y, inplace=inplace)
        # bool -> float is a slow cast in numpy; uint8 -> float is a SIMD one (same bytes).
        mask = numpy.greater(Y, 0).view(numpy.uint8).astype(dY.dtype)
        if inplace:
            dY *= mask
            return dY
        mask *= dY
        return mask

    def _piecewise_linear_grad(self, dY: Any, X: Any, slope: float, edge: float, inplace: bool) -> Any:
        """``dY * g`` with g = slope X + 0.5 on [-edge, edge], 1 above, 0 below."""
        grad = numpy.multiply(X, slope)
        grad += 0.5
        grad[X < -edge] = 0.0
        grad[X > edge] = 1.0
        if inplace:
            dY *= grad
            return dY
        grad *= dY
        return grad

    def softmax(
        self, x: Any, *, inplace: bool = False, axis: int = -1, temperature: float = 1.0
    ) -> Any:
        """Softmax of ``x / temperature`` along `axis`; skips the max shift when exp cannot overflow."""
        if temperature == 1.0 and x.size and axis in (-1, x.ndim - 1):
            module = self._kernels_for(x)
            if module is not None:
                out = x if inplace else numpy.empty_like(x)
                module.softmax_rows(x.reshape(-1), out.reshape(-1), x.shape[-1], _exp_safe_limit(x.dtype, x.shape[-1]))
                return out
        if temperature != 1.0 or x.size == 0 or x.dtype.kind != "f":
            return super().softmax(x, inplace=inplace, axis=axis, temperature=temperature)
        # Subtracting the row max costs a strided reduction and a broadcast pass. It only
        # guards against overflow/underflow, which cannot happen when |x| < limit everywhere:
        # exp(-80) is a normal float32, and n * exp(limit) stays finite for n values summed
        # along the axis (a plain 80 would overflow the sum of ~7000 float32 logits near 80).
        limit = _exp_safe_limit(x.dtype, x.shape[axis])
        if not (x.max() < limit and x.min() > -80.0):
            return super().softmax(x, inplace=inplace, axis=axis, temperature=temperature)
        out = numpy.exp(x, out=x if inplace else None)
        if out.ndim == 2 and axis in (-1, 1) and out.dtype in (numpy.float32, numpy.float64):
            # Row sums as a BLAS matrix-vector product: one pass, 2-3x faster than sum(axis=1).
            scale = numpy.dot(out, numpy.ones(out.shape[1], dtype=out.dtype))
            numpy.divide(1.0, scale, out=scale)
            out *= scale[:, None]
            return out
        sums = out.sum(axis=axis, keepdims=True)
        numpy.reciprocal(sums, out=sums)
        out *= sums
        return out

    def backprop_softmax(self, Y: Any, dY: Any, *, axis: int = -1, temperature: float = 1.0) -> Any:
        """Gradient of softmax from its output: ``Y (dY - sum(Y dY)) / temperature``."""
        check_same_shape("backprop_softmax", dY, Y)
        if temperature == 1.0 and Y.size and axis in (-1, Y.ndim - 1):
            module = self._kernels_for(Y, dY)
            if module is not None:
                out = numpy.empty_like(Y)
                module.backprop_softmax_rows(Y.reshape(-1), dY.reshape(-1), out.reshape(-1), Y.shape[-1])
                return out
        return super().backprop_softmax(Y, dY, axis=axis, temperature=temperature)

    # Tables ----------------------------------------------------------------------------

    def gather_add(self, table: Any, indices: Any) -> Any:
        """Sum of the rows of `table` (T, O) named by each row of `indices` (B, K): (B, O)."""
        module = self._kernels_for(table)
        if module is None or getattr(indices, "ndim", 0) != 2 or indices.shape[1] == 0:
            return super().gather_add(table, indices)
        check_ndim("gather_add", table, 2, "table")
        indices = numpy.ascontiguousarray(indices)
        if indices.dtype.kind not in "iu" or not module.all_below(indices, table.shape[0]):
            check_indices("gather_add", indices, table.shape[0])  # which says what is wrong
        out = numpy.empty((indices.shape[0], table.shape[1]), dtype=table.dtype)
        return module.gather_add(table, indices, out)

    def hash(self, ids: Any, seed: int) -> Any:
        """As :meth:`Ops.hash` (the same words), in one compiled pass when the kernels load."""
        module = self._kernel_functions
        if module is None or type(ids) is not numpy.ndarray or ids.ndim != 1 or ids.dtype.kind not in "ui":
            return super().hash(ids, seed)  # which also explains what is wrong with `ids`
        keys = numpy.ascontiguousarray(ids.astype(numpy.uint64, copy=False))
        out = numpy.empty((keys.shape[0], 4), dtype=numpy.uint32)
        halves = out.view(numpy.uint64) if sys.byteorder == "little" else out  # see the kernel
        module.murmur3_128_uint64(keys, int(seed) & 0xFFFFFFFF, halves)
        return out

    def hash_rows(self, ids: Any, seed: int, n_rows: int) -> Any:
        """As :meth:`Ops.hash_rows`, with the remainder taken by a compiled loop when the kernels load."""
        module = self._kernel_functions
        if module is None or not 1 <= n_rows < 2**31:
            return super().hash_rows(ids, seed, n_rows)
        words = self.hash(ids, seed)
        return module.rows_of_words(words, n_rows, numpy.empty(words.shape, dtype=numpy.int32))

    def reduce_mean(self, X: Any, lengths: Any) -> Any:
        """As :meth:`Ops.reduce_mean`; with the kernels, the division happens in the summing pass."""
        module = self._kernels_for(X)
        if module is None or getattr(X, "ndim", 0) != 2:
            return super().reduce_mean(X, lengths)
        host_lengths = check_lengths(self, "reduce_mean", lengths, X.shape[0])
        divisors = numpy.maximum(host_lengths, 1).astype(X.dtype)
        out = numpy.empty((len(host_lengths), X.shape[1]), dtype=X.dtype)
        return module.segment_mean(X, host_lengths, divisors, out)

    def _segment_sum(self, X: Any, host_lengths: Any) -> Any:
        """Per-sequence sums of rows; ``add.reduceat`` over axis 0 is slow, so a kernel when possible."""
        module = self._kernels_for(X)
        if module is None or X.ndim != 2:
            return super()._segment_sum(X, host_lengths)
        out = numpy.empty((len(host_lengths), X.shape[1]), dtype=X.dtype)
        return module.segment_sum(X, numpy.ascontiguousarray(host_lengths, dtype="int64"), out)

    def scatter_add(self, table: Any, indices: Any, values: Any) -> Any:
        """In place ``table[indices] += values`` with duplicates accumulated; returns `table`.

        `values` may broadcast as in ``numpy.add.at``: (B, 1, O) for (B, K) ids adds row b
        of the values to the K rows named by ``indices[b]`` (HashEmbed's backprop).
        """
        if getattr(indices, "ndim", 0) not in (1, 2) or getattr(table, "ndim", 0) not in (1, 2):
            return super().scatter_add(table, indices, values)
        check_indices("scatter_add", indices, table.shape[0])
        check_scatter_values(table, indices, values)
        if indices.size == 0:
            return table
        if tuple(values.shape) != tuple(indices.shape) + tuple(table.shape[1:]) and not _broadcast_per_row(table, indices, values):
            return super().scatter_add(table, indices, values)
        module = self._kernels_for(table, values)
        flat_ids = indices.reshape(-1)
        if table.ndim == 1:
            if module is not None and values.size == flat_ids.size:
                return module.scatter_add_flat(table, numpy.ascontiguousarray(flat_ids), values.reshape(-1))
            numpy.add.at(table, flat_ids, numpy.repeat(values.reshape(-1), flat_ids.size // values.size))
            return table
        rows = values.reshape((-1, table.shape[1]))  # (N, O), or (B, O) shared by K ids each
        if module is not None:
            return module.scatter_add_rows(table, numpy.ascontiguousarray(flat_ids), rows)
        if rows.shape[0] != flat_ids.size:
            rows = numpy.repeat(rows, flat_ids.size // rows.shape[0], axis=0)
        return _scatter_rows_numpy(table, flat_ids, rows)

    # Hashing ---------------------------------------------------------------------------

    # Optimizer ---------------------------------------------------------------------------

    def adam(
        self,
        weights: Any,
        gradient: Any,
        mom1: Any,
        mom2: Any,
        beta1: float,
        beta2: float,
        eps: float,
        learn_rate: float,
        mod_rate: float = 1.0,
    ) -> Tuple[Any, Any, Any, Any]:
        """One in-place Adam step (bias correction pre-applied to `learn_rate`); zeroes `gradient`."""
        module = self._kernels_for(weights, gradient, mom1, mom2)
        if module is None or not weights.shape == gradient.shape == mom1.shape == mom2.shape:
            return super().adam(weights, gradient, mom1, mom2, beta1, beta2, eps, learn_rate, mod_rate)
        module.adam(
            weights.reshape(-1), gradient.reshape(-1), mom1.reshape(-1), mom2.reshape(-1),
            beta1, beta2, eps, learn_rate, mod_rate,
        )
        return weights, gradient, mom1, mom2

    def clip_gradient(self, gradient: Any, threshold: float) -> Any:
        """In place: rescale `gradient` to L2 norm `threshold` if its norm is larger."""
        module = self._kernels_for(gradient)
        if module is None:
            return super().clip_gradient(gradient, threshold)
        norm = float(numpy.sqrt(module.sum_of_squares(gradient.reshape(-1))))
        if norm >= threshold and norm > 0:
            gradient *= threshold / norm
        return gradient

    def update_averages(self, ema: Any, weights: Any, t: int, max_decay: float = 0.9999) -> None:
        """In place exponential moving average: ``ema -= (1 - decay) (ema - weights)``."""
        check_same_shape("update_averages", ema, weights, "ema", "weights")
        module = self._kernels_for(ema, weights)
        if module is None:
            return super().update_averages(ema, weights, t, max_decay=max_decay)
        module.update_averages(ema.reshape(-1), weights.reshape(-1), min((1.0 + t) / (10.0 + t), max_decay))
        return None


def _scatter_rows_numpy(table: Any, indices: Any, values: Any) -> Any:
    """``table[indices] += values`` for (N,) ids and (N, O) values in numpy."""
    # numpy.add.at is slow for rows (about 2us per index), and these arrays outgrow the
    # cache, so every pass counts. Three passes: take the touched rows, add the values,
    # put them back. Duplicate ids first get their run's total in every one of their rows
    # (so the put writes the same row for each, whatever its order).
    block = table.take(indices, axis=0)
    block += values
    order = numpy.argsort(indices, kind="stable")
    sorted_ids = indices[order]
    repeat = sorted_ids[1:] == sorted_ids[:-1]
    if repeat.any():
        first = numpy.r_[True, ~repeat]
        run_starts = numpy.flatnonzero(first)
        counts = numpy.diff(numpy.r_[run_starts, indices.size])
        run_of = numpy.repeat(numpy.arange(run_starts.size), counts)
        head = order[run_starts]  # position of each run's first occurrence
        rank = numpy.arange(indices.size) - run_starts[run_of]
        light = counts[run_of] <= _MAX_ROUNDS
        for round_ in range(1, min(int(counts.max()), _MAX_ROUNDS)):
            selected = numpy.flatnonzero(light & (rank == round_))
            if selected.size:
                block[head[run_of[selected]]] += values[order[selected]]
        heavy = numpy.flatnonzero(~light)
        if heavy.size:
            heavy_starts = numpy.flatnonzero(rank[heavy] == 0)
            totals = numpy.add.reduceat(values[order[heavy]], heavy_starts, axis=0)
            block[head[run_of[heavy[heavy_starts]]]] += totals - values[head[run_of[heavy[heavy_starts]]]]
        duplicates = order[numpy.flatnonzero(rank)]
        block[duplicates] = block[head[run_of[numpy.flatnonzero(rank)]]]
    table[indices] = block
    return table




class MPSOps(NumpyOps):
    """Ops for Apple-silicon machines: arrays stay numpy; wrapped PyTorch models run on "mps"."""

    name = "mps"

    def __init__(self, device_type: str = "mps", device_id: int = 0, **kwargs: Any) -> None:
        super().__init__(device_type, device_id, **kwargs)


AppleOps = None  # Thinc's Accelerate-backed Ops exists only on macOS builds; composa has none.

_MAX_ROUNDS = 4
_UNLOADED = object()


def _exp_safe_limit(dtype: Any, n: int) -> float:
    """A bound below which exp of n values and their sum stay finite and normal in `dtype`."""
    return min(80.0, float(numpy.log(numpy.finfo(dtype).max)) - float(numpy.log(n)) - 1.0)


def _broadcast_per_row(table: Any, indices: Any, values: Any) -> bool:
    """Whether `values` is (B, 1, ...) for (B, K) `indices`: one value row per row of ids."""
    return indices.ndim == 2 and tuple(values.shape) == (indices.shape[0], 1) + tuple(table.shape[1:])


def _gemm_accumulate(ops: Ops, a: Any, b: Any, out: Any) -> Any:
    """``out += a @ b`` as one BLAS gemm with beta=1 (scipy's), so no product array is made.

    BLAS is column-major: C-ordered `out` is the column-major ``out.T``, and
    ``out.T += b.T @ a.T``; each operand is passed in whichever of its two layouts
    is column-major, with the transpose flag to match, so nothing is copied.
    """
    gemm = _blas_gemm(out.dtype) if out.flags.c_contiguous and a.dtype == b.dtype == out.dtype else None
    left, trans_left = _column_major(b.T)
    right, trans_right = _column_major(a.T)
    if gemm is None or left is None or right is None:
        product = numpy.dot(a, b, out=ops._scratch(out.shape, out.dtype))
        out += product
        return out
    result = gemm(1.0, left, right, beta=1.0, c=out.T, trans_a=trans_left, trans_b=trans_right, overwrite_c=True)
    if not numpy.shares_memory(result, out):  # scipy copied after all: keep the sum
        out[...] = result.T
    return out


def _column_major(matrix: Any) -> Tuple[Any, int]:
    """(array, transpose flag) such that BLAS reading `array` column-major sees `matrix`; (None, 0) if neither layout is contiguous."""
    if matrix.flags.f_contiguous:
        return matrix, 0
    if matrix.flags.c_contiguous:
        return matrix.T, 1
    return None, 0


def _blas_gemm(dtype: Any) -> Any:
    """scipy's sgemm/dgemm for `dtype`, or None (scipy missing, or another dtype)."""
    if "gemm" not in _BLAS:
        try:
            from scipy.linalg import blas  # lazy: scipy is optional here, and slow to import
        except ImportError:
            blas = None
        _BLAS["gemm"] = blas
    blas = _BLAS["gemm"]
    if blas is None:
        return None
    if dtype == numpy.float32:
        return blas.sgemm
    if dtype == numpy.float64:
        return blas.dgemm
    return None


_BLAS: dict = {}
