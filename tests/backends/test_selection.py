"""Backend selection: get_ops, registry entries, CPU/GPU requirement helpers."""
import pytest

import composa
from composa import registry
from composa.backends import (
    CupyOps,
    NumpyOps,
    get_array_ops,
    get_current_ops,
    get_ops,
    has_cupy,
    has_cupy_gpu,
    prefer_gpu,
    require_cpu,
    require_gpu,
    set_active_gpu,
    set_current_ops,
    set_gpu_allocator,
    use_ops,
)


def test_get_ops_by_name_and_cpu_alias():
    assert isinstance(get_ops("numpy"), NumpyOps)
    assert isinstance(get_ops("cpu"), NumpyOps)
    assert get_ops("numpy", use_blis=True).use_blis is True  # accepted for Thinc configs, ignored
    with pytest.raises(ValueError, match="Invalid backend: 'tpu'"):
        get_ops("tpu")


def test_ops_classes_are_registered_for_configs():
    assert registry.ops.get("NumpyOps") is NumpyOps
    assert registry.ops.get("CupyOps") is CupyOps


def test_get_array_ops_of_a_numpy_array_is_a_shared_numpy_ops():
    import numpy

    first, second = get_array_ops(numpy.zeros(2)), get_array_ops(numpy.zeros(3))
    assert isinstance(first, NumpyOps) and first is second


def test_require_cpu_sets_numpy_ops_as_current():
    before = get_current_ops()
    try:
        assert require_cpu() is True
        assert isinstance(get_current_ops(), NumpyOps)
    finally:
        set_current_ops(before)


def test_public_names_are_exported_from_composa():
    for name in ("prefer_gpu", "require_gpu", "require_cpu", "set_active_gpu", "set_gpu_allocator",
                 "use_pytorch_for_gpu_memory", "use_tensorflow_for_gpu_memory", "get_ops", "use_ops"):
        assert hasattr(composa, name)


def test_unknown_gpu_allocator_is_a_clear_error():
    with pytest.raises(ValueError, match="allocator must be 'pytorch' or 'tensorflow', got 'jax'"):
        set_gpu_allocator("jax")


@pytest.mark.skipif(has_cupy_gpu, reason="checks the behaviour on machines without a CUDA GPU")
def test_without_a_gpu_prefer_gpu_is_false_and_require_gpu_raises():
    before = get_current_ops()
    assert prefer_gpu() is False
    assert get_current_ops() is before
    with pytest.raises(ValueError, match="require_gpu"):
        require_gpu()
    with pytest.raises(ValueError, match="set_active_gpu"):
        set_active_gpu(0)
    set_gpu_allocator("pytorch")  # a no-op without a GPU, as in Thinc


@pytest.mark.skipif(has_cupy, reason="checks the error when cupy is not installed")
def test_cupy_ops_without_cupy_says_how_to_install_it():
    with pytest.raises(ValueError, match="CupyOps needs cupy"):
        CupyOps()
    with pytest.raises(ValueError, match="CupyOps needs cupy"):
        with use_ops("cupy"):
            pass


@pytest.mark.gpu
@pytest.mark.skipif(not has_cupy_gpu, reason="needs cupy and a CUDA GPU")
def test_require_gpu_makes_cupy_ops_current():
    before = get_current_ops()
    try:
        assert prefer_gpu(0) is True
        assert isinstance(get_current_ops(), CupyOps)
    finally:
        set_current_ops(before)


def test_thinc_names_for_apple_backends_exist():
    from composa import AppleOps, MPSOps

    assert AppleOps is None  # as in Thinc off macOS
    ops = get_ops("mps")
    assert isinstance(ops, MPSOps) and isinstance(ops, NumpyOps) and ops.device_type == "mps"


def test_cblas_is_not_available_and_says_what_to_use():
    with pytest.raises(NotImplementedError, match="use ops.gemm"):
        NumpyOps().cblas()
