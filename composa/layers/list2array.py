"""Thinc's module path ``thinc.layers.list2array``: `list2array`, defined in `conversions.py`."""
from .conversions import list2array

__all__ = ["list2array"]
