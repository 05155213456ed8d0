"""with_reshape: a 2d layer over the last axis of a 3d array."""
import numpy
import pytest

from composa import Linear, Relu, chain, registry, with_reshape
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sample(*shape, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, shape).astype("float32")


def test_registered_and_named():
    assert registry.layers.get("with_reshape.v1") is with_reshape
    assert with_reshape(Linear()).name == "with_reshape(linear)"


def test_output_is_the_layer_on_every_row():
    layer = Linear(2, 3).initialize()
    X = sample(4, 5, 3)
    Y = with_reshape(layer).predict(X)
    assert Y.shape == (4, 5, 2)
    numpy.testing.assert_allclose(Y[2], layer.predict(X[2]), rtol=1e-6)


def test_backprop_works_when_the_layer_changes_the_width():
    model = with_reshape(chain(Relu(4), Linear(2))).initialize(X=sample(2, 3, 5))
    assert (model.get_dim("nI"), model.get_dim("nO")) == (5, 2)
    Y, backprop = model.begin_update(sample(2, 3, 5))
    assert backprop(Y).shape == (2, 3, 5)
    check_gradients(model, sample(2, 3, 5, seed=1))


def test_errors_name_the_path():
    model = with_reshape(Linear(2, 4)).initialize()
    with pytest.raises(ShapeMismatchError, match=r"^with_reshape>linear: expected input width nI=4, got an array of shape \(6, 3\)"):
        model.predict(sample(2, 3, 3))
    with pytest.raises(ShapeMismatchError, match="expected an array of rank 3"):
        model.predict(sample(4))


def test_round_trip_and_empty_batch():
    model = with_reshape(Linear(2)).initialize(X=sample(2, 3, 4))
    copy = with_reshape(Linear(2)).from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(copy.predict(sample(1, 2, 4)), model.predict(sample(1, 2, 4)))
    Y, backprop = model.begin_update(sample(0, 3, 4))
    assert Y.shape == (0, 3, 2) and backprop(Y).shape == (0, 3, 4)
