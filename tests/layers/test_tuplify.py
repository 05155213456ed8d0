"""tuplify: the same input through several layers, outputs as a tuple."""
import numpy
import pytest

from composa import Linear, Relu, chain, registry, tuplify
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sample(rows, width, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype("float32")


def test_registered_and_named():
    assert registry.layers.get("tuplify.v1") is tuplify
    assert tuplify(Linear(), Relu()).name == "tuple(linear, relu)"


def test_outputs_each_layer_and_infers_widths_from_Y():
    model = tuplify(Linear(), chain(Relu(4), Linear()))
    model.initialize(X=sample(5, 3), Y=(sample(5, 2), sample(5, 6)))
    first, second = model.predict(sample(4, 3))
    assert first.shape == (4, 2) and second.shape == (4, 6)
    assert model.get_dim("nI") == 3


def test_gradients_match_finite_differences():
    model = tuplify(Linear(2), Relu(3), Linear(1)).initialize(X=sample(4, 3))
    check_gradients(model, sample(4, 3, seed=1))


def test_errors_name_the_path_and_the_problem():
    model = tuplify(Linear(2, 3), chain(Relu(2, 3), Linear(2, 4))).initialize()
    with pytest.raises(ShapeMismatchError, match=r"^tuplify>chain\[1\]>linear\[1\]: expected input width nI=4"):
        model.predict(sample(2, 3))
    model = tuplify(Linear(2, 3), Linear(2, 3)).initialize()
    _, backprop = model.begin_update(sample(2, 3))
    with pytest.raises(ShapeMismatchError, match="tuplify: expected a tuple of 2 gradients"):
        backprop(sample(2, 2))


def test_round_trip_and_empty_batch():
    model = tuplify(Linear(2), Relu(3)).initialize(X=sample(4, 3))
    copy = tuplify(Linear(2), Relu(3)).from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(copy.predict(sample(2, 3))[1], model.predict(sample(2, 3))[1])
    Ys, backprop = model.begin_update(sample(0, 3))
    assert [Y.shape for Y in Ys] == [(0, 2), (0, 3)]
    assert backprop(Ys).shape == (0, 3)
