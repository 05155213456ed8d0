"""The shared skeleton of the container adapters (composa/layers/_adapters.py)."""
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Linear, Model, ShapeMismatchError
from composa.layers._adapters import call_child, call_child_on_rows, make_adapter, rows_of
from composa.testing import check_gradients


def rows_adapter(layer: Model) -> Model:
    """A minimal adapter: the child sees the rows of an (..., nI) array."""

    def forward(model, X, is_train):
        return call_child_on_rows(model, "rows", X, is_train)

    return make_adapter("rows", layer, forward, rows_of)


def test_the_adapter_is_named_after_its_child_and_mirrors_its_dims():
    model = rows_adapter(Linear(4, 3))
    assert model.name == "rows(linear)"
    assert model.get_dim("nO") == 4 and model.get_dim("nI") == 3
    assert model.layers[0].name == "linear"


def test_dim_names_restricts_the_mirrored_dims():
    model = make_adapter("rows", Linear(4, 3), lambda m, X, t: None, rows_of, dim_names=("nO",))
    assert tuple(model.dim_names) == ("nO",)
    assert model.get_dim("nO") == 4


def test_initialize_converts_the_samples_for_the_child_and_copies_its_dims_back():
    model = rows_adapter(Linear())
    X = numpy.zeros((2, 5, 3), dtype="f")
    Y = numpy.zeros((2, 5, 4), dtype="f")
    model.initialize(X=X, Y=Y)
    assert model.layers[0].get_param("W").shape == (4, 3)
    assert model.get_dim("nI") == 3 and model.get_dim("nO") == 4


@settings(max_examples=25, deadline=None)
@given(leading=st.lists(st.integers(1, 3), min_size=1, max_size=3), nI=st.integers(1, 4), nO=st.integers(1, 4))
def test_rows_keep_every_leading_axis_and_change_only_the_last(leading, nI, nO):
    model = rows_adapter(Linear(nO, nI)).initialize()
    X = numpy.random.uniform(-1, 1, (*leading, nI)).astype("f")
    Y, backprop = model(X, is_train=True)
    assert Y.shape == (*leading, nO)
    assert backprop(numpy.ones_like(Y)).shape == X.shape


def test_rows_gradients_match_finite_differences():
    model = rows_adapter(Linear(3, 2)).initialize()
    check_gradients(model, numpy.random.uniform(-1, 1, (2, 3, 2)).astype("f"))


def test_errors_from_the_child_are_labelled_in_forward_and_in_backprop():
    model = rows_adapter(Linear(4, 3)).initialize()
    with pytest.raises(ShapeMismatchError) as forward_error:
        model(numpy.zeros((2, 5, 7), dtype="f"), is_train=False)
    assert str(forward_error.value).startswith("rows>linear:")

    def passthrough(model, X, is_train):
        return call_child(model, "passthrough", X, is_train)

    wrapped = make_adapter("passthrough", Linear(4, 3), passthrough, lambda model, X: X).initialize()
    _, backprop = wrapped(numpy.zeros((2, 3), dtype="f"), is_train=True)
    with pytest.raises(ShapeMismatchError) as backward_error:
        backprop(numpy.zeros((2, 9), dtype="f"))
    assert str(backward_error.value).startswith("passthrough>linear:")
