"""array_getitem, floats_getitem, ints_getitem: X[index] as a layer."""
import numpy
import pytest

from composa import Linear, array_getitem, chain
from composa.errors import ShapeMismatchError
from composa.layers.array_getitem import floats_getitem, ints_getitem
from composa.testing import check_gradients


def sample(*shape, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, shape).astype("float32")


def test_names_and_forward():
    assert array_getitem(0).name == "array-getitem"
    assert floats_getitem(0).name == "floats-getitem"
    ints = ints_getitem((slice(0, None), 1))
    assert ints.name == "ints-getitem"
    X = numpy.arange(6, dtype="int32").reshape(3, 2)
    numpy.testing.assert_array_equal(ints.predict(X), [1, 3, 5])


def test_gradients_of_slices_and_repeated_indices():
    model = chain(floats_getitem((slice(None), slice(1, 3))), Linear(2)).initialize(X=sample(4, 5))
    check_gradients(model, sample(4, 5, seed=1))
    repeated = floats_getitem(numpy.asarray([0, 2, 0]))
    _, backprop = repeated.begin_update(sample(3, 2))
    dX = backprop(numpy.ones((3, 2), dtype="float32"))
    numpy.testing.assert_array_equal(dX[:, 0], [2, 0, 1])


def test_bad_index_is_a_clear_error_and_empty_batches_pass():
    with pytest.raises(ShapeMismatchError, match=r"^floats-getitem: cannot index an array of shape \(2, 2\)"):
        floats_getitem((slice(None), 5)).predict(sample(2, 2))
    Y, backprop = floats_getitem((slice(None), 1)).begin_update(sample(0, 3))
    assert Y.shape == (0, 3) and backprop(Y).shape == (0, 3)


def test_round_trip_keeps_the_index():
    model = array_getitem(1)
    copy = array_getitem(0).from_bytes(model.to_bytes())
    assert copy.attrs["index"] == 1


def test_a_slice_index_is_left_out_of_the_bytes_but_the_model_still_saves():
    model = chain(floats_getitem((slice(0, None), slice(1, 3))), Linear(2, 2)).initialize()
    copy = chain(floats_getitem((slice(0, None), slice(1, 3))), Linear(2, 2)).from_bytes(model.to_bytes())
    X = sample(3, 4)
    numpy.testing.assert_array_equal(copy.predict(X), model.predict(X))
