"""Linear: Y = X @ W.T + b, checked against finite differences and torch.nn.Linear."""
import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Linear, registry
from composa.errors import DimensionConflictError, ShapeMismatchError, UnsetValueError
from composa.testing import check_gradients


def sample(rows=6, width=3, seed=0, dtype="float32"):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype(dtype)


def random_bias(ops, shape):
    return ops.asarray_f(numpy.random.uniform(-1, 1, shape))


def test_registered_as_linear_v1():
    assert registry.layers.get("Linear.v1") is Linear


def test_initialize_infers_nI_from_X_and_nO_from_Y():
    model = Linear().initialize(X=sample(5, 3), Y=sample(5, 2))
    assert (model.get_dim("nI"), model.get_dim("nO")) == (3, 2)
    assert model.get_param("W").shape == (2, 3)


def test_initialize_without_widths_is_a_clear_error():
    with pytest.raises(UnsetValueError, match="dimension 'nO' is unset"):
        Linear(nI=3).initialize()


def test_sample_conflicting_with_given_width_raises():
    with pytest.raises(DimensionConflictError):
        Linear(2, 4).initialize(X=sample(5, 3))


def test_gradients_match_finite_differences():
    model = Linear(2, 3, init_b=random_bias).initialize()
    check_gradients(model, sample(4, 3))


def test_matches_torch_linear_in_float64():
    torch_linear = torch.nn.Linear(3, 2).double()
    model = Linear(2, 3).initialize()
    model.set_param("W", torch_linear.weight.detach().numpy().copy())
    model.set_param("b", torch_linear.bias.detach().numpy().copy())
    X = sample(5, 3, dtype="float64")
    dY = sample(5, 2, seed=1, dtype="float64")
    Y, backprop = model(X, is_train=True)
    dX = backprop(dY)
    X_torch = torch.from_numpy(X).requires_grad_()
    Y_torch = torch_linear(X_torch)
    Y_torch.backward(torch.from_numpy(dY))
    numpy.testing.assert_allclose(Y, Y_torch.detach().numpy(), atol=1e-5)
    numpy.testing.assert_allclose(dX, X_torch.grad.numpy(), atol=1e-5)
    numpy.testing.assert_allclose(model.get_grad("W"), torch_linear.weight.grad.numpy(), atol=1e-5)
    numpy.testing.assert_allclose(model.get_grad("b"), torch_linear.bias.grad.numpy(), atol=1e-5)


def test_gradients_accumulate_over_calls():
    model = Linear(2, 3).initialize()
    X, dY = sample(4, 3), sample(4, 2, seed=1)
    model.begin_update(X)[1](dY)
    once = model.get_grad("W").copy()
    model.begin_update(X)[1](dY)
    numpy.testing.assert_allclose(model.get_grad("W"), 2 * once, rtol=1e-6)


def test_serialization_round_trip():
    model = Linear(2, 3, init_b=random_bias).initialize()
    fresh = Linear(2, 3).initialize()
    data = model.to_bytes()
    numpy.testing.assert_array_equal(fresh.from_bytes(data).predict(sample()), model.predict(sample()))
    assert fresh.to_bytes() == data


def test_empty_batch():
    model = Linear(2, 3).initialize()
    Y, backprop = model(numpy.zeros((0, 3), dtype="f"), is_train=True)
    assert Y.shape == (0, 2)
    assert backprop(numpy.zeros((0, 2), dtype="f")).shape == (0, 3)


@pytest.mark.parametrize(
    "X,shown",
    [(sample(8, 5), r"an array of shape \(8, 5\)"), (sample(8, 3)[:, :, None], r"an array of shape \(8, 3, 1\)"), ([1, 2], "a list")],
)
def test_bad_input_names_layer_and_expected_width(X, shown):
    model = Linear(2, 3).initialize()
    with pytest.raises(ShapeMismatchError, match=rf"linear: expected input width nI=3, got {shown}"):
        model.predict(X)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(0, 8), nI=st.integers(1, 5), nO=st.integers(1, 5))
def test_output_is_affine_in_the_input(rows, nI, nO):
    model = Linear(nO, nI, init_b=random_bias).initialize()
    X1, X2 = sample(rows, nI, seed=1, dtype="float64"), sample(rows, nI, seed=2, dtype="float64")
    b = model.get_param("b")
    numpy.testing.assert_allclose(
        model.predict(X1 + X2) - b, (model.predict(X1) - b) + (model.predict(X2) - b), atol=1e-5
    )
