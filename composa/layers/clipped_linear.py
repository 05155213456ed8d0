"""Thinc's module path ``thinc.layers.clipped_linear``: `ClippedLinear`, `HardSigmoid`, `HardTanh`, `ReluK`, defined in `dense.py`."""
from .dense import ClippedLinear, HardSigmoid, HardTanh, ReluK

__all__ = ["ClippedLinear", "HardSigmoid", "HardTanh", "ReluK"]
