"""CUDA kernels for CupyOps, compiled lazily on first use (importing needs no GPU).

Each kernel is a ``cupy.ElementwiseKernel`` over a type placeholder ``T``, so one
source serves float32 and float64. They compute the same functions as the base
``Ops`` (which stays the reference); they only fuse the several array passes
that the generic code makes into one.
"""
from typing import Any, Dict

__all__ = ["get_kernel", "KERNELS"]

# exp(-x) is capped where it would overflow float32 (the same result for float64).
_SIGMOID = "(T)1 / ((T)1 + exp(-(x > (T)88 ? (T)88 : (x < (T)-88 ? (T)-88 : x))))"
_SOFTPLUS = "(x > (T)0 ? x + log1p(exp(-x)) : log1p(exp(x)))"

KERNELS: Dict[str, tuple] = {
    "sigmoid": ("T x", "T y", f"y = {_SIGMOID};"),
    "swish": ("T x", "T y", f"y = x * {_SIGMOID};"),
    "backprop_swish": (
        "T dy, T x, T y",
        "T dx",
        f"T s = {_SIGMOID}; dx = dy * (y + s * ((T)1 - y));",
    ),
    "gelu": ("T x", "T y", "y = x * (T)0.5 * ((T)1 + erf(x * (T)0.7071067811865476));"),
    "backprop_gelu": (
        "T dy, T x",
        "T dx",
        "T cdf = (T)0.5 * ((T)1 + erf(x * (T)0.7071067811865476));"
        "T pdf = exp((T)-0.5 * x * x) * (T)0.3989422804014327;"
        "dx = dy * (cdf + x * pdf);",
    ),
    "mish": (
        "T x, T threshold",
        "T y",
        f"y = x >= threshold ? x : x * tanh({_SOFTPLUS});",
    ),
    "backprop_mish": (
        "T dy, T x, T threshold",
        "T dx",
        f"if (x >= threshold) {{ dx = dy; }} else {{"
        f"  T t = tanh({_SOFTPLUS}); T s = {_SIGMOID};"
        f"  dx = dy * (t + x * ((T)1 - t * t) * s); }}",
    ),
    "dish": ("T x", "T y", "y = (T)0.5 * x * ((T)1 + x / sqrt((T)1 + x * x));"),
    "backprop_dish": (
        "T dy, T x",
        "T dx",
        "T inv = (T)1 / sqrt((T)1 + x * x);"
        "dx = dy * ((T)0.5 + (T)0.5 * x * inv + (T)0.5 * x * inv * inv * inv);",
    ),
    "clipped_linear": (
        "T x, T slope, T offset, T lo, T hi",
        "T y",
        "T z = x * slope + offset; y = z < lo ? lo : (z > hi ? hi : z);",
    ),
    "backprop_clipped_linear": (
        "T dy, T x, T slope, T offset, T lo, T hi",
        "T dx",
        "T z = x * slope + offset; dx = (z > lo && z < hi) ? dy * slope : (T)0;",
    ),
    "backprop_hard_swish": (
        "T dy, T x",
        "T dx",
        "dx = x > (T)2.5 ? dy : (x < (T)-2.5 ? (T)0 : dy * ((T)0.4 * x + (T)0.5));",
    ),
    "backprop_hard_swish_mobilenet": (
        "T dy, T x",
        "T dx",
        "dx = x > (T)3 ? dy : (x < (T)-3 ? (T)0 : dy * ((T)2 * x + (T)3) / (T)6);",
    ),
    "murmur3_uint64": (
        "uint64 key, uint32 seed",
        "raw uint32 out",
        """
        unsigned int low = (unsigned int)(key & 0xffffffffULL);
        unsigned int high = (unsigned int)(key >> 32);
        unsigned int k1 = low * 0x239b961bU;
        k1 = (k1 << 15) | (k1 >> 17);
        k1 *= 0xab0e9789U;
        unsigned int k2 = high * 0xab0e9789U;
        k2 = (k2 << 16) | (k2 >> 16);
        k2 *= 0x38b34ae5U;
        unsigned int h[4];
        h[0] = (seed ^ k1) ^ 8U;
        h[1] = (seed ^ k2) ^ 8U;
        h[2] = seed ^ 8U;
        h[3] = seed ^ 8U;
        for (int pass = 0; pass < 2; ++pass) {
            h[0] += h[1] + h[2] + h[3];
            h[1] += h[0]; h[2] += h[0]; h[3] += h[0];
            if (pass == 1) break;
            for (int j = 0; j < 4; ++j) {
                unsigned int v = h[j];
                v ^= v >> 16; v *= 0x85ebca6bU; v ^= v >> 13; v *= 0xc2b2ae35U; v ^= v >> 16;
                h[j] = v;
            }
        }
        for (int j = 0; j < 4; ++j) out[i * 4 + j] = h[j];
        """,
    ),
}

_compiled: Dict[str, Any] = {}


def get_kernel(name: str) -> Any:
    """The compiled ElementwiseKernel `name` (compiled and cached on first call)."""
    kernel = _compiled.get(name)
    if kernel is None:
        import cupy  # lazy: cupy is optional; kernels are compiled only when a CupyOps asks

        in_params, out_params, operation = KERNELS[name]
        kernel = cupy.ElementwiseKernel(in_params, out_params, operation, f"composa_{name}")
        _compiled[name] = kernel
    return kernel
