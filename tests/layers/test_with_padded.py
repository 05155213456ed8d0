"""with_padded: Padded layers (LSTM) on lists, Ragged, (T, B, F) arrays and 4-tuples."""
import numpy
import pytest

from composa import LSTM, Linear, Model, Padded, Ragged, chain, get_current_ops, registry, with_array2d, with_padded
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sample(rows, width, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype("float32")


def sequences(lengths, width=3):
    return [sample(length, width, seed) for seed, length in enumerate(lengths)]


def running_sum():
    """Padded -> Padded: the sum of the steps so far (depends on time order and lengths)."""

    def forward(model, Xp, is_train):
        def backprop(dYp):
            d_data = numpy.flip(numpy.cumsum(numpy.flip(dYp.data, 0), axis=0), 0)
            return Padded(d_data, dYp.size_at_t, dYp.lengths, dYp.indices)

        return Padded(numpy.cumsum(Xp.data, axis=0), Xp.size_at_t, Xp.lengths, Xp.indices), backprop

    return Model("running_sum", forward)


def test_registered_and_named():
    assert registry.layers.get("with_padded.v1") is with_padded
    assert with_padded(LSTM(2)).name == "with_padded(lstm)"


def test_lists_and_ragged_come_back_in_their_order_and_lengths():
    model = with_padded(running_sum())
    Xs = sequences([2, 4, 1])
    for X, Y in zip(Xs, model.predict(Xs)):
        numpy.testing.assert_allclose(Y, numpy.cumsum(X, axis=0), rtol=1e-6)
    Yr = model.predict(Ragged(numpy.concatenate(Xs), numpy.asarray([2, 4, 1], dtype="int32")))
    numpy.testing.assert_allclose(Yr.data[2:6], numpy.cumsum(Xs[1], axis=0), rtol=1e-6)


def test_arrays_and_tuples():
    model = with_padded(running_sum())
    X = sample(12, 1).reshape(4, 3, 1)
    numpy.testing.assert_allclose(model.predict(X), numpy.cumsum(X, axis=0), rtol=1e-6)
    Xp = get_current_ops().list2padded(sequences([2, 3]))
    Y = model.predict((Xp.data, Xp.size_at_t, Xp.lengths, Xp.indices))
    assert isinstance(Y, tuple) and len(Y) == 4
    numpy.testing.assert_allclose(Y[0], numpy.cumsum(Xp.data, axis=0), rtol=1e-6)


def test_lstm_widths_infer_from_a_list_sample():
    model = with_padded(LSTM()).initialize(X=sequences([3, 2], width=5), Y=[sample(3, 4)])
    assert (model.get_dim("nI"), model.get_dim("nO")) == (5, 4)


def test_gradients_for_each_container():
    model = with_padded(with_array2d(Linear(2, 3))).initialize()
    check_gradients(model, sequences([3, 0, 2]))
    check_gradients(model, Ragged(sample(5, 3), numpy.asarray([1, 4], dtype="int32")))
    check_gradients(model, sample(4, 3).reshape(2, 2, 3))
    check_gradients(with_padded(LSTM(2, 3)).initialize(), sequences([3, 1]), max_checks=15)


def test_errors_name_the_path():
    model = with_padded(with_array2d(Linear(2, 4))).initialize()
    with pytest.raises(ShapeMismatchError, match=r"^with_padded>with_array>linear: expected input width nI=4"):
        model.predict(sequences([2]))
    with pytest.raises(ShapeMismatchError, match="with_padded: expected a Padded"):
        model.predict(sample(2, 4))
    for X in [{"a": 1}, sample(2, 4)]:
        with pytest.raises(ShapeMismatchError, match="with_padded: expected a Padded.* got"):
            with_padded(LSTM(3)).initialize(X=X)


def test_round_trip_and_empty_batches():
    model = with_padded(LSTM(2)).initialize(X=sequences([2]))
    copy = with_padded(LSTM(2)).from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(copy.predict(sequences([3]))[0], model.predict(sequences([3]))[0])
    Ys, backprop = model.begin_update([])
    assert Ys == [] and backprop([]) == []
    Yr, backprop = model.begin_update(Ragged(sample(0, 3), numpy.zeros((0,), dtype="int32")))
    assert Yr.data.shape == (0, 2) and backprop(Yr).data.shape == (0, 3)
    assert [Y.shape for Y in model.predict(sequences([0, 2]))] == [(0, 2), (2, 2)]


def test_a_time_major_array_is_batch_many_sequences_of_every_step():
    # (T=4, B=3, F=2): not square, so the steps and the batch cannot be confused.
    model = with_padded(LSTM(2, 2)).initialize()
    X = sample(12, 2).reshape(4, 3, 2)
    Y = model.predict(X)
    by_sequence = model.predict([numpy.ascontiguousarray(X[:, b]) for b in range(3)])
    for b in range(3):
        numpy.testing.assert_allclose(Y[:, b], by_sequence[b], rtol=1e-5, atol=1e-6)


def test_a_padded_batch_of_one_sequence_runs_the_child():
    model = with_padded(running_sum())
    Xp = get_current_ops().list2padded(sequences([3]))
    numpy.testing.assert_allclose(model.predict(Xp).data, numpy.cumsum(Xp.data, axis=0), rtol=1e-6)


def test_an_empty_ragged_keeps_its_width_when_the_child_has_none():
    model = with_padded(running_sum())
    Yr = model.predict(Ragged(sample(0, 3), numpy.zeros((0,), dtype="int32")))
    assert Yr.data.shape == (0, 3)


def test_tuple_and_array_samples_reach_the_child_as_padded():
    # chain initialises its second LSTM on the first one's output, so the child must get a Padded.
    Xp = get_current_ops().list2padded(sequences([2, 3], width=5))
    for X in [(Xp.data, Xp.size_at_t, Xp.lengths, Xp.indices), sample(12, 5).reshape(4, 3, 5)]:
        model = with_padded(chain(LSTM(4), LSTM(3))).initialize(X=X)
        assert (model.get_dim("nI"), model.get_dim("nO")) == (5, 3)
