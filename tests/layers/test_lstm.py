import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import LSTM, NumpyOps, Padded, registry
from composa.layers.lstm import load_lstm_state_dict, lstm_state_dict
from composa.testing import check_gradients

ops = NumpyOps()


def padded(lengths, nI, dtype="float64", seed=0):
    """A Padded batch of random sequences with the given lengths (columns sorted by ops.list2padded)."""
    rng = numpy.random.RandomState(seed)
    seqs = [rng.uniform(-1, 1, (length, nI)).astype(dtype) for length in lengths]
    return ops.list2padded(seqs)


def torch_twin(model, dtype=torch.float64):
    """A torch.nn.LSTM with the composa layer's weights and initial states."""
    nO, nI = model.get_dim("nO"), model.get_dim("nI")
    depth, dirs = model.get_dim("depth"), model.get_dim("dirs")
    twin = torch.nn.LSTM(nI, nO // dirs, depth, bidirectional=dirs == 2).to(dtype)
    twin.load_state_dict(lstm_state_dict(model))
    return twin


def run_torch(twin, model, Xp, dY):
    """Outputs, input gradient, weight gradients and initial-state gradients from torch."""
    HC0 = torch.tensor(model.get_param("HC0"), dtype=torch.float64, requires_grad=True)
    batch = Xp.data.shape[1]
    depth, dirs, nH = HC0.shape[1:]
    # composa shares one initial state across the batch: broadcast it for torch.
    h0 = HC0[0].reshape(depth * dirs, 1, nH).expand(-1, batch, -1).contiguous()
    c0 = HC0[1].reshape(depth * dirs, 1, nH).expand(-1, batch, -1).contiguous()
    X = torch.tensor(Xp.data, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(X, torch.tensor(Xp.lengths, dtype=torch.int64))
    out, _ = twin(packed, (h0, c0))
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=Xp.data.shape[0])
    (out * torch.tensor(dY)).sum().backward()
    grads = {name: p.grad.numpy() for name, p in twin.named_parameters()}
    return out.detach().numpy(), X.grad.numpy(), grads, HC0.grad.numpy()


@pytest.mark.parametrize("bi", [False, True])
@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("lengths", [[5, 3, 3, 1, 4], [5, 5, 5]], ids=["ragged", "dense (packed without copies)"])
def test_matches_torch_lstm_outputs_and_gradients(bi, depth, lengths):
    numpy.random.seed(1)
    model = LSTM(6 if bi else 3, 4, bi=bi, depth=depth).initialize()
    model.set_param("LSTM", model.get_param("LSTM").astype("float64"))
    model.set_param("HC0", numpy.random.uniform(-0.5, 0.5, model.get_param("HC0").shape))
    twin = torch_twin(model)
    Xp = padded(lengths, 4)
    Yp, backprop = model(Xp, is_train=True)
    dY = numpy.random.uniform(-1, 1, Yp.data.shape)
    dY *= (numpy.arange(5)[:, None] < Xp.lengths[None, :])[:, :, None]  # no gradient on padding
    dXp = backprop(Padded(dY, Yp.size_at_t, Yp.lengths, Yp.indices))
    out, dX, weight_grads, dHC0 = run_torch(twin, model, Xp, dY)
    numpy.testing.assert_allclose(Yp.data, out, atol=1e-5)
    numpy.testing.assert_allclose(dXp.data, dX, atol=1e-5)
    d_params = model.get_grad("LSTM")
    flat_torch = numpy.concatenate([weight_grads[name].ravel() for name in lstm_state_dict(model)])
    numpy.testing.assert_allclose(d_params, flat_torch, atol=1e-5)
    numpy.testing.assert_allclose(model.get_grad("HC0"), dHC0, atol=1e-5)


def test_predict_matches_training_forward_without_dropout():
    model = LSTM(4, 3, bi=True, depth=2).initialize()
    Xp = padded([4, 2, 1], 3, dtype="float32")
    numpy.testing.assert_allclose(model.predict(Xp).data, model(Xp, is_train=True)[0].data, rtol=1e-6)


def test_shape_inference_from_sample_batches():
    model = LSTM(bi=True, depth=2)
    Xp = padded([3, 2], 5, dtype="float32")
    Y = Padded(numpy.zeros((3, 2, 8), dtype="f"), Xp.size_at_t, Xp.lengths, Xp.indices)
    model.initialize(X=Xp, Y=Y)
    assert model.get_dim("nI") == 5 and model.get_dim("nO") == 8
    assert model.get_param("HC0").shape == (2, 2, 2, 4)
    n_params = 2 * 4 * 4 * (5 + 4 + 2) + 2 * 4 * 4 * (8 + 4 + 2)
    assert model.get_param("LSTM").shape == (n_params,)
    assert model.predict(Xp).data.shape == (3, 2, 8)


@pytest.mark.parametrize("bi,depth", [(False, 1), (True, 2)])
def test_finite_difference_gradients(bi, depth):
    model = LSTM(4 if bi else 2, 3, bi=bi, depth=depth).initialize()
    model.set_param("HC0", numpy.random.uniform(-0.3, 0.3, model.get_param("HC0").shape).astype("f"))
    check_gradients(model, padded([3, 1, 2], 3))


def test_initial_states_are_trained():
    model = LSTM(2, 2).initialize()
    Xp = padded([2, 2], 2)
    Yp, backprop = model(Xp, is_train=True)
    backprop(Padded(numpy.ones_like(Yp.data), Yp.size_at_t, Yp.lengths, Yp.indices))
    assert numpy.abs(model.get_grad("HC0")).sum() > 0


def test_dropout_between_layers_only_in_training():
    numpy.random.seed(0)
    model = LSTM(4, 3, depth=2, dropout=0.5).initialize()
    Xp = padded([4, 3], 3, dtype="float32")
    assert model.attrs["dropout_rate"] == 0.5
    clean = LSTM(4, 3, depth=2).initialize()
    clean.set_param("LSTM", model.get_param("LSTM"))
    numpy.testing.assert_allclose(model.predict(Xp).data, clean.predict(Xp).data)
    assert not numpy.allclose(model(Xp, is_train=True)[0].data, clean.predict(Xp).data)
    check_gradients(model, padded([3, 2], 3))


def test_single_layer_ignores_dropout_like_torch():
    model = LSTM(2, 3, dropout=0.9).initialize()
    Xp = padded([3], 3, dtype="float32")
    numpy.testing.assert_allclose(model(Xp, is_train=True)[0].data, model.predict(Xp).data)


def test_unsorted_columns_give_the_same_sequences():
    model = LSTM(4, 3, bi=True).initialize()
    Xp = padded([2, 4, 3], 3, dtype="float32")
    order = numpy.asarray([2, 0, 1])
    shuffled = Padded(Xp.data[:, order], Xp.size_at_t, Xp.lengths[order], Xp.indices[order])
    numpy.testing.assert_allclose(model.predict(shuffled).data, model.predict(Xp).data[:, order], rtol=1e-6)


def test_zero_length_sequences_and_padding_rows_stay_zero():
    model = LSTM(2, 3).initialize()
    data = numpy.random.uniform(-1, 1, (4, 3, 3)).astype("f")
    lengths = numpy.asarray([3, 2, 0], dtype="int32")
    Xp = Padded(data, numpy.asarray([2, 2, 1, 0], dtype="int32"), lengths, numpy.arange(3, dtype="int32"))
    Yp, backprop = model(Xp, is_train=True)
    assert not Yp.data[:, 2].any() and not Yp.data[3:].any() and not Yp.data[2:, 1].any()
    dX = backprop(Padded(numpy.ones_like(Yp.data), Yp.size_at_t, Yp.lengths, Yp.indices)).data
    assert dX.shape == data.shape and not dX[:, 2].any() and not dX[3:].any()


def test_empty_batch():
    model = LSTM(2, 3, bi=False).initialize()
    empty = ops.list2padded([])
    empty = Padded(numpy.zeros((0, 0, 3), dtype="f"), empty.size_at_t, empty.lengths, empty.indices)
    Yp, backprop = model(empty, is_train=True)
    assert Yp.data.shape == (0, 0, 2)
    assert backprop(Yp).data.shape == (0, 0, 3)


def test_torch_state_dict_round_trip():
    model = LSTM(6, 2, bi=True, depth=2).initialize()
    twin = torch.nn.LSTM(2, 3, 2, bidirectional=True)
    load_lstm_state_dict(model, twin)
    back = lstm_state_dict(model)
    for name, value in twin.state_dict().items():
        assert torch.equal(back[name], value)


def test_state_dict_of_another_shape_is_a_clear_error():
    model = LSTM(4, 2).initialize()
    with pytest.raises(ValueError, match="weight_ih_l0 has shape"):
        load_lstm_state_dict(model, torch.nn.LSTM(3, 4))
    with pytest.raises(ValueError, match="lacks"):
        load_lstm_state_dict(model, {})


def test_serialisation_round_trip():
    model = LSTM(4, 3, bi=True, depth=2).initialize()
    model.set_param("HC0", numpy.full(model.get_param("HC0").shape, 0.25, dtype="f"))
    Xp = padded([3, 2], 3, dtype="float32")
    loaded = LSTM(4, 3, bi=True, depth=2).initialize().from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(loaded.predict(Xp).data, model.predict(Xp).data)
    numpy.testing.assert_array_equal(model.copy().predict(Xp).data, model.predict(Xp).data)


def test_bad_configuration_and_input_are_clear_errors():
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        LSTM(2, 2, depth=0)
    with pytest.raises(ValueError, match="even nO"):
        LSTM(3, 2, bi=True)
    model = LSTM(2, 3).initialize()
    with pytest.raises(ValueError, match=r"lstm: expected Padded data of shape \(T, B, nI=3\)"):
        model.predict(padded([2], 4, dtype="float32"))
    with pytest.raises(ValueError, match="lstm: expected a Padded batch"):
        model.predict(numpy.zeros((2, 3), dtype="f"))


def test_registered():
    model = registry.layers.get("LSTM.v1")(nO=4, nI=2, bi=True, depth=2)
    assert model.name == "lstm" and model.get_dim("dirs") == 2


@settings(max_examples=15, deadline=None)
@given(lengths=st.lists(st.integers(0, 5), min_size=1, max_size=5), bi=st.booleans())
def test_any_lengths_match_torch(lengths, bi):
    """For any batch of lengths (zeros included), outputs equal torch's on the valid steps."""
    model = LSTM(4 if bi else 2, 2, bi=bi).initialize()
    model.set_param("LSTM", model.get_param("LSTM").astype("float64"))
    twin = torch_twin(model)
    Xp = padded(lengths, 2)
    Y = model.predict(Xp).data
    nonempty = Xp.lengths > 0
    if not nonempty.any():
        assert not Y.any()
        return
    keep = Padded(Xp.data[:, nonempty], Xp.size_at_t, Xp.lengths[nonempty], Xp.indices[nonempty])
    out, _, _, _ = run_torch(twin, model, keep, numpy.zeros(keep.data.shape[:2] + (Y.shape[2],)))
    numpy.testing.assert_allclose(Y[: out.shape[0], nonempty], out, atol=1e-7)


def test_with_padded_runs_lstm_on_lists_and_ragged():
    from composa import Ragged
    from composa.layers.with_padded import with_padded

    model = with_padded(LSTM(4, 3, bi=True)).initialize()
    Xs = [numpy.ones((n, 3), dtype="f") for n in (2, 0, 4)]
    assert [Y.shape for Y in model.predict(Xs)] == [(2, 4), (0, 4), (4, 4)]
    Yr = model.predict(Ragged(numpy.ones((6, 3), dtype="f"), numpy.asarray([2, 4], dtype="int32")))
    assert Yr.data.shape == (6, 4) and Yr.lengths.tolist() == [2, 4]


def test_learns_to_count_ones():
    """A small training run: the last output of each sequence learns the number of ones seen."""
    from composa import Adam
    from composa.layers.with_padded import with_padded

    numpy.random.seed(0)
    model = with_padded(LSTM(2, 1, depth=2)).initialize()
    optimizer = Adam(0.05)
    rng = numpy.random.RandomState(0)
    Xs = [rng.randint(0, 2, (n, 1)).astype("f") for n in rng.randint(1, 6, 16)]
    targets = [numpy.cumsum(X, axis=0) / 5.0 for X in Xs]

    def loss_and_update():
        Ys, backprop = model(Xs, is_train=True)
        d_Ys = [Y[:, :1] - T for Y, T in zip(Ys, targets)]
        backprop([numpy.hstack([d, numpy.zeros_like(d)]) for d in d_Ys])
        model.finish_update(optimizer)
        return sum(float((d**2).sum()) for d in d_Ys)

    first = loss_and_update()
    for _ in range(60):
        last = loss_and_update()
    assert last < first / 4


def test_backprop_after_a_prediction_pass_is_a_clear_error():
    model = LSTM(2, 2).initialize()
    Yp, backprop = model(padded([2], 2, dtype="float32"), is_train=False)
    with pytest.raises(ValueError, match="lstm: backprop needs the forward pass to run with is_train=True"):
        backprop(Yp)


def test_built_from_a_config():
    from composa import Config

    config = Config().from_str(
        """
        [model]
        @layers = "LSTM.v1"
        nO = 6
        nI = 2
        bi = true
        depth = 2
        dropout = 0.1
        """
    )
    model = registry.resolve(config)["model"]
    assert (model.get_dim("nO"), model.get_dim("depth"), model.get_dim("dirs")) == (6, 2, 2)
    assert model.attrs["dropout_rate"] == 0.1
