"""Embed: row lookup in a learned table, against torch.nn.Embedding; out-of-range ids are clear errors."""
import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Embed, IdOutOfRangeError, registry
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients

IDS = numpy.array([3, 0, 3, 7, 1], dtype="int32")


def test_registered_as_embed_v1():
    assert registry.layers.get("Embed.v1") is Embed


def test_initialize_infers_nO_from_Y():
    model = Embed(nV=10).initialize(X=IDS, Y=numpy.zeros((5, 4), dtype="f"))
    assert model.get_param("E").shape == (10, 4)
    assert model.predict(IDS).shape == (5, 4)


def test_rows_are_the_table_rows_of_the_ids():
    model = Embed(4, 10).initialize()
    numpy.testing.assert_array_equal(model.predict(IDS), model.get_param("E")[IDS])


def test_matches_torch_embedding_including_repeated_ids():
    model = Embed(4, 10).initialize()
    model.set_param("E", model.get_param("E").astype("float64"))
    dY = numpy.random.RandomState(0).uniform(-1, 1, (5, 4))
    Y, backprop = model(IDS, is_train=True)
    backprop(dY)
    torch_embed = torch.nn.Embedding(10, 4).double()
    with torch.no_grad():
        torch_embed.weight.copy_(torch.from_numpy(model.get_param("E")))
    Y_torch = torch_embed(torch.from_numpy(IDS.astype("int64")))
    Y_torch.backward(torch.from_numpy(dY))
    numpy.testing.assert_allclose(Y, Y_torch.detach().numpy(), atol=1e-5)
    numpy.testing.assert_allclose(model.get_grad("E"), torch_embed.weight.grad.numpy(), atol=1e-5)


def test_gradients_match_finite_differences():
    check_gradients(Embed(4, 10).initialize(), IDS)


def test_column_selects_ids_from_a_2d_input():
    model = Embed(4, 10, column=1).initialize()
    X = numpy.stack([numpy.zeros_like(IDS), IDS], axis=1)
    numpy.testing.assert_array_equal(model.predict(X), model.get_param("E")[IDS])
    assert model.attrs["column"] == 1


def test_dropout_drops_the_same_columns_for_every_row():
    model = Embed(50, 10, dropout=0.5).initialize()
    model.set_param("E", numpy.ones((10, 50), dtype="f"))
    Y, backprop = model(IDS, is_train=True)
    assert (Y == Y[0]).all() and (Y[0] == 0).any() and (Y[0] == 2).any()
    backprop(numpy.ones_like(Y))
    numpy.testing.assert_array_equal(model.get_grad("E")[3], 2 * Y[0])
    numpy.testing.assert_array_equal(model.predict(IDS), numpy.ones((5, 50)))


@pytest.mark.parametrize("ids,shown", [([0, 10], "from 0 to 10"), ([-1, 2], "from -1 to 2")])
def test_out_of_range_ids_name_the_layer_and_nV(ids, shown):
    model = Embed(4, 10).initialize()
    with pytest.raises(IdOutOfRangeError, match=rf"embed: ids must be in \[0, nV=10\), got ids {shown}") as info:
        model.predict(numpy.array(ids, dtype="int64"))
    assert isinstance(info.value, IndexError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "X,message",
    [
        (numpy.array([0.0, 1.0]), "expected an array of integer ids"),
        (numpy.zeros((3, 2), dtype="int32"), "expected a 1d array of ids"),
        ([1, 2], "expected an array of integer ids"),
    ],
)
def test_bad_inputs_are_clear_errors(X, message):
    with pytest.raises(ShapeMismatchError, match=f"embed: {message}"):
        Embed(4, 10).initialize().predict(X)


def test_serialization_round_trip():
    model = Embed(4, 10).initialize()
    fresh = Embed(4, 10).initialize()
    data = model.to_bytes()
    numpy.testing.assert_array_equal(fresh.from_bytes(data).predict(IDS), model.predict(IDS))
    assert fresh.to_bytes() == data


def test_empty_batch():
    model = Embed(4, 10).initialize()
    Y, backprop = model(numpy.zeros((0,), dtype="int32"), is_train=True)
    assert Y.shape == (0, 4)
    assert backprop(Y).shape == (0,)
    assert not model.get_grad("E").any()


@settings(max_examples=25, deadline=None)
@given(ids=st.lists(st.integers(0, 9), max_size=20))
def test_gradient_of_a_row_sums_the_gradients_of_its_occurrences(ids):
    model = Embed(3, 10).initialize()
    ids = numpy.array(ids, dtype="int64")
    dY = numpy.random.RandomState(len(ids)).uniform(-1, 1, (len(ids), 3)).astype("f")
    model.begin_update(ids)[1](dY)
    expected = numpy.zeros((10, 3), dtype="f")
    for i, row in enumerate(ids):
        expected[row] += dY[i]
    numpy.testing.assert_allclose(model.get_grad("E"), expected, rtol=1e-5, atol=1e-6)
