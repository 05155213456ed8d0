"""Thinc's module path ``thinc.layers.swish``: `Swish`, defined in `dense.py`."""
from .dense import Swish

__all__ = ["Swish"]
