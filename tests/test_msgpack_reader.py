"""composa's msgpack reader (the one decoder of model bytes) reads what msgpack writes, and refuses the rest."""
import msgpack
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composa.errors import SerializationError
from composa.serialize import ARRAY_EXT, CHECKSUM_KEY, TUPLE_EXT, loads_with_checksum, msgpack_dumps, msgpack_loads


def read(data: bytes):
    return loads_with_checksum(data)


def packed(value, **options) -> bytes:
    return msgpack.packb(value, use_bin_type=True, **options)


# Every header size of every kind: the value just below and just above each boundary.
INTS = [0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1,
        -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63)]
SIZES = [0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536]


@pytest.mark.parametrize("value", INTS)
def test_integers_of_every_width(value):
    assert read(packed(value)) == value
    assert read(packed([value])) == [value]


@pytest.mark.parametrize("value", [0.0, -2.5, 1e300, float("-inf")])
def test_double_floats(value):
    assert read(packed(value)) == value


@pytest.mark.parametrize("value", [0.0, -2.5, 1e30, float("inf")])
def test_single_floats(value):
    assert read(packed(value, use_single_float=True)) == numpy.float32(value)


@pytest.mark.parametrize("size", SIZES)
def test_strings_bytes_and_lists_of_every_header_size(size):
    assert read(packed("é" * size)) == "é" * size
    assert read(packed(b"\x01" * size)) == b"\x01" * size
    assert read(packed(list(range(size)))) == list(range(size))


@pytest.mark.parametrize("size", [1, 15, 16, 65535, 65536])
def test_maps_of_every_header_size_at_the_top_and_inside(size):
    document = {f"k{i}": i for i in range(size)}
    assert read(packed(document)) == document
    assert read(packed([document])) == [document]


def test_nil_and_booleans():
    assert read(packed([None, True, False])) == [None, True, False]


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=40) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=20) | st.dictionaries(st.text(max_size=8), children, max_size=20),
    max_leaves=60,
)


@settings(max_examples=150, deadline=None)
@given(msgpack_values)
def test_any_msgpack_value_reads_as_msgpack_reads_it(value):
    data = packed(value)
    assert read(data) == msgpack.unpackb(data, raw=False, strict_map_key=False)


def test_composa_tuples_and_arrays_come_back_as_written():
    value = {"t": (1, ("a", b"b")), "a": numpy.arange(6, dtype="float32").reshape(2, 3)}
    loaded = read(msgpack_dumps(value))
    assert loaded["t"] == (1, ("a", b"b"))
    numpy.testing.assert_array_equal(loaded["a"], value["a"])


# What is refused ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 4, 8, 16, 17, 300, 70000])
def test_an_unknown_extension_of_any_size_is_refused_by_its_type(size):
    with pytest.raises(SerializationError, match="unknown msgpack extension type 5$"):
        read(packed([msgpack.ExtType(5, b"x" * size)]))


@pytest.mark.parametrize(
    "payload, message",
    [
        (packed({"a": 1}), "malformed tuple: expected a list inside"),
        (packed([1]) + b"\x00", "1 unexpected bytes after the data"),
    ],
)
def test_malformed_tuples_are_refused(payload, message):
    with pytest.raises(SerializationError, match=message):
        read(packed([msgpack.ExtType(TUPLE_EXT, payload)]))


@pytest.mark.parametrize(
    "payload, message",
    [
        (packed(["<f4", [1]]), r"malformed array: expected \[dtype, shape, data\]"),
        (packed(["<f4", [1], "abcd"]), "malformed array: wrong field types"),
        (packed(["<f4", [-1], b"abcd"]), "malformed array: bad shape"),
        (packed(["<f4", [True], b"abcd"]), "malformed array: bad shape"),
        (packed(["<f4", [1.0], b"abcd"]), "malformed array: bad shape"),
        (packed(["<f4", 1, b"abcd"]), "malformed array: bad shape"),
    ],
)
def test_malformed_arrays_are_refused(payload, message):
    with pytest.raises(SerializationError, match=message):
        read(packed([msgpack.ExtType(ARRAY_EXT, payload)]))


@pytest.mark.parametrize("load", [loads_with_checksum, msgpack_loads])
def test_only_bytes_are_decoded(load):
    with pytest.raises(SerializationError, match="expected bytes, got str"):
        load("\x91\x01")


def test_bytes_after_the_value_are_refused_and_counted():
    with pytest.raises(SerializationError, match="^3 unexpected bytes after the data"):
        read(packed([1, 2]) + b"\x00\x00\x00")


def test_a_container_claiming_more_items_than_the_rest_of_the_data_is_refused():
    # 200 bytes of data before the list, whose header claims 50 items and is followed by none.
    data = packed([b"x" * 200])[:-203] + b"\x92" + packed(b"x" * 200) + b"\xdc\x00\x32"
    with pytest.raises(SerializationError, match="a container claims 50 items, more than the data holds"):
        read(data)


def test_lists_of_more_than_four_million_items_are_refused_even_when_present():
    too_many = (1 << 22) + 1  # the limit that bounds what a header can make us allocate
    with pytest.raises(SerializationError, match=f"claims {too_many} items"):
        read(b"\xdd" + too_many.to_bytes(4, "big") + b"\x00" * too_many)


def nested_lists(depth: int) -> bytes:
    return b"\x91" * (depth - 1) + b"\x90"


@pytest.mark.parametrize("load", [loads_with_checksum, msgpack_loads])
def test_containers_nest_at_most_64_deep_in_both_decoders(load):
    value = load(nested_lists(64))
    for _ in range(63):
        value = value[0]
    assert value == []
    with pytest.raises(SerializationError, match="nests containers more than 64 deep"):
        load(nested_lists(65))


@pytest.mark.parametrize("stored", [["xxh3"], [1, 2], ["xxh3", "1"], "abc", 1.5])
def test_a_malformed_checksum_entry_is_refused(stored):
    document = {"composa": 2, CHECKSUM_KEY: stored}
    with pytest.raises(SerializationError, match="malformed checksum entry"):
        read(packed(document))
