"""PyTorch state dicts: whole models under stable keys, single layers under torch modules' names."""
import numpy
import pytest

from composa import (
    LSTM,
    Embed,
    LayerNorm,
    Linear,
    Maxout,
    Padded,
    Relu,
    SerializationError,
    Softmax,
    chain,
    from_state_dict,
    load_torch_state_dict,
    to_state_dict,
    torch_state_dict,
)
from composa.errors import ConfigurationError

torch = pytest.importorskip("torch")
rng = numpy.random.default_rng(0)


def floats(*shape):
    return rng.normal(0, 1, shape).astype("float32")


def mlp():
    model = chain(Relu(4), LayerNorm(), Softmax(3))
    return model.initialize(X=floats(2, 5), Y=numpy.zeros((2, 3), "float32"))


def test_the_keys_are_walk_index_node_name_and_param_name():
    assert list(to_state_dict(mlp())) == [
        "1.relu.W", "1.relu.b", "2.layernorm.G", "2.layernorm.b", "3.softmax.W", "3.softmax.b",
    ]


def test_a_state_dict_moves_the_weights_to_another_model_built_by_the_same_code():
    source, target = mlp(), mlp()
    for node in source.walk():
        for name in node.param_names:
            node.set_param(name, floats(*node.get_param(name).shape))
    state = to_state_dict(source)
    assert all(isinstance(tensor, torch.Tensor) for tensor in state.values())
    X = floats(6, 5)
    assert not numpy.allclose(target.predict(X), source.predict(X))
    from_state_dict(target, state)
    numpy.testing.assert_array_equal(target.predict(X), source.predict(X))


def test_to_state_dict_copies_so_later_training_does_not_change_it():
    model = mlp()
    state = to_state_dict(model)
    model.layers[0].get_param("W")[...] += 1
    assert not numpy.allclose(state["1.relu.W"].numpy(), model.layers[0].get_param("W"))


def test_missing_and_unexpected_keys_are_all_listed_and_nothing_is_loaded():
    model = mlp()
    before = {key: tensor.clone() for key, tensor in to_state_dict(model).items()}
    state = {key: tensor + 1 for key, tensor in before.items()}
    del state["2.layernorm.G"], state["3.softmax.b"]
    state["9.relu.W"] = torch.zeros(4, 5)
    with pytest.raises(SerializationError) as error:
        from_state_dict(model, state)
    message = str(error.value)
    assert "missing keys ['2.layernorm.G', '3.softmax.b']" in message
    assert "unexpected keys ['9.relu.W']" in message
    assert all(torch.equal(before[key], tensor) for key, tensor in to_state_dict(model).items())


def test_a_wrong_shape_or_dtype_is_refused_before_anything_is_written():
    model = mlp()
    before = to_state_dict(model)
    wrong_shape = {**{key: tensor + 1 for key, tensor in before.items()}, "3.softmax.W": torch.zeros(3, 5)}
    with pytest.raises(SerializationError, match=r"node 3 \('softmax'\): param 'W' is \(3, 4\) float32 in the model"):
        from_state_dict(model, wrong_shape)
    wrong_dtype = {**before, "1.relu.b": before["1.relu.b"].double()}
    with pytest.raises(SerializationError, match="float64"):
        from_state_dict(model, wrong_dtype)
    assert all(torch.equal(before[key], tensor) for key, tensor in to_state_dict(model).items())


def test_an_unallocated_param_cannot_be_saved():
    with pytest.raises(SerializationError, match=r"'0.relu.W'.*initialize"):
        to_state_dict(Relu(3))


def test_a_composa_linear_initialised_from_a_trained_torch_linear_gives_its_outputs():
    torch_linear = torch.nn.Linear(5, 4)
    layer = load_torch_state_dict(Linear(), torch_linear)
    assert (layer.get_dim("nO"), layer.get_dim("nI")) == (4, 5)
    X = floats(7, 5)
    expected = torch_linear(torch.from_numpy(X)).detach().numpy()
    numpy.testing.assert_allclose(layer.predict(X), expected, atol=1e-6)
    assert set(torch_state_dict(layer)) == {"weight", "bias"}
    torch.nn.Linear(5, 4).load_state_dict(torch_state_dict(layer))


def test_a_dense_layer_maps_to_linear_followed_by_its_activation():
    torch_linear = torch.nn.Linear(5, 4)
    layer = load_torch_state_dict(Relu(), torch_linear)
    X = floats(7, 5)
    expected = torch.relu(torch_linear(torch.from_numpy(X))).detach().numpy()
    numpy.testing.assert_allclose(layer.predict(X), expected, atol=1e-6)


def test_layernorm_maps_to_torch_layernorm_with_composas_epsilon():
    torch_norm = torch.nn.LayerNorm(6, eps=1e-8)
    with torch.no_grad():
        torch_norm.weight.normal_()
        torch_norm.bias.normal_()
    layer = load_torch_state_dict(LayerNorm(), torch_norm)
    X = floats(5, 6) * 3
    numpy.testing.assert_allclose(layer.predict(X), torch_norm(torch.from_numpy(X)).detach().numpy(), atol=1e-5)


def test_embed_maps_to_torch_embedding():
    torch_embedding = torch.nn.Embedding(10, 4)
    layer = load_torch_state_dict(Embed(), torch_embedding)
    ids = numpy.asarray([0, 3, 9, 3])
    expected = torch_embedding(torch.from_numpy(ids)).detach().numpy()
    numpy.testing.assert_array_equal(layer.predict(ids), expected)
    torch.nn.Embedding(10, 4).load_state_dict(torch_state_dict(layer))


@pytest.mark.parametrize("bi,depth", [(False, 1), (True, 2)])
def test_a_composa_lstm_initialised_from_a_trained_torch_lstm_gives_its_outputs(bi, depth):
    torch_lstm = torch.nn.LSTM(5, 3, depth, bidirectional=bi)
    layer = LSTM(6 if bi else 3, 5, bi=bi, depth=depth).initialize()
    layer.set_param("HC0", layer.get_param("HC0") + 1)  # reset to torch's zero state by loading
    load_torch_state_dict(layer, torch_lstm)
    data = floats(4, 2, 5)
    X = Padded(data, numpy.asarray([2, 2, 2, 2], "int32"), numpy.asarray([4, 4], "int32"), numpy.arange(2, dtype="int32"))
    expected = torch_lstm(torch.from_numpy(data))[0].detach().numpy()
    numpy.testing.assert_allclose(layer.predict(X).data, expected, atol=1e-5)
    assert set(torch_state_dict(layer)) == set(torch_lstm.state_dict())


def test_a_torch_state_dict_of_another_module_lists_what_does_not_fit():
    layer = Linear(4, 5).initialize()
    W = layer.get_param("W").copy()
    with pytest.raises(SerializationError, match=r"missing keys \['bias'\]; unexpected keys \['weight_ih_l0'"):
        load_torch_state_dict(layer, {"weight": torch.zeros(4, 5), "weight_ih_l0": torch.zeros(1)})
    with pytest.raises(SerializationError, match="dimension 'nO' is 4 in the model but 3"):
        load_torch_state_dict(layer, torch.nn.Linear(5, 3))
    numpy.testing.assert_array_equal(layer.get_param("W"), W)


def test_a_layer_torch_does_not_have_is_refused():
    with pytest.raises(ConfigurationError, match="maxout: no torch module holds params"):
        torch_state_dict(Maxout(3, 4).initialize())
