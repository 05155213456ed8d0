"""with_flatten (v1 name) and with_flatten_v2: one layer call over all items of nested sequences."""
import numpy
import pytest

from composa import Linear, Relu, chain, list2array, map_list, registry, with_array, with_flatten, with_flatten_v2
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sample(rows, width, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype("float32")


def nested(shape, width=3):
    """A batch of documents, each a list of (rows, width) arrays."""
    return [[sample(rows, width, seed=10 * i + j) for j, rows in enumerate(doc)] for i, doc in enumerate(shape)]


def test_both_names_are_registered_and_the_v2_is_the_same_layer():
    assert registry.layers.get("with_flatten.v1") is with_flatten
    assert registry.layers.get("with_flatten.v2") is with_flatten_v2
    assert with_flatten_v2(Linear()).name == with_flatten(Linear()).name == "with_flatten(linear)"


def test_list_output_is_renested_by_document():
    layer = Linear(2, 3).initialize()
    X = nested([[2, 1], [], [3]])
    Y = with_flatten(with_array(layer)).predict(X)
    assert [[y.shape for y in doc] for doc in Y] == [[(2, 2), (1, 2)], [], [(3, 2)]]
    numpy.testing.assert_allclose(Y[2][0], layer.predict(X[2][0]), rtol=1e-6)


def test_array_output_is_split_by_rows_per_document():
    X = [[sample(1, 3, i) for i in range(2)], [sample(1, 3, 5)]]  # documents of one-row items
    Y = with_flatten(chain(list2array(), Linear(2, 3))).initialize().predict(X)
    assert [y.shape for y in Y] == [(2, 2), (1, 2)]


def test_gradients_flow_back_per_item_and_per_row():
    model = with_flatten(with_array(chain(Relu(4), Linear(2)))).initialize(X=nested([[2]]))
    check_gradients(model, nested([[2, 1], [], [3]]))
    rows_model = with_flatten(chain(list2array(), Linear(2, 3))).initialize()
    X = [[sample(1, 3, i) for i in range(2)], [sample(1, 3, 5)]]
    check_gradients(rows_model, X)


def test_widths_infer_and_errors_name_the_path():
    model = with_flatten(map_list(Linear())).initialize(X=nested([[2]]), Y=[[sample(2, 5)]])
    assert model.predict(nested([[1]]))[0][0].shape == (1, 5)
    broken = with_flatten(with_array(Linear(2, 4))).initialize()
    with pytest.raises(ShapeMismatchError, match=r"^with_flatten>with_array>linear: expected input width nI=4"):
        broken.predict(nested([[2]]))


def test_round_trip_and_empty_batches():
    model = with_flatten(with_array(Linear(2))).initialize(X=nested([[2]]))
    copy = with_flatten(with_array(Linear(2))).from_bytes(model.to_bytes())
    X = nested([[1, 2]])
    numpy.testing.assert_array_equal(copy.predict(X)[0][1], model.predict(X)[0][1])
    Y, backprop = model.begin_update([])
    assert Y == [] and backprop([]) == []
    Y, backprop = model.begin_update([[], []])
    assert Y == [[], []] and backprop(Y) == [[], []]
