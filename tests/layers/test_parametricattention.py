import numpy
import pytest
import torch

from composa import Linear, ParametricAttention, ParametricAttention_v2, Ragged, registry
from composa.testing import check_gradients


def ragged(lengths, width=4, dtype="float64", seed=0):
    rng = numpy.random.RandomState(seed)
    return Ragged(rng.uniform(-1, 1, (sum(lengths), width)).astype(dtype), numpy.asarray(lengths, dtype="int32"))


def torch_attention(X, lengths, Q, keys=None):
    """Reference: softmax over each sequence of (keys @ Q), times the rows."""
    keys = X if keys is None else keys
    out = []
    start = 0
    for length in lengths:
        rows, K = X[start : start + length], keys[start : start + length]
        weights = torch.softmax(K @ Q, dim=0)[:, None]
        out.append(rows * weights)
        start += length
    return torch.cat(out)


def test_v1_matches_torch_forward_and_backward():
    model = ParametricAttention(4).initialize()
    model.set_param("Q", model.get_param("Q").astype("float64"))
    Xr = ragged([3, 1, 2])
    Yr, backprop = model(Xr, is_train=True)
    X = torch.tensor(Xr.data, requires_grad=True)
    Q = torch.tensor(model.get_param("Q"), requires_grad=True)
    expected = torch_attention(X, [3, 1, 2], Q)
    numpy.testing.assert_allclose(Yr.data, expected.detach().numpy(), atol=1e-12)
    dY = numpy.random.uniform(-1, 1, Yr.data.shape)
    dXr = backprop(Ragged(dY, Yr.lengths))
    (expected * torch.tensor(dY)).sum().backward()
    numpy.testing.assert_allclose(dXr.data, X.grad.numpy(), atol=1e-12)
    numpy.testing.assert_allclose(model.get_grad("Q"), Q.grad.numpy(), atol=1e-12)


def test_shape_inference():
    model = ParametricAttention().initialize(X=ragged([2, 2], width=5))
    assert model.get_dim("nO") == 5 and model.get_param("Q").shape == (5,)
    v2 = ParametricAttention_v2(key_transform=Linear()).initialize(X=ragged([2], width=3))
    assert v2.get_dim("nO") == 3
    assert v2.get_ref("key_transform").get_param("W").shape == (3, 3)


def test_single_row_sequences_pass_through():
    model = ParametricAttention(4).initialize()
    Xr = ragged([1, 1], dtype="float32")
    numpy.testing.assert_allclose(model.predict(Xr).data, Xr.data, rtol=1e-6)


@pytest.mark.parametrize("make", [lambda: ParametricAttention(4), lambda: ParametricAttention_v2(key_transform=Linear(4, 4))])
def test_finite_difference_gradients(make):
    model = make().initialize()
    check_gradients(model, ragged([3, 1, 2]))


def test_v2_backpropagates_into_the_key_transform():
    key_transform = Linear(4, 4)
    model = ParametricAttention_v2(key_transform=key_transform).initialize()
    Xr = ragged([3, 2])
    Yr, backprop = model(Xr, is_train=True)
    backprop(Ragged(numpy.ones_like(Yr.data), Yr.lengths))
    assert numpy.abs(key_transform.get_grad("W")).sum() > 0


def test_v2_default_key_transform_equals_v1():
    v1 = ParametricAttention(4).initialize()
    v2 = ParametricAttention_v2(nO=4).initialize()
    v2.set_param("Q", v1.get_param("Q"))
    Xr = ragged([2, 3], dtype="float32")
    numpy.testing.assert_allclose(v2.predict(Xr).data, v1.predict(Xr).data, rtol=1e-6)


def test_v2_key_transform_ref_survives_copy_and_serialisation():
    model = ParametricAttention_v2(key_transform=Linear(4, 4)).initialize()
    Xr = ragged([2, 3], dtype="float32")
    copied = model.copy()
    assert copied.get_ref("key_transform") is copied.layers[0]
    assert copied.get_ref("key_transform") is not model.layers[0]
    numpy.testing.assert_array_equal(copied.predict(Xr).data, model.predict(Xr).data)
    loaded = ParametricAttention_v2(key_transform=Linear(4, 4)).initialize().from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(loaded.predict(Xr).data, model.predict(Xr).data)


def test_empty_batch_and_empty_sequences():
    model = ParametricAttention(4).initialize()
    empty = Ragged(numpy.zeros((0, 4), dtype="f"), numpy.zeros((0,), dtype="int32"))
    Yr, backprop = model(empty, is_train=True)
    assert Yr.data.shape == (0, 4) and backprop(Yr).data.shape == (0, 4)
    Yr = model.predict(ragged([2, 0, 1], dtype="float32"))
    assert Yr.lengths.tolist() == [2, 0, 1] and Yr.data.shape == (3, 4)


def test_bad_input_is_a_clear_error():
    model = ParametricAttention(4).initialize()
    with pytest.raises(ValueError, match=r"para-attn: expected input rows of shape \(3, nO=4\)"):
        model.predict(ragged([3], width=5))
    with pytest.raises(ValueError, match="para-attn: expected a Ragged batch"):
        model.predict(numpy.zeros((3, 4), dtype="f"))
    v2 = ParametricAttention_v2(key_transform=Linear(4, 4)).initialize()
    with pytest.raises(ValueError, match=r"para-attn>linear\[0\]: expected input width nI=4"):
        v2.predict(ragged([3], width=5))


def test_registered():
    assert registry.layers.get("ParametricAttention.v1")(nO=3).name == "para-attn"
    assert registry.layers.get("ParametricAttention.v2")(nO=3).has_ref("key_transform")
