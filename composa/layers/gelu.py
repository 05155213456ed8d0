"""Thinc's module path ``thinc.layers.gelu``: `Gelu`, defined in `dense.py`."""
from .dense import Gelu

__all__ = ["Gelu"]
