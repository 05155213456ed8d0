"""strings2arrays: turn sequences of strings into columns of stable 64-bit hashes.

Each string is hashed with MurmurHash64A (Austin Appleby's 64-bit MurmurHash2,
seed 0) of its UTF-8 bytes: deterministic across processes and platforms, unlike
Python's ``hash()``. The reference layer widens a 32-bit MurmurHash3 to uint64,
which leaves only 32 bits of entropy; composa uses all 64 bits, so its values
differ from the reference's (they are only ever used as keys).
All strings of a batch are hashed together: the bytes are packed into a
zero-padded matrix of 8-byte blocks and the mixing runs block-column by
block-column over every string at once.
"""
from typing import Callable, List, Sequence, Tuple, Union

import numpy

from ..config import registry
from ..checks import describe
from ..errors import ShapeMismatchError
from ..model import Model
from ..types import Ints2d

__all__ = ["strings2arrays"]

_M = numpy.uint64(0xC6A4A7935BD1E995)
_R = numpy.uint64(47)


@registry.layers("strings2arrays.v1")
def strings2arrays() -> Model[Sequence[Sequence[str]], List[Ints2d]]:
    """Hash each string: a batch of string sequences -> a list of (n, 1) uint64 arrays."""
    return Model("strings2arrays", forward)


def forward(model: Model, Xs: Sequence[Sequence[str]], is_train: bool) -> Tuple[List[Ints2d], Callable]:
    if isinstance(Xs, str) or not isinstance(Xs, Sequence):
        raise ShapeMismatchError(
            f"expected a batch (a sequence) of string sequences, got {describe(Xs)}", layer=model.name
        )
    lengths = []
    strings: List[str] = []
    for i, sequence in enumerate(Xs):
        if isinstance(sequence, str) or not isinstance(sequence, Sequence):
            raise ShapeMismatchError(
                f"item {i} of the batch should be a sequence of strings, got {describe(sequence)}",
                layer=model.name,
            )
        lengths.append(len(sequence))
        strings.extend(sequence)
    try:
        hashes = hash_strings(strings)
    except TypeError as error:
        raise ShapeMismatchError(str(error), layer=model.name) from error
    ends: Union[numpy.ndarray, List[int]] = numpy.cumsum(lengths)[:-1] if lengths else []
    Ys = [model.ops.asarray(piece.reshape((-1, 1))) for piece in numpy.split(hashes, ends)]

    def backprop(dYs: List[Ints2d]) -> list:
        return []

    return Ys[: len(lengths)], backprop


def hash_strings(strings: Sequence[str], seed: int = 0) -> numpy.ndarray:
    """MurmurHash64A of the UTF-8 bytes of each string, as a 1d uint64 numpy array."""
    try:
        encoded = [string.encode("utf8") for string in strings]
    except AttributeError:
        bad = next(s for s in strings if not isinstance(s, str))
        raise TypeError(f"expected strings, found {describe(bad)}: {bad!r}") from None
    n = len(encoded)
    if n == 0:
        return numpy.zeros((0,), dtype="uint64")
    byte_lengths = numpy.fromiter(map(len, encoded), dtype="int64", count=n)
    n_blocks = byte_lengths // 8
    width = int(n_blocks.max()) + 1
    # Scatter every string's bytes into its zero-padded row of `width` 8-byte blocks.
    flat = numpy.frombuffer(b"".join(encoded), dtype="uint8")
    starts = numpy.concatenate(([0], numpy.cumsum(byte_lengths)[:-1]))
    rows = numpy.repeat(numpy.arange(n), byte_lengths)
    columns = numpy.arange(flat.size) - numpy.repeat(starts, byte_lengths)
    padded = numpy.zeros((n, width * 8), dtype="uint8")
    padded[rows, columns] = flat
    blocks = padded.view("<u8")
    with numpy.errstate(over="ignore"):
        h = numpy.uint64(seed) ^ (byte_lengths.astype("uint64") * _M)
        for j in range(width - 1):
            k = blocks[:, j] * _M
            k ^= k >> _R
            k *= _M
            mixed = (h ^ k) * _M
            h = numpy.where(n_blocks > j, mixed, h)
        # The tail: the bytes after the last full block, read little-endian (zero-padded).
        tail = blocks[numpy.arange(n), n_blocks]
        h = numpy.where(byte_lengths % 8 != 0, (h ^ tail) * _M, h)
        h ^= h >> _R
        h *= _M
        h ^= h >> _R
    return h
