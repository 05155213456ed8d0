"""Compiled CPU kernels (numba) behind ``NumpyOps``: fused activations, table gathers and
scatters, Adam, and the LSTM step loops.

Importing this module imports numba; ``composa.backends._kernels`` does that lazily and
only when numba is installed and not switched off. Every kernel takes C-contiguous
float32 or float64 arrays (the callers check), writes into arrays it is given and is
compiled on first use for the dtypes it sees, with the machine code cached on disk
(``cache=True``: next to this file, or in numba's user cache directory when the package
directory is read-only), so a later process loads it in milliseconds.

float32 ``exp`` is a Cephes-style polynomial (relative error below 3e-7) written so
that LLVM vectorises it; numba would otherwise call libm's scalar ``expf`` per element,
four times slower than numpy. float64 keeps libm's ``exp``, ``erfc`` and ``tanh``.
"""
import functools
import math
import threading
import warnings
from typing import Any, Callable

import numba
import numpy
from numba import types
from numba.core.errors import NumbaIRAssumptionWarning
from numba.extending import intrinsic, overload

__all__: list = []

_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)
# Fused multiply-adds only: reassociation would reorder the polynomials' Horner steps,
# approximate reciprocals cost an ulp (sigmoid(30) must be 1), and NaNs must stay NaNs.
_FAST = {"nsz", "contract"}
inline = numba.njit(inline="always", fastmath=_FAST, **_JIT)
_lock = threading.Lock()


class _Deferred:
    """A kernel whose numba dispatcher is made on its first call, then replaces it in this module.

    Making a dispatcher costs about 0.5 ms and a run uses a few of the kernels, so only
    those pay (importing this module went from 25 to 10 ms); the dispatcher loads its
    machine code from the cache on its first call, as before.
    """

    def __init__(self, py_func: Callable, fastmath: Any) -> None:
        self.py_func, self.fastmath = py_func, fastmath
        functools.update_wrapper(self, py_func)

    def __call__(self, *args: Any) -> Any:
        with _lock:
            dispatcher = globals()[self.__name__]
            if dispatcher is self:
                dispatcher = globals()[self.__name__] = numba.njit(fastmath=self.fastmath, **_JIT)(self.py_func)
        return dispatcher(*args)


def kernel(py_func: Callable) -> Any:
    """A fused loop: compiled with fused multiply-adds, no reassociation."""
    return _Deferred(py_func, _FAST)


def reduction(py_func: Callable) -> Any:
    """A loop with a sum, which vectorises only when the sum may be reassociated."""
    return _Deferred(py_func, True)

_F32 = numpy.float32
_EXP_HI = _F32(88.0)  # keeps 2**n finite: n <= 127
_EXP_LO = _F32(-87.3)
_LOG2E = _F32(1.44269504088896341)
_LN2_HI = _F32(0.693359375)
_LN2_LO = _F32(-2.12194440e-4)
_EXP_POLY = tuple(_F32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
_TANH_CLAMP = _F32(7.90531110763549805)  # the polynomial's range
_TANH_P = tuple(_F32(c) for c in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03))
_TANH_Q = tuple(_F32(c) for c in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03))
_INV_SQRT2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
# Abramowitz & Stegun 26.2.17 for the normal upper tail, as in Ops._normal_tail.
_TAIL_P = 0.2316419
_TAIL_B = (0.319381530, -0.356563782, 1.781477937, -1.821255978, 1.330274429)


@intrinsic
def _int32_bits_as_float32(typingctx, bits):  # type: ignore[no-untyped-def]
    """Reinterpret an int32's bits as a float32 (an LLVM bitcast, which vectorises)."""
    signature = types.float32(types.int32)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return signature, codegen


@inline
def _expf(x):  # type: ignore[no-untyped-def]
    """exp of a float32 by range reduction to [-ln2/2, ln2/2] and a degree-7 polynomial."""
    x = _EXP_HI if x > _EXP_HI else x  # (NaN fails both tests and stays NaN)
    x = _EXP_LO if x < _EXP_LO else x
    n = numpy.floor(x * _LOG2E + _F32(0.5))
    r = x - n * _LN2_HI - n * _LN2_LO
    p = _EXP_POLY[0]
    p = p * r + _EXP_POLY[1]
    p = p * r + _EXP_POLY[2]
    p = p * r + _EXP_POLY[3]
    p = p * r + _EXP_POLY[4]
    p = p * r + _EXP_POLY[5]
    p = p * r * r + r + _F32(1.0)
    return p * _int32_bits_as_float32((numpy.int32(n) + numpy.int32(127)) << numpy.int32(23))


