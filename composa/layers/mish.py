"""Thinc's module path ``thinc.layers.mish``: `Mish`, defined in `dense.py`."""
from .dense import Mish

__all__ = ["Mish"]
