"""siamese: one encoder applied to both items of a pair, then a similarity layer."""
import numpy
import pytest

from composa import Linear, Model, Relu, chain, registry, siamese
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sample(rows, width, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype("float32")


def dot_similarity():
    """Row-wise dot product of the two encodings: ((N, d), (N, d)) -> (N, 1)."""

    def forward(model, pair, is_train):
        first, second = pair
        Y = (first * second).sum(axis=1, keepdims=True)
        return Y, lambda dY: (dY * second, dY * first)

    return Model("dot", forward, dims={"nO": 1})


def test_registered_and_named():
    assert registry.layers.get("siamese.v1") is siamese
    assert siamese(Linear(), dot_similarity()).name == "siamese(linear, dot)"


def test_construction_does_not_need_known_widths():
    model = siamese(chain(Relu(4), Linear(3)), dot_similarity())
    assert model.has_dim("nI") is None
    model.initialize(X=(sample(4, 5), sample(4, 5, seed=1)))
    assert (model.get_dim("nI"), model.get_dim("nO")) == (5, 1)


def test_both_sides_use_the_same_weights():
    encoder = Linear(3, 2).initialize()
    X1, X2 = sample(4, 2), sample(4, 2, seed=1)
    Y = siamese(encoder, dot_similarity()).predict((X1, X2))
    expected = (encoder.predict(X1) * encoder.predict(X2)).sum(axis=1, keepdims=True)
    numpy.testing.assert_allclose(Y, expected, rtol=1e-6)


def test_gradients_accumulate_from_both_sides():
    model = siamese(chain(Relu(4), Linear(3)), dot_similarity()).initialize(X=(sample(5, 3), sample(5, 3)))
    check_gradients(model, (sample(5, 3, seed=2), sample(5, 3, seed=3)))


def test_errors_name_the_path():
    model = siamese(chain(Relu(4, 3), Linear(2, 5)), dot_similarity()).initialize()
    with pytest.raises(ShapeMismatchError, match=r"^siamese>chain\[0\]>linear\[1\]: expected input width nI=5"):
        model.predict((sample(2, 3), sample(2, 3)))
    with pytest.raises(ShapeMismatchError, match=r"siamese: expected a pair \(X1, X2\)"):
        model.predict(sample(2, 3))


def test_round_trip_and_empty_batch():
    model = siamese(Linear(3), dot_similarity()).initialize(X=(sample(4, 2), sample(4, 2)))
    copy = siamese(Linear(3), dot_similarity()).from_bytes(model.to_bytes())
    pair = (sample(2, 2), sample(2, 2, seed=1))
    numpy.testing.assert_array_equal(copy.predict(pair), model.predict(pair))
    Y, backprop = model.begin_update((sample(0, 2), sample(0, 2)))
    assert Y.shape == (0, 1)
    assert [d.shape for d in backprop(Y)] == [(0, 2), (0, 2)]
