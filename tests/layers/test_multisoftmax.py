"""MultiSoftmax: one softmax per block of output columns, each block really normalised."""
import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Model, MultiSoftmax, registry
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients

BLOCKS = (2, 3, 1)


def sample(rows=6, width=4, seed=0, dtype="float32"):
    return numpy.random.RandomState(seed).uniform(-2, 2, (rows, width)).astype(dtype)


def random_params(model, seed=1, dtype="float32"):
    rng = numpy.random.RandomState(seed)
    for name in ("W", "b"):
        model.set_param(name, rng.uniform(-1, 1, model.get_param(name).shape).astype(dtype))
    return model


def block_truths(rows, blocks, seed=0):
    rng = numpy.random.RandomState(seed)
    return numpy.hstack([numpy.eye(width)[rng.randint(0, width, rows)] for width in blocks])


def cross_entropy_terms(model, truths, blocks):
    """A test-only head giving ``-truths * log(Y)``; it hands MultiSoftmax the logit gradient
    ``c - Y * sum_block(c)`` for loss terms ``c * log(Y)``, as the layer's contract asks."""

    def forward(head, X, is_train):
        Y, backprop_model = model(X, is_train)

        def backprop(d_terms):
            weights = -d_terms * truths
            d_logits = weights.copy()
            start = 0
            for width in blocks:
                block = slice(start, start + width)
                d_logits[:, block] -= Y[:, block] * weights[:, block].sum(axis=1, keepdims=True)
                start += width
            return backprop_model(d_logits)

        return -truths * numpy.log(Y), backprop

    return Model("ce_head", forward, layers=[model])


def test_registered_as_multisoftmax_v1():
    assert registry.layers.get("MultiSoftmax.v1") is MultiSoftmax


def test_initialize_infers_nI_and_every_block_sums_to_one():
    # The reference leaves the scores unnormalised on CPU.
    model = random_params(MultiSoftmax(BLOCKS).initialize(X=sample(5, 4)))
    assert (model.get_dim("nI"), model.get_dim("nO")) == (4, 6)
    Y = model.predict(sample(5, 4))
    numpy.testing.assert_allclose(numpy.add.reduceat(Y, [0, 2, 5], axis=1), numpy.ones((5, 3)), rtol=1e-6)


def test_matches_torch_softmax_per_block():
    model = random_params(MultiSoftmax(BLOCKS, 4).initialize(), dtype="float64")
    X = sample(5, 4, dtype="float64")
    logits = torch.from_numpy(X @ model.get_param("W").T + model.get_param("b"))
    expected = torch.cat([torch.softmax(block, dim=1) for block in logits.split(BLOCKS, dim=1)], dim=1)
    numpy.testing.assert_allclose(model.predict(X), expected.numpy(), atol=1e-5)


def test_backprop_takes_the_logit_gradient():
    model = random_params(MultiSoftmax(BLOCKS, 4).initialize())
    check_gradients(cross_entropy_terms(model, block_truths(5, BLOCKS), BLOCKS), sample(5, 4))


def test_serialization_round_trip():
    model = random_params(MultiSoftmax(BLOCKS, 4).initialize())
    fresh = MultiSoftmax(BLOCKS, 4).initialize()
    data = model.to_bytes()
    numpy.testing.assert_array_equal(fresh.from_bytes(data).predict(sample()), model.predict(sample()))
    assert fresh.to_bytes() == data


def test_empty_batch():
    model = MultiSoftmax(BLOCKS, 4).initialize()
    Y, backprop = model(numpy.zeros((0, 4), dtype="f"), is_train=True)
    assert Y.shape == (0, 6)
    assert backprop(Y).shape == (0, 4)


def test_bad_configuration_and_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="nOs must be a non-empty sequence of positive widths"):
        MultiSoftmax((2, 0))
    with pytest.raises(ValueError, match="sample Y has width 5 but nOs"):
        MultiSoftmax(BLOCKS).initialize(X=sample(2, 4), Y=sample(2, 5))
    with pytest.raises(ShapeMismatchError, match=r"multisoftmax: expected input width nI=4, got an array of shape \(2, 3\)"):
        MultiSoftmax(BLOCKS, 4).initialize().predict(sample(2, 3))


@settings(max_examples=25, deadline=None)
@given(blocks=st.lists(st.integers(1, 4), min_size=1, max_size=4), rows=st.integers(0, 6), scale=st.floats(0.1, 50))
def test_every_block_is_a_distribution(blocks, rows, scale):
    model = random_params(MultiSoftmax(tuple(blocks), 4).initialize())
    Y = model.predict(sample(rows, 4, seed=len(blocks)) * scale)
    starts = numpy.cumsum([0] + blocks[:-1])
    if rows:
        numpy.testing.assert_allclose(numpy.add.reduceat(Y, starts, axis=1), numpy.ones((rows, len(blocks))), rtol=1e-5)
