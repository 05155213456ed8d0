"""Behaviours that seeded bugs slipped past (issue 19): each test fails when its behaviour breaks.

Every test here was first run against a deliberately broken copy of the line it guards.
"""

import numpy
import pytest

from composa import (
    ArgsKwargs,
    ConfigurationError,
    CosineDistance,
    Dropout,
    HashEmbed,
    LSTM,
    Linear,
    Maxout,
    Model,
    NumpyOps,
    Padded,
    PyTorchWrapper,
    Relu,
    SerializationError,
    ShapeMismatchError,
    chain,
    registry,
    with_padded,
)
from composa.model_io import FORMAT_VERSION

torch = pytest.importorskip("torch")


def rows(*values):
    return numpy.asarray(values, dtype="float32")


def identity_forward(model, X, is_train):
    return model.layers[0](X, is_train)


# Loading is all or nothing, also when applying fails -------------------------------------


def test_a_load_that_fails_while_applying_leaves_the_native_params_as_they_were():
    torch.manual_seed(0)
    target = chain(Linear(2, 2), PyTorchWrapper(torch.nn.Linear(2, 2))).initialize()
    source = chain(Linear(2, 2), PyTorchWrapper(torch.nn.Linear(2, 3))).initialize()  # its torch state cannot fit
    W_before = target.layers[0].get_param("W").copy()
    torch_before = target.layers[1].shims[0]._model.weight.detach().clone()
    with pytest.raises(SerializationError):
        target.from_bytes(source.to_bytes())
    numpy.testing.assert_array_equal(target.layers[0].get_param("W"), W_before)
    assert torch.equal(target.layers[1].shims[0]._model.weight, torch_before)


def test_a_saved_param_of_another_shape_is_refused_even_when_the_dims_agree():
    model = Linear(2, 3).initialize()
    document = model.to_dict()
    document["params"][0]["b"] = numpy.zeros((5,), dtype="float32")  # dims still say nO=2
    prediction = model.predict(rows([1.0, 2.0, 3.0]))
    with pytest.raises(SerializationError, match="param 'b'"):
        model.from_dict(document)
    numpy.testing.assert_array_equal(model.predict(rows([1.0, 2.0, 3.0])), prediction)


def test_integer_params_of_the_right_shape_do_not_load_into_an_uninitialised_model():
    document = Linear(2, 3).initialize().to_dict()
    document["params"][0]["W"] = document["params"][0]["W"].astype("int32")
    fresh = Linear(2, 3)
    with pytest.raises(SerializationError, match="not a float array"):
        fresh.from_dict(document)
    assert not fresh.has_param("W")


def test_the_next_format_version_is_refused_not_only_far_future_ones():
    model = Linear(2, 2).initialize()
    document = model.to_dict()
    document["composa"] = FORMAT_VERSION + 1
    assert not model.can_from_dict(document)
    with pytest.raises(SerializationError, match="format version"):
        model.from_dict(document)


def test_a_ref_to_one_past_the_last_node_is_refused_by_can_from_bytes_too():
    child = Linear(2, 2)
    model = Model("outer", identity_forward, layers=[child], refs={"target": child}).initialize(rows([1.0, 2.0]))
    document = model.to_dict()
    assert document["nodes"][0]["refs"] == {"target": 1}
    document["nodes"][0]["refs"]["target"] = len(document["nodes"])
    assert not model.can_from_dict(document)
    with pytest.raises(SerializationError):
        model.from_dict(document)


# State that must stay independent -------------------------------------------------------


def test_backprop_on_a_copy_does_not_add_into_the_original_gradients():
    original = Linear(2, 2).initialize()
    _, backprop = original.begin_update(rows([1.0, 2.0]))
    backprop(rows([1.0, 1.0]))
    gradient_before = original.get_grad("W").copy()
    copy = original.copy()
    _, backprop_copy = copy.begin_update(rows([1.0, 2.0]))
    backprop_copy(rows([1.0, 1.0]))
    numpy.testing.assert_array_equal(copy.get_grad("W"), 2 * gradient_before)
    numpy.testing.assert_array_equal(original.get_grad("W"), gradient_before)


