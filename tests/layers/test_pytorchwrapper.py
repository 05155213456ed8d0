"""PyTorchWrapper and friends: torch modules as composa layers, trained by composa."""
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from composa import (  # noqa: E402
    Adam,
    ArgsKwargs,
    Model,
    Padded,
    PyTorchLSTM,
    PyTorchRNNWrapper,
    PyTorchWrapper,
    PyTorchWrapper_v2,
    PyTorchWrapper_v3,
    Relu,
    Softmax,
    TorchScriptWrapper_v1,
    chain,
    pytorch_to_torchscript_wrapper,
    registry,
)
from composa.backends import NumpyOps  # noqa: E402
from composa.compat import has_cupy_gpu, has_torch_cuda_gpu  # noqa: E402
from composa.errors import ConfigurationError, SerializationError, ShapeMismatchError  # noqa: E402
from composa.layers.pytorchwrapper import convert_pytorch_default_inputs, convert_pytorch_default_outputs  # noqa: E402
from composa.shims import PyTorchGradScaler, PyTorchShim, TorchScriptShim  # noqa: E402
from composa.shims.pytorch import PyTorchModuleError  # noqa: E402
from composa.testing import check_gradients  # noqa: E402


def mlp(seed: int = 0, n_in: int = 6, n_hidden: int = 8, n_out: int = 4) -> "torch.nn.Module":
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(n_in, n_hidden), torch.nn.Tanh(), torch.nn.Linear(n_hidden, n_out)
    )


def batch(rows: int = 5, width: int = 6, seed: int = 0, dtype: str = "float32") -> numpy.ndarray:
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype(dtype)


def sgd(learn_rate: float):
    def update(key, param, grad):
        return param - learn_rate * grad, grad

    return update


# Construction and registry ---------------------------------------------------------------


def test_wrapper_holds_one_shim_and_no_composa_params():
    model = PyTorchWrapper(mlp())
    assert model.name == "pytorch"
    assert len(model.shims) == 1 and isinstance(model.shims[0], PyTorchShim)
    assert model.param_names == ()
    assert model.dim_names == ("nI", "nO")


def test_versions_share_one_implementation_and_are_registered():
    assert PyTorchWrapper is PyTorchWrapper_v2 is PyTorchWrapper_v3
    for version in ("v1", "v2", "v3"):
        assert registry.layers.get(f"PyTorchWrapper.{version}") is PyTorchWrapper_v3
    assert registry.layers.get("PyTorchRNNWrapper.v1") is PyTorchRNNWrapper
    assert registry.layers.get("PyTorchLSTM.v1") is PyTorchLSTM


def test_wrapper_builds_from_a_config():
    config = {"model": {"@layers": "PyTorchWrapper.v1", "pytorch_model": mlp()}}
    model = registry.resolve(config)["model"]
    assert model.predict(batch()).shape == (5, 4)


# Forward and backward ------------------------------------------------------------------


def test_outputs_and_gradients_equal_pure_pytorch():
    model = PyTorchWrapper(mlp(seed=1))
    reference = mlp(seed=1)
    X = batch(rows=7)
    dY = batch(rows=7, width=4, seed=1)
    Y, backprop = model(X, is_train=True)
    dX = backprop(dY)

    X_torch = torch.tensor(X, requires_grad=True)
    Y_torch = reference(X_torch)
    Y_torch.backward(torch.tensor(dY))
    numpy.testing.assert_allclose(Y, Y_torch.detach().numpy(), rtol=1e-6)
    numpy.testing.assert_allclose(dX, X_torch.grad.numpy(), rtol=1e-6)
    wrapped = model.shims[0]._model
    for (name, param), (_, ref_param) in zip(wrapped.named_parameters(), reference.named_parameters()):
        numpy.testing.assert_allclose(param.grad.numpy(), ref_param.grad.numpy(), rtol=1e-6, err_msg=name)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(0, 9), width=st.integers(1, 6), n_out=st.integers(1, 5), seed=st.integers(0, 1000))
