"""Predicting from many threads at once gives what predicting one call at a time gives."""
from concurrent.futures import ThreadPoolExecutor

import numpy
import pytest
import torch

from composa import PyTorchWrapper, Relu, Softmax, chain

N_THREADS = 8
N_CALLS = 64


def predict_from_threads(model, batches):
    with ThreadPoolExecutor(max_workers=N_THREADS) as pool:
        return list(pool.map(model.predict, batches))


def batches_of(width, seed=0):
    rng = numpy.random.default_rng(seed)
    return [rng.standard_normal((16, width)).astype("float32") for _ in range(N_CALLS)]


def test_wrapped_dropout_and_batchnorm_predict_from_8_threads_equals_serial_predict():
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Linear(12, 32), torch.nn.BatchNorm1d(32), torch.nn.Dropout(0.5), torch.nn.Linear(32, 4)
    )
    model = PyTorchWrapper(module)
    batches = batches_of(12)
    # Train mode in between: the module must be switched to eval for each predict and back.
    model.begin_update(batches[0])
    running_mean = module[1].running_mean.clone()
    serial = [model.predict(X) for X in batches]
    module.train()
    threaded = predict_from_threads(model, batches)
    for expected, got in zip(serial, threaded):
        numpy.testing.assert_array_equal(got, expected)
    assert torch.equal(module[1].running_mean, running_mean), "predict changed BatchNorm's running stats"
    assert all(sub.training for sub in module.modules()), "predict did not restore train mode"


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_native_layers_predict_from_8_threads_equals_serial_predict(kernels):
    from composa.backends import NumpyOps
    from composa.backends._kernels import load_kernels

    if kernels == "numba" and load_kernels("auto") is None:
        pytest.skip("numba is not installed")
    model = chain(Relu(32), Relu(32), Softmax(5))
    batches = batches_of(10, seed=1)
    model.initialize(X=batches[0])
    for node in model.walk():
        node.ops = NumpyOps(kernels=kernels)
    serial = [model.predict(X) for X in batches]
    for expected, got in zip(serial, predict_from_threads(model, batches)):
        numpy.testing.assert_array_equal(got, expected)
