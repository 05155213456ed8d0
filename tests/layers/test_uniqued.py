"""uniqued: a layer computed once per distinct id, re-expanded to every row."""
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Embed, Linear, Model, chain, registry, uniqued
from composa.errors import ConfigurationError, ShapeMismatchError
from composa.testing import check_gradients


def ids(values):
    return numpy.asarray(values, dtype="int32").reshape((-1, 1))


def counting_embed(nO=3, nV=10):
    """Embed ids in column 0, counting how many rows each forward call receives."""
    embed = Embed(nO, nV, column=0)
    calls = []

    def forward(model, X, is_train):
        calls.append(X.shape[0])
        return embed(X, is_train)

    def init(model, X=None, Y=None):
        embed.initialize(X=X, Y=Y)
        return model

    model = Model("counting", forward, init=init, layers=[embed], dims={"nO": nO, "nI": None})
    return model, calls


def test_registered_and_named():
    assert registry.layers.get("uniqued.v1") is uniqued
    assert uniqued(Linear(), column=1).attrs["column"] == 1
    with pytest.raises(ConfigurationError, match="column must be a non-negative int"):
        uniqued(Linear(), column=-1)


def test_runs_the_layer_once_per_distinct_id_with_the_same_result():
    layer, calls = counting_embed()
    model = uniqued(layer).initialize()
    X = ids([4, 1, 4, 4, 2, 1])
    Y = model.predict(X)
    assert calls == [3]
    numpy.testing.assert_array_equal(Y, layer.layers[0].predict(X))


def test_gradient_of_a_repeated_id_is_the_sum_of_its_rows():
    model = uniqued(chain(Embed(2, 6, column=0), Linear(3))).initialize(X=ids([0, 1]))
    check_gradients(model, ids([3, 1, 3, 3, 5]))
    plain = chain(Embed(2, 6, column=0), Linear(3)).initialize(X=ids([0, 1]))
    plain.from_bytes(model.layers[0].to_bytes())
    X, dY = ids([3, 1, 3, 3, 5]), numpy.ones((5, 3), dtype="float32")
    model.begin_update(X)[1](dY)
    plain.begin_update(X)[1](dY)
    embed_grad = model.layers[0].layers[0].get_grad("E")
    numpy.testing.assert_allclose(embed_grad, plain.layers[0].get_grad("E"), rtol=1e-6)


def test_dims_mirror_the_layer_and_bad_input_is_clear():
    model = uniqued(Embed(4, 10, column=0)).initialize()
    assert model.get_dim("nO") == 4
    with pytest.raises(ShapeMismatchError, match=r"uniqued\(embed\): expected a 2d array with a column 2"):
        uniqued(Embed(4, 10, column=0), column=2).initialize().predict(ids([1, 2]))


def test_round_trip_empty_and_single_row_batches():
    model = uniqued(Embed(4, 10, column=0)).initialize()
    copy = uniqued(Embed(4, 10, column=0)).from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(copy.predict(ids([1, 2, 1])), model.predict(ids([1, 2, 1])))
    assert model.predict(ids([])).shape == (0, 4)
    assert model.predict(ids([7])).shape == (1, 4)


@settings(max_examples=25, deadline=None)
@given(values=st.lists(st.integers(0, 5), min_size=0, max_size=12))
def test_same_output_as_the_plain_layer(values):
    embed = Embed(3, 6, column=0).initialize()
    X = ids(values)
    numpy.testing.assert_array_equal(uniqued(embed).predict(X), embed.predict(X))