def const(like, value):  # type: ignore[no-untyped-def]
    """`value` in the float type of `like` (a scalar or an array): float32 stays float32."""
    return value


@overload(const, inline="always")
def _const_overload(like, value):  # type: ignore[no-untyped-def]
    dtype = like.dtype if isinstance(like, types.Array) else like
    cast = numpy.float32 if dtype == types.float32 else numpy.float64
    return lambda like, value: cast(value)


# numba's internal check "variable ... is not in scope" misfires on the branches of the
# per-dtype helpers once they are inlined; the kernels compile correctly, and the warnings
# (dozens per first compile, none a user can act on) are not shown.
warnings.filterwarnings("ignore", message=r".*variable '_per_dtype__locals", category=NumbaIRAssumptionWarning)


def _per_dtype(function: Callable, for_float32: Any, otherwise: Any) -> None:
    """Let compiled code call `function` as `for_float32` on float32 and `otherwise` on other
    types, inlined; Python calls keep `function` itself."""

    @overload(function, inline="always", fastmath=_FAST)
    def _overload(x):  # type: ignore[no-untyped-def]
        return (lambda x: for_float32(x)) if x == types.float32 else (lambda x: otherwise(x))


def fast_exp(x):  # type: ignore[no-untyped-def]
    """exp, vectorisable for float32 (see the module docs)."""
    return math.exp(x)


_per_dtype(fast_exp, _expf, math.exp)


@inline
def _tanh_by_exp(x):  # type: ignore[no-untyped-def]
    """tanh from one exp of -2|x| (float64: libm's exp, error ~1e-16)."""
    one = const(x, 1.0)
    e = fast_exp(const(x, -2.0) * abs(x))
    t = (one - e) / (one + e)
    return t if x >= 0 else -t


@inline
def _tanh_float32(x):  # type: ignore[no-untyped-def]
    """float32 tanh as an odd degree-13 over an even degree-6 polynomial (Eigen's): one
    division and no exp, a third of the exp form's cost; absolute error below 3e-7 (what
    gates need), exactly +-1 past |x| = 9 as tanh rounds there, NaN stays NaN."""
    clamped = min(max(x, -_TANH_CLAMP), _TANH_CLAMP)
    x2 = clamped * clamped
    p = _TANH_P[0]
    for c in _TANH_P[1:]:
        p = p * x2 + c
    q = _TANH_Q[0]
    for c in _TANH_Q[1:]:
        q = q * x2 + c
    t = clamped * p / q
    t = _F32(1.0) if x > _F32(9.0) else t
    return _F32(-1.0) if x < _F32(-9.0) else t


def _tanh(x):  # type: ignore[no-untyped-def]
    """tanh for the LSTM gates: the polynomial in float32, the exp form in float64."""
    return math.tanh(x)


_per_dtype(_tanh, _tanh_float32, _tanh_by_exp)


@inline
def _sigmoid(x):  # type: ignore[no-untyped-def]
    one = const(x, 1.0)
    return one / (one + fast_exp(-x))


@inline
def _normal_tail(a):  # type: ignore[no-untyped-def]
    """(Q(a), phi(a)) for a >= 0: the normal upper tail and density."""
    t = const(a, 1.0) / (const(a, 1.0) + const(a, _TAIL_P) * a)
    poly = const(a, _TAIL_B[4])
    poly = poly * t + const(a, _TAIL_B[3])
    poly = poly * t + const(a, _TAIL_B[2])
    poly = poly * t + const(a, _TAIL_B[1])
    poly = poly * t + const(a, _TAIL_B[0])
    density = const(a, _INV_SQRT_2PI) * fast_exp(const(a, -0.5) * a * a)
    return density * poly * t, density


def normal_cdf_pdf(x):  # type: ignore[no-untyped-def]
    """(Phi(x), phi(x)): A&S 26.2.17 in float32 (vectorised), erfc in float64."""
    return 0.5 * math.erfc(-x * _INV_SQRT2), _INV_SQRT_2PI * math.exp(-0.5 * x * x)


