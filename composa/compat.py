"""Which optional frameworks and devices are available, without importing them eagerly.

``import composa`` must work (and stay fast) without torch, so the torch flags are
computed on first access: ``from composa.compat import has_torch_cuda_gpu`` imports
torch then, once. ``has_torch`` itself only asks the import system whether torch
could be found and imported.
"""
import functools
import importlib
import importlib.util
from typing import Any, Dict, Optional

from packaging.version import Version

from .backends.cupy_ops import has_cupy, has_cupy_gpu
from .thinc_compat import enable_mxnet, enable_tensorflow

# Flags that need torch imported: computed on first access by the module __getattr__.
_LAZY_FLAGS = (
    "torch",
    "has_torch",
    "torch_version",
    "has_torch_cuda_gpu",
    "has_torch_mps",
    "has_torch_mps_gpu",
    "has_torch_amp",
    "has_gpu",
)

__all__ = [
    "has_cupy",
    "has_cupy_gpu",
    *_LAZY_FLAGS,
    "has_tensorflow",
    "has_mxnet",
    "has_blis",
    "has_apple_ops",
    "has_os_signpost",
    "enable_tensorflow",
    "enable_mxnet",
]


def _installed(name: str) -> bool:
    """Whether `name` could be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


has_tensorflow = _installed("tensorflow")
has_mxnet = _installed("mxnet")
has_blis = _installed("blis")
has_apple_ops = False
has_os_signpost = False

@functools.lru_cache(maxsize=None)
def _torch() -> Optional[Any]:
    """The torch module, or None when it is not installed (or fails to import)."""
    if not _installed("torch"):
        return None
    try:
        return importlib.import_module("torch")
    except Exception:  # a broken install counts as absent, as in the reference
        return None


# What the reference reports for an absent torch, so `torch_version >= Version("1.9.0")` is False.
NO_VERSION = Version("0.0.0")


@functools.lru_cache(maxsize=None)
def _flags() -> dict:
    torch = _torch()
    flags: Dict[str, Any] = {
        "torch": torch,
        "has_torch": torch is not None,
        "torch_version": NO_VERSION,
        "has_torch_cuda_gpu": False,
        "has_torch_mps": False,
        "has_torch_mps_gpu": False,
        "has_torch_amp": False,
    }
    if torch is not None:
        flags["torch_version"] = Version(str(torch.__version__))
        try:
            flags["has_torch_cuda_gpu"] = bool(torch.cuda.device_count() > 0)
        except Exception:
            flags["has_torch_cuda_gpu"] = False
        mps = getattr(torch.backends, "mps", None)
        flags["has_torch_mps"] = mps is not None and bool(mps.is_built())
        flags["has_torch_mps_gpu"] = mps is not None and flags["has_torch_mps"] and bool(mps.is_available())
        # fp16 autocast with loss scaling needs CUDA; CPU autocast (bfloat16) needs no scaler
        flags["has_torch_amp"] = flags["has_torch_cuda_gpu"]
    flags["has_gpu"] = has_cupy_gpu or flags["has_torch_mps_gpu"]
    return flags


def __getattr__(name: str) -> Any:
    if name in _LAZY_FLAGS:
        return _flags()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
