"""CauchySimilarity: 1 / (1 + sum(W * (x1 - x2)^2)) for a pair of batches, with gradients for both."""
import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import CauchySimilarity, registry
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def pair(rows=5, width=3, seed=0, dtype="float32"):
    rng = numpy.random.RandomState(seed)
    return rng.uniform(-1, 1, (rows, width)).astype(dtype), rng.uniform(-1, 1, (rows, width)).astype(dtype)


def test_registered_as_cauchysimilarity_v1():
    assert registry.layers.get("CauchySimilarity.v1") is CauchySimilarity


def test_initialize_takes_nI_from_the_first_array():
    model = CauchySimilarity().initialize(X=pair(width=4))
    assert model.get_dim("nI") == 4 and model.get_dim("nO") == 1
    numpy.testing.assert_array_equal(model.get_param("W"), numpy.ones(4))


def test_identical_inputs_are_fully_similar():
    X1, _ = pair()
    numpy.testing.assert_allclose(CauchySimilarity(3).initialize().predict((X1, X1)), numpy.ones(5))


def test_gradients_match_finite_differences():
    model = CauchySimilarity(3).initialize()
    model.set_param("W", numpy.array([0.5, 1.5, 2.0], dtype="f"))
    check_gradients(model, pair())


def test_matches_torch_autograd():
    model = CauchySimilarity(3).initialize()
    W = numpy.array([0.5, 1.5, 2.0])
    model.set_param("W", W.copy())
    X1, X2 = pair(dtype="float64")
    d_sim = numpy.random.RandomState(1).uniform(-1, 1, 5)
    sim, backprop = model((X1, X2), is_train=True)
    d_X1, d_X2 = backprop(d_sim)

    tensors = [torch.from_numpy(a).requires_grad_() for a in (X1, X2, W)]
    t1, t2, tW = tensors
    sim_torch = 1 / (1 + (tW * (t1 - t2) ** 2).sum(dim=1))
    sim_torch.backward(torch.from_numpy(d_sim))
    numpy.testing.assert_allclose(sim, sim_torch.detach().numpy(), atol=1e-5)
    numpy.testing.assert_allclose(d_X1, t1.grad.numpy(), atol=1e-5)
    numpy.testing.assert_allclose(d_X2, t2.grad.numpy(), atol=1e-5)
    numpy.testing.assert_allclose(model.get_grad("W"), tW.grad.numpy(), atol=1e-5)


def test_serialization_round_trip():
    model = CauchySimilarity(3).initialize()
    model.set_param("W", numpy.array([0.5, 1.5, 2.0], dtype="f"))
    fresh = CauchySimilarity(3).initialize()
    data = model.to_bytes()
    numpy.testing.assert_array_equal(fresh.from_bytes(data).predict(pair()), model.predict(pair()))
    assert fresh.to_bytes() == data


def test_empty_batch():
    model = CauchySimilarity(3).initialize()
    sim, backprop = model(pair(rows=0), is_train=True)
    assert sim.shape == (0,)
    assert [d.shape for d in backprop(sim)] == [(0, 3), (0, 3)]


@pytest.mark.parametrize(
    "X,message",
    [
        (pair()[0], r"expected a pair \(X1, X2\) of arrays"),
        ((pair()[0], pair(width=4)[0]), "expected X2 of width nI=3, got an array of shape \\(5, 4\\)"),
        ((pair()[0], pair(rows=2)[0]), "X1 and X2 must have the same shape"),
    ],
)
def test_bad_inputs_are_clear_errors(X, message):
    with pytest.raises(ShapeMismatchError, match=f"cauchy_similarity: {message}"):
        CauchySimilarity(3).initialize().predict(X)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(0, 8), scale=st.floats(0, 100), seed=st.integers(0, 100))
def test_similarity_is_symmetric_and_in_the_unit_interval(rows, scale, seed):
    model = CauchySimilarity(3).initialize()
    X1, X2 = pair(rows, seed=seed)
    forward = model.predict((X1 * scale, X2))
    numpy.testing.assert_allclose(forward, model.predict((X2, X1 * scale)), rtol=1e-6)
    assert ((forward > 0) & (forward <= 1)).all()
