"""The PyTorch wrappers on CUDA: DLPack both ways, gradients, autocast and the grad scaler.

The wrapper cases run like the layer table (tests/layers/test_layers_on_gpu.py): a CPU
model's copy moved to the GPU must give the CPU answers. The rest needs CUDA throughout.
"""
import copy

import numpy
import pytest
import torch

from composa import Adam, NumpyOps, use_ops
from composa.backends import CupyOps
from composa.layers import (
    PyTorchLSTM, PyTorchRNNWrapper, PyTorchWrapper, PyTorchWrapper_v2, PyTorchWrapper_v3, TorchScriptWrapper_v1,
    pytorch_to_torchscript_wrapper,
)
from composa.shims import PyTorchGradScaler
from composa.shims.conversions import torch2xp, xp2torch
from composa.testing import check_gradients
from composa.util import fix_random_seed

from gpu_helpers import HAS_CUDA, MODEL_TWINS, assert_same, assert_twin_matches

needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU for both cupy and torch")


def mlp(seed=0, n_in=6, n_out=3):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, 8), torch.nn.ReLU(), torch.nn.Linear(8, n_out))


def floats(*shape, seed=0, dtype="float32"):
    return numpy.random.RandomState(seed).uniform(-1, 1, shape).astype(dtype)


def sequences(*lengths, width=4):
    return [floats(length, width, seed=i) for i, length in enumerate(lengths)]


WRAPPERS = {
    "PyTorchWrapper": (lambda: PyTorchWrapper(mlp()), lambda: floats(5, 6)),
    "PyTorchWrapper_v2": (lambda: PyTorchWrapper_v2(mlp(1)), lambda: floats(5, 6)),
    "PyTorchWrapper_v3": (lambda: PyTorchWrapper_v3(mlp(2)), lambda: floats(5, 6)),
    "PyTorchRNNWrapper": (lambda: PyTorchRNNWrapper(torch.nn.LSTM(4, 3)), lambda: NumpyOps().list2padded(sequences(3, 1, 2))),
    "PyTorchLSTM": (lambda: PyTorchLSTM(6, 4, bi=True, depth=2), lambda: sequences(3, 1, 2)),
    "TorchScriptWrapper_v1": (lambda: TorchScriptWrapper_v1(torch.jit.script(mlp(3))), lambda: floats(5, 6)),
    "pytorch_to_torchscript_wrapper": (lambda: pytorch_to_torchscript_wrapper(PyTorchWrapper(mlp(4))), lambda: floats(5, 6)),
}


@pytest.mark.parametrize("backend", MODEL_TWINS)
@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_wrapper_on_the_backend_matches_the_cpu(name, backend):
    build, X = WRAPPERS[name]
    fix_random_seed(0)
    model, _ = assert_twin_matches(build(), X(), backend, where=name)
    shims = [shim for node in model.walk() for shim in node.shims]
    assert shims and all(shim.device.type == ("cuda" if backend == "CupyOps" else "cpu") for shim in shims)


@pytest.mark.parametrize("backend", MODEL_TWINS)
def test_wrapper_passes_the_gradient_check_on_the_backend_in_float64(backend):
    model, X = assert_twin_matches(PyTorchWrapper(mlp().double()), floats(4, 6, dtype="float64"), backend, tol=dict(rtol=1e-9, atol=1e-10))
    check_gradients(model, X)


@pytest.mark.gpu
@needs_cuda
def test_dlpack_conversions_share_gpu_memory_both_ways():
    array = CupyOps().asarray(floats(3, 4))
    with use_ops("cupy"):  # the default device of xp2torch follows the current ops
        tensor = xp2torch(array)
    assert tensor.is_cuda and tensor.data_ptr() == array.data.ptr
    back = torch2xp(tensor)
    assert back.data.ptr == tensor.data_ptr()
    tensor[0, 0] = 7.0
    assert float(array[0, 0]) == 7.0 and float(back[0, 0]) == 7.0
    assert torch2xp(tensor, ops=NumpyOps()).__class__ is numpy.ndarray


def cuda_wrapper(module, **kwargs):
    with use_ops("cupy"):
        return PyTorchWrapper(module, **kwargs)


def torch_reference(module, X, dY):
    """Output, input gradient and param gradients of `module` by plain torch autograd on CUDA."""
    X_t = torch.tensor(X, device="cuda", requires_grad=True)
    output = module(X_t)
    output.backward(torch.tensor(dY, device="cuda"))
    return output.detach().cpu().numpy(), X_t.grad.cpu().numpy(), [p.grad.cpu().numpy() for p in module.parameters()]


