"""Test-suite settings: hypothesis runs derandomized in CI so a green run is repeatable.

GPU tests carry ``@pytest.mark.gpu`` so that ``pytest -m gpu`` selects all of them (the
GPU check, benchmarks/gpu_check.sh, runs exactly that). Without cupy and a CUDA device a
marked test is skipped; a test that skips for want of a GPU without the marker is a
collection error, so none can hide from ``-m gpu``.
"""
import os
import re

import pytest
from hypothesis import settings

from composa.backends import has_cupy_gpu

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# a skip reason of this form means "this test runs only on a GPU"
NEEDS_A_GPU = re.compile(r"\bneeds\b.*\b(GPU|CUDA)\b")


def pytest_collection_modifyitems(config, items):
    """Skip gpu-marked tests without a GPU; refuse GPU-only tests that lack the marker."""
    unmarked = [item.nodeid for item in items if _skips_without_a_gpu(item) and not item.get_closest_marker("gpu")]
    if unmarked:
        raise pytest.UsageError(
            f"{len(unmarked)} tests skip without a GPU but are not marked @pytest.mark.gpu, e.g. " + ", ".join(unmarked[:5])
        )
    if not has_cupy_gpu:
        skip = pytest.mark.skip(reason="needs a CUDA GPU with cupy (marked gpu)")
        for item in items:
            if item.get_closest_marker("gpu"):
                item.add_marker(skip)


def _skips_without_a_gpu(item) -> bool:
    return any(NEEDS_A_GPU.search(mark.kwargs.get("reason", "")) for mark in item.iter_markers("skipif"))
