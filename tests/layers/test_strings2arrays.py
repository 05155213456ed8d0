import subprocess
import sys

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import registry, strings2arrays
from composa.layers.strings2arrays import hash_strings

MASK = 2**64 - 1


def murmurhash64a(data: bytes, seed: int = 0) -> int:
    """Plain-Python MurmurHash64A, written from the published algorithm, one byte string at a time."""
    m, r = 0xC6A4A7935BD1E995, 47
    h = (seed ^ (len(data) * m)) & MASK
    n_blocks = len(data) // 8
    for i in range(n_blocks):
        k = int.from_bytes(data[8 * i : 8 * i + 8], "little")
        k = (k * m) & MASK
        k ^= k >> r
        k = (k * m) & MASK
        h ^= k
        h = (h * m) & MASK
    tail = data[8 * n_blocks :]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * m) & MASK
    h ^= h >> r
    h = (h * m) & MASK
    h ^= h >> r
    return h


def test_strings2arrays_gives_one_uint64_column_per_sequence():
    model = strings2arrays()
    Ys, backprop = model([["hello", "world"], [], ["hello"]], is_train=True)
    assert [Y.shape for Y in Ys] == [(2, 1), (0, 1), (1, 1)]
    assert all(Y.dtype == numpy.uint64 for Y in Ys)
    assert Ys[0][0, 0] == Ys[2][0, 0] != Ys[0][1, 0]
    assert backprop(Ys) == []


def test_known_values_match_the_plain_python_reference():
    words = ["", "a", "hello", "abcdefgh", "abcdefghi", "ünïcødé ☃", "x" * 100]
    assert hash_strings(words).tolist() == [murmurhash64a(w.encode("utf8")) for w in words]


def test_hash_is_stable_across_processes():
    """Python's own str hash is salted per process; ours must not be."""
    code = "from composa.layers.strings2arrays import hash_strings; print(hash_strings(['stable']).tolist())"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout for _ in range(2)}
    assert runs == {f"{hash_strings(['stable']).tolist()}\n"}


def test_empty_batch():
    assert strings2arrays().predict([]) == []


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="strings2arrays: item 0 of the batch"):
        strings2arrays().predict(["not", "nested"])
    with pytest.raises(ValueError, match="strings2arrays: expected strings"):
        strings2arrays().predict([["a", 3]])


def test_registered():
    assert registry.layers.get("strings2arrays.v1")().name == "strings2arrays"


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=20))
def test_vectorised_hash_equals_reference(words):
    assert hash_strings(words).tolist() == [murmurhash64a(w.encode("utf8")) for w in words]
