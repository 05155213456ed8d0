"""residual: X + layer(X)."""
import numpy
import pytest

from composa import Linear, Padded, Ragged, Relu, chain, registry, residual, with_array, with_array2d
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sample(rows, width, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype("float32")


def test_registered_as_residual_v1():
    assert registry.layers.get("residual.v1") is residual


def test_output_adds_the_input():
    layer = Relu(3, 3).initialize()
    X = sample(4, 3)
    model = residual(layer)
    assert model.name == "residual(relu)"
    numpy.testing.assert_allclose(model.predict(X), X + layer.predict(X), rtol=1e-6)
    numpy.testing.assert_array_equal(X, sample(4, 3))


def test_initialize_infers_nO_from_the_input_width():
    model = residual(chain(Relu(8), Linear())).initialize(X=sample(5, 4))
    assert (model.get_dim("nI"), model.get_dim("nO")) == (4, 4)


def test_a_layer_that_changes_the_width_is_a_clear_error():
    model = residual(Linear(3, 4)).initialize()
    with pytest.raises(ShapeMismatchError, match=r"^residual: the layer maps an array of shape \(2, 4\).*to an array of shape \(2, 3\)"):
        model.predict(sample(2, 4))


def test_width_mismatch_in_a_nested_child_names_the_path():
    model = residual(chain(Relu(3, 3), Linear(3, 5))).initialize()
    with pytest.raises(ShapeMismatchError, match=r"^residual>chain>linear\[1\]: expected input width nI=5"):
        model.predict(sample(2, 3))


def test_gradients_match_finite_differences():
    model = residual(chain(Relu(5), Linear())).initialize(X=sample(4, 3))
    check_gradients(model, sample(4, 3, seed=1))


def test_lists_ragged_and_padded():
    model = residual(with_array(Linear(2, 2))).initialize()
    Xs = [sample(2, 2), sample(3, 2, seed=1)]
    Ys = model.predict(Xs)
    assert [Y.shape for Y in Ys] == [(2, 2), (3, 2)]
    check_gradients(model, Xs)
    Xr = Ragged(sample(5, 2), numpy.asarray([2, 3], dtype="int32"))
    check_gradients(model, Xr)
    Xp = Padded(sample(6, 2).reshape(3, 2, 2), *(numpy.asarray(v, dtype="int32") for v in ([2, 2, 1], [3, 2], [1, 0])))
    check_gradients(residual(with_array2d(Linear(2, 2))).initialize(), Xp)


def test_round_trip_and_empty_batch():
    model = residual(Linear()).initialize(X=sample(4, 3))
    copy = residual(Linear()).from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(copy.predict(sample(2, 3)), model.predict(sample(2, 3)))
    Y, backprop = model.begin_update(sample(0, 3))
    assert Y.shape == (0, 3) and backprop(Y).shape == (0, 3)
