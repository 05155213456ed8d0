"""with_array / with_array2d: array layers on lists, Ragged, Padded and arrays."""
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Linear, Model, Padded, Ragged, Relu, chain, registry, with_array, with_array2d
from composa.errors import ConfigurationError, ShapeMismatchError
from composa.testing import check_gradients


def sample(rows, width, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype("float32")


def sequences(lengths, width=3, seed=0):
    return [sample(length, width, seed + i) for i, length in enumerate(lengths)]


def biased_relu(nO=None):
    """Relu with a random bias: zero padding rows would otherwise sit exactly on its kink."""
    return Relu(nO, init_b=lambda ops, shape: ops.asarray_f(numpy.random.uniform(0.1, 1, shape)))


def padded(lengths, width=3):
    ops = Linear().ops
    return ops.list2padded(sequences(lengths, width))


def row_counter():
    """An identity layer that records the array it is given."""
    seen = []

    def forward(model, X, is_train):
        seen.append(X)
        return X, lambda dY: dY

    return Model("row_counter", forward), seen


def test_registered_and_named_like_the_reference():
    assert registry.layers.get("with_array.v1") is with_array
    assert registry.layers.get("with_array2d.v1") is with_array2d
    assert with_array(Linear()).name == "with_array(linear)"
    assert with_array2d(Linear()).name == "with_array(linear)"
    with pytest.raises(ConfigurationError, match="pad must be a non-negative int"):
        with_array(Linear(), pad=-1)


def test_list_in_list_out_with_the_rows_of_all_items():
    layer = Linear(2, 3).initialize()
    Xs = sequences([2, 0, 4])
    Ys = with_array(layer).predict(Xs)
    assert [Y.shape for Y in Ys] == [(2, 2), (0, 2), (4, 2)]
    numpy.testing.assert_allclose(Ys[2], layer.predict(Xs[2]), rtol=1e-6)


def test_pad_adds_zero_rows_between_items_even_around_empty_ones():
    counter, seen = row_counter()
    Ys = with_array(counter, pad=2).predict(sequences([2, 0, 1]))
    assert seen[0].shape == (2 + 0 + 1 + 2 * 4, 3)
    numpy.testing.assert_array_equal(seen[0][:2], 0)
    assert [Y.shape for Y in Ys] == [(2, 3), (0, 3), (1, 3)]


def test_ragged_padded_and_plain_arrays():
    model = with_array(Linear(2, 3)).initialize()
    Xr = Ragged(sample(5, 3), numpy.asarray([2, 3], dtype="int32"))
    Yr = model.predict(Xr)
    assert isinstance(Yr, Ragged) and Yr.data.shape == (5, 2)
    numpy.testing.assert_array_equal(Yr.lengths, Xr.lengths)
    assert model.predict(sample(4, 3)).shape == (4, 2)
    with pytest.raises(ShapeMismatchError, match=r"^with_array>linear: expected input width nI=3, got an array of shape \(3, 2, 3\)"):
        model.predict(padded([3, 1]))  # with_array hands Padded data over as it is: 3d
    Yp = with_array2d(Linear(2, 3)).initialize().predict(padded([3, 1]))
    assert isinstance(Yp, Padded) and Yp.data.shape == (3, 2, 2)


def test_initialize_infers_widths_from_any_container():
    for X in (sequences([2, 3]), Ragged(sample(5, 3), numpy.asarray([2, 3], dtype="int32")), sample(4, 3)):
        model = with_array(chain(Relu(4), Linear())).initialize(X=X, Y=sample(1, 2) if not isinstance(X, list) else [sample(1, 2)])
        assert (model.get_dim("nI"), model.get_dim("nO")) == (3, 2)
    model = with_array2d(Linear()).initialize(X=padded([2, 1]), Y=padded([2, 1], width=5))
    assert (model.get_dim("nI"), model.get_dim("nO")) == (3, 5)


def test_gradients_for_every_container():
    model = with_array(chain(Relu(4), Linear(2))).initialize(X=sample(3, 3))
    check_gradients(model, sequences([2, 0, 3]))
    check_gradients(with_array(chain(biased_relu(4), Linear(2)), pad=1).initialize(X=sample(3, 3)), sequences([2, 0, 3]))
    check_gradients(model, Ragged(sample(5, 3), numpy.asarray([2, 3], dtype="int32")))
    model2d = with_array2d(chain(biased_relu(4), Linear(2))).initialize(X=sample(3, 3))
    check_gradients(model2d, padded([3, 1, 2]))
    check_gradients(model2d, sample(2, 4 * 3).reshape(2, 4, 3))


def test_round_trip_and_empty_batches():
    model = with_array(Linear(2)).initialize(X=sample(3, 3))
    copy = with_array(Linear(2)).from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(copy.predict(sample(2, 3)), model.predict(sample(2, 3)))
    Ys, backprop = model.begin_update([])
    assert Ys == [] and backprop([]) == []
    Yr, backprop = model.begin_update(Ragged(sample(0, 3), numpy.zeros((0,), dtype="int32")))
    assert Yr.data.shape == (0, 2) and backprop(Yr).data.shape == (0, 3)


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(0, 4), min_size=1, max_size=5), pad=st.integers(0, 2))
def test_list_output_matches_running_each_item_alone(lengths, pad):
    layer = Linear(2, 3).initialize()
    Xs = sequences(lengths)
    for X, Y in zip(Xs, with_array(layer, pad=pad).predict(Xs)):
        numpy.testing.assert_allclose(Y, layer.predict(X), rtol=1e-5, atol=1e-6)
