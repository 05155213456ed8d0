"""concatenate: several layers on the same input, outputs joined feature-wise."""
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Linear, Model, Padded, Ragged, Relu, chain, concatenate, noop, registry
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sample(rows, width, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype("float32")


def test_registered_as_concatenate_v1():
    assert registry.layers.get("concatenate.v1") is concatenate


def test_zero_and_one_layers():
    assert concatenate().name == "noop"
    layer = Linear(2, 2)
    assert concatenate(layer) is layer


def test_output_joins_the_children_column_wise():
    first, second = Linear(3, 4).initialize(), Relu(2, 4).initialize()
    X = sample(5, 4)
    Y = concatenate(first, second).predict(X)
    numpy.testing.assert_allclose(Y, numpy.hstack([first.predict(X), second.predict(X)]))


def test_nesting_flattens_into_a_new_node_and_leaves_the_argument_alone():
    a, b, c = Linear(2, 2), Linear(3, 2), Linear(4, 2)
    inner = concatenate(a, b)
    with Model.define_operators({"|": concatenate}):
        outer = inner | c
    assert outer is not inner and outer.layers == [a, b, c] and inner.layers == [a, b]
    assert outer.name == "linear|linear|linear" and outer.get_dim("nO") == 9


def test_initialize_infers_widths_through_nested_children():
    model = concatenate(Linear(3), chain(Relu(4), Linear(2)), noop())
    model.initialize(X=sample(6, 5))
    assert model.has_dim("nI") is False  # noop has no input width, so neither has the whole
    assert model.get_dim("nO") == 3 + 2 + 5
    assert model.predict(sample(2, 5)).shape == (2, 10)


def test_input_width_is_known_when_every_child_has_one():
    model = concatenate(Linear(3), chain(Relu(4), Linear(2))).initialize(X=sample(6, 5))
    assert (model.get_dim("nI"), model.get_dim("nO")) == (5, 5)


def test_width_mismatch_in_a_child_names_the_path():
    model = concatenate(Linear(3, 2), chain(Relu(3, 2), Linear(3, 5))).initialize()
    with pytest.raises(ShapeMismatchError, match=r"^concatenate>chain\[1\]>linear\[1\]: expected input width nI=5"):
        model.predict(sample(4, 2))


def test_gradients_match_finite_differences():
    model = concatenate(Linear(3), Relu(2), chain(Relu(4), Linear(1))).initialize(X=sample(5, 4))
    check_gradients(model, sample(5, 4, seed=1))


def test_backprop_leaves_the_callers_gradient_alone():
    model = concatenate(Relu(3), Relu(2)).initialize(X=sample(5, 4))
    Y, backprop = model.begin_update(sample(5, 4))
    dY = sample(5, 5, seed=7)
    backprop(dY)
    numpy.testing.assert_array_equal(dY, sample(5, 5, seed=7))


def test_ragged_padded_and_lists():
    model = concatenate(noop(), noop())
    lengths = numpy.asarray([2, 3], dtype="int32")
    Xr = Ragged(sample(5, 2), lengths)
    Yr, backprop = model.begin_update(Xr)
    assert Yr.data.shape == (5, 4)
    numpy.testing.assert_allclose(backprop(Yr).data, 2 * Xr.data)
    Xs = [sample(2, 2), sample(3, 2, seed=1)]
    Ys, backprop = model.begin_update(Xs)
    assert [Y.shape for Y in Ys] == [(2, 4), (3, 4)]
    numpy.testing.assert_allclose(backprop(Ys)[1], 2 * Xs[1])
    Xp = Padded(sample(6, 1).reshape(3, 2, 1), *(numpy.asarray(v, dtype="int32") for v in ([2, 2, 1], [3, 2], [0, 1])))
    Yp, backprop = model.begin_update(Xp)
    assert Yp.data.shape == (3, 2, 2)
    numpy.testing.assert_allclose(backprop(Yp).data, 2 * Xp.data)


def test_serialization_round_trip():
    model = concatenate(Linear(3), Relu(3)).initialize(X=sample(5, 4))
    copy = concatenate(Linear(3), Relu(3)).from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(copy.predict(sample(2, 4)), model.predict(sample(2, 4)))


def test_empty_batch_and_empty_list():
    model = concatenate(Linear(3), Relu(2)).initialize(X=sample(5, 4))
    Y, backprop = model.begin_update(sample(0, 4))
    assert Y.shape == (0, 5) and backprop(Y).shape == (0, 4)
    Ys, backprop = concatenate(noop(), noop()).begin_update([])
    assert Ys == [] and backprop([]) == []


def test_bad_gradient_width_is_a_clear_error():
    model = concatenate(Linear(3), Relu(2)).initialize(X=sample(5, 4))
    _, backprop = model.begin_update(sample(5, 4))
    with pytest.raises(ShapeMismatchError, match="concatenate: expected a gradient of width 5"):
        backprop(sample(5, 4))


@settings(max_examples=25, deadline=None)
@given(widths=st.lists(st.integers(1, 4), min_size=2, max_size=4), rows=st.integers(0, 4))
def test_output_width_is_the_sum_of_child_widths(widths, rows):
    model = concatenate(*(Linear(width) for width in widths)).initialize(X=sample(3, 2))
    assert model.get_dim("nO") == sum(widths)
    assert model.predict(sample(rows, 2)).shape == (rows, sum(widths))


def test_children_with_their_own_widths_ignore_a_sample_output_of_the_total_width():
    # The sample Y has the concatenation's width (5); each child keeps the width it was given.
    model = concatenate(Relu(2), Relu(3)).initialize(X=sample(4, 3), Y=sample(4, 5))
    assert [layer.get_dim("nO") for layer in model.layers] == [2, 3]
    assert model.get_dim("nO") == 5


def test_children_that_agree_on_an_input_width_give_it_to_the_node_without_data():
    assert concatenate(Linear(3, 4), Linear(2, 4)).initialize().get_dim("nI") == 4
    assert concatenate(Linear(3, 4), Linear(2, 6)).initialize().has_dim("nI") is None


def test_the_output_width_is_inferred_from_a_list_of_one_sequence():
    assert concatenate(noop(), noop()).initialize(X=[sample(3, 2)]).get_dim("nO") == 4
