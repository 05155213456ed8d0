"""CupyOps' fused kernels must agree with the base Ops (the reference) on the same data."""
import numpy
import pytest

from composa.backends import CupyOps, NumpyOps, has_cupy_gpu
from composa.backends._cupy_kernels import KERNELS

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not has_cupy_gpu, reason="needs cupy and a CUDA GPU")]

# (method, arguments after the arrays) for each fused kernel; arrays: X or (dY, X) or (dY, X, Y)
FORWARD = ["sigmoid", "swish", "gelu", "mish", "dish", "clipped_linear"]
BACKWARD = ["backprop_gelu", "backprop_mish", "backprop_dish", "backprop_clipped_linear",
            "backprop_hard_swish", "backprop_hard_swish_mobilenet"]


def test_every_kernel_has_a_method():
    for name in KERNELS:
        assert name == "murmur3_uint64" or hasattr(CupyOps, name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", FORWARD + BACKWARD + ["backprop_swish"])
@pytest.mark.parametrize("inplace", [False, True])
def test_kernel_matches_numpy_ops(name, dtype, inplace):
    gpu, cpu = CupyOps(), NumpyOps()
    rng = numpy.random.default_rng(0)
    X = (rng.standard_normal((64, 33)) * 4).astype(dtype)
    dY = rng.standard_normal((64, 33)).astype(dtype)
    if name in FORWARD:
        args = (X,)
    elif name == "backprop_swish":
        args = (dY, X, cpu.swish(X))
    else:
        args = (dY, X)
    expected = getattr(cpu, name)(*[a.copy() for a in args])
    gpu_args = [gpu.asarray(a.copy()) for a in args]
    result = getattr(gpu, name)(*gpu_args, inplace=inplace)
    if inplace:
        assert result is gpu_args[0]
    tol = 1e-5 if dtype == "float32" else 1e-12
    numpy.testing.assert_allclose(result.get(), expected, rtol=tol, atol=tol)


def test_hash_kernel_is_bit_identical_to_the_cpu():
    ids = numpy.random.default_rng(1).integers(0, 2**63, size=1000, dtype="uint64")
    for seed in (0, 7, 2**32 - 1):
        numpy.testing.assert_array_equal(CupyOps().hash(CupyOps().asarray(ids), seed).get(), NumpyOps().hash(ids, seed))


def test_segment_reductions_on_the_gpu_with_empty_sequences():
    gpu, cpu = CupyOps(), NumpyOps()
    X = numpy.random.default_rng(2).standard_normal((7, 3)).astype("float32")
    lengths = numpy.asarray([3, 0, 4], dtype="int64")
    numpy.testing.assert_allclose(gpu.reduce_sum(gpu.asarray(X), gpu.asarray(lengths)).get(), cpu.reduce_sum(X, lengths), rtol=1e-6)
    numpy.testing.assert_allclose(gpu.reduce_mean(gpu.asarray(X), gpu.asarray(lengths)).get(), cpu.reduce_mean(X, lengths), rtol=1e-6)
    maxes, which = gpu.reduce_max(gpu.asarray(X[:7]), gpu.asarray(numpy.asarray([3, 4])))
    expected_maxes, expected_which = cpu.reduce_max(X, numpy.asarray([3, 4]))
    numpy.testing.assert_allclose(maxes.get(), expected_maxes)
    numpy.testing.assert_array_equal(which.get(), expected_which)


def test_asarray_from_a_cuda_torch_tensor_is_zero_copy():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    tensor = torch.arange(4, dtype=torch.float32, device="cuda")
    array = CupyOps().asarray(tensor)
    array[0] = 10
    assert float(tensor[0]) == 10.0
