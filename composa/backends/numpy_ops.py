"""NumpyOps: the CPU backend.

It inherits the whole surface from ``Ops`` (written against numpy already) and
overrides only where numpy can do measurably better: BLAS calls writing into a
given output, and sort-based scatter for embedding gradients.
"""
from typing import Any

import numpy

from ..errors import ShapeMismatchError
from ..thinc_compat import NumpyOpsThincArgs
from ._checks import (
    check_gemm,
    check_indices,
    check_ndim,
    check_same_shape,
    check_scatter_values,
)
from .ops import Ops

__all__ = ["NumpyOps", "MPSOps", "AppleOps"]


class NumpyOps(NumpyOpsThincArgs, Ops):
    """Ops on numpy arrays, with numpy-specific fast paths where they measurably help."""

    name = "numpy"
    xp = numpy

    def gemm(
        self, x: Any, y: Any, out: Any = None, trans1: bool = False, trans2: bool = False
    ) -> Any:
        """``op(x) @ op(y)`` via BLAS; both float32 or both float64 to stay on the fast path."""
        a, b = check_gemm(x, y, trans1, trans2)
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

    def sigmoid(self, X: Any, *, inplace: bool = False) -> Any:
        """``1 / (1 + exp(-X))`` in four passes: exp may overflow to inf, which gives exactly 0."""
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
        if temperature != 1.0 or x.size == 0 or x.dtype.kind != "f":
            return super().softmax(x, inplace=inplace, axis=axis, temperature=temperature)
        # Subtracting the row max costs a strided reduction and a broadcast pass. It only
        # guards against overflow/underflow, which cannot happen when |x| < limit everywhere:
        # exp(-80) is a normal float32, and n * exp(limit) stays finite for n values summed
        # along the axis (a plain 80 would overflow the sum of ~7000 float32 logits near 80).
        n = x.shape[axis]
        limit = min(80.0, float(numpy.log(numpy.finfo(x.dtype).max)) - float(numpy.log(n)) - 1.0)
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

    def scatter_add(self, table: Any, indices: Any, values: Any) -> Any:
        """In place ``table[indices] += values`` with duplicates accumulated; returns `table`."""
        if getattr(indices, "ndim", 0) != 1 or getattr(table, "ndim", 0) != 2:
            return super().scatter_add(table, indices, values)
        check_indices("scatter_add", indices, table.shape[0])
        check_ndim("scatter_add", values, 2, "values")
        check_scatter_values(table, indices, values)
        if indices.size == 0:
            return table
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
