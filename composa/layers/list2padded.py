"""Thinc's module path ``thinc.layers.list2padded``: `list2padded`, defined in `conversions.py`."""
from .conversions import list2padded

__all__ = ["list2padded"]
