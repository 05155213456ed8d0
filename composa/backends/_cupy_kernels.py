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
    # The same words as _murmur.murmur3_128_uint64 (Thinc's hash): MurmurHash3_x64_128
    # of the key's 8 bytes, each 64-bit half split low word first.
    "murmur3_uint64": (
        "uint64 key, uint32 seed",
        "raw uint32 out",
        """
        unsigned long long k1 = key * 0x87c37b91114253d5ULL;
        k1 = (k1 << 31) | (k1 >> 33);
        k1 *= 0x4cf5ad432745937fULL;
        unsigned long long h[2];
        h[0] = ((unsigned long long)seed ^ k1) ^ 8ULL;
        h[1] = (unsigned long long)seed ^ 8ULL;
        h[0] += h[1]; h[1] += h[0];
        for (int j = 0; j < 2; ++j) {
            unsigned long long v = h[j];
            v ^= v >> 33; v *= 0xff51afd7ed558ccdULL; v ^= v >> 33; v *= 0xc4ceb9fe1a85ec53ULL; v ^= v >> 33;
            h[j] = v;
        }
        h[0] += h[1]; h[1] += h[0];
        for (int j = 0; j < 2; ++j) {
            out[i * 4 + 2 * j] = (unsigned int)(h[j] & 0xffffffffULL);
            out[i * 4 + 2 * j + 1] = (unsigned int)(h[j] >> 32);
        }
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