def test_any_batch_matches_the_module_forward_and_input_gradient(rows, width, n_out, seed):
    module = mlp(seed=seed, n_in=width, n_out=n_out)
    model = PyTorchWrapper(module)
    X = batch(rows=rows, width=width, seed=seed)
    Y, backprop = model(X, is_train=True)
    assert Y.shape == (rows, n_out) and Y.dtype == numpy.float32
    X_torch = torch.tensor(X, requires_grad=True)
    module(X_torch).sum().backward()
    dX = backprop(numpy.ones_like(Y))
    numpy.testing.assert_allclose(dX, X_torch.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_finite_difference_gradient_check_in_float64():
    model = PyTorchWrapper(mlp(seed=2).double())
    check_gradients(model, batch(rows=4, dtype="float64"))


def test_empty_batch():
    model = PyTorchWrapper(mlp())
    Y, backprop = model(numpy.zeros((0, 6), dtype="float32"), is_train=True)
    assert Y.shape == (0, 4)
    assert backprop(Y).shape == (0, 6)
    assert model.predict(numpy.zeros((0, 6), dtype="float32")).shape == (0, 4)


def test_a_wrong_input_width_names_the_layer_and_the_shape():
    model = PyTorchWrapper(mlp())
    with pytest.raises(PyTorchModuleError, match=r"pytorch: .*Sequential.*\(5, 3\)") as info:
        model.predict(batch(width=3))
    assert isinstance(info.value, RuntimeError)


def test_a_wrong_gradient_shape_names_the_layer():
    model = PyTorchWrapper(mlp())
    Y, backprop = model(batch(), is_train=True)
    with pytest.raises(ShapeMismatchError, match=r"pytorch: .*\(5, 4\)"):
        backprop(numpy.ones((5, 2), dtype="float32"))


def test_backprop_of_a_prediction_is_refused():
    model = PyTorchWrapper(mlp())
    _, backprop = model(batch(), is_train=False)
    with pytest.raises(ConfigurationError, match="is_train=False"):
        backprop(numpy.ones((5, 4), dtype="float32"))


def test_predict_puts_the_module_back_in_its_mode():
    module = mlp()
    model = PyTorchWrapper(module)
    module.eval()
    model.begin_update(batch())
    assert not module.training
    module.train()
    model.predict(batch())
    assert module.training


class TwoInputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, a, b):
        return self.scale * a + b * b


@pytest.mark.parametrize(
    "pack,unpack",
    [
        (lambda a, b: [a, b], lambda d: d),
        (lambda a, b: (a, b), lambda d: d),
        (lambda a, b: {"a": a, "b": b}, lambda d: (d["a"], d["b"])),
        (lambda a, b: ArgsKwargs(args=(a,), kwargs={"b": b}), lambda d: (d.args[0], d.kwargs["b"])),
    ],
    ids=["list", "tuple", "dict", "argskwargs"],
)
def test_structured_inputs_become_args_and_kwargs(pack, unpack):
    model = PyTorchWrapper(TwoInputs())
    a, b = batch(rows=2, width=3, seed=1), batch(rows=2, width=3, seed=2)
    Y, backprop = model(pack(a, b), is_train=True)
    numpy.testing.assert_allclose(Y, 2.0 * a + b * b, rtol=1e-6)
    d_a, d_b = unpack(backprop(numpy.ones_like(Y)))
    numpy.testing.assert_allclose(d_a, numpy.full_like(a, 2.0))
    numpy.testing.assert_allclose(d_b, 2.0 * b, rtol=1e-6)


def test_integer_inputs_pass_through_without_gradients():
    torch.manual_seed(0)
    model = PyTorchWrapper(torch.nn.Embedding(10, 3))
    ids = numpy.asarray([1, 4, 4, 9], dtype="int64")
    Y, backprop = model(ids, is_train=True)
    assert Y.shape == (4, 3)
    backprop(numpy.ones_like(Y))
    embedding_grad = model.shims[0]._model.weight.grad.numpy()
    numpy.testing.assert_allclose(embedding_grad[4], [2.0, 2.0, 2.0])


