"""with_list: list layers on Ragged and Padded batches."""
import numpy
import pytest

from composa import Linear, Model, Padded, Ragged, Relu, chain, get_current_ops, map_list, registry, with_list
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sample(rows, width, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype("float32")


def empty_padded(width):
    no_steps = numpy.zeros((0,), dtype="int32")
    return Padded(numpy.zeros((0, 0, width), dtype="float32"), no_steps, no_steps, no_steps)


def sequences(lengths, width=3):
    return [sample(length, width, seed) for seed, length in enumerate(lengths)]


def list_recorder():
    seen = []

    def forward(model, Xs, is_train):
        seen.append([X.shape for X in Xs])
        return Xs, lambda dYs: dYs

    return Model("recorder", forward), seen


def test_registered_and_named():
    assert registry.layers.get("with_list.v1") is with_list
    assert with_list(Linear()).name == "with_list(linear)"


def test_the_layer_sees_one_array_per_sequence_in_original_order():
    recorder, seen = list_recorder()
    model = with_list(recorder)
    Xs = sequences([2, 4, 1])
    Yp = model.predict(get_current_ops().list2padded(Xs))
    assert seen[-1] == [(2, 3), (4, 3), (1, 3)]
    numpy.testing.assert_array_equal(get_current_ops().padded2list(Yp)[1], Xs[1])
    Yr = model.predict(Ragged(numpy.concatenate(Xs), numpy.asarray([2, 4, 1], dtype="int32")))
    assert seen[-1] == [(2, 3), (4, 3), (1, 3)]
    numpy.testing.assert_array_equal(Yr.data, numpy.concatenate(Xs))


def test_widths_infer_and_gradients_match_for_each_container():
    model = with_list(map_list(chain(Relu(4), Linear()))).initialize(X=sequences([2, 3]), Y=[sample(2, 2)])
    assert model.predict(sequences([4]))[0].shape == (4, 2)
    Xs = sequences([2, 0, 3])
    check_gradients(model, Xs)
    check_gradients(model, Ragged(numpy.concatenate(Xs), numpy.asarray([2, 0, 3], dtype="int32")))
    check_gradients(model, get_current_ops().list2padded(sequences([3, 1, 2])))


def test_errors_name_the_path():
    model = with_list(map_list(Linear(2, 4))).initialize()
    with pytest.raises(ShapeMismatchError, match=r"^with_list>map_list\[item 0\]>linear: expected input width nI=4"):
        model.predict(Ragged(sample(3, 3), numpy.asarray([3], dtype="int32")))
    with pytest.raises(ShapeMismatchError, match="with_list: expected a list of arrays, a Ragged or a Padded"):
        model.predict(sample(3, 3))


def test_round_trip_and_empty_batches():
    model = with_list(map_list(Linear(2))).initialize(X=sequences([2]))
    copy = with_list(map_list(Linear(2))).from_bytes(model.to_bytes())
    Xr = Ragged(sample(3, 3), numpy.asarray([1, 2], dtype="int32"))
    numpy.testing.assert_array_equal(copy.predict(Xr).data, model.predict(Xr).data)
    Yr, backprop = model.begin_update(Ragged(sample(0, 3), numpy.zeros((0,), dtype="int32")))
    assert len(Yr) == 0 and len(backprop(Yr)) == 0
    Yp = model.predict(empty_padded(width=3))
    assert isinstance(Yp, Padded) and len(Yp) == 0
