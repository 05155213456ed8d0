"""MurmurHash3 (128-bit, as Thinc computes it) and MurmurHash64A, vectorised over uint64 keys.

Written against ``xp`` (numpy or cupy), so CPU and GPU give bit-identical hashes.
Integer arithmetic on unsigned arrays wraps modulo 2**64, which is what the
C reference relies on.
"""
from typing import Any

import numpy

_C1_64 = 0x87C37B91114253D5
_C2_64 = 0x4CF5AD432745937F
_M64 = 0xC6A4A7935BD1E995


def _rotl64(xp: Any, x: Any, r: int) -> Any:
    return (x << xp.uint64(r)) | (x >> xp.uint64(64 - r))


def _fmix64(xp: Any, h: Any) -> Any:
    h = h ^ (h >> xp.uint64(33))
    h = h * xp.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> xp.uint64(33))
    h = h * xp.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> xp.uint64(33))


def murmur3_128_uint64(xp: Any, keys: Any, seed: int) -> Any:
    """Thinc's ``hash`` of each uint64 key: (N, 4) uint32, independent words, same on every backend.

    Thinc calls this MurmurHash3_x86_128 of the key; the words it returns are those of
    MurmurHash3_x64_128 of the key's 8 little-endian bytes with the 32-bit seed, the two
    64-bit halves each split low word first. (The x86 variant on 8 bytes would give
    equal third and fourth words, and equal second to fourth words for keys below 2**32.)
    """
    keys = keys.astype(xp.uint64, copy=False)
    seed64 = xp.uint64(int(seed) & 0xFFFFFFFF)
    length = xp.uint64(8)
    # An 8-byte key has no 16-byte body: only the tail's k1, mixed into h1.
    k1 = _rotl64(xp, keys * xp.uint64(_C1_64), 31) * xp.uint64(_C2_64)
    h1 = (seed64 ^ k1) ^ length
    h2 = xp.full(keys.shape, seed64 ^ length, dtype=xp.uint64)
    h1 = h1 + h2
    h2 = h2 + h1
    h1 = _fmix64(xp, h1)
    h2 = _fmix64(xp, h2)
    h1 = h1 + h2
    h2 = h2 + h1
    low32 = xp.uint64(0xFFFFFFFF)
    words = [h1 & low32, h1 >> xp.uint64(32), h2 & low32, h2 >> xp.uint64(32)]
    return xp.stack([word.astype(xp.uint32) for word in words], axis=-1)


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
