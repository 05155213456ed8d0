"""PyTorchShim: modes, updates, use_params, devices and pickle-free serialisation."""
import io
import pickle

import msgpack
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from composa import ArgsKwargs, Model, PyTorchWrapper  # noqa: E402
from composa.compat import has_torch_cuda_gpu  # noqa: E402
from composa.errors import ConfigurationError, SerializationError, ShapeMismatchError  # noqa: E402
from composa.serialize import loads_with_checksum, msgpack_dumps, msgpack_loads  # noqa: E402
from composa.shims import PyTorchGradScaler, PyTorchShim  # noqa: E402


def make_module(seed: int = 0, n_in: int = 4, n_out: int = 3) -> "torch.nn.Module":
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, 5), torch.nn.ReLU(), torch.nn.Linear(5, n_out))


def args_of(array: numpy.ndarray, requires_grad: bool = False) -> ArgsKwargs:
    tensor = torch.from_numpy(array)
    if requires_grad:
        tensor.requires_grad_()
    return ArgsKwargs(args=(tensor,), kwargs={})


def backward_args(output, grad) -> ArgsKwargs:
    return ArgsKwargs(args=((output,),), kwargs={"grad_tensors": (grad,)})


class ModeRecorder(torch.nn.Module):
    """Records the training flag seen by each forward call."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)
        self.seen = []

    def forward(self, x):
        self.seen.append(self.training)
        return self.linear(x)


X = numpy.random.RandomState(0).uniform(-1, 1, (6, 4)).astype("float32")


def test_shim_rejects_things_that_are_not_modules():
    with pytest.raises(ConfigurationError, match="torch.nn.Module"):
        PyTorchShim(lambda x: x)


def test_predict_runs_in_eval_mode_and_restores_the_previous_mode():
    module = ModeRecorder()
    shim = PyTorchShim(module)
    module.train()
    shim.predict(args_of(numpy.ones((1, 2), dtype="f")))
    assert module.seen == [False] and module.training
    module.eval()
    shim.predict(args_of(numpy.ones((1, 2), dtype="f")))
    assert not module.training


def test_begin_update_runs_in_train_mode_and_restores_eval_mode():
    module = ModeRecorder()
    module.eval()
    shim = PyTorchShim(module)
    shim.begin_update(args_of(numpy.ones((1, 2), dtype="f")))
    assert module.seen == [True]
    assert not module.training and not module.linear.training


def test_frozen_submodule_modes_survive_predict():
    module = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    module.train()
    module[1].eval()  # a user-frozen batch norm
    PyTorchShim(module).predict(args_of(numpy.ones((2, 3), dtype="f")))
    assert module.training and not module[1].training


def test_dropout_is_off_in_predict():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Dropout(0.5))
    shim = PyTorchShim(module)
    first = shim.predict(args_of(X))
    second = shim.predict(args_of(X))
    assert torch.equal(first, second)
    trained, _ = shim.begin_update(args_of(X))
    assert not torch.equal(trained, first)


def test_inputs_must_be_args_kwargs():
    shim = PyTorchShim(make_module())
    with pytest.raises(ConfigurationError, match="ArgsKwargs"):
        shim.predict(torch.zeros(2, 4))


def test_backprop_of_a_prediction_is_a_clear_error():
    shim = PyTorchShim(make_module())
    _, backprop = shim(args_of(X), is_train=False)
    with pytest.raises(ConfigurationError, match="is_train=False"):
        backprop(None)


def test_backprop_checks_the_gradient_shape():
    shim = PyTorchShim(make_module())
    output, backprop = shim.begin_update(args_of(X, requires_grad=True))
    with pytest.raises(ShapeMismatchError, match=r"\(6, 3\)"):
        backprop(backward_args(output, torch.ones(6, 2)))


def test_backprop_returns_input_gradients_matching_autograd():
    module = make_module()
    shim = PyTorchShim(module)
    inputs = args_of(X.copy(), requires_grad=True)
    output, backprop = shim.begin_update(inputs)
    d_output = torch.ones_like(output) * 0.5
    d_inputs = backprop(backward_args(output, d_output))
    reference_input = torch.from_numpy(X.copy()).requires_grad_()
    reference = make_module()
    (reference(reference_input) * 0.5).sum().backward()
    torch.testing.assert_close(d_inputs.args[0], reference_input.grad)
    torch.testing.assert_close(module[0].weight.grad, reference[0].weight.grad)


def test_finish_update_uses_shim_id_keys_and_clears_grads():
    module = make_module()
    shim = PyTorchShim(module)
    output, backprop = shim.begin_update(args_of(X))
    backprop(backward_args(output, torch.ones_like(output)))
    seen = {}

    def sgd(key, param, grad):
        seen[key] = grad.copy()
        return param - 0.1 * grad, grad

    before = module[0].weight.detach().clone()
    shim.finish_update(sgd)
    assert set(seen) == {(shim.id, name) for name, _ in module.named_parameters()}
    expected = before - 0.1 * torch.from_numpy(seen[(shim.id, "0.weight")])
    torch.testing.assert_close(module[0].weight.detach(), expected)
    assert all(param.grad is None for param in module.parameters())


def test_finish_update_with_an_in_place_optimizer_keeps_the_parameter_storage():
    module = make_module()
    shim = PyTorchShim(module)
    storage = module[0].weight.data_ptr()
    output, backprop = shim.begin_update(args_of(X))
    backprop(backward_args(output, torch.ones_like(output)))

    def in_place_sgd(key, param, grad):
        param -= 0.1 * grad
        return param, grad

    shim.finish_update(in_place_sgd)
    assert module[0].weight.data_ptr() == storage


def test_use_params_swaps_weights_and_restores_them_even_after_an_error():
    module = make_module()
    shim = PyTorchShim(module)
    original = module[0].weight.detach().clone()
    replacement = numpy.full(tuple(original.shape), 0.5, dtype="float32")
    with pytest.raises(KeyError):
        with shim.use_params({(shim.id, "0.weight"): replacement}):
            assert torch.all(module[0].weight == 0.5)
            raise KeyError("oops")
    torch.testing.assert_close(module[0].weight.detach(), original)


def test_use_params_ignores_other_shims_keys_and_string_keys():
    module = make_module()
    shim = PyTorchShim(module)
    original = module[0].weight.detach().clone()
    ones = numpy.ones(tuple(original.shape), dtype="float32")
    with shim.use_params({(shim.id + 1000, "0.weight"): ones, f"pytorch_{shim.id}_0.weight": ones}):
        torch.testing.assert_close(module[0].weight.detach(), original)


def test_use_params_rejects_a_wrong_shape_before_changing_anything():
    module = make_module()
    shim = PyTorchShim(module)
    original = module[2].weight.detach().clone()
    good = numpy.zeros(tuple(original.shape), dtype="float32")
    with pytest.raises(ShapeMismatchError, match="0.weight"):
        with shim.use_params({(shim.id, "2.weight"): good, (shim.id, "0.weight"): numpy.zeros((1, 1), "f")}):
            pass
    torch.testing.assert_close(module[2].weight.detach(), original)


def test_bytes_round_trip_restores_weights_and_is_stable():
    source = PyTorchShim(make_module(seed=1))
    target = PyTorchShim(make_module(seed=2))
    assert not torch.equal(source._model[0].weight, target._model[0].weight)
    data = source.to_bytes()
    target.from_bytes(data)
    for (name, a), (_, b) in zip(source._model.state_dict().items(), target._model.state_dict().items()):
        assert torch.equal(a, b), name
    assert target.to_bytes() == data


def test_bytes_are_plain_msgpack_with_raw_tensors():
    data = PyTorchShim(make_module()).to_bytes()
    msg = msgpack_loads(data)
    state = msgpack_loads(msg["state"])
    dtype, shape, array = state["tensors"]["0.weight"]
    assert dtype == "float32" and shape == [5, 4] and array.shape == (5, 4)
    assert b"torch" not in msgpack.unpackb(data, raw=False)["state"][:16]


def test_bfloat16_weights_round_trip_bit_for_bit():
    module = make_module().to(torch.bfloat16)
    target = make_module(seed=3).to(torch.bfloat16)
    PyTorchShim(target).from_bytes(PyTorchShim(module).to_bytes())
    assert target[0].weight.dtype == torch.bfloat16
    assert torch.equal(target[0].weight, module[0].weight)


def test_integer_buffers_round_trip():
    module = torch.nn.BatchNorm1d(3)
    module.num_batches_tracked += 7
    target = torch.nn.BatchNorm1d(3)
    PyTorchShim(target).from_bytes(PyTorchShim(module).to_bytes())
    assert int(target.num_batches_tracked) == 7


def test_loading_checks_names_and_shapes_and_changes_nothing_on_error():
    target = make_module(seed=5)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(SerializationError, match="shape"):
        PyTorchShim(target).from_bytes(PyTorchShim(make_module(n_out=7)).to_bytes())
    with pytest.raises(SerializationError, match="missing"):
        PyTorchShim(target).from_bytes(PyTorchShim(torch.nn.Linear(4, 3)).to_bytes())
    for name, value in target.state_dict().items():
        assert torch.equal(value, before[name])


class MakesAFile:
    """Unpickling this object would create a file: proof that pickle ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_raw_pickle_payload_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(MakesAFile(str(marker)))
    with pytest.raises(SerializationError, match="pickle"):
        PyTorchShim(make_module()).from_bytes(payload)
    with pytest.raises(SerializationError):
        PyTorchShim(make_module()).from_bytes(msgpack_dumps({"config": {}, "state": payload}))
    assert not marker.exists()


