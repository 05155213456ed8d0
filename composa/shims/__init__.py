"""Shims: wrappers that let a composa Model drive models of other frameworks (PyTorch),
and the conversions between numpy/cupy arrays and torch tensors.

Importing this package does not import torch; torch is needed once a shim is made.
"""
from .conversions import (
    get_torch_default_device,
    is_torch_array,
    is_torch_cuda_array,
    is_torch_gpu_array,
    is_torch_mps_array,
    torch2xp,
    xp2torch,
)
from .shim import Shim
from .pytorch_grad_scaler import PyTorchGradScaler
from .pytorch import PyTorchShim
from .torchscript import TorchScriptShim

__all__ = [
    "Shim",
    "PyTorchGradScaler",
    "PyTorchShim",
    "TorchScriptShim",
    "xp2torch",
    "torch2xp",
    "get_torch_default_device",
    "is_torch_array",
    "is_torch_cuda_array",
    "is_torch_gpu_array",
    "is_torch_mps_array",
]
