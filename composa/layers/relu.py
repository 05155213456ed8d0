"""Thinc's module path ``thinc.layers.relu``: `Relu`, defined in `dense.py`."""
from .dense import Relu

__all__ = ["Relu"]