def test_a_torch_save_payload_with_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"0.weight": MakesAFile(str(marker))}, buffer)
    data = msgpack_dumps({"config": {}, "state": buffer.getvalue()})
    with pytest.raises(SerializationError, match="refusing"):
        PyTorchShim(make_module()).from_bytes(data)
    assert not marker.exists()


def test_a_pickle_inside_model_bytes_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    model = PyTorchWrapper(make_module())
    msg = loads_with_checksum(model.to_bytes())
    msg["shims"][0] = [pickle.dumps(MakesAFile(str(marker)))]
    with pytest.raises(SerializationError, match="pickle"):
        model.from_bytes(msgpack_dumps(msg))
    assert not marker.exists()


def test_thinc_style_torch_save_state_dicts_load_with_weights_only():
    source = make_module(seed=8)
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    target = make_module(seed=9)
    PyTorchShim(target).from_bytes(msgpack_dumps({"config": {}, "state": buffer.getvalue()}))
    assert torch.equal(target[2].bias, source[2].bias)


def test_non_tensor_state_needs_custom_serializers():
    class WithExtraState(torch.nn.Linear):
        def get_extra_state(self):
            return {"vocab": ["a", "b"]}

        def set_extra_state(self, state):
            self.vocab = state["vocab"]

    with pytest.raises(SerializationError, match="serialize_model"):
        PyTorchShim(WithExtraState(2, 2)).to_bytes()


