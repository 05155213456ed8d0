import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Model, premap_ids, registry, remap_ids, remap_ids_v2


def test_remap_ids_maps_keys_and_uses_default_for_unknown():
    model = remap_ids({"the": 1, "cat": 2}, default=0)
    Y = model.predict(["the", "dog", "cat", "the"])
    assert Y.shape == (4, 1)
    assert Y.dtype == numpy.int32
    assert Y[:, 0].tolist() == [1, 0, 2, 1]


def test_remap_ids_v1_dtype_and_backprop():
    model = remap_ids({5: 1}, default=7, dtype="int64")
    Y, backprop = model(numpy.asarray([5, 6]), is_train=True)
    assert Y.dtype == numpy.int64
    assert Y[:, 0].tolist() == [1, 7]
    assert backprop(Y) == []


def test_remap_ids_v1_default_table_is_not_shared():
    first, second = remap_ids(), remap_ids()
    first.attrs["mapping_table"]["x"] = 3
    assert second.attrs["mapping_table"] == {}


def test_remap_ids_v2_accepts_lists_arrays_and_columns():
    table = {10: 1, 20: 2}
    assert remap_ids_v2(table).predict([10, 30, 20])[:, 0].tolist() == [1, 0, 2]
    assert remap_ids_v2(table).predict(numpy.asarray([20, 10]))[:, 0].tolist() == [2, 1]
    X = numpy.asarray([[0, 10], [0, 20], [0, 99]], dtype="uint64")
    model = remap_ids_v2(table, default=-1, column=1)
    Y, backprop = model(X, is_train=True)
    assert Y.dtype == numpy.int32
    assert Y[:, 0].tolist() == [1, 2, -1]
    dX = backprop(Y)
    assert dX.shape == X.shape and not dX.any()


def test_remap_ids_v2_without_table_is_a_clear_error():
    with pytest.raises(ValueError, match="remap_ids: no mapping table"):
        remap_ids_v2().predict([1, 2])


def test_remap_ids_v2_2d_input_without_column_is_a_clear_error():
    with pytest.raises(ValueError, match="set column="):
        remap_ids_v2({1: 1}).predict(numpy.zeros((3, 2), dtype="int64"))
    with pytest.raises(ValueError, match="column=5 is out of range"):
        remap_ids_v2({1: 1}, column=5).predict(numpy.zeros((3, 2), dtype="int64"))


def test_premap_ids_maps_ints_with_default():
    model = premap_ids({3: 30, 2**63 + 7: 1, -4: 40}, default=-1)
    X = numpy.asarray([3, 5, -4, 3], dtype="int64")
    Y, backprop = model(X, is_train=True)
    assert Y.shape == (4, 1) and Y.dtype == numpy.int32
    assert Y[:, 0].tolist() == [30, -1, 40, 30]
    big = numpy.asarray([2**63 + 7, 1], dtype="uint64")
    assert model.predict(big)[:, 0].tolist() == [1, -1]
    dX = backprop(Y)
    assert dX.shape == X.shape and not dX.any()


def test_premap_ids_column_of_2d_input():
    model = premap_ids({1: 100, 2: 200}, column=0)
    X = numpy.asarray([[2, 9], [1, 9], [7, 9]], dtype="int32")
    assert model.predict(X)[:, 0].tolist() == [200, 100, 0]


def test_premap_ids_rejects_non_int_tables_and_inputs():
    with pytest.raises(ValueError, match="must map ints to ints"):
        premap_ids({"a": 1})
    with pytest.raises(ValueError, match="premap_ids: expected integer ids"):
        premap_ids({1: 1}).predict(numpy.zeros((2,), dtype="f"))
    with pytest.raises(ValueError, match="premap_ids: expected an int array"):
        premap_ids({1: 1}).predict(["a"])


def test_empty_batches():
    assert remap_ids({1: 2}).predict([]).shape == (0, 1)
    assert remap_ids_v2({1: 2}).predict(numpy.zeros((0,), dtype="int64")).shape == (0, 1)
    assert premap_ids({1: 2}).predict(numpy.zeros((0,), dtype="int64")).shape == (0, 1)
    assert premap_ids({}, default=3).predict(numpy.asarray([1, 2]))[:, 0].tolist() == [3, 3]


def test_premap_ids_serialises_and_copies():
    model = premap_ids({1: 10, 2: 20}, default=5)
    X = numpy.asarray([2, 1, 3])
    expected = model.predict(X)
    loaded = premap_ids({}, default=0).from_bytes(model.to_bytes())
    assert loaded.attrs["mapping_table"] == {1: 10, 2: 20}
    assert loaded.predict(X).tolist() == expected.tolist()
    copied = model.copy()
    assert copied.predict(X).tolist() == expected.tolist()
    copied.attrs["mapping_table"] = {1: 0, 2: 0}
    assert copied.predict(X)[:, 0].tolist() == [0, 0, 5]
    assert model.predict(X).tolist() == expected.tolist()


def test_remap_ids_v2_round_trip_keeps_table_and_column():
    model = remap_ids_v2({7: 1}, default=2, column=1)
    loaded = remap_ids_v2().from_bytes(model.to_bytes())
    X = numpy.asarray([[0, 7], [0, 8]])
    assert loaded.predict(X)[:, 0].tolist() == [1, 2]


def test_registered_names():
    for name in ("remap_ids.v1", "remap_ids.v2", "premap_ids.v1"):
        assert isinstance(registry.layers.get(name)({1: 1}), Model)


@settings(max_examples=25, deadline=None)
@given(
    table=st.dictionaries(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**31), 2**31 - 1), max_size=20),
    others=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=10),
    data=st.data(),
)
def test_premap_ids_agrees_with_dict_get(table, others, data):
    """For any int table, the vectorised lookup equals ``dict.get`` with the default."""
    known = data.draw(st.lists(st.sampled_from(sorted(table)), max_size=10)) if table else []
    ids = data.draw(st.permutations(known + others))
    model = premap_ids(table, default=-7)
    expected = [table.get(i, -7) for i in ids]
    assert model.predict(numpy.asarray(ids, dtype="int64"))[:, 0].tolist() == expected
    assert remap_ids(table, default=-7).predict(ids)[:, 0].tolist() == expected
