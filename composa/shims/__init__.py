"""Shims: wrappers that let a composa Model drive models of other frameworks (PyTorch).

Importing this package does not import torch; torch is needed once a shim is made.
"""
from .shim import Shim
from .pytorch_grad_scaler import PyTorchGradScaler
from .pytorch import PyTorchShim
from .torchscript import TorchScriptShim

__all__ = ["Shim", "PyTorchGradScaler", "PyTorchShim", "TorchScriptShim"]
