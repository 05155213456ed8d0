"""Thinc's module path ``thinc.layers.torchscriptwrapper``: `TorchScriptWrapper_v1`, `pytorch_to_torchscript_wrapper`, defined in `pytorchwrapper.py`."""
from .pytorchwrapper import TorchScriptWrapper_v1, pytorch_to_torchscript_wrapper

__all__ = ["TorchScriptWrapper_v1", "pytorch_to_torchscript_wrapper"]
