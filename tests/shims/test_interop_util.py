"""xp2torch / torch2xp, the default torch device and composa.compat's flags."""
import subprocess
import sys

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as numpy_st
from packaging.version import Version

torch = pytest.importorskip("torch")

from composa import NumpyOps, get_torch_default_device, torch2xp, xp2torch  # noqa: E402
from composa import compat  # noqa: E402
from composa.errors import ConfigurationError  # noqa: E402
from composa.util import is_torch_array  # noqa: E402


def test_xp2torch_shares_memory_on_cpu():
    array = numpy.zeros((2, 3), dtype="float32")
    tensor = xp2torch(array)
    array[0, 0] = 5.0
    assert tensor[0, 0].item() == 5.0
    assert tensor.device.type == "cpu" and not tensor.requires_grad


def test_numpy_view_is_torch2xp_of_a_cpu_tensor_and_none_otherwise():
    from composa.shims.conversions import numpy_view

    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3).requires_grad_()
    view = numpy_view(tensor)
    numpy.testing.assert_array_equal(view, torch2xp(tensor))
    with torch.no_grad():
        tensor[0, 0] = 7.0
    assert view[0, 0] == 7.0 and view.dtype == numpy.float32  # a view, not a copy
    assert numpy_view(tensor.to(torch.bfloat16)) is None  # numpy has no bfloat16: torch2xp copies
    assert numpy_view(numpy.zeros(2)) is None and numpy_view((tensor,)) is None


def test_xp2torch_requires_grad_only_for_floats():
    assert xp2torch(numpy.ones(2, dtype="float64"), requires_grad=True).requires_grad
    assert not xp2torch(numpy.ones(2, dtype="int64"), requires_grad=True).requires_grad


def test_xp2torch_copies_arrays_torch_cannot_view():
    read_only = numpy.frombuffer(numpy.arange(4, dtype="float32").tobytes(), dtype="float32")
    reversed_view = numpy.arange(4, dtype="float32")[::-1]
    assert xp2torch(read_only).tolist() == [0.0, 1.0, 2.0, 3.0]
    assert xp2torch(reversed_view).tolist() == [3.0, 2.0, 1.0, 0.0]


def test_xp2torch_refuses_object_arrays_clearly():
    with pytest.raises(ConfigurationError, match="object"):
        xp2torch(numpy.asarray([object()], dtype=object))


@settings(max_examples=25, deadline=None)
@given(numpy_st.arrays(st.sampled_from(["float32", "float64", "int32", "int64", "uint8", "bool"]), numpy_st.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)))
def test_round_trip_through_torch_keeps_values_dtype_and_shape(array):
    back = torch2xp(xp2torch(array))
    assert back.dtype == array.dtype and back.shape == array.shape
    numpy.testing.assert_array_equal(back, array)


def test_torch2xp_detaches_and_turns_bfloat16_into_float32():
    tensor = torch.ones(2, requires_grad=True)
    assert isinstance(torch2xp(tensor), numpy.ndarray)
    converted = torch2xp(torch.ones(2, dtype=torch.bfloat16), ops=NumpyOps())
    assert converted.dtype == numpy.float32


def test_is_torch_array():
    assert is_torch_array(torch.zeros(1))
    assert not is_torch_array(numpy.zeros(1))


def test_default_device_is_cpu_under_numpy_ops():
    assert get_torch_default_device() == torch.device("cpu")


def test_compat_flags_describe_this_machine():
    assert compat.has_torch is True
    assert compat.torch_version >= Version("2.0") and compat.torch is torch
    assert compat.has_torch_cuda_gpu == torch.cuda.is_available()
    assert compat.has_gpu in (True, False)
    with pytest.raises(AttributeError):
        compat.no_such_flag


BLOCK_TORCH = """
import sys
class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked for this test")
        return None
sys.meta_path.insert(0, BlockTorch())
"""


def test_composa_imports_and_explains_itself_without_torch():
    script = BLOCK_TORCH + """
import composa
from composa import compat
from packaging.version import Version
assert not compat.has_torch and compat.torch_version == Version("0.0.0") and compat.torch is None and not compat.has_torch_cuda_gpu
try:
    composa.PyTorchWrapper(None)
except ImportError as error:
    assert "pip install" in str(error), error
else:
    raise AssertionError("expected an ImportError")
assert "torch" not in sys.modules
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_importing_composa_does_not_import_torch():
    script = "import sys, composa, composa.shims, composa.compat; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