@overload(normal_cdf_pdf, inline="always", fastmath=_FAST)
def _normal_cdf_pdf_overload(x):  # type: ignore[no-untyped-def]
    if x == types.float32:

        def float32_cdf_pdf(x):  # type: ignore[no-untyped-def]
            tail, density = _normal_tail(abs(x))
            return (tail if x < 0 else numpy.float32(1.0) - tail), density

        return float32_cdf_pdf

    def float64_cdf_pdf(x):  # type: ignore[no-untyped-def]
        return 0.5 * math.erfc(-x * _INV_SQRT2), _INV_SQRT_2PI * math.exp(-0.5 * x * x)

    return float64_cdf_pdf


# Activations: flat (1d, contiguous) arrays in, `out` written and returned ------------------


@kernel
def relu(X, out):  # type: ignore[no-untyped-def]
    zero = const(X, 0.0)
    for i in range(X.size):
        out[i] = zero if X[i] < zero else X[i]  # NaN stays NaN, as with numpy.maximum
    return out


@kernel
def backprop_relu(dY, Y, out):  # type: ignore[no-untyped-def]
    zero = const(dY, 0.0)
    for i in range(dY.size):
        out[i] = dY[i] if Y[i] > zero else zero
    return out


@kernel
def sigmoid(X, out):  # type: ignore[no-untyped-def]
    for i in range(X.size):
        out[i] = _sigmoid(X[i])
    return out


@kernel
def backprop_sigmoid(dY, Y, out):  # type: ignore[no-untyped-def]
    one = const(dY, 1.0)
    for i in range(dY.size):
        out[i] = dY[i] * Y[i] * (one - Y[i])
    return out


@kernel
def swish(X, out):  # type: ignore[no-untyped-def]
    for i in range(X.size):
        out[i] = X[i] * _sigmoid(X[i])
    return out


@kernel
def backprop_swish(dY, X, Y, out):  # type: ignore[no-untyped-def]
    one = const(dY, 1.0)
    for i in range(dY.size):
        out[i] = dY[i] * (Y[i] + _sigmoid(X[i]) * (one - Y[i]))
    return out


@kernel
def hard_swish_mobilenet(X, out):  # type: ignore[no-untyped-def]
    zero, three, six, sixth = const(X, 0.0), const(X, 3.0), const(X, 6.0), const(X, 1.0 / 6.0)
    for i in range(X.size):
        h = min(max(X[i] + three, zero), six)
        out[i] = X[i] * h * sixth
    return out


@kernel
def backprop_hard_swish_mobilenet(dY, X, out):  # type: ignore[no-untyped-def]
    zero, one, half, third, three = const(dY, 0.0), const(dY, 1.0), const(dY, 0.5), const(dY, 1.0 / 3.0), const(dY, 3.0)
    for i in range(dY.size):
        x = X[i]
        grad = x * third + half
        grad = zero if x < -three else grad
        grad = one if x > three else grad
        out[i] = dY[i] * grad
    return out


@kernel
def gelu(X, out):  # type: ignore[no-untyped-def]
    for i in range(X.size):
        cdf, _ = normal_cdf_pdf(X[i])
        out[i] = X[i] * cdf
    return out


@kernel
def backprop_gelu(dY, X, out):  # type: ignore[no-untyped-def]
    for i in range(dY.size):
        cdf, density = normal_cdf_pdf(X[i])
        out[i] = dY[i] * (cdf + X[i] * density)
    return out


@reduction
def softmax_rows(X, out, width, safe):  # type: ignore[no-untyped-def]
    """Row-wise softmax of a flat (rows * width) array.

    A row with every entry inside (-safe, safe) cannot under- or overflow, nor its sum
    lose its range (the caller picks `safe` for the width and dtype), so it skips the
    max shift: a max reduction is a serial chain, slower than the exp pass, while
    counting the entries outside vectorises.
    """
    limit = const(X, safe)
    for start in range(0, X.size, width):
        x, o = X[start : start + width], out[start : start + width]
        outside = 0
        for j in range(width):
            outside += 1 if (x[j] > limit or x[j] < -limit) else 0
        top = const(X, 0.0)
        if outside:
            top = x[0]
            for j in range(width):
                top = x[j] if x[j] > top else top
        total = const(X, 0.0)
        for j in range(width):
            e = fast_exp(x[j] - top)
            o[j] = e
            total += e
        scale = const(X, 1.0) / total
        for j in range(width):
            o[j] *= scale
    return out


