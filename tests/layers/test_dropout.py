"""Dropout on arrays, lists, Ragged and Padded: inverted masks in training, identity otherwise."""
import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Dropout, Padded, Ragged, registry
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sample(shape=(50, 40), seed=0, dtype="float32"):
    return numpy.random.RandomState(seed).uniform(1, 2, shape).astype(dtype)


def test_registered_as_dropout_v1():
    assert registry.layers.get("Dropout.v1") is Dropout


def test_identity_at_prediction_time_like_torch_eval():
    X = sample()
    torch_dropout = torch.nn.Dropout(0.5).eval()
    numpy.testing.assert_array_equal(Dropout(0.5).predict(X), torch_dropout(torch.from_numpy(X)).numpy())


@pytest.mark.parametrize("model", [Dropout(0.0), Dropout(0.5)], ids=["rate0", "disabled"])
def test_identity_when_rate_is_zero_or_disabled(model):
    model.attrs["is_enabled"] = model.attrs["dropout_rate"] == 0.0
    X = sample()
    Y, backprop = model(X, is_train=True)
    assert Y is X
    assert backprop(X) is X


def test_training_zeroes_about_rate_and_rescales_the_rest():
    X = sample((200, 100))
    Y, backprop = Dropout(0.25)(X, is_train=True)
    mask = Y / X
    kept = mask != 0
    assert abs(1 - kept.mean() - 0.25) < 0.02
    numpy.testing.assert_allclose(mask[kept], 1 / 0.75, rtol=1e-6)
    dY = sample((200, 100), seed=1)
    numpy.testing.assert_allclose(backprop(dY), dY * mask, rtol=1e-6)


def test_rate_one_drops_everything():
    Y, _ = Dropout(1.0)(sample(), is_train=True)
    assert not Y.any()


def test_gradients_match_finite_differences():
    check_gradients(Dropout(0.3), sample((6, 5)))


def test_each_list_item_gets_its_own_mask_and_backprop_reuses_it():
    Xs = [sample((4, 6), seed=1), sample((0, 6)), sample((3, 6), seed=2)]
    Ys, backprop = Dropout(0.5)(Xs, is_train=True)
    assert isinstance(Ys, list) and [y.shape for y in Ys] == [x.shape for x in Xs]
    dXs = backprop([numpy.ones_like(x) for x in Xs])
    for X, Y, dX in zip(Xs, Ys, dXs):
        numpy.testing.assert_allclose(dX * X, Y, rtol=1e-6)
    check_gradients(Dropout(0.5), Xs)


def test_ragged_and_padded_keep_their_type_and_structure():
    ragged = Ragged(sample((7, 3)), numpy.array([3, 4], dtype="int32"))
    Y, backprop = Dropout(0.5)(ragged, is_train=True)
    assert isinstance(Y, Ragged) and list(Y.lengths) == [3, 4]
    dX = backprop(Ragged(numpy.ones((7, 3), dtype="f"), ragged.lengths))
    numpy.testing.assert_allclose(dX.data * ragged.data, Y.data, rtol=1e-6)

    padded = Padded(sample((4, 2, 3)), numpy.array([2, 2, 1, 1], "int32"), numpy.array([4, 2], "int32"), numpy.array([1, 0], "int32"))
    Y, backprop = Dropout(0.5)(padded, is_train=True)
    assert isinstance(Y, Padded) and Y.data.shape == (4, 2, 3)
    numpy.testing.assert_array_equal(Y.indices, padded.indices)
    check_gradients(Dropout(0.5), ragged)
    check_gradients(Dropout(0.5), padded)


def test_float64_input_stays_float64():
    Y, _ = Dropout(0.5)(sample(dtype="float64"), is_train=True)
    assert Y.dtype == numpy.float64


def test_empty_batch():
    Y, backprop = Dropout(0.5)(numpy.zeros((0, 4), dtype="f"), is_train=True)
    assert Y.shape == (0, 4) and backprop(Y).shape == (0, 4)


def test_bad_rate_and_bad_input_are_clear_errors():
    with pytest.raises(ValueError, match=r"dropout rate must be in \[0, 1\], got 1.5"):
        Dropout(1.5)
    with pytest.raises(ShapeMismatchError, match="dropout: expected an array, a list of arrays, a Ragged or a Padded"):
        Dropout(0.5)("not an array", is_train=True)
    _, backprop = Dropout(0.5)(sample((3, 4)), is_train=True)
    with pytest.raises(ShapeMismatchError, match=r"dropout: backprop expected a gradient of shape \(3, 4\)"):
        backprop(sample((3, 5)))


def test_serialization_round_trip_keeps_the_rate():
    model = Dropout(0.4)
    data = model.to_bytes()
    fresh = Dropout(0.1).from_bytes(data)
    assert fresh.attrs["dropout_rate"] == 0.4
    assert fresh.to_bytes() == data


@settings(max_examples=25, deadline=None)
@given(rate=st.floats(0.0, 0.95), rows=st.integers(0, 20))
def test_mask_is_zero_or_inverse_keep_probability(rate, rows):
    X = sample((rows, 8), seed=rows)
    Y, backprop = Dropout(rate)(X, is_train=True)
    mask = Y / X
    assert (numpy.isclose(mask, 0.0) | numpy.isclose(mask, 1.0 / (1.0 - rate), rtol=1e-5)).all()
    numpy.testing.assert_allclose(backprop(numpy.ones_like(X)), mask, rtol=1e-5)
