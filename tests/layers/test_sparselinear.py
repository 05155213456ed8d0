"""SparseLinear (v1 indexing) and SparseLinear_v2: hashed linear models over (keys, values, lengths)."""
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import NumpyOps, SparseLinear, SparseLinear_v2, registry
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients

KEYS = numpy.array([5, 17, 5, 2**40 + 3, 9], dtype="uint64")
VALUES = numpy.array([1.0, 0.5, 2.0, -1.0, 3.0], dtype="float32")
LENGTHS = numpy.array([2, 0, 3], dtype="int32")


def random_params(model, seed=0):
    rng = numpy.random.RandomState(seed)
    for name in ("W", "b"):
        model.set_param(name, rng.uniform(-1, 1, model.get_param(name).shape).astype("f"))
    return model


def reference_scores(model, keys, values, lengths):
    """The documented formula, one key at a time."""
    W, b = model.get_param("W"), model.get_param("b")
    nO, length = b.shape[0], model.get_dim("length")
    ops = NumpyOps()
    hashes = [ops.hash(keys, seed)[:, 0].astype("int64") for seed in (0, 1)]
    scores = numpy.tile(b, (len(lengths), 1)).astype("float64")
    example = numpy.repeat(numpy.arange(len(lengths)), lengths)
    for i in range(len(keys)):
        for c in range(nO):
            for h in hashes:
                if model.attrs["v1_indexing"]:
                    index = (h[i] & (length - 1)) + c
                else:
                    index = c * length + h[i] % length
                scores[example[i], c] += values[i] * W[index]
    return scores


@pytest.mark.parametrize("factory,registered", [(SparseLinear, "SparseLinear.v1"), (SparseLinear_v2, "SparseLinear.v2")])
def test_registered_names(factory, registered):
    assert registry.layers.get(registered) is factory


@pytest.mark.parametrize("factory", [SparseLinear, SparseLinear_v2])
def test_scores_follow_the_hashed_formula(factory):
    model = random_params(factory(3, length=16).initialize())
    Y = model.predict((KEYS, VALUES, LENGTHS))
    assert Y.shape == (3, 3)
    numpy.testing.assert_allclose(Y, reference_scores(model, KEYS, VALUES, LENGTHS), rtol=1e-5)


def test_v2_uses_a_separate_block_of_weights_per_class():
    model = SparseLinear_v2(2, length=8).initialize()
    W = model.get_param("W")
    W[8:] = 1.0  # only class 1's block
    Y = model.predict((KEYS[:1], numpy.ones(1, "f"), numpy.array([1], "int32")))
    numpy.testing.assert_allclose(Y, [[0.0, 2.0]])


def test_initialize_takes_nO_from_Y_and_starts_at_zero():
    model = SparseLinear_v2(length=8).initialize(Y=numpy.zeros((3, 4), dtype="f"))
    assert model.get_param("W").shape == (32,)
    assert not model.get_param("W").any()


@pytest.mark.parametrize("factory", [SparseLinear, SparseLinear_v2])
def test_gradients_match_finite_differences(factory):
    model = random_params(factory(3, length=16).initialize())
    # Like the reference, backprop returns the input unchanged (sparse features get no gradient).
    check_gradients(model, (KEYS, VALUES, LENGTHS), check_input=False)
    _, backprop = model((KEYS, VALUES, LENGTHS), is_train=True)
    assert backprop(numpy.ones((3, 3), dtype="f"))[0] is KEYS


@pytest.mark.parametrize(
    "X,message",
    [
        ((KEYS, VALUES[:4], LENGTHS), "keys and values must have the same length, got 5 keys and 4 values"),
        ((KEYS, VALUES, numpy.array([2, 2], "int32")), "lengths sum to 4 but there are 5 keys"),
        ((KEYS, VALUES, numpy.array([6, -1], "int32")), "lengths must be non-negative"),
        ((KEYS.astype("float64"), VALUES, LENGTHS), "keys must be a 1d integer array"),
        ((KEYS, VALUES.astype("U3"), LENGTHS), "values must be a 1d float array"),
        ((KEYS, VALUES, LENGTHS.astype("float32")), "lengths must be a 1d integer array"),
        ((KEYS, VALUES), r"expected a \(keys, values, lengths\) tuple"),
    ],
)
def test_bad_inputs_are_clear_errors(X, message):
    with pytest.raises(ShapeMismatchError, match=f"sparse_linear: {message}"):
        SparseLinear_v2(3, length=16).initialize().predict(X)


def test_serialization_round_trip():
    model = random_params(SparseLinear_v2(3, length=16).initialize())
    fresh = SparseLinear_v2(3, length=16).initialize()
    data = model.to_bytes()
    numpy.testing.assert_array_equal(fresh.from_bytes(data).predict((KEYS, VALUES, LENGTHS)), model.predict((KEYS, VALUES, LENGTHS)))
    assert fresh.to_bytes() == data


@pytest.mark.parametrize("lengths", [[], [0, 0]])
def test_empty_batch_and_examples_without_features(lengths):
    model = random_params(SparseLinear_v2(3, length=16).initialize())
    lengths = numpy.array(lengths, dtype="int32")
    X = (numpy.zeros((0,), "uint64"), numpy.zeros((0,), "f"), lengths)
    Y, backprop = model(X, is_train=True)
    numpy.testing.assert_array_equal(Y, numpy.tile(model.get_param("b"), (len(lengths), 1)))
    backprop(Y)
    assert not model.get_grad("W").any()


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(0, 4), max_size=5), seed=st.integers(0, 1000))
def test_scores_are_linear_in_the_values(lengths, seed):
    rng = numpy.random.RandomState(seed)
    lengths = numpy.array(lengths, dtype="int32")
    keys = rng.randint(0, 2**62, int(lengths.sum()), dtype="int64").astype("uint64")
    values = rng.uniform(-1, 1, keys.shape[0]).astype("f")
    model = random_params(SparseLinear_v2(2, length=32).initialize(), seed)
    b = model.get_param("b")
    once = model.predict((keys, values, lengths)) - b
    twice = model.predict((keys, 2 * values, lengths)) - b
    numpy.testing.assert_allclose(twice, 2 * once, rtol=1e-4, atol=1e-5)
