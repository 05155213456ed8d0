"""clone: n copies of a layer chained, each with its own weights."""
import numpy
import pytest

from composa import Linear, Model, Relu, chain, clone, registry
from composa.errors import ConfigurationError, ShapeMismatchError
from composa.testing import check_gradients


def sample(rows, width, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype("float32")


def test_registered_as_clone_v1():
    assert registry.layers.get("clone.v1") is clone


def test_zero_one_and_many_copies():
    layer = Relu(3, 3)
    assert clone(layer, 0).name == "noop"
    assert clone(layer, 1) is layer
    model = clone(layer, 3)
    assert model.name == "relu>>relu>>relu"
    assert model.layers[0] is layer
    assert len({id(node) for node in model.layers}) == 3
    with pytest.raises(ConfigurationError, match="non-negative int"):
        clone(layer, -1)


def test_copies_get_their_own_weights_after_initialize():
    model = clone(Relu(3), 2).initialize(X=sample(4, 3))
    first, second = model.layers
    assert first.get_dim("nI") == 3 and second.get_dim("nI") == 3
    assert not numpy.array_equal(first.get_param("W"), second.get_param("W"))


def test_copies_keep_refs_inside_the_layer():
    inner = Linear(3, 3)
    layer = Model("wrapper", lambda model, X, is_train: model.get_ref("inner")(X, is_train), layers=[inner], refs={"inner": inner})
    copy = clone(layer, 2).layers[1]
    assert copy.get_ref("inner") is copy.layers[0]


def test_width_mismatch_names_the_path():
    model = chain(Linear(4, 2), clone(Relu(3, 3), 2)).initialize()
    with pytest.raises(ShapeMismatchError, match=r"^chain>chain\[1\]>relu\[0\]: expected input width nI=3"):
        model.predict(sample(2, 2))


def random_bias(ops, shape):
    # A zero bias puts a stacked relu exactly on its kink for all-zero rows.
    return ops.asarray_f(numpy.random.uniform(0.1, 1, shape))


def test_gradients_and_round_trip():
    model = clone(Relu(3, init_b=random_bias), 3).initialize(X=sample(5, 3))
    check_gradients(model, sample(5, 3, seed=1))
    copy = clone(Relu(3), 3).from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(copy.predict(sample(2, 3)), model.predict(sample(2, 3)))
    assert model.predict(sample(0, 3)).shape == (0, 3)
