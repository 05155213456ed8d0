import numpy
import pytest

from composa import Linear, Model, chain, registry, resizable
from composa.layers.resizable import resize_linear_weighted, resize_model
from composa.testing import check_gradients
from composa.util import partial


def make_model(nO=3, nI=4):
    return resizable(Linear(nO, nI), resize_layer=partial(resize_linear_weighted, fill_defaults={"b": -1.0}))


def test_resizable_mirrors_the_wrapped_layer():
    model = make_model()
    assert model.name == "resizable(linear)"
    assert model.get_dim("nO") == 3 and model.get_dim("nI") == 4
    X = numpy.random.uniform(-1, 1, (5, 4)).astype("f")
    model.initialize(X=X)
    assert numpy.array_equal(model.predict(X), model.layers[0].predict(X))


def test_shape_inference_through_the_wrapper():
    model = resizable(Linear(), resize_layer=resize_linear_weighted)
    model.initialize(X=numpy.zeros((2, 6), dtype="f"), Y=numpy.zeros((2, 5), dtype="f"))
    assert model.get_dim("nI") == 6 and model.get_dim("nO") == 5


def test_resize_keeps_old_outputs_and_fills_new_ones():
    model = make_model()
    X = numpy.random.uniform(-1, 1, (5, 4)).astype("f")
    model.initialize(X=X)
    before = model.predict(X)
    old_layer = model.layers[0]
    resize_model(model, 5)
    after = model.predict(X)
    assert after.shape == (5, 5)
    assert model.get_dim("nO") == 5 and model.layers[0].get_dim("nO") == 5
    numpy.testing.assert_allclose(after[:, :3], before, rtol=1e-6)
    numpy.testing.assert_allclose(after[:, 3:], -1.0)
    assert old_layer.get_dim("nO") == 3  # the old layer is left as it was


def test_resized_layer_trains():
    model = make_model()
    X = numpy.random.uniform(-1, 1, (5, 4))
    model.initialize(X=X.astype("f"))
    resize_model(model, 4)
    check_gradients(model, X)


def test_resize_inside_a_chain_updates_the_tree():
    inner = make_model()
    outer = chain(Linear(4, 2), inner)
    outer.initialize()
    resize_model(inner, 6)
    assert outer.predict(numpy.zeros((1, 2), dtype="f")).shape == (1, 6)


def test_resize_before_initialize_only_sets_nO():
    model = resizable(Linear(nI=4), resize_layer=resize_linear_weighted)
    resize_model(model, 7)
    model.initialize()
    assert model.layers[0].get_param("W").shape == (7, 4)


def test_resize_to_the_same_size_is_a_no_op():
    model = make_model()
    model.initialize()
    layer = model.layers[0]
    resize_model(model, 3)
    assert model.layers[0] is layer


def test_shrinking_is_refused():
    model = make_model()
    model.initialize()
    with pytest.raises(ValueError, match="cannot shrink nO from 3 to 2"):
        resize_model(model, 2)


def test_resize_model_needs_a_resizable_model():
    with pytest.raises(ValueError, match="resizable"):
        resize_model(Linear(2, 2), 3)


def test_resized_model_serialises():
    model = make_model()
    model.initialize()
    resize_model(model, 5)
    X = numpy.ones((2, 4), dtype="f")
    loaded = make_model(5, 4).initialize().from_bytes(model.to_bytes())
    numpy.testing.assert_allclose(loaded.predict(X), model.predict(X))


def test_empty_batch():
    model = make_model()
    model.initialize()
    assert model.predict(numpy.zeros((0, 4), dtype="f")).shape == (0, 3)


def test_registered():
    model = registry.layers.get("resizable.v1")(Linear(2, 2), resize_layer=resize_linear_weighted)
    assert isinstance(model, Model)
