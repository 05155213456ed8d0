"""list2array, list2ragged, ragged2list, list2padded, padded2list: container conversions as layers."""
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import (
    Linear,
    Padded,
    Ragged,
    chain,
    list2array,
    list2padded,
    list2ragged,
    padded2list,
    ragged2list,
    registry,
    with_array,
    with_array2d,
)
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sequences(lengths, width=3, seed=0):
    rng = numpy.random.RandomState(seed)
    return [rng.uniform(-1, 1, (length, width)).astype("float32") for length in lengths]


@pytest.mark.parametrize("factory", [list2array, list2ragged, ragged2list, list2padded, padded2list])
def test_registered_under_their_names(factory):
    assert registry.layers.get(f"{factory.__name__}.v1") is factory
    assert factory().name == factory.__name__


def test_list2array_and_back():
    Xs = sequences([2, 0, 3])
    Y, backprop = list2array().begin_update(Xs)
    numpy.testing.assert_array_equal(Y, numpy.concatenate(Xs))
    assert [d.shape for d in backprop(Y)] == [(2, 3), (0, 3), (3, 3)]


def test_list2ragged_and_ragged2list_are_inverses():
    Xs = sequences([2, 0, 3])
    Xr = list2ragged().predict(Xs)
    numpy.testing.assert_array_equal(Xr.lengths, [2, 0, 3])
    for got, want in zip(ragged2list().predict(Xr), Xs):
        numpy.testing.assert_array_equal(got, want)


def test_list2padded_and_padded2list_are_inverses():
    Xs = sequences([2, 4, 4, 1])
    Xp = list2padded().predict(Xs)
    assert isinstance(Xp, Padded) and Xp.data.shape == (4, 4, 3)
    for got, want in zip(padded2list().predict(Xp), Xs):
        numpy.testing.assert_array_equal(got, want)


def test_gradients_through_each_conversion():
    check_gradients(chain(list2array(), Linear(2, 3)).initialize(), sequences([2, 0, 3]))
    check_gradients(chain(list2ragged(), with_array(Linear(2, 3)), ragged2list()).initialize(), sequences([2, 3]))
    model = chain(list2padded(), with_array2d(Linear(2, 3)), padded2list()).initialize()
    check_gradients(model, sequences([3, 1, 3]))


def test_padded2list_backprop_keeps_the_layout_of_its_input():
    Xp = list2padded().predict(sequences([3, 1, 3]))
    _, backprop = padded2list().begin_update(Xp)
    dXp = backprop(sequences([3, 1, 3], seed=1))
    numpy.testing.assert_array_equal(dXp.indices, Xp.indices)
    assert dXp.data.shape == Xp.data.shape
    with pytest.raises(ShapeMismatchError, match=r"padded2list: the gradient's sequence lengths \[3, 3, 2\]"):
        backprop(sequences([3, 2, 3]))


def test_bad_input_is_a_clear_error():
    with pytest.raises(ShapeMismatchError, match="ragged2list: expected a Ragged"):
        ragged2list().predict(sequences([2]))
    with pytest.raises(ShapeMismatchError, match="list2array: expected a list of arrays"):
        list2array().predict(numpy.zeros((2, 2), dtype="f"))


def test_empty_batches():
    assert list2array().predict([]).shape[0] == 0
    Xr = list2ragged().predict([])
    assert isinstance(Xr, Ragged) and len(Xr) == 0
    assert ragged2list().predict(Xr) == []
    assert padded2list().predict(list2padded().predict([])) == []


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(0, 5), min_size=1, max_size=6))
def test_padded_round_trip_for_any_lengths(lengths):
    Xs = sequences(lengths)
    Xp, backprop = list2padded().begin_update(Xs)
    for got, want in zip(padded2list().predict(Xp), Xs):
        numpy.testing.assert_array_equal(got, want)
    for got, want in zip(backprop(Xp), Xs):
        numpy.testing.assert_array_equal(got, want)
