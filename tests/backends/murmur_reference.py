"""Plain-Python MurmurHash3 x64_128 and MurmurHash64A, byte by byte, as the C reference reads."""

MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF


def _rotl64(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & MASK64


def _fmix64(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & MASK64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & MASK64
    return k ^ (k >> 33)


def murmur3_x64_128(data: bytes, seed: int) -> tuple:
    """MurmurHash3_x64_128 of `data`: the two 64-bit halves h1, h2."""
    c1, c2 = 0x87C37B91114253D5, 0x4CF5AD432745937F
    h1 = h2 = seed & MASK32
    nblocks = len(data) // 16
    for block in range(nblocks):
        k1 = int.from_bytes(data[16 * block : 16 * block + 8], "little")
        k2 = int.from_bytes(data[16 * block + 8 : 16 * block + 16], "little")
        h1 ^= (_rotl64((k1 * c1) & MASK64, 31) * c2) & MASK64
        h1 = (((_rotl64(h1, 27) + h2) & MASK64) * 5 + 0x52DCE729) & MASK64
        h2 ^= (_rotl64((k2 * c2) & MASK64, 33) * c1) & MASK64
        h2 = (((_rotl64(h2, 31) + h1) & MASK64) * 5 + 0x38495AB5) & MASK64
    tail = data[nblocks * 16 :]
    k1 = int.from_bytes(tail[:8], "little")
    k2 = int.from_bytes(tail[8:], "little")
    if len(tail) > 8:
        h2 ^= (_rotl64((k2 * c2) & MASK64, 33) * c1) & MASK64
    if len(tail) > 0:
        h1 ^= (_rotl64((k1 * c1) & MASK64, 31) * c2) & MASK64
    h1 ^= len(data)
    h2 ^= len(data)
    h1 = (h1 + h2) & MASK64
    h2 = (h2 + h1) & MASK64
    h1, h2 = _fmix64(h1), _fmix64(h2)
    h1 = (h1 + h2) & MASK64
    h2 = (h2 + h1) & MASK64
    return h1, h2


def thinc_hash_words(key: int, seed: int) -> tuple:
    """What Thinc's ``Ops.hash`` gives for one uint64 key: the x64_128 halves as four uint32 words."""
    h1, h2 = murmur3_x64_128(key.to_bytes(8, "little"), seed)
    return h1 & MASK32, h1 >> 32, h2 & MASK32, h2 >> 32


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