def test_custom_serialize_and_deserialize_hooks():
    calls = []

    def serialize(module):
        calls.append("save")
        return b"custom:" + str(module.out_features).encode()

    def deserialize(module, data, device):
        calls.append(("load", data, device.type))
        return torch.nn.Linear(2, int(data.split(b":")[1]))

    shim = PyTorchShim(torch.nn.Linear(2, 3), serialize_model=serialize, deserialize_model=deserialize)
    data = shim.to_bytes()
    shim.from_bytes(data)
    assert calls == ["save", ("load", b"custom:3", "cpu")]
    assert shim._model.out_features == 3


def test_config_travels_with_the_bytes():
    shim = PyTorchShim(make_module(), config={"note": "hello"})
    target = PyTorchShim(make_module()).from_bytes(shim.to_bytes())
    assert target.cfg == {"note": "hello"}


def test_copy_is_independent_and_has_a_new_id():
    shim = PyTorchShim(make_module())
    copied = shim.copy()
    assert copied.id != shim.id
    with torch.no_grad():
        copied._model[0].weight.zero_()
    assert shim._model[0].weight.abs().sum() > 0


def test_to_device_cpu_and_unknown_device_types():
    shim = PyTorchShim(make_module())
    shim.to_device("cpu", -1)
    assert shim.device.type == "cpu"
    with pytest.raises(ConfigurationError, match="tpu"):
        shim.to_device("tpu", 0)


