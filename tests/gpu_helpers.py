"""Helpers for tests that run one case on two backends (CPU and GPU) and compare the results.

Inputs are written once as numpy data; ``to_ops`` moves them (arrays, Ragged, Padded,
lists, tuples and dicts of them) onto a backend, ``to_host`` brings any result back, and
``assert_same`` compares two results of the same structure array by array.
``assert_twin_matches`` moves a copy of a CPU model to a backend and checks that it
predicts, trains and backpropagates as the CPU model does.
"""
import numpy
import pytest

from composa.backends import CupyOps, NumpyOps, Ops, has_cupy_gpu
from composa.compat import has_torch_cuda_gpu
from composa.testing import map_float_leaves
from composa.types import Padded, Ragged

# What the twin tests compare with NumpyOps: CupyOps on a GPU; the base Ops everywhere, so
# that the case tables themselves run (and can fail) on machines without one.
TWIN_BACKENDS = ["Ops", "CupyOps"]
BACKEND_CLASSES = {"Ops": Ops, "NumpyOps": NumpyOps, "CupyOps": CupyOps}
HAS_CUDA = has_cupy_gpu and has_torch_cuda_gpu
# Where a copy of a CPU model goes: NumpyOps everywhere (checks the case), CupyOps on a GPU.
MODEL_TWINS = ["NumpyOps", pytest.param("CupyOps", marks=pytest.mark.gpu)]
TOL32 = dict(rtol=1e-4, atol=1e-5)  # float32 on two devices: summation order differs


def to_ops(ops, data):
    """`data` with every array moved onto `ops` (structure, dtypes and non-arrays kept)."""
    if isinstance(data, Ragged):
        return Ragged(to_ops(ops, data.dataXd), to_ops(ops, data.lengths))
    if isinstance(data, Padded):
        return Padded(*(to_ops(ops, part) for part in (data.data, data.size_at_t, data.lengths, data.indices)))
    if isinstance(data, (list, tuple)):
        return type(data)(to_ops(ops, item) for item in data)
    if isinstance(data, dict):
        return {key: to_ops(ops, value) for key, value in data.items()}
    if _is_array(data):
        return ops.asarray(data)
    return data


def to_host(data):
    """`data` with every (numpy or cupy) array as a numpy array, structure kept."""
    if isinstance(data, Ragged):
        return Ragged(to_host(data.dataXd), to_host(data.lengths))
    if isinstance(data, Padded):
        return Padded(*(to_host(part) for part in (data.data, data.size_at_t, data.lengths, data.indices)))
    if isinstance(data, (list, tuple)):
        return type(data)(to_host(item) for item in data)
    if isinstance(data, dict):
        return {key: to_host(value) for key, value in data.items()}
    if _is_array(data):
        return data.get() if hasattr(data, "get") and not isinstance(data, numpy.ndarray) else numpy.asarray(data)
    return data


def assert_same(actual, expected, *, rtol=1e-5, atol=1e-6, where="result"):
    """Raise AssertionError unless `actual` has `expected`'s structure, dtypes and (close) values."""
    actual, expected = to_host(actual), to_host(expected)
    if isinstance(expected, (Ragged, Padded)):
        assert type(actual) is type(expected), f"{where}: got a {type(actual).__name__}, expected a {type(expected).__name__}"
        for field in ("data", "lengths") if isinstance(expected, Ragged) else ("data", "size_at_t", "lengths", "indices"):
            assert_same(getattr(actual, field), getattr(expected, field), rtol=rtol, atol=atol, where=f"{where}.{field}")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)) and len(actual) == len(expected), f"{where}: got {actual!r:.200}"
        for i, (got, want) in enumerate(zip(actual, expected)):
            assert_same(got, want, rtol=rtol, atol=atol, where=f"{where}[{i}]")
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), f"{where}: keys differ"
        for key in expected:
            assert_same(actual[key], expected[key], rtol=rtol, atol=atol, where=f"{where}[{key!r}]")
    elif isinstance(expected, numpy.ndarray):
        assert isinstance(actual, numpy.ndarray), f"{where}: got a {type(actual).__name__}, expected an array"
        assert actual.dtype == expected.dtype, f"{where}: dtype {actual.dtype}, expected {expected.dtype}"
        assert actual.shape == expected.shape, f"{where}: shape {actual.shape}, expected {expected.shape}"
        numpy.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=where)
    elif isinstance(expected, (float, numpy.floating)):
        assert numpy.isclose(actual, expected, rtol=rtol, atol=atol), f"{where}: {actual} != {expected}"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def assert_twin_matches(cpu_model, X, backend, *, random=False, where="model", tol=TOL32):
    """A copy of `cpu_model` on `backend`, checked to predict, train and backprop like it; with X there.

    With `random` (dropout) only predictions are compared: the devices draw different masks.
    """
    model = cpu_model.copy()
    if backend == "CupyOps":
        model.to_gpu(0)
    else:
        model.to_cpu()
    X_there = to_ops(model.ops, X)
    assert_same(model.predict(X_there), cpu_model.predict(X), where=f"{where}: predict", **tol)
    if not random:
        Y_cpu, backprop_cpu = cpu_model.begin_update(X)
        Y, backprop = model.begin_update(X_there)
        assert_same(Y, Y_cpu, where=f"{where}: training output", **tol)
        rng = numpy.random.RandomState(7)
        dY = map_float_leaves(Y_cpu, lambda leaf: rng.uniform(-1, 1, leaf.shape).astype(leaf.dtype))
        assert_same(backprop(to_ops(model.ops, dY)), backprop_cpu(dY), where=f"{where}: input gradient", **tol)
        assert_same(_grads(model), _grads(cpu_model), where=f"{where}: param gradients", **tol)
    return model, X_there


def _grads(model):
    return {(i, name): node.get_grad(name) for i, node in enumerate(model.walk()) for name in node.grad_names}


def _is_array(data) -> bool:
    return hasattr(data, "dtype") and hasattr(data, "shape") and not numpy.isscalar(data)
