"""with_ragged: Ragged layers on lists, Padded and (data, lengths) tuples."""
import numpy
import pytest

from composa import Linear, Model, Padded, Ragged, Relu, chain, get_current_ops, registry, with_array, with_ragged
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sample(rows, width, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype("float32")


def empty_padded(width):
    no_steps = numpy.zeros((0,), dtype="int32")
    return Padded(numpy.zeros((0, 0, width), dtype="float32"), no_steps, no_steps, no_steps)


def sequences(lengths, width=3):
    return [sample(length, width, seed) for seed, length in enumerate(lengths)]


def biased_relu(nO=None):
    """Relu with a random bias: the all-zero rows `centre` makes would otherwise sit on its kink."""
    return Relu(nO, init_b=lambda ops, shape: ops.asarray_f(numpy.random.uniform(0.1, 1, shape)))


def centre_each_sequence():
    """Ragged -> Ragged: subtract each sequence's first row, so boundaries matter."""

    def forward(model, Xr, is_train):
        starts = numpy.repeat(numpy.cumsum(Xr.lengths) - Xr.lengths, Xr.lengths)
        Y = Xr.data - Xr.data[starts]

        def backprop(dYr):
            dX = dYr.data.copy()
            numpy.subtract.at(dX, starts, dYr.data)
            return Ragged(dX, dYr.lengths)

        return Ragged(Y, Xr.lengths), backprop

    return Model("centre", forward)


def test_registered_and_named():
    assert registry.layers.get("with_ragged.v1") is with_ragged
    assert with_ragged(Linear()).name == "with_ragged(linear)"


def test_sequence_boundaries_survive_every_container():
    model = with_ragged(centre_each_sequence())
    Xs = sequences([2, 3])
    expected = [X - X[0] for X in Xs]
    for got, want in zip(model.predict(Xs), expected):
        numpy.testing.assert_allclose(got, want)
    Yp = model.predict(get_current_ops().list2padded(Xs))
    for got, want in zip(get_current_ops().padded2list(Yp), expected):
        numpy.testing.assert_allclose(got, want)
    data, lengths = model.predict((numpy.concatenate(Xs), numpy.asarray([2, 3], dtype="int32")))
    numpy.testing.assert_allclose(data, numpy.concatenate(expected))


def test_widths_infer_and_gradients_match():
    model = with_ragged(chain(centre_each_sequence(), with_array(chain(biased_relu(4), Linear())))).initialize(
        X=sequences([2, 3]), Y=[sample(2, 2)]
    )
    assert model.get_dim("nO") == 2
    check_gradients(model, sequences([2, 0, 3]))
    check_gradients(model, get_current_ops().list2padded(sequences([3, 1, 2])))
    check_gradients(model, (sample(5, 3), numpy.asarray([4, 1], dtype="int32")))


def test_errors_name_the_path():
    model = with_ragged(with_array(Linear(2, 4))).initialize()
    with pytest.raises(ShapeMismatchError, match=r"^with_ragged>with_array>linear: expected input width nI=4"):
        model.predict(sequences([2]))
    with pytest.raises(ShapeMismatchError, match="with_ragged: expected a Ragged, a Padded"):
        model.predict(sample(2, 4))


def test_round_trip_and_empty_batches():
    model = with_ragged(with_array(Linear(2))).initialize(X=sequences([2]))
    copy = with_ragged(with_array(Linear(2))).from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(copy.predict(sequences([3]))[0], model.predict(sequences([3]))[0])
    Ys, backprop = model.begin_update([])
    assert Ys == [] and backprop([]) == []
    assert [Y.shape for Y in model.predict(sequences([0, 2]))] == [(0, 2), (2, 2)]
    assert isinstance(model.predict(empty_padded(width=3)), Padded)
