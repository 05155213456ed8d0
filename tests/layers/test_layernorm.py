"""LayerNorm: row-wise normalisation with learned scale G and shift b, against torch.nn.LayerNorm."""
import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import LayerNorm, registry
from composa.errors import ShapeMismatchError
from composa.layers.layernorm import EPSILON
from composa.testing import check_gradients


def sample(rows=6, width=4, seed=0, dtype="float32"):
    return numpy.random.RandomState(seed).uniform(-2, 2, (rows, width)).astype(dtype)


def with_random_params(model, seed=1):
    rng = numpy.random.RandomState(seed)
    for name in ("G", "b"):
        model.set_param(name, rng.uniform(0.5, 1.5, model.get_param(name).shape).astype("f"))
    return model


def test_registered_as_layernorm_v1():
    assert registry.layers.get("LayerNorm.v1") is LayerNorm


def test_initialize_sets_nI_and_nO_from_X_or_Y():
    model = LayerNorm().initialize(X=sample(3, 5))
    assert (model.get_dim("nI"), model.get_dim("nO")) == (5, 5)
    numpy.testing.assert_array_equal(model.get_param("G"), numpy.ones(5))
    numpy.testing.assert_array_equal(model.get_param("b"), numpy.zeros(5))
    assert LayerNorm().initialize(Y=sample(3, 7)).get_dim("nI") == 7


def test_output_rows_have_zero_mean_and_unit_variance_before_scaling():
    Y = LayerNorm(4).initialize().predict(sample(6, 4))
    numpy.testing.assert_allclose(Y.mean(axis=1), numpy.zeros(6), atol=1e-5)
    numpy.testing.assert_allclose(Y.var(axis=1), numpy.ones(6), rtol=1e-4)


def test_gradients_match_finite_differences():
    check_gradients(with_random_params(LayerNorm(4).initialize()), sample(5, 4))


def test_matches_torch_layernorm_with_the_same_epsilon():
    model = with_random_params(LayerNorm(4).initialize())
    for name in ("G", "b"):
        model.set_param(name, model.get_param(name).astype("float64"))
    X, dY = sample(6, 4, dtype="float64"), sample(6, 4, seed=2, dtype="float64")
    Y, backprop = model(X, is_train=True)
    dX = backprop(dY)
    torch_norm = torch.nn.LayerNorm(4, eps=EPSILON).double()  # torch's default eps is 1e-5
    with torch.no_grad():
        torch_norm.weight.copy_(torch.from_numpy(model.get_param("G")))
        torch_norm.bias.copy_(torch.from_numpy(model.get_param("b")))
    X_torch = torch.from_numpy(X).requires_grad_()
    Y_torch = torch_norm(X_torch)
    Y_torch.backward(torch.from_numpy(dY))
    numpy.testing.assert_allclose(Y, Y_torch.detach().numpy(), atol=1e-5)
    numpy.testing.assert_allclose(dX, X_torch.grad.numpy(), atol=1e-5)
    numpy.testing.assert_allclose(model.get_grad("G"), torch_norm.weight.grad.numpy(), atol=1e-5)
    numpy.testing.assert_allclose(model.get_grad("b"), torch_norm.bias.grad.numpy(), atol=1e-5)


def test_serialization_round_trip():
    model = with_random_params(LayerNorm(4).initialize())
    fresh = LayerNorm(4).initialize()
    data = model.to_bytes()
    numpy.testing.assert_array_equal(fresh.from_bytes(data).predict(sample()), model.predict(sample()))
    assert fresh.to_bytes() == data


def test_empty_batch():
    model = LayerNorm(4).initialize()
    Y, backprop = model(numpy.zeros((0, 4), dtype="f"), is_train=True)
    assert Y.shape == (0, 4)
    assert backprop(Y).shape == (0, 4)


def test_width_mismatch_names_layer():
    with pytest.raises(ShapeMismatchError, match=r"layernorm: expected input width nI=4, got an array of shape \(2, 3\)"):
        LayerNorm(4).initialize().predict(sample(2, 3))


def test_constant_rows_give_finite_outputs_and_gradients():
    model = LayerNorm(4).initialize()
    Y, backprop = model(numpy.full((2, 4), 3.0, dtype="f"), is_train=True)
    assert numpy.isfinite(Y).all()
    assert numpy.isfinite(backprop(numpy.ones((2, 4), dtype="f"))).all()


@settings(max_examples=25, deadline=None)
@given(shift=st.floats(-100, 100), scale=st.floats(0.5, 100))
def test_invariant_to_shifting_and_scaling_a_row(shift, scale):
    model = LayerNorm(5).initialize()
    X = sample(3, 5, dtype="float64")
    numpy.testing.assert_allclose(model.predict(X * scale + shift), model.predict(X), atol=1e-4)