@pytest.mark.gpu
@pytest.mark.skipif(not has_torch_cuda_gpu, reason="needs a CUDA GPU")
def test_to_device_gpu_moves_the_module_and_back():
    shim = PyTorchShim(make_module())
    shim.to_device("gpu", 0)
    assert shim.device.type == "cuda"
    output = shim.predict(ArgsKwargs(args=(torch.ones(2, 4, device="cuda"),), kwargs={}))
    assert output.is_cuda
    shim.to_device("cpu", -1)
    assert shim.device.type == "cpu"


def test_mixed_precision_on_cpu_runs_the_module_in_bfloat16():
    class DtypeRecorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 3)
            self.dtypes = []

        def forward(self, x):
            y = self.linear(x)
            self.dtypes.append(y.dtype)
            return y

    module = DtypeRecorder()
    shim = PyTorchShim(module, mixed_precision=True)
    output, backprop = shim.begin_update(args_of(X, requires_grad=True))
    assert module.dtypes == [torch.bfloat16]
    d_inputs = backprop(backward_args(output, torch.ones(6, 3)))  # float32 grads are cast to match
    assert d_inputs.args[0].dtype == torch.float32
    assert module.linear.weight.grad.dtype == torch.float32


def test_grad_scaler_gradients_equal_unscaled_ones_even_when_accumulated():
    def grads_after_two_backprops(scaler):
        module = make_module()
        shim = PyTorchShim(module, grad_scaler=scaler)
        for _ in range(2):
            output, backprop = shim.begin_update(args_of(X, requires_grad=True))
            d_inputs = backprop(backward_args(output, torch.ones_like(output)))
        return module[0].weight.grad.clone(), d_inputs.args[0]

    plain_param, plain_input = grads_after_two_backprops(None)
    scaled_param, scaled_input = grads_after_two_backprops(PyTorchGradScaler(enabled=True, init_scale=1024.0))
    torch.testing.assert_close(scaled_param, plain_param)
    torch.testing.assert_close(scaled_input, plain_input)


def test_an_overflow_skips_the_update_and_backs_off_the_scale():
    scaler = PyTorchGradScaler(enabled=True, init_scale=8.0)
    module = make_module()
    shim = PyTorchShim(module, grad_scaler=scaler)
    before = module[0].weight.detach().clone()
    output, backprop = shim.begin_update(args_of(X, requires_grad=True))
    d_inputs = backprop(backward_args(output, torch.full_like(output, float("inf"))))
    assert scaler.found_inf
    assert torch.all(d_inputs.args[0] == 0)
    shim.finish_update(lambda key, param, grad: (param - grad, grad))
    torch.testing.assert_close(module[0].weight.detach(), before)
    assert scaler.scale_factor == 4.0 and not scaler.found_inf
    assert all(param.grad is None for param in module.parameters())


def test_a_model_holding_a_shim_serialises_it_inside_its_msgpack():
    def forward(model, X, is_train):
        return model.shims[0](X, is_train)

    model = Model("holder", forward, shims=[PyTorchShim(make_module(seed=4))])
    target = Model("holder", forward, shims=[PyTorchShim(make_module(seed=6))])
    target.from_bytes(model.to_bytes())
    assert torch.equal(target.shims[0]._model[0].weight, model.shims[0]._model[0].weight)


