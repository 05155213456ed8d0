"""add: the sum of several layers' outputs, without touching any child's arrays."""
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Linear, Model, Ragged, Relu, add, chain, noop, registry
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sample(rows, width, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype("float32")


def test_registered_as_add_v1():
    assert registry.layers.get("add.v1") is add


def test_output_is_the_sum_of_the_children():
    first, second = Linear(3, 4).initialize(), Relu(3, 4).initialize()
    X = sample(5, 4)
    expected = first.predict(X) + second.predict(X)
    numpy.testing.assert_allclose(add(first, second).predict(X), expected, rtol=1e-6)


def test_does_not_write_into_a_child_output():
    X = sample(4, 3)
    model = add(noop(), noop())
    Y = model.predict(X)
    numpy.testing.assert_array_equal(Y, 2 * sample(4, 3))
    numpy.testing.assert_array_equal(X, sample(4, 3))  # the noop's output is X itself


def test_nesting_flattens_into_a_new_node_and_leaves_the_argument_alone():
    a, b, c = Linear(2, 2), Linear(2, 2), Linear(2, 2)
    inner = add(a, b)
    outer = add(inner, c)
    assert outer is not inner
    assert outer.layers == [a, b, c]
    assert inner.layers == [a, b]


def test_operator_builds_one_flat_add():
    a, b, c = Linear(2, 2), Linear(2, 2), Linear(2, 2)
    with Model.define_operators({"+": add}):
        model = a + b + c
    assert model.name == "add" and model.layers == [a, b, c]


def test_initialize_infers_widths_of_every_child():
    model = add(Linear(), chain(Relu(5), Linear()))
    model.initialize(X=sample(6, 3), Y=sample(6, 2))
    assert (model.get_dim("nI"), model.get_dim("nO")) == (3, 2)
    assert model.layers[1].layers[1].get_dim("nO") == 2


def test_children_with_different_widths_are_a_clear_error():
    model = add(Linear(3, 2).initialize(), Linear(4, 2).initialize())
    with pytest.raises(ShapeMismatchError, match=r"^add: cannot sum outputs of different shapes.*\(5, 3\).*\(5, 4\)"):
        model.predict(sample(5, 2))
    with pytest.raises(ShapeMismatchError, match=r"add: the layers' output widths differ: nO=\[3, 4\]"):
        add(Linear(3), Linear(4)).initialize(X=sample(5, 2))


def test_width_mismatch_in_a_child_names_the_path():
    model = add(Linear(3, 2), chain(Relu(3, 2), Linear(3, 5))).initialize()
    with pytest.raises(ShapeMismatchError, match=r"^add>chain\[1\]>linear\[1\]: expected input width nI=5"):
        model.predict(sample(4, 2))


def test_gradients_match_finite_differences():
    model = add(Linear(3), Relu(3), chain(Relu(4), Linear(3))).initialize(X=sample(5, 4))
    check_gradients(model, sample(5, 4, seed=1))


def test_works_on_ragged():
    model = add(noop(), noop())
    X = Ragged(sample(5, 2), numpy.asarray([2, 3], dtype="int32"))
    Y, backprop = model.begin_update(X)
    numpy.testing.assert_allclose(Y.data, 2 * X.data)
    numpy.testing.assert_array_equal(Y.lengths, X.lengths)
    numpy.testing.assert_allclose(backprop(Y).data, 4 * X.data)


def test_serialization_round_trip():
    model = add(Linear(3), Relu(3)).initialize(X=sample(5, 4))
    copy = add(Linear(3), Relu(3)).from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(copy.predict(sample(2, 4)), model.predict(sample(2, 4)))


def test_empty_batch():
    model = add(Linear(3), Relu(3)).initialize(X=sample(5, 4))
    Y, backprop = model.begin_update(sample(0, 4))
    assert Y.shape == (0, 3) and backprop(Y).shape == (0, 4)


@settings(max_examples=25, deadline=None)
@given(n_children=st.integers(2, 4), rows=st.integers(0, 5))
def test_input_gradient_is_the_sum_of_the_children_gradients(n_children, rows):
    children = [Linear(3, 2).initialize() for _ in range(n_children)]
    X, dY = sample(rows, 2), sample(rows, 3, seed=3)
    expected = sum(child.begin_update(X)[1](dY) for child in children)
    _, backprop = add(*children).begin_update(X)
    numpy.testing.assert_allclose(backprop(dY), expected, rtol=1e-5, atol=1e-6)


def list_of(n_items):
    """A layer that returns the first `n_items` rows of X as a list of arrays."""
    return Model(f"first_{n_items}", lambda model, X, is_train: ([X[i] for i in range(n_items)], lambda dY: X))


@pytest.mark.parametrize("lengths", [(1, 2), (2, 1), (2, 2, 3)])
def test_list_outputs_of_different_lengths_are_a_clear_error(lengths):
    model = add(*[list_of(n) for n in lengths])
    with pytest.raises(ShapeMismatchError, match="add: cannot sum .* lengths differ"):
        model.predict(sample(3, 2))


def test_list_outputs_sum_item_by_item():
    X = sample(3, 2)
    Ys = add(list_of(2), list_of(2), list_of(2)).predict(X)
    assert len(Ys) == 2
    numpy.testing.assert_allclose(Ys[1], 3 * X[1], rtol=1e-6)