@pytest.mark.gpu
@needs_cuda
def test_cuda_wrapper_takes_and_gives_cupy_arrays_with_torch_gradients():
    X, dY = floats(5, 6), floats(5, 3, seed=1)
    reference = mlp().cuda()
    model = cuda_wrapper(copy.deepcopy(reference))
    Y, backprop = model.begin_update(CupyOps().asarray(X))
    dX = backprop(CupyOps().asarray(dY))
    assert all(type(array).__module__.startswith("cupy") for array in (Y, dX))
    Y_t, dX_t, grads_t = torch_reference(reference, X, dY)
    assert_same(Y, Y_t, rtol=1e-5, atol=1e-6)
    assert_same(dX, dX_t, rtol=1e-5, atol=1e-6)
    wrapped = model.shims[0]._model
    assert_same([p.grad.cpu().numpy() for p in wrapped.parameters()], grads_t, rtol=1e-5, atol=1e-6)
    before = [p.detach().clone() for p in wrapped.parameters()]
    model.finish_update(Adam(0.01))
    assert all(p.is_cuda and p.grad is None for p in wrapped.parameters())
    assert all(not torch.equal(p, old) for p, old in zip(wrapped.parameters(), before))


@pytest.mark.gpu
@needs_cuda
def test_mixed_precision_on_cuda_runs_in_float16_close_to_float32():
    X, dY = floats(8, 6), floats(8, 3, seed=1)
    full = cuda_wrapper(mlp().cuda())
    mixed = cuda_wrapper(mlp().cuda(), mixed_precision=True)
    Y_full, backprop_full = full.begin_update(CupyOps().asarray(X))
    Y_mixed, backprop_mixed = mixed.begin_update(CupyOps().asarray(X))
    assert Y_full.dtype == numpy.float32 and Y_mixed.dtype == numpy.float16
    assert_same(Y_mixed.astype("float32"), Y_full, rtol=1e-2, atol=1e-2)
    dX_mixed = backprop_mixed(CupyOps().asarray(dY))
    assert dX_mixed.dtype == numpy.float32
    assert_same(dX_mixed, backprop_full(CupyOps().asarray(dY)), rtol=1e-2, atol=1e-2)


def scaled_step(scaler, X, dY):
    """One float16 forward and backward through a CUDA wrapper; returns the model and its param grads."""
    model = cuda_wrapper(mlp().cuda(), mixed_precision=True, grad_scaler=scaler)
    _, backprop = model.begin_update(CupyOps().asarray(X))
    backprop(CupyOps().asarray(dY))
    return model, [p.grad.detach().cpu().numpy() for p in model.shims[0]._model.parameters()]


@pytest.mark.gpu
@needs_cuda
def test_the_grad_scaler_on_cuda_gives_the_unscaled_gradients():
    X, dY = floats(8, 6), floats(8, 3, seed=1) * 1e-3
    scaler = PyTorchGradScaler(enabled=True, init_scale=2.0**12)
    model, scaled = scaled_step(scaler, X, dY)
    _, plain = scaled_step(None, X, dY)
    assert scaler._scale.is_cuda and not scaler.found_inf
    for with_scaler, without, exact in zip(scaled, plain, _float32_grads(X, dY)):
        # unscaled by the fused CUDA op: within float16 rounding of the float32 gradients, not 2**12 times them
        numpy.testing.assert_allclose(with_scaler, exact, rtol=2e-2, atol=2e-2 * numpy.abs(exact).max())
        numpy.testing.assert_allclose(with_scaler, without, rtol=2e-2, atol=2e-2 * numpy.abs(exact).max())
    model.finish_update(Adam(0.01))
    assert scaler.scale_factor == 2.0**12


def _float32_grads(X, dY):
    module = mlp().cuda()
    output = module(torch.tensor(X, device="cuda"))
    output.backward(torch.tensor(dY, device="cuda"))
    return [p.grad.cpu().numpy() for p in module.parameters()]


@pytest.mark.gpu
@needs_cuda
def test_an_overflow_on_cuda_skips_the_update_and_backs_off_the_scale():
    scaler = PyTorchGradScaler(enabled=True, init_scale=2.0**60)
    model, _ = scaled_step(scaler, floats(8, 6), floats(8, 3, seed=1))
    assert scaler.found_inf
    before = [p.detach().clone() for p in model.shims[0]._model.parameters()]
    model.finish_update(Adam(0.01))
    after = list(model.shims[0]._model.parameters())
    assert all(torch.equal(p, old) for p, old in zip(after, before))
    assert scaler.scale_factor == 2.0**59 and not scaler.found_inf
