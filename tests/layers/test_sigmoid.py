"""Sigmoid (weights + logistic) and the parameter-free sigmoid_activation, Logistic, softmax_activation."""
import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Linear, Logistic, Sigmoid, chain, registry, sigmoid_activation, softmax_activation
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sample(shape=(6, 3), seed=0, dtype="float32"):
    return numpy.random.RandomState(seed).uniform(-2, 2, shape).astype(dtype)


def random_init(ops, shape):
    return ops.asarray_f(numpy.random.uniform(-1, 1, shape))


def torch_grad(fn, X, dY):
    X_torch = torch.from_numpy(X).requires_grad_()
    Y = fn(X_torch)
    Y.backward(torch.from_numpy(dY))
    return Y.detach().numpy(), X_torch.grad.numpy()


@pytest.mark.parametrize(
    "factory,registered",
    [(Sigmoid, "Sigmoid.v1"), (sigmoid_activation, "sigmoid_activation.v1"), (Logistic, "Logistic.v1"), (softmax_activation, "softmax_activation.v1")],
)
def test_registered_names(factory, registered):
    assert registry.layers.get(registered) is factory


def test_sigmoid_infers_widths_and_keeps_given_ones():
    model = Sigmoid().initialize(X=sample((5, 3)), Y=sample((5, 2)))
    assert model.get_param("W").shape == (2, 3)
    assert Sigmoid(4, 3).initialize(X=sample((5, 3)), Y=sample((5, 2))).get_param("W").shape == (4, 3)


def test_sigmoid_gradients_match_finite_differences():
    model = Sigmoid(2, 3, init_W=random_init, init_b=random_init).initialize()
    check_gradients(model, sample((4, 3)))


def test_sigmoid_matches_torch():
    model = Sigmoid(2, 3, init_W=random_init, init_b=random_init).initialize()
    W, b = (model.get_param(name).astype("float64") for name in ("W", "b"))
    model.set_param("W", W)
    model.set_param("b", b)
    X, dY = sample((5, 3), dtype="float64"), sample((5, 2), seed=1, dtype="float64")
    Y, backprop = model(X, is_train=True)
    dX = backprop(dY)
    W_torch = torch.from_numpy(W).requires_grad_()
    Y_torch, dX_torch = torch_grad(lambda x: torch.sigmoid(x @ W_torch.T + torch.from_numpy(b)), X, dY)
    numpy.testing.assert_allclose(Y, Y_torch, atol=1e-5)
    numpy.testing.assert_allclose(dX, dX_torch, atol=1e-5)
    numpy.testing.assert_allclose(model.get_grad("W"), W_torch.grad.numpy(), atol=1e-5)


@pytest.mark.parametrize("factory", [sigmoid_activation, Logistic])
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4), (7,)])
def test_logistic_matches_torch_for_any_rank(factory, shape):
    model = factory()
    X, dY = sample(shape, dtype="float64"), sample(shape, seed=1, dtype="float64")
    Y, backprop = model(X, is_train=True)
    Y_torch, dX_torch = torch_grad(torch.sigmoid, X, dY)
    numpy.testing.assert_allclose(Y, Y_torch, atol=1e-5)
    numpy.testing.assert_allclose(backprop(dY), dX_torch, atol=1e-5)
    check_gradients(model, X)


def test_softmax_activation_applies_the_full_jacobian():
    model = softmax_activation()
    X, dY = sample((5, 4), dtype="float64"), sample((5, 4), seed=1, dtype="float64")
    Y, backprop = model(X, is_train=True)
    Y_torch, dX_torch = torch_grad(lambda x: torch.softmax(x, dim=-1), X, dY)
    numpy.testing.assert_allclose(Y, Y_torch, atol=1e-5)
    numpy.testing.assert_allclose(backprop(dY), dX_torch, atol=1e-5)
    check_gradients(chain(Linear(4, 3, init_b=random_init), softmax_activation()).initialize(), sample((5, 3)))


def test_sigmoid_serialization_round_trip():
    model = Sigmoid(2, 3, init_W=random_init, init_b=random_init).initialize()
    fresh = Sigmoid(2, 3).initialize()
    data = model.to_bytes()
    numpy.testing.assert_array_equal(fresh.from_bytes(data).predict(sample()), model.predict(sample()))
    assert fresh.to_bytes() == data


@pytest.mark.parametrize("model", [Sigmoid(2, 3).initialize(), sigmoid_activation(), softmax_activation()], ids=["Sigmoid", "sigmoid_activation", "softmax_activation"])
def test_empty_batch(model):
    X = numpy.zeros((0, 3), dtype="f")
    Y, backprop = model(X, is_train=True)
    assert Y.shape[0] == 0
    assert backprop(Y).shape == (0, 3)


def test_sigmoid_width_mismatch_names_layer():
    with pytest.raises(ShapeMismatchError, match=r"sigmoid: expected input width nI=3, got an array of shape \(2, 4\)"):
        Sigmoid(2, 3).initialize().predict(sample((2, 4)))


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(0.0, 1000.0), rows=st.integers(0, 6))
def test_logistic_stays_in_the_unit_interval_even_for_huge_inputs(scale, rows):
    Y = sigmoid_activation().predict(sample((rows, 3), seed=rows) * scale)
    assert numpy.isfinite(Y).all()
    assert ((Y >= 0) & (Y <= 1)).all()