def test_finish_update_keeps_the_array_a_functional_optimizer_returns():
    model = Linear(2, 2).initialize()
    _, backprop = model.begin_update(rows([1.0, 2.0]))
    backprop(rows([1.0, 1.0]))
    expected = model.get_param("W") - model.get_grad("W")

    def functional_sgd(key, param, grad):
        return param - grad, numpy.zeros_like(grad)  # new arrays; the inputs are left alone

    model.finish_update(functional_sgd)
    numpy.testing.assert_allclose(model.get_param("W"), expected)


def test_the_torch_shim_clears_input_gradients_between_two_backprops_of_one_graph():
    shim = PyTorchWrapper(torch.nn.Linear(2, 2)).shims[0]
    inputs = torch.ones((3, 2), requires_grad=True)
    output, backprop = shim.begin_update(ArgsKwargs(args=(inputs,), kwargs={}))
    gradient = ArgsKwargs(args=(output,), kwargs={"grad_tensors": torch.ones((3, 2)), "retain_graph": True})
    first = backprop(gradient).args[0].clone()
    second = backprop(gradient).args[0]
    assert torch.equal(first, second)


# Training mode means training -----------------------------------------------------------


def test_begin_update_drops_units_and_predict_does_not():
    dropout = Dropout(0.5).initialize()
    X = numpy.ones((100, 100), dtype="float32")
    Y, _ = dropout.begin_update(X)
    dropped = float((Y == 0).mean())
    assert 0.4 < dropped < 0.6
    numpy.testing.assert_array_equal(dropout.predict(X), X)


def test_a_chain_trained_with_dropout_sees_the_dropped_units():
    model = chain(Relu(50, 50), Dropout(0.9)).initialize()
    X = numpy.ones((20, 50), dtype="float32")
    assert float((model.begin_update(X)[0] == 0).mean()) > 0.8


# Adapters run their backprop for every input form ---------------------------------------


def test_with_padded_on_a_4_tuple_returns_gradients_in_the_same_order():
    model = with_padded(LSTM(2, 3)).initialize()
    data = numpy.arange(12, dtype="float32").reshape((2, 2, 3))
    size_at_t = numpy.asarray([2, 1], dtype="int32")
    lengths = numpy.asarray([2, 1], dtype="int32")
    indices = numpy.asarray([1, 0], dtype="int32")
    Y, backprop = model.begin_update((data, size_at_t, lengths, indices))
    assert Y[0].shape == (2, 2, 2)
    dX = backprop((numpy.ones_like(Y[0]), size_at_t, lengths, indices))
    assert isinstance(dX, tuple) and len(dX) == 4
    assert dX[0].shape == data.shape
    numpy.testing.assert_array_equal(dX[1], size_at_t)
    numpy.testing.assert_array_equal(dX[2], lengths)
    numpy.testing.assert_array_equal(dX[3], indices)
    expected = backprop_of_padded(model, Padded(data, size_at_t, lengths, indices))
    numpy.testing.assert_allclose(dX[0], expected)


def backprop_of_padded(model, Xp):
    Yp, backprop = model.begin_update(Xp)
    return backprop(Padded(numpy.ones_like(Yp.data), Yp.size_at_t, Yp.lengths, Yp.indices)).data


# Losses at their edges ------------------------------------------------------------------


def test_cosine_distance_clamps_tiny_norms_like_torch():
    guesses = rows([1e-10, 0.0], [3.0, 4.0])
    truths = rows([1.0, 0.0], [4.0, 3.0])
    loss = CosineDistance(normalize=False)
    torch_guesses = torch.tensor(guesses, requires_grad=True)
    expected = torch.nn.functional.cosine_similarity(torch_guesses, torch.tensor(truths), dim=1, eps=1e-8)
    (1 - expected).sum().backward()
    numpy.testing.assert_allclose(loss.get_similarity(guesses, truths).ravel(), expected.detach().numpy(), rtol=1e-5)
    assert loss.get_similarity(guesses, truths)[0, 0] == pytest.approx(0.01, rel=1e-4)
    gradient = loss.get_grad(guesses, truths)
    numpy.testing.assert_allclose(gradient[1], torch_guesses.grad.numpy()[1], rtol=1e-5)
    # below the clamp the guess norm is the constant eps: d cos / d g = truth / (eps * |truth|)
    assert gradient[0, 0] == pytest.approx(-1e8, rel=1e-3)


