"""Bad input to a layer gets composa's own error naming the layer and what it expected."""
import numpy
import pytest

from composa import LSTM, NumpyOps, Padded, Ragged, Relu, ShapeMismatchError, with_array, with_array2d

OPS = NumpyOps()


def two_sequences():
    return OPS.list2padded([numpy.ones((3, 3), dtype="float32"), numpy.ones((2, 3), dtype="float32")])


def with_field(Xp, **changes):
    fields = {"size_at_t": Xp.size_at_t, "lengths": Xp.lengths, "indices": Xp.indices, **changes}
    return Padded(Xp.data, fields["size_at_t"], fields["lengths"], fields["indices"])


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"size_at_t": numpy.array([5, 5, 5], dtype="int32")}, "size_at_t"),
        ({"size_at_t": numpy.array([2, 2, 3], dtype="int32")}, "size_at_t"),
        ({"indices": numpy.array([0, 7], dtype="int32")}, "indices must be a permutation"),
        ({"indices": numpy.array([-1, 0], dtype="int32")}, "indices must be a permutation"),
    ],
)
def test_lstm_refuses_a_padded_batch_whose_bookkeeping_runs_past_the_data(changes, expected):
    model = LSTM(2, 3)
    model.initialize()
    with pytest.raises(ShapeMismatchError, match=f"lstm: .*{expected}"):
        model.predict(with_field(two_sequences(), **changes))


def test_ragged_refuses_float_lengths():
    for lengths in (numpy.array([1.0, 2.0]), [1.5, 1.5]):
        with pytest.raises(ShapeMismatchError, match="Ragged: lengths must be integers"):
            Ragged(numpy.ones((3, 2), dtype="float32"), lengths)


@pytest.mark.parametrize("adapter", [with_array, with_array2d])
@pytest.mark.parametrize(
    "X, expected",
    [
        ([1.0, 2.0], "expected a list of arrays .* got a float at item 0"),
        ([[1.0, 2.0, 3.0]], "expected a list of arrays .* got a list of 3 items"),
        (
            Padded(numpy.ones((3, 3), dtype="float32"), *(numpy.array(v, dtype="int32") for v in ([1, 1, 1], [3], [0]))),
            r"expected Padded data of shape \(T, B, ...\)",
        ),
    ],
)
def test_with_array_names_itself_and_what_it_expected(adapter, X, expected):
    model = adapter(Relu(2, 3))
    model.initialize()
    with pytest.raises(ShapeMismatchError, match=rf"with_array\(relu\): {expected}"):
        model.predict(X)


def test_pytorch_wrapper_refuses_inputs_its_converters_cannot_handle():
    torch = pytest.importorskip("torch")
    from composa import PyTorchWrapper

    model = PyTorchWrapper(torch.nn.Linear(3, 2))
    model.initialize()
    ragged = Ragged(numpy.ones((3, 3), dtype="float32"), numpy.array([1, 2], dtype="int32"))
    for X in (None, "abc", 3, numpy.array(1.0, dtype="float32"), [1.0, 2.0], {"a": 1}, ragged, two_sequences()):
        with pytest.raises(ShapeMismatchError, match="pytorch: expected an array"):
            model.predict(X)
    assert model.predict(numpy.ones((4, 3), dtype="float32")).shape == (4, 2)
