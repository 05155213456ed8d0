"""Thinc's module path ``thinc.layers.reduce_max``: `reduce_max`, defined in `reduce.py`."""
from .reduce import reduce_max

__all__ = ["reduce_max"]
