import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Ragged, reduce_first, reduce_last, reduce_max, reduce_mean, reduce_sum, registry
from composa.testing import check_gradients

ALL = [reduce_sum, reduce_mean, reduce_max, reduce_first, reduce_last]
POOLS = [reduce_sum, reduce_mean]  # the two that accept empty sequences


def ragged(lengths, width=3, dtype="float64", seed=0):
    rng = numpy.random.RandomState(seed)
    data = rng.uniform(-1, 1, (int(sum(lengths)), width)).astype(dtype)
    return Ragged(data, numpy.asarray(lengths, dtype="int32"))


def torch_reference(name, Xr):
    """Per-sequence pooling with torch: segment_reduce for sum/mean/max, indexing for first/last."""
    data = torch.tensor(Xr.data, requires_grad=True)
    lengths = torch.tensor(Xr.lengths, dtype=torch.int64)
    if name in ("sum", "mean", "max"):
        Y = torch.segment_reduce(data, name, lengths=lengths, axis=0, unsafe=True)
        if name == "mean":  # torch gives nan for empty sequences, composa gives zeros
            Y = torch.nan_to_num(Y)
    else:
        ends = torch.cumsum(lengths, 0)
        rows = ends - lengths if name == "first" else ends - 1
        Y = data[rows]
    return data, Y


@pytest.mark.parametrize("layer", ALL)
def test_matches_torch_forward_and_backward(layer):
    Xr = ragged([3, 1, 4, 2])
    name = layer.__name__.split("_")[1]
    model = layer()
    Y, backprop = model(Xr, is_train=True)
    data, Y_torch = torch_reference(name, Xr)
    numpy.testing.assert_allclose(Y, Y_torch.detach().numpy(), atol=1e-12)
    dY = numpy.random.uniform(-1, 1, Y.shape)
    dXr = backprop(dY)
    (Y_torch * torch.tensor(dY)).sum().backward()
    assert isinstance(dXr, Ragged)
    assert dXr.lengths.tolist() == Xr.lengths.tolist()
    numpy.testing.assert_allclose(dXr.data, data.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("layer", ALL)
def test_finite_difference_gradients(layer):
    check_gradients(layer(), ragged([2, 3, 1]))


@pytest.mark.parametrize("layer", POOLS)
def test_empty_sequences_pool_to_zero_rows(layer):
    Xr = ragged([2, 0, 3])
    Y, backprop = layer()(Xr, is_train=True)
    assert Y.shape == (3, 3) and not Y[1].any()
    dXr = backprop(numpy.ones_like(Y))
    assert dXr.data.shape == (5, 3) and dXr.lengths.tolist() == [2, 0, 3]


@pytest.mark.parametrize("layer", [reduce_max, reduce_first, reduce_last])
def test_empty_sequences_are_a_clear_error_where_there_is_no_row(layer):
    model = layer()
    kind = model.name.removeprefix("reduce_")  # max, first, last
    with pytest.raises(ValueError, match=rf"{model.name}: 1 of 3 sequences are empty, and an empty sequence has no {kind} row"):
        model.predict(ragged([2, 0, 3]))


@pytest.mark.parametrize("layer", ALL)
def test_empty_batch(layer):
    empty = Ragged(numpy.zeros((0, 4), dtype="f"), numpy.zeros((0,), dtype="int32"))
    Y, backprop = layer()(empty, is_train=True)
    assert Y.shape == (0, 4)
    dXr = backprop(Y)
    assert dXr.data.shape == (0, 4) and len(dXr.lengths) == 0


@pytest.mark.parametrize("layer", ALL)
def test_gradient_of_the_wrong_shape_or_dtype_is_a_clear_error(layer):
    model = layer()
    Y, backprop = model(ragged([2, 1], dtype="float32"), is_train=True)
    with pytest.raises(ValueError, match=rf"{model.name}: shape mismatch in backprop: the output was \(2, 3\)"):
        backprop(numpy.zeros((3, 3), dtype="f"))
    with pytest.raises(ValueError, match="type mismatch in backprop"):
        backprop(numpy.zeros((2, 3), dtype="float64"))


@pytest.mark.parametrize("layer", ALL)
def test_non_ragged_input_is_a_clear_error(layer):
    model = layer()
    with pytest.raises(ValueError, match=rf"{model.name}: expected a Ragged batch, got an array"):
        model.predict(numpy.zeros((2, 3), dtype="f"))


@pytest.mark.parametrize("layer", ALL)
def test_a_batch_of_one_sequence_gets_its_gradient(layer):
    check_gradients(layer(), ragged([3]))


@pytest.mark.parametrize("layer", ALL)
def test_zero_width_rows_get_a_zero_width_gradient_of_every_row(layer):
    Y, backprop = layer().begin_update(ragged([1, 2], width=0))
    assert Y.shape == (2, 0) and backprop(Y).data.shape == (3, 0)


@pytest.mark.parametrize("layer", ALL)
def test_integer_rows_are_a_clear_error(layer):
    model = layer()
    with pytest.raises(ValueError, match=rf"{model.name}: expected float data, got a Ragged of dtype int32"):
        model.predict(Ragged(numpy.ones((3, 2), dtype="int32"), numpy.asarray([1, 2], dtype="int32")))


def test_int64_lengths_are_accepted():
    Xr = Ragged(numpy.ones((3, 2), dtype="f"), numpy.asarray([1, 2], dtype="int64"))
    assert reduce_sum().predict(Xr).tolist() == [[1, 1], [2, 2]]


@pytest.mark.parametrize("layer", ALL)
def test_registered_and_serialisable(layer):
    model = registry.layers.get(f"{layer.__name__}.v1")()
    assert model.name == layer.__name__
    loaded = layer().from_bytes(model.to_bytes())
    Xr = ragged([2, 1])
    numpy.testing.assert_array_equal(loaded.predict(Xr), model.predict(Xr))


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(0, 6), max_size=8), width=st.integers(1, 4))
def test_sum_and_mean_agree_with_a_python_loop(lengths, width):
    """sum == mean * length for every sequence, and both match a per-sequence loop."""
    Xr = ragged(lengths, width)
    sums, means = reduce_sum().predict(Xr), reduce_mean().predict(Xr)
    start = 0
    for i, length in enumerate(lengths):
        rows = Xr.data[start : start + length]
        numpy.testing.assert_allclose(sums[i], rows.sum(axis=0), atol=1e-12)
        numpy.testing.assert_allclose(means[i], rows.mean(axis=0) if length else 0.0, atol=1e-12)
        start += length


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(1, 6), max_size=8))
def test_max_first_last_pick_rows_of_their_own_sequence(lengths):
    Xr = ragged(lengths, 2)
    maxes, firsts, lasts = (layer().predict(Xr) for layer in (reduce_max, reduce_first, reduce_last))
    ends = numpy.cumsum(lengths, dtype="int64")
    for i, length in enumerate(lengths):
        rows = Xr.data[ends[i] - length : ends[i]]
        numpy.testing.assert_array_equal(maxes[i], rows.max(axis=0))
        numpy.testing.assert_array_equal(firsts[i], rows[0])
        numpy.testing.assert_array_equal(lasts[i], rows[-1])
