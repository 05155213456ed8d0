"""The base ``Ops`` class: every array operation composa's layers use, written once against ``self.xp``.

``NumpyOps`` and ``CupyOps`` subclass it and override only where their array module
can do better. Layers never call numpy or cupy directly: they call ``model.ops``.
"""
import itertools
import threading
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy

from ..errors import ConfigurationError, OpIndexError, ShapeMismatchError
from ..thinc_compat import OpsThincAliases
from ..types import Padded, SizedGenerator
from . import _lstm
from ._checks import (
    check_fits,
    check_gemm,
    check_gemm_out,
    check_indices,
    check_lengths,
    check_ndim,
    check_same_shape,
    check_scatter_values,
    default_lengths,
)
from ._murmur import murmur3_128_uint64, murmur64a_windows

__all__ = ["Ops", "OpIndexError"]

ArrayShape = Union[int, Tuple[int, ...]]


class Ops(OpsThincAliases):
    """Array operations on the CPU with numpy; the reference every backend must match."""

    name: str = "base"
    xp: Any = numpy

    def __init__(self, device_type: str = "cpu", device_id: int = -1, **kwargs: Any) -> None:
        self.device_type = device_type
        self.device_id = device_id

    def _kernels_for(self, *arrays: Any) -> Any:
        """The compiled kernels that can take `arrays` (see NumpyOps), or None: the base has none."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device_type={self.device_type!r}, device_id={self.device_id})"

    # Allocation and conversion -------------------------------------------------

    def alloc(self, shape: ArrayShape, *, dtype: Any = "float32", zeros: bool = True) -> Any:
        """A new array of `shape`: zeros, or uninitialised memory when `zeros=False`."""
        if isinstance(shape, int):
            shape = (shape,)
        return self.xp.zeros(shape, dtype=dtype) if zeros else self.xp.empty(shape, dtype=dtype)

    def asarray(self, data: Any, *, dtype: Any = None) -> Any:
        """`data` as an array of this backend (no copy when it already is one)."""
        if isinstance(data, self.xp.ndarray):
            return data if dtype is None or data.dtype == dtype else data.astype(dtype)
        if hasattr(data, "numpy") and hasattr(data, "detach"):  # a CPU torch tensor
            data = data.detach().cpu().numpy()
        elif hasattr(data, "get") and not isinstance(data, (dict, numpy.ndarray)):  # cupy
            data = data.get()
        return self.xp.asarray(data, dtype=dtype)

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
        """``array.reshape(shape)``."""
        return array.reshape(shape)

    # Linear algebra --------------------------------------------------------------

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
        """``op(x) @ op(y)`` where op transposes when `trans1`/`trans2`; written into `out` if
        given, or added to it with `accumulate` (how weight layers sum their gradients)."""
        a, b = check_gemm(x, y, trans1, trans2)
        if accumulate:
            check_gemm_out(a, b, out)
            out += a @ b
            return out
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

    def sigmoid(self, X: Any, *, inplace: bool = False) -> Any:
        """The logistic function ``1 / (1 + exp(-X))``, accurate in the tails like torch.sigmoid.

        X is clipped only where exp would overflow (|X| > 88 in float32, 700 in float64),
        not at +-20 as Thinc does, so sigmoid(-30) is 9.4e-14 rather than 2e-9.
        """
        xp = self.xp
        limit = 88.0 if X.dtype == numpy.float32 else 700.0
        Y = xp.negative(X, out=X if inplace else None)
        xp.clip(Y, -limit, limit, out=Y)
        xp.exp(Y, out=Y)
        Y += 1.0
        return xp.reciprocal(Y, out=Y)

    def dsigmoid(self, Y: Any, *, inplace: bool = False) -> Any:
        """Derivative of the sigmoid from its output: ``Y * (1 - Y)``."""
        if inplace:
            Y *= 1.0 - Y
            return Y
        return Y * (1.0 - Y)

    def backprop_sigmoid(self, dY: Any, Y: Any, *, inplace: bool = False) -> Any:
        """``dY * Y * (1 - Y)``: gradient of the sigmoid given its output."""
        check_same_shape("backprop_sigmoid", dY, Y)
        grad = self.xp.subtract(1.0, Y)
        grad *= Y
        if inplace:
            dY *= grad
            return dY
        grad *= dY
        return grad

    def dtanh(self, Y: Any, *, inplace: bool = False) -> Any:
        """Derivative of tanh from its output: ``1 - Y**2``."""
        if inplace:
            Y **= 2
            Y *= -1.0
            Y += 1.0
            return Y
        return 1.0 - Y * Y

    def relu(self, X: Any, inplace: bool = False) -> Any:
        """``max(X, 0)``."""
        if inplace:
            return self.xp.maximum(X, 0, out=X)
        return self.xp.maximum(X, 0)

    def backprop_relu(self, dY: Any, Y: Any, inplace: bool = False) -> Any:
        """`dY` where the relu output was positive, else 0."""
        check_same_shape("backprop_relu", dY, Y)
        # Multiplying by a float mask is faster than by a bool mask (no mixed-type loop).
        mask = (Y > 0).astype(dY.dtype)
        if inplace:
            dY *= mask
            return dY
        mask *= dY
        return mask

    def clipped_linear(
        self,
        X: Any,
        slope: float = 1.0,
        offset: float = 0.0,
        min_val: float = 0.0,
        max_val: float = 1.0,
        inplace: bool = False,
    ) -> Any:
        """``clip(X * slope + offset, min_val, max_val)``."""
        if inplace:
            X *= slope
            X += offset
            return self.xp.clip(X, min_val, max_val, out=X)
        return self.xp.clip(X * slope + offset, min_val, max_val)

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
        """`dY * slope` where ``X * slope + offset`` lies strictly inside (min_val, max_val), else 0."""
        check_same_shape("backprop_clipped_linear", dY, X)
        if slope > 0:  # compare X with the interval's preimage: no pass to compute X*slope+offset
            inside = (X > (min_val - offset) / slope) & (X < (max_val - offset) / slope)
        else:
            Z = X * slope + offset
            inside = (Z > min_val) & (Z < max_val)
        grad = inside.astype(dY.dtype)
        if slope != 1.0:
            grad *= slope
        if inplace:
            dY *= grad
            return dY
        grad *= dY
        return grad

    def relu_k(self, X: Any, n: float = 6.0, inplace: bool = False) -> Any:
        """``clip(X, 0, n)`` (relu6 for n=6)."""
        return self.clipped_linear(X, max_val=n, inplace=inplace)

    def backprop_relu_k(self, dY: Any, X: Any, n: float = 6.0, inplace: bool = False) -> Any:
        """Gradient of relu_k: `dY` where 0 < X < n, else 0."""
        return self.backprop_clipped_linear(dY, X, max_val=n, inplace=inplace)

    def hard_sigmoid(self, X: Any, inplace: bool = False) -> Any:
        """``clip(0.2 * X + 0.5, 0, 1)``."""
        return self.clipped_linear(X, slope=0.2, offset=0.5, inplace=inplace)

    def backprop_hard_sigmoid(self, dY: Any, X: Any, inplace: bool = False) -> Any:
        """Gradient of hard_sigmoid: ``0.2 * dY`` where -2.5 < X < 2.5, else 0."""
        return self.backprop_clipped_linear(dY, X, slope=0.2, offset=0.5, inplace=inplace)

    def hard_tanh(self, X: Any, inplace: bool = False) -> Any:
        """``clip(X, -1, 1)``."""
        return self.clipped_linear(X, min_val=-1.0, max_val=1.0, inplace=inplace)

    def backprop_hard_tanh(self, dY: Any, X: Any, inplace: bool = False) -> Any:
        """Gradient of hard_tanh: `dY` where -1 < X < 1, else 0."""
        return self.backprop_clipped_linear(dY, X, min_val=-1.0, max_val=1.0, inplace=inplace)

    def swish(self, X: Any, inplace: bool = False) -> Any:
        """``X * sigmoid(X)`` (SiLU)."""
        S = self.sigmoid(X)
        if inplace:
            X *= S
            return X
        S *= X
        return S

    def backprop_swish(self, dY: Any, X: Any, Y: Any, inplace: bool = False) -> Any:
        """Gradient of swish from input and output: ``dY * (Y + sigmoid(X) * (1 - Y))``."""
        check_same_shape("backprop_swish", dY, X)
        grad = self.xp.subtract(1.0, Y)
        grad *= self.sigmoid(X)
        grad += Y
        if inplace:
            dY *= grad
            return dY
        grad *= dY
        return grad

    def hard_swish(self, X: Any, inplace: bool = False) -> Any:
        """``X * hard_sigmoid(X)``."""
        H = self.hard_sigmoid(X)
        if inplace:
            X *= H
            return X
        return X * H

    def backprop_hard_swish(self, dY: Any, X: Any, inplace: bool = False) -> Any:
        """Gradient of hard_swish: ``0.4 X + 0.5`` on [-2.5, 2.5], 1 above, 0 below."""
        check_same_shape("backprop_hard_swish", dY, X)
        return self._piecewise_linear_grad(dY, X, 0.4, 2.5, inplace)

    def hard_swish_mobilenet(self, X: Any, inplace: bool = False) -> Any:
        """``X * relu6(X + 3) / 6`` (MobileNetV3's hard swish, torch's hardswish)."""
        H = self.xp.add(X, 3.0)
        self.xp.clip(H, 0.0, 6.0, out=H)
        H *= 1.0 / 6.0
        if inplace:
            X *= H
            return X
        H *= X
        return H

    def backprop_hard_swish_mobilenet(self, dY: Any, X: Any, inplace: bool = False) -> Any:
        """Gradient of hard_swish_mobilenet: ``(2X + 3) / 6`` on [-3, 3], 1 above, 0 below."""
        check_same_shape("backprop_hard_swish_mobilenet", dY, X)
        return self._piecewise_linear_grad(dY, X, 1.0 / 3.0, 3.0, inplace)

    def _piecewise_linear_grad(self, dY: Any, X: Any, slope: float, edge: float, inplace: bool) -> Any:
        """``dY * g`` with g = slope X + 0.5 on [-edge, edge], 1 above, 0 below."""
        xp = self.xp
        grad = xp.multiply(X, slope)
        grad += 0.5
        grad *= (xp.abs(X) <= edge).astype(X.dtype)
        grad += (X > edge).astype(X.dtype)
        if inplace:
            dY *= grad
            return dY
        grad *= dY
        return grad

    def dish(self, X: Any, inplace: bool = False) -> Any:
        """``0.5 X (1 + X / sqrt(1 + X**2))``: a smooth, cheap GELU-like curve."""
        xp = self.xp
        D = xp.multiply(X, X)
        D += 1.0
        xp.sqrt(D, out=D)
        xp.divide(X, D, out=D)
        D += 1.0
        D *= 0.5
        if inplace:
            X *= D
            return X
        D *= X
        return D

    def backprop_dish(self, dY: Any, X: Any, inplace: bool = False) -> Any:
        """Gradient of dish given its input (not its output): ``0.5 + 0.5 X s (1 + s**2)``, s = 1/sqrt(1+X**2)."""
        check_same_shape("backprop_dish", dY, X)
        xp = self.xp
        inv = xp.multiply(X, X)
        inv += 1.0
        xp.sqrt(inv, out=inv)
        xp.reciprocal(inv, out=inv)
        grad = xp.multiply(inv, inv)
        grad += 1.0
        grad *= inv
        grad *= X
        grad *= 0.5
        grad += 0.5
        if inplace:
            dY *= grad
            return dY
        grad *= dY
        return grad

    def erf(self, X: Any) -> Any:
        """The error function, keeping dtype: exact (scipy/cupyx) for float64 and on the GPU; for
        float32 on the CPU a 5-term polynomial (|error| < 1.5e-7, float32's resolution) that
        runs on numpy's vectorised exp instead of scipy's scalar double-precision loop."""
        xp = self.xp
        exact = _scipy_erf(xp)
        if exact is not None and (X.dtype != numpy.float32 or xp is not numpy):
            return exact(X).astype(X.dtype, copy=False)
        A = xp.abs(X)
        t = xp.multiply(A, 0.3275911)
        t += 1.0
        xp.reciprocal(t, out=t)
        poly = xp.multiply(t, 1.061405429)
        for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
            poly += coefficient
            poly *= t
        A *= A
        xp.negative(A, out=A)
        xp.exp(A, out=A)
        poly *= A
        xp.subtract(1.0, poly, out=poly)
        xp.copysign(poly, X, out=poly)
        return poly

    def gelu(self, X: Any, inplace: bool = False) -> Any:
        """``X * Phi(X)``, Phi the standard normal CDF (exact GELU); float32 as
        ``relu(X) - |X| Q(|X|)``, Q the normal upper tail, accurate in both tails."""
        xp = self.xp
        if X.dtype != numpy.float32:
            return self._gelu_exact(X, inplace=inplace)
        a = xp.abs(X)
        tail = self._normal_tail(X, a)
        tail *= a
        Y = xp.maximum(X, 0.0, out=X if inplace else a)
        Y -= tail
        return Y

    def backprop_gelu(self, dY: Any, X: Any, inplace: bool = False) -> Any:
        """Gradient of gelu: ``dY * (Phi(X) + X * phi(X))``; in float32 one exp serves both terms."""
        xp = self.xp
        if X.dtype != numpy.float32 or dY.dtype != numpy.float32:
            return self._backprop_gelu_exact(dY, X, inplace=inplace)
        check_same_shape("backprop_gelu", dY, X)
        a = xp.abs(X)
        density = self.alloc(X.shape, dtype=X.dtype, zeros=False)
        tail = self._normal_tail(X, a, density=density)
        # Phi = 1 - Q where X >= 0, else Q: Phi = Q + m (1 - 2Q), m the 0/1 mask.
        mask = xp.greater_equal(X, 0.0).view(numpy.uint8).astype(X.dtype)
        grad = xp.multiply(tail, -2.0, out=a)
        grad += 1.0
        grad *= mask
        grad += tail
        density *= X
        grad += density
        if inplace:
            dY *= grad
            return dY
        grad *= dY
        return grad

    def _normal_tail(self, X: Any, a: Any, density: Any = None) -> Any:
        """Q(|X|) = P(Z > |X|) by Abramowitz-Stegun 26.2.17 (|error| < 7.5e-8); `a` is |X|.
        Writes the density phi(X) into `density` if given."""
        xp = self.xp
        u = xp.add(a, _TAIL_SHIFT)
        xp.divide(1.0, u, out=u)  # t = 1 / (1 + p |X|) = u / p, with 1/p**k folded below
        poly = xp.multiply(u, _TAIL_COEFFICIENTS[0])
        for coefficient in _TAIL_COEFFICIENTS[1:]:
            poly += coefficient
            poly *= u
        e = xp.multiply(X, X, out=u)
        e *= -0.5
        xp.exp(e, out=e)
        poly *= e
        if density is not None:
            xp.multiply(e, _INV_SQRT_2PI, out=density)
        return poly

    def _gelu_exact(self, X: Any, inplace: bool = False) -> Any:
        """``X * Phi(X)`` via erf (float64 and other dtypes)."""
        cdf = self._normal_cdf(X)
        if inplace:
            X *= cdf
            return X
        cdf *= X
        return cdf

    def _normal_cdf(self, X: Any) -> Any:
        cdf = self.erf(X * _INV_SQRT2)
        cdf += 1.0
        cdf *= 0.5
        return cdf

    def _backprop_gelu_exact(self, dY: Any, X: Any, inplace: bool = False) -> Any:
        """Gradient of gelu via erf (float64 and other dtypes)."""
        check_same_shape("backprop_gelu", dY, X)
        xp = self.xp
        grad = xp.multiply(X, X)
        grad *= -0.5
        xp.exp(grad, out=grad)
        grad *= _INV_SQRT_2PI
        grad *= X
        grad += self._normal_cdf(X)
        if inplace:
            dY *= grad
            return dY
        grad *= dY
        return grad

    def gelu_approx(self, X: Any, inplace: bool = False) -> Any:
        """The tanh approximation of GELU: ``0.5 X (1 + tanh(sqrt(2/pi) (X + 0.044715 X**3)))``."""
        T = self.xp.tanh(_SQRT_2_OVER_PI * (X + 0.044715 * X * X * X))
        T += 1.0
        T *= 0.5
        if inplace:
            X *= T
            return X
        return X * T

    def backprop_gelu_approx(self, dY: Any, X: Any, inplace: bool = False) -> Any:
        """Gradient of gelu_approx given its input."""
        check_same_shape("backprop_gelu_approx", dY, X)
        X2 = X * X
        T = self.xp.tanh(_SQRT_2_OVER_PI * (X + 0.044715 * X2 * X))
        grad = 0.5 * (1.0 + T) + 0.5 * X * (1.0 - T * T) * _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * X2)
        if inplace:
            dY *= grad
            return dY
        return dY * grad

    def mish(self, X: Any, threshold: float = 20.0, inplace: bool = False) -> Any:
        """``X * tanh(softplus(X))``, the identity where ``X >= threshold``.

        Uses ``tanh(log(1 + e)) = n / (n + 2)`` with ``n = e (e + 2)``, ``e = exp(X)``:
        one exp and no log. With exp capped at the threshold, T is exactly 1 above it
        for thresholds >= 19, so no extra select pass is needed there.
        """
        xp = self.xp
        T = self._mish_tanh_softplus(X, threshold)[0]
        if threshold < 19.0:
            T = xp.where(X >= threshold, 1.0, T).astype(X.dtype, copy=False)
        if inplace:
            X *= T
            return X
        T *= X
        return T

    def _mish_tanh_softplus(self, X: Any, threshold: float) -> Tuple[Any, Any]:
        """(tanh(softplus(X)), exp(X)) with X capped at `threshold`."""
        xp = self.xp
        E = xp.minimum(X, threshold)
        xp.exp(E, out=E)
        N = xp.add(E, 2.0)
        N *= E
        D = xp.add(N, 2.0)
        xp.divide(N, D, out=N)
        return N, E

    def backprop_mish(self, dY: Any, X: Any, threshold: float = 20.0, inplace: bool = False) -> Any:
        """Gradient of mish given its input (1 where ``X >= threshold``)."""
        check_same_shape("backprop_mish", dY, X)
        xp = self.xp
        T, E = self._mish_tanh_softplus(X, threshold)
        sig = xp.add(E, 1.0)
        xp.divide(E, sig, out=sig)
        grad = xp.multiply(T, T)
        xp.subtract(1.0, grad, out=grad)
        grad *= X
        grad *= sig
        grad += T
        if threshold < 19.0:
            grad = xp.where(X >= threshold, 1.0, grad).astype(X.dtype, copy=False)
        if inplace:
            dY *= grad
            return dY
        grad *= dY
        return grad

    def sechsq(self, X: Any) -> Any:
        """``sech(X)**2`` of ``clip(X, -20, 20)``."""
        C = self.xp.cosh(self.xp.clip(X, -20.0, 20.0))
        return 1.0 / (C * C)

    def softmax(
        self, x: Any, *, inplace: bool = False, axis: int = -1, temperature: float = 1.0
    ) -> Any:
        """Softmax of ``x / temperature`` along `axis` (max-shifted); writes into `x` if `inplace`."""
        xp = self.xp
        if x.size == 0:  # nothing to normalise (and max of an empty axis is undefined)
            return x if inplace else x.copy()
        out = x if inplace else None
        if temperature != 1.0:
            out = xp.divide(x, temperature, out=out)
            out -= out.max(axis=axis, keepdims=True)
        else:
            out = xp.subtract(x, x.max(axis=axis, keepdims=True), out=out)
        xp.exp(out, out=out)
        out /= out.sum(axis=axis, keepdims=True)
        return out

    def backprop_softmax(
        self, Y: Any, dY: Any, *, axis: int = -1, temperature: float = 1.0
    ) -> Any:
        """Gradient of softmax from its output: ``Y (dY - sum(Y dY)) / temperature``."""
        check_same_shape("backprop_softmax", dY, Y)
        xp = self.xp
        if Y.ndim == 2 and axis in (-1, 1):
            dots = xp.einsum("ij,ij->i", Y, dY)[:, None]
        else:
            dots = (Y * dY).sum(axis=axis, keepdims=True)
        dX = xp.subtract(dY, dots)
        dX *= Y
        if temperature != 1.0:
            dX /= temperature
        return dX

    def softmax_sequences(self, Xs: Any, lengths: Any, *, inplace: bool = False, axis: int = -1) -> Any:
        """Softmax over the rows of each sequence (per column), for a (T, O) array and `lengths`."""
        check_ndim("softmax_sequences", Xs, 2, "Xs")
        host_lengths = check_lengths(self, "softmax_sequences", lengths, Xs.shape[0])
        seq_of_row = self._seq_of_row(host_lengths)
        maxes = self._segment_max(Xs, host_lengths)
        Y = Xs if inplace else Xs.copy()
        if Y.shape[0]:
            Y -= maxes[seq_of_row]
        self.xp.exp(Y, out=Y)
        sums = self._segment_sum(Y, host_lengths)
        if Y.shape[0]:
            Y /= sums[seq_of_row]
        return Y

    def backprop_softmax_sequences(self, dY: Any, Y: Any, lengths: Any) -> Any:
        """Gradient of softmax_sequences from its output."""
        check_same_shape("backprop_softmax_sequences", dY, Y)
        host_lengths = check_lengths(self, "backprop_softmax_sequences", lengths, Y.shape[0])
        dX = Y * dY
        sums = self._segment_sum(dX, host_lengths)
        if dX.shape[0]:
            dX -= Y * sums[self._seq_of_row(host_lengths)]
        return dX

    # Maxout --------------------------------------------------------------------------

    def maxout(self, X: Any) -> Tuple[Any, Any]:
        """Max over the last (pieces) axis of a (B, O, P) array: (best (B, O), which (B, O) int32)."""
        check_ndim("maxout", X, 3, "X")
        if X.shape[2] == 0:
            raise ShapeMismatchError(f"maxout: needs at least one piece, got X of shape {tuple(X.shape)}")
        which = X.argmax(axis=-1).astype("int32")
        best = self.xp.take_along_axis(X, which[..., None].astype("int64"), axis=-1)[..., 0]
        return best, which

    def backprop_maxout(self, dY: Any, which: Any, P: int) -> Any:
        """Route each gradient of a maxout output to the piece that won: (B, O, P)."""
        check_ndim("backprop_maxout", dY, 2, "dY")
        check_same_shape("backprop_maxout", dY, which, "dY", "which")
        if which.size and (int(which.min()) < 0 or int(which.max()) >= P):
            raise OpIndexError(
                f"backprop_maxout: piece indices in `which` must be in [0, {P}), got range "
                f"[{int(which.min())}, {int(which.max())}]"
            )
        dX = self.alloc((dY.shape[0], dY.shape[1], P), dtype=dY.dtype)
        flat = self.xp.arange(dY.size, dtype="int64") * P + which.reshape(-1)
        dX.reshape(-1)[flat] = dY.reshape(-1)
        return dX

    # Sequence reductions -----------------------------------------------------------

    def reduce_sum(self, X: Any, lengths: Any) -> Any:
        """Sum of the rows of each sequence: (T, O) and lengths (B,) -> (B, O); empty sequences give 0."""
        check_ndim("reduce_sum", X, 2, "X")
        host_lengths = check_lengths(self, "reduce_sum", lengths, X.shape[0])
        return self._segment_sum(X, host_lengths)

    def reduce_mean(self, X: Any, lengths: Any) -> Any:
        """Mean of the rows of each sequence: (B, O); empty sequences give 0."""
        check_ndim("reduce_mean", X, 2, "X")
        host_lengths = check_lengths(self, "reduce_mean", lengths, X.shape[0])
        sums = self._segment_sum(X, host_lengths)
        divisor = self.xp.asarray(numpy.maximum(host_lengths, 1), dtype=X.dtype)
        sums /= divisor[:, None]
        return sums

    def reduce_max(self, X: Any, lengths: Any) -> Tuple[Any, Any]:
        """Max of the rows of each sequence, and which row (within the sequence) held it, int32."""
        check_ndim("reduce_max", X, 2, "X")
        host_lengths = check_lengths(self, "reduce_max", lengths, X.shape[0], positive=True)
        xp = self.xp
        if X.shape[0] == 0:
            return self.alloc((0, X.shape[1]), dtype=X.dtype), self.alloc((0, X.shape[1]), dtype="int32")
        starts = numpy.cumsum(host_lengths) - host_lengths
        longest = int(host_lengths.max())
        if longest <= _MAX_STEPS_FOR_LOOPED_MAX:
            # A running max over positions: step p reads row start+p of every sequence
            # (clamped to the sequence's last row, which can never beat the max so far).
            lasts = starts + host_lengths - 1
            maxes = X[xp.asarray(starts)]
            which = self.alloc(maxes.shape, dtype="int32")
            for step in range(1, longest):
                candidates = X[xp.asarray(numpy.minimum(starts + step, lasts))]
                better = candidates > maxes
                xp.maximum(maxes, candidates, out=maxes)
                which = xp.where(better, numpy.int32(step), which)
            return maxes, which
        maxes = self._segment_max(X, host_lengths)
        position = xp.asarray(numpy.arange(X.shape[0]) - numpy.repeat(starts, host_lengths))
        # The first row equal to the max wins; other rows get a position past any sequence.
        candidates = xp.where(X == maxes[self._seq_of_row(host_lengths)], position[:, None], X.shape[0])
        which = self._segment_min(candidates, host_lengths).astype("int32")
        return maxes, which

    def reduce_first(self, X: Any, lengths: Any) -> Tuple[Any, Any]:
        """First row of each sequence, and the (B + 1,) start/end offsets."""
        check_ndim("reduce_first", X, 2, "X")
        host_lengths = check_lengths(self, "reduce_first", lengths, X.shape[0], positive=True)
        starts_ends = numpy.zeros(len(host_lengths) + 1, dtype="int32")
        numpy.cumsum(host_lengths, out=starts_ends[1:])
        starts_ends = self.xp.asarray(starts_ends)
        return X[starts_ends[:-1]], starts_ends

    def reduce_last(self, X: Any, lengths: Any) -> Tuple[Any, Any]:
        """Last row of each sequence, and the (B,) indices of those rows."""
        check_ndim("reduce_last", X, 2, "X")
        host_lengths = check_lengths(self, "reduce_last", lengths, X.shape[0], positive=True)
        lasts = self.xp.asarray((numpy.cumsum(host_lengths) - 1).astype("int32"))
        return X[lasts], lasts

    def backprop_reduce_sum(self, d_sums: Any, lengths: Any) -> Any:
        """Gradient of reduce_sum: each sequence's row gradient copied to its rows."""
        check_ndim("backprop_reduce_sum", d_sums, 2, "d_sums")
        host_lengths = check_lengths(self, "backprop_reduce_sum", lengths, None, n_seqs=d_sums.shape[0])
        return d_sums[self._seq_of_row(host_lengths)]

    def backprop_reduce_mean(self, d_means: Any, lengths: Any) -> Any:
        """Gradient of reduce_mean: each row gets its sequence's gradient / length."""
        check_ndim("backprop_reduce_mean", d_means, 2, "d_means")
        host_lengths = check_lengths(self, "backprop_reduce_mean", lengths, None, n_seqs=d_means.shape[0])
        divisor = self.xp.asarray(numpy.maximum(host_lengths, 1), dtype=d_means.dtype)
        return (d_means / divisor[:, None])[self._seq_of_row(host_lengths)]

    def backprop_reduce_max(self, d_maxes: Any, which: Any, lengths: Any) -> Any:
        """Gradient of reduce_max: each gradient goes to the row that held the max."""
        check_ndim("backprop_reduce_max", d_maxes, 2, "d_maxes")
        check_same_shape("backprop_reduce_max", d_maxes, which, "d_maxes", "which")
        host_lengths = check_lengths(
            self, "backprop_reduce_max", lengths, None, n_seqs=d_maxes.shape[0], positive=True
        )
        host_which = self.to_numpy(which)
        if host_which.size and (
            host_which.min() < 0 or (host_which >= host_lengths[:, None]).any()
        ):
            raise OpIndexError(
                "backprop_reduce_max: `which` holds row positions outside their sequence "
                f"(lengths {host_lengths.tolist()[:8]}...)"
            )
        total = int(host_lengths.sum())
        dX = self.alloc((total, d_maxes.shape[1]), dtype=d_maxes.dtype)
        if total:
            width = d_maxes.shape[1]
            starts = self.xp.asarray(numpy.cumsum(host_lengths) - host_lengths)
            flat = (starts[:, None] + which) * width + self.xp.arange(width)[None, :]
            dX.reshape(-1)[flat.reshape(-1)] = d_maxes.reshape(-1)
        return dX

    def backprop_reduce_first(self, d_firsts: Any, starts_ends: Any) -> Any:
        """Gradient of reduce_first: zeros except each sequence's first row."""
        if starts_ends.size < 1:  # an empty batch has the one offset [0], as reduce_first gives it
            raise ShapeMismatchError(
                f"backprop_reduce_first: starts_ends needs B+1 >= 1 entries, got shape {tuple(starts_ends.shape)}"
            )
        if d_firsts.shape[0] != starts_ends.size - 1:
            raise ShapeMismatchError(
                f"backprop_reduce_first: {d_firsts.shape[0]} gradient rows for {starts_ends.size - 1} sequences"
            )
        dX = self.alloc((int(starts_ends[-1]),) + tuple(d_firsts.shape[1:]), dtype=d_firsts.dtype)
        dX[starts_ends[:-1]] = d_firsts
        return dX

    def backprop_reduce_last(self, d_lasts: Any, lasts: Any) -> Any:
        """Gradient of reduce_last: zeros except each sequence's last row."""
        if d_lasts.shape[0] != lasts.shape[0]:
            raise ShapeMismatchError(
                f"backprop_reduce_last: {d_lasts.shape[0]} gradient rows for {lasts.shape[0]} sequences"
            )
        total = int(lasts[-1]) + 1 if lasts.shape[0] else 0
        dX = self.alloc((total,) + tuple(d_lasts.shape[1:]), dtype=d_lasts.dtype)
        dX[lasts] = d_lasts
        return dX

    # Windows ---------------------------------------------------------------------------

    def seq2col(self, seq: Any, nW: int, *, lengths: Any = None) -> Any:
        """Concatenate each row with its `nW` neighbours on each side, zeros past sequence ends."""
        check_ndim("seq2col", seq, 2, "seq")
        if nW < 0:
            raise ConfigurationError(f"seq2col: nW must be >= 0, got {nW}")
        N, I = seq.shape
        host_lengths = check_lengths(self, "seq2col", default_lengths(lengths, N), N)
        out = self.alloc((N, (2 * nW + 1) * I), dtype=seq.dtype, zeros=False)
        # Each window slot is a shifted copy of `seq`; only rows whose neighbour lies in
        # another sequence (few: near boundaries) are zeroed afterwards.
        for k, lo, hi, invalid in self._window_shifts(host_lengths, nW):
            block = out[:, (k + nW) * I : (k + nW + 1) * I]
            block[:lo] = 0
            block[hi:] = 0
            if hi > lo:
                block[lo:hi] = seq[lo + k : hi + k]
            if invalid is not None:
                block[invalid] = 0
        return out

    def backprop_seq2col(self, dY: Any, nW: int, *, lengths: Any = None) -> Any:
        """Adjoint of seq2col: sum each window slot's gradient back into its source row."""
        check_ndim("backprop_seq2col", dY, 2, "dY")
        N = dY.shape[0]
        if nW < 0 or dY.shape[1] % (2 * nW + 1):
            raise ShapeMismatchError(
                f"backprop_seq2col: dY width {dY.shape[1]} is not a multiple of 2*nW+1={2 * nW + 1}"
            )
        I = dY.shape[1] // (2 * nW + 1)
        host_lengths = check_lengths(self, "backprop_seq2col", default_lengths(lengths, N), N)
        dX = self.alloc((N, I), dtype=dY.dtype)
        shifts = list(self._window_shifts(host_lengths, nW))
        if any(invalid is not None for _, _, _, invalid in shifts):
            dY = dY.copy()
            for k, _, _, invalid in shifts:
                if invalid is not None:
                    dY[invalid, (k + nW) * I : (k + nW + 1) * I] = 0
        for k, lo, hi, _ in shifts:
            if hi > lo:
                dX[lo + k : hi + k] += dY[lo:hi, (k + nW) * I : (k + nW + 1) * I]
        return dX

    # Padding and flattening ---------------------------------------------------------

    def flatten(
        self, X: Sequence[Any], dtype: Any = None, pad: int = 0, ndim_if_empty: int = 2
    ) -> Any:
        """Concatenate arrays along their first axis (optionally with `pad` zero rows between)."""
        if X is None or len(X) == 0:
            return self.alloc((0,) * ndim_if_empty, dtype=dtype or "f")
        xp = self.xp
        nonempty = [x for x in X if x.size != 0]
        if not nonempty:
            return self.alloc(X[0].shape, dtype=dtype or X[0].dtype)
        trailing = tuple(nonempty[0].shape[1:])
        mismatched = [(i, tuple(x.shape)) for i, x in enumerate(X) if x.size and tuple(x.shape[1:]) != trailing]
        if mismatched:
            raise ShapeMismatchError(
                f"flatten: every array needs the trailing shape {trailing} of the first non-empty one, "
                f"got {mismatched[:3]} (index, shape)"
            )
        X = nonempty  # as the reference: empty items are dropped (also before padding)
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
        host_lengths = check_lengths(self, "unflatten", lengths, None)
        total = int(host_lengths.sum()) + pad * (len(host_lengths) + 1 if len(host_lengths) else 0)
        if total != X.shape[0]:
            raise ShapeMismatchError(
                f"unflatten: lengths cover {total} rows but the array has {X.shape[0]}"
            )
        starts = pad + numpy.cumsum(host_lengths + pad) - (host_lengths + pad)
        ends = starts + host_lengths
        return [X[start:end] for start, end in zip(starts.tolist(), ends.tolist())]

    def pad(self, seqs: Sequence[Any], round_to: int = 1) -> Any:
        """Stack sequences into a zero-padded (B, L, ...) array, L = max length rounded up to `round_to`."""
        if round_to < 1:
            raise ConfigurationError(f"pad: round_to must be >= 1, got {round_to}")
        if not seqs:
            raise ShapeMismatchError("pad: needs at least one sequence, got an empty list")
        first = seqs[0]
        for i, seq in enumerate(seqs):
            if seq.ndim != first.ndim or seq.shape[1:] != first.shape[1:] or seq.dtype != first.dtype:
                raise ShapeMismatchError(
                    f"pad: sequence {i} has shape {tuple(seq.shape)} and dtype {seq.dtype}, but sequence 0 "
                    f"has shape {tuple(first.shape)} and dtype {first.dtype}; trailing dims and dtype must agree"
                )
        host_lengths = numpy.asarray([len(seq) for seq in seqs], dtype="int64")
        length = int(host_lengths.max())
        length = -(-length // round_to) * round_to
        out = self.alloc((len(seqs), length) + tuple(first.shape[1:]), dtype=first.dtype)
        if host_lengths.sum():
            batch_index, time_index = self._padding_index(host_lengths)
            out[batch_index, time_index] = self.xp.concatenate(list(seqs))
        return out

    def unpad(self, padded: Any, lengths: Any) -> list:
        """The first ``lengths[i]`` rows of ``padded[i]``, for each i."""
        host_lengths = check_lengths(self, "unpad", lengths, None, n_seqs=padded.shape[0])
        check_fits("unpad", host_lengths, padded.shape[1])
        return [padded[i, :length] for i, length in enumerate(host_lengths.tolist())]

    def list2padded(self, seqs: Sequence[Any]) -> Padded:
        """Sequences -> time-major Padded (T, B, ...), sorted by decreasing length."""
        if len(seqs) == 0:
            empty = self.alloc((0,), dtype="int32")
            return Padded(self.alloc((0, 0, 0)), empty, empty.copy(), empty.copy())
        host_lengths = numpy.asarray([len(seq) for seq in seqs], dtype="int32")
        # Descending by length; ties: the later sequence first (as the reference orders them).
        order = numpy.argsort(host_lengths, kind="stable")[::-1].copy()
        sorted_lengths = host_lengths[order]
        length = int(sorted_lengths[0])
        trailing = tuple(seqs[0].shape[1:])
        data = self.alloc((length, len(seqs)) + trailing, dtype=seqs[0].dtype)
        if sorted_lengths.sum():
            batch_index, time_index = self._padding_index(sorted_lengths)
            data[time_index, batch_index] = self.flatten([seqs[i] for i in order.tolist()])
        size_at_t = (sorted_lengths[None, :] > numpy.arange(length)[:, None]).sum(axis=1)
        return Padded(
            data,
            self.xp.asarray(size_at_t.astype("int32")),
            self.xp.asarray(sorted_lengths.astype("int32")),
            self.xp.asarray(order.astype("int32")),
        )

    def padded2list(self, padded: Padded) -> list:
        """Time-major Padded -> the list of sequences in their original order."""
        n_steps, n_seqs = padded.data.shape[0], padded.data.shape[1]
        host_lengths = check_lengths(self, "padded2list", padded.lengths, None, n_seqs=n_seqs)
        check_fits("padded2list", host_lengths, n_steps)
        host_indices = self.to_numpy(padded.indices).astype("int64")
        if not numpy.array_equal(numpy.sort(host_indices), numpy.arange(n_seqs)):
            raise ShapeMismatchError(
                f"padded2list: indices must be a permutation of 0..{n_seqs - 1}, got {host_indices.tolist()[:10]}"
            )
        out: list = [None] * len(host_lengths)
        for column, (index, length) in enumerate(zip(host_indices.tolist(), host_lengths.tolist())):
            out[index] = padded.data[:length, column]
        return out

    def insert_into(self, shape: ArrayShape, Xs: Sequence[Any]) -> Any:
        """Zeros of `shape` (dtype of ``Xs[0]``) with ``Xs[i]`` copied into ``out[i, :len(Xs[i])]``."""
        out = self.alloc(shape, dtype=Xs[0].dtype if len(Xs) else "float32")
        for i, x in enumerate(Xs):
            out[i, : x.shape[0]] = x
        return out

    def tile(self, X: Any, reps: Any) -> Any:
        """``xp.tile(X, reps)``."""
        return self.xp.tile(X, reps)

    def get_dropout_mask(self, shape: ArrayShape, drop: Optional[float]) -> Any:
        """An inverted-dropout mask: 0 with probability `drop`, else 1/(1-drop)."""
        if drop is None or drop <= 0:
            return self.xp.ones(shape, dtype="f")
        if drop >= 1.0:
            return self.alloc(shape)
        keep = self.xp.random.uniform(0.0, 1.0, shape) >= drop
        return keep.astype("float32") / (1.0 - drop)

    # Embedding tables ---------------------------------------------------------------

    def gather_add(self, table: Any, indices: Any) -> Any:
        """Sum of the rows of `table` (T, O) named by each row of `indices` (B, K): (B, O)."""
        check_ndim("gather_add", table, 2, "table")
        check_ndim("gather_add", indices, 2, "indices")
        check_indices("gather_add", indices, table.shape[0])
        if indices.shape[1] == 0:
            return self.alloc((indices.shape[0], table.shape[1]), dtype=table.dtype)
        # One gather per column of ids (K is small) avoids materialising a (B, K, O) array.
        columns = self.xp.ascontiguousarray(indices.T)
        out = table[columns[0]]
        for column in columns[1:]:
            out += table[column]
        return out

    def scatter_add(self, table: Any, indices: Any, values: Any) -> Any:
        """In place ``table[indices] += values``, accumulating duplicate indices; returns `table`."""
        check_indices("scatter_add", indices, table.shape[0])
        check_scatter_values(table, indices, values)
        self.xp.add.at(table, indices, values)
        return table

    # Hashing and encodings -------------------------------------------------------

    def hash(self, ids: Any, seed: int) -> Any:
        """Thinc's MurmurHash3 128-bit hash of each uint64 id: (N, 4) independent uint32 words, any backend."""
        check_ndim("hash", ids, 1, "ids")
        if ids.dtype.kind not in "ui":
            raise ShapeMismatchError(f"hash: ids must be integers (uint64), got dtype {ids.dtype}")
        return murmur3_128_uint64(self.xp, ids.astype("uint64", copy=False), int(seed))

    def hash_rows(self, ids: Any, seed: int, n_rows: int) -> Any:
        """The rows of an `n_rows`-row table each id hashes to: ``hash(ids, seed) % n_rows``, (N, 4) int32.

        HashEmbed's lookup (the rows Thinc's HashEmbed picks, so its saved tables keep their meaning).
        """
        if not 1 <= n_rows < 2**31:
            raise ShapeMismatchError(f"hash_rows: n_rows must be in [1, 2**31), got {n_rows}")
        return self.xp.ascontiguousarray(self.hash(ids, seed) % n_rows, dtype="int32")

    def ngrams(self, n: int, keys: Any) -> Any:
        """64-bit MurmurHash of each window of `n` consecutive uint64 keys (empty when n < 1)."""
        check_ndim("ngrams", keys, 1, "keys")
        if n < 1 or keys.shape[0] < n:
            return self.alloc((0,), dtype="uint64")
        return murmur64a_windows(self.xp, keys, n)

    def position_encode(self, N: int, D: int, period: int = 10000, out: Any = None) -> Any:
        """Sinusoidal position encodings (N, D) float32: sin on even columns, cos on odd."""
        positions = numpy.arange(N, dtype="float64")[:, None]
        rates = numpy.power(float(period), -(2 * (numpy.arange(D) // 2)) / max(D, 1))
        angles = positions * rates[None, :]
        enc = numpy.where(numpy.arange(D) % 2 == 0, numpy.sin(angles), numpy.cos(angles)).astype("float32")
        if out is None:
            return self.xp.asarray(enc)
        out[...] = self.xp.asarray(enc)
        return out

    # Batching ------------------------------------------------------------------------

    def minibatch(
        self, size: Any, sequence: Any, *, shuffle: bool = False, buffer: int = 1
    ) -> SizedGenerator:
        """Batches of `sequence`; `size` is an int, an iterator of ints or a schedule."""
        if not hasattr(sequence, "__len__"):
            raise ConfigurationError(
                f"Can't minibatch data: expected a sized sequence, got {type(sequence).__name__}"
            )
        sizes = self._get_batch_sizes(len(sequence), size)

        def _iter_items() -> Iterator[Any]:
            indices = numpy.arange(len(sequence))
            if shuffle:
                numpy.random.shuffle(indices)
            queue = []
            start = 0
            for batch_size in sizes:
                queue.append(self._get_batch(sequence, indices[start : start + batch_size]))
                start += batch_size
                if len(queue) >= buffer:
                    yield from queue
                    queue = []
            yield from queue

        return SizedGenerator(_iter_items, len(sizes))

    def multibatch(
        self, size: Any, sequence: Any, *others: Any, shuffle: bool = False, buffer: int = 1
    ) -> SizedGenerator:
        """Batches of several aligned sequences, yielded as lists ``[batch, other_batch, ...]``."""
        sequences = (sequence,) + others
        for i, seq in enumerate(sequences):
            if not hasattr(seq, "__len__"):
                raise ConfigurationError(
                    f"Can't multibatch data: argument {i} is a {type(seq).__name__}, which has no length"
                )
        lengths = [len(seq) for seq in sequences]
        if len(set(lengths)) > 1:
            raise ShapeMismatchError(
                f"multibatch: the sequences must have the same length, got lengths {lengths}"
            )
        sizes = self._get_batch_sizes(len(sequence), size)

        def _iter_items() -> Iterator[Any]:
            indices = numpy.arange(len(sequence))
            if shuffle:
                numpy.random.shuffle(indices)
            queue = []
            start = 0
            for batch_size in sizes:
                idx = indices[start : start + batch_size]
                queue.append([self._get_batch(seq, idx) for seq in sequences])
                start += batch_size
                if len(queue) >= buffer:
                    yield from queue
                    queue = []
            yield from queue

        return SizedGenerator(_iter_items, len(sizes))

    def _get_batch_sizes(self, length: int, size: Any) -> List[int]:
        """Batch sizes drawn up front from an int, an iterator/iterable of ints or a schedule."""
        if isinstance(size, (int, numpy.integer)):
            source: Any = itertools.repeat(int(size))
        elif hasattr(size, "to_generator"):
            source = size.to_generator()
        elif hasattr(size, "__next__"):
            source = size
        elif callable(size):  # a schedule: called with the step number
            source = (size(step) for step in itertools.count())
        elif hasattr(size, "__iter__"):
            source = iter(size)
        else:
            raise ConfigurationError(
                f"minibatch: size must be an int, an iterator of ints or a schedule, got {type(size).__name__}"
            )
        sizes = []
        covered = 0
        while covered < length:
            try:
                batch_size = int(next(source))
            except StopIteration:
                raise ConfigurationError(
                    f"minibatch: the size iterator ran out after covering {covered} of {length} items"
                ) from None
            if batch_size < 1:
                raise ConfigurationError(f"minibatch: batch sizes must be >= 1, got {batch_size}")
            batch_size = min(batch_size, length - covered)
            sizes.append(batch_size)
            covered += batch_size
        return sizes

    def _get_batch(self, sequence: Any, indices: Any) -> Any:
        if isinstance(sequence, list):
            return [sequence[i] for i in indices.tolist()]
        if isinstance(sequence, tuple):
            return tuple(sequence[i] for i in indices.tolist())
        if isinstance(sequence, numpy.ndarray):
            # Select on the host first: only the batch's rows cross to the device.
            return self.xp.ascontiguousarray(self.asarray(sequence[indices]))
        if type(sequence).__module__.startswith("cupy"):
            return self.xp.ascontiguousarray(self.asarray(sequence)[self.xp.asarray(indices)])
        return sequence[indices]

    # Optimizer kernels ---------------------------------------------------------------

    def update_averages(self, ema: Any, weights: Any, t: int, max_decay: float = 0.9999) -> None:
        """In place exponential moving average: ``ema -= (1 - decay) (ema - weights)``."""
        check_same_shape("update_averages", ema, weights, "ema", "weights")
        decay = min((1.0 + t) / (10.0 + t), max_decay)
        difference = self.xp.subtract(ema, weights, out=self._scratch(ema.shape, ema.dtype))
        difference *= 1.0 - decay
        ema -= difference

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
        for name, array in (("gradient", gradient), ("mom1", mom1), ("mom2", mom2)):
            check_same_shape("adam", weights, array, "weights", name)
        xp = self.xp
        # One scratch buffer, reused across calls: fresh temporaries of a large param's
        # size cost page faults on every step.
        scratch = self._scratch(weights.shape, weights.dtype)
        mom1 *= beta1
        mom1 += xp.multiply(gradient, 1.0 - beta1, out=scratch)
        mom2 *= beta2
        step = xp.multiply(gradient, gradient, out=scratch)
        step *= 1.0 - beta2
        mom2 += step
        step = xp.sqrt(mom2, out=scratch)
        step *= mod_rate
        step += eps
        xp.divide(mom1, step, out=step)
        step *= learn_rate
        weights -= step
        gradient.fill(0)
        return weights, gradient, mom1, mom2

    def clip_gradient(self, gradient: Any, threshold: float) -> Any:
        """In place: rescale `gradient` to L2 norm `threshold` if its norm is larger."""
        flat = gradient.reshape(-1)
        norm = float(self.xp.sqrt(self.xp.vdot(flat, flat)))
        if norm >= threshold and norm > 0:
            gradient *= threshold / norm
        return gradient

    def _scratch(self, shape: Tuple[int, ...], dtype: Any) -> Any:
        """An uninitialised array of `shape` from this thread's reusable buffer for `dtype`.

        Valid until the next ``_scratch`` call in the same thread; the buffer grows to the
        largest size asked for and is kept.
        """
        buffers = getattr(_SCRATCH, "buffers", None)
        if buffers is None:
            buffers = _SCRATCH.buffers = {}
        size = int(numpy.prod(shape, dtype="int64"))
        key = (self.xp.__name__, numpy.dtype(dtype).str)
        buffer = buffers.get(key)
        if buffer is None or buffer.size < size:
            buffer = buffers[key] = self.xp.empty((size,), dtype=dtype)
        return buffer[:size].reshape(shape)

    def logloss(self, y_true: Any, y_pred: Any) -> Any:
        """Elementwise binary log loss (predictions clipped away from 0 and 1)."""
        check_same_shape("logloss", y_true, y_pred, "y_true", "y_pred")
        xp = self.xp
        p = xp.clip(y_pred, 1e-7, 1.0 - 1e-7)
        return -(y_true * xp.log(p) + (1.0 - y_true) * xp.log(1.0 - p))

    # LSTM ---------------------------------------------------------------------------------

    def lstm_forward_training(
        self, params: Any, H0: Any, C0: Any, X: Any, size_at_t: Any
    ) -> Tuple[Any, Any]:
        """Multi-layer, optionally bidirectional LSTM over time-major packed rows: (Y, state).

        Shapes: `H0`, `C0` are ``(depth, dirs, nH)`` initial states, shared by every
        sequence; `X` is ``(N, nI)``, the rows of step 0, then step 1, ..., with
        ``size_at_t[t]`` (non-increasing) rows at step t; Y is ``(N, dirs * nH)``,
        the forward direction's columns first.

        `params` is flat, in PyTorch's ``torch.nn.LSTM`` layout: for each layer, for
        each direction (forward, then reverse), ``W_ih (4nH, nI_layer)``, ``b_ih (4nH)``,
        ``W_hh (4nH, nH)``, ``b_hh (4nH)`` raveled in that order, gates ordered
        input, forget, cell (g), output. ``nI_layer`` is ``nI`` for layer 0 and
        ``dirs * nH`` above. Copying ``weight_ih_l{k}[_reverse]`` etc. in that order
        gives the same outputs as ``torch.nn.LSTM`` with ``h0``/``c0`` set to H0/C0.
        """
        return _lstm.forward_training(self, params, H0, C0, X, size_at_t)

    def lstm_forward_inference(self, params: Any, H0: Any, C0: Any, X: Any, size_at_t: Any) -> Any:
        """As lstm_forward_training, returning only Y."""
        return _lstm.forward_inference(self, params, H0, C0, X, size_at_t)

    def backprop_lstm(
        self, dY: Any, lengths: Any, params: Any, fwd_state: Any, *, return_initial: bool = False
    ) -> Tuple[Any, ...]:
        """Backprop through lstm_forward_training: (dX, d_params), plus (dH0, dC0) if `return_initial`."""
        return _lstm.backprop(self, dY, lengths, params, fwd_state, return_initial=return_initial)

    # Segment helpers -------------------------------------------------------------------

    def _seq_of_row(self, host_lengths: Any) -> Any:
        """For each row, the index of the sequence it belongs to (on this backend)."""
        return self.xp.asarray(numpy.repeat(numpy.arange(len(host_lengths)), host_lengths))

    def _segment_sum(self, X: Any, host_lengths: Any) -> Any:
        """Per-sequence sums of rows; zero for empty sequences."""
        return self._segment_reduce(self.xp.add, X, host_lengths)

    def _segment_max(self, X: Any, host_lengths: Any) -> Any:
        """Per-sequence maxima of rows; zero for empty sequences."""
        return self._segment_reduce(self.xp.maximum, X, host_lengths)

    def _segment_min(self, X: Any, host_lengths: Any) -> Any:
        """Per-sequence minima of rows; zero for empty sequences."""
        return self._segment_reduce(self.xp.minimum, X, host_lengths)

    def _segment_reduce(self, ufunc: Any, X: Any, host_lengths: Any) -> Any:
        """``ufunc.reduceat`` over each sequence's rows, with zero rows for empty sequences."""
        out = self.alloc((len(host_lengths),) + tuple(X.shape[1:]), dtype=X.dtype)
        nonempty = host_lengths > 0
        if X.shape[0] and nonempty.any():
            starts = (numpy.cumsum(host_lengths) - host_lengths)[nonempty]
            out[self.xp.asarray(numpy.flatnonzero(nonempty))] = ufunc.reduceat(X, starts, axis=0)
        return out

    def _window_shifts(self, host_lengths: Any, nW: int) -> Iterator[Tuple[int, int, int, Any]]:
        """For each offset k in [-nW, nW]: the rows [lo, hi) whose neighbour i+k is inside the
        array, and the rows in it whose neighbour is in another sequence (None if none)."""
        N = int(host_lengths.sum())
        starts = numpy.cumsum(host_lengths) - host_lengths
        position = numpy.arange(N) - numpy.repeat(starts, host_lengths)
        seq_length = numpy.repeat(host_lengths, host_lengths)
        for k in range(-nW, nW + 1):
            lo, hi = min(N, max(0, -k)), max(0, min(N, N - k))
            invalid = numpy.flatnonzero((position[lo:hi] + k < 0) | (position[lo:hi] + k >= seq_length[lo:hi]))
            yield k, lo, hi, (self.xp.asarray(invalid + lo) if invalid.size else None)

    def _padding_index(self, host_lengths: Any) -> Tuple[Any, Any]:
        """(batch, time) coordinates of every row of the concatenated sequences."""
        starts = numpy.cumsum(host_lengths) - host_lengths
        batch_index = numpy.repeat(numpy.arange(len(host_lengths)), host_lengths)
        time_index = numpy.arange(int(host_lengths.sum())) - numpy.repeat(starts, host_lengths)
        return self.xp.asarray(batch_index), self.xp.asarray(time_index)


_ERF_CACHE: Dict[Any, Any] = {}
# Per-thread scratch buffers of Ops._scratch, by (array module, dtype).
_SCRATCH = threading.local()


def _scipy_erf(xp: Any) -> Any:
    """scipy.special.erf (or cupyx's for cupy), or None where scipy is not installed."""
    if xp not in _ERF_CACHE:
        try:
            if xp is numpy:
                from scipy.special import erf  # lazy: scipy is optional, and slow to import
            else:
                from cupyx.scipy.special import erf  # lazy: only for CupyOps, where cupy is installed
        except ImportError:
            erf = None
        _ERF_CACHE[xp] = erf
    return _ERF_CACHE[xp]


_MAX_STEPS_FOR_LOOPED_MAX = 32
_INV_SQRT2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
# Abramowitz & Stegun 26.2.17: Q(x) = phi(x) (b1 t + ... + b5 t^5), t = 1 / (1 + p x). With
# u = 1 / (x + 1/p) = p t, the coefficients become b_k / p^k, times 1/sqrt(2 pi) for phi;
# listed from b5 down for Horner's rule.
_TAIL_P = 0.2316419
_TAIL_SHIFT = 1.0 / _TAIL_P
_TAIL_COEFFICIENTS = tuple(
    b / _TAIL_P**k * _INV_SQRT_2PI
    for k, b in ((5, 1.330274429), (4, -1.821255978), (3, 1.781477937), (2, -0.356563782), (1, 0.319381530))
)
_SQRT_2_OVER_PI = 0.7978845608028654
