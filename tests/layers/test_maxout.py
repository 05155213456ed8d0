"""Maxout: the largest of nP affine pieces per output unit, against the same maths in torch."""
import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Maxout, registry
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sample(rows=6, width=3, seed=0, dtype="float32"):
    return numpy.random.RandomState(seed).uniform(-2, 2, (rows, width)).astype(dtype)


def random_init(ops, shape):
    return ops.asarray_f(numpy.random.uniform(-1, 1, shape))


def test_registered_as_maxout_v1():
    assert registry.layers.get("Maxout.v1") is Maxout


def test_initialize_infers_widths_and_shapes_pieces():
    model = Maxout(nP=4).initialize(X=sample(5, 3), Y=sample(5, 2))
    assert model.get_param("W").shape == (2, 4, 3)
    assert model.get_param("b").shape == (2, 4)
    assert model.predict(sample(5, 3)).shape == (5, 2)


def test_three_pieces_by_default():
    model = Maxout(2, 3).initialize()
    assert model.get_dim("nP") == 3 and model.get_param("W").shape == (2, 3, 3)


def test_gradients_match_finite_differences():
    check_gradients(Maxout(2, 3, nP=3, init_b=random_init).initialize(), sample(5, 3))


def test_matches_torch():
    model = Maxout(2, 3, nP=3, init_b=random_init).initialize()
    W, b = (model.get_param(name).astype("float64") for name in ("W", "b"))
    model.set_param("W", W)
    model.set_param("b", b)
    X, dY = sample(6, 3, dtype="float64"), sample(6, 2, seed=1, dtype="float64")
    Y, backprop = model(X, is_train=True)
    dX = backprop(dY)

    W_torch, b_torch = torch.from_numpy(W).requires_grad_(), torch.from_numpy(b).requires_grad_()
    X_torch = torch.from_numpy(X).requires_grad_()
    pieces = torch.einsum("bi,opi->bop", X_torch, W_torch) + b_torch
    Y_torch = pieces.max(dim=-1).values
    Y_torch.backward(torch.from_numpy(dY))
    numpy.testing.assert_allclose(Y, Y_torch.detach().numpy(), atol=1e-5)
    numpy.testing.assert_allclose(dX, X_torch.grad.numpy(), atol=1e-5)
    numpy.testing.assert_allclose(model.get_grad("W"), W_torch.grad.numpy(), atol=1e-5)
    numpy.testing.assert_allclose(model.get_grad("b"), b_torch.grad.numpy(), atol=1e-5)


def test_normalize_and_dropout_append_layers():
    model = Maxout(4, 3, normalize=True, dropout=0.1)
    assert model.name == "maxout>>layernorm>>dropout"
    check_gradients(model.initialize(), sample(5, 3))


def test_serialization_round_trip():
    model = Maxout(2, 3, init_b=random_init).initialize()
    fresh = Maxout(2, 3).initialize()
    data = model.to_bytes()
    numpy.testing.assert_array_equal(fresh.from_bytes(data).predict(sample()), model.predict(sample()))
    assert fresh.to_bytes() == data


def test_empty_batch():
    model = Maxout(2, 3).initialize()
    Y, backprop = model(numpy.zeros((0, 3), dtype="f"), is_train=True)
    assert Y.shape == (0, 2)
    assert backprop(Y).shape == (0, 3)


def test_bad_widths_and_pieces_are_clear_errors():
    with pytest.raises(ShapeMismatchError, match=r"maxout: expected input width nI=3, got an array of shape \(2, 4\)"):
        Maxout(2, 3).initialize().predict(sample(2, 4))
    with pytest.raises(ValueError, match="nP .* must be at least 1, got 0"):
        Maxout(2, 3, nP=0)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(0, 8), nP=st.integers(1, 5))
def test_output_is_the_largest_piece(rows, nP):
    model = Maxout(3, 4, nP=nP, init_b=random_init).initialize()
    X = sample(rows, 4, seed=nP)
    W, b = model.get_param("W"), model.get_param("b")
    pieces = numpy.einsum("bi,opi->bop", X, W) + b
    numpy.testing.assert_allclose(model.predict(X), pieces.max(axis=-1), rtol=1e-5, atol=1e-6)
