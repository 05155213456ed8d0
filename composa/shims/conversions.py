"""Moving arrays between numpy/cupy and torch, and telling torch tensors apart.

torch is optional: nothing here imports it unless a torch tensor is already in play
or a conversion to torch is requested. ``composa.util`` re-exports these names.
"""
import sys
from typing import Any

import numpy

from ..backends import get_current_ops
from ..errors import ConfigurationError
from ..util import is_cupy_array

__all__ = [
    "xp2torch",
    "torch2xp",
    "get_torch_default_device",
    "require_torch",
    "is_torch_array",
    "is_torch_cuda_array",
    "is_torch_gpu_array",
    "is_torch_mps_array",
]


def require_torch(what: str) -> Any:
    """The torch module, or an ImportError saying what needed it and how to install it."""
    try:
        import torch  # lazy: torch is optional
    except ImportError as error:
        raise ImportError(f"{what} needs PyTorch, which is not installed: pip install 'composa[torch]'") from error
    return torch


def is_torch_array(obj: Any) -> bool:
    """True for a torch.Tensor (False when torch was never imported: then it cannot be one)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def is_torch_cuda_array(obj: Any) -> bool:
    """True for a torch tensor on a CUDA device."""
    return is_torch_array(obj) and obj.is_cuda


def is_torch_mps_array(obj: Any) -> bool:
    """True for a torch tensor on Apple's MPS device."""
    return is_torch_array(obj) and obj.device.type == "mps"


def is_torch_gpu_array(obj: Any) -> bool:
    """True for a torch tensor on any GPU (CUDA or MPS)."""
    return is_torch_cuda_array(obj) or is_torch_mps_array(obj)


def get_torch_default_device() -> Any:
    """torch.device matching the current ops: ``cuda:<current>`` under CupyOps, else ``cpu``."""
    torch = require_torch("get_torch_default_device")
    ops = get_current_ops()
    if ops.device_type == "gpu" or getattr(ops, "name", "") == "cupy":
        return torch.device("cuda", torch.cuda.current_device())
    if ops.device_type == "mps":
        return torch.device("mps")
    return torch.device("cpu")


def xp2torch(xp_tensor: Any, requires_grad: bool = False, device: Any = None) -> Any:
    """numpy/cupy array -> torch tensor on `device` (default: get_torch_default_device()).

    CPU arrays share memory with the tensor (``torch.from_numpy``), cupy arrays go
    through DLPack (no copy); a copy is made only when moving between devices or when
    the array is read-only or has negative strides, which torch cannot view.
    """
    torch = sys.modules.get("torch") or require_torch("xp2torch")
    if type(xp_tensor) is numpy.ndarray and type(device) is torch.device and device.type == "cpu":
        tensor = cpu_view(xp_tensor)
        if tensor is not None:  # the wrapper's common case: no device move, no type checks
            if requires_grad and (tensor.is_floating_point() or tensor.is_complex()):
                tensor.requires_grad_()
            return tensor
    if isinstance(xp_tensor, torch.Tensor):
        tensor = xp_tensor
    elif is_cupy_array(xp_tensor):
        tensor = torch.utils.dlpack.from_dlpack(xp_tensor)
    else:
        array = xp_tensor if isinstance(xp_tensor, numpy.ndarray) else numpy.asarray(xp_tensor)
        if not array.flags.writeable or (array.ndim and min(array.strides) < 0):
            array = array.copy()
        try:
            tensor = torch.from_numpy(array)
        except TypeError as error:
            raise ConfigurationError(
                f"xp2torch: cannot convert an array of dtype {array.dtype} to a torch tensor"
            ) from error
    if device is None:
        device = get_torch_default_device()
    elif not isinstance(device, torch.device):
        device = torch.device(device)
    if tensor.device != device:  # .to() is a no-op for "cuda" when already on the current GPU
        tensor = tensor.to(device)
    if requires_grad and (tensor.is_floating_point() or tensor.is_complex()):
        tensor.requires_grad_()
    return tensor


def torch2xp(torch_tensor: Any, *, ops: Any = None) -> Any:
    """torch tensor -> numpy (CPU) or cupy (CUDA) array; `ops` picks the target explicitly.

    CPU tensors become numpy arrays sharing their memory and CUDA tensors become cupy
    arrays via DLPack. numpy has no bfloat16, so bfloat16 tensors come back as float32
    (a copy).
    """
    torch = sys.modules.get("torch") or require_torch("torch2xp")
    if torch_tensor.is_cpu and torch_tensor.dtype != torch.bfloat16 and getattr(ops, "name", None) != "cupy":
        # the common case: a view, without the checks below (detach only where needed: it costs)
        return (torch_tensor.detach() if torch_tensor.requires_grad else torch_tensor).numpy()
    tensor = torch_tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    target = None if ops is None else getattr(ops, "name", None)
    if tensor.is_cuda and target != "numpy":
        import cupy  # lazy: cupy is optional, and a CUDA tensor means it is wanted

        return cupy.from_dlpack(tensor)
    array = tensor.cpu().numpy()
    if target == "cupy":
        import cupy  # lazy: cupy is optional, and CupyOps means it is installed

        return cupy.asarray(array)
    return array


def cpu_view(array: numpy.ndarray) -> Any:
    """``torch.from_numpy(array)`` when torch can view it as is (writeable, no negative
    strides, a dtype torch has); None otherwise, for xp2torch's general path."""
    torch = sys.modules.get("torch") or require_torch("cpu_view")
    if not array.flags.writeable or (array.ndim and min(array.strides) < 0):
        return None
    try:
        return torch.from_numpy(array)
    except TypeError:
        return None


def numpy_view(obj: Any) -> Any:
    """What ``torch2xp(obj)`` gives for a CPU tensor (a numpy array sharing its memory) in one
    call, for the wrapper's hot path; None for anything else (not a tensor, GPU, bfloat16)."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(obj, torch.Tensor) or not obj.is_cpu or obj.dtype == torch.bfloat16:
        return None
    return (obj.detach() if obj.requires_grad else obj).numpy()
