"""Fixtures shared by the backend tests: every available Ops class, and array helpers."""
import sys
from pathlib import Path

import numpy
import pytest

from composa.backends import CupyOps, NumpyOps, Ops, has_cupy_gpu
from composa.backends._kernels import load_kernels

sys.path.insert(0, str(Path(__file__).parent))

OPS_CLASSES = [Ops, NumpyOps] + ([CupyOps] if has_cupy_gpu else [])
HAS_NUMBA = load_kernels("auto") is not None


def numpy_ops_on_the_numpy_path():
    """NumpyOps with its compiled kernels switched off: the pure-numpy fallback."""
    return NumpyOps(kernels="numpy")


# Every op test runs on the base Ops, on NumpyOps with the compiled kernels (when numba
# is installed) and on NumpyOps's pure-numpy path, so both paths are checked against torch.
# CupyOps is always a parameter, marked gpu, so `pytest -m gpu` selects its cases (skipped without one).
OPS_PARAMS = [Ops, NumpyOps, numpy_ops_on_the_numpy_path, pytest.param(CupyOps, marks=pytest.mark.gpu)]


@pytest.fixture(params=OPS_PARAMS, ids=lambda factory: "NumpyOps-numpy-path" if factory is numpy_ops_on_the_numpy_path else factory.__name__)
def ops(request):
    return request.param()


def to_host(array):
    """A numpy copy of a numpy or cupy array (or a list/tuple of them)."""
    if isinstance(array, (list, tuple)):
        return type(array)(to_host(a) for a in array)
    return array.get() if hasattr(array, "get") and not isinstance(array, numpy.ndarray) else numpy.asarray(array)