class TwoHeads(torch.nn.Module):
    """A module with several outputs: a tuple, or a dict when `as_dict`."""

    def __init__(self, as_dict: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(6, 3)
        self.as_dict = as_dict

    def forward(self, X):
        Y = self.linear(X)
        return {"first": Y, "second": torch.tanh(Y)} if self.as_dict else (Y, torch.tanh(Y))


@pytest.mark.parametrize("as_dict", [False, True])
def test_a_module_with_several_outputs_backprops_through_each(as_dict):
    X, dY1, dY2 = batch(), batch(width=3, seed=1), batch(width=3, seed=2)
    Y, backprop = PyTorchWrapper(TwoHeads(as_dict)).begin_update(X)
    dX = backprop({"first": dY1, "second": dY2} if as_dict else (dY1, dY2))
    reference, Xtorch = TwoHeads(as_dict), torch.tensor(X, requires_grad=True)
    outputs = reference(Xtorch)
    outputs = (outputs["first"], outputs["second"]) if as_dict else outputs
    torch.autograd.backward(outputs, (torch.tensor(dY1), torch.tensor(dY2)))
    numpy.testing.assert_allclose(dX, Xtorch.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_a_none_gradient_skips_that_output():
    X, dY = batch(), batch(width=3, seed=1)
    _, backprop = PyTorchWrapper(TwoHeads()).begin_update(X)
    dX = backprop((dY, None))
    Xtorch = torch.tensor(X, requires_grad=True)
    TwoHeads()(Xtorch)[0].backward(torch.tensor(dY))
    numpy.testing.assert_allclose(dX, Xtorch.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_gradients_shaped_unlike_the_outputs_name_the_layer():
    _, backprop = PyTorchWrapper(TwoHeads()).begin_update(batch())
    with pytest.raises(ShapeMismatchError, match="pytorch"):
        backprop((batch(width=3),))


def test_custom_converters_are_used():
    calls = []

    def convert_inputs(model, X, is_train):
        calls.append("in")
        tensor = torch.tensor(X * 2, requires_grad=is_train)
        return ArgsKwargs(args=(tensor,), kwargs={}), lambda d: d.args[0].numpy() * 2

    def convert_outputs(model, X_Ytorch, is_train):
        calls.append("out")
        _, Ytorch = X_Ytorch
        return Ytorch.detach().numpy(), lambda dY: ArgsKwargs(
            args=((Ytorch,),), kwargs={"grad_tensors": (torch.tensor(dY),)}
        )

    model = PyTorchWrapper(torch.nn.Identity(), convert_inputs=convert_inputs, convert_outputs=convert_outputs)
    Y, backprop = model(numpy.ones((2, 2), dtype="f"), is_train=True)
    numpy.testing.assert_array_equal(Y, numpy.full((2, 2), 2.0))
    numpy.testing.assert_array_equal(backprop(numpy.ones((2, 2), dtype="f")), numpy.full((2, 2), 2.0))
    assert calls == ["in", "out"]


def test_mixed_precision_on_cpu_gives_float32_arrays_close_to_full_precision():
    full = PyTorchWrapper(mlp(seed=3))
    mixed = PyTorchWrapper_v2(mlp(seed=3), mixed_precision=True, device="cpu")
    X = batch(rows=8)
    Y_mixed, backprop = mixed(X, is_train=True)
    assert Y_mixed.dtype == numpy.float32
    numpy.testing.assert_allclose(Y_mixed, full.predict(X), atol=0.05)
    dX = backprop(numpy.ones_like(Y_mixed))
    assert dX.dtype == numpy.float32 and dX.shape == X.shape


# Training ----------------------------------------------------------------------------------


def test_finish_update_trains_torch_params_with_a_composa_optimizer():
    model = PyTorchWrapper(mlp())
    X, target = batch(rows=16), batch(rows=16, width=4, seed=3)

    def loss_after_step():
        Y, backprop = model.begin_update(X)
        backprop((Y - target) / len(X))
        model.finish_update(sgd(0.5))
        return float(((Y - target) ** 2).mean())

    losses = [loss_after_step() for _ in range(30)]
    assert losses[-1] < losses[0] * 0.5


def digits_split():
    from sklearn.datasets import load_digits

    data = load_digits()
    X = (data.data / 16.0).astype("float32")
    Y = data.target.astype("int64")
    order = numpy.random.RandomState(0).permutation(len(X))
    X, Y = X[order], Y[order]
    return (X[:1400], Y[:1400]), (X[1400:], Y[1400:])


def test_a_mixed_native_and_torch_model_learns_digits_with_adam():
    (train_X, train_Y), (dev_X, dev_Y) = digits_split()
    torch.manual_seed(0)
    numpy.random.seed(0)
    hidden = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.ReLU())
    model = chain(Relu(32), PyTorchWrapper(hidden), Softmax(10))
    model.initialize(X=train_X[:5], Y=numpy.eye(10, dtype="float32")[train_Y[:5]])
    optimizer = Adam(0.01)
    one_hot = numpy.eye(10, dtype="float32")
    for epoch in range(8):
        for start in range(0, len(train_X), 64):
            X = train_X[start : start + 64]
            Y, backprop = model.begin_update(X)
            backprop((Y - one_hot[train_Y[start : start + 64]]) / len(X))
            model.finish_update(optimizer)
    accuracy = float((model.predict(dev_X).argmax(axis=1) == dev_Y).mean())
    assert accuracy > 0.93
    # the averaged weights (keyed by shim id for the torch part) are swapped in and out
    torch_weight = hidden[0].weight.detach().clone()
    with model.use_params(optimizer.averages):
        assert not torch.equal(hidden[0].weight, torch_weight)
        averaged_accuracy = float((model.predict(dev_X).argmax(axis=1) == dev_Y).mean())
    assert torch.equal(hidden[0].weight, torch_weight)
    assert averaged_accuracy > 0.9


def test_use_params_restores_torch_weights_after_an_exception():
    model = PyTorchWrapper(mlp())
    shim = model.shims[0]
    before = shim._model[0].weight.detach().clone()
    averages = {(shim.id, "0.weight"): numpy.zeros(tuple(before.shape), dtype="float32")}
    with pytest.raises(ValueError):
        with model.use_params(averages):
            assert torch.all(shim._model[0].weight == 0)
            raise ValueError("evaluation failed")
    assert torch.equal(shim._model[0].weight, before)


# Serialisation and copies -----------------------------------------------------------------------


def build_chain(seed: int) -> Model:
    numpy.random.seed(seed)
    model = chain(Relu(6), PyTorchWrapper(mlp(seed=seed)), Relu(3))
    model.initialize(X=batch(), Y=numpy.zeros((5, 3), dtype="float32"))
    return model


def test_chain_bytes_round_trip_restores_weights_and_predictions():
    source, target = build_chain(1), build_chain(2)
    X = batch(rows=9)
    assert not numpy.allclose(source.predict(X), target.predict(X))
    data = source.to_bytes()
    target.from_bytes(data)
    numpy.testing.assert_array_equal(target.predict(X), source.predict(X))
    assert target.to_bytes() == data


def test_disk_round_trip(tmp_path):
    source, target = build_chain(3), build_chain(4)
    source.to_disk(tmp_path / "model.bin")
    target.from_disk(tmp_path / "model.bin")
    numpy.testing.assert_array_equal(target.predict(batch()), source.predict(batch()))


def test_loading_bytes_of_a_different_torch_module_fails_cleanly():
    model = PyTorchWrapper(mlp())
    other = PyTorchWrapper(mlp(n_hidden=3))
    before = model.predict(batch())
    with pytest.raises(SerializationError, match="shape"):
        model.from_bytes(other.to_bytes())
    numpy.testing.assert_array_equal(model.predict(batch()), before)


def test_v3_custom_serializers_are_used_by_model_bytes():
    loaded = []

    def serialize_model(module):
        return f"weights of a {type(module).__name__}".encode()

    def deserialize_model(module, data, device):
        loaded.append((data, device.type))
        return module

    model = PyTorchWrapper_v3(mlp(), serialize_model=serialize_model, deserialize_model=deserialize_model)
    PyTorchWrapper_v3(mlp(), serialize_model=serialize_model, deserialize_model=deserialize_model).from_bytes(
        model.to_bytes()
    )
    assert loaded == [(b"weights of a Sequential", "cpu")]


def test_copy_gives_an_independent_module_with_a_new_shim_id():
    model = build_chain(5)
    copied = model.copy()
    wrapper, wrapper_copy = model.layers[1], copied.layers[1]
    assert wrapper_copy.shims[0].id != wrapper.shims[0].id
    numpy.testing.assert_array_equal(copied.predict(batch()), model.predict(batch()))
    original_weight = wrapper.shims[0]._model[0].weight.detach().clone()
    Y, backprop = wrapper_copy.begin_update(batch())
    backprop(numpy.ones_like(Y))
    wrapper_copy.finish_update(sgd(1.0))
    assert not torch.equal(wrapper_copy.shims[0]._model[0].weight, original_weight)
    assert torch.equal(wrapper.shims[0]._model[0].weight, original_weight)


# RNNs and TorchScript --------------------------------------------------------------------------------


def test_rnn_wrapper_on_padded_matches_the_torch_lstm():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 4)
    model = PyTorchRNNWrapper(lstm)
    ops = NumpyOps()
    Xp = ops.list2padded([batch(rows=n, width=3, seed=n) for n in (4, 2, 3)])
    Yp, backprop = model(Xp, is_train=True)
    assert isinstance(Yp, Padded) and Yp.data.shape == (4, 3, 4)
    expected, _ = lstm(torch.tensor(Xp.data))
    numpy.testing.assert_allclose(Yp.data, expected.detach().numpy(), rtol=1e-6)
    dXp = backprop(Padded(numpy.ones_like(Yp.data), Yp.size_at_t, Yp.lengths, Yp.indices))
    assert isinstance(dXp, Padded) and dXp.data.shape == Xp.data.shape
    numpy.testing.assert_array_equal(dXp.lengths, Xp.lengths)


def test_rnn_wrapper_wants_padded_input():
    with pytest.raises(ConfigurationError, match="Padded"):
        PyTorchRNNWrapper(torch.nn.LSTM(3, 4)).predict(batch(width=3))


def test_pytorch_lstm_over_a_list_of_sequences():
    model = PyTorchLSTM(6, 3, bi=True, depth=2)
    assert (model.get_dim("nO"), model.get_dim("nI")) == (6, 3)
    sequences = [batch(rows=n, width=3, seed=n) for n in (5, 1, 3)]
    outputs, backprop = model(sequences, is_train=True)
    assert [Y.shape for Y in outputs] == [(5, 6), (1, 6), (3, 6)]
    d_sequences = backprop([numpy.ones_like(Y) for Y in outputs])
    assert [d.shape for d in d_sequences] == [(5, 3), (1, 3), (3, 3)]


def test_pytorch_lstm_arguments_are_checked():
    with pytest.raises(ConfigurationError, match="even nO"):
        PyTorchLSTM(5, 3, bi=True)
    assert PyTorchLSTM(4, 4, depth=0).name == "noop"


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_wrapper_round_trips_and_matches_the_module():
    module = mlp(seed=6)
    model = pytorch_to_torchscript_wrapper(PyTorchWrapper(module))
    assert model.name == "pytorch_script" and isinstance(model.shims[0], TorchScriptShim)
    X = batch()
    numpy.testing.assert_allclose(model.predict(X), module(torch.tensor(X)).detach().numpy(), rtol=1e-6)
    loaded = TorchScriptWrapper_v1().from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    Y, backprop = loaded(X, is_train=True)
    assert backprop(numpy.ones_like(Y)).shape == X.shape


def test_torchscript_wrapper_refuses_plain_modules():
    with pytest.raises(ConfigurationError, match="ScriptModule"):
        TorchScriptWrapper_v1(mlp())
    with pytest.raises(ConfigurationError, match="PyTorchWrapper"):
        pytorch_to_torchscript_wrapper(Relu(3))


# Devices -------------------------------------------------------------------------------------------


def test_model_to_cpu_moves_the_shim_too():
    model = chain(Relu(6), PyTorchWrapper(mlp()))
    model.initialize(X=batch())
    model.to_cpu()
    assert model.layers[1].shims[0].device.type == "cpu"
    assert model.predict(batch()).shape == (5, 4)


@pytest.mark.gpu
@pytest.mark.skipif(not (has_torch_cuda_gpu and has_cupy_gpu), reason="needs a CUDA GPU with cupy")
def test_wrapper_on_gpu_exchanges_cupy_arrays_via_dlpack():
    import cupy

    from composa import use_ops

    with use_ops("cupy"):
        model = PyTorchWrapper(mlp())
        assert model.shims[0].device.type == "cuda"
        X = cupy.asarray(batch())
        Y, backprop = model(X, is_train=True)
        assert isinstance(Y, cupy.ndarray)
        assert isinstance(backprop(cupy.ones_like(Y)), cupy.ndarray)
        model.finish_update(sgd(0.1))
    model.to_cpu()
    assert model.shims[0].device.type == "cpu"
    assert isinstance(model.predict(batch()), numpy.ndarray)


# The default converters take direct steps for one CPU float array in; any other converter
# (here: the same functions behind a lambda) takes the general steps. Both must agree.


class SplitHeads(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = mlp()

    def forward(self, X: "torch.Tensor") -> dict:
        out = self.body(X)
        return {"first": out[:, :2], "rest": out[:, 2:]}


def direct_and_general(make_module, **kwargs):
    direct = PyTorchWrapper(make_module(), **kwargs)
    general = PyTorchWrapper(
        make_module(),
        convert_inputs=lambda model, X, is_train: convert_pytorch_default_inputs(model, X, is_train),
        convert_outputs=lambda model, XY, is_train: convert_pytorch_default_outputs(model, XY, is_train),
        **kwargs,
    )
    return direct, general


def torch_grads(model):
    return [param.grad.clone() for param in model.shims[0]._model.parameters()]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scaled", [False, True])
def test_direct_steps_give_the_general_steps_outputs_and_gradients(dtype, scaled):
    # A huge scale overflows float32 gradients: the scaler then zeroes them (float64 holds them).
    scalers = [PyTorchGradScaler(enabled=scaled, init_scale=2.0**126) for _ in range(2)]
    direct, general = direct_and_general(lambda: mlp().to(getattr(torch, dtype)), grad_scaler=scalers.pop())
    X = numpy.random.default_rng(0).standard_normal((5, 6)).astype(dtype)
    for model in (direct, general):
        Y, backprop = model.begin_update(X)
        model.attrs["dX"] = backprop(numpy.full_like(Y, 1e6))
        model.attrs["Y"] = Y
    assert direct.attrs["Y"].dtype == dtype
    found_inf = direct.shims[0]._grad_scaler.found_inf
    assert found_inf == general.shims[0]._grad_scaler.found_inf == (scaled and dtype == "float32")
    numpy.testing.assert_array_equal(direct.attrs["Y"], general.attrs["Y"])
    numpy.testing.assert_array_equal(direct.attrs["dX"], general.attrs["dX"])
    for ours, theirs in zip(torch_grads(direct), torch_grads(general)):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0, equal_nan=True)
    numpy.testing.assert_array_equal(direct.predict(X), general.predict(X))


def test_direct_steps_take_a_dict_output_and_a_read_only_gradient():
    direct, general = direct_and_general(SplitHeads)
    X = numpy.random.default_rng(1).standard_normal((3, 6)).astype("float32")
    results = []
    for model in (direct, general):
        Y, backprop = model.begin_update(X)
        dY = {key: numpy.ones_like(value) for key, value in Y.items()}
        for value in dY.values():
            value.flags.writeable = False
        results.append((Y, backprop(dY)))
    (Y_direct, dX_direct), (Y_general, dX_general) = results
    for key in ("first", "rest"):
        numpy.testing.assert_array_equal(Y_direct[key], Y_general[key])
    numpy.testing.assert_array_equal(dX_direct, dX_general)
    Y, backprop = direct.begin_update(X[::-1])  # negative strides: torch copies, the general steps run
    assert backprop({key: numpy.ones_like(value) for key, value in Y.items()}).shape == X.shape


def test_direct_steps_raise_the_general_steps_errors():
    direct, general = direct_and_general(mlp)
    X = numpy.zeros((2, 6), dtype="float32")
    messages = []
    for model in (direct, general):
        _, backprop = model.begin_update(X)
        with pytest.raises(ShapeMismatchError) as shape_error:
            backprop(numpy.zeros((2, 3), dtype="float32"))
        _, backprop = model(X, is_train=False)
        with pytest.raises(ConfigurationError) as predict_error:
            backprop(numpy.zeros((2, 4), dtype="float32"))
        with pytest.raises(PyTorchModuleError) as module_error:
            model.predict(numpy.zeros((2, 5), dtype="float32"))
        messages.append([str(error.value) for error in (shape_error, predict_error, module_error)])
    assert messages[0] == messages[1]
    assert "pytorch" in messages[0][0] and "(2, 4)" in messages[0][0]


@pytest.mark.parametrize("grad_dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("mixed_precision", [False, True])
def test_direct_steps_cast_gradients_and_outputs_as_the_general_steps(grad_dtype, mixed_precision):
    # A gradient typed unlike Y is cast by the shim; a bfloat16 output (CPU autocast) is copied
    # to float32 and so takes the general steps. Either way both give the same numbers.
    direct, general = direct_and_general(mlp, mixed_precision=mixed_precision)
    X = numpy.random.default_rng(2).standard_normal((4, 6)).astype("float32")
    results = []
    for model in (direct, general):
        Y, backprop = model.begin_update(X)
        dX = backprop(numpy.linspace(-1, 1, Y.size).reshape(Y.shape).astype(grad_dtype))
        results.append((Y, dX, torch_grads(model)))
    (Y_direct, dX_direct, grads_direct), (Y_general, dX_general, grads_general) = results
    assert Y_direct.dtype == Y_general.dtype == "float32" and dX_direct.dtype == "float32"
    numpy.testing.assert_array_equal(Y_direct, Y_general)
    numpy.testing.assert_array_equal(dX_direct, dX_general)
    for ours, theirs in zip(grads_direct, grads_general):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
