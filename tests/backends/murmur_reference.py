"""Plain-Python MurmurHash3 x86_128 and MurmurHash64A, byte by byte, as the C reference reads."""

MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF


def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & MASK32


def _fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & MASK32
    return h ^ (h >> 16)


def murmur3_x86_128(data: bytes, seed: int) -> tuple:
    """MurmurHash3_x86_128 of `data`: four 32-bit words h1..h4."""
    c1, c2, c3, c4 = 0x239B961B, 0xAB0E9789, 0x38B34AE5, 0xA1E38B93
    h1 = h2 = h3 = h4 = seed & MASK32
    nblocks = len(data) // 16
    for block in range(nblocks):
        k1, k2, k3, k4 = (int.from_bytes(data[block * 16 + 4 * j : block * 16 + 4 * j + 4], "little") for j in range(4))
        k1 = (_rotl32((k1 * c1) & MASK32, 15) * c2) & MASK32
        h1 ^= k1
        h1 = (((_rotl32(h1, 19) + h2) & MASK32) * 5 + 0x561CCD1B) & MASK32
        k2 = (_rotl32((k2 * c2) & MASK32, 16) * c3) & MASK32
        h2 ^= k2
        h2 = (((_rotl32(h2, 17) + h3) & MASK32) * 5 + 0x0BCAA747) & MASK32
        k3 = (_rotl32((k3 * c3) & MASK32, 17) * c4) & MASK32
        h3 ^= k3
        h3 = (((_rotl32(h3, 15) + h4) & MASK32) * 5 + 0x96CD1C35) & MASK32
        k4 = (_rotl32((k4 * c4) & MASK32, 18) * c1) & MASK32
        h4 ^= k4
        h4 = (((_rotl32(h4, 13) + h1) & MASK32) * 5 + 0x32AC3B17) & MASK32
    tail = data[nblocks * 16 :]
    k = [0, 0, 0, 0]
    for index, byte in enumerate(tail):
        k[index // 4] |= byte << (8 * (index % 4))
    if len(tail) > 12:
        h4 ^= (_rotl32((k[3] * c4) & MASK32, 18) * c1) & MASK32
    if len(tail) > 8:
        h3 ^= (_rotl32((k[2] * c3) & MASK32, 17) * c4) & MASK32
    if len(tail) > 4:
        h2 ^= (_rotl32((k[1] * c2) & MASK32, 16) * c3) & MASK32
    if len(tail) > 0:
        h1 ^= (_rotl32((k[0] * c1) & MASK32, 15) * c2) & MASK32
    length = len(data)
    h1, h2, h3, h4 = h1 ^ length, h2 ^ length, h3 ^ length, h4 ^ length
    h1 = (h1 + h2 + h3 + h4) & MASK32
    h2, h3, h4 = (h2 + h1) & MASK32, (h3 + h1) & MASK32, (h4 + h1) & MASK32
    h1, h2, h3, h4 = _fmix32(h1), _fmix32(h2), _fmix32(h3), _fmix32(h4)
    h1 = (h1 + h2 + h3 + h4) & MASK32
    h2, h3, h4 = (h2 + h1) & MASK32, (h3 + h1) & MASK32, (h4 + h1) & MASK32
    return h1, h2, h3, h4


def murmur64a(data: bytes, seed: int = 0) -> int:
    """MurmurHash64A of `data`."""
    m, r = 0xC6A4A7935BD1E995, 47
    h = (seed ^ (len(data) * m)) & MASK64
    nblocks = len(data) // 8
    for block in range(nblocks):
        k = int.from_bytes(data[8 * block : 8 * block + 8], "little")
        k = (k * m) & MASK64
        k ^= k >> r
        k = (k * m) & MASK64
        h ^= k
        h = (h * m) & MASK64
    tail = data[nblocks * 8 :]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * m) & MASK64
    h ^= h >> r
    h = (h * m) & MASK64
    return h ^ (h >> r)
