"""MurmurHash3 (x86, 128-bit) and MurmurHash64A, vectorised over arrays of uint64 keys.

Written against ``xp`` (numpy or cupy), so CPU and GPU give bit-identical hashes.
Integer arithmetic on unsigned arrays wraps modulo 2**32 / 2**64, which is what the
C reference relies on.
"""
from typing import Any

import numpy

_C1 = 0x239B961B
_C2 = 0xAB0E9789
_C3 = 0x38B34AE5
_M64 = 0xC6A4A7935BD1E995


def _rotl32(xp: Any, x: Any, r: int) -> Any:
    return (x << xp.uint32(r)) | (x >> xp.uint32(32 - r))


def _fmix32(xp: Any, h: Any) -> Any:
    h = h ^ (h >> xp.uint32(16))
    h = h * xp.uint32(0x85EBCA6B)
    h = h ^ (h >> xp.uint32(13))
    h = h * xp.uint32(0xC2B2AE35)
    return h ^ (h >> xp.uint32(16))


def murmur3_x86_128_uint64(xp: Any, keys: Any, seed: int) -> Any:
    """MurmurHash3_x86_128 of each uint64 key's 8 little-endian bytes: (N, 4) uint32."""
    keys = keys.astype(xp.uint64, copy=False)
    low = (keys & xp.uint64(0xFFFFFFFF)).astype(xp.uint32)
    high = (keys >> xp.uint64(32)).astype(xp.uint32)
    seed32 = xp.uint32(seed & 0xFFFFFFFF)
    # An 8-byte key has no 16-byte body: only the tail, k2 from bytes 4..7, k1 from 0..3.
    k2 = _rotl32(xp, high * xp.uint32(_C2), 16) * xp.uint32(_C3)
    k1 = _rotl32(xp, low * xp.uint32(_C1), 15) * xp.uint32(_C2)
    length = xp.uint32(8)
    h1 = (seed32 ^ k1) ^ length
    h2 = (seed32 ^ k2) ^ length
    h3 = xp.full(keys.shape, seed32 ^ length, dtype=xp.uint32)
    h4 = h3.copy()
    h1 = h1 + h2 + h3 + h4
    h2 = h2 + h1
    h3 = h3 + h1
    h4 = h4 + h1
    h1, h2, h3, h4 = (_fmix32(xp, h) for h in (h1, h2, h3, h4))
    h1 = h1 + h2 + h3 + h4
    h2 = h2 + h1
    h3 = h3 + h1
    h4 = h4 + h1
    return xp.stack([h1, h2, h3, h4], axis=-1)


def murmur64a_windows(xp: Any, keys: Any, n: int, seed: int = 0) -> Any:
    """MurmurHash64A of each window of `n` consecutive uint64 keys (8n bytes each)."""
    keys = keys.astype(xp.uint64, copy=False)
    count = keys.shape[0] - n + 1
    m = xp.uint64(_M64)
    r = xp.uint64(47)
    h = xp.full((count,), numpy.uint64((seed ^ ((8 * n * _M64) & 0xFFFFFFFFFFFFFFFF))), dtype=xp.uint64)
    for offset in range(n):  # loop over the window width, not over elements
        k = keys[offset : offset + count] * m
        k = k ^ (k >> r)
        k = k * m
        h = (h ^ k) * m
    h = h ^ (h >> r)
    h = h * m
    return h ^ (h >> r)