# Gaps the mutation check (tools/mutation.py) found ------------------------------------


def test_dropout_backprop_on_a_list_refuses_a_different_number_of_gradients():
    dropout = Dropout(0.5).initialize()
    _, backprop = dropout.begin_update([numpy.ones((2, 3), dtype="float32")] * 2)
    with pytest.raises(ShapeMismatchError, match="backprop expected 2 gradients"):
        backprop([numpy.ones((2, 3), dtype="float32")])


def test_categorical_crossentropy_from_the_registry_normalizes_by_default():
    loss = registry.get("losses", "CategoricalCrossentropy.v3")()
    guesses = rows([0.5, 0.5], [0.5, 0.5])
    gradient = loss.get_grad(guesses, numpy.asarray([0, 1]))
    numpy.testing.assert_allclose(gradient, rows([-0.25, 0.25], [0.25, -0.25]))


def test_categorical_crossentropy_takes_one_hot_rows_like_class_ids_and_refuses_other_values():
    loss = registry.get("losses", "CategoricalCrossentropy.v3")()
    guesses = rows([0.7, 0.3], [0.2, 0.8])
    from_ids = loss.get_grad(guesses, numpy.asarray([0, 1]))
    numpy.testing.assert_allclose(loss.get_grad(guesses, rows([1.0, 0.0], [0.0, 1.0])), from_ids)
    with pytest.raises(ConfigurationError, match=r"truth rows must hold values in \[0, 1\]"):
        loss.get_grad(guesses, rows([2.0, 0.0], [0.0, 1.0]))


def test_a_one_hot_row_of_missing_values_is_masked_out():
    loss = registry.get("losses", "CategoricalCrossentropy.v3")(missing_value=-1)
    gradient = loss.get_grad(rows([0.7, 0.3], [0.2, 0.8]), rows([1.0, 0.0], [-1.0, -1.0]))
    assert gradient[1].tolist() == [0.0, 0.0] and gradient[0].any()


def test_hash_embed_sums_the_four_rows_its_ids_hash_to_with_seed_zero_by_default():
    embed = HashEmbed(3, 50).initialize()
    ids = numpy.asarray([1, 7, 2**40], dtype="uint64")
    assert embed.attrs["seed"] == 0
    rows_of_ids = embed.ops.hash(ids, 0) % 50
    expected = embed.get_param("E")[rows_of_ids.astype("int64")].sum(axis=1)
    numpy.testing.assert_allclose(embed.predict(ids), expected, rtol=1e-6)


def test_hash_embed_takes_a_one_row_table_but_not_an_empty_one():
    assert HashEmbed(3, 1).initialize().predict(numpy.asarray([5], dtype="uint64")).shape == (1, 3)
    with pytest.raises(ConfigurationError, match="nV"):
        HashEmbed(3, 0)


def test_maxout_takes_three_pieces_by_default_as_thinc_does():
    assert Maxout(4, 3).get_dim("nP") == 3


def test_compiled_backprop_softmax_uses_the_row_width_of_a_non_square_batch():
    pytest.importorskip("numba")
    Y = NumpyOps().softmax(numpy.random.default_rng(0).normal(size=(3, 5)).astype("float32"))
    dY = numpy.random.default_rng(1).normal(size=(3, 5)).astype("float32")
    compiled = NumpyOps(kernels="numba").backprop_softmax(Y, dY)
    numpy.testing.assert_allclose(compiled, NumpyOps(kernels="numpy").backprop_softmax(Y, dY), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_adam_without_a_mod_rate_steps_as_with_mod_rate_one(kernels):
    if kernels == "numba":
        pytest.importorskip("numba")
    ops = NumpyOps(kernels=kernels)

    def step(**mod_rate):
        weights, gradient = numpy.ones(6, dtype="float32"), numpy.full(6, 0.5, dtype="float32")
        mom1, mom2 = numpy.zeros(6, dtype="float32"), numpy.zeros(6, dtype="float32")
        return ops.adam(weights, gradient, mom1, mom2, 0.9, 0.999, 1e-8, 0.1, **mod_rate)[0]

    numpy.testing.assert_array_equal(step(), step(mod_rate=1.0))
    assert not numpy.array_equal(step(), step(mod_rate=2.0))
