"""Ragged, Padded and the other batch containers."""
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composa.errors import ShapeMismatchError
from composa.types import ArgsKwargs, Floats2d, Padded, Pairs, Ragged, SizedGenerator, check_array_annotation, validate_array


def make_ragged(lengths, width=2):
    rows = sum(lengths)
    data = numpy.arange(rows * width, dtype="f").reshape((rows, width))
    return Ragged(data, numpy.asarray(lengths, dtype="int32"))


def sequences(ragged):
    return [s.tolist() for s in numpy.split(ragged.data, numpy.cumsum(ragged.lengths)[:-1])] if len(ragged) else []


def test_ragged_keeps_2d_data_and_gives_back_the_original_rank():
    data = numpy.zeros((5, 2, 3), dtype="f")
    ragged = Ragged(data, [2, 3])
    assert ragged.data.shape == (5, 6)
    assert ragged.dataXd.shape == (5, 2, 3)
    assert len(ragged) == 2


def test_ragged_rejects_lengths_that_do_not_cover_the_rows():
    with pytest.raises(ShapeMismatchError, match="lengths sum to 4 but data has 5 rows"):
        Ragged(numpy.zeros((5, 2), dtype="f"), [1, 3])


def test_ragged_int_index_gives_one_sequence():
    ragged = make_ragged([1, 2, 3])
    assert sequences(ragged[1]) == sequences(ragged)[1:2]
    assert sequences(ragged[-1]) == sequences(ragged)[2:3]
    with pytest.raises(IndexError):
        ragged[3]


@pytest.mark.parametrize("index", [slice(None, 2), slice(1, None), slice(None, None, 2), slice(None, None, -1), slice(-2, None), slice(5, 9)])
def test_ragged_slices_follow_python_rules(index):
    ragged = make_ragged([1, 2, 3, 0, 2])
    assert sequences(ragged[index]) == sequences(ragged)[index]
    numpy.testing.assert_array_equal(ragged[index].lengths, ragged.lengths[index])


def test_ragged_array_index_selects_sequences_in_order():
    ragged = make_ragged([1, 2, 3])
    selected = ragged[numpy.asarray([2, 0])]
    assert sequences(selected) == [sequences(ragged)[2], sequences(ragged)[0]]
    with pytest.raises(IndexError, match="2d indexing"):
        ragged[0, 1]


def test_ragged_and_padded_take_a_boolean_mask_as_a_selection():
    # A mask is not a list of positions: [True, False, True] selects sequences 0 and 2.
    ragged = make_ragged([1, 2, 3])
    for mask in ([True, False, True], numpy.asarray([True, False, True])):
        assert sequences(ragged[mask]) == [sequences(ragged)[0], sequences(ragged)[2]]
    numpy.testing.assert_array_equal(make_padded()[[False, True, True]].lengths, [2, 1])
    with pytest.raises(IndexError, match="boolean mask of 2 items for 3 sequences"):
        ragged[[True, False]]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 4), max_size=6), st.integers(-7, 7), st.integers(-7, 7), st.sampled_from([None, 1, 2, -1]))
def test_ragged_slicing_matches_list_slicing(lengths, start, stop, step):
    ragged = make_ragged(lengths)
    index = slice(start, stop, step)
    assert sequences(ragged[index]) == sequences(ragged)[index]


def make_padded():
    # three sequences of lengths 3, 2, 1 (already sorted), time-major (T=3, B=3, F=1)
    data = numpy.arange(9, dtype="f").reshape((3, 3, 1))
    return Padded(data, numpy.asarray([3, 2, 1], dtype="int32"), numpy.asarray([3, 2, 1], dtype="int32"), numpy.asarray([2, 0, 1], dtype="int32"))


def test_padded_int_and_slice_select_sequences_on_the_batch_axis():
    padded = make_padded()
    second = padded[1]
    assert second.data.shape == (2, 1, 1)
    numpy.testing.assert_array_equal(second.size_at_t, [1, 1])
    numpy.testing.assert_array_equal(second.lengths, [2])
    numpy.testing.assert_array_equal(second.indices, [0])
    tail = padded[1:]
    assert tail.data.shape == (2, 2, 1)
    numpy.testing.assert_array_equal(tail.size_at_t, [2, 1])
    numpy.testing.assert_array_equal(padded[numpy.asarray([0, 2])].lengths, [3, 1])
    copied = padded.copy()
    copied.data[:] = -1
    assert padded.data.min() == 0


def test_args_kwargs_items_and_from_items():
    ak = ArgsKwargs.from_items([(1, "b"), ("x", 3), (0, "a")])
    assert ak.args == ("a", "b") and ak.kwargs == {"x": 3}
    assert list(ak.keys()) == [0, 1, "x"]
    assert list(ak.values()) == ["a", "b", 3]
    assert list(ak.items()) == [(0, "a"), (1, "b"), ("x", 3)]


def test_pairs_index_together_and_sized_generator_reiterates():
    pairs = Pairs(numpy.arange(4), numpy.arange(4) * 10)
    assert len(pairs) == 4
    numpy.testing.assert_array_equal(pairs[1:3].two, [10, 20])
    generator = SizedGenerator(lambda: iter([1, 2, 3]), 3)
    assert len(generator) == 3 and list(generator) == list(generator) == [1, 2, 3]


def test_validate_array_checks_rank_and_kind():
    assert validate_array(numpy.zeros((2, 2), dtype="f"), 2, "f") is not None
    with pytest.raises(ValueError, match="wrong rank"):
        validate_array(numpy.zeros((2,), dtype="f"), 2, "f")
    with pytest.raises(ValueError, match="wrong dtype"):
        validate_array(numpy.zeros((2,), dtype="i"), 1, "f")
    with pytest.raises(TypeError):
        validate_array([1, 2], 1)


def test_check_array_annotation_checks_array_aliases_and_nothing_else():
    check_array_annotation(numpy.zeros((2, 3), dtype="f"), Floats2d)
    check_array_annotation("not an array", int)  # not an array alias: nothing to check
    with pytest.raises(ValueError, match="wrong rank: expected 2, got 1"):
        check_array_annotation(numpy.zeros(3, dtype="f"), Floats2d)
    with pytest.raises(ValueError, match="wrong dtype"):
        check_array_annotation(numpy.zeros((2, 3), dtype="int32"), Floats2d)
