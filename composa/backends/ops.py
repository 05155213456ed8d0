"""The base ``Ops`` class: every array operation composa's layers use, written once against ``self.xp``.

``NumpyOps`` and ``CupyOps`` subclass it and override only where their array module
can do better. Layers never call numpy or cupy directly: they call ``model.ops``.
"""
import itertools
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy

from ..checks import describe
from ..errors import ConfigurationError, OpIndexError, ShapeMismatchError
from ..types import Padded, SizedGenerator
from ._murmur import murmur3_x86_128_uint64, murmur64a_windows

__all__ = ["Ops", "OpIndexError"]

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

    def cblas(self) -> Any:
        """Thinc's table of C BLAS function pointers; composa has none (use gemm/affine)."""
        raise NotImplementedError(f"{type(self).__name__}.cblas: composa exposes no C BLAS table; use ops.gemm")

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
        _check_same_shape("backprop_sigmoid", dY, Y)
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
        _check_same_shape("backprop_relu", dY, Y)
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
        _check_same_shape("backprop_clipped_linear", dY, X)
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
        _check_same_shape("backprop_swish", dY, X)
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
        _check_same_shape("backprop_hard_swish", dY, X)
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
        _check_same_shape("backprop_hard_swish_mobilenet", dY, X)
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
        _check_same_shape("backprop_dish", dY, X)
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
        _check_same_shape("backprop_gelu", dY, X)
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
        _check_same_shape("backprop_gelu", dY, X)
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
        _check_same_shape("backprop_gelu_approx", dY, X)
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
        _check_same_shape("backprop_mish", dY, X)
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
        _check_same_shape("backprop_softmax", dY, Y)
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
        _check_ndim("softmax_sequences", Xs, 2, "Xs")
        host_lengths = self._check_lengths("softmax_sequences", lengths, Xs.shape[0])
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
        _check_same_shape("backprop_softmax_sequences", dY, Y)
        host_lengths = self._check_lengths("backprop_softmax_sequences", lengths, Y.shape[0])
        dX = Y * dY
        sums = self._segment_sum(dX, host_lengths)
        if dX.shape[0]:
            dX -= Y * sums[self._seq_of_row(host_lengths)]
        return dX

    # Maxout --------------------------------------------------------------------------

    def maxout(self, X: Any) -> Tuple[Any, Any]:
        """Max over the last (pieces) axis of a (B, O, P) array: (best (B, O), which (B, O) int32)."""
        _check_ndim("maxout", X, 3, "X")
        if X.shape[2] == 0:
            raise ShapeMismatchError(f"maxout: needs at least one piece, got X of shape {tuple(X.shape)}")
        which = X.argmax(axis=-1).astype("int32")
        best = self.xp.take_along_axis(X, which[..., None].astype("int64"), axis=-1)[..., 0]
        return best, which

    def backprop_maxout(self, dY: Any, which: Any, P: int) -> Any:
        """Route each gradient of a maxout output to the piece that won: (B, O, P)."""
        _check_ndim("backprop_maxout", dY, 2, "dY")
        _check_same_shape("backprop_maxout", dY, which, "dY", "which")
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
        _check_ndim("reduce_sum", X, 2, "X")
        host_lengths = self._check_lengths("reduce_sum", lengths, X.shape[0])
        return self._segment_sum(X, host_lengths)

    def reduce_mean(self, X: Any, lengths: Any) -> Any:
        """Mean of the rows of each sequence: (B, O); empty sequences give 0."""
        _check_ndim("reduce_mean", X, 2, "X")
        host_lengths = self._check_lengths("reduce_mean", lengths, X.shape[0])
        sums = self._segment_sum(X, host_lengths)
        divisor = self.xp.asarray(numpy.maximum(host_lengths, 1), dtype=X.dtype)
        sums /= divisor[:, None]
        return sums

    def reduce_max(self, X: Any, lengths: Any) -> Tuple[Any, Any]:
        """Max of the rows of each sequence, and which row (within the sequence) held it, int32."""
        _check_ndim("reduce_max", X, 2, "X")
        host_lengths = self._check_lengths("reduce_max", lengths, X.shape[0], positive=True)
        xp = self.xp
        if X.shape[0] == 0:
            return self.alloc((0, X.shape[1]), dtype=X.dtype), self.alloc2i(0, X.shape[1])
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
        _check_ndim("reduce_first", X, 2, "X")
        host_lengths = self._check_lengths("reduce_first", lengths, X.shape[0], positive=True)
        starts_ends = numpy.zeros(len(host_lengths) + 1, dtype="int32")
        numpy.cumsum(host_lengths, out=starts_ends[1:])
        starts_ends = self.xp.asarray(starts_ends)
        return X[starts_ends[:-1]], starts_ends

    def reduce_last(self, X: Any, lengths: Any) -> Tuple[Any, Any]:
        """Last row of each sequence, and the (B,) indices of those rows."""
        _check_ndim("reduce_last", X, 2, "X")
        host_lengths = self._check_lengths("reduce_last", lengths, X.shape[0], positive=True)
        lasts = self.xp.asarray((numpy.cumsum(host_lengths) - 1).astype("int32"))
        return X[lasts], lasts

    def backprop_reduce_sum(self, d_sums: Any, lengths: Any) -> Any:
        """Gradient of reduce_sum: each sequence's row gradient copied to its rows."""
        _check_ndim("backprop_reduce_sum", d_sums, 2, "d_sums")
        host_lengths = self._check_lengths("backprop_reduce_sum", lengths, None, n_seqs=d_sums.shape[0])
        return d_sums[self._seq_of_row(host_lengths)]

    def backprop_reduce_mean(self, d_means: Any, lengths: Any) -> Any:
        """Gradient of reduce_mean: each row gets its sequence's gradient / length."""
        _check_ndim("backprop_reduce_mean", d_means, 2, "d_means")
        host_lengths = self._check_lengths(
            "backprop_reduce_mean", lengths, None, n_seqs=d_means.shape[0]
        )
        divisor = self.xp.asarray(numpy.maximum(host_lengths, 1), dtype=d_means.dtype)
        return (d_means / divisor[:, None])[self._seq_of_row(host_lengths)]

    def backprop_reduce_max(self, d_maxes: Any, which: Any, lengths: Any) -> Any:
        """Gradient of reduce_max: each gradient goes to the row that held the max."""
        _check_ndim("backprop_reduce_max", d_maxes, 2, "d_maxes")
        _check_same_shape("backprop_reduce_max", d_maxes, which, "d_maxes", "which")
        host_lengths = self._check_lengths(
            "backprop_reduce_max", lengths, None, n_seqs=d_maxes.shape[0], positive=True
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
        if starts_ends.size < 2:
            raise ShapeMismatchError(
                f"backprop_reduce_first: starts_ends needs B+1 >= 2 entries, got shape {tuple(starts_ends.shape)}"
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
        _check_ndim("seq2col", seq, 2, "seq")
        if nW < 0:
            raise ConfigurationError(f"seq2col: nW must be >= 0, got {nW}")
        N, I = seq.shape
        host_lengths = self._check_lengths("seq2col", _default_lengths(lengths, N), N)
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
        _check_ndim("backprop_seq2col", dY, 2, "dY")
        N = dY.shape[0]
        if nW < 0 or dY.shape[1] % (2 * nW + 1):
            raise ShapeMismatchError(
                f"backprop_seq2col: dY width {dY.shape[1]} is not a multiple of 2*nW+1={2 * nW + 1}"
            )
        I = dY.shape[1] // (2 * nW + 1)
        host_lengths = self._check_lengths("backprop_seq2col", _default_lengths(lengths, N), N)
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
        host_lengths = self._check_lengths("unflatten", lengths, None)
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
        host_lengths = self._check_lengths("unpad", lengths, None, n_seqs=padded.shape[0])
        _check_fits("unpad", host_lengths, padded.shape[1])
        return [padded[i, :length] for i, length in enumerate(host_lengths.tolist())]

    def list2padded(self, seqs: Sequence[Any]) -> Padded:
        """Sequences -> time-major Padded (T, B, ...), sorted by decreasing length."""
        if len(seqs) == 0:
            empty = self.alloc1i(0)
            return Padded(self.alloc3f(0, 0, 0), empty, empty.copy(), empty.copy())
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
        host_lengths = self._check_lengths("padded2list", padded.lengths, None, n_seqs=n_seqs)
        _check_fits("padded2list", host_lengths, n_steps)
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
        _check_ndim("gather_add", table, 2, "table")
        _check_ndim("gather_add", indices, 2, "indices")
        self._check_indices("gather_add", indices, table.shape[0])
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
        self._check_indices("scatter_add", indices, table.shape[0])
        expected = tuple(indices.shape) + tuple(table.shape[1:])
        if tuple(values.shape) != expected:
            raise ShapeMismatchError(
                f"scatter_add: values should have shape {expected} for indices of shape "
                f"{tuple(indices.shape)} and table {tuple(table.shape)}, got {tuple(values.shape)}"
            )
        self.xp.add.at(table, indices, values)
        return table

    # Hashing and encodings -------------------------------------------------------

    def hash(self, ids: Any, seed: int) -> Any:
        """MurmurHash3 x86 128-bit of each uint64 id: (N, 4) uint32 (same on every backend)."""
        _check_ndim("hash", ids, 1, "ids")
        if ids.dtype.kind not in "ui":
            raise ShapeMismatchError(f"hash: ids must be integers (uint64), got dtype {ids.dtype}")
        return murmur3_x86_128_uint64(self.xp, ids.astype("uint64", copy=False), int(seed))

    def ngrams(self, n: int, keys: Any) -> Any:
        """64-bit MurmurHash of each window of `n` consecutive uint64 keys (empty when n < 1)."""
        _check_ndim("ngrams", keys, 1, "keys")
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
        _check_same_shape("update_averages", ema, weights, "ema", "weights")
        decay = min((1.0 + t) / (10.0 + t), max_decay)
        ema -= (1.0 - decay) * (ema - weights)

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
            _check_same_shape("adam", weights, array, "weights", name)
        mom1 *= beta1
        mom1 += (1.0 - beta1) * gradient
        mom2 *= beta2
        mom2 += (1.0 - beta2) * (gradient * gradient)
        step = self.xp.sqrt(mom2)
        step *= mod_rate
        step += eps
        self.xp.divide(mom1, step, out=step)
        step *= learn_rate
        weights -= step
        gradient.fill(0)
        return weights, gradient, mom1, mom2

    def clip_gradient(self, gradient: Any, threshold: float) -> Any:
        """In place: rescale `gradient` to L2 norm `threshold` if its norm is larger."""
        norm = float(self.xp.sqrt((gradient * gradient).sum()))
        if norm >= threshold and norm > 0:
            gradient *= threshold / norm
        return gradient

    def logloss(self, y_true: Any, y_pred: Any) -> Any:
        """Elementwise binary log loss (predictions clipped away from 0 and 1)."""
        _check_same_shape("logloss", y_true, y_pred, "y_true", "y_pred")
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
        return self._lstm_forward(params, H0, C0, X, size_at_t, keep_state=True)

    def lstm_forward_inference(self, params: Any, H0: Any, C0: Any, X: Any, size_at_t: Any) -> Any:
        """As lstm_forward_training, returning only Y."""
        return self._lstm_forward(params, H0, C0, X, size_at_t, keep_state=False)[0]

    def backprop_lstm(
        self, dY: Any, lengths: Any, params: Any, fwd_state: Any, *, return_initial: bool = False
    ) -> Tuple[Any, ...]:
        """Backprop through lstm_forward_training: (dX, d_params), plus (dH0, dC0) if `return_initial`."""
        layers, X, plan = fwd_state
        if dY.shape[0] != X.shape[0]:
            raise ShapeMismatchError(
                f"backprop_lstm: dY has {dY.shape[0]} rows but the forward pass had {X.shape[0]}"
            )
        nH = plan.nH
        d_params = self.alloc((params.shape[0],), dtype=params.dtype)
        dH0 = self.alloc((plan.depth, plan.dirs, nH), dtype=dY.dtype)
        dC0 = self.alloc((plan.depth, plan.dirs, nH), dtype=dY.dtype)
        to_torch = self.xp.asarray(plan.to_torch_order)
        gate_order = self.xp.asarray(plan.gate_order)
        d_out = dY
        for layer in reversed(range(plan.depth)):
            d_input = None
            for direction in range(plan.dirs):
                X_in, acts, C, tanh_C, Y, h0, c0 = layers[layer][direction]
                W_ih, _, W_hh, _, slices = plan.weights(params, layer, direction)
                W_ih, W_hh = W_ih[gate_order], W_hh[gate_order]
                dG, dh0, dc0 = self._lstm_backward_steps(
                    d_out[:, direction * nH : (direction + 1) * nH], acts, C, tanh_C, c0, W_hh, plan, direction
                )
                dH0[layer, direction] = dh0
                dC0[layer, direction] = dc0
                d_W_ih, d_b_ih, d_W_hh, d_b_hh = (d_params[s] for s in slices)
                d_W_ih += self.gemm(dG, X_in, trans1=True)[to_torch].ravel()
                d_bias = dG.sum(axis=0)[to_torch]
                d_b_ih += d_bias
                d_b_hh += d_bias
                d_W_hh += self._lstm_d_W_hh(dG, Y, h0, plan, direction)[to_torch].ravel()
                if d_input is None:
                    d_input = self.gemm(dG, W_ih)
                else:
                    d_input += self.gemm(dG, W_ih)
            d_out = d_input
        if return_initial:
            return d_out, d_params, dH0, dC0
        return d_out, d_params

    def _lstm_d_W_hh(self, dG: Any, Y: Any, h0: Any, plan: "_LSTMPlan", direction: int) -> Any:
        """``dG.T @ H_prev``, H_prev the state each row started from; sliced, not gathered, when
        every step has the same rows."""
        N, b = Y.shape[0], plan.batch
        if N and all(size == b for size in plan.sizes):
            first, rest = (slice(0, b), slice(b, N)) if direction == 0 else (slice(N - b, N), slice(0, N - b))
            shifted = slice(0, N - b) if direction == 0 else slice(b, N)
            d_W = self.gemm(dG[rest], Y[shifted], trans1=True)
            d_W += dG[first].sum(axis=0)[:, None] * h0[None, :]
            return d_W
        prev = self.xp.asarray(plan.prev_rows(direction))
        H_prev = self.xp.concatenate((Y, h0[None].astype(Y.dtype)))[prev]
        return self.gemm(dG, H_prev, trans1=True)

    def _lstm_forward(
        self, params: Any, H0: Any, C0: Any, X: Any, size_at_t: Any, keep_state: bool
    ) -> Tuple[Any, Any]:
        plan = _LSTMPlan.make(self, params, H0, C0, X, size_at_t)
        layers = []
        inputs = X
        for layer in range(plan.depth):
            outputs = []
            states = []
            for direction in range(plan.dirs):
                W_ih, b_ih, W_hh, b_hh, _ = plan.weights(params, layer, direction)
                h0, c0 = H0[layer, direction], C0[layer, direction]
                Y_dir, acts, C, tanh_C = self._lstm_forward_steps(
                    inputs, W_ih, b_ih + b_hh, W_hh, h0, c0, plan, direction
                )
                outputs.append(Y_dir)
                states.append((inputs, acts, C, tanh_C, Y_dir, h0, c0) if keep_state else None)
            layers.append(states)
            inputs = outputs[0] if plan.dirs == 1 else self.xp.concatenate(outputs, axis=1)
        return inputs, (layers, X, plan)

    def _lstm_forward_steps(
        self, X: Any, W_ih: Any, bias: Any, W_hh: Any, h0: Any, c0: Any, plan: "_LSTMPlan", direction: int
    ) -> Tuple[Any, Any, Any, Any]:
        """One layer and direction: (Y, gate activations, cell states, their tanh), as packed rows.

        Gates are kept in the order (o, i, f, g) so that the three sigmoid gates are adjacent,
        and the sigmoid rows of the weights are halved: then one tanh over all four gates and
        ``0.5 t + 0.5`` on the first three give every activation, since
        ``sigmoid(z) = 0.5 tanh(z / 2) + 0.5`` (halving is exact in floating point).
        """
        xp = self.xp
        nH = plan.nH
        N = X.shape[0]
        dtype = X.dtype
        scale = xp.asarray(plan.gate_scale(dtype))
        gate_order = xp.asarray(plan.gate_order)
        W_ih = W_ih[gate_order] * scale[:, None]
        W_hh_T = xp.ascontiguousarray((W_hh[gate_order] * scale[:, None]).T)
        acts = self.gemm(X, W_ih, trans2=True)
        acts += bias[gate_order] * scale
        Y = self.alloc((N, nH), dtype=dtype, zeros=False)
        C = self.alloc((N, nH), dtype=dtype, zeros=False)
        tanh_C = self.alloc((N, nH), dtype=dtype, zeros=False)
        batch = plan.batch
        recurrent = self.alloc((batch, 4 * nH), dtype=dtype, zeros=False)
        product = self.alloc((batch, nH), dtype=dtype, zeros=False)
        hp = self.alloc((batch, nH), dtype=dtype, zeros=False)
        cp = self.alloc((batch, nH), dtype=dtype, zeros=False)
        hp[...] = h0
        cp[...] = c0
        prev_start, prev_size = 0, 0
        for t in plan.step_order(direction):
            start, b = plan.offsets[t], plan.sizes[t]
            end = start + b
            if prev_size >= b:  # every row continues a sequence: read the last step in place
                h_prev, c_prev = Y[prev_start : prev_start + b], C[prev_start : prev_start + b]
            else:  # some sequences start here (reverse direction): the rest take h0, c0
                if prev_size:
                    hp[:prev_size] = Y[prev_start : prev_start + prev_size]
                    cp[:prev_size] = C[prev_start : prev_start + prev_size]
                    hp[prev_size:b] = h0
                    cp[prev_size:b] = c0
                h_prev, c_prev = hp[:b], cp[:b]
            G = acts[start:end]
            G += self.gemm(h_prev, W_hh_T, out=recurrent[:b])
            xp.tanh(G, out=G)
            sig = G[:, : 3 * nH]
            sig *= 0.5
            sig += 0.5
            c = C[start:end]
            xp.multiply(G[:, 2 * nH : 3 * nH], c_prev, out=c)
            c += xp.multiply(G[:, nH : 2 * nH], G[:, 3 * nH :], out=product[:b])
            xp.multiply(xp.tanh(c, out=tanh_C[start:end]), G[:, :nH], out=Y[start:end])
            prev_start, prev_size = start, b
        return Y, acts, C, tanh_C

    def _lstm_backward_steps(
        self, dY: Any, acts: Any, C: Any, tanh_C: Any, c0: Any, W_hh: Any, plan: "_LSTMPlan", direction: int
    ) -> Tuple[Any, Any, Any]:
        """Gradients of the gate pre-activations (N, 4nH, order o, i, f, g), and of h0 and c0.

        Each step works on its own few rows, which stay in cache: that is faster than
        computing the step-independent products for all N rows up front (those passes are
        memory-bound and strided), and than allocating big temporaries (page faults).
        """
        xp = self.xp
        nH = plan.nH
        N = acts.shape[0]
        dtype = acts.dtype
        batch = plan.batch
        # (1 - a) (a + k) is s (1 - s) for the sigmoid gates (k = 0) and 1 - g**2 for g (k = 1).
        shift = xp.asarray(numpy.repeat(numpy.asarray([0.0, 0.0, 0.0, 1.0], dtype=dtype), nH))
        dG = self.alloc((N, 4 * nH), dtype=dtype, zeros=False)
        derivative = self.alloc((batch, 4 * nH), dtype=dtype, zeros=False)
        scratch = self.alloc((batch, 4 * nH), dtype=dtype, zeros=False)
        factors = self.alloc((batch, 4, nH), dtype=dtype, zeros=False)
        dh = self.alloc((batch, nH), dtype=dtype, zeros=False)
        dc = self.alloc((batch, nH), dtype=dtype, zeros=False)
        dh_prev = self.alloc((batch, nH), dtype=dtype, zeros=False)
        dc_prev = self.alloc((batch, nH), dtype=dtype, zeros=False)
        cp = self.alloc((batch, nH), dtype=dtype, zeros=False)
        dh0 = self.alloc((nH,), dtype=dtype)
        dc0 = self.alloc((nH,), dtype=dtype)
        carried = 0  # rows of this step that receive dh_prev, dc_prev from the step after it
        order = plan.step_order(direction)[::-1]
        for position, t in enumerate(order):
            start, b = plan.offsets[t], plan.sizes[t]
            end = start + b
            next_b = plan.sizes[order[position + 1]] if position + 1 < len(order) else 0
            # The cell state this step started from: the next step of this loop, or c0.
            if next_b >= b:
                next_start = plan.offsets[order[position + 1]]
                c_prev = C[next_start : next_start + b]
            else:
                if next_b:
                    next_start = plan.offsets[order[position + 1]]
                    cp[:next_b] = C[next_start : next_start + next_b]
                cp[next_b:b] = c0
                c_prev = cp[:b]
            A = acts[start:end]
            o, i, f, g = A[:, :nH], A[:, nH : 2 * nH], A[:, 2 * nH : 3 * nH], A[:, 3 * nH :]
            dh_t = dh[:b]
            if carried == b:
                xp.add(dY[start:end], dh_prev[:b], out=dh_t)
            else:
                dh_t[...] = dY[start:end]
                if carried:
                    dh_t[:carried] += dh_prev[:carried]
            D = xp.subtract(1.0, A, out=derivative[:b])
            D *= xp.add(A, shift, out=scratch[:b])
            tc = tanh_C[start:end]
            Q = factors[:b]
            q_o = xp.multiply(dh_t, tc, out=Q[:, 0])
            # dc = dh o (1 - tanh(c)**2) + dc_next = o (dh - q_o tanh(c)) + dc_next
            dc_t = xp.multiply(q_o, tc, out=dc[:b])
            xp.subtract(dh_t, dc_t, out=dc_t)
            dc_t *= o
            if carried:
                dc_t[:carried] += dc_prev[:carried]
            xp.multiply(dc_t, g, out=Q[:, 1])
            xp.multiply(dc_t, c_prev, out=Q[:, 2])
            xp.multiply(dc_t, i, out=Q[:, 3])
            dG_t = xp.multiply(Q.reshape((b, 4 * nH)), D, out=dG[start:end])
            self.gemm(dG_t, W_hh, out=dh_prev[:b])
            xp.multiply(dc_t, f, out=dc_prev[:b])
            carried = min(b, next_b)
            if b > next_b:  # rows whose previous state was the initial state
                dh0 += dh_prev[next_b:b].sum(axis=0)
                dc0 += dc_prev[next_b:b].sum(axis=0)
        return dG, dh0, dc0

    # Validation and segment helpers ----------------------------------------------

    def _check_lengths(
        self,
        op: str,
        lengths: Any,
        n_rows: Optional[int],
        *,
        n_seqs: Optional[int] = None,
        positive: bool = False,
    ) -> Any:
        """`lengths` as a host int64 array, after checking rank, dtype, sign and total."""
        host = self.to_numpy(lengths) if hasattr(lengths, "shape") else numpy.asarray(lengths)
        if host.ndim != 1:
            raise ShapeMismatchError(f"{op}: lengths must be 1-dimensional, got shape {tuple(host.shape)}")
        if host.size and host.dtype.kind not in "iu":
            raise ShapeMismatchError(f"{op}: lengths must be integers, got dtype {host.dtype}")
        host = host.astype("int64", copy=False)
        if host.size and host.min() < (1 if positive else 0):
            bound = "positive" if positive else "non-negative"
            raise ShapeMismatchError(f"{op}: lengths must be {bound}, got min length {int(host.min())}")
        if n_seqs is not None and host.shape[0] != n_seqs:
            raise ShapeMismatchError(f"{op}: {n_seqs} sequences in the array but {host.shape[0]} lengths")
        if n_rows is not None and int(host.sum()) != n_rows:
            raise ShapeMismatchError(
                f"{op}: lengths sum to {int(host.sum())} but the array has {n_rows} rows"
            )
        return host

    def _check_indices(self, op: str, indices: Any, n_rows: int) -> None:
        if indices.dtype.kind not in "iu":
            raise ShapeMismatchError(f"{op}: indices must be integers, got dtype {indices.dtype}")
        if indices.size:
            low, high = int(indices.min()), int(indices.max())
            if low < 0 or high >= n_rows:
                raise OpIndexError(
                    f"{op}: index out of bounds: indices span [{low}, {high}] but the table has {n_rows} rows"
                )

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


class _LSTMPlan:
    """Sizes and offsets of one LSTM call, on the host, shared by forward and backward."""

    def __init__(self, depth: int, dirs: int, nH: int, nI: int, sizes: List[int]) -> None:
        self.depth, self.dirs, self.nH, self.nI = depth, dirs, nH, nI
        self.sizes = sizes
        self.offsets = [0] * len(sizes)
        for t in range(1, len(sizes)):
            self.offsets[t] = self.offsets[t - 1] + sizes[t - 1]
        self.batch = sizes[0] if sizes else 0
        self._slices: Dict[Tuple[int, int], List[Tuple[slice, Tuple[int, ...]]]] = {}
        offset = 0
        for layer in range(depth):
            n_in = nI if layer == 0 else nH * dirs
            for direction in range(dirs):
                entries: List[Tuple[slice, Tuple[int, ...]]] = []
                for shape in ((4 * nH, n_in), (4 * nH,), (4 * nH, nH), (4 * nH,)):
                    size = int(numpy.prod(shape))
                    entries.append((slice(offset, offset + size), shape))
                    offset += size
                self._slices[layer, direction] = entries
        self.n_params = offset

    @classmethod
    def make(cls, ops: Ops, params: Any, H0: Any, C0: Any, X: Any, size_at_t: Any) -> "_LSTMPlan":
        op = "lstm_forward"
        _check_ndim(op, H0, 3, "H0")
        _check_ndim(op, X, 2, "X")
        _check_ndim(op, params, 1, "params")
        if tuple(C0.shape) != tuple(H0.shape):
            raise ShapeMismatchError(f"{op}: H0 has shape {tuple(H0.shape)} but C0 has {tuple(C0.shape)}")
        depth, dirs, nH = (int(d) for d in H0.shape)
        if dirs not in (1, 2):
            raise ShapeMismatchError(f"{op}: H0 must be (depth, dirs, nH) with dirs 1 or 2, got {tuple(H0.shape)}")
        sizes = ops._check_lengths(op, size_at_t, X.shape[0])
        if sizes.size > 1 and (numpy.diff(sizes) > 0).any():
            raise ShapeMismatchError(f"{op}: size_at_t must be non-increasing, got {sizes.tolist()[:10]}...")
        plan = cls(depth, dirs, nH, int(X.shape[1]), sizes.tolist())
        if params.shape[0] != plan.n_params:
            raise ShapeMismatchError(
                f"{op}: expected {plan.n_params} params for depth={depth}, dirs={dirs}, nH={nH}, "
                f"nI={X.shape[1]}, got {params.shape[0]}"
            )
        return plan

    def weights(self, params: Any, layer: int, direction: int) -> Tuple[Any, Any, Any, Any, List[slice]]:
        entries = self._slices[layer, direction]
        arrays = [params[s].reshape(shape) for s, shape in entries]
        return arrays[0], arrays[1], arrays[2], arrays[3], [s for s, _ in entries]

    def step_order(self, direction: int) -> List[int]:
        steps = list(range(len(self.sizes)))
        return steps if direction == 0 else steps[::-1]

    @property
    def gate_order(self) -> Any:
        """Rows of torch's (i, f, g, o) gate blocks in the kernels' order (o, i, f, g)."""
        return numpy.concatenate([numpy.arange(block * self.nH, (block + 1) * self.nH) for block in (3, 0, 1, 2)])

    @property
    def to_torch_order(self) -> Any:
        """Inverse of gate_order: rows of the kernels' gate blocks back in torch's order."""
        return numpy.argsort(self.gate_order)

    def gate_scale(self, dtype: Any) -> Any:
        """0.5 for the sigmoid gates (o, i, f), 1 for g: sigmoid(z) = 0.5 tanh(z / 2) + 0.5."""
        return numpy.repeat(numpy.asarray([0.5, 0.5, 0.5, 1.0], dtype=dtype), self.nH)

    def prev_rows(self, direction: int) -> Any:
        """For each packed row, the row holding its previous state; N (one past the end) for h0."""
        sizes = numpy.asarray(self.sizes, dtype="int64")
        offsets = numpy.asarray(self.offsets, dtype="int64")
        N = int(sizes.sum())
        step = numpy.repeat(numpy.arange(len(sizes)), sizes)
        rank = numpy.arange(N) - numpy.repeat(offsets, sizes)
        prev_step = step - 1 if direction == 0 else step + 1
        inside = (prev_step >= 0) & (prev_step < len(sizes))
        clipped = numpy.clip(prev_step, 0, max(len(sizes) - 1, 0))
        if N:
            inside &= rank < sizes[clipped]
            return numpy.where(inside, offsets[clipped] + rank, N)
        return numpy.zeros(0, dtype="int64")


_ERF_CACHE: Dict[Any, Any] = {}


def _scipy_erf(xp: Any) -> Any:
    """scipy.special.erf (or cupyx's for cupy), or None where scipy is not installed."""
    if xp not in _ERF_CACHE:
        try:
            if xp is numpy:
                from scipy.special import erf
            else:
                from cupyx.scipy.special import erf
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



def _check_ndim(op: str, array: Any, ndim: int, name: str) -> None:
    shape = getattr(array, "shape", None)
    if shape is None or len(shape) != ndim:
        raise ShapeMismatchError(f"{op}: expected a {ndim}d array for {name}, got {describe(array)}")
    if name not in ("indices", "which", "ids", "keys") and array.dtype.kind not in "fiu":
        raise ShapeMismatchError(f"{op}: expected numbers for {name}, got dtype {array.dtype}")


def _check_same_shape(op: str, a: Any, b: Any, name_a: str = "dY", name_b: str = "X") -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ShapeMismatchError(
            f"{op}: {name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def _check_fits(op: str, host_lengths: Any, n_steps: int) -> None:
    """Raise unless every sequence length fits in the `n_steps` steps of a padded array."""
    if host_lengths.size and int(host_lengths.max()) > n_steps:
        raise ShapeMismatchError(
            f"{op}: a sequence has length {int(host_lengths.max())} but the data is padded to {n_steps} steps"
        )


def _default_lengths(lengths: Any, n_rows: int) -> Any:
    return numpy.asarray([n_rows], dtype="int64") if lengths is None else lengths
