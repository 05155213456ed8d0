"""HashEmbed: each id is the sum of 4 hashed table rows; compared with torch.nn.EmbeddingBag(mode="sum")."""
import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import HashEmbed, NumpyOps, registry
from composa.errors import ShapeMismatchError
from composa.layers.hashembed import DEFAULT_SEED
from composa.testing import check_gradients

IDS = numpy.array([12, 2**63 + 5, 12, 999999], dtype="uint64")


def hashed_rows(ids, seed, nV):
    return NumpyOps().hash(numpy.asarray(ids, dtype="uint64"), seed).astype("int64") % nV


def test_registered_as_hashembed_v1():
    assert registry.layers.get("HashEmbed.v1") is HashEmbed


def test_output_is_the_sum_of_the_four_hashed_rows():
    model = HashEmbed(5, 20, seed=3).initialize()
    E = model.get_param("E")
    numpy.testing.assert_allclose(model.predict(IDS), E[hashed_rows(IDS, 3, 20)].sum(axis=1), rtol=1e-6)


def test_default_seed_is_fixed_so_creation_order_does_not_matter():
    first = HashEmbed(5, 20).initialize()
    HashEmbed(5, 20)  # another model created in between changes nothing
    second = HashEmbed(5, 20).initialize()
    second.set_param("E", first.get_param("E").copy())
    assert first.attrs["seed"] == second.attrs["seed"] == DEFAULT_SEED == 0  # saved models rely on it
    numpy.testing.assert_array_equal(first.predict(IDS), second.predict(IDS))
    E = first.get_param("E")
    numpy.testing.assert_allclose(first.predict(IDS), E[hashed_rows(IDS, 0, 20)].sum(axis=1), rtol=1e-6)


def test_a_one_row_table_gives_every_id_four_times_that_row():
    model = HashEmbed(3, 1).initialize()
    numpy.testing.assert_allclose(model.predict(IDS), numpy.tile(4 * model.get_param("E")[0], (len(IDS), 1)), rtol=1e-6)


def test_matches_torch_embedding_bag():
    model = HashEmbed(5, 20, seed=1).initialize()
    model.set_param("E", model.get_param("E").astype("float64"))
    dY = numpy.random.RandomState(0).uniform(-1, 1, (4, 5))
    Y, backprop = model(IDS, is_train=True)
    backprop(dY)
    bag = torch.nn.EmbeddingBag(20, 5, mode="sum").double()
    with torch.no_grad():
        bag.weight.copy_(torch.from_numpy(model.get_param("E")))
    Y_torch = bag(torch.from_numpy(hashed_rows(IDS, 1, 20)))
    Y_torch.backward(torch.from_numpy(dY))
    numpy.testing.assert_allclose(Y, Y_torch.detach().numpy(), atol=1e-5)
    numpy.testing.assert_allclose(model.get_grad("E"), bag.weight.grad.numpy(), atol=1e-5)


def test_gradients_match_finite_differences():
    check_gradients(HashEmbed(3, 15).initialize(), IDS)


def test_column_picks_the_ids_of_a_2d_input():
    model = HashEmbed(5, 20, column=0).initialize()
    X = numpy.array([[12, 1], [7, 1]], dtype="int64")
    plain = HashEmbed(5, 20).initialize()
    plain.set_param("E", model.get_param("E"))
    numpy.testing.assert_array_equal(model.predict(X), plain.predict(X[:, 0].copy()))


def test_empty_batch_forward_and_backward():
    # The reference's backprop raises NameError after an empty batch.
    model = HashEmbed(5, 20).initialize()
    Y, backprop = model(numpy.zeros((0,), dtype="uint64"), is_train=True)
    assert Y.shape == (0, 5)
    assert backprop(Y).shape == (0,)
    assert not model.get_grad("E").any()


def test_dropout_is_applied_in_training_only():
    model = HashEmbed(40, 20, dropout=0.5).initialize()
    Y, _ = model(IDS, is_train=True)
    assert (Y == 0).any()
    assert (model.predict(IDS) != 0).all()


def test_bad_inputs_and_configuration_are_clear_errors():
    with pytest.raises(ShapeMismatchError, match="hashembed: expected an array of integer ids"):
        HashEmbed(5, 20).initialize().predict(numpy.array([1.5]))
    with pytest.raises(ValueError, match=r"nV \(table rows\) must be at least 1"):
        HashEmbed(5, 0)


def test_serialization_round_trip_keeps_the_seed():
    model = HashEmbed(5, 20, seed=11).initialize()
    fresh = HashEmbed(5, 20).initialize()
    data = model.to_bytes()
    fresh.from_bytes(data)
    assert fresh.attrs["seed"] == 11
    numpy.testing.assert_array_equal(fresh.predict(IDS), model.predict(IDS))
    assert fresh.to_bytes() == data


@settings(max_examples=25, deadline=None)
@given(ids=st.lists(st.integers(0, 2**64 - 1), max_size=12), seed=st.integers(0, 2**31))
def test_equal_ids_get_equal_vectors(ids, seed):
    model = HashEmbed(4, 30, seed=seed).initialize()
    ids = numpy.array(ids + ids, dtype="uint64")
    Y = model.predict(ids)
    half = len(ids) // 2
    numpy.testing.assert_array_equal(Y[:half], Y[half:])
