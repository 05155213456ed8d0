import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Ragged, expand_window, registry
from composa.testing import check_gradients


def windows_loop(X, nW, lengths):
    """Reference: for each row, its neighbours i-nW..i+nW within its own sequence, zeros outside."""
    out = numpy.zeros((X.shape[0], (2 * nW + 1) * X.shape[1]), dtype=X.dtype)
    start = 0
    for length in lengths:
        for i in range(length):
            for k in range(-nW, nW + 1):
                if 0 <= i + k < length:
                    column = (k + nW) * X.shape[1]
                    out[start + i, column : column + X.shape[1]] = X[start + i + k]
        start += length
    return out


def test_array_rows_get_their_neighbours():
    X = numpy.arange(1, 7, dtype="f").reshape((3, 2))
    Y = expand_window(window_size=1).predict(X)
    assert Y.tolist() == [[0, 0, 1, 2, 3, 4], [1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 0, 0]]


def test_ragged_windows_stop_at_sequence_boundaries():
    X = numpy.arange(1, 6, dtype="f").reshape((5, 1))
    Yr = expand_window(window_size=1).predict(Ragged(X, numpy.asarray([2, 3], dtype="int32")))
    assert isinstance(Yr, Ragged) and Yr.lengths.tolist() == [2, 3]
    assert Yr.data.tolist() == [[0, 1, 2], [1, 2, 0], [0, 3, 4], [3, 4, 5], [4, 5, 0]]


@pytest.mark.parametrize("window_size", [0, 1, 2])
def test_finite_difference_gradients(window_size):
    rng = numpy.random.RandomState(0)
    model = expand_window(window_size=window_size)
    check_gradients(model, rng.uniform(-1, 1, (4, 3)))
    check_gradients(model, Ragged(rng.uniform(-1, 1, (5, 2)), numpy.asarray([3, 0, 2], dtype="int32")))


def test_empty_inputs():
    model = expand_window(window_size=2)
    Y, backprop = model(numpy.zeros((0, 3), dtype="f"), is_train=True)
    assert Y.shape == (0, 15) and backprop(Y).shape == (0, 3)
    empty = Ragged(numpy.zeros((0, 3), dtype="f"), numpy.zeros((0,), dtype="int32"))
    Yr, backprop = model(empty, is_train=True)
    assert Yr.data.shape == (0, 15) and backprop(Yr).data.shape == (0, 3)


def test_bad_input_and_configuration_are_clear_errors():
    with pytest.raises(ValueError, match="window_size must be an int >= 0"):
        expand_window(window_size=-1)
    with pytest.raises(ValueError, match="expand_window: expected a 2d array"):
        expand_window().predict(numpy.zeros((2, 3, 4), dtype="f"))
    Y, backprop = expand_window()(numpy.zeros((2, 3), dtype="f"), is_train=True)
    with pytest.raises(ValueError, match=r"expand_window: shape mismatch in backprop: the output was \(2, 9\)"):
        backprop(numpy.zeros((2, 3), dtype="f"))


def test_registered_and_serialised():
    model = registry.layers.get("expand_window.v1")(window_size=3)
    loaded = expand_window().from_bytes(model.to_bytes())
    assert loaded.attrs["window_size"] == 3


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 5), max_size=5),
    width=st.integers(1, 3),
    window_size=st.integers(0, 3),
)
def test_matches_a_python_loop(lengths, width, window_size):
    X = numpy.random.RandomState(1).uniform(-1, 1, (sum(lengths), width)).astype("f")
    Yr = expand_window(window_size=window_size).predict(Ragged(X, numpy.asarray(lengths, dtype="int32")))
    numpy.testing.assert_array_equal(Yr.data, windows_loop(X, window_size, lengths))
