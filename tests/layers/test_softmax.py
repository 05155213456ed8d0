"""Softmax (v1) and Softmax_v2: outputs, the logit-gradient backprop contract, temperature."""
import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Model, Softmax, Softmax_v2, registry
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sample(rows=6, width=3, seed=0, dtype="float32"):
    return numpy.random.RandomState(seed).uniform(-2, 2, (rows, width)).astype(dtype)


def one_hot(rows, width, seed=0):
    labels = numpy.random.RandomState(seed).randint(0, width, rows)
    return numpy.eye(width)[labels]


def random_init(ops, shape):
    return ops.asarray_f(numpy.random.uniform(-1, 1, shape))


def cross_entropy_terms(softmax_model, truths):
    """A test-only head whose output is ``-truths * log(Y)`` elementwise.

    Softmax backprop expects the gradient of the logits, so this head converts the
    gradient of its output into it: for loss terms ``c * log(Y)`` the logit gradient
    is ``c - Y * sum(c)`` per row (``Y - truths`` for the plain cross-entropy).
    That lets the finite-difference checker test the layer's contract.
    """

    def forward(model, X, is_train):
        Y, backprop_softmax = softmax_model(X, is_train)
        terms = -truths * numpy.log(Y)

        def backprop(d_terms):
            weights = -d_terms * truths
            return backprop_softmax(weights - Y * weights.sum(axis=1, keepdims=True))

        return terms, backprop

    return Model("ce_head", forward, layers=[softmax_model])


def test_registered_names():
    assert registry.layers.get("Softmax.v1") is Softmax
    assert registry.layers.get("Softmax.v2") is Softmax_v2


def test_initialize_infers_widths_and_rows_sum_to_one():
    model = Softmax().initialize(X=sample(5, 3), Y=one_hot(5, 4))
    assert (model.get_dim("nI"), model.get_dim("nO")) == (3, 4)
    model.set_param("W", random_init(model.ops, (4, 3)))
    Y = model.predict(sample(5, 3))
    numpy.testing.assert_allclose(Y.sum(axis=1), numpy.ones(5), rtol=1e-6)


def test_initialize_keeps_widths_already_given():
    # Like the reference, Softmax only fills unset widths (no conflict error).
    model = Softmax(4, 3).initialize(X=sample(5, 6), Y=one_hot(5, 7))
    assert model.get_param("W").shape == (4, 3)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 3.0])
def test_backprop_takes_the_logit_gradient(temperature):
    truths = one_hot(5, 4)
    model = Softmax_v2(4, 3, init_W=random_init, init_b=random_init, temperature=temperature).initialize()
    check_gradients(cross_entropy_terms(model, truths), sample(5, 3, seed=1))


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_matches_torch_cross_entropy(temperature):
    model = Softmax_v2(4, 3, init_W=random_init, init_b=random_init, temperature=temperature).initialize()
    for name in ("W", "b"):
        model.set_param(name, model.get_param(name).astype("float64"))
    X, truths = sample(6, 3, seed=2, dtype="float64"), one_hot(6, 4, seed=3)
    Y, backprop = model(X, is_train=True)
    dX = backprop(Y - truths)

    W = torch.from_numpy(model.get_param("W")).requires_grad_()
    b = torch.from_numpy(model.get_param("b")).requires_grad_()
    X_torch = torch.from_numpy(X).requires_grad_()
    logits = (X_torch @ W.T + b) / temperature
    torch.nn.functional.cross_entropy(logits, torch.from_numpy(truths), reduction="sum").backward()
    numpy.testing.assert_allclose(Y, torch.softmax(logits, dim=1).detach().numpy(), atol=1e-5)
    numpy.testing.assert_allclose(dX, X_torch.grad.numpy(), atol=1e-5)
    numpy.testing.assert_allclose(model.get_grad("W"), W.grad.numpy(), atol=1e-5)
    numpy.testing.assert_allclose(model.get_grad("b"), b.grad.numpy(), atol=1e-5)


def test_unnormalized_predict_returns_logits_but_training_normalizes():
    model = Softmax_v2(4, 3, init_W=random_init, normalize_outputs=False).initialize()
    X = sample(5, 3)
    W, b = model.get_param("W"), model.get_param("b")
    numpy.testing.assert_allclose(model.predict(X), X @ W.T + b, rtol=1e-5)
    Y, _ = model(X, is_train=True)
    numpy.testing.assert_allclose(Y.sum(axis=1), numpy.ones(5), rtol=1e-6)
    _, backprop = model(X, is_train=False)
    with pytest.raises(ValueError, match="softmax: cannot backprop through unnormalized outputs"):
        backprop(numpy.zeros((5, 4), dtype="f"))


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_temperature_must_be_positive(temperature):
    with pytest.raises(ValueError, match="temperature must be positive"):
        Softmax_v2(temperature=temperature)
    model = Softmax_v2(2, 2).initialize()
    model.attrs["softmax_temperature"] = temperature
    with pytest.raises(ValueError, match="temperature must be positive"):
        model.predict(sample(1, 2))


def test_serialization_round_trip():
    model = Softmax_v2(4, 3, init_W=random_init, init_b=random_init, temperature=2.0).initialize()
    fresh = Softmax_v2(4, 3, temperature=2.0).initialize()
    data = model.to_bytes()
    numpy.testing.assert_array_equal(fresh.from_bytes(data).predict(sample()), model.predict(sample()))
    assert fresh.to_bytes() == data


def test_empty_batch():
    model = Softmax(4, 3).initialize()
    Y, backprop = model(numpy.zeros((0, 3), dtype="f"), is_train=True)
    assert Y.shape == (0, 4)
    assert backprop(numpy.zeros((0, 4), dtype="f")).shape == (0, 3)


def test_width_mismatch_names_layer():
    with pytest.raises(ShapeMismatchError, match=r"softmax: expected input width nI=3, got an array of shape \(2, 5\)"):
        Softmax(4, 3).initialize().predict(sample(2, 5))


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(0, 8), nO=st.integers(1, 6), scale=st.floats(0.1, 100), temperature=st.floats(0.05, 10))
def test_rows_are_probability_distributions(rows, nO, scale, temperature):
    model = Softmax_v2(nO, 3, init_W=random_init, init_b=random_init, temperature=temperature).initialize()
    Y = model.predict(sample(rows, 3, seed=nO) * scale)
    assert Y.shape == (rows, nO)
    assert ((Y >= 0) & (Y <= 1)).all()
    numpy.testing.assert_allclose(Y.sum(axis=1), numpy.ones(rows), rtol=1e-5)