@reduction
def backprop_softmax_rows(Y, dY, out, width):  # type: ignore[no-untyped-def]
    """``Y (dY - sum(Y dY))`` per row of flat (rows * width) arrays."""
    for start in range(0, Y.size, width):
        y, dy, o = Y[start : start + width], dY[start : start + width], out[start : start + width]
        dot = const(Y, 0.0)
        for j in range(width):
            dot += y[j] * dy[j]
        for j in range(width):
            o[j] = y[j] * (dy[j] - dot)
    return out


# Tables ---------------------------------------------------------------------------------


@kernel
def gather_add(table, indices, out):  # type: ignore[no-untyped-def]
    """``out[b] = sum_k table[indices[b, k]]`` for a (T, O) table and (B, K) ids, summed in k order.

    K = 4 (HashEmbed's rows per id) reads the four rows in one pass and stores each
    output once: 1.6x faster than adding row by row, and the same sums bit for bit.
    """
    width = table.shape[1]
    if indices.shape[1] == 4:
        for b in range(indices.shape[0]):
            r0, r1, r2, r3 = indices[b, 0], indices[b, 1], indices[b, 2], indices[b, 3]
            for j in range(width):
                out[b, j] = table[r0, j] + table[r1, j] + table[r2, j] + table[r3, j]
        return out
    for b in range(indices.shape[0]):
        row = out[b]
        first = table[indices[b, 0]]
        for j in range(width):
            row[j] = first[j]
        for k in range(1, indices.shape[1]):
            source = table[indices[b, k]]
            for j in range(width):
                row[j] += source[j]
    return out


@kernel
def all_below(indices, bound):  # type: ignore[no-untyped-def]
    """Whether every index is in ``[0, bound)``: one pass, where min() and max() take two."""
    flat = indices.ravel()
    ok = True
    for i in range(flat.size):
        ok &= (flat[i] >= 0) & (flat[i] < bound)
    return ok


@inline
def _sum_segment(X, start, end, out, s):  # type: ignore[no-untyped-def]
    """``out[s] = X[start:end].sum(0)``, four rows at a time (one store per four reads), in order."""
    width = X.shape[1]
    for j in range(width):
        out[s, j] = 0
    i = start
    while i + 4 <= end:
        for j in range(width):
            out[s, j] = out[s, j] + X[i, j] + X[i + 1, j] + X[i + 2, j] + X[i + 3, j]
        i += 4
    for i in range(i, end):
        for j in range(width):
            out[s, j] += X[i, j]


@kernel
def segment_sum(X, lengths, out):  # type: ignore[no-untyped-def]
    """``out[s] = sum of X's rows in sequence s`` for (N, O) X and (S,) lengths; 0 when empty.

    The rows are added in order, so the sums are those of adding row by row.
    """
    start = 0
    for s in range(lengths.size):
        _sum_segment(X, start, start + lengths[s], out, s)
        start += lengths[s]
    return out


@kernel
def segment_mean(X, lengths, divisors, out):  # type: ignore[no-untyped-def]
    """`segment_sum` divided by ``divisors[s]`` (max(length, 1), in X's dtype) in the same pass."""
    start = 0
    for s in range(lengths.size):
        _sum_segment(X, start, start + lengths[s], out, s)
        for j in range(X.shape[1]):
            out[s, j] /= divisors[s]
        start += lengths[s]
    return out


