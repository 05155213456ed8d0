"""bidirectional: a left-to-right and a right-to-left layer over each sequence, features joined."""
import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import LSTM, Linear, Model, Padded, bidirectional, get_current_ops, registry, with_array2d, with_padded
from composa.errors import ShapeMismatchError
from composa.layers.lstm import load_lstm_state_dict
from composa.testing import check_gradients


def sequences(lengths, width=2, seed=0):
    rng = numpy.random.RandomState(seed)
    return [rng.uniform(-1, 1, (length, width)).astype("float32") for length in lengths]


def running_sum():
    """Padded -> Padded: the sum of the steps so far, which makes the time direction visible."""

    def forward(model, Xp, is_train):
        def backprop(dYp):
            d_data = model.ops.xp.flip(model.ops.xp.cumsum(model.ops.xp.flip(dYp.data, 0), axis=0), 0)
            return Padded(d_data, dYp.size_at_t, dYp.lengths, dYp.indices)

        Y = model.ops.xp.cumsum(Xp.data, axis=0)
        return Padded(Y, Xp.size_at_t, Xp.lengths, Xp.indices), backprop

    return Model("running_sum", forward)


def test_registered_and_named():
    assert registry.layers.get("bidirectional.v1") is bidirectional
    assert bidirectional(running_sum()).name == "birunning_sum"


def test_right_to_left_layer_sees_each_sequence_reversed_within_its_length():
    model = with_padded(bidirectional(running_sum(), running_sum()))
    Xs = sequences([3, 1, 2])
    Ys = model.predict(Xs)
    for X, Y in zip(Xs, Ys):
        forwards = numpy.cumsum(X, axis=0)
        backwards = numpy.cumsum(X[::-1], axis=0)[::-1]
        numpy.testing.assert_allclose(Y, numpy.hstack([forwards, backwards]), rtol=1e-6)


def test_gradients_split_per_direction():
    model = with_padded(bidirectional(running_sum(), with_array2d(Linear(3, 2)))).initialize()
    check_gradients(model, sequences([4, 2, 3, 1]))


def test_matches_torch_bidirectional_lstm():
    torch.manual_seed(0)
    n_in, n_hidden = 3, 4
    reference = torch.nn.LSTM(n_in, n_hidden, bidirectional=True)
    state = reference.state_dict()
    l2r = LSTM(n_hidden, n_in).initialize()
    r2l = LSTM(n_hidden, n_in).initialize()
    load_lstm_state_dict(l2r, {k: v for k, v in state.items() if not k.endswith("_reverse")})
    load_lstm_state_dict(r2l, {k[: -len("_reverse")]: v for k, v in state.items() if k.endswith("_reverse")})
    model = with_padded(bidirectional(l2r, r2l))
    lengths = [5, 2, 4]
    Xs = sequences(lengths, width=n_in)
    Ys = model.predict(Xs)
    packed = torch.nn.utils.rnn.pack_sequence([torch.from_numpy(X) for X in Xs], enforce_sorted=False)
    with torch.no_grad():
        output, _ = reference(packed)
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(output, batch_first=True)
    for i, length in enumerate(lengths):
        numpy.testing.assert_allclose(Ys[i], expected[i, :length].numpy(), rtol=1e-5, atol=1e-6)


def test_lstm_children_pass_the_gradient_check():
    model = with_padded(bidirectional(LSTM(2, 3))).initialize(X=sequences([3, 1], width=3))
    check_gradients(model, sequences([3, 1, 2], width=3, seed=1), max_checks=20)


def test_default_right_to_left_is_a_copy_and_widths_infer():
    model = with_padded(bidirectional(LSTM(2)))
    model.initialize(X=sequences([3, 2], width=5))
    l2r, r2l = model.layers[0].layers
    assert r2l is not l2r and r2l.get_dim("nI") == 5
    assert model.predict(sequences([2], width=5))[0].shape == (2, 4)


def test_errors_name_the_path():
    model = bidirectional(running_sum(), with_array2d(Linear(2, 3))).initialize()
    padded = get_current_ops().list2padded(sequences([2, 1], width=4))
    with pytest.raises(ShapeMismatchError, match=r"^bidirectional>with_array\[1\]>linear: expected input width nI=3"):
        model.predict(padded)
    with pytest.raises(ShapeMismatchError, match="bidirectional: expected a Padded batch"):
        model.predict(sequences([2]))


def test_round_trip_empty_batch_and_zero_length_sequences():
    model = with_padded(bidirectional(LSTM(2))).initialize(X=sequences([3], width=2))
    copy = with_padded(bidirectional(LSTM(2))).from_bytes(model.to_bytes())
    Xs = sequences([3, 0, 1])
    for got, expected in zip(copy.predict(Xs), model.predict(Xs)):
        numpy.testing.assert_array_equal(got, expected)
    assert model.predict(Xs)[1].shape == (0, 4)
    Ys, backprop = model.begin_update([])
    assert Ys == [] and backprop([]) == []


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(0, 5), min_size=1, max_size=5))
def test_reversal_respects_every_length(lengths):
    Xs = sequences(lengths, width=1)
    Ys = with_padded(bidirectional(running_sum(), running_sum())).predict(Xs)
    for X, Y in zip(Xs, Ys):
        assert Y.shape == (len(X), 2)
        numpy.testing.assert_allclose(Y[:, 1], numpy.cumsum(X[::-1, 0])[::-1], rtol=1e-5, atol=1e-6)