@settings(max_examples=15, deadline=None)
@given(
    n_in=st.integers(1, 6),
    n_out=st.integers(1, 6),
    dtype=st.sampled_from(["float32", "float64", "float16", "bfloat16"]),
    seed=st.integers(0, 100),
)
def test_any_linear_state_round_trips_exactly(n_in, n_out, dtype, seed):
    torch.manual_seed(seed)
    source = torch.nn.Linear(n_in, n_out).to(getattr(torch, dtype))
    target = torch.nn.Linear(n_in, n_out).to(getattr(torch, dtype))
    data = PyTorchShim(source).to_bytes()
    PyTorchShim(target).from_bytes(data)
    assert torch.equal(target.weight, source.weight) and torch.equal(target.bias, source.bias)
    assert PyTorchShim(target).to_bytes() == data


def test_a_torch_state_from_a_newer_composa_is_refused():
    from composa.shims.pytorch import STATE_VERSION

    shim = PyTorchShim(make_module())
    msg = msgpack_loads(shim.to_bytes())
    state = msgpack_loads(msg["state"])
    state["version"] = STATE_VERSION + 1
    msg["state"] = msgpack_dumps(state)
    with pytest.raises(SerializationError, match=f"unsupported torch state version {STATE_VERSION + 1}"):
        PyTorchShim(make_module()).from_bytes(msgpack_dumps(msg))


def test_a_torch_state_entry_whose_dtype_and_data_disagree_is_refused():
    shim = PyTorchShim(make_module())
    msg = msgpack_loads(shim.to_bytes())
    state = msgpack_loads(msg["state"])
    state["tensors"]["0.weight"][0] = "float64"  # the data stays float32
    msg["state"] = msgpack_dumps(state)
    with pytest.raises(SerializationError, match="'0.weight': dtype 'float64' with data of dtype float32"):
        PyTorchShim(make_module()).from_bytes(msgpack_dumps(msg))


@pytest.mark.parametrize("shape", [[5.0, 4], [5, -4], [4, 5, 1.5]])
def test_a_torch_state_entry_with_a_bad_shape_is_refused(shape):
    shim = PyTorchShim(make_module())
    msg = msgpack_loads(shim.to_bytes())
    state = msgpack_loads(msg["state"])
    state["tensors"]["0.weight"][1] = shape
    msg["state"] = msgpack_dumps(state)
    with pytest.raises(SerializationError, match="malformed torch state entry '0.weight'"):
        PyTorchShim(make_module()).from_bytes(msgpack_dumps(msg))


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors is a no-op")
def test_empty_tensors_round_trip():
    source = PyTorchShim(torch.nn.Linear(0, 3))
    target = PyTorchShim(torch.nn.Linear(0, 3))
    target.from_bytes(source.to_bytes())
    assert tuple(target._model.weight.shape) == (3, 0)
    torch.testing.assert_close(target._model.bias, source._model.bias)


def test_a_failing_deserialize_hook_is_a_serialization_error():
    def deserialize(module, data, device):
        raise ValueError("no such vocabulary")

    shim = PyTorchShim(torch.nn.Linear(2, 3), deserialize_model=deserialize)
    with pytest.raises(SerializationError, match="could not load the torch state: no such vocabulary"):
        shim.from_bytes(shim.to_bytes())


def test_a_gradient_of_another_dtype_is_cast_to_the_output_dtype():
    shim = PyTorchShim(make_module())
    output, backprop = shim.begin_update(args_of(X, requires_grad=True))
    d_inputs = backprop(backward_args(output, torch.ones_like(output, dtype=torch.float64)))
    assert d_inputs.args[0].dtype == torch.float32
    expected = PyTorchShim(make_module())
    output, backprop = expected.begin_update(args_of(X, requires_grad=True))
    torch.testing.assert_close(d_inputs.args[0], backprop(backward_args(output, torch.ones_like(output))).args[0])


def test_without_a_grad_scaler_an_overflow_reaches_the_gradients():
    # Like plain torch: only an enabled PyTorchGradScaler skips steps with inf gradients.
    module = make_module()
    shim = PyTorchShim(module)
    output, backprop = shim.begin_update(args_of(X, requires_grad=True))
    backprop(backward_args(output, torch.full_like(output, float("inf"))))
    shim.finish_update(lambda key, param, grad: (param - grad, grad))
    assert not torch.isfinite(module[-1].bias).any()