@kernel
def scatter_add_rows(table, indices, values):  # type: ignore[no-untyped-def]
    """``table[indices[i]] += values[i // (N / len(values))]``: (T, O) table, (N,) ids,
    (M, O) values with N a multiple of M (each value row feeds N / M consecutive ids)."""
    repeat = indices.size // values.shape[0]
    for i in range(indices.size):
        target = table[indices[i]]
        source = values[i // repeat]
        for j in range(target.size):
            target[j] += source[j]
    return table


@kernel
def scatter_add_flat(table, indices, values):  # type: ignore[no-untyped-def]
    """``table[indices[i]] += values[i]`` for 1d table, ids and values."""
    for i in range(indices.size):
        table[indices[i]] += values[i]
    return table


# Optimizers -----------------------------------------------------------------------------


@kernel
def adam(weights, gradient, mom1, mom2, beta1, beta2, eps, learn_rate, mod_rate):  # type: ignore[no-untyped-def]
    """One Adam step over flat arrays in one pass, zeroing the gradient; no temporaries."""
    b1, b2, c1, c2 = const(weights, beta1), const(weights, beta2), const(weights, 1.0 - beta1), const(weights, 1.0 - beta2)
    rate, scale, epsilon, zero = const(weights, learn_rate), const(weights, mod_rate), const(weights, eps), const(weights, 0.0)
    for i in range(weights.size):
        g = gradient[i]
        m1 = b1 * mom1[i] + c1 * g
        m2 = b2 * mom2[i] + c2 * g * g
        mom1[i] = m1
        mom2[i] = m2
        weights[i] -= rate * m1 / (scale * numpy.sqrt(m2) + epsilon)
        gradient[i] = zero


@reduction
def sum_of_squares(values):  # type: ignore[no-untyped-def]
    """``sum(values ** 2)`` of a flat array, accumulated in float64."""
    total = 0.0
    for i in range(values.size):
        total += numpy.float64(values[i]) * values[i]
    return total


@kernel
def update_averages(ema, weights, keep):  # type: ignore[no-untyped-def]
    """``ema -= (1 - keep) (ema - weights)`` over flat arrays."""
    rate = const(ema, 1.0 - keep)
    for i in range(ema.size):
        ema[i] -= rate * (ema[i] - weights[i])


# LSTM: the step loops of one layer and direction (see backends/_lstm.py) -----------------
#
# Rows are time-major packed; gates are in the order (o, i, f, g) with the sigmoid gates'
# weights halved, so ``0.5 tanh(z) + 0.5`` is their sigmoid. The recurrent products stay
# BLAS calls (numba's np.dot); the gate maths of a step is one fused loop.


@kernel
def lstm_forward_steps(acts, bias, W_hh_T, h0, c0, sizes, offsets, reverse, Y, C, tanh_C, hp, cp, recurrent):  # type: ignore[no-untyped-def]
    """Run the recurrence over `acts` (N, 4nH, the input projections) and `bias` (4nH,), writing
    the gate activations back into `acts` and the outputs, cells and tanh(cells) into Y, C, tanh_C.

    The bias is added here, in the pass over the gates, instead of in a pass of its own
    over `acts`; in the same order as the numpy path ((projection + bias) + recurrent).
    """
    nH = h0.size
    half = const(acts, 0.5)
    prev_start, prev_size = 0, 0
    n_steps = sizes.size
    for position in range(n_steps):
        t = n_steps - 1 - position if reverse else position
        start, b = offsets[t], sizes[t]
        if prev_size >= b:
            h_prev, c_prev = Y[prev_start : prev_start + b], C[prev_start : prev_start + b]
        else:  # sequences starting at this step (reverse direction) start from h0, c0
            for r in range(b):
                for j in range(nH):
                    hp[r, j] = Y[prev_start + r, j] if r < prev_size else h0[j]
                    cp[r, j] = C[prev_start + r, j] if r < prev_size else c0[j]
            h_prev, c_prev = hp[:b], cp[:b]
        product = recurrent[:b]
        numpy.dot(h_prev, W_hh_T, product)
        for r in range(b):
            G, R = acts[start + r], product[r]
            for j in range(nH):
                o = half * _tanh((G[j] + bias[j]) + R[j]) + half
                i = half * _tanh((G[nH + j] + bias[nH + j]) + R[nH + j]) + half
                f = half * _tanh((G[2 * nH + j] + bias[2 * nH + j]) + R[2 * nH + j]) + half
                g = _tanh((G[3 * nH + j] + bias[3 * nH + j]) + R[3 * nH + j])
                c = f * c_prev[r, j] + i * g
                tc = _tanh(c)
                G[j], G[nH + j], G[2 * nH + j], G[3 * nH + j] = o, i, f, g
                C[start + r, j] = c
                tanh_C[start + r, j] = tc
                Y[start + r, j] = o * tc
        prev_start, prev_size = start, b


@kernel
def lstm_backward_steps(dY, acts, C, tanh_C, c0, W_hh, sizes, offsets, reverse, dG, dh0, dc0, dh_prev, dc_prev):  # type: ignore[no-untyped-def]
    """Gradients of the gate pre-activations into dG (N, 4nH, order o, i, f, g) and the sums
    of the gradients of h0 and c0 into dh0, dc0 (which must start at zero)."""
    nH = c0.size
    zero, one = const(acts, 0.0), const(acts, 1.0)
    n_steps = sizes.size
    carried = 0  # rows of this step that receive dh_prev, dc_prev from the step after it
    for position in range(n_steps):
        # Walk the steps backwards in time: forward order reversed.
        t = position if reverse else n_steps - 1 - position
        start, b = offsets[t], sizes[t]
        has_next = position + 1 < n_steps
        t_next = (position + 1 if reverse else n_steps - 2 - position) if has_next else 0
        next_b = sizes[t_next] if has_next else 0
        next_start = offsets[t_next] if has_next else 0
        for r in range(b):
            A = acts[start + r]
            dG_row = dG[start + r]
            for j in range(nH):
                o, i, f, g = A[j], A[nH + j], A[2 * nH + j], A[3 * nH + j]
                c_prev = C[next_start + r, j] if r < next_b else c0[j]
                dh_t = dY[start + r, j] + (dh_prev[r, j] if r < carried else zero)
                tc = tanh_C[start + r, j]
                dc_t = dh_t * o * (one - tc * tc) + (dc_prev[r, j] if r < carried else zero)
                dG_row[j] = dh_t * tc * o * (one - o)
                dG_row[nH + j] = dc_t * g * i * (one - i)
                dG_row[2 * nH + j] = dc_t * c_prev * f * (one - f)
                dG_row[3 * nH + j] = dc_t * i * (one - g * g)
                dc_prev[r, j] = dc_t * f  # read above for this (r, j) only: safe to overwrite
        numpy.dot(dG[start : start + b], W_hh, dh_prev[:b])
        for r in range(next_b if next_b < b else b, b):  # rows whose previous state was (h0, c0)
            for j in range(nH):
                dh0[j] += dh_prev[r, j]
                dc0[j] += dc_prev[r, j]
        carried = min(b, next_b)


_U64 = numpy.uint64
_MURMUR_C1, _MURMUR_C2 = _U64(0x87C37B91114253D5), _U64(0x4CF5AD432745937F)
_FMIX_M1, _FMIX_M2 = _U64(0xFF51AFD7ED558CCD), _U64(0xC4CEB9FE1A85EC53)
_LOW32 = _U64(0xFFFFFFFF)


@inline
def _fmix64(h):  # type: ignore[no-untyped-def]
    h ^= h >> _U64(33)
    h *= _FMIX_M1
    h ^= h >> _U64(33)
    h *= _FMIX_M2
    return h ^ (h >> _U64(33))


@kernel
def rows_of_words(words, n_rows, out):  # type: ignore[no-untyped-def]
    """``out = words % n_rows`` as int32 for uint32 words and 1 <= n_rows < 2**32, without a division.

    Lemire, Kaser and Kurz's direct remainder ("Faster remainder by direct computation",
    2019), exact for every 32-bit word and divisor: with ``M = 2**64 // n + 1`` (mod 2**64),
    the remainder is the high 64 bits of ``(M * w mod 2**64) * n``, here from two 32-bit
    halves. The loop vectorises (a division does not): 4x faster than ``%`` for HashEmbed.
    """
    flat_words, flat_out = words.ravel(), out.ravel()
    divisor = _U64(n_rows)
    factor = _U64(0xFFFFFFFFFFFFFFFF) // divisor + _U64(1)
    for i in range(flat_words.size):
        fraction = factor * _U64(flat_words[i])
        low = (fraction & _LOW32) * divisor
        high = (fraction >> _U64(32)) * divisor + (low >> _U64(32))
        flat_out[i] = numpy.int32(high >> _U64(32))
    return out


@kernel
def murmur3_128_uint64(keys, seed, out):  # type: ignore[no-untyped-def]
    """``_murmur.murmur3_128_uint64`` in one pass: (N,) uint64 keys -> (N, 4) uint32 words.

    `out` may also be that (N, 4) array viewed as (N, 2) uint64 on a little-endian machine
    (each half's low word first, as the words are): two stores per key instead of four.
    """
    seed64 = _U64(seed) & _LOW32
    length = _U64(8)
    for i in range(keys.size):
        k1 = keys[i] * _MURMUR_C1
        k1 = ((k1 << _U64(31)) | (k1 >> _U64(33))) * _MURMUR_C2
        h1 = (seed64 ^ k1) ^ length
        h2 = seed64 ^ length
        h1 += h2
        h2 += h1
        h1 = _fmix64(h1)
        h2 = _fmix64(h2)
        h1 += h2
        h2 += h1
        if out.shape[1] == 2:
            out[i, 0] = h1
            out[i, 1] = h2
        else:
            out[i, 0] = numpy.uint32(h1 & _LOW32)
            out[i, 1] = numpy.uint32(h1 >> _U64(32))
            out[i, 2] = numpy.uint32(h2 & _LOW32)
            out[i, 3] = numpy.uint32(h2 >> _U64(32))
    return out
