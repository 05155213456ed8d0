"""with_getitem: a layer on one item of a tuple."""
import numpy
import pytest

from composa import Linear, Relu, chain, registry, with_getitem
from composa.errors import ConfigurationError, ShapeMismatchError
from composa.testing import check_gradients


def sample(rows, width, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype("float32")


def test_registered_and_named():
    assert registry.layers.get("with_getitem.v1") is with_getitem
    model = with_getitem(1, Linear())
    assert model.name == "with_getitem(linear)" and model.attrs["idx"] == 1
    with pytest.raises(ConfigurationError, match="idx must be an int"):
        with_getitem("1", Linear())


def test_only_the_selected_item_changes():
    layer = Linear(2, 3).initialize()
    first, second, third = sample(2, 4), sample(3, 3), sample(1, 1)
    Y = with_getitem(1, layer).predict((first, second, third))
    assert Y[0] is first and Y[2] is third
    numpy.testing.assert_allclose(Y[1], layer.predict(second))
    assert with_getitem(-2, layer).predict((first, second, third))[1].shape == (3, 2)


def test_widths_infer_from_the_item_and_gradients_match():
    model = with_getitem(0, chain(Relu(4), Linear())).initialize(X=(sample(2, 3), sample(2, 7)), Y=(sample(2, 5), None))
    assert model.predict((sample(1, 3), sample(1, 7)))[0].shape == (1, 5)
    check_gradients(model, (sample(3, 3, seed=1), sample(2, 7, seed=2)))


def test_errors_name_the_path():
    model = with_getitem(0, chain(Relu(4, 3), Linear(2, 5))).initialize()
    with pytest.raises(ShapeMismatchError, match=r"^with_getitem>chain>linear\[1\]: expected input width nI=5"):
        model.predict((sample(2, 3),))
    with pytest.raises(ShapeMismatchError, match="with_getitem.*expected a tuple with an item at index 0"):
        model.predict(())


def test_round_trip_and_empty_batch():
    model = with_getitem(1, Linear(2)).initialize(X=(None, sample(2, 3)))
    copy = with_getitem(1, Linear(2)).from_bytes(model.to_bytes())
    pair = (sample(1, 1), sample(2, 3))
    numpy.testing.assert_array_equal(copy.predict(pair)[1], model.predict(pair)[1])
    Y, backprop = model.begin_update((sample(0, 1), sample(0, 3)))
    assert Y[1].shape == (0, 2) and backprop(Y)[1].shape == (0, 3)
