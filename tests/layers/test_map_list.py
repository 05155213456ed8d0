"""map_list: a layer applied to every item of a list."""
import numpy
import pytest

from composa import Linear, Relu, chain, map_list
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sample(rows, width, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype("float32")


def test_applies_the_layer_to_each_item():
    layer = Linear(2, 3).initialize()
    Xs = [sample(2, 3), sample(4, 3, seed=1)]
    Ys = map_list(layer).predict(Xs)
    for X, Y in zip(Xs, Ys):
        numpy.testing.assert_allclose(Y, layer.predict(X))


def test_initialize_on_the_first_item_and_gradients():
    model = map_list(chain(Relu(4), Linear())).initialize(X=[sample(3, 2)], Y=[sample(3, 5)])
    assert model.predict([sample(1, 2)])[0].shape == (1, 5)
    check_gradients(model, [sample(3, 2, seed=1), sample(0, 2), sample(2, 2, seed=2)])


def test_errors_name_the_item_and_the_layer():
    model = map_list(Linear(2, 3)).initialize()
    with pytest.raises(ShapeMismatchError, match=r"^map_list\[item 1\]>linear: expected input width nI=3"):
        model.predict([sample(2, 3), sample(2, 4)])


def test_round_trip_and_empty_list():
    model = map_list(Linear(2)).initialize(X=[sample(3, 4)])
    copy = map_list(Linear(2)).from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(copy.predict([sample(2, 4)])[0], model.predict([sample(2, 4)])[0])
    Ys, backprop = model.begin_update([])
    assert Ys == [] and backprop([]) == []
