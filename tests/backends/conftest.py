"""Fixtures shared by the backend tests: every available Ops class, and array helpers."""
import sys
from pathlib import Path

import numpy
import pytest

from composa.backends import CupyOps, NumpyOps, Ops, has_cupy_gpu

sys.path.insert(0, str(Path(__file__).parent))

OPS_CLASSES = [Ops, NumpyOps] + ([CupyOps] if has_cupy_gpu else [])
# CupyOps is always a parameter, marked gpu, so `pytest -m gpu` selects its cases (skipped without one).
OPS_PARAMS = [Ops, NumpyOps, pytest.param(CupyOps, marks=pytest.mark.gpu)]


@pytest.fixture(params=OPS_PARAMS, ids=lambda cls: cls.__name__)
def ops(request):
    return request.param()


def to_host(array):
    """A numpy copy of a numpy or cupy array (or a list/tuple of them)."""
    if isinstance(array, (list, tuple)):
        return type(array)(to_host(a) for a in array)
    return array.get() if hasattr(array, "get") and not isinstance(array, numpy.ndarray) else numpy.asarray(array)
